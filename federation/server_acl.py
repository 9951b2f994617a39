"""Server ACLs (``m.room.server_acl``): which servers may take part in a room.

``server_acl_allows`` is the pure rule (matching Synapse's ``server_matches_acl_event``):
the port is stripped, ``deny`` wins over ``allow``, no matching ``allow`` means denied,
globs use ``*``/``?`` case-insensitively, and ``allow_ip_literals: false`` refuses
IPv4/IPv6 literal server names. ``check_server_acl`` applies it to a room we know.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from homeserver.http.errors import Forbidden

if TYPE_CHECKING:
    from homeserver.app import HomeServer

_IPV4_RE = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$")


def strip_port(server_name: str) -> str:
    if server_name.startswith("["):
        end = server_name.find("]")
        return server_name[: end + 1] if end != -1 else server_name
    return server_name.rsplit(":", 1)[0] if ":" in server_name else server_name


@lru_cache(maxsize=1024)
def _glob_regex(glob: str) -> re.Pattern[str]:
    parts = []
    for ch in glob:
        if ch == "*":
            parts.append(".*?")
        elif ch == "?":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return re.compile(r"\A" + "".join(parts) + r"\Z", re.IGNORECASE | re.DOTALL)


def _matches(server: str, entry: Any) -> bool:
    return isinstance(entry, str) and bool(_glob_regex(entry).match(server))


def server_acl_allows(acl_content: Mapping[str, Any] | None, server_name: str) -> bool:
    """Whether ``server_name`` (with or without port) passes the ACL content."""
    if acl_content is None:
        return True
    host = strip_port(server_name)
    allow_ip = acl_content.get("allow_ip_literals", True)
    if not isinstance(allow_ip, bool):
        allow_ip = True
    if not allow_ip and (host.startswith("[") or _IPV4_RE.match(host)):
        return False
    deny = acl_content.get("deny", [])
    if not isinstance(deny, list):
        deny = []
    allow = acl_content.get("allow", [])
    if not isinstance(allow, list):
        allow = []
    if any(_matches(host, e) for e in deny):
        return False
    return any(_matches(host, e) for e in allow)


async def room_acl_content(hs: HomeServer, room_id: str) -> dict[str, Any] | None:
    ev = await hs.rooms.get_current_state_event(room_id, "m.room.server_acl", "")
    if ev is None or ev.rejected_reason:
        return None
    content = ev.content
    return content if isinstance(content, dict) else None


async def check_server_acl(hs: HomeServer, room_id: str, origin: str) -> None:
    """Raise 403 M_FORBIDDEN when the room's ACL bans ``origin`` (rooms we don't know pass)."""
    if await hs.rooms.get_room(room_id) is None:
        return
    if not server_acl_allows(await room_acl_content(hs, room_id), origin):
        raise Forbidden("Server is banned from room")
