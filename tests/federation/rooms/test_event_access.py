"""``GET /_matrix/federation/v1/event/{eventId}`` serves an event only to servers with a
user joined to its room now, as Synapse does (403 "Host not in room."), whatever the
event's history visibility; outliers count as visible to such servers, as in Synapse.

The same request goes to a real Synapse for the same situations, and must be answered
the same way."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote as _quote

from twisted.trial import unittest

from federation.errors import FederationError
from tests.federation.helpers import start_federating
from tests.federation.rooms.test_two_wspr import SyncWatcher
from tests.support.synapse import start_synapse_peer, synapse_client
from tests.support.wspr import MatrixClient

try:
    import synapse  # noqa: F401
except ImportError:  # matrix-synapse is a test extra
    synapse = None


def quote(value: str) -> str:
    return _quote(value, safe="")


async def call(server: Any, destination: str, method: str, path: str, **kw: Any) -> tuple[int, Any]:
    """``server`` asks ``destination`` over federation (a signed request)."""
    try:
        return 200, await server.hs.federation.request(destination, method, "/_matrix/federation/v1" + path, **kw)
    except FederationError as e:
        return e.code, e.body if isinstance(e.body, dict) else {"errcode": e.errcode, "error": e.msg}


async def fetch(server: Any, destination: str, event_id: str) -> tuple[int, Any]:
    return await call(server, destination, "GET", f"/event/{quote(event_id)}")


class EventAccessTest(unittest.TestCase):
    timeout = 180
    if synapse is None:
        skip = "matrix-synapse is not installed"

    async def test_event_needs_a_joined_user_now(self) -> None:
        a = await start_federating(self)
        b = await start_federating(self)
        syn = await start_synapse_peer(self, "wspr-synapse-event-")
        alice = await MatrixClient.register(a.base_url, "alice")
        bob = await MatrixClient.register(b.base_url, "bob")
        sam = await synapse_client(syn, "sam")

        # A world-readable room on each of WSPR (a) and Synapse; b has nobody in either.
        answers: dict[str, dict[str, tuple[int, Any]]] = {}
        for label, owner, host in (("WSPR", alice, a.server_name), ("Synapse", sam, syn.server_name)):
            room_id = (await owner.post("/createRoom", {"preset": "public_chat"}))["room_id"]
            await owner.put(
                f"/rooms/{quote(room_id)}/state/m.room.history_visibility/", {"history_visibility": "world_readable"}
            )
            event_id = await owner.send_message(room_id, "readable by anyone")
            steps = answers[label] = {}
            steps["not in the room"] = await fetch(b, host, event_id)
            steps["unknown event"] = await fetch(b, host, "$unknown" + event_id[1:] if ":" not in event_id else "$x:y")
            # the other history reads answer a server with nobody in the room the same way
            r = quote(room_id)
            steps["backfill"] = await call(b, host, "GET", f"/backfill/{r}", query={"v": [event_id], "limit": "5"})
            steps["state_ids"] = await call(b, host, "GET", f"/state_ids/{r}", query={"event_id": event_id})
            steps["state"] = await call(b, host, "GET", f"/state/{r}", query={"event_id": event_id})
            steps["event_auth"] = await call(b, host, "GET", f"/event_auth/{r}/{quote(event_id)}")
            steps["get_missing_events"] = await call(
                b, host, "POST", f"/get_missing_events/{r}",
                body={"earliest_events": [], "latest_events": [event_id], "limit": 5},
            )
            unknown_room = quote("!unknown:" + host)
            steps["backfill, unknown room"] = await call(
                b, host, "GET", f"/backfill/{unknown_room}", query={"v": [event_id], "limit": "5"}
            )
            # bob joins: now his server gets the event
            await bob.post(f"/join/{quote(room_id)}?server_name={quote(host)}")
            steps["joined"] = await fetch(b, host, event_id)
            # bob leaves: the server is out again
            await bob.post(f"/rooms/{quote(room_id)}/leave")
            owner_sync = SyncWatcher(owner)
            await owner_sync.until(lambda: owner_sync.has_member(room_id, bob.user_id, "leave"), timeout=30)
            steps["left"] = await fetch(b, host, event_id)

        for step in answers["WSPR"]:
            if step in ("joined", "unknown event"):
                continue
            self.assertEqual(answers["WSPR"][step], answers["Synapse"][step], step)
        for label, steps in answers.items():
            self.assertEqual(steps["not in the room"][0], 403, (label, steps))
            self.assertEqual(steps["not in the room"][1]["errcode"], "M_FORBIDDEN", label)
            self.assertEqual(steps["not in the room"][1]["error"], "Host not in room.", label)
            self.assertEqual(steps["unknown event"][0], 404, (label, steps))
            self.assertEqual(steps["joined"][0], 200, (label, steps))
            self.assertEqual(steps["joined"][1]["pdus"][0]["content"]["body"], "readable by anyone")
            self.assertEqual(steps["left"][0], 403, (label, steps))

    async def test_outliers_need_a_joined_user_too(self) -> None:
        """An invite to a room a's server is not in is an outlier there; the inviting
        server is no member of the room in a's eyes (a knows no state of it)."""
        a = await start_federating(self)
        b = await start_federating(self)
        alice = await MatrixClient.register(a.base_url, "alice")
        bob = await MatrixClient.register(b.base_url, "bob")
        room_id = (await bob.post("/createRoom", {"preset": "private_chat"}))["room_id"]
        await bob.post(f"/rooms/{quote(room_id)}/invite", {"user_id": alice.user_id})
        invite = await b.hs.rooms.get_current_state_event(room_id, "m.room.member", alice.user_id)
        assert invite is not None
        stored = await a.hs.store.get_event(invite.event_id)
        self.assertTrue(stored is not None and stored.outlier)
        code, body = await fetch(b, a.server_name, invite.event_id)
        self.assertEqual((code, body["errcode"], body["error"]), (403, "M_FORBIDDEN", "Host not in room."))
        # once alice joined, b's server (bob is joined) gets the events of the room
        await alice.post(f"/rooms/{quote(room_id)}/join")
        code, body = await fetch(b, a.server_name, invite.event_id)
        self.assertEqual(code, 200, body)
        self.assertEqual(body["pdus"][0]["content"]["membership"], "invite")
