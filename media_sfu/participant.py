"""One participant in a call: its two peer connections, published tracks and subscriptions.

LiveKit's v0 (``/rtc``) model: the *publisher* PC carries media from the client, the client
offers and we answer; the *subscriber* PC carries media to the client, we offer and the
client answers. Both use MAX_BUNDLE (aiortc#1414: with BALANCED, later transceivers of one kind
can stay unbundled and carry nothing).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCDataChannel,
    RTCPeerConnection,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from livekit.protocol import models, rtc

from . import aiortc_internals as internals
from . import simulcast
from .aiortc_internals import ForwardingSender, ReceiverTap, SilentTrack, is_rtx
from .forwarding import DownTrack, PublishedTrack
from .ice import IcePolicy, policy_applied
from .ids import participant_sid, track_sid
from .speakers import AudioLevelMeter
from .tokens import AccessClaims

if TYPE_CHECKING:
    from .room import Room

log = logging.getLogger(__name__)

PUBLISHER = rtc.SignalTarget.PUBLISHER
SUBSCRIBER = rtc.SignalTarget.SUBSCRIBER


def _pc_config() -> RTCConfiguration:
    # no STUN: the SFU's candidates come from its configured public address; aiortc's default
    # (a Google STUN server) would stall every gathering for seconds without internet
    return RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)


class Participant:
    def __init__(
        self,
        room: Room,
        claims: AccessClaims,
        send: Callable[[rtc.SignalResponse], None],
        *,
        ice: IcePolicy | None,
        pli_interval: float,
        auto_subscribe: bool = True,
        simulcast: bool = True,
        dynacast: bool = True,
    ) -> None:
        self.room = room
        self.sid = participant_sid()
        self.identity = claims.identity
        self.name = claims.name
        self.metadata = claims.metadata
        self.attributes = dict(claims.attributes)
        self.grant = claims.video
        self.send = send
        self.ice = ice
        self.pli_interval = pli_interval
        self.auto_subscribe = auto_subscribe
        self.simulcast = simulcast
        self.dynacast = dynacast
        self.state = models.ParticipantInfo.State.JOINING
        self.version = 1
        self.joined_at_ms = int(time.time() * 1000)
        self.closed = False
        # track sid -> TrackInfo for every track announced by add_track
        self.track_infos: dict[str, models.TrackInfo] = {}
        self.pending_by_cid: dict[str, models.TrackInfo] = {}
        self.published: dict[str, PublishedTrack] = {}
        self._by_mid: dict[str | None, str] = {}  # publisher PC mid -> published track sid
        self._rids_by_mid: dict[str, list[str]] = {}  # simulcast layers in the last offer
        self.downtracks: dict[str, DownTrack] = {}
        # subscriber PC transceiver of each down-track (track sid), made inactive on unsubscribe
        self._down_transceivers: dict[str, RTCRtpTransceiver] = {}
        self.meter = AudioLevelMeter()
        self.publisher_pc: RTCPeerConnection | None = None
        self.subscriber_pc: RTCPeerConnection | None = None
        self._pending_candidates: dict[int, list[dict[str, Any]]] = {PUBLISHER: [], SUBSCRIBER: []}
        self._offer_id = 0
        self._awaiting_answer = False
        self._negotiation_needed = False
        self._negotiation_task: asyncio.Task[None] | None = None
        self.on_failed: Callable[[Participant], None] | None = None
        # LiveKit data packets: received on the client's channels of the publisher PC, sent
        # on the SFU's channels of the subscriber PC (label -> channel / pending messages)
        self.on_data: Callable[[Participant, bytes, bool], None] | None = None
        self._down_channels: dict[str, RTCDataChannel] = {}
        self._down_pending: dict[str, list[bytes]] = {"_reliable": [], "_lossy": []}

    # ---- state -------------------------------------------------------------------------

    def info(self) -> models.ParticipantInfo:
        tracks = [self.track_infos[sid] for sid in self.published]
        return models.ParticipantInfo(
            sid=self.sid,
            identity=self.identity,
            name=self.name,
            metadata=self.metadata,
            attributes=self.attributes,
            state=self.state,
            tracks=tracks,
            joined_at=self.joined_at_ms // 1000,
            joined_at_ms=self.joined_at_ms,
            version=self.version,
            is_publisher=bool(tracks),
            permission=models.ParticipantPermission(
                can_subscribe=self.grant.can_subscribe,
                can_publish=self.grant.can_publish,
                can_publish_data=self.grant.can_publish_data,
                can_update_metadata=self.grant.can_update_own_metadata,
                hidden=self.grant.hidden,
            ),
        )

    def bump(self) -> None:
        # clients drop updates whose version is not above the one they hold
        self.version += 1

    # ---- publishing --------------------------------------------------------------------

    def add_track(self, req: rtc.AddTrackRequest) -> PublishedTrack | None:
        """Announce a track; returns it if its media is already arriving (offer came first)."""
        if not self.grant.can_publish:
            log.info("%s: add_track refused, no canPublish", self.identity)
            return None
        info = models.TrackInfo(
            sid=track_sid(),
            type=req.type,
            name=req.name,
            muted=req.muted,
            width=req.width,
            height=req.height,
            source=req.source,
            disable_dtx=req.disable_dtx,
            stereo=req.stereo,
            disable_red=req.disable_red,
            # clients run their frame cryptors only if the server echoes this (E2EE)
            encryption=req.encryption,
            stream=req.stream,
            layers=list(req.layers),
            audio_features=list(req.audio_features),
            version=models.TimedVersion(unix_micro=int(time.time() * 1e6)),
        )
        if req.type == models.TrackType.VIDEO:
            info.mime_type = "video/VP8"
        elif req.type == models.TrackType.AUDIO:
            info.mime_type = "audio/opus"
        self.track_infos[info.sid] = info
        self.pending_by_cid[req.cid] = info
        self.send(rtc.SignalResponse(track_published=rtc.TrackPublishedResponse(cid=req.cid, track=info)))
        # the client's offer may already carry this track's m-line (add_track arrived late)
        pc = self.publisher_pc
        if pc is not None and pc.remoteDescription is not None:
            for t in pc.getTransceivers():
                if (t.kind in ("audio", "video") and t.mid not in self._by_mid
                        and internals.offer_direction(t) in ("recvonly", "sendrecv")):
                    published = self._match_track(t, None, self._rids_by_mid.get(t.mid or ""))
                    if published is not None:
                        return published
        return None

    def _ensure_publisher_pc(self) -> RTCPeerConnection:
        if self.publisher_pc is None:
            pc = RTCPeerConnection(_pc_config())
            pc.on("connectionstatechange", lambda: self._on_pc_state(pc, "publisher"))
            pc.on("datachannel", self._on_client_channel)
            self.publisher_pc = pc
        return self.publisher_pc

    async def handle_offer(self, sd: rtc.SessionDescription) -> tuple[list[PublishedTrack], list[str]]:
        """Answer the client's publisher offer.

        Returns (tracks that started being received, sids of tracks the client stopped
        sending). Matching is done on the offer itself rather than on aiortc's "track"
        events, because libwebrtc reuses a stopped m-line for the next track and aiortc fires
        no new event for it.
        """
        pc = self._ensure_publisher_pc()
        with policy_applied(self.ice):
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sd.sdp, type="offer"))
        track_ids = internals.offered_track_ids(sd.sdp)
        rids_by_mid = simulcast.offered_rids_by_mid(sd.sdp) if self.simulcast else {}
        self._rids_by_mid = rids_by_mid
        new_tracks: list[PublishedTrack] = []
        stopped: list[str] = []
        for transceiver in pc.getTransceivers():
            if transceiver.kind not in ("audio", "video"):
                continue
            # keep one codec (the client's first choice) and its RTX: that is what it will send
            # and what every subscriber's down-track is negotiated for
            codecs = internals.negotiated_codecs(transceiver)
            media = [c for c in codecs if not is_rtx(c)]
            if media:
                first = media[0]
                internals.keep_codecs(transceiver, [first] + [
                    c for c in codecs if is_rtx(c) and c.parameters.get("apt") == first.payloadType
                ])
            receiving = internals.offer_direction(transceiver) in ("recvonly", "sendrecv")
            current = self._by_mid.get(transceiver.mid)
            msid_track = track_ids.get(transceiver.mid)
            if current is not None:
                published = self.published.get(current)
                if not receiving or (published and msid_track and published.client_track_id
                                     and msid_track != published.client_track_id):
                    stopped.append(current)
                    self._unpublish(current)
                    current = None
            if receiving and current is None:
                published = self._match_track(transceiver, msid_track, rids_by_mid.get(transceiver.mid or ""))
                if published is not None:
                    new_tracks.append(published)
        await self._flush_candidates(PUBLISHER)
        with policy_applied(self.ice):
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)
        answer_sdp = simulcast.accept_layers(sd.sdp, pc.localDescription.sdp, all_layers=self.simulcast)
        self.send(rtc.SignalResponse(answer=rtc.SessionDescription(type="answer", sdp=answer_sdp, id=sd.id)))
        for sid in stopped:
            self.send(rtc.SignalResponse(track_unpublished=rtc.TrackUnpublishedResponse(track_sid=sid)))
        return new_tracks, stopped

    def _match_track(
        self, transceiver: RTCRtpTransceiver, msid_track: str | None, rids: list[str] | None = None
    ) -> PublishedTrack | None:
        kind_type = models.TrackType.AUDIO if transceiver.kind == "audio" else models.TrackType.VIDEO
        info = self.pending_by_cid.pop(msid_track, None) if msid_track else None
        if info is not None and info.type != kind_type:
            info = None
        if info is None:
            # cid is the client's MediaStreamTrack id, normally its msid; fall back to kind
            for cid, candidate in list(self.pending_by_cid.items()):
                if candidate.type == kind_type:
                    info = self.pending_by_cid.pop(cid)
                    break
        if info is None:
            log.debug("%s: m-line %s matches no add_track (yet)", self.identity, transceiver.mid)
            return None
        codec = next((c for c in internals.negotiated_codecs(transceiver) if not is_rtx(c)), None)
        if codec is None:
            return None
        info.mime_type = codec.mimeType
        info.mid = transceiver.mid or ""
        del info.codecs[:]
        info.codecs.append(models.SimulcastCodecInfo(mime_type=codec.mimeType, mid=info.mid))
        published = PublishedTrack(
            info, self.sid, codec, pli_interval=self.pli_interval,
            on_audio_level=self.meter.add if transceiver.kind == "audio" else None,
            rids=rids if transceiver.kind == "video" else None,
        )
        info.simulcast = published.simulcast
        if published.simulcast and self.dynacast:
            published.on_subscribed_layers = self._send_subscribed_layers
        published.client_track_id = msid_track
        internals.route_unsignalled_by_mid(transceiver)
        published.attach_receiver(ReceiverTap, transceiver.receiver)
        self.published[info.sid] = published
        self._by_mid[transceiver.mid] = info.sid
        self.bump()
        return published

    def _send_subscribed_layers(self, track: PublishedTrack, max_layer: int) -> None:
        """Dynacast: layers up to the best one any subscriber wants stay on, others pause."""
        qualities = [rtc.SubscribedQuality(quality=q, enabled=q <= max_layer)
                     for q in (models.VideoQuality.LOW, models.VideoQuality.MEDIUM, models.VideoQuality.HIGH)]
        codec = track.codec.mimeType.split("/")[-1].lower()
        self.send(rtc.SignalResponse(subscribed_quality_update=rtc.SubscribedQualityUpdate(
            track_sid=track.sid, subscribed_qualities=qualities,
            subscribed_codecs=[rtc.SubscribedCodec(codec=codec, qualities=qualities)])))

    def _unpublish(self, sid: str) -> None:
        track = self.published.pop(sid, None)
        self.track_infos.pop(sid, None)
        for mid, s in list(self._by_mid.items()):
            if s == sid:
                del self._by_mid[mid]
        if track is not None:
            track.close()
        self.bump()

    def set_muted(self, track_sid: str, muted: bool) -> bool:
        info = self.track_infos.get(track_sid)
        if info is None or info.muted == muted:
            return False
        info.muted = muted
        self.bump()
        return True

    # ---- subscribing -------------------------------------------------------------------

    def _ensure_subscriber_pc(self) -> RTCPeerConnection:
        if self.subscriber_pc is None:
            pc = RTCPeerConnection(_pc_config())
            pc.on("connectionstatechange", lambda: self._on_pc_state(pc, "subscriber"))
            self.subscriber_pc = pc
        return self.subscriber_pc

    def subscribe(self, track: PublishedTrack) -> None:
        if self.closed or track.sid in self.downtracks or not self.grant.can_subscribe:
            return
        pc = self._ensure_subscriber_pc()
        with policy_applied(self.ice):
            transceiver = pc.addTransceiver(SilentTrack(track.kind, track.sid), direction="sendonly")
        # LiveKit clients find the publisher and track from the msid "<PA_sid>|<TR_sid> <TR_sid>"
        internals.set_msid_stream(transceiver.sender, f"{track.publisher_sid}|{track.sid}")
        caps = RTCRtpSender.getCapabilities(track.kind).codecs
        wanted = track.codec.mimeType.lower()
        prefs = [c for c in caps if c.mimeType.lower() == wanted][:1]
        if track.kind == "video":
            prefs += [c for c in caps if is_rtx(c)]
        if prefs:
            transceiver.setCodecPreferences(prefs)
        sender = ForwardingSender(transceiver.sender, lambda: dt.request_keyframe())
        dt = DownTrack(track, self.sid, sender)
        self.downtracks[track.sid] = dt
        self._down_transceivers[track.sid] = transceiver
        track.add_downtrack(dt)
        self.schedule_negotiation()

    def unsubscribe(self, track_sid: str) -> None:
        dt = self.downtracks.pop(track_sid, None)
        if dt is None:
            return
        dt.track.remove_downtrack(self.sid)
        dt.paused = True
        # aiortc cannot remove an m-line: make it inactive (the client ends the remote track)
        # and stop the sender's RTCP loop; the m-line itself stays in later offers
        transceiver = self._down_transceivers.pop(track_sid, None)
        if transceiver is not None and not self.closed:
            transceiver.direction = "inactive"
            asyncio.ensure_future(self._stop_sender(transceiver.sender))
            self.schedule_negotiation()

    async def _stop_sender(self, sender: RTCRtpSender) -> None:
        try:
            await asyncio.wait_for(sender.stop(), 5)
        except Exception:
            log.debug("%s: error stopping sender", self.identity, exc_info=True)

    def set_subscribed(self, track_sid: str, subscribed: bool) -> None:
        dt = self.downtracks.get(track_sid)
        if dt is not None:
            dt.set_paused(not subscribed)

    def set_track_settings(self, track_sid: str, settings: rtc.UpdateTrackSettings) -> None:
        """Adaptive stream / manual quality: pick the simulcast layer this subscriber gets."""
        dt = self.downtracks.get(track_sid)
        if dt is None:
            return
        dt.set_paused(settings.disabled)
        if settings.width and settings.height:
            dt.set_target_layer(dt.track.layer_for_size(settings.width, settings.height))
        else:
            dt.set_target_layer(int(settings.quality))

    def schedule_negotiation(self) -> None:
        self._negotiation_needed = True
        if self._negotiation_task is None or self._negotiation_task.done():
            self._negotiation_task = asyncio.ensure_future(self._negotiate())

    async def _negotiate(self) -> None:
        # let a burst of subscribe() calls (a participant joining a full room) share one offer
        await asyncio.sleep(0.02)
        if self.closed or self._awaiting_answer or not self._negotiation_needed:
            return
        self._negotiation_needed = False
        pc = self._ensure_subscriber_pc()
        if not self._down_channels:
            self._create_down_channels(pc)
        try:
            with policy_applied(self.ice):
                offer = await pc.createOffer()
                await pc.setLocalDescription(offer)
        except Exception:
            log.exception("%s: subscriber offer failed", self.identity)
            return
        self._offer_id += 1
        self._awaiting_answer = True
        self.send(rtc.SignalResponse(offer=rtc.SessionDescription(
            type="offer", sdp=pc.localDescription.sdp, id=self._offer_id)))

    async def handle_answer(self, sd: rtc.SessionDescription) -> None:
        pc = self.subscriber_pc
        if pc is None or not self._awaiting_answer:
            log.info("%s: unexpected subscriber answer", self.identity)
            return
        with policy_applied(self.ice):
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sd.sdp, type="answer"))
        self._awaiting_answer = False
        await self._flush_candidates(SUBSCRIBER)
        if self._negotiation_needed:
            self.schedule_negotiation()

    # ---- data packets ------------------------------------------------------------------

    def _on_client_channel(self, channel: RTCDataChannel) -> None:
        reliable = channel.label != "_lossy"

        def on_message(message: bytes | str) -> None:
            if isinstance(message, bytes) and self.on_data is not None and not self.closed:
                self.on_data(self, message, reliable)

        channel.on("message", on_message)

    def _create_down_channels(self, pc: RTCPeerConnection) -> None:
        # LiveKit servers open these on the subscriber PC to deliver other people's data.
        # Created just before the first offer, after any transceiver: when aiortc's SCTP
        # transport is created first, the media bundled onto it never connected with libwebrtc.
        with policy_applied(self.ice):
            for label, ordered, max_retransmits in (("_reliable", True, None), ("_lossy", False, 0)):
                ch = pc.createDataChannel(label, ordered=ordered, maxRetransmits=max_retransmits)
                self._down_channels[label] = ch
                ch.on("open", lambda label=label: self._flush_data(label))

    def send_data(self, data: bytes, reliable: bool) -> None:
        if self.closed or not self.grant.can_subscribe:
            return
        label = "_reliable" if reliable else "_lossy"
        if self.subscriber_pc is None:
            self._ensure_subscriber_pc()
            self.schedule_negotiation()
        ch = self._down_channels.get(label)
        if ch is not None and ch.readyState == "open":
            ch.send(data)
        elif reliable or len(self._down_pending[label]) < 64:
            self._down_pending[label].append(data)

    def _flush_data(self, label: str) -> None:
        pending, self._down_pending[label] = self._down_pending[label], []
        ch = self._down_channels[label]
        for data in pending:
            ch.send(data)

    # ---- ICE ---------------------------------------------------------------------------

    async def handle_trickle(self, req: rtc.TrickleRequest) -> None:
        try:
            init = json.loads(req.candidateInit)
        except ValueError:
            return
        if not isinstance(init, dict):
            return
        target = SUBSCRIBER if req.target == SUBSCRIBER else PUBLISHER
        self._pending_candidates[target].append(init)
        await self._flush_candidates(target)

    async def _flush_candidates(self, target: int) -> None:
        pc = self.publisher_pc if target == PUBLISHER else self.subscriber_pc
        # candidates may arrive before the description they belong to (the Rust core sends
        # them before its offer): keep them until the PC has a remote description
        if pc is None or pc.remoteDescription is None:
            return
        pending, self._pending_candidates[target] = self._pending_candidates[target], []
        for init in pending:
            line = init.get("candidate") or ""
            if not line:
                continue
            line = line.removeprefix("candidate:")
            try:
                cand = internals.candidate_from_sdp(line)
            except Exception:  # untrusted input; aiortc's parser raises several kinds
                log.debug("%s: unparsable candidate %r", self.identity, line, exc_info=True)
                continue
            cand.sdpMid = init.get("sdpMid")
            cand.sdpMLineIndex = init.get("sdpMLineIndex")
            if cand.sdpMid is None and cand.sdpMLineIndex is None:
                cand.sdpMLineIndex = 0
            try:
                await pc.addIceCandidate(cand)
            except Exception:
                log.debug("%s: bad candidate %r", self.identity, line, exc_info=True)

    def _on_pc_state(self, pc: RTCPeerConnection, which: str) -> None:
        log.debug("%s: %s PC %s", self.identity, which, pc.connectionState)
        if pc.connectionState == "failed" and not self.closed and self.on_failed is not None:
            self.on_failed(self)

    # ---- teardown ----------------------------------------------------------------------

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.state = models.ParticipantInfo.State.DISCONNECTED
        self.bump()
        for track in self.published.values():
            track.close()
        for dt in self.downtracks.values():
            dt.track.remove_downtrack(self.sid)
        self.downtracks.clear()
        self._down_transceivers.clear()
        if self._negotiation_task is not None:
            self._negotiation_task.cancel()
        for pc in (self.publisher_pc, self.subscriber_pc):
            if pc is not None:
                try:
                    await asyncio.wait_for(pc.close(), 5)
                except Exception:
                    log.debug("%s: error closing PC", self.identity, exc_info=True)
