"""The X-Matrix ``Authorization`` header of server-server requests (spec "Request
Authentication"), in Synapse's exact wire format::

    X-Matrix origin="a.example",destination="b.example",key="ed25519:abc",sig="..."

The signature covers the canonical JSON of ``{method, uri, origin, destination[, content]}``
where ``uri`` is the request target as sent (path plus query string).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from signedjson.key import SigningKey

from homeserver.protocol.signing import key_id, sign_json


@dataclass(frozen=True)
class XMatrixAuth:
    origin: str
    key: str
    sig: str
    destination: str | None


def request_json(method: str, uri: str, origin: str, destination: str, content: Any = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"method": method, "uri": uri, "origin": origin, "destination": destination}
    if content is not None:
        obj["content"] = content
    return obj


def sign_request(
    signing_key: SigningKey, origin: str, destination: str, method: str, uri: str, content: Any = None
) -> str:
    """The Authorization header value for one outbound request."""
    signed = sign_json(request_json(method, uri, origin, destination, content), origin, signing_key)
    kid = key_id(signing_key)
    sig = signed["signatures"][origin][kid]
    # Synapse writes origin, key, sig, then destination; parsers take any order.
    return f'X-Matrix origin="{origin}",key="{kid}",sig="{sig}",destination="{destination}"'


_PARAM_RE = re.compile(r'\s*([A-Za-z]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^,]*)\s*(?:,|$)')


def parse_auth_header(value: str) -> XMatrixAuth:
    """Parse one X-Matrix header; raises ValueError when it is not a complete one.

    Like Synapse: the scheme is case-insensitive, values may be quoted (with backslash
    escapes) or bare, and origin/key/sig are required; destination is optional for old
    senders.
    """
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "x-matrix" or not rest:
        raise ValueError("not an X-Matrix header")
    params: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        m = _PARAM_RE.match(rest, pos)
        if not m or m.end() == pos:
            raise ValueError("malformed X-Matrix parameters")
        name, raw = m.group(1).lower(), m.group(2).strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params[name] = raw
        pos = m.end()
    for required in ("origin", "key", "sig"):
        if not params.get(required):
            raise ValueError(f"X-Matrix header is missing {required}")
    return XMatrixAuth(params["origin"], params["key"], params["sig"], params.get("destination"))
