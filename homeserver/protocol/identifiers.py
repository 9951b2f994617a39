"""Identifiers (appendices, "Server Name" and "Common Identifier Format").

The one place that takes a user, room, event or alias id apart.  The server
part is everything after the *first* colon, so a port stays with it
("@a:example.org:8448" -> "example.org:8448") -- Synapse's
`get_domain_from_id`, which decides what the federation compares.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "is_valid_server_name",
    "is_valid_user_id",
    "looks_like_user_id",
    "server_name_of",
]

_HOSTNAME_RE = re.compile(r"\A[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*\Z")
_IPV6_RE = re.compile(r"\A\[[0-9a-fA-F:.]{2,45}\]\Z")


def server_name_of(identifier: str) -> str:
    """The server part of `identifier`, or "" when it has no colon.

    "" never equals a real server name, so comparisons made with it fail
    closed; callers that must name a server (signature checks) refuse it.
    Room ids of room version 12 have no server part.
    """
    _, sep, server_name = identifier.partition(":")
    return server_name if sep else ""


def is_valid_server_name(server_name: str) -> bool:
    """Server name grammar (appendices): host [":" port]."""
    if not server_name:
        return False
    if server_name.startswith("["):
        end = server_name.find("]")
        if end == -1:
            return False
        host, rest = server_name[: end + 1], server_name[end + 1 :]
        if not _IPV6_RE.match(host):
            return False
        if not rest:
            return True
        if not rest.startswith(":"):
            return False
        port = rest[1:]
    else:
        host, sep, port = server_name.partition(":")
        if not _HOSTNAME_RE.match(host) or len(host) > 255:
            return False
        if not sep:
            return True
    return port.isascii() and port.isdigit() and 1 <= len(port) <= 5


def looks_like_user_id(user_id: Any) -> bool:
    """Synapse's `UserID.from_string`: the sigil and a colon, nothing more.

    Used where Synapse uses it (power level `users` keys), so that we accept
    exactly what it does.
    """
    return isinstance(user_id, str) and user_id.startswith("@") and ":" in user_id


def is_valid_user_id(user_id: Any) -> bool:
    """Sigil, ':' and a valid server name, at most 255 bytes (UserID.is_valid
    plus the length check Synapse applies to `additional_creators`)."""
    if not looks_like_user_id(user_id):
        return False
    if len(user_id.encode("utf-8")) > 255:
        return False
    return is_valid_server_name(server_name_of(user_id))
