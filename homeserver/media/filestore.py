"""Media files on disk under ``config.media.store_path``.

Local media is stored by media id, remote media by a server-name directory and a
filesystem id of our own, thumbnails next to them by size and method. Ids are checked
against the spec's alphabet before they ever reach a path, and writes are atomic (a
temporary file in the same directory, fsynced, then renamed into place) so a reader
never sees half a file.
"""

from __future__ import annotations

import os
import re
import secrets
from typing import Any
from urllib.parse import quote

from twisted.internet import threads

MEDIA_ID_RE = re.compile(r"^[A-Za-z0-9_\-]+$")


def _split(media_id: str) -> list[str]:
    if not MEDIA_ID_RE.match(media_id):
        raise ValueError(f"invalid media id {media_id!r}")
    if len(media_id) < 5:
        return [media_id]
    return [media_id[0:2], media_id[2:4], media_id[4:]]


def _server_dir(server_name: str) -> str:
    safe = quote(server_name, safe="")
    return "_" + safe if safe.startswith(".") or not safe else safe


class MediaFileStore:
    def __init__(self, base_path: str, reactor: Any) -> None:
        self.base_path = os.path.abspath(base_path)
        self.reactor = reactor

    def local_path(self, media_id: str) -> str:
        return os.path.join(self.base_path, "local_content", *_split(media_id))

    def remote_path(self, server_name: str, filesystem_id: str) -> str:
        return os.path.join(self.base_path, "remote_content", _server_dir(server_name), *_split(filesystem_id))

    def thumbnail_path(self, server_name: str | None, media_id: str, width: int, height: int, method: str, content_type: str) -> str:
        top = ["local_thumbnails"] if server_name is None else ["remote_thumbnails", _server_dir(server_name)]
        subtype = content_type.split("/", 1)[-1].replace("+", "_")
        name = f"{width}-{height}-{method}.{subtype}"
        return os.path.join(self.base_path, *top, *_split(media_id), name)

    async def write(self, path: str, data: bytes) -> None:
        await threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), write_atomic, path, data)

    async def read(self, path: str) -> bytes | None:
        return await threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), read_file, path)


def write_atomic(path: str, data: bytes) -> None:
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".tmp-{secrets.token_hex(8)}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_file(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None
