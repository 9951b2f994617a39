"""URL previews: OpenGraph data of a page or an image (``previewer.UrlPreviewer``, built
by ``hs.media`` when ``media.url_preview_enabled``), parsed by ``html``."""

from __future__ import annotations

from homeserver.media.preview.previewer import UrlPreviewer

__all__ = ["UrlPreviewer"]
