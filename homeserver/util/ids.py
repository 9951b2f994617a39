"""Matrix identifiers: parsing, validation and random generation."""

from __future__ import annotations

import hashlib
import re
import secrets
import string
import time

from homeserver.protocol.identifiers import server_name_of

# The historical user id grammar Synapse accepts for remote users; local registration uses
# the strict one.
_LOCALPART_STRICT = re.compile(r"^[a-z0-9._=\-/+]+$")
_SERVER_NAME = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.\-]+)(:[0-9]{1,5})?$")

MAX_ID_LENGTH = 255


def now_ms() -> int:
    return int(time.time() * 1000)


def random_string(length: int, alphabet: str = string.ascii_letters) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def new_token(prefix: str) -> str:
    """An opaque bearer token with ~190 bits of entropy."""
    return f"{prefix}_{secrets.token_urlsafe(24)}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def split_id(identifier: str, sigil: str) -> tuple[str, str]:
    """Splits ``@local:server`` style ids; raises ValueError if malformed."""
    if len(identifier) < 3 or identifier[0] != sigil or ":" not in identifier:
        raise ValueError(f"not a valid {sigil} identifier: {identifier!r}")
    server = server_name_of(identifier)
    local = identifier[1 : len(identifier) - len(server) - 1]
    if not server or not _SERVER_NAME.match(server):
        raise ValueError(f"invalid server name in {identifier!r}")
    return local, server


def is_valid_user_id(user_id: str) -> bool:
    try:
        local, _ = split_id(user_id, "@")
    except ValueError:
        return False
    return bool(local) and len(user_id) <= MAX_ID_LENGTH and all(0x21 <= ord(c) <= 0x7E for c in local)


def is_valid_server_name(name: str) -> bool:
    return bool(_SERVER_NAME.match(name))


def is_valid_room_id(room_id: str) -> bool:
    if not room_id.startswith("!") or len(room_id) > MAX_ID_LENGTH:
        return False
    # v12 room ids have no server part.
    return ":" in room_id or len(room_id) > 10


def is_valid_alias(alias: str) -> bool:
    try:
        local, _ = split_id(alias, "#")
    except ValueError:
        return False
    return bool(local) and len(alias) <= MAX_ID_LENGTH


# The server part of an id ("" without one): the protocol package's one parser.
server_of = server_name_of


def check_localpart(localpart: str) -> str | None:
    """Why a localpart cannot be registered, or None if it can."""
    if not localpart:
        return "User ID cannot be empty"
    if not _LOCALPART_STRICT.match(localpart):
        return "User ID can only contain characters a-z, 0-9, or '=_-./+'"
    if localpart.startswith("_"):
        return "User ID may not begin with _"
    return None
