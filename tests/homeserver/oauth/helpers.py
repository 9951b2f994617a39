"""A minimal browser and OAuth client for driving WSPR's sign-in pages and OAuth 2.0 API
over real HTTP: cookies, CSRF tokens from the pages' forms, no automatic redirects."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import treq
from twisted.internet import reactor
from twisted.web.client import HTTPConnectionPool

CLIENT_METADATA = {
    "client_name": "Test client",
    "client_uri": "https://client.example.org/",
    "redirect_uris": ["https://app.client.example.org/callback"],
    "response_types": ["code"],
    "grant_types": ["authorization_code", "refresh_token"],
    "token_endpoint_auth_method": "none",
    "application_type": "web",
}
REDIRECT_URI = "https://app.client.example.org/callback"


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def scope(device_id: str, unstable: bool = False) -> str:
    if unstable:
        return f"urn:matrix:org.matrix.msc2967.client:api:* urn:matrix:org.matrix.msc2967.client:device:{device_id}"
    return f"urn:matrix:client:api:* urn:matrix:client:device:{device_id}"


def redirect_params(location: str) -> dict[str, str]:
    """The parameters a redirect to the client carries (query or fragment)."""
    parts = urlsplit(location)
    raw = parts.fragment or parts.query
    return {k: v[0] for k, v in parse_qs(raw).items()}


async def http(
    method: str, url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, list[str]], bytes]:
    resp = await treq.request(
        method,
        url.encode(),
        data=body,
        headers={k: [v] for k, v in (headers or {}).items()},
        allow_redirects=False,
        pool=HTTPConnectionPool(reactor, persistent=False),
    )
    content = await resp.content()
    hdrs = {k.decode().lower(): [v.decode() for v in vs] for k, vs in resp.headers.getAllRawHeaders()}
    return resp.code, hdrs, content


async def post_form(url: str, form: dict[str, str]) -> tuple[int, Any]:
    code, _, content = await http(
        "POST", url, body=urlencode(form).encode(), headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    return code, json.loads(content) if content else None


async def post_json(url: str, body: Any) -> tuple[int, Any]:
    code, _, content = await http("POST", url, body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    return code, json.loads(content) if content else None


class Browser:
    """Keeps cookies; follows nothing by itself."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.cookies: dict[str, str] = {}
        self.last_page = ""

    def _url(self, path: str) -> str:
        return path if "://" in path else self.base_url + path

    def _remember(self, headers: dict[str, list[str]]) -> None:
        for cookie in headers.get("set-cookie", []):
            name, _, rest = cookie.partition("=")
            self.cookies[name] = rest.split(";", 1)[0]

    def _headers(self) -> dict[str, str]:
        if not self.cookies:
            return {}
        return {"Cookie": "; ".join(f"{k}={v}" for k, v in self.cookies.items())}

    async def get(self, path: str) -> tuple[int, dict[str, list[str]], str]:
        code, headers, content = await http("GET", self._url(path), headers=self._headers())
        self._remember(headers)
        self.last_page = content.decode("utf-8", "replace")
        return code, headers, self.last_page

    async def post(self, path: str, form: dict[str, str], *, csrf: bool = True) -> tuple[int, dict[str, list[str]], str]:
        if csrf and "csrf" not in form:
            form = {**form, "csrf": self.csrf()}
        hdrs = {**self._headers(), "Content-Type": "application/x-www-form-urlencoded"}
        code, headers, content = await http("POST", self._url(path), body=urlencode(form).encode(), headers=hdrs)
        self._remember(headers)
        self.last_page = content.decode("utf-8", "replace")
        return code, headers, self.last_page

    def csrf(self) -> str:
        m = re.search(r'name="csrf" value="([^"]+)"', self.last_page)
        assert m, f"no CSRF token on the page: {self.last_page[:500]}"
        return m.group(1)

    async def follow(self, code: int, headers: dict[str, list[str]], limit: int = 10) -> str:
        """Follows this server's redirects; returns the first location off this server
        (the client's redirect URI), or "" when a page is shown."""
        for _ in range(limit):
            if code not in (301, 302, 303, 307):
                return ""
            location = urljoin(self.base_url + "/", headers["location"][0])
            if not location.startswith(self.base_url + "/"):
                return location
            code, headers, _ = await self.get(location)
        raise AssertionError("too many redirects")

    async def sign_in_and_consent(
        self, authorize_url: str, username: str, password: str, *, approve: bool = True
    ) -> str:
        """Opens the authorisation URL, signs in with a password if asked, consents;
        returns the redirect to the client."""
        code, headers, _ = await self.get(authorize_url)
        location = await self.follow(code, headers)
        if location:
            return location
        if 'name="step" value="password"' in self.last_page:
            code, headers, _ = await self.post("/_wspr/login", {"step": "password", "username": username, "password": password})
            location = await self.follow(code, headers)
            if location:
                return location
        assert "Allow access?" in self.last_page, self.last_page[:2000]
        code, headers, _ = await self.post("/_wspr/consent", {"decision": "approve" if approve else "deny"})
        return await self.follow(code, headers)


def authorize_url(base_url: str, client_id: str, device_id: str, challenge: str, **extra: str) -> str:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "scope": scope(device_id),
        "state": "st-" + secrets.token_hex(4),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "response_mode": "fragment",
    }
    params.update(extra)
    params = {k: v for k, v in params.items() if v is not None}
    return base_url.rstrip("/") + "/_wspr/oauth2/authorize?" + urlencode(params)


async def start_with_public_baseurl(test: Any, **overrides: Any) -> Any:
    """A homeserver whose public_baseurl is its real address (the OAuth metadata's URLs
    are built from it, and real clients follow them): a free port is picked first."""
    import socket

    from tests.support.wspr import start_homeserver

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return await start_homeserver(
        test,
        listeners={"client": {"bind_address": "127.0.0.1", "port": port}},
        public_baseurl=f"http://127.0.0.1:{port}/",
        **overrides,
    )
