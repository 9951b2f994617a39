"""What the media repository hands around: content to serve, a file on disk, what
another server said of media fetched from it."""

from __future__ import annotations

from dataclasses import dataclass

# Files bigger than this are streamed from disk rather than read into memory.
STREAM_THRESHOLD = 4 * 1024 * 1024


@dataclass(frozen=True)
class StoredMedia:
    """A media file on disk and what the database knows of it."""

    path: str
    content_type: str
    upload_name: str | None
    size: int
    authenticated: bool


@dataclass(frozen=True)
class MediaContent:
    """Content to serve: in memory (``data``), or a file on disk to stream (``path``).
    ``authenticated``: stored as authenticated media (never cached by shared caches)."""

    data: bytes | None
    content_type: str
    upload_name: str | None
    path: str | None = None
    size: int = 0
    authenticated: bool = False


@dataclass(frozen=True)
class RemoteMedia:
    """What the origin server said of media fetched from it (``hs.federation.
    fetch_remote_media``/``fetch_remote_thumbnail``); the content itself went to the sink
    the caller passed."""

    content_type: str | None
    upload_name: str | None
    size: int
