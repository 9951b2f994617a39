"""The multipart/mixed body of federation media responses (server-server API,
``/_matrix/federation/v1/media/download``): a JSON metadata part, then either the
content (with its own Content-Type/Content-Disposition) or a part with a Location
header pointing at it.

``build``/``frame`` are what we serve; ``MultipartStream`` reads what another server
serves as it arrives (``federation/media.py``).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import unquote


@dataclass(frozen=True)
class MultipartMedia:
    metadata: dict[str, Any]
    content_type: str | None
    filename: str | None
    data: bytes | None
    location: str | None  # set instead of data when the origin redirects


class MultipartError(ValueError):
    pass


def build(data: bytes, part_headers: dict[str, str]) -> tuple[bytes, str]:
    """(body, Content-Type header value)."""
    head, tail, content_type = frame(part_headers)
    return head + data + tail, content_type


def frame(part_headers: dict[str, str]) -> tuple[bytes, bytes, str]:
    """What goes before and after the content, and the Content-Type header value: the
    body is head + content + tail, so a big file can be streamed between the two."""
    boundary = secrets.token_hex(16)
    headers = "".join(f"{k}: {v}\r\n" for k, v in part_headers.items())
    head = f"--{boundary}\r\nContent-Type: application/json\r\n\r\n{{}}\r\n--{boundary}\r\n{headers}\r\n"
    tail = f"\r\n--{boundary}--\r\n"
    return head.encode("utf-8"), tail.encode("utf-8"), f"multipart/mixed; boundary={boundary}"


def boundary_of(content_type: str) -> bytes:
    """The boundary of a multipart/mixed Content-Type; MultipartError if it is not one."""
    msg = Message()
    msg["Content-Type"] = content_type
    if msg.get_content_type() != "multipart/mixed":
        raise MultipartError(f"not multipart/mixed: {content_type[:100]}")
    boundary = msg.get_param("boundary")
    if not isinstance(boundary, str) or not boundary or len(boundary) > 70:
        raise MultipartError("no valid boundary")
    return boundary.encode("utf-8")


def _headers(raw: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in raw.decode("utf-8", "replace").split("\r\n"):
        if ":" in line:
            k, v = line.split(":", 1)
            out[k.strip().lower()] = v.strip()
    return out


def filename_from_disposition(value: str | None) -> str | None:
    if not value:
        return None
    m = re.search(r"filename\*\s*=\s*utf-8''([^;]+)", value, re.IGNORECASE)
    if m:
        return unquote(m.group(1).strip())
    m = re.search(r'filename\s*=\s*"((?:[^"\\]|\\.)*)"', value, re.IGNORECASE) or re.search(
        r"filename\s*=\s*([^;\s]+)", value, re.IGNORECASE
    )
    return m.group(1) if m else None


# The metadata part and the headers of a part are small; more is refused.
MAX_METADATA = 64 * 1024
MAX_PART_HEADERS = 16 * 1024


class MultipartStream:
    """Reads a federation media body as it arrives (``feed``): the metadata part is kept,
    the second part's headers are parsed, and its content goes to ``sink`` piece by piece
    (never held whole). Only what may still be the start of a delimiter is held back.
    ``finish()`` when the body has ended: the result, or MultipartError."""

    def __init__(self, boundary: bytes, sink: Callable[[bytes], object]) -> None:
        self._delimiter = b"\r\n--" + boundary
        self._sink = sink
        # A CRLF in front so that a delimiter at the very start of the body is found too.
        self._buf = b"\r\n"
        self._state = "preamble"
        self._part = -1
        self._metadata = b""
        self._headers: list[dict[str, str]] = []
        self.content_size = 0

    def feed(self, data: bytes) -> None:
        self._buf += data
        while self._step():
            pass

    def _step(self) -> bool:
        """One state transition on what is buffered; False when more input is needed."""
        buf, delim = self._buf, self._delimiter
        if self._state == "done":
            self._buf = b""
            return False
        if self._state == "preamble":
            i = buf.find(delim)
            if i < 0:
                self._buf = buf[-len(delim) :]
                return False
            self._buf = buf[i + len(delim) :]
            self._state = "after_delimiter"
            return True
        if self._state == "after_delimiter":
            if len(buf) < 2:
                return False
            if buf.startswith(b"--"):
                self._state = "done"
                return True
            # Transport padding (spaces, tabs) may come before the CRLF.
            i = buf.find(b"\r\n")
            if i < 0:
                if len(buf) > 1024:
                    raise MultipartError("malformed delimiter line")
                return False
            if buf[:i].strip(b" \t"):
                raise MultipartError("malformed delimiter line")
            self._buf = buf[i + 2 :]
            self._part += 1
            if self._part >= 2:
                self._state = "done"  # the spec's body has exactly two parts
                return True
            self._state = "headers"
            return True
        if self._state == "headers":
            if buf.startswith(b"\r\n"):
                head, rest = b"", buf[2:]
            else:
                i = buf.find(b"\r\n\r\n")
                if i < 0:
                    if len(buf) > MAX_PART_HEADERS:
                        raise MultipartError("part headers too long")
                    return False
                head, rest = buf[:i], buf[i + 4 :]
            self._headers.append(_headers(head))
            self._buf = rest
            self._state = "content"
            return True
        # content of the current part: up to the next delimiter
        i = buf.find(delim)
        keep = len(delim) - 1
        if i < 0:
            if len(buf) > keep:
                self._content(buf[:-keep])
                self._buf = buf[-keep:]
            return False
        self._content(buf[:i])
        self._buf = buf[i + len(delim) :]
        self._state = "after_delimiter"
        return True

    def _content(self, data: bytes) -> None:
        if not data:
            return
        if self._part == 0:
            if len(self._metadata) + len(data) > MAX_METADATA:
                raise MultipartError("metadata part too large")
            self._metadata += data
            return
        if "location" in self._headers[1]:
            return  # a redirect part has no content worth keeping
        self.content_size += len(data)
        self._sink(data)

    @property
    def headers_known(self) -> dict[str, str] | None:
        """The second part's headers once they have arrived."""
        return self._headers[1] if len(self._headers) > 1 else None

    def finish(self) -> MultipartMedia:
        if self._state != "done" or len(self._headers) < 2:
            raise MultipartError("expected a metadata part and a content part, closed")
        try:
            metadata = json.loads(self._metadata or b"{}")
        except ValueError as e:
            raise MultipartError("metadata part is not JSON") from e
        if not isinstance(metadata, dict):
            raise MultipartError("metadata part is not a JSON object")
        headers = self._headers[1]
        if "location" in headers:
            return MultipartMedia(metadata, None, None, None, headers["location"])
        return MultipartMedia(
            metadata, headers.get("content-type"), filename_from_disposition(headers.get("content-disposition")), None, None
        )


def parse(content_type: str, body: bytes) -> MultipartMedia:
    """A whole body at once (the content in ``data``)."""
    chunks: list[bytes] = []
    stream = MultipartStream(boundary_of(content_type), chunks.append)
    stream.feed(body)
    got = stream.finish()
    if got.location is not None:
        return got
    return MultipartMedia(got.metadata, got.content_type, got.filename, b"".join(chunks), None)
