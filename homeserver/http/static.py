"""Serves the PWA (frontend/dist) at ``/``, with cache headers that suit a service worker:
hashed assets are immutable, the shell and the worker itself are always revalidated.

The build writes brotli (``.br``) and gzip (``.gz``) copies next to the files worth compressing;
a client that accepts one (``Accept-Encoding``, with q-values) gets it as ``Content-Encoding``, so
nothing is compressed per request. Every response for a file that has such copies says
``Vary: Accept-Encoding``, so shared caches keep the variants apart."""

from __future__ import annotations

import mimetypes
import os
from typing import TYPE_CHECKING, Any

from twisted.web import resource, server
from twisted.web.server import Request

from homeserver.http.server import Router, write_json

if TYPE_CHECKING:
    from homeserver.app import HomeServer

NO_CACHE = b"no-cache"
IMMUTABLE = b"public, max-age=31536000, immutable"
# Never answered with the app shell: API paths must 404 as JSON.
API_PREFIXES = ("/_matrix/", "/_synapse/", "/.well-known/")
# Precompressed variants, in the order we prefer them when the client likes both equally.
ENCODINGS = (("br", ".br"), ("gzip", ".gz"))

mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("application/manifest+json", ".webmanifest")
mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/javascript", ".mjs")


def accepted_encodings(header: str | None) -> dict[str, float]:
    """``Accept-Encoding`` as {coding: q} (RFC 9110 section 12.5.3); codings are lower-cased,
    ``x-gzip`` counts as ``gzip``, a missing or malformed q is 1 and out-of-range ones are clamped."""
    prefs: dict[str, float] = {}
    for part in (header or "").split(","):
        coding, *params = (p.strip() for p in part.split(";"))
        coding = coding.lower()
        if not coding:
            continue
        if coding == "x-gzip":
            coding = "gzip"
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = min(max(float(value.strip()), 0.0), 1.0)
                except ValueError:
                    q = 1.0
        prefs[coding] = q
    return prefs


def choose_encoding(header: str | None, available: list[str]) -> str | None:
    """The content coding to answer with among ``available`` (ours, in our order of preference), or
    None for the file as it is. A coding with q=0 is refused; ``*`` stands for codings not listed."""
    prefs = accepted_encodings(header)
    best: str | None = None
    best_q = 0.0
    for coding in available:
        q = prefs.get(coding, prefs.get("*", 0.0))
        if q > best_q:
            best, best_q = coding, q
    return best


class WebClientResource(resource.Resource):
    isLeaf = True

    def __init__(self, root: str) -> None:
        super().__init__()
        self.root = os.path.realpath(root)

    def _variants(self, full: str) -> list[tuple[str, str]]:
        """(coding, path) of the precompressed copies of ``full`` that are at least as new as it."""
        mtime = os.stat(full).st_mtime
        found = []
        for coding, suffix in ENCODINGS:
            path = full + suffix
            try:
                if os.stat(path).st_mtime >= mtime:
                    found.append((coding, path))
            except OSError:
                continue
        return found

    def render(self, request: Request) -> Any:
        path = request.path.decode("utf-8", "replace")
        if path.startswith(API_PREFIXES):
            write_json(request, 404, {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"})
            return server.NOT_DONE_YET  # write_json finished the request
        if request.method not in (b"GET", b"HEAD"):
            write_json(request, 405, {"errcode": "M_UNRECOGNIZED", "error": "Method not allowed"})
            return server.NOT_DONE_YET
        rel = os.path.normpath(path.lstrip("/")) if path not in ("", "/") else "index.html"
        full = os.path.realpath(os.path.join(self.root, rel))
        if not full.startswith(self.root + os.sep) or not os.path.isfile(full) or full.endswith((".br", ".gz")):
            # Client-side routes get the app shell (and the compressed copies are not files of their own).
            full = os.path.join(self.root, "index.html")
            if not os.path.isfile(full):
                write_json(request, 404, {"errcode": "M_NOT_FOUND", "error": "Web client not built"})
                return server.NOT_DONE_YET
        name = os.path.basename(full)
        ctype = mimetypes.guess_type(full)[0] or "application/octet-stream"
        request.setHeader(b"Content-Type", ctype.encode())
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        if "/assets/" in full[len(self.root):] and name not in ("index.html",):
            request.setHeader(b"Cache-Control", IMMUTABLE)
        else:
            request.setHeader(b"Cache-Control", NO_CACHE)
        if name in ("sw.js", "service-worker.js"):
            request.setHeader(b"Service-Worker-Allowed", b"/")
        body_path = full
        variants = self._variants(full)
        if variants:
            request.setHeader(b"Vary", b"Accept-Encoding")
            header = request.getHeader("accept-encoding")
            coding = choose_encoding(header, [c for c, _ in variants])
            if coding is not None:
                body_path = dict(variants)[coding]
                request.setHeader(b"Content-Encoding", coding.encode())
        with open(body_path, "rb") as f:
            body = f.read()
        request.setHeader(b"Content-Length", str(len(body)).encode())
        return b"" if request.method == b"HEAD" else body


def attach_web_client(hs: HomeServer, router: Router) -> None:
    if hs.config.web_client.enabled:
        router.fallback = WebClientResource(hs.config.web_client.path)
