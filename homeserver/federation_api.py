"""What the homeserver needs from federation: ``hs.federation`` is a ``FederationAPI``.

The implementation is ``federation.service.Federation``, built and injected by
``app.py``; nothing in ``homeserver/`` imports ``federation/`` except that composition
root (and ``rest/client/media.py`` for its endpoints' wrapper). Every method raises
``MatrixError`` subclasses for failures the client should see (``FederationError``
carries the remote's status and errcode, ``FederationUnreachable`` is 502,
``FederationDenied`` 403).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from homeserver.events.event import Event
    from homeserver.media.records import RemoteMedia

# An endpoint handler as the federation router calls it: ``(request, **path groups)``.
RouteHandler = Callable[..., Awaitable[Any]]


class FederationAPI(Protocol):
    # -- membership of rooms this server is not in --------------------------------------

    async def remote_join(self, room_id: str, user_id: str, servers: list[str], content: dict[str, Any]) -> str:
        """Joins a local user through one of ``servers`` (make_join / send_join): the
        room's state is stored and usable when it returns. Returns the room id."""

    async def remote_leave(self, room_id: str, user_id: str, servers: list[str], content: dict[str, Any]) -> None:
        """Leaves, or rejects an invite to, a room this server is not in."""

    async def remote_knock(self, room_id: str, user_id: str, servers: list[str], content: dict[str, Any]) -> str:
        """Knocks on a room of another server; returns the room id."""

    async def countersign_invite(self, event: Event) -> Event:
        """A local invite of a remote user, countersigned by the invitee's server
        (runs before the invite is persisted)."""

    # -- history ------------------------------------------------------------------------

    async def backfill(self, room_id: str, oldest_event_id: str | None) -> bool:
        """Fetches older history from the room's other servers when /messages ran out;
        True when something new was stored."""

    # -- directory and profiles of other servers ------------------------------------------

    async def resolve_remote_alias(self, alias: str) -> tuple[str, list[str]]:
        """A remote alias's room id and the servers to join it through."""

    async def remote_profile(self, user_id: str) -> dict[str, Any]:
        """A remote user's profile (displayname, avatar_url)."""

    async def remote_public_rooms(self, server: str, body: dict[str, Any]) -> dict[str, Any]:
        """Another server's public room directory (the POST /publicRooms body)."""

    async def get_hierarchy(self, destination: str, room_id: str, suggested_only: bool = False) -> dict[str, Any]:
        """GET /hierarchy/{roomId} on ``destination``: a space it is in and its children."""

    async def get_version(self, destination: str) -> dict[str, Any]:
        """GET /version on ``destination``: its server software (createRoom's reachability check)."""

    async def remote_event_for_timestamp(self, room_id: str, ts: int, direction: str) -> tuple[str, int] | None:
        """(event id, origin_server_ts) of the event the room's other servers find closest
        to ``ts`` (GET /timestamp_to_event), backfilled into our timeline; None if none has one."""

    # -- end-to-end encryption -------------------------------------------------------------

    async def query_user_keys(self, destination: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /user/keys/query on ``destination``."""

    async def claim_user_keys(self, destination: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST /user/keys/claim on ``destination``."""

    def send_edu(self, destination: str, edu_type: str, content: dict[str, Any]) -> None:
        """Queues an EDU (device list updates, to-device messages); delivered in order,
        retried while the destination is down."""

    # -- OpenID (the call token service checks tokens of other servers' users) -------------

    async def openid_userinfo(self, destination: str, access_token: str) -> dict[str, Any]:
        """GET /openid/userinfo on ``destination``: ``{"sub": user_id}``."""

    # -- media ---------------------------------------------------------------------------

    async def fetch_remote_media(
        self, server_name: str, media_id: str, sink: Callable[[bytes], object], max_size: int, timeout_s: float
    ) -> RemoteMedia:
        """Downloads media of another server, handing its content to ``sink`` as it
        arrives. Errors as Synapse's: the origin's 404, 502 when it cannot be fetched
        (``M_TOO_LARGE`` past ``max_size`` bytes, nothing more is read), 403 when
        federation with it is not allowed."""

    async def fetch_remote_thumbnail(
        self,
        server_name: str,
        media_id: str,
        width: int,
        height: int,
        method: str,
        sink: Callable[[bytes], object],
        max_size: int,
        timeout_s: float,
    ) -> RemoteMedia | None:
        """The origin's thumbnail of its media, into ``sink``; None when it has none to
        give (the caller then thumbnails the original itself)."""

    # -- endpoints that homeserver modules serve to other servers ------------------------

    def authenticated(self, handler: RouteHandler) -> RouteHandler:
        """``handler(request, origin, **groups)`` wrapped for the federation router:
        X-Matrix authentication of the origin server, per-origin limits."""
