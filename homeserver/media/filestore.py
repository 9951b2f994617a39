"""Media files on disk under ``config.media.store_path``.

Local media is stored by media id, remote media by a server-name directory and a
filesystem id of our own, thumbnails next to them by size and method. Ids are checked
against the spec's alphabet before they ever reach a path, and writes are atomic (a
temporary file in the same directory, fsynced, then renamed into place) so a reader
never sees half a file. Everything is private to the server's user (directories 0700,
files 0600): uploads in private rooms are as secret as the messages.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import shutil
from collections.abc import Callable
from typing import Any, BinaryIO
from urllib.parse import quote

from twisted.internet import threads

logger = logging.getLogger(__name__)

# Uploads are copied from the request's spool file in pieces this big (never whole in memory).
COPY_CHUNK = 1024 * 1024

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
        make_private_dirs(self.base_path)
        mode = os.stat(self.base_path).st_mode & 0o777
        if mode & 0o077:
            # A store made by an older version: closing the top directory makes every
            # file below unreachable for other users, whatever their own modes.
            logger.warning("media store %s was open to others (mode %o): making it private", self.base_path, mode)
            os.chmod(self.base_path, 0o700)

    def local_path(self, media_id: str) -> str:
        return os.path.join(self.base_path, "local_content", *_split(media_id))

    def remote_path(self, server_name: str, filesystem_id: str) -> str:
        return os.path.join(self.base_path, "remote_content", _server_dir(server_name), *_split(filesystem_id))

    def thumbnail_path(self, server_name: str | None, media_id: str, width: int, height: int, method: str, content_type: str) -> str:
        top = ["local_thumbnails"] if server_name is None else ["remote_thumbnails", _server_dir(server_name)]
        subtype = content_type.split("/", 1)[-1].replace("+", "_")
        name = f"{width}-{height}-{method}.{subtype}"
        return os.path.join(self.base_path, *top, *_split(media_id), name)

    def origin_thumbnail_path(self, server_name: str, media_id: str, width: int, height: int, method: str) -> str:
        """A thumbnail of remote media as its origin made it (its type is in the database)."""
        return os.path.join(
            self.base_path, "remote_thumbnails", _server_dir(server_name), *_split(media_id), f"{width}-{height}-{method}.origin"
        )

    def pending(self, path: str) -> PendingFile:
        """A file to fill as data arrives, in place at ``path`` once committed."""
        return PendingFile(path, self.reactor)

    async def remove_local(self, media_id: str) -> None:
        """Deletes a local media file and its thumbnails (what is missing is no error)."""
        thumbnails = os.path.join(self.base_path, "local_thumbnails", *_split(media_id))
        await threads.deferToThreadPool(
            self.reactor, self.reactor.getThreadPool(), _remove, self.local_path(media_id), thumbnails
        )

    async def write(self, path: str, data: bytes) -> None:
        await threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), write_atomic, path, data)

    async def write_from(self, path: str, src: BinaryIO) -> str:
        """Copies ``src`` into ``path`` (atomically) in chunks; its SHA-256 in hex."""
        return await threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), copy_atomic, path, src)

    async def read(self, path: str) -> bytes | None:
        return await threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), read_file, path)


class PendingFile:
    """A file written piece by piece from the reactor thread (small buffered writes to the
    page cache, as the content arrives from the network), under a temporary name in its
    final directory: ``commit`` fsyncs it and renames it into place, ``abort`` removes
    it, so a reader never sees a partial file."""

    def __init__(self, path: str, reactor: Any) -> None:
        self.path = path
        self._reactor = reactor
        directory = os.path.dirname(path)
        make_private_dirs(directory)
        self._tmp = os.path.join(directory, f".tmp-{secrets.token_hex(8)}")
        self._file: BinaryIO | None = open(os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")
        self._digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        if self._file is None:
            raise ValueError("file already closed")
        self._file.write(data)
        self._digest.update(data)
        self.size += len(data)

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    async def commit(self) -> None:
        f, self._file = self._file, None
        if f is None:
            raise ValueError("file already closed")

        def finish() -> None:
            try:
                f.flush()
                os.fsync(f.fileno())
            finally:
                f.close()
            os.replace(self._tmp, self.path)

        try:
            await threads.deferToThreadPool(self._reactor, self._reactor.getThreadPool(), finish)
        except BaseException:
            self._unlink()
            raise

    def abort(self) -> None:
        f, self._file = self._file, None
        if f is not None:
            f.close()
        self._unlink()

    def _unlink(self) -> None:
        try:
            os.unlink(self._tmp)
        except FileNotFoundError:
            pass


def make_private_dirs(path: str) -> None:
    """``os.makedirs`` with every directory it creates 0700 (its ``mode`` covers only the
    last one)."""
    if os.path.isdir(path):
        return
    parent = os.path.dirname(path)
    if parent and parent != path:
        make_private_dirs(parent)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass


def write_atomic(path: str, data: bytes) -> None:
    _write_atomic(path, lambda f: f.write(data))


def copy_atomic(path: str, src: BinaryIO) -> str:
    digest = hashlib.sha256()

    def copy(f: BinaryIO) -> None:
        while chunk := src.read(COPY_CHUNK):
            digest.update(chunk)
            f.write(chunk)

    _write_atomic(path, copy)
    return digest.hexdigest()


def _write_atomic(path: str, fill: Callable[[BinaryIO], object]) -> None:
    directory = os.path.dirname(path)
    make_private_dirs(directory)
    tmp = os.path.join(directory, f".tmp-{secrets.token_hex(8)}")
    try:
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _remove(path: str, directory: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    shutil.rmtree(directory, ignore_errors=True)


def read_file(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None
