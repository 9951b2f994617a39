"""Receiving PDUs: the checks on receipt, adversarial events, missing history, bursts.

One WSPR server ("a.test", federation transport off) hosts a room; a fake remote
server "remote.test" with its own signing key hands PDUs straight to
``hs.federation.ingest.on_receive_pdus`` and answers the server's federation requests
from memory.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import unquote

from signedjson.key import SigningKey
from twisted.trial import unittest

from federation.errors import FederationError
from homeserver.handlers.room_events.builder import select_auth_events
from homeserver.protocol.canonical_json import encode_canonical_json
from homeserver.protocol.event_hashing import add_content_hash
from homeserver.protocol.event_ids import compute_event_id
from homeserver.protocol.signing import (
    generate_signing_key,
    get_verify_key,
    key_id,
    sign_event,
    verify_json_with_keys,
)
from homeserver.util.ids import now_ms
from tests.support.wspr import MatrixClient, start_homeserver

REMOTE = "remote.test"


class FakeKeyring:
    def __init__(self, keys: dict[str, SigningKey]) -> None:
        self.keys = keys

    async def verify_json_for_server(self, server_name: str, obj: Any, valid_at_ts: int | None = None) -> None:
        key = self.keys.get(server_name)
        if key is None:
            raise FederationError(401, "M_UNAUTHORIZED", f"no key for {server_name}")
        vk = get_verify_key(key)
        verify_json_with_keys(obj, server_name, {key_id(vk): vk})


class FakeRemote:
    """Answers get_missing_events / state_ids / event / event_auth from its events."""

    def __init__(self) -> None:
        self.events: dict[str, dict[str, Any]] = {}
        self.requests: list[str] = []
        self.state_for_ids: dict[Any, str] = {}
        self.state_at: dict[str, list[str]] = {}  # event id -> ids of the state before it
        self.no_missing_events = False

    async def request(self, destination: str, method: str, path: str, query: Any = None, body: Any = None, **kw: Any) -> Any:
        self.requests.append(path)
        if "/get_missing_events/" in path and self.no_missing_events:
            return {"events": []}
        if "/get_missing_events/" in path:
            latest = body["latest_events"]
            earliest = set(body["earliest_events"])
            out: list[dict[str, Any]] = []
            seen: set[str] = set()
            frontier = list(latest)
            while frontier and len(out) < body["limit"]:
                eid = frontier.pop(0)
                for p in self.events.get(eid, {}).get("prev_events", []):
                    if p in seen or p in earliest or p not in self.events:
                        continue
                    seen.add(p)
                    out.append(self.events[p])
                    frontier.append(p)
            return {"events": sorted(out, key=lambda e: e["depth"])}
        if "/state/" in path and query and query.get("event_id") in self.state_at:
            ids = self.state_at[query["event_id"]]
            return {"pdus": [self.events[i] for i in ids if i in self.events], "auth_chain": []}
        if "/state_ids/" in path and query and query.get("event_id") in self.state_at:
            return {"pdu_ids": list(self.state_at[query["event_id"]]), "auth_chain_ids": []}
        if "/state_ids/" in path:
            # eve only sends messages: the state at any of her events is the room's state
            # when the test set it (``state_for_ids``)
            return {"pdu_ids": sorted(self.state_for_ids.values()), "auth_chain_ids": []}
        if "/event/" in path:
            eid = unquote(path.rsplit("/", 1)[1])
            if eid not in self.events:
                raise FederationError(404, "M_NOT_FOUND", "no such event")
            return {"pdus": [self.events[eid]]}
        raise FederationError(404, "M_UNRECOGNIZED", path)


class IngestTest(unittest.TestCase):
    timeout = 120

    async def _setup(self) -> None:
        self.server = await start_homeserver(self, server_name="a.test", federation={"enabled": False})
        self.hs = self.server.hs
        self.remote_key = generate_signing_key("r1")
        self.hs.federation.keyring = FakeKeyring({REMOTE: self.remote_key, "a.test": self.hs.signing_key})
        self.remote = FakeRemote()
        self.hs.federation.request = self.remote.request
        self.alice = await MatrixClient.register(self.server.base_url, "alice")
        self.room_id = (await self.alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        self.eve = f"@eve:{REMOTE}"
        self.depth = 0
        join = self.make(type="m.room.member", state_key=self.eve, content={"membership": "join"})
        self.assertEqual(await self.receive(join), {join["_id"]: None})

    @property
    def room(self) -> Any:
        return self.hs.rooms.cache._rooms[self.room_id]

    def make(
        self,
        *,
        type: str = "m.room.message",
        content: dict[str, Any] | None = None,
        sender: str | None = None,
        state_key: str | None = None,
        prev_events: list[str] | None = None,
        key: SigningKey | None = None,
        signer: str = REMOTE,
        tamper: Any = None,
        auth_state: dict[Any, str] | None = None,
    ) -> dict[str, Any]:
        """A signed PDU by eve (or ``sender``) on top of the room's extremities."""
        room = self.room
        pdu: dict[str, Any] = {
            "type": type,
            "room_id": self.room_id,
            "sender": sender or self.eve,
            "content": content if content is not None else {"msgtype": "m.text", "body": "hi"},
            "origin_server_ts": now_ms(),
            "prev_events": prev_events if prev_events is not None else sorted(room.extremities),
        }
        if state_key is not None:
            pdu["state_key"] = state_key
        self.depth = max(self.depth, room.depth) + 1
        pdu["depth"] = self.depth
        pdu["auth_events"] = select_auth_events(pdu, auth_state or room.state, room.version)
        pdu = add_content_hash(pdu)
        pdu = sign_event(pdu, room.version, signer, key or self.remote_key)
        if tamper is not None:
            tamper(pdu)
        eid = compute_event_id(pdu, room.version)
        self.remote.events[eid] = pdu
        return {**pdu, "_id": eid}

    async def receive(self, *pdus: dict[str, Any]) -> dict[str, str | None]:
        clean = [{k: v for k, v in p.items() if k != "_id"} for p in pdus]
        return await self.hs.federation.ingest.on_receive_pdus(REMOTE, clean)

    async def assert_dropped_and_state_unchanged(self, pdu: dict[str, Any], stored_rejected: bool = False) -> None:
        state = dict(self.room.state)
        extremities = set(self.room.extremities)
        result = await self.receive(pdu)
        self.assertIsNotNone(result.get(pdu["_id"]), result)
        self.assertEqual(self.room.state, state)
        self.assertEqual(self.room.extremities, extremities)
        self.assertEqual(await self.hs.store.get_current_state_ids(self.room_id), state)
        # never served as a valid event
        self.assertIsNone(await self.hs.store.get_event(pdu["_id"]))
        stored = await self.hs.store.get_event(pdu["_id"], allow_rejected=True)
        if stored_rejected:
            self.assertIsNotNone(stored)
            self.assertTrue(stored.rejected_reason)
        msgs = await self.alice.get(f"/rooms/{self.room_id}/messages?dir=b&limit=50")
        self.assertNotIn(pdu["_id"], [e["event_id"] for e in msgs["chunk"]])

    async def test_valid_events_are_accepted(self) -> None:
        await self._setup()
        self.assertIn(self.eve, self.room.state and {k[1] for k in self.room.state if k[0] == "m.room.member"})
        msg = self.make(content={"msgtype": "m.text", "body": "hello"})
        self.assertEqual(await self.receive(msg), {msg["_id"]: None})
        sync = await self.alice.sync()
        bodies = [e["content"].get("body") for e in sync["rooms"]["join"][self.room_id]["timeline"]["events"]]
        self.assertIn("hello", bodies)
        # a duplicate is accepted and changes nothing
        self.assertEqual(await self.receive(msg), {msg["_id"]: None})

    async def test_bad_signature(self) -> None:
        await self._setup()

        def corrupt(pdu: dict[str, Any]) -> None:
            sig = pdu["signatures"][REMOTE]
            k = next(iter(sig))
            sig[k] = ("A" if sig[k][0] != "A" else "B") + sig[k][1:]

        await self.assert_dropped_and_state_unchanged(self.make(tamper=corrupt))
        # signed with a key that is not the server's
        await self.assert_dropped_and_state_unchanged(self.make(key=generate_signing_key("r1")))

    async def test_forged_sender_server(self) -> None:
        await self._setup()
        # remote.test signs an event claiming to be from our alice
        forged = self.make(sender=self.alice.user_id, content={"msgtype": "m.text", "body": "not alice"})
        await self.assert_dropped_and_state_unchanged(forged)
        # and a state event for a user of a third server
        forged = self.make(
            type="m.room.member", sender="@mallory:third.test", state_key="@mallory:third.test", content={"membership": "join"}
        )
        await self.assert_dropped_and_state_unchanged(forged)

    async def test_bad_content_hash_is_redacted(self) -> None:
        await self._setup()

        def change_body(pdu: dict[str, Any]) -> None:
            pdu["content"] = {"msgtype": "m.text", "body": "changed in transit"}

        pdu = self.make(tamper=change_body)
        self.assertEqual(await self.receive(pdu), {pdu["_id"]: None})
        stored = await self.hs.store.get_event(pdu["_id"])
        self.assertIsNotNone(stored)
        self.assertEqual(stored.content, {})  # only the redacted form is kept

        # a state event with a bad hash is redacted *before* the auth checks (and a
        # change to a key the signature covers breaks the signature instead)
        def change_extra(p: dict[str, Any]) -> None:
            p["content"] = {**p["content"], "extra": "changed"}

        pl = self.make(
            type="m.room.power_levels", state_key="", content={"users": {self.eve: 100}, "extra": 1}, tamper=change_extra
        )
        await self.assert_dropped_and_state_unchanged(pl, stored_rejected=True)
        stored = await self.hs.store.get_event(pl["_id"], allow_rejected=True)
        self.assertNotIn("extra", stored.content)

        def change_users(p: dict[str, Any]) -> None:
            p["content"] = {"users": {self.eve: 50}}

        pl = self.make(type="m.room.power_levels", state_key="", content={"users": {self.eve: 100}}, tamper=change_users)
        await self.assert_dropped_and_state_unchanged(pl)

    async def test_auth_rule_violation_rejected(self) -> None:
        await self._setup()
        pl = self.make(type="m.room.power_levels", state_key="", content={"users": {self.eve: 100}})
        await self.assert_dropped_and_state_unchanged(pl, stored_rejected=True)
        # a later event citing the rejected one as an auth event is rejected too
        msg = self.make()
        msg_pdu = {k: v for k, v in msg.items() if k != "_id"}
        # events building on a rejected event still work (its state is the state before it)
        self.assertEqual(await self.receive(msg), {msg["_id"]: None})
        # a user who never joined may not send
        stranger = self.make(sender=f"@stranger:{REMOTE}")
        await self.assert_dropped_and_state_unchanged(stranger, stored_rejected=True)
        self.assertTrue(msg_pdu)

    async def test_oversized_event_dropped(self) -> None:
        await self._setup()
        big = self.make(content={"msgtype": "m.text", "body": "x" * 70000})
        self.assertGreater(len(encode_canonical_json({k: v for k, v in big.items() if k != "_id"})), 65536)
        await self.assert_dropped_and_state_unchanged(big)

    async def test_soft_fail_after_ban(self) -> None:
        await self._setup()
        before_ban = sorted(self.room.extremities)
        state_before_ban = dict(self.room.state)
        await self.alice.post(f"/rooms/{self.room_id}/ban", {"user_id": self.eve})
        # eve sends on a branch from before her ban: fine there, not in the room as it is now
        msg = self.make(prev_events=before_ban, content={"msgtype": "m.text", "body": "sneaky"}, auth_state=state_before_ban)
        self.assertEqual(await self.receive(msg), {msg["_id"]: None})
        stored = await self.hs.store.get_event(msg["_id"])
        self.assertTrue(stored.soft_failed)
        self.assertNotIn(msg["_id"], self.room.extremities)
        sync = await self.alice.sync()
        ids = [e["event_id"] for e in sync["rooms"]["join"][self.room_id]["timeline"]["events"]]
        self.assertNotIn(msg["_id"], ids)

    async def test_missing_prev_events_fetched(self) -> None:
        await self._setup()
        chain = []
        prev = sorted(self.room.extremities)
        for i in range(8):
            ev = self.make(prev_events=prev, content={"msgtype": "m.text", "body": f"gap {i}"})
            chain.append(ev)
            prev = [ev["_id"]]
        # only the last one arrives: the rest come with /get_missing_events
        self.assertEqual(await self.receive(chain[-1]), {chain[-1]["_id"]: None})
        self.assertTrue(any("get_missing_events" in p for p in self.remote.requests))
        for ev in chain:
            self.assertIsNotNone(await self.hs.store.get_event(ev["_id"]), ev["content"]["body"])
        self.assertEqual(self.room.extremities, {chain[-1]["_id"]})

    async def test_fork_resolves_state(self) -> None:
        await self._setup()
        base = sorted(self.room.extremities)
        # alice (local) and eve (remote) both extend the same point: two extremities
        topic = self.make(prev_events=base, type="m.room.message")
        await self.alice.put(f"/rooms/{self.room_id}/state/m.room.topic/", {"topic": "local"})
        self.assertEqual(await self.receive(topic), {topic["_id"]: None})
        self.assertEqual(len(self.room.extremities), 2)
        self.assertIn(("m.room.topic", ""), self.room.state)
        # the next local event merges both
        await self.alice.send_message(self.room_id, "merge")
        self.assertEqual(len(self.room.extremities), 1)

    async def test_burst_of_thousands_processed_in_order(self) -> None:
        await self._setup()
        n = 2000
        pdus = []
        prev = sorted(self.room.extremities)
        for i in range(n):
            ev = self.make(prev_events=prev, content={"msgtype": "m.text", "body": f"burst {i}"})
            pdus.append(ev)
            prev = [ev["_id"]]
        # 40 transactions of 50 PDUs, all in flight at once
        from twisted.internet import defer

        t0 = time.monotonic()
        results = await defer.gatherResults(
            [defer.ensureDeferred(self.receive(*pdus[i : i + 50])) for i in range(0, n, 50)]
        )
        elapsed = time.monotonic() - t0
        merged: dict[str, Any] = {}
        for r in results:
            merged.update(r)
        self.assertEqual(len(merged), n)
        self.assertEqual([k for k, v in merged.items() if v is not None], [])
        self.assertEqual(self.room.extremities, {pdus[-1]["_id"]})
        events = await self.hs.store.get_events(p["_id"] for p in pdus)
        self.assertEqual(len(events), n)
        orderings = [events[p["_id"]].stream_ordering for p in pdus]
        self.assertEqual(orderings, sorted(orderings))
        print(f"\n  {n} remote events in {elapsed:.1f}s ({n / elapsed:.0f}/s)")

    async def test_remote_redactions_need_power_or_same_server(self) -> None:
        await self._setup()
        alice_msg = await self.alice.send_message(self.room_id, "alice's words")
        own = self.make(content={"msgtype": "m.text", "body": "eve's words"})
        await self.receive(own)
        v11 = self.room.version.updated_redaction_rules
        for target in (alice_msg, own["_id"]):
            content = {"redacts": target} if v11 else {}
            extra = {} if v11 else {"redacts": target}
            red = self.make(type="m.room.redaction", content=content)
            if extra:
                red.update(extra)
            self.assertEqual(await self.receive(red), {red["_id"]: None})
        # eve may redact her own event, not alice's
        self.assertIsNone((await self.hs.store.get_event(alice_msg)).redacted_by)
        self.assertIsNotNone((await self.hs.store.get_event(own["_id"])).redacted_by)
        self.hs.store._event_cache.clear()
        self.assertIsNone((await self.hs.store.get_event(alice_msg)).redacted_by)
        self.assertIsNotNone((await self.hs.store.get_event(own["_id"])).redacted_by)

    async def test_gap_bridged_with_state_ids(self) -> None:
        await self._setup()
        self.remote.state_for_ids = dict(self.room.state)
        chain = []
        prev = sorted(self.room.extremities)
        for i in range(70):
            ev = self.make(prev_events=prev, content={"msgtype": "m.text", "body": f"long gap {i}"})
            chain.append(ev)
            prev = [ev["_id"]]
        state = dict(self.room.state)
        # get_missing_events brings back 50: the rest of the gap needs /state_ids
        self.assertEqual(await self.receive(chain[-1]), {chain[-1]["_id"]: None})
        self.assertTrue(any("/state_ids/" in p for p in self.remote.requests))
        for ev in chain[20:]:
            self.assertIsNotNone(await self.hs.store.get_event(ev["_id"]), ev["content"]["body"])
        self.assertIn(chain[-1]["_id"], self.room.extremities)
        self.assertEqual(self.room.state, state)
        # the gap is history /messages can backfill later
        oldest = await self.hs.store.get_oldest_events_in_room(self.room_id)
        self.assertTrue(set(oldest) & {ev["_id"] for ev in chain[15:25]}, oldest)

    async def test_history_served_by_server_visibility(self) -> None:
        from homeserver.http.errors import MatrixError

        server = await start_homeserver(self, server_name="b.test", federation={"enabled": False})
        hs = server.hs
        remote_key = generate_signing_key("r1")
        hs.federation.keyring = FakeKeyring({REMOTE: remote_key, "b.test": hs.signing_key})
        bob = await MatrixClient.register(server.base_url, "bob")
        room_id = (await bob.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        await bob.put(f"/rooms/{room_id}/state/m.room.history_visibility/", {"history_visibility": "joined"})
        secret = await bob.send_message(room_id, "before eve")
        history = hs.federation.history
        # a server with nobody in the room gets nothing (Synapse: 403 "Host not in room.")
        with self.assertRaises(MatrixError) as cm:
            await history.on_event(REMOTE, secret)
        self.assertEqual((cm.exception.code, cm.exception.errcode), (403, "M_FORBIDDEN"))
        with self.assertRaises(MatrixError):
            await history.on_state_ids(REMOTE, room_id, secret)
        # eve joins: later events are visible to remote.test, earlier ones come redacted
        self.hs, self.room_id, self.remote_key, self.depth = hs, room_id, remote_key, 0
        self.remote = FakeRemote()
        self.eve = f"@eve:{REMOTE}"
        join = self.make(type="m.room.member", state_key=self.eve, content={"membership": "join"})
        self.assertEqual(await self.receive(join), {join["_id"]: None})
        after = await bob.send_message(room_id, "after eve")
        served = await history.on_event(REMOTE, after)
        self.assertEqual(served["pdus"][0]["content"]["body"], "after eve")
        served = await history.on_event(REMOTE, secret)
        self.assertEqual(served["pdus"][0]["content"], {})
        page = await history.on_backfill(REMOTE, room_id, [after], 50)
        bodies = [p["content"].get("body") for p in page["pdus"]]
        self.assertIn("after eve", bodies)
        self.assertNotIn("before eve", bodies)
        self.assertEqual(len(page["pdus"]), len([p for p in page["pdus"] if p["room_id"] == room_id]))
        missing = await history.on_get_missing_events(
            REMOTE, room_id, {"earliest_events": [], "latest_events": [after], "limit": 50}
        )
        self.assertNotIn("before eve", [p["content"].get("body") for p in missing["events"]])
        ids = await history.on_state_ids(REMOTE, room_id, after)
        self.assertIn(join["_id"], ids["pdu_ids"])

    async def test_gap_with_unknown_state_fetched_in_bulk(self) -> None:
        await self._setup()
        # eve makes 30 state events we never see, then a message on top of them
        await self.alice.put(
            f"/rooms/{self.room_id}/state/m.room.power_levels/",
            {"users": {self.alice.user_id: 100, self.eve: 50}, "events_default": 0, "state_default": 50},
        )
        state = dict(self.room.state)
        prev = sorted(self.room.extremities)
        for i in range(30):
            ev = self.make(type="org.example.item", state_key=f"k{i}", content={"i": i}, prev_events=prev, auth_state=state)
            self.remote.state_at[ev["_id"]] = list(state.values())
            state = {**state, ("org.example.item", f"k{i}"): ev["_id"]}
            prev = [ev["_id"]]
        msg = self.make(prev_events=prev, auth_state=state, content={"msgtype": "m.text", "body": "after the gap"})
        self.remote.no_missing_events = True
        self.assertEqual(await self.receive(msg), {msg["_id"]: None})
        self.assertTrue(any("/state/" in p for p in self.remote.requests), self.remote.requests)
        self.assertEqual(len([p for p in self.remote.requests if "/event/" in p]), 1)  # the gap's edge only
        # the room's state now has eve's items (resolved with our branch)
        self.assertIn(("org.example.item", "k29"), self.room.state)
        self.assertEqual(self.room.state, await self.hs.store.get_current_state_ids(self.room_id))
