"""What every admin endpoint shares: the admin check (Synapse's
assert_requester_is_admin), the acting admin for the audit log, and Synapse's checks of
user and room ids and paging parameters."""

from __future__ import annotations

from typing import TYPE_CHECKING

from twisted.web.server import Request

from homeserver.handlers.audit import Actor
from homeserver.http.errors import Forbidden, InvalidParam, MatrixError
from homeserver.http.request import parse_boolean, parse_integer, user_agent

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.auth import Requester

ADMIN_V1 = "/_synapse/admin/v1"
ADMIN_V2 = "/_synapse/admin/v2"
ADMIN_V3 = "/_synapse/admin/v3"
# WSPR's own admin endpoints (Synapse has no audit log).
WSPR_ADMIN_V1 = "/_wspr/admin/v1"

# a path segment (Synapse's [^/]*)
SEG = "[^/]*"


async def require_admin(hs: HomeServer, request: Request) -> Requester:
    """The requester, who must be a server admin: 403 "You are not a server admin"
    otherwise, as Synapse."""
    requester = await hs.auth.get_user_by_req(request)
    user = await hs.store.get_user(requester.user_id)
    if user is None or not user.is_admin:
        raise Forbidden("You are not a server admin")
    return requester


def actor(requester: Requester, request: Request) -> Actor:
    return Actor.of(requester, user_agent(request))


def _check_id(value: str, sigil: str, kind: str) -> None:
    """Synapse's DomainSpecificString.from_string."""
    if not value.startswith(sigil):
        raise InvalidParam(f"Expected {kind} string to start with '{sigil}'")
    if ":" not in value[1:]:
        raise InvalidParam(f"Expected {kind} of the form '{sigil}localname:domain'")


def check_user_id(user_id: str) -> None:
    _check_id(user_id, "@", "UserID")


def check_local_user(hs: HomeServer, user_id: str, message: str) -> None:
    """A user id that names one of our users (400 with Synapse's message otherwise)."""
    check_user_id(user_id)
    if not hs.is_mine(user_id):
        raise MatrixError(400, "M_UNKNOWN", message)


def check_room_id(room_id: str) -> None:
    """Synapse's RoomID.is_valid, as its admin room endpoints check it."""
    if not room_id.startswith("!") or (":" not in room_id and len(room_id) < 2):
        raise MatrixError(400, "M_UNKNOWN", f"{room_id} is not a legal room ID")


# Matrix integers are JSON's safe integers; past them the databases overflow.
MAX_SAFE_INT = 2**53 - 1


def check_safe_int(value: int, name: str) -> int:
    if not -MAX_SAFE_INT <= value <= MAX_SAFE_INT:
        raise InvalidParam(f"{name} is out of range")
    return value


def has_arg(request: Request, name: str) -> bool:
    args: dict[bytes, list[bytes]] = request.args or {}
    return bool(args.get(name.encode("ascii")))


def optional_bool(request: Request, name: str) -> bool | None:
    """A boolean query parameter, None when absent (no filter)."""
    return parse_boolean(request, name) if has_arg(request, name) else None


def parse_paging(request: Request, default_limit: int = 100) -> tuple[int, int]:
    """``from`` and ``limit``, neither negative (Synapse's parse_integer)."""
    start = parse_integer(request, "from", 0)
    limit = parse_integer(request, "limit", default_limit)
    assert start is not None and limit is not None
    for name, value in (("from", start), ("limit", limit)):
        if value < 0:
            raise InvalidParam(f"Query parameter {name} must be a positive integer.")
    return start, limit
