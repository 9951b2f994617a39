"""A call: the participants of one LiveKit room and what they need to hear about each other."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from google.protobuf.message import DecodeError
from livekit.protocol import models, rtc

from .forwarding import PublishedTrack
from .ids import room_sid
from .participant import Participant

log = logging.getLogger(__name__)


class Room:
    def __init__(self, name: str, *, speaker_interval: float, on_empty: Callable[[Room], None]) -> None:
        self.name = name
        self.sid = room_sid()
        self.created = int(time.time())
        self.participants: dict[str, Participant] = {}
        self.speaker_interval = speaker_interval
        self.on_empty = on_empty
        self._speaking: dict[str, float] = {}
        self._speaker_task = asyncio.ensure_future(self._speaker_loop())

    def proto(self) -> models.Room:
        return models.Room(
            sid=self.sid,
            name=self.name,
            creation_time=self.created,
            creation_time_ms=self.created * 1000,
            num_participants=len(self.participants),
            num_publishers=sum(1 for p in self.participants.values() if p.published),
            empty_timeout=300,
            departure_timeout=20,
        )

    def others(self, p: Participant) -> list[Participant]:
        return [o for o in self.participants.values() if o is not p and not o.closed]

    def find_track(self, track_sid: str) -> PublishedTrack | None:
        for p in self.participants.values():
            t = p.published.get(track_sid)
            if t is not None:
                return t
        return None

    def by_identity(self, identity: str) -> Participant | None:
        return next((p for p in self.participants.values() if p.identity == identity), None)

    # ---- membership --------------------------------------------------------------------

    def add(self, p: Participant) -> list[models.ParticipantInfo]:
        """Register ``p``; return what goes into its JoinResponse.other_participants."""
        others = [o.info() for o in self.others(p)]
        self.participants[p.sid] = p
        return others

    def forward_data(self, sender: Participant, raw: bytes, reliable: bool) -> None:
        """Relay a LiveKit DataPacket, stamped with the sender's identity (never trusted)."""
        if not sender.grant.can_publish_data:
            return
        try:
            pkt = models.DataPacket.FromString(raw)
        except DecodeError:
            return
        pkt.participant_identity = sender.identity
        pkt.participant_sid = sender.sid
        dest = set(pkt.destination_identities)
        if pkt.WhichOneof("value") == "user":
            pkt.user.participant_identity = sender.identity
            pkt.user.participant_sid = sender.sid
            dest |= set(pkt.user.destination_identities)
            dest_sids = set(pkt.user.destination_sids)
        else:
            dest_sids = set()
        data = pkt.SerializeToString()
        for other in self.others(sender):
            if (dest or dest_sids) and other.identity not in dest and other.sid not in dest_sids:
                continue
            other.send_data(data, reliable)

    def activate(self, p: Participant) -> None:
        """Called once ``p`` has its JoinResponse: announce it, subscribe it to everything."""
        p.state = models.ParticipantInfo.State.ACTIVE
        p.bump()
        self.broadcast_update(p)
        if p.auto_subscribe:
            for other in self.others(p):
                for track in other.published.values():
                    p.subscribe(track)

    def broadcast_update(self, p: Participant, *, include_self: bool = False) -> None:
        msg = rtc.SignalResponse(update=rtc.ParticipantUpdate(participants=[p.info()]))
        for other in self.others(p):
            other.send(msg)
        if include_self and not p.closed:
            p.send(msg)

    def tracks_published(self, p: Participant, tracks: list[PublishedTrack]) -> None:
        # the update goes out before the subscriber offer, so clients know the publication
        # by the time its media arrives
        self.broadcast_update(p)
        for other in self.others(p):
            if other.auto_subscribe:
                for t in tracks:
                    other.subscribe(t)

    def tracks_unpublished(self, p: Participant, sids: list[str]) -> None:
        for other in self.others(p):
            for sid in sids:
                other.unsubscribe(sid)
        self.broadcast_update(p)

    async def remove(self, p: Participant) -> None:
        if self.participants.pop(p.sid, None) is None:
            return
        for other in self.others(p):
            for sid in p.published:
                other.unsubscribe(sid)
        await p.close()
        # state DISCONNECTED: clients remove the participant and its publications
        msg = rtc.SignalResponse(update=rtc.ParticipantUpdate(participants=[p.info()]))
        for other in self.others(p):
            other.send(msg)
        self._speaking.pop(p.sid, None)
        if not self.participants:
            self.close()
            self.on_empty(self)

    def close(self) -> None:
        self._speaker_task.cancel()

    # ---- active speakers ---------------------------------------------------------------

    async def _speaker_loop(self) -> None:
        while True:
            await asyncio.sleep(self.speaker_interval)
            try:
                self._update_speakers()
            except Exception:
                log.exception("speaker update failed")

    def _update_speakers(self) -> None:
        now: dict[str, float] = {}
        for p in list(self.participants.values()):
            speaking, level = p.meter.sample()
            if speaking:
                now[p.sid] = level
        changed = set(now) != set(self._speaking)
        if not changed:
            # only levels moved; LiveKit also sends these, but rarely matters for UIs
            self._speaking = now
            return
        speakers = [models.SpeakerInfo(sid=sid, level=lvl, active=True)
                    for sid, lvl in sorted(now.items(), key=lambda kv: -kv[1])]
        speakers += [models.SpeakerInfo(sid=sid, level=0.0, active=False)
                     for sid in self._speaking if sid not in now]
        self._speaking = now
        msg = rtc.SignalResponse(speakers_changed=rtc.SpeakersChanged(speakers=speakers))
        for p in list(self.participants.values()):
            if not p.closed:
                p.send(msg)


class RoomManager:
    def __init__(self, *, speaker_interval: float) -> None:
        self.rooms: dict[str, Room] = {}
        self.speaker_interval = speaker_interval

    def get(self, name: str) -> Room | None:
        return self.rooms.get(name)

    def get_or_create(self, name: str) -> Room:
        room = self.rooms.get(name)
        if room is None:
            room = self.rooms[name] = Room(name, speaker_interval=self.speaker_interval, on_empty=self._drop)
            log.info("room %s (%s) created", name, room.sid)
        return room

    def _drop(self, room: Room) -> None:
        if self.rooms.get(room.name) is room:
            del self.rooms[room.name]
            log.info("room %s closed", room.name)

    async def close_all(self) -> None:
        for room in list(self.rooms.values()):
            for p in list(room.participants.values()):
                p.send(rtc.SignalResponse(leave=rtc.LeaveRequest(
                    can_reconnect=False, reason=models.DisconnectReason.SERVER_SHUTDOWN,
                    action=rtc.LeaveRequest.Action.DISCONNECT)))
                await room.remove(p)
            room.close()
        self.rooms.clear()
