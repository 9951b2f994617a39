"""The media repository: files on disk, thumbnails, and the handler behind the media
endpoints (``hs.media``)."""

from __future__ import annotations

from homeserver.media.handler import MediaContent, MediaHandler, RemoteMedia

__all__ = ["MediaContent", "MediaHandler", "RemoteMedia"]
