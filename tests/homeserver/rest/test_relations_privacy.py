"""Relations and history visibility (issue 9, items 1 and 2), end to end over HTTP.

A user who left, was kicked or was banned sees the room as it was up to their leave:
no later thread reply, edit or reference, neither served directly nor bundled into an
event they may still see (``unsigned.m.relations``), on every read path. Relations
count only between events of one room, never from rejected or soft-failed events, and
an edit only from the original sender with the same type, as Synapse does.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from twisted.trial import unittest

from tests.federation.rooms import test_ingest
from tests.support.differential import server_pair
from tests.support.wspr import MatrixClient, start_homeserver

V1 = "/_matrix/client/v1"


def thread(root: str) -> dict[str, Any]:
    return {"m.relates_to": {"rel_type": "m.thread", "event_id": root}}


def edit(target: str, body: str) -> dict[str, Any]:
    return {
        "m.new_content": {"msgtype": "m.text", "body": body},
        "m.relates_to": {"rel_type": "m.replace", "event_id": target},
    }


def reference(target: str) -> dict[str, Any]:
    return {"m.relates_to": {"rel_type": "m.reference", "event_id": target}}


def find(events: list[dict[str, Any]], event_id: str) -> dict[str, Any] | None:
    return next((e for e in events if e["event_id"] == event_id), None)


class _Room:
    """alice's private room (history ``shared``) that bob was in: what he saw, and what
    came after he left (every secret carries the word SECRET)."""

    def __init__(self) -> None:
        self.rid = ""
        self.root = ""  # alice's message, with relations from before and after bob left
        self.reply = ""  # alice's thread reply while bob was in (edited after he left)
        self.bob_reply = ""  # bob's own thread reply
        self.edit = ""  # alice's edit of root while bob was in
        self.ref = ""  # a reference to root while bob was in
        self.redacted = ""  # a message bob saw, redacted after he left (with a reason)
        self.secret_ids: list[str] = []
        self.since = ""  # bob's sync token from before the secrets


class _Checks(unittest.TestCase):
    """Checks that collect every failure of a test (so a run shows each leaking path,
    not only the first), reported together at the end."""

    def setUp(self) -> None:
        self.problems: list[str] = []

    def check(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(problem)

    def check_equal(self, got: Any, want: Any, what: str) -> None:
        self.check(got == want, f"{what}: got {got!r}, want {want!r}")

    def assert_no_problems(self) -> None:
        self.assertEqual(self.problems, [], "\n".join(self.problems))


class LeftUserTest(_Checks):
    timeout = 120

    async def _setup(self, how: str) -> tuple[Any, MatrixClient, MatrixClient, _Room]:
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        r = _Room()
        r.rid = rid = (await alice.post("/createRoom", {"preset": "private_chat"}))["room_id"]
        await alice.post(f"/rooms/{rid}/invite", {"user_id": bob.user_id})
        await bob.post(f"/join/{rid}")
        r.root = await alice.send_message(rid, "root for bob", **{"m.mentions": {"user_ids": [bob.user_id]}})
        r.reply = await alice.send_message(rid, "visible reply", **thread(r.root))
        r.bob_reply = await bob.send_message(rid, "bob's reply", **thread(r.root))
        r.edit = await alice.send_message(rid, "* visible edit", **edit(r.root, "visible edit"))
        r.ref = await alice.send_message(rid, "visible reference", **reference(r.root))
        r.redacted = await alice.send_message(rid, "soon redacted")
        r.since = (await bob.sync())["next_batch"]
        if how == "leave":
            await bob.post(f"/rooms/{rid}/leave")
        else:
            await alice.post(f"/rooms/{rid}/{how}", {"user_id": bob.user_id, "reason": "bye"})
        r.secret_ids = [
            await alice.send_message(rid, "SECRET reply", **thread(r.root)),
            await alice.send_message(rid, "* SECRET edit", **edit(r.root, "SECRET edit")),
            await alice.send_message(rid, "* SECRET edit of a reply", **edit(r.reply, "SECRET edit of a reply")),
            await alice.send_message(rid, "SECRET reference", **reference(r.root)),
            await alice.send_message(rid, "SECRET reference to a reply", **reference(r.reply)),
        ]
        reaction = {"m.relates_to": {"rel_type": "m.annotation", "event_id": r.root, "key": "SECRET key"}}
        r.secret_ids.append((await alice.put(f"/rooms/{rid}/send/m.reaction/react1", reaction))["event_id"])
        await alice.put(f"/rooms/{rid}/redact/{r.redacted}/red1", {"reason": "SECRET reason"})
        await alice.put(f"/rooms/{rid}/state/m.room.topic/", {"topic": "SECRET topic"})
        await alice.put(f"/profile/{quote(alice.user_id)}/displayname", {"displayname": "SECRET name"})
        return server, alice, bob, r

    def assert_nothing_after_leave(self, r: _Room, what: str, body: Any) -> None:
        text = json.dumps(body)
        self.check("SECRET" not in text, f"{what} leaks what came after bob left")
        self.check(not any(eid in text for eid in r.secret_ids), f"{what} leaks the id of an event after bob left")

    def assert_root_as_bob_saw_it(self, r: _Room, what: str, ev: dict[str, Any] | None) -> None:
        """The root with exactly the relations bob could see."""
        if ev is None:
            self.problems.append(f"{what}: the root is missing")
            return
        rel = ev["unsigned"].get("m.relations", {})
        summary = rel.get("m.thread", {})
        self.check_equal(summary.get("count"), 2, f"{what}: thread count")
        self.check_equal(summary.get("latest_event", {}).get("event_id"), r.bob_reply, f"{what}: latest thread event")
        self.check_equal(summary.get("current_user_participated"), True, f"{what}: participated")
        self.check_equal(rel.get("m.replace", {}).get("event_id"), r.edit, f"{what}: edit")
        self.check_equal(rel.get("m.reference"), {"chunk": [{"event_id": r.ref}]}, f"{what}: references")

    async def _every_path(self, alice: MatrixClient, bob: MatrixClient, r: _Room) -> None:
        rid = r.rid
        # /event, of the root and of a reply edited after the leave
        ev = await bob.get(f"/rooms/{rid}/event/{r.root}")
        self.assert_nothing_after_leave(r, "/event", ev)
        self.assert_root_as_bob_saw_it(r, "/event", ev)
        ev = await bob.get(f"/rooms/{rid}/event/{r.reply}")
        self.assert_nothing_after_leave(r, "/event of a reply", ev)
        self.check_equal(ev["content"]["body"], "visible reply", "/event of a reply")
        for secret in r.secret_ids:
            code, _ = await bob.raw("GET", f"/_matrix/client/v3/rooms/{rid}/event/{secret}")
            self.check_equal(code, 404, f"/event of {secret}")
        # redacted after he left: the content is gone all the same, not the reason
        ev = await bob.get(f"/rooms/{rid}/event/{r.redacted}")
        self.assert_nothing_after_leave(r, "/event of a message redacted after the leave", ev)
        self.check_equal(ev["content"], {}, "a message redacted after the leave")
        self.check("redacted_because" in ev["unsigned"], "redacted_because is missing")
        # /context
        ctx = await bob.get(f"/rooms/{rid}/context/{r.root}?limit=20")
        self.assert_nothing_after_leave(r, "/context", ctx)
        self.assert_root_as_bob_saw_it(r, "/context", ctx["event"])
        ctx = await bob.get(f"/rooms/{rid}/context/{r.reply}?limit=20")
        self.assert_nothing_after_leave(r, "/context of a reply", ctx)
        # /messages both ways, and with lazy-loaded members
        msgs = await bob.get(f"/rooms/{rid}/messages?dir=b&limit=50")
        self.assert_nothing_after_leave(r, "/messages", msgs)
        self.assert_root_as_bob_saw_it(r, "/messages", find(msgs["chunk"], r.root))
        fwd = await bob.get(f"/rooms/{rid}/messages?dir=f&limit=50")
        self.assert_nothing_after_leave(r, "/messages dir=f", fwd)
        lazy = quote(json.dumps({"lazy_load_members": True}))
        msgs = await bob.get(f"/rooms/{rid}/messages?dir=b&limit=50&filter={lazy}")
        self.assert_nothing_after_leave(r, "/messages with lazy-loaded members", msgs)
        self.check(alice.user_id in {e["state_key"] for e in msgs.get("state", [])}, "lazy-loaded members lack alice")
        # /threads, all and participated
        for include in ("all", "participated"):
            threads = await bob.request("GET", f"{V1}/rooms/{rid}/threads?include={include}")
            self.assert_nothing_after_leave(r, f"/threads?include={include}", threads)
            self.check_equal([e["event_id"] for e in threads["chunk"]], [r.root], f"/threads?include={include}")
            self.assert_root_as_bob_saw_it(r, f"/threads?include={include}", find(threads["chunk"], r.root))
        # /relations, every relation type, both directions, page by page
        for suffix in ("", "/m.thread", "/m.replace", "/m.reference", "/m.annotation", "/m.thread/m.room.message"):
            for direction in ("b", "f"):
                url = f"{V1}/rooms/{rid}/relations/{r.root}{suffix}?dir={direction}&limit=1"
                seen: list[str] = []
                while True:
                    page = await bob.request("GET", url)
                    self.assert_nothing_after_leave(r, f"/relations{suffix}", page)
                    seen += [e["event_id"] for e in page["chunk"]]
                    if "next_batch" not in page:
                        break
                    url = f"{V1}/rooms/{rid}/relations/{r.root}{suffix}?dir={direction}&limit=1&from={quote(page['next_batch'])}"
                expected = {
                    "": {r.reply, r.bob_reply, r.edit, r.ref},
                    "/m.thread": {r.reply, r.bob_reply},
                    "/m.replace": {r.edit},
                    "/m.reference": {r.ref},
                    "/m.annotation": set(),
                    "/m.thread/m.room.message": {r.reply, r.bob_reply},
                }[suffix]
                self.check_equal(sorted(seen), sorted(expected), f"/relations{suffix} dir={direction}")
        rels = await bob.request("GET", f"{V1}/rooms/{rid}/relations/{r.reply}")
        self.check_equal(rels["chunk"], [], "/relations of a reply")
        # /sync: the leave section, incremental and (include_leave) initial
        for since in (r.since, None):
            flt = {"room": {"include_leave": True, "timeline": {"limit": 50}}}
            sync = await bob.sync(since=since, filter=flt)
            left = sync["rooms"]["leave"][rid]
            self.assert_nothing_after_leave(r, f"/sync leave section (since={since})", left)
            timeline = left["timeline"]["events"]
            if since is None:
                self.assert_root_as_bob_saw_it(r, "/sync leave section", find(timeline, r.root))
            self.check_equal(timeline[-1]["type"], "m.room.member", "/sync leave section ends with the leave")
        # /notifications (alice mentioned bob in the root)
        notifs = await bob.get("/notifications")
        self.assert_nothing_after_leave(r, "/notifications", notifs)
        # Synapse serialises notified events without bundled relations, and so does WSPR:
        # nothing to leak there, the root is listed as it is.
        root = find([n["event"] for n in notifs["notifications"]], r.root)
        self.check(root is not None, "/notifications lacks the root")
        self.check_equal((root or {}).get("unsigned", {}).get("m.relations"), None, "/notifications: bundled relations")
        # state and members as they were at the leave
        for path in (f"/rooms/{rid}/state", f"/rooms/{rid}/members"):
            self.assert_nothing_after_leave(r, path, await bob.get(path))
        # alice, still in the room, sees everything
        ev = await alice.get(f"/rooms/{rid}/event/{r.root}")
        rel = ev["unsigned"]["m.relations"]
        self.check_equal(rel["m.thread"]["count"], 3, "alice's thread count")
        self.check_equal(rel["m.thread"]["latest_event"]["event_id"], r.secret_ids[0], "alice's latest thread event")
        self.check_equal(rel["m.replace"]["event_id"], r.secret_ids[1], "alice's edit")
        self.assert_no_problems()

    async def test_user_who_left(self) -> None:
        _, alice, bob, r = await self._setup("leave")
        await self._every_path(alice, bob, r)

    async def test_kicked_user(self) -> None:
        _, alice, bob, r = await self._setup("kick")
        await self._every_path(alice, bob, r)

    async def test_banned_user(self) -> None:
        _, alice, bob, r = await self._setup("ban")
        await self._every_path(alice, bob, r)

    async def test_rejoined_user_misses_the_gap(self) -> None:
        """With ``joined`` visibility a user who left and came back sees no thread reply
        or edit from while they were away, also in the joined section of /sync."""
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        state = [{"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "joined"}}]
        rid = (await alice.post("/createRoom", {"preset": "public_chat", "initial_state": state}))["room_id"]
        await bob.post(f"/join/{rid}")
        root = await alice.send_message(rid, "root")
        before = await alice.send_message(rid, "reply before", **thread(root))
        await bob.post(f"/rooms/{rid}/leave")
        gap = [
            await alice.send_message(rid, "SECRET reply", **thread(root)),
            await alice.send_message(rid, "* SECRET edit", **edit(root, "SECRET edit")),
            await alice.send_message(rid, "* SECRET edit of a reply", **edit(before, "SECRET edit of a reply")),
        ]
        await bob.post(f"/join/{rid}")
        after = await alice.send_message(rid, "reply after", **thread(root))
        sync = await bob.sync(filter={"room": {"timeline": {"limit": 50}}})
        for what, body in (
            ("/event", await bob.get(f"/rooms/{rid}/event/{root}")),
            ("/sync joined section", sync["rooms"]["join"][rid]),
            ("/messages", await bob.get(f"/rooms/{rid}/messages?dir=b&limit=50")),
            ("/relations", await bob.request("GET", f"{V1}/rooms/{rid}/relations/{root}")),
            ("/threads", await bob.request("GET", f"{V1}/rooms/{rid}/threads")),
        ):
            text = json.dumps(body)
            self.check("SECRET" not in text and not any(eid in text for eid in gap), f"{what} leaks the gap")
        ev = await bob.get(f"/rooms/{rid}/event/{root}")
        rel = ev["unsigned"].get("m.relations", {})
        summary = rel.get("m.thread", {})
        self.check_equal((summary.get("count"), summary.get("latest_event", {}).get("event_id")), (2, after), "/event thread")
        self.check("m.replace" not in rel, "/event bundles an edit from the gap")
        timeline = sync["rooms"]["join"][rid]["timeline"]["events"]
        root_in_sync = find(timeline, root)
        self.check(root_in_sync is not None, "the root is missing from /sync")
        if root_in_sync is not None:
            count = root_in_sync["unsigned"].get("m.relations", {}).get("m.thread", {}).get("count")
            self.check_equal(count, 2, "/sync joined section: thread count")
        self.assert_no_problems()


class CrossRoomRelationTest(_Checks):
    timeout = 120

    def check_refused(self, code: int, body: Any, what: str) -> None:
        # Synapse's answer (handlers/message.py, _validate_event_relation)
        got = (code, body.get("errcode"), body.get("error")) if isinstance(body, dict) else (code, body)
        self.check_equal(got, (400, "M_UNKNOWN", "Relations must be in the same room"), what)

    async def test_banned_user_cannot_edit_from_another_room(self) -> None:
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        mallory = await MatrixClient.register(server.base_url, "mallory")
        rid = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        await mallory.post(f"/join/{rid}")
        msg = await mallory.send_message(rid, "an innocent message")
        await alice.post(f"/rooms/{rid}/ban", {"user_id": mallory.user_id})
        own = (await mallory.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        code, body = await mallory.raw(
            "PUT", f"/_matrix/client/v3/rooms/{own}/send/m.room.message/e1", {"msgtype": "m.text", "body": "* spam", **edit(msg, "SPAM")}
        )
        self.check_refused(code, body, "an edit from another room")
        for who in (alice, mallory):
            ev = await who.get(f"/rooms/{rid}/event/{msg}")
            self.check("m.relations" not in ev["unsigned"], f"the edit from another room is bundled for {who.user_id}")
            msgs = await who.get(f"/rooms/{rid}/messages?dir=b&limit=50")
            self.check("SPAM" not in json.dumps(msgs), f"the edit from another room shows in /messages for {who.user_id}")
        rels = await alice.request("GET", f"{V1}/rooms/{rid}/relations/{msg}")
        self.check_equal(rels["chunk"], [], "/relations")
        self.assert_no_problems()

    async def test_non_member_cannot_inject_a_thread_reply(self) -> None:
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        eve = await MatrixClient.register(server.base_url, "eve")
        private = (await alice.post("/createRoom", {"preset": "private_chat"}))["room_id"]
        root = await alice.send_message(private, "private root")
        own = (await eve.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        legit = await eve.send_message(own, "a root of eve's own")
        relations = {
            "thread": thread(root),
            "reference": reference(root),
            "annotation": {"m.relates_to": {"rel_type": "m.annotation", "event_id": root, "key": "x"}},
        }
        for name, rel in relations.items():
            code, body = await eve.raw(
                "PUT", f"/_matrix/client/v3/rooms/{own}/send/m.room.message/{name}", {"msgtype": "m.text", "body": "injected", **rel}
            )
            self.check_refused(code, body, f"a {name} from another room")
        # her own thread, latest: its root heads her room's thread list
        await eve.send_message(own, "a reply of eve's own", **thread(legit))
        ev = await alice.get(f"/rooms/{private}/event/{root}")
        self.check("m.relations" not in ev["unsigned"], "a relation from another room is bundled")
        threads = await alice.request("GET", f"{V1}/rooms/{private}/threads")
        self.check_equal(threads["chunk"], [], "/threads of the private room")
        rels = await alice.request("GET", f"{V1}/rooms/{private}/relations/{root}")
        self.check_equal(rels["chunk"], [], "/relations in the private room")
        # ...nor read the private root through her own room's thread list
        mine = await eve.request("GET", f"{V1}/rooms/{own}/threads")
        self.check_equal([e["event_id"] for e in mine["chunk"]], [legit], "/threads of eve's room")
        self.check("private root" not in json.dumps(mine), "eve reads the private root through her own /threads")
        self.assert_no_problems()


class RemoteRelationTest(_Checks):
    """Relations arriving over federation, which no send-time check stops: from another
    room, from a soft-failed or rejected event, an edit by someone else. A fake remote
    server (the harness of tests/federation/rooms/test_ingest.py, whose methods are
    borrowed here) hands PDUs to the server; everything is read back over HTTP."""

    timeout = 120
    _setup = test_ingest.IngestTest._setup
    make = test_ingest.IngestTest.make
    receive = test_ingest.IngestTest.receive
    room = test_ingest.IngestTest.room

    async def join_eve(self, room_id: str) -> None:
        home = self.room_id
        self.room_id = room_id
        join = self.make(type="m.room.member", state_key=self.eve, content={"membership": "join"})
        self.check_equal(await self.receive(join), {join["_id"]: None}, "eve's join")
        self.room_id = home

    async def send_as_eve(self, room_id: str, content: dict[str, Any], **kw: Any) -> str:
        home = self.room_id
        self.room_id = room_id
        pdu = self.make(content=content, **kw)
        await self.receive(pdu)
        self.room_id = home
        return pdu["_id"]

    async def test_relations_over_federation_that_do_not_count(self) -> None:
        await self._setup()  # alice's public room (self.room_id) with eve of remote.test joined
        alice, rid = self.alice, self.room_id
        private = (await alice.post("/createRoom", {"preset": "private_chat"}))["room_id"]
        secret_root = await alice.send_message(private, "private root")
        other = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        await self.join_eve(other)
        root = await alice.send_message(rid, "alice's root")
        eves = await self.send_as_eve(rid, {"msgtype": "m.text", "body": "eve's words"})
        # from eve's room into the private one: a thread reply, a reference, an annotation
        for rel in (thread(secret_root), reference(secret_root)):
            await self.send_as_eve(rid, {"msgtype": "m.text", "body": "injected", **rel})
        await self.send_as_eve(
            rid, {"m.relates_to": {"rel_type": "m.annotation", "event_id": secret_root, "key": "x"}}, type="m.reaction"
        )
        # an edit of alice's root by eve, in the same room: never counts
        await self.send_as_eve(rid, {"msgtype": "m.text", "body": "* FORGED", **edit(root, "FORGED")})
        # a rejected thread reply: a user of remote.test who never joined
        stranger = self.make(sender=f"@stranger:{test_ingest.REMOTE}", content={"msgtype": "m.text", "body": "REJECTED", **thread(root)})
        await self.receive(stranger)
        # eve is banned; she edits her message from the other room, and replies in the
        # thread on a branch from before her ban (soft-failed)
        before_ban = sorted(self.room.extremities)
        state_before_ban = dict(self.room.state)
        await alice.post(f"/rooms/{rid}/ban", {"user_id": self.eve})
        await self.send_as_eve(other, {"msgtype": "m.text", "body": "* SPAM", **edit(eves, "SPAM")})
        soft = await self.send_as_eve(
            rid,
            {"msgtype": "m.text", "body": "SOFT-FAILED", **thread(root)},
            prev_events=before_ban,
            auth_state=state_before_ban,
        )
        # (the attacks arrived as intended)
        stored = await self.hs.store.get_events([soft, stranger["_id"]], allow_rejected=True)
        self.assertTrue(stored[soft].soft_failed)
        self.assertTrue(stored[stranger["_id"]].rejected_reason)
        # what alice sees
        ev = await alice.get(f"/rooms/{private}/event/{secret_root}")
        self.check("m.relations" not in ev["unsigned"], f"relations from another room bundled: {ev['unsigned']}")
        self.check_equal((await alice.request("GET", f"{V1}/rooms/{private}/threads"))["chunk"], [], "/threads, private room")
        rels = await alice.request("GET", f"{V1}/rooms/{private}/relations/{secret_root}")
        self.check_equal(rels["chunk"], [], "/relations, private room")
        listing = await alice.request("GET", f"{V1}/rooms/{rid}/threads")
        self.check_equal([e["event_id"] for e in listing["chunk"]], [], "/threads of eve's room")
        for target in (root, eves):
            ev = await alice.get(f"/rooms/{rid}/event/{target}")
            self.check("m.relations" not in ev["unsigned"], f"relations of {target} bundled: {ev['unsigned']}")
            rels = await alice.request("GET", f"{V1}/rooms/{rid}/relations/{target}")
            self.check_equal([e["content"].get("body") for e in rels["chunk"]], ["* FORGED"] if target == root else [], f"/relations of {target}")
        msgs = await alice.get(f"/rooms/{rid}/messages?dir=b&limit=50")
        for word in ("SPAM", "SOFT-FAILED", "REJECTED"):
            self.check(word not in json.dumps(msgs), f"/messages shows {word}")
        self.assert_no_problems()


class SendTimeChecksTest(unittest.TestCase):
    """The relations a client may not send, answered as Synapse answers them: the same
    requests to WSPR and to a real Synapse, compared (status, errcode and message)."""

    timeout = 180

    async def test_invalid_relations_refused_like_synapse(self) -> None:
        pair = await server_pair(self)
        for side in pair:
            alice = await side.register("alice")
            bob = await side.register("bob")
            rid = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
            other = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
            await bob.post(f"/join/{quote(rid)}")
            root = await alice.send_message(rid, "root")
            n = 0

            async def send(name: str, who: MatrixClient, room: str, content: dict[str, Any], event_type: str = "m.room.message", txn: str | None = None) -> Any:
                nonlocal n
                n += 1
                path = f"/_matrix/client/v3/rooms/{quote(room)}/send/{event_type}/{txn or f'x{n}'}"
                code, body = await who.raw("PUT", path, content)
                # ids differ between the servers: keep what a client acts on
                side.record(name, code, {"errcode": body.get("errcode"), "error": body.get("error")} if code != 200 else {})
                return body

            msg = {"msgtype": "m.text", "body": "x"}
            await send("from another room", alice, other, {**msg, **thread(root)})
            await send("to an unknown event", alice, rid, {**msg, **thread("$unknown:example.org")})
            react = {"rel_type": "m.annotation", "event_id": root}
            await send("annotation without key", bob, rid, {"m.relates_to": react}, "m.reaction")
            await send("annotation key too long", bob, rid, {"m.relates_to": {**react, "key": "k" * 501}}, "m.reaction")
            first = await send("annotation", bob, rid, {"m.relates_to": {**react, "key": "👍"}}, "m.reaction", txn="r1")
            again = await send("annotation retried", bob, rid, {"m.relates_to": {**react, "key": "👍"}}, "m.reaction", txn="r1")
            side.record("retry gives the same event", 200, {"same": first.get("event_id") == again.get("event_id")})
            await send("the same annotation twice", bob, rid, {"m.relates_to": {**react, "key": "👍"}}, "m.reaction")
            await bob.put(f"/rooms/{quote(rid)}/redact/{quote(first['event_id'])}/red1", {})
            await send("the same annotation after a redaction", bob, rid, {"m.relates_to": {**react, "key": "👍"}}, "m.reaction")
            reply = await send("thread reply", bob, rid, {**msg, **thread(root)})
            await send("thread from a thread reply", alice, rid, {**msg, **thread(reply["event_id"])})
            await send("edit by another user", bob, rid, {**msg, **edit(root, "not yours")})
            ev = await alice.get(f"/rooms/{quote(rid)}/event/{quote(root)}")
            side.record("what counts", 200, sorted(ev["unsigned"].get("m.relations", {})))
            # the aggregations bundled, in the same shape (the latest thread event with its own edit)
            await bob.send_message(rid, "* edited reply", **edit(reply["event_id"], "edited reply"))
            await alice.send_message(rid, "* edited", **edit(root, "edited"))
            await alice.send_message(rid, "ref", **reference(root))
            await side.call(alice, "/event", "GET", f"/_matrix/client/v3/rooms/{quote(rid)}/event/{quote(root)}")
            await side.call(alice, "/relations", "GET", f"{V1}/rooms/{quote(rid)}/relations/{quote(root)}")
            await side.call(alice, "/threads", "GET", f"{V1}/rooms/{quote(rid)}/threads")
        # Differences of every event, not of relations: Synapse's legacy top-level age and
        # user_id, MSC4115's unsigned.membership; Synapse's /threads omits transaction_id.
        pair.assert_same("age", "*.age", "user_id", "*.user_id", "*unsigned.membership", "*unsigned.transaction_id")
        for w, s in zip(pair.wspr.steps, pair.synapse.steps, strict=False):
            if not w.name.startswith("/"):
                self.assertEqual(w.body, s.body, w.name)


class LeftUserTestPostgres(LeftUserTest):
    database = "postgresql"


class CrossRoomRelationTestPostgres(CrossRoomRelationTest):
    database = "postgresql"


class RemoteRelationTestPostgres(RemoteRelationTest):
    database = "postgresql"
