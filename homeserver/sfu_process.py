"""Runs the bundled SFU as a child process of ``wspr run`` (its own interpreter, so its
own core: aiortc is asyncio-only and would otherwise share our GIL).

Start-up waits until the child says, on a pipe, that its signalling port is open, or why
it is not: a taken ``sfu.port`` stops ``wspr run`` with one line naming the key, as the
homeserver's own listeners do."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

from twisted.internet import task

from homeserver.config import ConfigError

if TYPE_CHECKING:
    from homeserver.app import HomeServer

logger = logging.getLogger(__name__)

# Importing aiortc takes a few seconds on a busy machine; past this, start-up goes on
# without the answer (the SFU may still come up).
READY_TIMEOUT_S = 60.0
_POLL_S = 0.05


class SFUStartError(Exception):
    """The SFU's process ended before listening (its log says why)."""


class SFUProcess:
    def __init__(self, hs: HomeServer) -> None:
        self.hs = hs
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        if not self.hs.config.sfu.enabled or not self.hs.config.config_path:
            return
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "media_sfu", "--config", self.hs.config.config_path, "--ready-fd", str(write_fd)],
                env=dict(os.environ),
                pass_fds=(write_fd,),
            )
        finally:
            os.close(write_fd)
        try:
            answer = await self._read_answer(read_fd)
        finally:
            os.close(read_fd)
        if answer is None:
            logger.warning("the SFU (pid %d) has not said it is listening after %.0f s", self.proc.pid, READY_TIMEOUT_S)
            return
        if "error" in answer:
            self._reap()
            raise ConfigError(str(answer.get("key", "sfu")), str(answer["error"]))
        logger.info("started the SFU (pid %d) at %s", self.proc.pid, self.hs.config.sfu.effective_public_url)

    async def _read_answer(self, fd: int) -> dict[str, Any] | None:
        """The child's one JSON line; None after READY_TIMEOUT_S."""
        assert self.proc is not None
        data = b""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                chunk = os.read(fd, 4096)
            except BlockingIOError:
                await task.deferLater(self.hs.reactor, _POLL_S, lambda: None)
                continue
            if chunk:
                data += chunk
                if b"\n" not in data:
                    continue
            try:
                answer = json.loads(data.split(b"\n", 1)[0]) if data else None
            except ValueError:
                answer = None
            if isinstance(answer, dict):
                return answer
            # The pipe closed without an answer: the child died starting up.
            code = self._reap()
            raise SFUStartError(f"the SFU's process exited (code {code}) before listening; see its log above")
        return None

    def _reap(self) -> int | None:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    async def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        for _ in range(50):
            if self.proc.poll() is not None:
                return
            await task.deferLater(self.hs.reactor, 0.1, lambda: None)
        self.proc.kill()
