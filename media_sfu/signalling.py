"""LiveKit signalling over WebSocket: binary protobuf SignalRequest in, SignalResponse out.

Only the v0 protocol (``/rtc``, two peer connections) is served. ``/rtc/v1`` (single peer
connection) is answered with a plain HTTP 404 before the upgrade, and ``/rtc/v1/validate``
with 404 + CORS: that is exactly what makes both the Rust core (inside the ``livekit``
Python SDK) and livekit-client fall back to ``/rtc``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from autobahn.asyncio.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from google.protobuf.message import DecodeError
from livekit.protocol import models, rtc

from .participant import Participant
from .tokens import AccessClaims, TokenError, mint_access_token, verify_access_token

if TYPE_CHECKING:
    from .room import Room
    from .server import SFUServer

log = logging.getLogger(__name__)

SERVER_VERSION = "1.9.0"  # what we claim to be; livekit-client insists on a non-empty version
PROTOCOL_VERSION = 16

_CORS = [
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Methods", "GET, OPTIONS"),
    ("Access-Control-Allow-Headers", "Authorization, Content-Type"),
]


def _route(path: str) -> str:
    p = path.rstrip("/")
    for suffix, name in (("/rtc/v1/validate", "v1_validate"), ("/rtc/validate", "validate"),
                         ("/rtc/v1", "v1"), ("/rtc", "rtc")):
        if p.endswith(suffix):
            return name
    if p.endswith("/debug/stats"):
        return "stats"
    if p == "" or p.endswith("/healthz"):
        return "health"
    return "unknown"


def _first(params: dict[str, list[str]], key: str) -> str | None:
    values = params.get(key)
    return values[0] if values else None


def _bearer(headers: dict[str, str]) -> str | None:
    auth = headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return None


class SignalProtocol(WebSocketServerProtocol):
    sfu: SFUServer

    def __init__(self) -> None:
        super().__init__()
        self.claims: AccessClaims | None = None
        self.participant: Participant | None = None
        self.auto_subscribe = True
        self._queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._last_heard = time.monotonic()
        self._gone = False

    # ---- plain HTTP (validate endpoints, CORS preflight, health) ------------------------

    def processHandshake(self) -> None:
        end = self.data.find(b"\r\n\r\n")
        if end >= 0 and b"upgrade:" not in self.data[:end].lower():
            self._plain_http(self.data[:end].decode("latin-1"))
            return
        super().processHandshake()

    def _plain_http(self, head: str) -> None:
        lines = head.split("\r\n")
        try:
            method, target, _ = lines[0].split(" ", 2)
        except ValueError:
            self._respond(400, "Bad Request", b"bad request")
            return
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        url = urlsplit(target)
        route = _route(url.path)
        if method == "OPTIONS":
            self._respond(204, "No Content", b"")
        elif route == "health" and method in ("GET", "HEAD"):
            self._respond(200, "OK", b"OK")
        elif route == "stats" and self.sfu.config.debug_stats and method == "GET":
            params = parse_qs(url.query)
            body = json.dumps(self.sfu.debug_stats(
                reset=params.get("reset") == ["1"],
                latency=_first(params, "latency"))).encode()
            self._respond(200, "OK", body, "application/json")
        elif route == "v1_validate":
            # no single-PC support: 404 (without "room does not exist") makes livekit-client
            # fall back to /rtc; it needs CORS to read it
            self._respond(404, "Not Found", b"single peer connection not supported")
        elif route == "validate" and method == "GET":
            params = parse_qs(url.query)
            token = _first(params, "access_token") or _bearer(headers)
            try:
                verify_access_token(token or "", self.sfu.secrets)
            except TokenError as e:
                self._respond(401, "Unauthorized", str(e).encode())
                return
            self._respond(200, "OK", b"success")
        else:
            self._respond(404, "Not Found", b"not found")

    def _respond(self, code: int, reason: str, body: bytes, ctype: str = "text/plain") -> None:
        head = f"HTTP/1.1 {code} {reason}\r\n"
        for k, v in _CORS + [("Content-Type", ctype), ("Content-Length", str(len(body))),
                             ("Connection", "close")]:
            head += f"{k}: {v}\r\n"
        self.sendData(head.encode() + b"\r\n" + body)
        # plain HTTP, not a WebSocket: just close after the answer is flushed
        self.transport.close()

    # ---- WebSocket ---------------------------------------------------------------------

    def onConnect(self, request: ConnectionRequest) -> None:
        route = _route(request.path)
        if route == "v1":
            raise ConnectionDeny(404, "Not Found")
        if route != "rtc":
            raise ConnectionDeny(404, "Not Found")
        token = _first(request.params, "access_token") or _bearer(request.headers)
        try:
            claims = verify_access_token(token or "", self.sfu.secrets)
        except TokenError as e:
            raise ConnectionDeny(401, f"invalid token: {e}") from e
        if not claims.video.room_join or not claims.video.room:
            raise ConnectionDeny(401, "token has no roomJoin grant")
        if self.sfu.rooms.get(claims.video.room) is None and not claims.video.room_create:
            # LiveKit's wording; livekit-client treats this 404 as "room missing", not "no v1"
            raise ConnectionDeny(404, "requested room does not exist")
        if _first(request.params, "reconnect") == "1":
            # Resuming needs an ICE restart of the old peer connections, which aiortc cannot
            # do. Failing the resume makes both SDKs fall back to a full rejoin (the new join
            # replaces the stale participant by identity).
            raise ConnectionDeny(409, "resume not supported, rejoin")
        self.claims = claims
        self.auto_subscribe = (_first(request.params, "auto_subscribe") or "1") not in ("0", "false")

    def onOpen(self) -> None:
        self._worker = asyncio.ensure_future(self._run())
        self._watchdog = asyncio.ensure_future(self._watch_pings())

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self._last_heard = time.monotonic()
        if isBinary:
            self._queue.put_nowait(payload)
        else:
            log.debug("ignoring text frame (JSON signalling is not supported)")

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self._gone = True
        self._queue.put_nowait(None)
        if self._watchdog is not None:
            self._watchdog.cancel()

    def send_response(self, msg: rtc.SignalResponse) -> None:
        if self._gone or self.state != WebSocketServerProtocol.STATE_OPEN:
            return
        self.sendMessage(msg.SerializeToString(), isBinary=True)

    async def _watch_pings(self) -> None:
        cfg = self.sfu.config
        while not self._gone:
            await asyncio.sleep(cfg.ping_interval)
            if time.monotonic() - self._last_heard > cfg.ping_timeout:
                log.info("signalling timeout for %s", self.claims.identity if self.claims else "?")
                self.sendClose()
                self.dropConnection(abort=True)
                return

    async def _run(self) -> None:
        assert self.claims is not None
        sfu = self.sfu
        cfg = sfu.config
        room = sfu.rooms.get_or_create(self.claims.video.room)
        old = room.by_identity(self.claims.identity)
        if old is not None:
            # LiveKit semantics: the newest connection of an identity wins
            old.send(rtc.SignalResponse(leave=rtc.LeaveRequest(
                reason=models.DisconnectReason.DUPLICATE_IDENTITY,
                action=rtc.LeaveRequest.Action.DISCONNECT)))
            await room.remove(old)
        p = Participant(room, self.claims, self.send_response, ice=sfu.ice_policy,
                        pli_interval=cfg.pli_interval, auto_subscribe=self.auto_subscribe,
                        simulcast=cfg.simulcast, dynacast=cfg.dynacast)

        def on_failed(part: Participant) -> None:
            asyncio.ensure_future(self._drop(part))

        p.on_failed = on_failed
        p.on_data = room.forward_data
        self.participant = p
        others = room.add(p)
        join = rtc.JoinResponse(
            room=room.proto(),
            participant=p.info(),
            other_participants=others,
            server_version=SERVER_VERSION,
            server_info=models.ServerInfo(edition=models.ServerInfo.Edition.Standard,
                                          version=SERVER_VERSION, protocol=PROTOCOL_VERSION,
                                          node_id=sfu.node_id),
            ice_servers=[rtc.ICEServer(urls=list(s.urls), username=s.username, credential=s.credential)
                         for s in cfg.ice_servers],
            subscriber_primary=False,
            # what aiortc can receive; clients pick their publish (and backup) codecs from it
            enabled_publish_codecs=[models.Codec(mime="video/VP8"), models.Codec(mime="video/H264"),
                                    models.Codec(mime="audio/opus")],
            ping_interval=cfg.ping_interval,
            ping_timeout=cfg.ping_timeout,
        )
        self.send_response(rtc.SignalResponse(join=join))
        room.activate(p)
        refresher = asyncio.ensure_future(self._refresh_tokens(p))
        try:
            while True:
                data = await self._queue.get()
                if data is None:
                    break
                try:
                    req = rtc.SignalRequest.FromString(data)
                except DecodeError:
                    log.info("%s: undecodable signal message", p.identity)
                    continue
                try:
                    leave = await self._handle(p, room, req)
                except Exception:
                    log.exception("%s: error handling %s", p.identity, req.WhichOneof("message"))
                    continue
                if leave:
                    break
        finally:
            refresher.cancel()
            await room.remove(p)
            if not self._gone:
                self.sendClose()

    async def _refresh_tokens(self, p: Participant) -> None:
        """LiveKit semantics: hand out a fresh token with the same grants now and then."""
        claims = self.claims
        assert claims is not None
        cfg = self.sfu.config
        g = claims.video
        while True:
            await asyncio.sleep(cfg.token_refresh_interval)
            token = mint_access_token(
                cfg.api_key, cfg.api_secret, claims.identity, g.room,
                name=p.name or None, ttl=max(3600, int(2 * cfg.token_refresh_interval)),
                can_create_room=g.room_create, can_publish=g.can_publish, can_subscribe=g.can_subscribe,
                can_publish_data=g.can_publish_data, can_update_own_metadata=g.can_update_own_metadata,
                hidden=g.hidden, metadata=p.metadata or None, attributes=p.attributes or None,
            )
            self.send_response(rtc.SignalResponse(refresh_token=token))

    async def _drop(self, p: Participant) -> None:
        log.info("%s: peer connection failed, removing", p.identity)
        self._queue.put_nowait(None)

    async def _handle(self, p: Participant, room: Room, req: rtc.SignalRequest) -> bool:
        kind = req.WhichOneof("message")
        if kind == "offer":
            tracks, stopped = await p.handle_offer(req.offer)
            if stopped:
                room.tracks_unpublished(p, stopped)
            if tracks:
                room.tracks_published(p, tracks)
        elif kind == "answer":
            await p.handle_answer(req.answer)
        elif kind == "trickle":
            await p.handle_trickle(req.trickle)
        elif kind == "add_track":
            late = p.add_track(req.add_track)
            if late is not None:
                room.tracks_published(p, [late])
        elif kind == "mute":
            if p.set_muted(req.mute.sid, req.mute.muted):
                room.broadcast_update(p)
        elif kind == "subscription":
            sub = req.subscription
            sids = list(sub.track_sids) + [s for pt in sub.participant_tracks for s in pt.track_sids]
            for sid in sids:
                if sub.subscribe and sid not in p.downtracks:
                    # manual subscription (auto_subscribe=0), or re-subscribing
                    track = room.find_track(sid)
                    if track is not None and track.publisher_sid != p.sid:
                        p.subscribe(track)
                        continue
                p.set_subscribed(sid, sub.subscribe)
        elif kind == "track_setting":
            for sid in req.track_setting.track_sids:
                p.set_track_settings(sid, req.track_setting)
        elif kind == "ping_req":
            self.send_response(rtc.SignalResponse(pong_resp=rtc.Pong(
                last_ping_timestamp=req.ping_req.timestamp, timestamp=int(time.time() * 1000))))
        elif kind == "ping":
            self.send_response(rtc.SignalResponse(pong=int(time.time() * 1000)))
        elif kind == "update_metadata":
            if p.grant.can_update_own_metadata:
                um = req.update_metadata
                if um.name:
                    p.name = um.name
                if um.metadata:
                    p.metadata = um.metadata
                p.attributes.update(dict(um.attributes))
                p.bump()
                room.broadcast_update(p, include_self=True)
        elif kind == "leave":
            return True
        else:
            log.debug("%s: ignoring %s", p.identity, kind)
        return False


def make_factory(sfu: SFUServer) -> WebSocketServerFactory:
    factory = WebSocketServerFactory()
    # clients connect through reverse proxies and from browser origins: no Host/Origin checks
    factory.setProtocolOptions(
        allowedOrigins=["*"],
        maxMessagePayloadSize=4 * 1024 * 1024,
        openHandshakeTimeout=10,
    )
    factory.externalPort = None

    class _Proto(SignalProtocol):
        pass

    _Proto.sfu = sfu
    factory.protocol = _Proto
    return factory
