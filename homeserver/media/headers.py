"""Response headers for serving user-uploaded content safely.

Uploaded files are attacker-controlled: they are served with a sandboxing CSP, no
sniffing, and ``Content-Disposition: inline`` only for types a browser will not run as
a document (the spec's list); everything else is an attachment.
"""

from __future__ import annotations

from urllib.parse import quote

CONTENT_SECURITY_POLICY = (
    "sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; "
    "style-src 'unsafe-inline'; object-src 'self';"
)

INLINE_CONTENT_TYPES = frozenset(
    {
        "text/css",
        "text/plain",
        "text/csv",
        "application/json",
        "application/ld+json",
        "image/jpeg",
        "image/gif",
        "image/png",
        "image/apng",
        "image/webp",
        "image/avif",
        "video/mp4",
        "video/webm",
        "video/ogg",
        "video/quicktime",
        "audio/mp4",
        "audio/webm",
        "audio/aac",
        "audio/mpeg",
        "audio/ogg",
        "audio/wave",
        "audio/wav",
        "audio/x-wav",
        "audio/x-pn-wav",
        "audio/flac",
        "audio/x-flac",
    }
)

# RFC 2616 token characters: a filename made only of these needs no quoting.
_TOKEN_CHARS = frozenset("!#$%&'*+-.0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ^_`abcdefghijklmnopqrstuvwxyz|~")

IMMUTABLE_PUBLIC = "public, max-age=31536000, immutable"
IMMUTABLE_PRIVATE = "private, max-age=31536000, immutable"


def base_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def content_disposition(content_type: str, filename: str | None) -> str:
    disposition = "inline" if base_type(content_type) in INLINE_CONTENT_TYPES else "attachment"
    if not filename:
        return disposition
    if all(c in _TOKEN_CHARS for c in filename):
        return f"{disposition}; filename={filename}"
    # RFC 6266 / 5987: UTF-8, percent-encoded.
    return f"{disposition}; filename*=utf-8''{quote(filename, safe='')}"


def safe_content_type(content_type: str) -> str:
    """The stored type, made a valid header value; text gets an explicit charset."""
    value = "".join(c for c in content_type if 0x20 <= ord(c) < 0x7F) or "application/octet-stream"
    if base_type(value).startswith("text/") and "charset" not in value.lower():
        value += "; charset=UTF-8"
    return value


def media_headers(content_type: str, filename: str | None, authenticated: bool) -> dict[str, str]:
    ctype = safe_content_type(content_type)
    return {
        "Content-Type": ctype,
        "Content-Disposition": content_disposition(ctype, filename),
        "Content-Security-Policy": CONTENT_SECURITY_POLICY,
        "X-Content-Security-Policy": "sandbox;",
        "X-Content-Type-Options": "nosniff",
        "Cross-Origin-Resource-Policy": "cross-origin",
        "Referrer-Policy": "no-referrer",
        # Media never changes once uploaded; authenticated responses stay out of shared caches.
        "Cache-Control": IMMUTABLE_PRIVATE if authenticated else IMMUTABLE_PUBLIC,
    }
