"""Content hashes of events (server-server API, "Calculating the content hash
for an event").

The content hash covers the complete unredacted event, so a receiver can tell
whether it was handed a redacted copy: the signature (over the redacted form,
which keeps `hashes`) still verifies but the content hash no longer matches.
"""

from __future__ import annotations

import hashlib
from typing import Any

from unpaddedbase64 import decode_base64, encode_base64

from homeserver.protocol.canonical_json import encode_canonical_json

# `unsigned`, `signatures` and `hashes` per the spec.  `age_ts`, `outlier` and
# `destinations` are legacy/internal keys Synapse also strips before hashing,
# so matching it keeps hashes of events relayed via old servers identical.
_KEYS_EXCLUDED_FROM_CONTENT_HASH = (
    "unsigned",
    "signatures",
    "hashes",
    "age_ts",
    "outlier",
    "destinations",
)


def compute_content_hash(event: dict[str, Any]) -> bytes:
    """The raw SHA-256 content hash of `event` (as found on the wire).

    Hashes the event exactly as given, so callers must not have added local
    keys (such as `event_id` for room versions 4+) to the dict.
    """
    stripped = {
        k: v for k, v in event.items() if k not in _KEYS_EXCLUDED_FROM_CONTENT_HASH
    }
    return hashlib.sha256(encode_canonical_json(stripped)).digest()


def add_content_hash(event: dict[str, Any]) -> dict[str, Any]:
    """Return a shallow copy of `event` with `hashes.sha256` set."""
    hashed = dict(event)
    hashes = dict(event.get("hashes") or {})
    hashes["sha256"] = encode_base64(compute_content_hash(event))
    hashed["hashes"] = hashes
    return hashed


def check_content_hash(event: dict[str, Any]) -> bool:
    """True if `hashes.sha256` is present, decodable and matches the event."""
    hashes = event.get("hashes")
    if not isinstance(hashes, dict):
        return False
    claimed = hashes.get("sha256")
    if not isinstance(claimed, str):
        return False
    try:
        claimed_bytes = decode_base64(claimed)
    except Exception:
        return False
    return claimed_bytes == compute_content_hash(event)
