"""Signing JSON and events (appendices "Signing JSON"; server-server API
"Signing Events"; v1/v2 and v3 event id signing rules; v5 signing key
validity).

Thin wrappers over `signedjson` so the rest of the server never touches key
objects' internals.  Nothing here fetches keys: callers look them up (and
enforce `valid_until_ts` as :func:`key_validity_ts` says) and pass
VerifyKey objects in.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from typing import Any

import signedjson.key
import signedjson.sign
from signedjson.key import SigningKey, VerifyKey
from signedjson.sign import SignatureVerifyException

from homeserver.protocol.event_hashing import add_content_hash
from homeserver.protocol.identifiers import server_name_of
from homeserver.protocol.redaction import redact_event
from homeserver.protocol.room_versions import RoomVersion, get_room_version

__all__ = [
    "SignatureError",
    "SigningKey",
    "VerifyKey",
    "decode_signing_key_base64",
    "decode_verify_key_base64",
    "encode_signing_key_base64",
    "encode_verify_key_base64",
    "generate_signing_key",
    "get_verify_key",
    "key_id",
    "key_validity_ts",
    "read_signing_keys",
    "required_signing_servers",
    "sign_event",
    "sign_json",
    "verify_event_signature",
    "verify_event_signatures",
    "verify_json",
    "verify_json_with_keys",
    "write_signing_keys",
]


class SignatureError(Exception):
    """A required signature is missing or does not verify."""


def domain_of(identifier: str) -> str:
    """Server name part of a user / room / event id ("@a:b:8448" -> "b:8448"),
    for naming a server that must sign: an id without one is an error."""
    domain = server_name_of(identifier)
    if not domain:
        raise ValueError(f"Identifier has no domain: {identifier!r}")
    return domain


# --- keys -----------------------------------------------------------------


def generate_signing_key(version: str) -> SigningKey:
    """A fresh ed25519 signing key with key id `ed25519:<version>`."""
    return signedjson.key.generate_signing_key(version)


def encode_signing_key_base64(key: SigningKey) -> str:
    return signedjson.key.encode_signing_key_base64(key)


def decode_signing_key_base64(algorithm: str, version: str, key_base64: str) -> SigningKey:
    return signedjson.key.decode_signing_key_base64(algorithm, version, key_base64)


def get_verify_key(key: SigningKey) -> VerifyKey:
    return signedjson.key.get_verify_key(key)


def encode_verify_key_base64(key: VerifyKey) -> str:
    return signedjson.key.encode_verify_key_base64(key)


def decode_verify_key_base64(algorithm: str, version: str, key_base64: str) -> VerifyKey:
    return signedjson.key.decode_verify_key_base64(algorithm, version, key_base64)


def key_id(key: SigningKey | VerifyKey) -> str:
    """The `<algorithm>:<version>` id under which the key signs."""
    return f"{key.alg}:{key.version}"


def read_signing_keys(text: str | Iterable[str]) -> list[SigningKey]:
    """Parse a signing key file (`ed25519 <version> <base64 seed>` per line).

    Blank lines are skipped, which signedjson itself does not do.
    """
    lines = text.splitlines() if isinstance(text, str) else text
    return signedjson.key.read_signing_keys(line for line in lines if line.strip())


def write_signing_keys(keys: Iterable[SigningKey]) -> str:
    """Serialise keys in the format read_signing_keys accepts."""
    sink = io.StringIO()
    signedjson.key.write_signing_keys(sink, list(keys))
    return sink.getvalue()


# --- plain JSON -------------------------------------------------------------


def _copy_signatures(obj: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    signatures = obj.get("signatures") or {}
    return {server: dict(sigs) for server, sigs in signatures.items()}


def sign_json(obj: Mapping[str, Any], server_name: str, signing_key: SigningKey) -> dict[str, Any]:
    """Return a copy of `obj` with `server_name`'s signature added.

    Existing signatures (from other servers or other keys) are preserved.
    """
    copy = dict(obj)
    copy["signatures"] = _copy_signatures(obj)
    return signedjson.sign.sign_json(copy, server_name, signing_key)


def verify_json(obj: Mapping[str, Any], server_name: str, verify_key: VerifyKey) -> None:
    """Raise SignatureError unless `obj` carries a valid signature by `verify_key`
    under `server_name`."""
    try:
        signedjson.sign.verify_signed_json(dict(obj), server_name, verify_key)
    except SignatureVerifyException as e:
        raise SignatureError(str(e)) from e
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        # Malformed `signatures` (e.g. a list) from a remote: just unsigned.
        raise SignatureError(f"Malformed signatures: {e}") from e


# --- events -----------------------------------------------------------------


def sign_event(
    event: Mapping[str, Any],
    room_version: RoomVersion | str,
    server_name: str,
    signing_key: SigningKey,
) -> dict[str, Any]:
    """Return a copy of `event` signed by `server_name`.

    The signature covers the redacted form (so it survives redaction).  If the
    event has no `hashes.sha256` yet the content hash is added first, because
    a signature over a hash-less event would pin nothing of its content;
    existing hashes are left alone so co-signing (e.g. a restricted join's
    authorising server) cannot invalidate the sender's signature.
    """
    rv = get_room_version(room_version)
    hashes = event.get("hashes")
    if not (isinstance(hashes, Mapping) and "sha256" in hashes):
        event = add_content_hash(dict(event))
    redacted = redact_event(event, rv)
    # signedjson mutates the `signatures` dict it finds, which redact_event
    # shares with the caller's event; give it a private one.
    redacted["signatures"] = {}
    signed_redacted = signedjson.sign.sign_json(redacted, server_name, signing_key)
    result = dict(event)
    signatures = _copy_signatures(event)
    for server, sigs in signed_redacted["signatures"].items():
        signatures.setdefault(server, {}).update(sigs)
    result["signatures"] = signatures
    return result


def verify_event_signature(
    event: Mapping[str, Any],
    room_version: RoomVersion | str,
    server_name: str,
    verify_key: VerifyKey,
) -> None:
    """Raise SignatureError unless `server_name` signed the redacted `event`
    with `verify_key`.  Works on both full and already-redacted copies.

    The event must be as on the wire: a locally attached `event_id` on a
    room version 3+ event would be covered by the check and fail it (in
    room versions 1 and 2 the id is part of the PDU and must be there).
    """
    rv = get_room_version(room_version)
    verify_json(redact_event(event, rv), server_name, verify_key)


def verify_json_with_keys(
    obj: Mapping[str, Any], server_name: str, verify_keys: Mapping[str, VerifyKey]
) -> None:
    """Check `server_name`'s signatures on `obj` against the keys we know for
    it (key id -> VerifyKey, already filtered for validity by the caller).

    Mirrors Synapse's keyring: the object must carry at least one ed25519
    signature from the server, at least one of those must be by a known key,
    and every signature by a known key must verify.  Signatures by unknown
    keys are ignored.
    """
    signatures = obj.get("signatures")
    server_sigs = signatures.get(server_name) if isinstance(signatures, Mapping) else None
    if not isinstance(server_sigs, Mapping):
        raise SignatureError(f"Not signed by {server_name}")
    key_ids = [k for k in server_sigs if isinstance(k, str) and k.startswith("ed25519:")]
    if not key_ids:
        raise SignatureError(f"Not signed with a supported algorithm by {server_name}")
    verified = False
    for kid in key_ids:
        verify_key = verify_keys.get(kid)
        if verify_key is None:
            continue
        if key_id(verify_key) != kid:
            # signedjson looks the signature up by the key's own id.
            verify_key = decode_verify_key_base64("ed25519", kid.split(":", 1)[1], encode_verify_key_base64(verify_key))
        verify_json(obj, server_name, verify_key)
        verified = True
    if not verified:
        raise SignatureError(f"No known key to verify {server_name}'s signature (key ids {key_ids})")


def verify_event_signatures(
    event: Mapping[str, Any],
    room_version: RoomVersion | str,
    keys_by_server: Mapping[str, Mapping[str, VerifyKey]],
) -> None:
    """Verify every server in required_signing_servers(event) has validly
    signed the redacted event, using `keys_by_server[server][key_id]`."""
    rv = get_room_version(room_version)
    redacted = redact_event(event, rv)
    for server in sorted(required_signing_servers(event, rv)):
        verify_json_with_keys(redacted, server, keys_by_server.get(server, {}))


def required_signing_servers(event: Mapping[str, Any], room_version: RoomVersion | str) -> set[str]:
    """Servers whose signature on `event` must be present and valid.

    Matches Synapse's `_check_sigs_on_pdu`:
    * the sender's server -- except for invites converted from a third-party
      invite, which may be sent by a different server than the sender's (the
      auth rules tie the sender to the m.room.third_party_invite instead);
    * in room versions 1 and 2, the server that chose the event id (the
      server in `event_id`; usually the sender's, but e.g. not for a join
      built by the resident server of a make_join) -- even for those invites;
    * for restricted joins, the server of `join_authorised_via_users_server`.
    """
    rv = get_room_version(room_version)
    servers: set[str] = set()
    content = event.get("content")
    if not isinstance(content, Mapping):
        content = {}
    membership = content.get("membership") if event.get("type") == "m.room.member" else None
    if not (membership == "invite" and "third_party_invite" in content):
        servers.add(domain_of(event["sender"]))
    if rv.event_id_in_pdu:
        servers.add(domain_of(event["event_id"]))
    authoriser = content.get("join_authorised_via_users_server")
    if rv.restricted_join_rule and membership == "join" and isinstance(authoriser, str):
        servers.add(domain_of(authoriser))
    return servers


def key_validity_ts(event: Mapping[str, Any], room_version: RoomVersion | str) -> int:
    """The time at which the keys verifying `event`'s signatures must be
    valid: its `origin_server_ts` from room version 5 ("Signing key validity
    period"), else 0 (any key the server ever published will do).

    Synapse passes exactly this to its keyring.  The spec's other v5 rule --
    count a key valid for at most 7 days past when it was fetched, however
    long its `valid_until_ts` -- belongs to the keyring that caches keys.
    """
    rv = get_room_version(room_version)
    if not rv.enforce_key_validity:
        return 0
    ts = event.get("origin_server_ts")
    return ts if type(ts) is int else 0
