"""``org.matrix.login.jwt``: a legacy login with a JWT from the organisation's own
identity provider, configured and checked as Synapse's ``jwt_config`` (secret or public
key, algorithm, subject claim, optional display-name claim, issuer, audiences; two
minutes of clock skew allowed; an ``aud`` claim is refused unless audiences are set).
Errors are Synapse's: 403 ``M_FORBIDDEN`` with "JWT validation failed: ...".
"""

from __future__ import annotations

from typing import Any

from joserfc import jwt
from joserfc.errors import BadSignatureError, JoseError
from joserfc.jwk import import_key
from joserfc.jwt import JWTClaimsRegistry

from homeserver.config import JwtLoginConfig
from homeserver.http.errors import Forbidden

LEEWAY_S = 120


def _key(config: JwtLoginConfig) -> Any:
    alg = config.algorithm
    if alg.startswith("HS"):
        return import_key(config.secret.encode("utf-8"), "oct")
    if alg.startswith(("RS", "PS")):
        return import_key(config.secret, "RSA")  # a PEM public key
    if alg in ("EdDSA", "Ed25519", "Ed448"):
        return import_key(config.secret, "OKP")
    return import_key(config.secret, "EC")


def validate_login_token(config: JwtLoginConfig, token: Any) -> tuple[str, str | None]:
    """The (subject, display name) a valid login token names; 403 otherwise."""
    if not isinstance(token, str):
        raise Forbidden("Token field for JWT is missing")
    try:
        decoded = jwt.decode(token, _key(config), algorithms=[config.algorithm])
    except BadSignatureError:
        raise Forbidden("JWT validation failed: Signature verification failed") from None
    except (JoseError, ValueError) as e:
        raise Forbidden(f"JWT validation failed: {e}") from None
    options: dict[str, Any] = {}
    if config.issuer is not None:
        options["iss"] = {"essential": True, "value": config.issuer}
    if config.audiences:
        options["aud"] = {"essential": True, "values": list(config.audiences)}
    try:
        JWTClaimsRegistry(leeway=LEEWAY_S, **options).validate(decoded.claims)
        if decoded.claims.get("aud") is not None and not config.audiences:
            # Synapse: an aud claim with no audiences configured fails.
            raise Forbidden("JWT validation failed: invalid_claim: Invalid claim 'aud'")
    except JoseError as e:
        raise Forbidden(f"JWT validation failed: {e}") from None
    subject = decoded.claims.get(config.subject_claim)
    if not isinstance(subject, str) or not subject:
        raise Forbidden("Invalid JWT")
    name = decoded.claims.get(config.display_name_claim) if config.display_name_claim else None
    return subject, name if isinstance(name, str) else None
