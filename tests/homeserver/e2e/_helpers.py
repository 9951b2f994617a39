"""Shared helpers for the E2EE tests: fake device keys and cross-signing keys signed
with real ed25519 keys (signedjson), so the server's signature checks are exercised."""

from __future__ import annotations

from typing import Any

import signedjson.key
import signedjson.sign

from tests.support.wspr import MatrixClient

# One-time and fallback keys must look signed (the server checks the shape, not the
# signature: only the claiming client can check it against the device's key).
SIGS = {"@someone:example.org": {"ed25519:DEVICE": "c2lnbmF0dXJl"}}


class Ed25519:
    """An ed25519 key whose key id is ``ed25519:<name>`` (a device id, or the public key
    itself for cross-signing keys)."""

    def __init__(self, name: str | None = None) -> None:
        seed = signedjson.key.generate_signing_key("tmp")
        self.public = signedjson.key.encode_verify_key_base64(signedjson.key.get_verify_key(seed))
        self.name = name or self.public
        self.key = signedjson.key.decode_signing_key_base64(
            "ed25519", self.name, signedjson.key.encode_signing_key_base64(seed)
        )

    @property
    def key_id(self) -> str:
        return f"ed25519:{self.name}"

    def sign(self, obj: dict[str, Any], user_id: str) -> dict[str, Any]:
        copy = dict(obj)
        copy["signatures"] = {u: dict(s) for u, s in (obj.get("signatures") or {}).items()}
        copy.pop("unsigned", None)
        signed = signedjson.sign.sign_json(copy, user_id, self.key)
        if "unsigned" in obj:
            signed["unsigned"] = obj["unsigned"]
        return signed


def device_keys(client: MatrixClient, ed: Ed25519) -> dict[str, Any]:
    keys = {
        "user_id": client.user_id,
        "device_id": client.device_id,
        "algorithms": ["m.olm.v1.curve25519-aes-sha2", "m.megolm.v1.aes-sha2"],
        "keys": {f"curve25519:{client.device_id}": "curve-" + ed.public[:10], ed.key_id: ed.public},
    }
    return ed.sign(keys, client.user_id)


def cross_signing_key(user_id: str, ed: Ed25519, usage: str) -> dict[str, Any]:
    return {"user_id": user_id, "usage": [usage], "keys": {ed.key_id: ed.public}}
