"""A local SMTP server that keeps what it receives (aiosmtpd, in its own thread), for the
e-mail tests: ``SmtpSink.start(test)`` → ``sink.port``, then ``await sink.wait_for(to)``."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from dataclasses import dataclass
from typing import Any

from aiosmtpd.controller import Controller
from twisted.internet import reactor, task
from twisted.trial import unittest


@dataclass(frozen=True)
class Mail:
    mail_from: str
    rcpt_tos: list[str]
    message: email.message.EmailMessage

    @property
    def text(self) -> str:
        body = self.message.get_body(("plain",))
        return body.get_content() if body is not None else ""


class _Handler:
    def __init__(self) -> None:
        self.mails: list[Mail] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.mails.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 OK"


class SmtpSink:
    def __init__(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.handler = _Handler()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    @classmethod
    def start(cls, test: unittest.TestCase) -> SmtpSink:
        sink = cls()
        sink.controller.start()
        test.addCleanup(sink.controller.stop)
        return sink

    def mails_to(self, address: str) -> list[Mail]:
        with self.handler.lock:
            return [m for m in self.handler.mails if address in m.rcpt_tos]

    async def wait_for(self, address: str, count: int = 1, timeout: float = 10.0) -> list[Mail]:
        for _ in range(int(timeout * 20)):
            found = self.mails_to(address)
            if len(found) >= count:
                return found
            await task.deferLater(reactor, 0.05, lambda: None)
        raise AssertionError(f"no e-mail to {address} arrived")

    def email_config(self) -> dict[str, Any]:
        return {"smtp_host": "127.0.0.1", "smtp_port": self.port, "enable_tls": False, "notif_from": "WSPR <noreply@localhost>"}
