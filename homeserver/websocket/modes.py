"""What a socket streams, in each of its two modes. Neither computes anything itself: the
sync mode asks ``hs.sync.current_sync`` (the /sync response from a token), the sliding
sync mode ``hs.sliding_sync.current_sync`` (the response from a ``pos``).

* ``sync``: frames are /sync responses, each from the previous frame's token: a client
  resuming with the last token it processed gets exactly what it did not process, as a
  /sync long-poll would. Tokens need no server memory, so this survives restarts.
  Frames may be sent ahead of acknowledgements (up to the window); to-device messages
  are deleted only once a token past them is acknowledged.
* ``sliding_sync``: frames are sliding sync responses of one connection. The connection
  store keeps the state of the position a request continues from and drops the others,
  so the next frame is computed only once the previous one is acknowledged (a window
  of one), and a client resuming with the last pos it processed continues exactly, as
  an HTTP client retrying a request does. After a server restart the position is
  unknown (M_UNKNOWN_POS) and the client starts again, as over HTTP.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from homeserver.handlers.filtering import SyncFilter
from homeserver.handlers.sliding_sync.config import SlidingSyncRequest, SlidingSyncToken
from homeserver.handlers.sync import TO_DEVICE_LIMIT, SyncToken
from homeserver.http.errors import MatrixError

if TYPE_CHECKING:
    from homeserver.app import HomeServer
    from homeserver.handlers.auth import Requester


@dataclass(frozen=True)
class Frame:
    token: str
    data: dict[str, Any]
    # The response stopped short (a full page of to-device messages): compute the next
    # one without waiting for a wake-up.
    more: bool = False


class SyncMode:
    name = "sync"

    def __init__(self, hs: HomeServer, since: SyncToken | None, sync_filter: SyncFilter, full_state: bool) -> None:
        self.hs = hs
        self.since = since
        self.filter = sync_filter
        self.full_state = full_state
        # What the last acknowledgement let go of; the first one also deletes what the
        # subscription's since had already acknowledged.
        self.acked_to_device = 0

    @staticmethod
    def bounded(hs: HomeServer, token: SyncToken) -> SyncToken:
        """A token from before a restart can be ahead of this server's typing serial (it
        starts at 0 again) or, with a lost commit, of its stream: read those parts as now."""
        typing = token.typing if token.typing <= hs.typing.serial else 0
        return SyncToken(min(token.stream, hs.streams.current), typing, token.to_device)

    @property
    def token(self) -> str | None:
        return str(self.since) if self.since is not None else None

    @property
    def window(self) -> int | None:
        return None  # the configured one

    async def next_frame(self, requester: Requester) -> Frame | None:
        up_to = self.hs.streams.current
        typing_serial = self.hs.typing.serial
        initial = self.since is None
        result, empty = await self.hs.sync.current_sync(
            requester, self.since, self.filter, up_to, typing_serial, full_state=self.full_state
        )
        self.full_state = False
        # An empty response moves the position on without a frame: nothing for this
        # user lies between, so a client resuming from the older token loses nothing.
        self.since = SyncToken.parse(result["next_batch"])
        if empty and not initial:
            return None
        return Frame(result["next_batch"], result, more=len(result["to_device"]["events"]) >= TO_DEVICE_LIMIT)

    def acknowledged(self, token: str) -> int | None:
        """The to-device position the ack lets go of (None: nothing more to delete)."""
        try:
            to_device = SyncToken.parse(token).to_device
        except MatrixError:
            return None
        if to_device <= self.acked_to_device:
            return None
        self.acked_to_device = to_device
        return to_device


class SlidingSyncMode:
    name = "sliding_sync"

    def __init__(self, hs: HomeServer, request: SlidingSyncRequest, pos: SlidingSyncToken | None) -> None:
        self.hs = hs
        self.request = request
        self.from_token = pos
        # Sent, not yet acknowledged: its position and its to-device next_batch.
        self._pending: tuple[SlidingSyncToken, str | None] | None = None
        # A first frame, and the first after the client changed its request, are sent
        # even without updates (the HTTP request would be answered at once).
        self._force = True

    @property
    def token(self) -> str | None:
        return str(self.from_token) if self.from_token is not None else None

    @property
    def window(self) -> int | None:
        return 1

    def update(self, request: SlidingSyncRequest) -> None:
        """A new request body (other lists, ranges, subscriptions). The to-device position
        stays the one the server tracks."""
        self.request = _with_to_device_since(request, _to_device_since(self.request))
        self._force = True

    async def next_frame(self, requester: Requester) -> Frame | None:
        up_to = self.hs.streams.current
        typing_serial = self.hs.typing.serial
        result = await self.hs.sliding_sync.current_sync(requester, self.request, self.from_token, up_to, typing_serial)
        if not (result.has_updates or self._force):
            return None
        self._force = False
        data = result.to_json()
        to_device = data["extensions"].get("to_device")
        next_batch = to_device.get("next_batch") if to_device else None
        self._pending = (result.pos, next_batch)
        config = self.request.extensions.to_device
        more = bool(to_device) and config is not None and len(to_device["events"]) >= min(config.limit, 100)
        return Frame(str(result.pos), data, more=more)

    def acknowledged(self, token: str) -> int | None:
        """Continues from the acknowledged position, and lets go of the to-device messages
        the frame carried (the next computation's since would too: the client may not
        come back for it)."""
        if self._pending is None or token != str(self._pending[0]):
            return None
        self.from_token, next_batch = self._pending
        self._pending = None
        if next_batch is None:
            return None
        self.request = _with_to_device_since(self.request, next_batch)
        return int(next_batch)


def _to_device_since(request: SlidingSyncRequest) -> str | None:
    config = request.extensions.to_device
    return config.since if config is not None else None


def _with_to_device_since(request: SlidingSyncRequest, since: str | None) -> SlidingSyncRequest:
    config = request.extensions.to_device
    if config is None or since is None or config.since == since:
        return request
    extensions = dataclasses.replace(request.extensions, to_device=dataclasses.replace(config, since=since))
    return dataclasses.replace(request, extensions=extensions)
