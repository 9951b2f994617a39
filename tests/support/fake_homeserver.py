"""A scriptable remote homeserver for federation tests: a real HTTPS server on loopback
with its own signing key, playing "another server" towards the homeserver under test
(WSPR, or a Synapse when a test checks its own expectations against the reference).

It does what Complement's test server does (``internal/federation`` of
matrix-org/complement), in our own words:

* it serves its keys (``/_matrix/key/v2/server``) and checks the X-Matrix signature of every
  request it is sent (the origin's keys fetched from the origin);
* it hosts rooms (``FakeRoom``): it creates and signs events of any room version, answers
  ``make_join``/``send_join``/``make_leave``/``send_leave``, ``/event``, ``/state(_ids)``,
  ``/event_auth``, ``/get_missing_events``, ``/backfill``, alias and profile queries, and
  countersigns invites;
* it takes transactions (``/send``): PDUs of rooms it knows are added to them, every PDU
  and EDU is recorded (``received_pdus``, ``received_edus``);
* as a client it joins rooms of the server under test (``join_room``: make_join, sign,
  send_join), sends transactions and makes any signed request (``request``).

Tests replace any answer with ``handle(method, path_regex, fn)``; every request is recorded
in ``requests``.

    srv = await start_fake_homeserver(self)
    room = srv.make_room("11", srv.user_id("charlie"))
    alias = srv.alias_for("flibble", room)
    await alice.post(f"/join/{quote(alias)}")                  # the server under test joins
    msg = room.create_event(type="m.room.message", sender=..., content={...})
    room.add_event(msg)
    await srv.send_transaction(hs_name, [msg])
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import treq
from signedjson.key import SigningKey
from twisted.internet import defer, reactor, ssl, task
from twisted.trial import unittest
from twisted.web import resource, server
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from federation.transport.client import TLSPolicy
from federation.transport.xmatrix import parse_auth_header, request_json, sign_request
from homeserver.http.server import Site, close_listener
from homeserver.protocol.auth_rules import select_auth_event_ids
from homeserver.protocol.canonical_json import encode_canonical_json
from homeserver.protocol.event_hashing import add_content_hash
from homeserver.protocol.event_ids import (
    compute_event_id,
    compute_room_id_from_create_event,
    event_reference,
)
from homeserver.protocol.redaction import redact_event
from homeserver.protocol.room_versions import RoomVersion, get_room_version
from homeserver.protocol.signing import (
    decode_verify_key_base64,
    encode_verify_key_base64,
    generate_signing_key,
    get_verify_key,
    key_id,
    sign_event,
    sign_json,
    verify_json_with_keys,
)
from tests.support.synapse import _self_signed_cert

logger = logging.getLogger(__name__)

StateKey = tuple[str, str]
Json = dict[str, Any]


# --- events ------------------------------------------------------------------------------


@dataclass
class PDU:
    """One event as it travels between servers, with its id."""

    event_id: str
    pdu: Json
    version: RoomVersion

    @property
    def type(self) -> str:
        return str(self.pdu.get("type"))

    @property
    def state_key(self) -> str | None:
        sk = self.pdu.get("state_key")
        return sk if isinstance(sk, str) else None

    @property
    def sender(self) -> str:
        return str(self.pdu.get("sender"))

    @property
    def content(self) -> Json:
        c = self.pdu.get("content")
        return c if isinstance(c, dict) else {}

    @property
    def membership(self) -> str | None:
        return self.content.get("membership") if self.type == "m.room.member" else None

    @property
    def depth(self) -> int:
        d = self.pdu.get("depth")
        return d if isinstance(d, int) else 0

    @property
    def prev_event_ids(self) -> list[str]:
        return _ids(self.pdu.get("prev_events"))

    @property
    def auth_event_ids(self) -> list[str]:
        return _ids(self.pdu.get("auth_events"))

    @property
    def is_state(self) -> bool:
        return self.state_key is not None

    @property
    def state_pair(self) -> StateKey:
        return (self.type, self.state_key or "")

    @property
    def room_id(self) -> str:
        rid = self.pdu.get("room_id")
        if isinstance(rid, str):
            return rid
        if self.version.room_id_from_create_event and self.type == "m.room.create":
            return "!" + self.event_id[1:]
        return ""

    def json(self) -> Json:
        """The PDU as sent over federation (a copy)."""
        return json.loads(json.dumps(self.pdu))

    @classmethod
    def parse(cls, raw: Json, version: RoomVersion | str) -> PDU:
        rv = get_room_version(version)
        pdu = {k: v for k, v in raw.items() if k != "unsigned" and (rv.event_id_in_pdu or k != "event_id")}
        return cls(compute_event_id(pdu, rv), pdu, rv)


def _ids(refs: Any) -> list[str]:
    """Event ids of a ``prev_events``/``auth_events`` list (ids, or v1/v2 [id, hashes] pairs)."""
    out = []
    for r in refs if isinstance(refs, list) else []:
        if isinstance(r, str):
            out.append(r)
        elif isinstance(r, list) and r and isinstance(r[0], str):
            out.append(r[0])
    return out


def initial_room_events(version: str, creator: str) -> list[Json]:
    """The events Complement's ``InitialRoomEvents`` starts a room with: create, the
    creator's join, power levels (the creator at 100), public join rules."""
    rv = get_room_version(version)
    create: Json = {"room_version": rv.identifier}
    if not rv.implicit_room_creator:
        create["creator"] = creator
    users = {} if rv.creators_have_infinite_power else {creator: 100}
    power_levels = {
        "ban": 50,
        "events": {
            "m.room.avatar": 50,
            "m.room.canonical_alias": 50,
            "m.room.encryption": 100,
            "m.room.history_visibility": 100,
            "m.room.name": 50,
            "m.room.power_levels": 100,
            "m.room.server_acl": 100,
            "m.room.tombstone": 100,
        },
        "events_default": 0,
        "invite": 0,
        "kick": 50,
        "notifications": {"room": 50},
        "redact": 50,
        "state_default": 50,
        "users": users,
        "users_default": 0,
    }
    return [
        {"type": "m.room.create", "state_key": "", "sender": creator, "content": create},
        {"type": "m.room.member", "state_key": creator, "sender": creator, "content": {"membership": "join"}},
        {"type": "m.room.power_levels", "state_key": "", "sender": creator, "content": power_levels},
        {"type": "m.room.join_rules", "state_key": "", "sender": creator, "content": {"join_rule": "public"}},
    ]


class FakeRoom:
    """A room as the fake server sees it: its events, its (linear by default) timeline,
    the state before each event, the current state and forward extremities."""

    def __init__(self, srv: FakeHomeserver, room_id: str, version: RoomVersion) -> None:
        self.srv = srv
        self.room_id = room_id
        self.version = version
        self.events: dict[str, PDU] = {}
        self.timeline: list[PDU] = []
        self.state: dict[StateKey, str] = {}
        self.state_before: dict[str, dict[StateKey, str]] = {}
        self.extremities: list[str] = []
        self.depth = 0
        self.join_response: Json = {}  # the send_join answer, for rooms we joined

    # -- building events --------------------------------------------------------------

    def create_event(
        self,
        *,
        type: str,
        sender: str,
        content: Json,
        state_key: str | None = None,
        prev_events: list[str] | None = None,
        auth_events: list[str] | None = None,
        depth: int | None = None,
        origin_server_ts: int | None = None,
        version: RoomVersion | str | None = None,
        sign: bool = True,
    ) -> PDU:
        """A signed event of this room (not added to it: see ``add_event``). Auth events
        are chosen from the current state unless given; prev events are the forward
        extremities unless given. ``version`` builds the event by another version's
        rules (Complement builds a v5 event to smuggle a float into a v6 room)."""
        rv = get_room_version(version) if version is not None else self.version
        prevs = list(self.extremities) if prev_events is None else list(prev_events)
        pdu: Json = {
            "type": type,
            "sender": sender,
            "content": content,
            "origin_server_ts": origin_server_ts if origin_server_ts is not None else int(time.time() * 1000),
        }
        if not (rv.room_id_from_create_event and type == "m.room.create"):
            pdu["room_id"] = self.room_id
        if state_key is not None:
            pdu["state_key"] = state_key
        if not rv.updated_redaction_rules:
            pdu["origin"] = self.srv.server_name
        if depth is None:
            depth = max([self.events[p].depth for p in prevs if p in self.events] or [0]) + 1
        pdu["depth"] = depth
        if auth_events is None:
            auth_events = select_auth_event_ids(pdu, self.state, rv)
        pdu["prev_events"] = self._refs(prevs, rv)
        pdu["auth_events"] = self._refs(auth_events, rv)
        if rv.event_id_in_pdu:
            pdu["event_id"] = f"${secrets.token_hex(8)}:{self.srv.server_name}"
        pdu = add_content_hash(pdu)
        if sign:
            pdu = sign_event(pdu, rv, self.srv.server_name, self.srv.signing_key)
        else:
            pdu["signatures"] = {}
        return PDU(compute_event_id(pdu, rv), pdu, rv)

    def _refs(self, ids: list[str], rv: RoomVersion) -> list[Any]:
        if not rv.event_id_in_pdu:
            return list(ids)
        return [event_reference(self.events[i].pdu, rv) if i in self.events else [i, {}] for i in ids]

    def add_event(self, ev: PDU) -> None:
        """Appends ``ev`` to the timeline: the state and extremities move on."""
        if ev.event_id in self.events and ev in self.timeline:
            return
        self.events[ev.event_id] = ev
        self.srv.events[ev.event_id] = ev
        self.timeline.append(ev)
        self.state_before.setdefault(ev.event_id, dict(self.state))
        if ev.is_state:
            self.state[ev.state_pair] = ev.event_id
        prevs = set(ev.prev_event_ids)
        self.extremities = [x for x in self.extremities if x not in prevs] + [ev.event_id]
        self.depth = max(self.depth, ev.depth)

    def add_outlier(self, ev: PDU) -> None:
        """An event the room knows (to serve it) without it being in the timeline."""
        self.events[ev.event_id] = ev
        self.srv.events[ev.event_id] = ev

    def current(self, type: str, state_key: str = "") -> PDU | None:
        eid = self.state.get((type, state_key))
        return self.events.get(eid) if eid else None

    def membership_of(self, user_id: str) -> str | None:
        ev = self.current("m.room.member", user_id)
        return ev.membership if ev else None

    def auth_chain(self, ids: Iterable[str]) -> list[PDU]:
        """The auth chain of the given events (not including them), oldest first."""
        seen: set[str] = set()
        stack = [a for i in ids if i in self.events for a in self.events[i].auth_event_ids]
        if self.version.room_id_from_create_event:
            stack.append("$" + self.room_id[1:])
        while stack:
            eid = stack.pop()
            if eid in seen or eid not in self.events:
                continue
            seen.add(eid)
            stack.extend(self.events[eid].auth_event_ids)
        return sorted((self.events[i] for i in seen), key=lambda e: e.depth)

    def state_events(self, state: dict[StateKey, str] | None = None) -> list[PDU]:
        return [self.events[i] for i in (state if state is not None else self.state).values() if i in self.events]


# --- the server --------------------------------------------------------------------------


@dataclass
class FedRequest:
    """A request the fake server was sent."""

    method: str
    path: str  # decoded path
    uri: str  # as sent
    query: dict[str, list[str]]
    body: Any
    origin: str | None
    params: dict[str, str] = field(default_factory=dict)

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


Handler = Callable[[FedRequest], Awaitable[tuple[int, Any]]]


class FederationRequestError(Exception):
    def __init__(self, code: int, body: Any) -> None:
        super().__init__(f"HTTP {code}: {body}")
        self.code = code
        self.body = body

    @property
    def errcode(self) -> str | None:
        return self.body.get("errcode") if isinstance(self.body, dict) else None


@implementer(IPolicyForHTTPS)
class _AnyCertificate:
    def __init__(self) -> None:
        self._tls = TLSPolicy(False, None)

    def creatorForNetloc(self, hostname: bytes, port: int) -> Any:
        return self._tls.creator_for(hostname.decode())


class _Resource(resource.Resource):
    isLeaf = True

    def __init__(self, srv: FakeHomeserver) -> None:
        super().__init__()
        self.srv = srv

    def render(self, request: server.Request) -> Any:
        d = defer.ensureDeferred(self.srv._dispatch(request))

        def done(result: tuple[int, Any]) -> None:
            if request._disconnected:  # the peer gave up waiting (it has its own timeout)
                return
            code, body = result
            data = body if isinstance(body, bytes) else encode_canonical_json(body)
            request.setResponseCode(code)
            request.setHeader(b"Content-Type", b"application/json")
            request.write(data)
            request.finish()

        def failed(f: Any) -> None:
            logger.error("fake homeserver handler failed: %s", f.getTraceback())
            if request._disconnected:
                return
            request.setResponseCode(500)
            request.write(b'{"errcode":"M_UNKNOWN","error":"fake server error"}')
            request.finish()

        d.addCallbacks(done, failed)
        return server.NOT_DONE_YET


class FakeHomeserver:
    """See the module's docstring. Start it with ``start_fake_homeserver``."""

    def __init__(self, host: str = "127.0.0.1", verify_requests: bool = True) -> None:
        self.host = host
        self.verify_requests = verify_requests
        self.signing_key: SigningKey = generate_signing_key("fake" + secrets.token_hex(2))
        self.server_name = ""
        self.rooms: dict[str, FakeRoom] = {}
        self.events: dict[str, PDU] = {}
        self.aliases: dict[str, str] = {}
        self.profiles: dict[str, Json] = {}
        self.requests: list[FedRequest] = []
        self.received_pdus: list[Json] = []
        self.received_edus: list[Json] = []
        self.received_invites: list[Json] = []
        self.failures: list[str] = []
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._remote_keys: dict[str, dict[str, Any]] = {}
        self._port: Any = None
        self._txn = 0
        self._install_defaults()

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        directory = tempfile.mkdtemp(prefix="wspr-fake-hs-")
        cert, key = os.path.join(directory, "tls.crt"), os.path.join(directory, "tls.key")
        _self_signed_cert(cert, key, [self.host])
        ctx = ssl.DefaultOpenSSLContextFactory(key, cert)
        site = Site(_Resource(self), max_body=64 * 1024 * 1024)
        self._port = reactor.listenSSL(0, site, ctx, interface=self.host)
        self.server_name = f"{self.host}:{self._port.getHost().port}"

    async def stop(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            await close_listener(port)

    @property
    def port(self) -> int:
        return int(self._port.getHost().port)

    def user_id(self, localpart: str) -> str:
        return f"@{localpart}:{self.server_name}"

    # -- routing --------------------------------------------------------------------------

    def handle(self, method: str, path_regex: str, fn: Handler) -> None:
        """Answer ``method`` requests whose decoded path matches ``path_regex`` (named
        groups become ``request.params``) with ``fn``; replaces earlier handlers."""
        self._routes.insert(0, (method, re.compile(path_regex + "$"), fn))

    async def _dispatch(self, request: server.Request) -> tuple[int, Any]:
        uri = request.uri.decode("utf-8", "replace")
        split = urlsplit(uri)
        path = unquote(split.path)
        method = request.method.decode()
        raw = request.content.read() if request.content is not None else b""
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            body = raw
        req = FedRequest(method, path, uri, parse_qs(split.query), body, None)
        self.requests.append(req)
        if not path.startswith("/_matrix/key/"):
            try:
                req.origin = await self._authenticate(request, method, uri, body)
            except FederationRequestError as e:
                self.failures.append(f"{method} {path}: {e}")
                return e.code, e.body
        for m, pattern, fn in self._routes:
            match = pattern.match(path) if m == method else None
            if match:
                req.params = {k: v for k, v in match.groupdict().items() if v is not None}
                return await fn(req)
        return 404, {"errcode": "M_UNRECOGNIZED", "error": f"fake server: no handler for {method} {path}"}

    async def _authenticate(self, request: server.Request, method: str, uri: str, body: Any) -> str | None:
        headers = request.requestHeaders.getRawHeaders(b"Authorization") or []
        if not headers:
            if self.verify_requests:
                raise FederationRequestError(401, {"errcode": "M_UNAUTHORIZED", "error": "no Authorization"})
            return None
        auth = parse_auth_header(headers[0].decode())
        if not self.verify_requests:
            return auth.origin
        if auth.destination not in (None, self.server_name):
            raise FederationRequestError(401, {"errcode": "M_UNAUTHORIZED", "error": "wrong destination"})
        signed = request_json(method, uri, auth.origin, self.server_name, body)
        signed["signatures"] = {auth.origin: {auth.key: auth.sig}}
        keys = await self.server_keys(auth.origin)
        try:
            verify_json_with_keys(signed, auth.origin, keys)
        except Exception as e:
            raise FederationRequestError(401, {"errcode": "M_UNAUTHORIZED", "error": f"bad signature: {e}"}) from None
        return auth.origin

    async def server_keys(self, server_name: str) -> dict[str, Any]:
        """The verify keys ``server_name`` serves (fetched once)."""
        if server_name not in self._remote_keys:
            code, body = await self._https("GET", server_name, "/_matrix/key/v2/server")
            if code != 200:
                raise FederationRequestError(401, {"errcode": "M_UNAUTHORIZED", "error": f"no keys for {server_name}"})
            keys = {}
            for kid, entry in body.get("verify_keys", {}).items():
                keys[kid] = decode_verify_key_base64("ed25519", kid.split(":", 1)[1], entry["key"])
            self._remote_keys[server_name] = keys
        return self._remote_keys[server_name]

    # -- outbound -------------------------------------------------------------------------

    async def raw_bytes(self, method: str, destination: str, uri: str, body: Any = None,
                        headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        """An HTTPS request to ``destination`` as given (unsigned unless ``headers`` say so);
        the answer's status and bytes as served."""
        agent = Agent(reactor, contextFactory=_AnyCertificate(), pool=HTTPConnectionPool(reactor, persistent=False))
        hdrs = {k: [v] for k, v in (headers or {}).items()}
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            hdrs["Content-Type"] = ["application/json"]
        resp = await treq.request(method, f"https://{destination}{uri}".encode(), data=data, headers=hdrs, agent=agent)
        return resp.code, await treq.content(resp)

    async def _https(self, method: str, destination: str, uri: str, body: Any = None,
                     headers: dict[str, str] | None = None) -> tuple[int, Any]:
        code, content = await self.raw_bytes(method, destination, uri, body, headers)
        try:
            parsed = json.loads(content) if content else None
        except ValueError:
            parsed = content
        return code, parsed

    async def raw_request(self, destination: str, method: str, path: str, body: Any = None,
                          query: dict[str, Any] | None = None) -> tuple[int, Any]:
        """A signed request to ``destination``; ``path`` is sent as given (encode segments
        with ``q``). Returns (status, JSON body)."""
        uri = path
        if query:
            pairs = []
            for k, v in query.items():
                for item in v if isinstance(v, list) else [v]:
                    pairs.append(f"{quote(k)}={quote(str(item), safe='')}")
            uri += "?" + "&".join(pairs)
        header = sign_request(self.signing_key, self.server_name, destination, method, uri, body)
        return await self._https(method, destination, uri, body, {"Authorization": header})

    async def request(self, destination: str, method: str, path: str, body: Any = None,
                      query: dict[str, Any] | None = None) -> Any:
        """``raw_request`` that raises FederationRequestError unless the answer is a 200."""
        code, got = await self.raw_request(destination, method, path, body, query)
        if code != 200:
            raise FederationRequestError(code, got)
        return got

    async def send_transaction(self, destination: str, pdus: Iterable[PDU | Json] = (), edus: Iterable[Json] = (),
                               txn_id: str | None = None) -> Json:
        self._txn += 1
        txn = txn_id or f"fake{self._txn}-{secrets.token_hex(3)}"
        body = {
            "origin": self.server_name,
            "origin_server_ts": int(time.time() * 1000),
            "pdus": [p.json() if isinstance(p, PDU) else p for p in pdus],
            "edus": list(edus),
        }
        result: Json = await self.request(destination, "PUT", f"/_matrix/federation/v1/send/{q(txn)}", body)
        return result

    async def join_room(self, destination: str, room_id: str, user_id: str, *, versions: Iterable[str] | None = None,
                        content: Json | None = None, omit_members: bool = False) -> FakeRoom:
        """``user_id`` (ours) joins a room of ``destination``: make_join, sign, send_join (v2).
        Returns the room as we then know it (state, auth chain, the join)."""
        vers = list(versions) if versions is not None else [str(v) for v in range(1, 13)]
        made = await self.request(
            destination, "GET", f"/_matrix/federation/v1/make_join/{q(room_id)}/{q(user_id)}", query={"ver": vers}
        )
        version = get_room_version(str(made.get("room_version", "1")))
        join = self.sign_template(made["event"], version, content)
        query = {"omit_members": "true"} if omit_members else None
        resp = await self.request(
            destination, "PUT", f"/_matrix/federation/v2/send_join/{q(room_id)}/{q(join.event_id)}", join.json(), query
        )
        room = self.rooms.get(room_id) or FakeRoom(self, room_id, version)
        self.rooms[room_id] = room
        for raw in list(resp.get("auth_chain", [])) + list(resp.get("state", [])):
            room.add_outlier(PDU.parse(raw, version))
        state = {}
        for raw in resp.get("state", []):
            ev = PDU.parse(raw, version)
            state[ev.state_pair] = ev.event_id
        room.state = state
        room.extremities = list(join.prev_event_ids)
        room.depth = join.depth - 1
        room.add_event(join)
        room.join_response = resp
        return room

    def sign_template(self, template: Json, version: RoomVersion, content: Json | None = None) -> PDU:
        """Our event made of a resident server's template (make_join/leave/knock)."""
        pdu = {k: v for k, v in template.items() if k not in ("signatures", "hashes", "unsigned")}
        if content is not None:
            pdu["content"] = {**pdu.get("content", {}), **content}
        pdu["origin_server_ts"] = int(time.time() * 1000)
        if version.event_id_in_pdu:
            pdu["event_id"] = f"${secrets.token_hex(8)}:{self.server_name}"
        pdu = sign_event(add_content_hash(pdu), version, self.server_name, self.signing_key)
        return PDU(compute_event_id(pdu, version), pdu, version)

    async def leave_room(self, destination: str, room: FakeRoom, user_id: str) -> PDU:
        made = await self.request(destination, "GET", f"/_matrix/federation/v1/make_leave/{q(room.room_id)}/{q(user_id)}")
        leave = self.sign_template(made["event"], room.version)
        await self.request(
            destination, "PUT", f"/_matrix/federation/v2/send_leave/{q(room.room_id)}/{q(leave.event_id)}", leave.json()
        )
        room.add_event(leave)
        return leave

    # -- rooms we host ----------------------------------------------------------------------

    def make_room(self, version: str, creator: str, events: list[Json] | None = None) -> FakeRoom:
        """A room on this server made of ``events`` (``initial_room_events`` by default)."""
        rv = get_room_version(version)
        events = events if events is not None else initial_room_events(rv.identifier, creator)
        room = FakeRoom(self, "" if rv.room_id_from_create_event else f"!{secrets.token_hex(9)}:{self.server_name}", rv)
        for spec in events:
            ev = room.create_event(
                type=spec["type"], sender=spec["sender"], content=spec["content"], state_key=spec.get("state_key")
            )
            if not room.room_id:
                room.room_id = compute_room_id_from_create_event(ev.pdu, rv)
            room.add_event(ev)
        self.rooms[room.room_id] = room
        return room

    def alias_for(self, localpart: str, room: FakeRoom) -> str:
        alias = f"#{localpart}:{self.server_name}"
        self.aliases[alias] = room.room_id
        return alias

    def room_of(self, room_id: str) -> FakeRoom | None:
        return self.rooms.get(room_id)

    # -- waiting ----------------------------------------------------------------------------

    async def wait_for_pdu(self, predicate: Callable[[Json], bool], timeout: float = 10.0) -> Json:
        """The first PDU received (now or later) that passes ``predicate``."""
        deadline = time.monotonic() + timeout
        while True:
            for p in self.received_pdus:
                if predicate(p):
                    return p
            if time.monotonic() > deadline:
                raise AssertionError(f"no matching PDU arrived at {self.server_name} in {timeout}s")
            await task.deferLater(reactor, 0.05, lambda: None)

    async def wait_for_edu(self, predicate: Callable[[Json], bool], timeout: float = 10.0) -> Json:
        deadline = time.monotonic() + timeout
        while True:
            for e in self.received_edus:
                if predicate(e):
                    return e
            if time.monotonic() > deadline:
                raise AssertionError(f"no matching EDU arrived at {self.server_name} in {timeout}s")
            await task.deferLater(reactor, 0.05, lambda: None)

    async def wait_for_request(self, method: str, path_regex: str, timeout: float = 10.0, after: int = 0) -> FedRequest:
        pattern = re.compile(path_regex + "$")
        deadline = time.monotonic() + timeout
        while True:
            for r in self.requests[after:]:
                if r.method == method and pattern.match(r.path):
                    return r
            if time.monotonic() > deadline:
                raise AssertionError(f"no {method} {path_regex} arrived at {self.server_name} in {timeout}s")
            await task.deferLater(reactor, 0.05, lambda: None)

    def requests_to(self, method: str, path_regex: str) -> list[FedRequest]:
        pattern = re.compile(path_regex + "$")
        return [r for r in self.requests if r.method == method and pattern.match(r.path)]

    # -- default answers ------------------------------------------------------------------

    def _install_defaults(self) -> None:
        V1, V2 = "/_matrix/federation/v1", "/_matrix/federation/v2"
        SEG = "[^/]+"
        self.handle("GET", r"/_matrix/key/v2/server(/[^/]*)?", self._on_keys)
        self.handle("GET", f"{V1}/version", self._on_version)
        self.handle("PUT", f"{V1}/send/(?P<txn>{SEG})", self._on_send)
        self.handle("GET", f"{V1}/make_join/(?P<room_id>{SEG})/(?P<user_id>{SEG})", self._on_make_join)
        self.handle("GET", f"{V1}/make_leave/(?P<room_id>{SEG})/(?P<user_id>{SEG})", self._on_make_leave)
        self.handle("PUT", f"{V2}/send_join/(?P<room_id>{SEG})/(?P<event_id>{SEG})", self._on_send_join)
        self.handle("PUT", f"{V1}/send_join/(?P<room_id>{SEG})/(?P<event_id>{SEG})", self._on_send_join_v1)
        self.handle("PUT", f"{V2}/send_leave/(?P<room_id>{SEG})/(?P<event_id>{SEG})", self._on_send_leave)
        self.handle("PUT", f"{V2}/invite/(?P<room_id>{SEG})/(?P<event_id>{SEG})", self._on_invite)
        self.handle("GET", f"{V1}/event/(?P<event_id>{SEG})", self._on_event)
        self.handle("GET", f"{V1}/state_ids/(?P<room_id>{SEG})", self._on_state_ids)
        self.handle("GET", f"{V1}/state/(?P<room_id>{SEG})", self._on_state)
        self.handle("GET", f"{V1}/event_auth/(?P<room_id>{SEG})/(?P<event_id>{SEG})", self._on_event_auth)
        self.handle("POST", f"{V1}/get_missing_events/(?P<room_id>{SEG})", self._on_get_missing_events)
        self.handle("GET", f"{V1}/backfill/(?P<room_id>{SEG})", self._on_backfill)
        self.handle("GET", f"{V1}/query/directory", self._on_directory)
        self.handle("GET", f"{V1}/query/profile", self._on_profile)
        self.handle("GET", f"{V1}/user/devices/(?P<user_id>{SEG})", self._on_devices)
        self.handle("POST", f"{V1}/user/keys/query", self._on_keys_query)

    async def _on_keys(self, req: FedRequest) -> tuple[int, Any]:
        vk = get_verify_key(self.signing_key)
        body = {
            "server_name": self.server_name,
            "verify_keys": {key_id(self.signing_key): {"key": encode_verify_key_base64(vk)}},
            "old_verify_keys": {},
            "valid_until_ts": int(time.time() * 1000) + 24 * 3600 * 1000,
        }
        return 200, sign_json(body, self.server_name, self.signing_key)

    async def _on_version(self, req: FedRequest) -> tuple[int, Any]:
        return 200, {"server": {"name": "fake", "version": "0"}}

    async def _on_send(self, req: FedRequest) -> tuple[int, Any]:
        body = req.body if isinstance(req.body, dict) else {}
        results: dict[str, Any] = {}
        for raw in body.get("pdus", []):
            self.received_pdus.append(raw)
            room = self.rooms.get(raw.get("room_id", ""))
            if room is not None:
                ev = PDU.parse(raw, room.version)
                if ev.event_id not in room.events or room.events[ev.event_id] not in room.timeline:
                    room.add_event(ev)
                results[ev.event_id] = {}
        for edu in body.get("edus", []):
            self.received_edus.append(edu)
        return 200, {"pdus": results}

    def _hosted(self, room_id: str) -> FakeRoom | None:
        return self.rooms.get(room_id)

    async def _on_make_join(self, req: FedRequest) -> tuple[int, Any]:
        room = self._hosted(req.params["room_id"])
        if room is None:
            return 404, {"errcode": "M_NOT_FOUND", "error": "Unknown room"}
        if room.version.identifier not in req.query.get("ver", ["1"]):
            return 400, {"errcode": "M_INCOMPATIBLE_ROOM_VERSION", "error": "Unsupported room version",
                         "room_version": room.version.identifier}
        return 200, {"event": self._template(room, req.params["user_id"], "join"), "room_version": room.version.identifier}

    async def _on_make_leave(self, req: FedRequest) -> tuple[int, Any]:
        room = self._hosted(req.params["room_id"])
        if room is None:
            return 404, {"errcode": "M_NOT_FOUND", "error": "Unknown room"}
        return 200, {"event": self._template(room, req.params["user_id"], "leave"), "room_version": room.version.identifier}

    def _template(self, room: FakeRoom, user_id: str, membership: str) -> Json:
        ev = room.create_event(type="m.room.member", sender=user_id, state_key=user_id,
                               content={"membership": membership}, sign=False)
        return {k: v for k, v in ev.pdu.items() if k not in ("signatures", "hashes", "event_id")}

    async def _accept_membership(self, req: FedRequest) -> tuple[FakeRoom, PDU] | tuple[int, Any]:
        room = self._hosted(req.params["room_id"])
        if room is None:
            return 404, {"errcode": "M_NOT_FOUND", "error": "Unknown room"}
        ev = PDU.parse(req.body, room.version)
        if ev.event_id != req.params["event_id"]:
            return 400, {"errcode": "M_BAD_JSON", "error": "event id mismatch"}
        signed = PDU(ev.event_id, sign_event(ev.pdu, room.version, self.server_name, self.signing_key), room.version)
        return room, signed

    async def _on_send_join(self, req: FedRequest) -> tuple[int, Any]:
        got = await self._accept_membership(req)
        if isinstance(got[0], int):
            return got  # type: ignore[return-value]
        room, ev = got  # type: ignore[misc]
        before = dict(room.state)
        room.add_event(ev)
        state = room.state_events(before)
        chain = room.auth_chain([e.event_id for e in state] + [ev.event_id])
        return 200, {
            "origin": self.server_name,
            "state": [e.json() for e in state],
            "auth_chain": [e.json() for e in chain],
            "event": ev.json(),
            "members_omitted": False,
            "servers_in_room": sorted({self.server_name} | {_server(e.sender) for e in state if e.membership == "join"}),
        }

    async def _on_send_join_v1(self, req: FedRequest) -> tuple[int, Any]:
        code, body = await self._on_send_join(req)
        return (code, [200, body]) if code == 200 else (code, body)

    async def _on_send_leave(self, req: FedRequest) -> tuple[int, Any]:
        got = await self._accept_membership(req)
        if isinstance(got[0], int):
            return got  # type: ignore[return-value]
        room, ev = got  # type: ignore[misc]
        room.add_event(ev)
        return 200, {}

    async def _on_invite(self, req: FedRequest) -> tuple[int, Any]:
        body = req.body if isinstance(req.body, dict) else {}
        version = get_room_version(str(body.get("room_version", "1")))
        ev = PDU.parse(body["event"], version)
        self.received_invites.append(body)
        signed = sign_event(ev.pdu, version, self.server_name, self.signing_key)
        return 200, {"event": signed}

    def _find(self, event_id: str) -> PDU | None:
        return self.events.get(event_id)

    async def _on_event(self, req: FedRequest) -> tuple[int, Any]:
        ev = self._find(req.params["event_id"])
        if ev is None:
            return 404, {"errcode": "M_NOT_FOUND", "error": "Unknown event"}
        return 200, {"origin": self.server_name, "origin_server_ts": int(time.time() * 1000), "pdus": [ev.json()]}

    def _state_at(self, req: FedRequest) -> tuple[FakeRoom, list[PDU], list[PDU]] | None:
        room = self.rooms.get(req.params["room_id"])
        eid = req.arg("event_id") or ""
        if room is None or eid not in room.state_before:
            return None
        state = room.state_events(room.state_before[eid])
        return room, state, room.auth_chain([e.event_id for e in state])

    async def _on_state_ids(self, req: FedRequest) -> tuple[int, Any]:
        got = self._state_at(req)
        if got is None:
            return 404, {"errcode": "M_NOT_FOUND", "error": "Unknown event"}
        _, state, chain = got
        return 200, {"pdu_ids": [e.event_id for e in state], "auth_chain_ids": [e.event_id for e in chain]}

    async def _on_state(self, req: FedRequest) -> tuple[int, Any]:
        got = self._state_at(req)
        if got is None:
            return 404, {"errcode": "M_NOT_FOUND", "error": "Unknown event"}
        _, state, chain = got
        return 200, {"pdus": [e.json() for e in state], "auth_chain": [e.json() for e in chain]}

    async def _on_event_auth(self, req: FedRequest) -> tuple[int, Any]:
        room = self.rooms.get(req.params["room_id"])
        if room is None or req.params["event_id"] not in room.events:
            return 404, {"errcode": "M_NOT_FOUND", "error": "Unknown event"}
        return 200, {"auth_chain": [e.json() for e in room.auth_chain([req.params["event_id"]])]}

    async def _on_get_missing_events(self, req: FedRequest) -> tuple[int, Any]:
        room = self.rooms.get(req.params["room_id"])
        body = req.body if isinstance(req.body, dict) else {}
        if room is None:
            return 404, {"errcode": "M_NOT_FOUND", "error": "Unknown room"}
        earliest = set(body.get("earliest_events", []))
        limit = int(body.get("limit", 10))
        out: list[PDU] = []
        seen: set[str] = set()
        frontier = [i for i in body.get("latest_events", []) if i in room.events]
        while frontier and len(out) < limit:
            eid = frontier.pop(0)
            for p in room.events[eid].prev_event_ids:
                if p in seen or p in earliest or p not in room.events:
                    continue
                seen.add(p)
                out.append(room.events[p])
                frontier.append(p)
        return 200, {"events": [e.json() for e in sorted(out[:limit], key=lambda e: e.depth)]}

    async def _on_backfill(self, req: FedRequest) -> tuple[int, Any]:
        room = self.rooms.get(req.params["room_id"])
        if room is None:
            return 404, {"errcode": "M_NOT_FOUND", "error": "Unknown room"}
        limit = int(req.arg("limit") or 10)
        out: list[PDU] = []
        seen: set[str] = set()
        frontier = [i for i in req.query.get("v", []) if i in room.events]
        while frontier and len(out) < limit:
            eid = frontier.pop(0)
            if eid in seen:
                continue
            seen.add(eid)
            out.append(room.events[eid])
            frontier.extend(room.events[eid].prev_event_ids)
        return 200, {
            "origin": self.server_name,
            "origin_server_ts": int(time.time() * 1000),
            "pdus": [e.json() for e in sorted(out, key=lambda e: -e.depth)],
        }

    async def _on_directory(self, req: FedRequest) -> tuple[int, Any]:
        room_id = self.aliases.get(req.arg("room_alias") or "")
        if room_id is None:
            return 404, {"errcode": "M_NOT_FOUND", "error": "Room alias not found"}
        return 200, {"room_id": room_id, "servers": [self.server_name]}

    async def _on_profile(self, req: FedRequest) -> tuple[int, Any]:
        profile = self.profiles.get(req.arg("user_id") or "")
        if profile is None:
            return 404, {"errcode": "M_NOT_FOUND", "error": "Profile was not found"}
        field_ = req.arg("field")
        return 200, ({field_: profile.get(field_)} if field_ else profile)

    async def _on_devices(self, req: FedRequest) -> tuple[int, Any]:
        return 200, {"user_id": req.params["user_id"], "stream_id": 0, "devices": []}

    async def _on_keys_query(self, req: FedRequest) -> tuple[int, Any]:
        wanted = (req.body or {}).get("device_keys", {}) if isinstance(req.body, dict) else {}
        return 200, {"device_keys": {u: {} for u in wanted}}


def _server(user_id: str) -> str:
    return user_id.split(":", 1)[1] if ":" in user_id else ""


def q(segment: str) -> str:
    """Percent-encode one path segment."""
    return quote(segment, safe="")


def redacted(ev: PDU) -> Json:
    return redact_event(ev.pdu, ev.version)


async def start_fake_homeserver(test: unittest.TestCase, host: str = "127.0.0.1", **kwargs: Any) -> FakeHomeserver:
    """A running fake homeserver for the duration of ``test``."""
    srv = FakeHomeserver(host, **kwargs)
    await srv.start()
    test.addCleanup(lambda: defer.ensureDeferred(srv.stop()))
    return srv
