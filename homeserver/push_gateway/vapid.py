"""VAPID (RFC 8292): the key pair that identifies this server to browsers' push services.

Browsers subscribe with the public key (``applicationServerKey``); every push carries a
short-lived ES256 JWT for the push service's origin, signed with the private key, so the
push service accepts pushes for those subscriptions from this server only. The key is a
PEM file in the data directory, created at first start (or by ``wspr init``) and kept
0600: losing it invalidates every browser's subscription (each browser subscribes again
when its user turns Web Push back on).
"""

from __future__ import annotations

import base64
import os
import time
from urllib.parse import urlparse

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02

# How long a push's JWT is valid (RFC 8292 allows up to 24 hours).
TOKEN_LIFETIME_S = 12 * 3600


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_or_create_key(path: str) -> ec.EllipticCurvePrivateKey:
    """The VAPID private key at ``path``, created (P-256, PKCS#8 PEM, mode 0600) if missing."""
    if not os.path.exists(path):
        key = ec.generate_private_key(ec.SECP256R1())
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        tmp = f"{path}.tmp{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
        os.replace(tmp, path)  # atomic: two processes starting at once end up with one key
    with open(path, "rb") as f:
        loaded = serialization.load_pem_private_key(f.read(), password=None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey) or not isinstance(loaded.curve, ec.SECP256R1):
        raise ValueError(f"{path}: not a P-256 private key")  # noqa: TRY004 (a bad file, not a bad argument)
    return loaded


def public_key_b64(key: ec.EllipticCurvePrivateKey) -> str:
    """The public key as browsers take it for ``applicationServerKey``: the uncompressed
    point, unpadded base64url."""
    return b64url(key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))


class VapidSigner:
    def __init__(self, key: ec.EllipticCurvePrivateKey, subject: str) -> None:
        self._vapid = Vapid02(private_key=key)
        self.subject = subject

    def authorization(self, endpoint: str, now: float | None = None) -> str:
        """The ``Authorization: vapid t=JWT,k=KEY`` header for a push to ``endpoint``."""
        parsed = urlparse(endpoint)
        claims = {
            "aud": f"{parsed.scheme}://{parsed.netloc}",
            "exp": int((now if now is not None else time.time()) + TOKEN_LIFETIME_S),
            "sub": self.subject,
        }
        return str(self._vapid.sign(claims)["Authorization"])
