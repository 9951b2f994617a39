"""The media repository: files on disk, thumbnails, and the handler behind the media
endpoints (``hs.media``)."""

from __future__ import annotations

from homeserver.media.handler import MediaHandler
from homeserver.media.records import MediaContent, RemoteMedia

__all__ = ["MediaContent", "MediaHandler", "RemoteMedia"]
