"""PDU fan-out: our users' new events go to every other server in the room.

``on_events_persisted`` is a ``PersistedEventsListener`` of the event persister (wired
in ``app.py``): it runs after each commit of new timeline events, local or remote, and
queues our own users' events (never a remote event: it is not ours to echo) for the
room's joined servers, plus the target's server of a membership event (a kicked or
banned server hears of it)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from federation.destinations import RoomServers
from federation.sender.ordered_work import OrderedWork
from federation.sender.queue import FederationSender
from homeserver.events.event import Event
from homeserver.handlers.room_events import RoomInfo
from homeserver.util.ids import server_of

if TYPE_CHECKING:
    from homeserver.app import HomeServer


class PduFanout:
    def __init__(self, hs: HomeServer, sender: FederationSender, room_servers: RoomServers, work: OrderedWork) -> None:
        self.hs = hs
        self.sender = sender
        self.room_servers = room_servers
        self.work = work

    def on_events_persisted(self, events: list[Event], room: RoomInfo) -> None:
        if not self.hs.config.federation.enabled:
            return
        local = [e for e in events if self.hs.is_mine(e.sender) and not e.outlier and not e.rejected_reason]
        if not local:
            return
        room_id = room.room_id

        async def fan_out() -> None:
            dests = await self.room_servers.destinations(room_id)
            for ev in local:
                extra = set()
                if ev.type == "m.room.member" and ev.state_key and ":" in ev.state_key:
                    extra.add(server_of(ev.state_key))
                targets = (dests | extra) - {self.hs.server_name}
                if targets:
                    self.sender.send_pdu(sorted(targets), ev)

        self.work.run(fan_out)
