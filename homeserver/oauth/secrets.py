"""The sign-in secrets file (``oauth.secrets_path``, created at first start, mode 0600):
the OPAQUE server setup (the OPRF seed and the server's key pair) and the key under
which recovery codes are stored (HMAC-SHA256).

Every process of a server reads the same file. Losing it makes every OPAQUE password and
every recovery code useless (users then reset their password by e-mail), so back it up
with the database."""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
from dataclasses import dataclass

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SignInSecrets:
    # opaquepy's encoding of opaque-ke's ServerSetup (base64url).
    opaque_server_setup: str
    recovery_code_key: bytes

    @classmethod
    def load_or_create(cls, path: str) -> SignInSecrets:
        if not os.path.exists(path):
            _create(path)
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return cls(
            opaque_server_setup=data["opaque_server_setup"],
            recovery_code_key=base64.urlsafe_b64decode(data["recovery_code_key"]),
        )


def _create(path: str) -> None:
    from opaquepy import lib as opaque

    data = {
        "opaque_server_setup": opaque.create_setup(),
        "recovery_code_key": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    }
    tmp = f"{path}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    try:
        # A hard link fails if the file exists: two processes starting at once keep
        # the first one's secrets.
        os.link(tmp, path)
        logger.info("created the sign-in secrets in %s", path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
