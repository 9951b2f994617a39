"""Guest access (the spec's Guest Access module) as Synapse offers it, step by step against
a real Synapse: guests join only rooms whose ``m.room.guest_access`` is ``can_join``
(their membership events say ``"kind": "guest"``), send and read there, set a display
name, use the endpoints the spec and Synapse allow them and get 403 from every other, and
leave rooms that stop allowing guests; a guest's account upgrades to a full one keeping
its id and rooms (Sytest's tests/30rooms/20guest.pl, Complement's guest cases)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.trial import unittest

from tests.support.differential import Side, server_pair
from tests.support.wspr import MatrixClient

V3 = "/_matrix/client/v3"
CAN_JOIN = {"type": "m.room.guest_access", "state_key": "", "content": {"guest_access": "can_join"}}


async def new_guest(side: Side) -> MatrixClient:
    code, body = await side.anonymous().raw("POST", V3 + "/register?kind=guest", {})
    assert code == 200, body
    return MatrixClient(side.base_url, body["access_token"], body["user_id"], body["device_id"])


async def room(user: MatrixClient, *initial_state: dict[str, Any], **extra: Any) -> str:
    body = {"preset": "public_chat", "initial_state": list(initial_state), **extra}
    return str((await user.post("/createRoom", body))["room_id"])


# What a guest may not do (Synapse's servlets without allow_guest), and a few it may.
ENDPOINTS: list[tuple[str, str, str, Any]] = [
    ("typing", "PUT", "/rooms/{room}/typing/{me}", {"typing": True, "timeout": 1000}),
    ("receipt", "POST", "/rooms/{room}/receipt/m.read/{event}", {}),
    ("read markers", "POST", "/rooms/{room}/read_markers", {"m.fully_read": "{event}"}),
    ("joined members", "GET", "/rooms/{room}/joined_members", None),
    ("members", "GET", "/rooms/{room}/members", None),
    ("state", "GET", "/rooms/{room}/state", None),
    ("a state event", "GET", "/rooms/{room}/state/m.room.create/", None),
    ("event", "GET", "/rooms/{room}/event/{event}", None),
    ("context", "GET", "/rooms/{room}/context/{event}", None),
    ("messages", "GET", "/rooms/{room}/messages?dir=b&limit=1", None),
    ("aliases", "GET", "/rooms/{room}/aliases", None),
    ("presence", "GET", "/presence/{me}/status", None),
    ("set presence", "PUT", "/presence/{me}/status", {"presence": "online"}),
    ("account data", "PUT", "/user/{me}/account_data/org.example", {}),
    ("read account data", "GET", "/user/{me}/account_data/org.example", None),
    ("room account data", "PUT", "/user/{me}/rooms/{room}/account_data/org.example", {}),
    ("tags", "GET", "/user/{me}/rooms/{room}/tags", None),
    ("make a filter", "POST", "/user/{me}/filter", {}),
    ("push rules", "GET", "/pushrules/", None),
    ("pushers", "GET", "/pushers", None),
    ("notifications", "GET", "/notifications", None),
    ("user directory", "POST", "/user_directory/search", {"search_term": "a"}),
    ("avatar", "PUT", "/profile/{me}/avatar_url", {"avatar_url": "mxc://example.org/abc"}),
    ("devices", "GET", "/devices", None),
    ("rename the device", "PUT", "/devices/guest_device", {"display_name": "kiosk"}),
    ("delete the device", "DELETE", "/devices/guest_device", {}),
    ("media config", "GET", "/_matrix/client/v1/media/config", None),
    ("threads", "GET", "/_matrix/client/v1/rooms/{room}/threads", None),
    ("search", "POST", "/search", {"search_categories": {"room_events": {"search_term": "hello"}}}),
    ("public rooms", "POST", "/publicRooms", {}),
    ("joined rooms", "GET", "/joined_rooms", None),
    ("key backup", "GET", "/room_keys/version", None),
    ("openid", "POST", "/user/{me}/openid/request_token", {}),
    ("third-party ids", "GET", "/account/3pid", None),
    ("change password", "POST", "/account/password", {"new_password": "x"}),
    ("report a room", "POST", "/rooms/{room}/report", {"reason": "x"}),
    ("create a room", "POST", "/createRoom", {}),
    ("knock", "POST", "/knock/{room}", {}),
    ("query keys", "POST", "/keys/query", {"device_keys": {}}),
    ("cross-signing keys", "POST", "/keys/device_signing/upload", {}),
    ("upgrade a room", "POST", "/rooms/{room}/upgrade", {"new_version": "10"}),
    ("redact", "PUT", "/rooms/{room}/redact/{event}/t1", {}),
    ("invite", "POST", "/rooms/{room}/invite", {"user_id": "{host}"}),
    ("kick", "POST", "/rooms/{room}/kick", {"user_id": "{host}"}),
    ("forget", "POST", "/rooms/{room}/forget", {}),
    ("capabilities", "GET", "/capabilities", None),
    ("whoami", "GET", "/account/whoami", None),
    ("sync", "GET", "/sync?timeout=0", None),
    ("log out", "POST", "/logout", {}),
]


def fill(template: Any, values: dict[str, str]) -> Any:
    if isinstance(template, str):
        for k, v in values.items():
            template = template.replace("{" + k + "}", v)
        return template
    if isinstance(template, dict):
        return {k: fill(v, values) for k, v in template.items()}
    return template


async def poll_member(client: MatrixClient, room_id: str, done: Any) -> Any:
    member: Any = None
    for _ in range(50):
        _, member = await client.raw("GET", f"{V3}/rooms/{room_id}/state/m.room.member/{quote(client.user_id)}")
        if done(member):
            break
        await deferLater(reactor, 0.1, lambda: None)
    return member


class GuestAccessConformanceTest(unittest.TestCase):
    timeout = 180

    async def test_joining_sending_and_reading(self) -> None:
        pair = await server_pair(self, allow_guest_access=True)
        for side in pair:
            host = await side.register("host")
            guest = await new_guest(side)
            closed = await room(host)
            open_ = await room(host, CAN_JOIN)
            await side.call(guest, "join a room without guest access", "POST", f"{V3}/rooms/{closed}/join", {})
            await side.call(guest, "the same through /join", "POST", f"{V3}/join/{quote(closed)}", {})
            await side.call(guest, "join a room with guest access", "POST", f"{V3}/rooms/{open_}/join", {})
            await side.call(host, "the guest's member event", "GET", f"{V3}/rooms/{open_}/state/m.room.member/{quote(guest.user_id)}")
            await side.call(guest, "send", "PUT", f"{V3}/rooms/{open_}/send/m.room.message/g1", {"msgtype": "m.text", "body": "sup"})
            _, page = await side.call(host, "the host reads it", "GET", f"{V3}/rooms/{open_}/messages?dir=b&limit=1")
            self.assertEqual((page["chunk"][0]["sender"], page["chunk"][0]["content"]["body"]), (guest.user_id, "sup"))
            await side.call(guest, "the guest reads", "GET", f"{V3}/rooms/{open_}/messages?dir=b&limit=1")
            _, synced = await guest.raw("GET", V3 + "/sync?timeout=0")
            self.assertIn(open_, synced["rooms"]["join"], side.label)
            await side.call(guest, "display name", "PUT", f"{V3}/profile/{quote(guest.user_id)}/displayname", {"displayname": "creeper"})
            await side.call(guest, "read it back", "GET", f"{V3}/profile/{quote(guest.user_id)}/displayname")
            # The room hears of it too (Synapse does this in a background task). Synapse's
            # new member event loses "kind": "guest" ("we don't let guests set profile
            # data", it assumes), WSPR's keeps it, so the guest still leaves when guest
            # access ends.
            member = await poll_member(guest, open_, lambda m: m.get("displayname") == "creeper")
            self.assertEqual(member["displayname"], "creeper", side.label)
            await side.call(guest, "leave", "POST", f"{V3}/rooms/{open_}/leave", {})
            await side.call(host, "the leave", "GET", f"{V3}/rooms/{open_}/state/m.room.member/{quote(guest.user_id)}")
        pair.assert_same()

    async def test_what_guests_may_not_do(self) -> None:
        pair = await server_pair(self, allow_guest_access=True)
        for side in pair:
            host = await side.register("host")
            guest = await new_guest(side)
            open_ = await room(host, CAN_JOIN)
            await guest.post(f"/rooms/{open_}/join")
            event_id = await host.send_message(open_, "hello")
            values = {"room": open_, "me": quote(guest.user_id), "event": event_id, "host": host.user_id}
            for name, method, path, body in ENDPOINTS:
                full = path if path.startswith("/_matrix") else V3 + path
                code, answer = await guest.raw(method, fill(full, values), fill(body, values))
                # Whether the guest may: the status and errcode (the bodies are other tests').
                side.record(name, code, {"errcode": answer.get("errcode")} if code >= 400 else {})
        pair.assert_same()
        forbidden = {s.name for s in pair.synapse.steps if s.code == 403}
        self.assertIn("presence", forbidden)
        self.assertIn("create a room", forbidden)

    async def test_guests_leave_when_guest_access_ends(self) -> None:
        pair = await server_pair(self, allow_guest_access=True)
        for side in pair:
            host = await side.register("host")
            guest = await new_guest(side)
            open_ = await room(host, CAN_JOIN)
            await guest.post(f"/rooms/{open_}/join")
            member = f"{V3}/rooms/{open_}/state/m.room.member/{quote(guest.user_id)}"
            await side.call(host, "joined", "GET", member)
            await side.call(host, "guest access forbidden", "PUT", f"{V3}/rooms/{open_}/state/m.room.guest_access", {"guest_access": "forbidden"})
            _, after = await side.call(host, "the guest has left", "GET", member)
            self.assertEqual((after["membership"], after["kind"]), ("leave", "guest"), side.label)
            await side.call(guest, "cannot join again", "POST", f"{V3}/rooms/{open_}/join", {})
        pair.assert_same()

    async def test_upgrade_keeps_the_rooms_and_lifts_the_limits(self) -> None:
        pair = await server_pair(self, allow_guest_access=True)
        for side in pair:
            host = await side.register("host")
            guest = await new_guest(side)
            open_ = await room(host, CAN_JOIN)
            closed = await room(host)
            await guest.post(f"/rooms/{open_}/join")
            name = guest.user_id[1:].split(":", 1)[0]
            _, full = await side.call(
                side.anonymous(), "upgrade", "POST", V3 + "/register",
                {"username": name, "password": "SIR_Arthur_David", "guest_access_token": guest.access_token,
                 "auth": {"type": "m.login.dummy"}},
            )
            user = MatrixClient(side.base_url, full["access_token"], full["user_id"])
            await side.call(user, "still in the room", "GET", V3 + "/joined_rooms")
            await side.call(user, "joins a room without guest access", "POST", f"{V3}/rooms/{closed}/join", {})
            await side.call(user, "sets presence", "PUT", f"{V3}/presence/{quote(user.user_id)}/status", {"presence": "online"})
        pair.assert_same()


class GuestReadsConformanceTest(unittest.TestCase):
    timeout = 120

    async def test_a_guest_reads_a_world_readable_room_without_joining(self) -> None:
        pair = await server_pair(self, allow_guest_access=True)
        world_readable = {"type": "m.room.history_visibility", "state_key": "", "content": {"history_visibility": "world_readable"}}
        for side in pair:
            host = await side.register("host")
            guest = await new_guest(side)
            # Version 12 names no user in the power levels (ids differ between the servers).
            readable = await room(host, world_readable, room_version="12")
            closed = await room(host, room_version="12")
            event_id = await host.send_message(readable, "hi")
            for label, room_id in (("world-readable", readable), ("not world-readable", closed)):
                await side.call(guest, f"{label}: messages", "GET", f"{V3}/rooms/{room_id}/messages?dir=b&limit=2")
                code, state = await guest.raw("GET", f"{V3}/rooms/{room_id}/state")
                if isinstance(state, list):
                    state = sorted(state, key=lambda e: (e["type"], e["state_key"]))
                side.record(f"{label}: state", code, state)
                await side.call(guest, f"{label}: members", "GET", f"{V3}/rooms/{room_id}/members?membership=join")
            await side.call(guest, "an event", "GET", f"{V3}/rooms/{readable}/event/{quote(event_id)}")
            code, context = await guest.raw("GET", f"{V3}/rooms/{readable}/context/{quote(event_id)}?limit=0")
            side.record("its context", code, {**context, "state": sorted(context["state"], key=lambda e: (e["type"], e["state_key"]))})
            await side.call(guest, "a state event that is not there", "GET", f"{V3}/rooms/{readable}/state/m.room.name/")
        pair.assert_same()
