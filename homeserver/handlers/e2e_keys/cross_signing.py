"""Cross-signing: uploading the master, self-signing and user-signing keys, and the
signatures clients upload (a device or master key of one's own, another user's master
key). The server checks what it must rely on, so a client cannot plant a forged
signature in someone else's key list: keys signed by the master key, signatures by the
key they claim."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeserver.handlers.e2e_keys.common import (
    as_dict,
    cross_signing_pubkey,
    is_signed_by,
    same_json,
    strip_unsigned,
)
from homeserver.http.errors import BadJson, InvalidParam, MatrixError

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.auth import Requester
    from homeserver.handlers.e2e_keys.remote_device_lists import RemoteDeviceLists


class CrossSigningHandler:
    def __init__(self, hs: HomeServer, remote: RemoteDeviceLists) -> None:
        self.hs = hs
        self.store = hs.store
        self.remote = remote

    async def upload_signing_keys(self, requester: Requester, body: dict[str, Any]) -> None:
        user_id = requester.user_id
        uploaded: dict[str, dict[str, Any]] = {}
        for field, keytype in (
            ("master_key", "master"),
            ("self_signing_key", "self_signing"),
            ("user_signing_key", "user_signing"),
        ):
            key = body.get(field)
            if key is None:
                continue
            if not isinstance(key, dict):
                raise BadJson(f"{field} must be an object")
            if key.get("user_id") != user_id:
                raise InvalidParam(f"{field} is not for the authenticated user")
            usage = key.get("usage")
            if not isinstance(usage, list) or keytype not in usage:
                raise InvalidParam(f"{field} must have usage {keytype!r}")
            if cross_signing_pubkey(key) is None:
                raise InvalidParam(f"{field} must contain exactly one ed25519 key")
            uploaded[keytype] = key
        existing = await self.store.e2e_get_cross_signing_keys([user_id])
        existing = existing.get(user_id, {})
        changes = {t: k for t, k in uploaded.items() if t not in existing or not same_json(existing[t], k)}
        if not changes:
            return  # re-uploading identical keys is allowed without auth (as in Synapse)
        if "master" in existing:
            # Replacing cross-signing keys needs the password; setting them up for the
            # first time does not (MSC3967, spec v1.11).
            await self.hs.auth.check_cross_signing_replacement(body, requester)
        master = uploaded.get("master") or existing.get("master")
        if master is None:
            raise InvalidParam("A master key is required before other cross-signing keys")
        master_pub = cross_signing_pubkey(master)
        assert master_pub is not None
        for keytype in ("self_signing", "user_signing"):
            key = uploaded.get(keytype)
            if key is not None and not is_signed_by(key, user_id, master_pub):
                raise MatrixError(400, "M_INVALID_SIGNATURE", f"The {keytype} key is not signed by the master key")
        pos = self.hs.streams.allocate()
        try:
            await self.store.e2e_set_cross_signing_keys(user_id, changes, pos)
        finally:
            self.hs.streams.complete(pos)
        await self.hs.devices.notify_device_change(user_id)

    async def upload_signatures(self, requester: Requester, body: dict[str, Any]) -> dict[str, Any]:
        signer = requester.user_id
        failures: dict[str, dict[str, Any]] = {}
        own_changed = False
        others_changed: set[str] = set()

        def fail(user_id: str, key_id: str, errcode: str, msg: str) -> None:
            failures.setdefault(user_id, {})[key_id] = {"errcode": errcode, "error": msg}

        my_keys = (await self.store.e2e_get_cross_signing_keys([signer])).get(signer, {})
        for target_user, objects in body.items():
            if not isinstance(objects, dict):
                raise BadJson("Each user's signatures must be an object")
            for key_id, obj in objects.items():
                if not isinstance(obj, dict):
                    fail(target_user, key_id, "M_INVALID_PARAM", "Signed object must be an object")
                    continue
                try:
                    if target_user == signer:
                        rows = await self._own_signature_rows(signer, key_id, obj, my_keys)
                        own_changed = own_changed or bool(rows)
                    else:
                        rows = await self._other_signature_rows(signer, target_user, key_id, obj, my_keys)
                        if rows:
                            others_changed.add(target_user)
                except MatrixError as e:
                    fail(target_user, key_id, e.errcode, e.msg)
                    continue
                if rows:
                    await self.store.e2e_store_signatures(signer, rows)
        if own_changed:
            await self.hs.devices.notify_device_change(signer)
        if others_changed:
            # Only the signer sees user-signing signatures: tell the signer's clients to
            # re-query those users.
            await self.remote.record_changes(sorted(others_changed), notify=[signer])
        return {"failures": failures}

    async def _own_signature_rows(
        self, user_id: str, key_id: str, obj: dict[str, Any], my_keys: dict[str, dict[str, Any]]
    ) -> list[tuple[str, str, str, str]]:
        master_pub = cross_signing_pubkey(my_keys.get("master"))
        if master_pub is not None and key_id == master_pub:
            # The master key, signed by one of the user's devices.
            if not same_json(strip_unsigned(obj), strip_unsigned(my_keys["master"])):
                raise MatrixError(400, "M_INVALID_SIGNATURE", "Master key does not match the stored one")
            rows = []
            for sig_key_id, sig in as_dict(as_dict(obj.get("signatures")).get(user_id)).items():
                alg, _, device_id = sig_key_id.partition(":")
                if alg != "ed25519" or device_id == master_pub or not isinstance(sig, str):
                    continue
                device = await self.store.e2e_get_device_key(user_id, device_id)
                device_pub = as_dict(as_dict(device).get("keys")).get(sig_key_id)
                if not isinstance(device_pub, str):
                    continue
                if not is_signed_by(obj, user_id, device_pub, key_version=device_id):
                    raise MatrixError(400, "M_INVALID_SIGNATURE", "Invalid signature")
                rows.append((sig_key_id, user_id, master_pub, sig))
            if not rows:
                raise MatrixError(400, "M_INVALID_SIGNATURE", "No signature by a known device")
            return rows
        # Otherwise: one of the user's devices, signed by their self-signing key.
        device = await self.store.e2e_get_device_key(user_id, key_id)
        if device is None:
            raise MatrixError(404, "M_NOT_FOUND", "Unknown device or key")
        ssk_pub = cross_signing_pubkey(my_keys.get("self_signing"))
        if ssk_pub is None:
            raise MatrixError(400, "M_MISSING_PARAM", "No self-signing key uploaded")
        if not same_json(strip_unsigned(obj), strip_unsigned(device)):
            raise MatrixError(400, "M_INVALID_SIGNATURE", "Device key does not match the stored one")
        sig_key_id = f"ed25519:{ssk_pub}"
        sig = as_dict(as_dict(obj.get("signatures")).get(user_id)).get(sig_key_id)
        if not isinstance(sig, str) or not is_signed_by(obj, user_id, ssk_pub):
            raise MatrixError(400, "M_INVALID_SIGNATURE", "Not signed by the self-signing key")
        return [(sig_key_id, user_id, key_id, sig)]

    async def _other_signature_rows(
        self, signer: str, target_user: str, key_id: str, obj: dict[str, Any], my_keys: dict[str, dict[str, Any]]
    ) -> list[tuple[str, str, str, str]]:
        # Another user's master key, signed by the signer's user-signing key.
        usk_pub = cross_signing_pubkey(my_keys.get("user_signing"))
        if usk_pub is None:
            raise MatrixError(400, "M_MISSING_PARAM", "No user-signing key uploaded")
        if self.hs.is_mine(target_user):
            target_master = (await self.store.e2e_get_cross_signing_keys([target_user])).get(target_user, {}).get("master")
        else:
            target_master = await self.remote.master_key(target_user)
        if target_master is None or cross_signing_pubkey(target_master) != key_id:
            raise MatrixError(404, "M_NOT_FOUND", "Unknown master key")
        if not same_json(strip_unsigned(obj), strip_unsigned(target_master)):
            raise MatrixError(400, "M_INVALID_SIGNATURE", "Master key does not match the stored one")
        sig_key_id = f"ed25519:{usk_pub}"
        sig = as_dict(as_dict(obj.get("signatures")).get(signer)).get(sig_key_id)
        if not isinstance(sig, str) or not is_signed_by(obj, signer, usk_pub):
            raise MatrixError(400, "M_INVALID_SIGNATURE", "Not signed by the user-signing key")
        return [(sig_key_id, target_user, key_id, sig)]
