"""LiveKit-style object ids: a type prefix plus random base62 (clients check the prefixes)."""

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 12) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def participant_sid() -> str:
    return new_id("PA_")


def track_sid() -> str:
    return new_id("TR_")


def room_sid() -> str:
    return new_id("RM_")
