"""Serves the PWA (frontend/dist) at ``/``, with cache headers that suit a service worker:
hashed assets are immutable, the shell and the worker itself are always revalidated."""

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

mimetypes.add_type("application/wasm", ".wasm")
mimetypes.add_type("application/manifest+json", ".webmanifest")
mimetypes.add_type("text/javascript", ".js")
mimetypes.add_type("text/javascript", ".mjs")


class WebClientResource(resource.Resource):
    isLeaf = True

    def __init__(self, root: str) -> None:
        super().__init__()
        self.root = os.path.realpath(root)

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
        if not full.startswith(self.root + os.sep) or not os.path.isfile(full):
            # Client-side routes get the app shell.
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
        with open(full, "rb") as f:
            body = f.read()
        request.setHeader(b"Content-Length", str(len(body)).encode())
        return b"" if request.method == b"HEAD" else body


def attach_web_client(hs: "HomeServer", router: Router) -> None:
    if hs.config.web_client.enabled:
        router.fallback = WebClientResource(hs.config.web_client.path)
