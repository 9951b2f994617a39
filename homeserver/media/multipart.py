"""The multipart/mixed body of federation media responses (server-server API,
``/_matrix/federation/v1/media/download``): a JSON metadata part, then either the
content (with its own Content-Type/Content-Disposition) or a part with a Location
header pointing at it.

``build`` is what we serve; ``parse`` is for the federation client that fills in
``hs.media.fetch_remote``.
"""

from __future__ import annotations

import json
import re
import secrets
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
    boundary = secrets.token_hex(16)
    headers = "".join(f"{k}: {v}\r\n" for k, v in part_headers.items())
    body = (
        f"--{boundary}\r\nContent-Type: application/json\r\n\r\n{{}}\r\n--{boundary}\r\n{headers}\r\n"
    ).encode("utf-8") + data + f"\r\n--{boundary}--\r\n".encode("utf-8")
    return body, f"multipart/mixed; boundary={boundary}"


def _boundary(content_type: str) -> str:
    msg = Message()
    msg["Content-Type"] = content_type
    if msg.get_content_type() != "multipart/mixed":
        raise MultipartError(f"not multipart/mixed: {content_type}")
    boundary = msg.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise MultipartError("no boundary")
    return boundary


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


def parse(content_type: str, body: bytes) -> MultipartMedia:
    boundary = _boundary(content_type).encode("utf-8")
    delimiter = b"--" + boundary
    parts = body.split(delimiter)
    # parts[0] is the preamble, the last one starts with "--" (the close delimiter).
    sections = []
    for part in parts[1:]:
        if part.startswith(b"--"):
            break
        if part.startswith(b"\r\n"):
            part = part[2:]
        if part.endswith(b"\r\n"):
            part = part[:-2]
        head, sep, content = part.partition(b"\r\n\r\n")
        if not sep:
            # A part with no headers at all starts directly with the blank line.
            if part.startswith(b"\r\n"):
                head, content = b"", part[2:]
            else:
                raise MultipartError("malformed part")
        sections.append((_headers(head), content))
    if len(sections) < 2:
        raise MultipartError("expected a metadata part and a content part")
    try:
        metadata = json.loads(sections[0][1] or b"{}")
    except ValueError as e:
        raise MultipartError("metadata part is not JSON") from e
    if not isinstance(metadata, dict):
        raise MultipartError("metadata part is not a JSON object")
    headers, content = sections[1]
    if "location" in headers:
        return MultipartMedia(metadata, None, None, None, headers["location"])
    return MultipartMedia(
        metadata,
        headers.get("content-type"),
        filename_from_disposition(headers.get("content-disposition")),
        content,
        None,
    )
