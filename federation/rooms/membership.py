"""Membership handshakes over federation, from both ends.

As the joining (leaving, knocking) server: ``make_*`` gets an event template from a
resident server, we sign it and ``send_*`` it back; a join's answer carries the room's
state and auth chain, which we validate and store so the room is usable at once. As the
invitee's server we countersign invites; as the inviter's we have them countersigned.

As the resident server: ``on_make_*`` builds templates from the room's current state and
``on_send_*`` takes the signed event through the same ingest road as any PDU (with the
auth checks), then answers with the state (joins) or stripped state (knocks).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from federation.client import q
from federation.errors import FederationDenied, FederationError, FederationUnreachable
from federation.rooms.event_validation import InvalidPdu, check_signatures_and_hash, parse_pdu
from federation.rooms.ingest import FederationEventHandler, auth_ids_of, auth_order, mark_replaced_state
from homeserver.events.event import Event
from homeserver.events.stripped_state import STRIPPED_STATE_TYPES
from homeserver.handlers.room_events import RemoteEvent, RoomInfo, Snapshot
from homeserver.handlers.room_events.builder import new_legacy_event_id
from homeserver.http.errors import BadJson, Forbidden, MatrixError, NotFound
from homeserver.protocol import auth_rules
from homeserver.protocol.canonical_json import encode_canonical_json
from homeserver.protocol.event_hashing import add_content_hash
from homeserver.protocol.event_ids import compute_event_id
from homeserver.protocol.redaction import redact_event
from homeserver.protocol.room_versions import KNOWN_ROOM_VERSIONS, RoomVersion, UnsupportedRoomVersion, get_room_version
from homeserver.protocol.signing import sign_event
from homeserver.storage.events import StateMap
from homeserver.util.async_helpers import SharedResult
from homeserver.util.ids import now_ms, server_of

if TYPE_CHECKING:
    from federation.service import Federation
    from homeserver.app import HomeServer

logger = logging.getLogger(__name__)

SUPPORTED_VERSIONS = sorted(KNOWN_ROOM_VERSIONS)


def pdu_for_federation(ev: Event) -> dict[str, Any]:
    """An event as we serve it to other servers: no local ``unsigned`` data, and in
    its redacted form once redacted (as Synapse serves it)."""
    pdu = {k: v for k, v in ev.pdu.items() if k != "unsigned"}
    if ev.redacted_by:
        pdu = redact_event(pdu, ev.room_version)
    return pdu


def stripped(ev: Event) -> dict[str, Any]:
    return {"type": ev.type, "state_key": ev.state_key, "content": ev.content, "sender": ev.sender}


class FederationMembership:
    def __init__(self, hs: HomeServer, fed: Federation) -> None:
        self.hs = hs
        self.fed = fed
        self.store = hs.store

    @property
    def events(self) -> FederationEventHandler:
        return self.fed.ingest

    # -- helpers ---------------------------------------------------------------------

    def _sign_template(self, template: dict[str, Any], version: RoomVersion, content: dict[str, Any]) -> Event:
        """Our event made of a resident server's template (or of ``_local_leave``'s):
        its place in the room, our content, time, hashes and signature. In room versions
        1 and 2 the event id is ours too (Synapse's joining side replaces the template's
        id the same way): the server named in the id must sign the event."""
        pdu: dict[str, Any] = {
            k: template[k]
            for k in ("type", "room_id", "sender", "state_key", "prev_events", "auth_events", "depth", "origin")
            if k in template
        }
        pdu["content"] = {**(template.get("content") or {}), **content}
        pdu["origin_server_ts"] = now_ms()
        if not version.updated_redaction_rules:
            pdu["origin"] = self.hs.server_name
        if version.event_id_in_pdu:
            pdu["event_id"] = new_legacy_event_id(self.hs.server_name)
        pdu = add_content_hash(pdu)
        pdu = sign_event(pdu, version, self.hs.server_name, self.hs.signing_key)
        ev = Event(event_id=compute_event_id(pdu, version), pdu=pdu, room_version=version.identifier)
        return ev

    async def stripped_state(self, room: RoomInfo, sender: str | None, full_create: bool = False) -> list[dict[str, Any]]:
        keys = [(t, "") for t in STRIPPED_STATE_TYPES]
        if sender:
            keys.append(("m.room.member", sender))
        ids = [room.state[k] for k in keys if k in room.state]
        events = await self.store.get_events(ids)
        out = []
        for eid in ids:
            ev = events.get(eid)
            if ev is None:
                continue
            # Spec v1.16: invite_room_state entries are full PDUs (the create event at least).
            out.append(pdu_for_federation(ev) if full_create else stripped(ev))
        return out

    async def _make(
        self, servers: list[str], kind: str, room_id: str, user_id: str
    ) -> tuple[str, dict[str, Any], RoomVersion]:
        """make_{kind} through the first server that answers. As Synapse's
        _try_destination_list: the next server is tried when one is unreachable, is
        refused by our policy, fails (5xx) or answers an error that another server may
        not give (M_NOT_FOUND; for joins M_UNABLE_TO_AUTHORISE_JOIN and
        M_UNABLE_TO_GRANT_JOIN); any other error (a missing endpoint too) is the answer.
        None left: 502."""
        failover = {"M_NOT_FOUND"}
        if kind == "join":
            failover |= {"M_UNABLE_TO_AUTHORISE_JOIN", "M_UNABLE_TO_GRANT_JOIN"}
        for server in servers:
            if server == self.hs.server_name:
                continue
            try:
                query = {"ver": SUPPORTED_VERSIONS} if kind in ("join", "knock") else None
                resp = await self.fed.request(
                    server, "GET", f"/_matrix/federation/v1/make_{kind}/{q(room_id)}/{q(user_id)}", query=query
                )
            except (FederationUnreachable, FederationDenied) as e:
                logger.info("make_%s via %s failed: %s", kind, server, e)
                continue
            except FederationError as e:
                logger.info("make_%s via %s failed: %s", kind, server, e)
                if 500 <= e.code < 600 or (400 <= e.code < 500 and e.errcode in failover):
                    continue
                raise
            if not isinstance(resp, dict) or not isinstance(resp.get("event"), dict):
                logger.info("make_%s via %s: a bad answer", kind, server)
                continue
            try:
                version = get_room_version(str(resp.get("room_version", "1")))
            except UnsupportedRoomVersion:
                raise MatrixError(400, "M_UNSUPPORTED_ROOM_VERSION", "Room version not supported") from None
            return server, resp["event"], version
        if not servers:
            raise MatrixError(502, "M_UNKNOWN", f"Failed to make_{kind} via any server: No servers specified.")
        raise MatrixError(502, "M_UNKNOWN", f"Failed to make_{kind} via any server")

    # -- joining (as the joining server) ---------------------------------------------

    async def remote_join(self, room_id: str, user_id: str, servers: list[str], content: dict[str, Any]) -> str:
        server, template, version = await self._make(servers, "join", room_id, user_id)
        if template.get("type") != "m.room.member" or template.get("state_key") != user_id:
            raise MatrixError(502, "M_UNKNOWN", "Bad join template")
        ev = self._sign_template(template, version, {**content, "membership": "join"})
        joining = self.events.joining.get(room_id)
        if joining is None:
            joining = self.events.joining[room_id] = SharedResult()
        try:
            await self._send_join(server, room_id, version, ev)
        finally:
            if self.events.joining.get(room_id) is joining:
                del self.events.joining[room_id]
            joining.callback(None)
        return room_id

    async def _send_join(self, server: str, room_id: str, version: RoomVersion, ev: Event) -> None:
        resp = await self.fed.request(
            server, "PUT", f"/_matrix/federation/v2/send_join/{q(room_id)}/{q(ev.event_id)}", body=ev.pdu
        )
        if not isinstance(resp, dict):
            raise MatrixError(502, "M_UNKNOWN", "Bad send_join answer")
        returned = resp.get("event")
        if isinstance(returned, dict) and compute_event_id(returned, version) == ev.event_id:
            # A restricted join comes back countersigned by the authorising server.
            sigs = dict(ev.pdu["signatures"])
            for srv, s in (returned.get("signatures") or {}).items():
                if isinstance(s, dict):
                    sigs.setdefault(srv, {}).update(s)
            ev.pdu["signatures"] = sigs
        room = await self.hs.rooms.get_room(room_id)
        if room is not None and room.joined_local:
            # A restricted join authorised by another server, into a room we are in: our
            # state is current, the join is one more event of the room (Synapse persists
            # it with the room's events, it does not start the room over).
            reason = await self.events.submit(server, ev)
            if reason is not None:
                raise Forbidden(f"The join was not allowed: {reason}")
            return
        await self._persist_join(room_id, version, ev, resp, server)

    async def _persist_join(self, room_id: str, version: RoomVersion, join: Event, resp: dict[str, Any], origin: str) -> None:
        keyring = self.fed.keyring
        received: dict[str, Event] = {}
        raw_state = resp.get("state") or []
        raw_chain = resp.get("auth_chain") or []
        state_ids: list[str] = []
        for lst, is_state in ((raw_chain, False), (raw_state, True)):
            if not isinstance(lst, list):
                raise MatrixError(502, "M_UNKNOWN", "Bad send_join answer")
            for raw in lst:
                try:
                    ev = await check_signatures_and_hash(keyring, parse_pdu(raw, version), version)
                except InvalidPdu as e:
                    logger.info("dropping event of the join answer: %s", e)
                    continue
                if ev.room_id != room_id:
                    continue
                received.setdefault(ev.event_id, ev)
                if is_state:
                    state_ids.append(ev.event_id)
        creates = [e for e in received.values() if e.type == "m.room.create" and e.state_key == ""]
        if not creates:
            raise MatrixError(502, "M_UNKNOWN", "The join answer has no create event")
        if str(creates[0].content.get("room_version", "1")) != version.identifier:
            raise MatrixError(502, "M_UNKNOWN", "The room version does not match the create event")
        room = await self.hs.rooms.get_room(room_id)
        if room is None:
            room = self.hs.rooms.register_new_room(room_id, version)
        ingest = self.events
        have = await self.store.have_events(received)
        outliers = [e for e in auth_order(received.values(), version) if e.event_id not in have]
        pending = dict(received)
        for ev in outliers:
            ev.rejected_reason = await ingest.check_against_auth_events(ev, version, pending)
            if ev.rejected_reason:
                logger.info("join state event %s rejected: %s", ev.event_id, ev.rejected_reason)
        known = await self.store.get_events(have, allow_rejected=True)
        state: StateMap = {}
        for eid in state_ids:
            found = known.get(eid) or pending.get(eid)
            if found is not None and found.is_state and not found.rejected_reason:
                state[found.state_pair] = eid
        reason = await ingest.check_against_auth_events(join, version, pending)
        if reason is None:
            reason = await ingest.check_against_state(join, version, state, pending)
        if reason is not None:
            raise Forbidden(f"The join was not allowed: {reason}")
        replaced = state.get(join.state_pair)
        if replaced is not None:
            # the invite (or earlier membership) the join replaces, for the joiner's clients
            mark_replaced_state(join, replaced, pending.get(replaced) or known.get(replaced))
        before = Snapshot(state)
        after = Snapshot({**state, join.state_pair: join.event_id}, base=before)

        async def persist() -> None:
            await self.hs.rooms.persister.persist_remote_events(
                room,
                [RemoteEvent(join, before)],
                outliers=outliers,
                new_state=after,
                extremities={join.event_id},
                new_room=True,
            )

        await self.hs.rooms.run_exclusive(room, persist)
        ingest._after.put(join.event_id, after)
        logger.info("joined %s through %s: %d state events", room_id, origin, len(state))

    # -- invites ---------------------------------------------------------------------

    async def countersign_invite(self, event: Event) -> Event:
        """Has the invitee's server countersign a local invite (called before persisting)."""
        invitee = event.state_key or ""
        dest = server_of(invitee)
        room = await self.hs.rooms.get_room(event.room_id)
        invite_state = await self.stripped_state(room, event.sender, full_create=True) if room else []
        pdu = {k: v for k, v in event.pdu.items() if k != "unsigned"}
        resp = await self.fed.request(
            dest,
            "PUT",
            f"/_matrix/federation/v2/invite/{q(event.room_id)}/{q(event.event_id)}",
            body={"room_version": event.room_version, "event": pdu, "invite_room_state": invite_state},
        )
        signed = resp.get("event") if isinstance(resp, dict) else None
        if not isinstance(signed, dict):
            raise MatrixError(502, "M_UNKNOWN", "Bad invite answer")
        version = get_room_version(event.room_version)
        try:
            await self.fed.keyring.verify_json_for_server(dest, redact_event(signed, version))
        except MatrixError as e:
            raise MatrixError(502, "M_UNKNOWN", f"The invitee's server did not sign the invite: {e.msg}") from None
        if compute_event_id(signed, version) != event.event_id:
            raise MatrixError(502, "M_UNKNOWN", "The invitee's server changed the invite")
        sigs = {s: dict(v) for s, v in event.pdu["signatures"].items()}
        sigs.setdefault(dest, {}).update(signed["signatures"].get(dest, {}))
        new_pdu = dict(event.pdu)
        new_pdu["signatures"] = sigs
        out = Event(
            event_id=event.event_id,
            pdu=new_pdu,
            room_version=event.room_version,
            txn_id=event.txn_id,
            device_id=event.device_id,
            room=event.room,
        )
        return out

    async def on_invite(self, origin: str, room_id: str, event_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """PUT /v2/invite: countersign an invite of one of our users."""
        try:
            version = get_room_version(str(body.get("room_version", "")))
        except UnsupportedRoomVersion:
            raise MatrixError(400, "M_INCOMPATIBLE_ROOM_VERSION", "Room version not supported",
                              room_version=body.get("room_version")) from None
        try:
            ev = parse_pdu(body.get("event"), version)
        except InvalidPdu as e:
            raise BadJson(str(e)) from None
        if ev.event_id != event_id or ev.room_id != room_id:
            raise BadJson("Event id or room id does not match the request")
        if ev.type != "m.room.member" or ev.membership != "invite":
            raise BadJson("Not an invite")
        if not self.hs.is_mine(ev.state_key or ""):
            raise BadJson("The invite event must be for this server")
        if server_of(ev.sender) != origin:
            raise Forbidden("The inviter's server must send the invite")
        from federation.server_acl import check_server_acl

        await check_server_acl(self.hs, room_id, origin)
        try:
            ev = await check_signatures_and_hash(self.fed.keyring, ev, version)
        except InvalidPdu as e:
            raise Forbidden(str(e)) from None
        if ev.internal.get("bad_hash"):
            raise Forbidden("Content hash mismatch")
        signed = sign_event(ev.pdu, version, self.hs.server_name, self.hs.signing_key)
        room = await self.hs.rooms.get_room(room_id)
        if room is None or not room.joined_local:
            # We are not in the room: keep the invite as an outlier so the invitee sees it.
            raw_state = body.get("invite_room_state") or []
            stripped_state = [
                {k: s.get(k) for k in ("type", "state_key", "content", "sender")}
                for s in raw_state
                if isinstance(s, dict) and isinstance(s.get("type"), str)
            ]
            stored = dict(signed)
            stored["unsigned"] = {"invite_room_state": stripped_state}
            invite = Event(event_id=event_id, pdu=stored, room_version=version.identifier, room=room_id)
            await self._persist_outlier_membership(room_id, version, invite)
        return {"event": signed}

    async def _persist_outlier_membership(self, room_id: str, version: RoomVersion, ev: Event) -> None:
        """An invite / knock / leave of one of our users in a room we are not in: stored
        as an outlier with a local membership row, so /sync shows it."""
        room = await self.hs.rooms.get_room(room_id)
        new_room = room is None
        if room is None:
            room = self.hs.rooms.register_new_room(room_id, version)
        if await self.store.have_events([ev.event_id]):
            return
        await self.hs.rooms.persister.persist_remote_events(room, [], outliers=[ev], new_room=new_room, outlier_memberships=[ev])

    # -- leaving / rejecting invites (as the leaving server) ------------------------

    async def remote_leave(self, room_id: str, user_id: str, servers: list[str], content: dict[str, Any]) -> None:
        try:
            server, template, version = await self._make(servers, "leave", room_id, user_id)
            ev = self._sign_template(template, version, {**content, "membership": "leave"})
            await self.fed.request(
                server, "PUT", f"/_matrix/federation/v2/send_leave/{q(room_id)}/{q(ev.event_id)}", body=ev.pdu
            )
        except MatrixError as e:
            # Synapse rejects the invite locally when no server helps: the user must be
            # able to get rid of it.
            logger.info("remote leave of %s failed (%s): rejecting locally", room_id, e)
            local = await self._local_leave(room_id, user_id, content)
            if local is None:
                raise
            ev, version = local, get_room_version(local.room_version)
        ev.room = room_id
        await self._persist_outlier_membership(room_id, version, ev)

    async def _local_leave(self, room_id: str, user_id: str, content: dict[str, Any]) -> Event | None:
        lm = await self.store.get_local_membership(user_id, room_id)
        if lm is None:
            return None
        prior = await self.store.get_event(lm.event_id)
        if prior is None:
            return None
        version = get_room_version(prior.room_version)
        cited = await self.hs.rooms.builder.cite([prior.event_id], version, {prior.event_id: prior})
        template = {
            "type": "m.room.member",
            "room_id": room_id,
            "sender": user_id,
            "state_key": user_id,
            "prev_events": cited,
            "auth_events": cited,
            "depth": prior.depth + 1,
        }
        return self._sign_template(template, version, {**content, "membership": "leave"})

    # -- knocking (as the knocking server) -------------------------------------------

    async def remote_knock(self, room_id: str, user_id: str, servers: list[str], content: dict[str, Any]) -> str:
        server, template, version = await self._make(servers, "knock", room_id, user_id)
        ev = self._sign_template(template, version, {**content, "membership": "knock"})
        resp = await self.fed.request(
            server, "PUT", f"/_matrix/federation/v1/send_knock/{q(room_id)}/{q(ev.event_id)}", body=ev.pdu
        )
        raw_state = (resp or {}).get("knock_room_state") or (resp or {}).get("knock_state_events") or []
        ev.pdu["unsigned"] = {
            "knock_room_state": [
                {k: s.get(k) for k in ("type", "state_key", "content", "sender")}
                for s in raw_state
                if isinstance(s, dict)
            ]
        }
        ev.room = room_id
        await self._persist_outlier_membership(room_id, version, ev)
        return room_id

    # -- as the resident server --------------------------------------------------------

    async def _resident_room(self, origin: str, room_id: str) -> RoomInfo:
        from federation.server_acl import check_server_acl

        room = await self.hs.rooms.get_room(room_id)
        if room is None or room.state_group is None or not room.joined_local:
            raise NotFound("Unknown room")
        await check_server_acl(self.hs, room_id, origin)
        return room

    async def on_make(self, origin: str, membership: str, room_id: str, user_id: str, versions: list[str]) -> dict[str, Any]:
        room = await self._resident_room(origin, room_id)
        if server_of(user_id) != origin:
            raise Forbidden("The user must belong to the requesting server")
        if membership in ("join", "knock") and room.version.identifier not in (versions or ["1"]):
            raise MatrixError(
                400, "M_INCOMPATIBLE_ROOM_VERSION", "Your homeserver does not support this room version",
                room_version=room.version.identifier,
            )
        content: dict[str, Any] = {"membership": membership}
        if membership == "join":
            authoriser = await self.hs.membership.restricted_join_authoriser(room, user_id)
            if authoriser is not None:
                content["join_authorised_via_users_server"] = authoriser
        # Placed in the room exactly as a local event would be; the joining server signs it.
        pdu = await self.hs.rooms.builder.new_pdu(
            room, "m.room.member", user_id, content, state_key=user_id, state=room.state,
            extremities=room.extremities, depth=room.depth, origin=origin,
        )
        try:
            await self.hs.rooms.authoriser.check({"event_id": "$template", **pdu}, room.version, room.state)
        except auth_rules.AuthError as e:
            raise Forbidden(f"You are not allowed to {membership} this room: {e}") from None
        return {"event": pdu, "room_version": room.version.identifier}

    async def on_send(self, origin: str, membership: str, room_id: str, event_id: str, body: dict[str, Any]) -> Event:
        room = await self._resident_room(origin, room_id)
        version = room.version
        try:
            ev = parse_pdu(body, version)
        except InvalidPdu as e:
            raise BadJson(str(e)) from None
        if ev.event_id != event_id or ev.room_id != room_id:
            raise BadJson("Event id or room id does not match the request")
        if ev.type != "m.room.member" or ev.membership != membership or ev.state_key != ev.sender:
            raise BadJson(f"Not a {membership} event")
        if server_of(ev.sender) != origin:
            raise Forbidden("The member must belong to the requesting server")
        if len(encode_canonical_json(ev.pdu)) > 65536:
            raise MatrixError(413, "M_TOO_LARGE", "Event too large")
        authoriser = ev.content.get("join_authorised_via_users_server") if membership == "join" else None
        if isinstance(authoriser, str) and self.hs.is_mine(authoriser):
            # Restricted join vouched for by one of our users: our signature makes it valid.
            ev.pdu = sign_event(ev.pdu, version, self.hs.server_name, self.hs.signing_key)
        existing = await self.store.get_event(event_id, allow_rejected=True)
        if existing is None or existing.outlier:
            reason = await self.events.submit(origin, ev)
            if reason is not None:
                raise Forbidden(reason)
            existing = await self.store.get_event(event_id, allow_rejected=True)
        if existing is None or existing.rejected_reason or existing.soft_failed:
            raise Forbidden(f"The {membership} event was not accepted")
        # As the resident server we pass the new member's event on to the room's other
        # servers (the sender hook only forwards events of our own users).
        dests = await self.store.get_room_server_names(room_id) - {self.hs.server_name, origin}
        if dests and self.hs.config.federation.enabled:
            self.fed.sender.send_pdu(sorted(dests), existing)
        return existing

    async def on_send_join(
        self, origin: str, room_id: str, event_id: str, body: dict[str, Any], omit_members: bool = False
    ) -> dict[str, Any]:
        """The join, then the state before it and its auth chain. With ``omit_members``
        (a joining server that can do partial-state joins, MSC3706) the state leaves out
        the membership events but those the joiner needs (Synapse's answer), and lists the
        servers that were in the room."""
        ev = await self.on_send(origin, "join", room_id, event_id, body)
        state: StateMap = await self.store.get_state_group(ev.state_group) if ev.state_group is not None else {}
        state_ids = await self._partial_join_state(state, ev) if omit_members else list(state.values())
        state_events = await self.store.get_events(state_ids)
        chain_ids = await self.store.get_auth_chain_ids(state_ids + auth_ids_of(ev, ev_version(ev)))
        if omit_members:
            chain_ids -= set(state_ids)  # the joiner has those already
        chain_events = await self.store.get_events(chain_ids)
        if omit_members:
            servers = await self._joined_servers(state)
        else:
            servers = await self.store.get_room_server_names(room_id) | {self.hs.server_name}
        return {
            "origin": self.hs.server_name,
            "state": [pdu_for_federation(e) for e in state_events.values()],
            "auth_chain": [pdu_for_federation(e) for e in chain_events.values()],
            "event": pdu_for_federation(ev),
            "members_omitted": omit_members,
            "servers_in_room": sorted(servers),
        }

    async def _partial_join_state(self, state: StateMap, join: Event) -> list[str]:
        """Synapse's partial-state answer: every non-membership state event, the joiner's
        own earlier membership, and, in a room without a name or canonical alias, the
        memberships of its heroes (up to five members, joined or invited first, else
        those who left, in the order they became so)."""
        ids = [eid for (t, _), eid in state.items() if t != "m.room.member"]
        own = state.get(("m.room.member", join.state_key or ""))
        if own is not None:
            ids.append(own)
        if ("m.room.name", "") in state or ("m.room.canonical_alias", "") in state:
            return ids
        members = await self.store.get_events(
            [eid for (t, sk), eid in state.items() if t == "m.room.member" and sk != join.state_key]
        )
        ordered = sorted(members.values(), key=lambda e: e.stream_ordering)
        present = [e for e in ordered if e.membership in ("join", "invite")]
        gone = [e for e in ordered if e.membership in ("leave", "ban")]
        ids.extend(e.event_id for e in (present or gone)[:5])
        return ids

    async def _joined_servers(self, state: StateMap) -> set[str]:
        members = await self.store.get_events([eid for (t, _), eid in state.items() if t == "m.room.member"])
        return {server_of(e.state_key or "") for e in members.values() if e.membership == "join"}

    async def on_send_knock(self, origin: str, room_id: str, event_id: str, body: dict[str, Any]) -> dict[str, Any]:
        await self.on_send(origin, "knock", room_id, event_id, body)
        room = await self.hs.rooms.get_room(room_id)
        assert room is not None
        return {"knock_room_state": await self.stripped_state(room, None, full_create=True)}


def ev_version(ev: Event) -> RoomVersion:
    return get_room_version(ev.room_version)
