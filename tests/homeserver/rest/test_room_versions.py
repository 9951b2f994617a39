"""Rooms of every room version, 1 to 12, on one server over HTTP: create, join, invite,
knock (7+), restricted joins (8+, knock_restricted 10+), send, state, redact, leave;
JSON values the versions take or refuse; upgrades from any version to any other.

What changes between the versions (the spec's room version pages) is covered by the
protocol tests; these check that the whole server makes and runs such rooms."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote as _quote

from twisted.trial import unittest

from tests.support.wspr import MatrixClient, start_homeserver

VERSIONS = [str(n) for n in range(1, 13)]


def quote(value: str) -> str:
    # Room version 3 event ids are standard base64: "/" must be escaped too.
    return _quote(value, safe="")


async def messages(client: MatrixClient, room_id: str, limit: int = 50) -> list[dict[str, Any]]:
    return (await client.get(f"/rooms/{quote(room_id)}/messages?dir=b&limit={limit}"))["chunk"]


async def state_of(client: MatrixClient, room_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(e["type"], e["state_key"]): e for e in await client.get(f"/rooms/{quote(room_id)}/state")}


class RoomVersionsTest(unittest.TestCase):
    timeout = 300

    async def _users(self, *names: str) -> tuple[Any, list[MatrixClient]]:
        server = await start_homeserver(self)
        return server, [await MatrixClient.register(server.base_url, n) for n in names]

    async def test_every_version_create_join_send_state_redact_leave(self) -> None:
        _, (alice, bob, carol) = await self._users("alice", "bob", "carol")
        for version in VERSIONS:
            rid = (
                await alice.post(
                    "/createRoom",
                    {"room_version": version, "preset": "public_chat", "room_alias_name": f"v{version}", "name": f"v{version}"},
                )
            )["room_id"]
            room = quote(rid)
            create = await alice.get(f"/rooms/{room}/state/m.room.create/")
            self.assertEqual(create["room_version"], version)
            # v11 dropped `creator` (the sender is the creator); v12 room ids name no server.
            self.assertEqual("creator" in create, int(version) <= 10, version)
            self.assertEqual(":" in rid, version != "12", version)

            joined = await bob.post(f"/join/{quote(f'#v{version}:localhost')}")
            self.assertEqual(joined["room_id"], rid)
            await alice.post(f"/rooms/{room}/invite", {"user_id": carol.user_id})
            await carol.post(f"/rooms/{room}/join")
            members = (await alice.get(f"/rooms/{room}/joined_members"))["joined"]
            self.assertEqual(set(members), {alice.user_id, bob.user_id, carol.user_id}, version)

            first = await bob.send_message(rid, f"hello v{version}")
            await alice.put(f"/rooms/{room}/state/m.room.topic/", {"topic": f"topic {version}"})
            self.assertEqual((await bob.get(f"/rooms/{room}/state/m.room.topic/"))["topic"], f"topic {version}")
            redaction = (await alice.put(f"/rooms/{room}/redact/{quote(first)}/r{version}", {"reason": "tidy"}))["event_id"]
            # Event ids: chosen by the server in v1/v2 ("$opaque:server"), hashes from v3
            # (URL-safe base64 from v4).
            for event_id in (first, redaction):
                if int(version) <= 2:
                    self.assertTrue(event_id.endswith(":localhost"), event_id)
                else:
                    self.assertEqual(len(event_id), 44, event_id)
                    self.assertEqual(("+" in event_id or "/" in event_id) and version != "3", False, event_id)
            chunk = await messages(bob, rid)
            self.assertEqual(chunk[0]["event_id"], redaction)
            self.assertEqual(chunk[0]["redacts"], first)  # at the top level in every version, for clients
            original = next(e for e in chunk if e["event_id"] == first)
            self.assertEqual(original["content"], {})
            self.assertEqual(original["unsigned"]["redacted_because"]["event_id"], redaction, version)

            await carol.post(f"/rooms/{room}/leave")
            member = await alice.get(f"/rooms/{room}/state/m.room.member/{quote(carol.user_id)}")
            self.assertEqual(member["membership"], "leave")
            sync = await bob.sync()
            self.assertIn(rid, sync["rooms"]["join"], version)

    async def test_knocks_from_version_7(self) -> None:
        _, (alice, bob) = await self._users("alice", "bob")
        for version in VERSIONS:
            rid = (await alice.post("/createRoom", {"room_version": version, "preset": "private_chat"}))["room_id"]
            room = quote(rid)
            code, body = await alice.raw(
                "PUT", f"/_matrix/client/v3/rooms/{room}/state/m.room.join_rules/", {"join_rule": "knock"}
            )
            self.assertEqual(code, 200, body)
            code, body = await bob.raw("POST", f"/_matrix/client/v3/knock/{room}", {"reason": "let me in"})
            if int(version) < 7:
                # No knock membership before v7 (Synapse: 403 M_FORBIDDEN).
                self.assertEqual((code, body["errcode"]), (403, "M_FORBIDDEN"), version)
                continue
            self.assertEqual(code, 200, (version, body))
            member = await alice.get(f"/rooms/{room}/state/m.room.member/{quote(bob.user_id)}")
            self.assertEqual((member["membership"], member["reason"]), ("knock", "let me in"))
            await alice.post(f"/rooms/{room}/invite", {"user_id": bob.user_id})
            await bob.post(f"/rooms/{room}/join")
            await bob.send_message(rid, "in")

    async def test_restricted_joins_from_version_8(self) -> None:
        _, (alice, bob, carol) = await self._users("alice", "bob", "carol")
        space = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        await bob.post(f"/join/{quote(space)}")
        for version in VERSIONS:
            for rule in ("restricted", "knock_restricted"):
                rid = (await alice.post("/createRoom", {"room_version": version, "preset": "private_chat"}))["room_id"]
                room = quote(rid)
                await alice.put(
                    f"/rooms/{room}/state/m.room.join_rules/",
                    {"join_rule": rule, "allow": [{"type": "m.room_membership", "room_id": space}]},
                )
                supported = int(version) >= (8 if rule == "restricted" else 10)
                code, body = await bob.raw("POST", f"/_matrix/client/v3/rooms/{room}/join", {})
                if not supported:
                    # An unknown join rule lets nobody in uninvited.
                    self.assertEqual((code, body.get("errcode")), (403, "M_FORBIDDEN"), (version, rule))
                    continue
                self.assertEqual(code, 200, (version, rule, body))
                member = await alice.get(f"/rooms/{room}/state/m.room.member/{quote(bob.user_id)}")
                self.assertEqual(member["join_authorised_via_users_server"], alice.user_id)
                # carol is in no allowed room
                code, body = await carol.raw("POST", f"/_matrix/client/v3/rooms/{room}/join", {})
                self.assertEqual((code, body.get("errcode")), (403, "M_FORBIDDEN"), (version, rule))
                if rule == "knock_restricted":
                    await carol.post(f"/knock/{room}", {})
                    member = await alice.get(f"/rooms/{room}/state/m.room.member/{quote(carol.user_id)}")
                    self.assertEqual(member["membership"], "knock")

    async def test_json_values_by_version(self) -> None:
        """Complement's TestJson, for every version: from v6 event content must be
        canonical JSON (no floats, integers within +-(2**53-1)): 400 M_BAD_JSON; older
        versions take such values, as Synapse does, and serve them back."""
        _, (alice,) = await self._users("alice")
        bad_values = [9007199254740992, -9007199254740992, 1.1]
        for version in VERSIONS:
            rid = (await alice.post("/createRoom", {"room_version": version}))["room_id"]
            room = quote(rid)
            for i, value in enumerate(bad_values):
                code, body = await alice.raw(
                    "PUT", f"/_matrix/client/v3/rooms/{room}/send/complement.dummy/num-{version}-{i}", {"body": value}
                )
                if int(version) >= 6:
                    self.assertEqual((code, body.get("errcode")), (400, "M_BAD_JSON"), (version, value))
                else:
                    self.assertEqual(code, 200, (version, value, body))
                    event = await alice.get(f"/rooms/{room}/event/{quote(body['event_id'])}")
                    self.assertEqual(event["content"]["body"], value)
                code, body = await alice.raw(
                    "PUT", f"/_matrix/client/v3/rooms/{room}/state/complement.state/{i}", {"level": value}
                )
                self.assertEqual(code, 400 if int(version) >= 6 else 200, (version, value, body))
            # NaN and the infinities are no JSON at all, in any version.
            for i, literal in enumerate((b'{"body": NaN}', b'{"body": Infinity}', b'{"body": -Infinity}')):
                code, body = await alice.raw(
                    "PUT", f"/_matrix/client/v3/rooms/{room}/send/complement.dummy/special-{version}-{i}", data=literal
                )
                self.assertEqual((code, body.get("errcode")), (400, "M_NOT_JSON"), (version, literal))


class UpgradeAcrossVersionsTest(unittest.TestCase):
    timeout = 300

    async def test_upgrades_between_versions(self) -> None:
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        eve = await MatrixClient.register(server.base_url, "eve")
        for old_version, new_version in [
            # every version is upgraded from and to at least once
            ("1", "12"), ("9", "11"), ("11", "12"), ("12", "10"), ("2", "3"), ("5", "6"), ("10", "1"), ("12", "12"),
            ("3", "4"), ("4", "7"), ("7", "8"), ("8", "5"), ("6", "9"), ("11", "2"),
        ]:
            old = (
                await alice.post(
                    "/createRoom",
                    {
                        "room_version": old_version,
                        "preset": "public_chat",
                        "visibility": "public",
                        "name": f"from v{old_version}",
                        "topic": "kept",
                        "room_alias_name": f"up{old_version}to{new_version}",
                        "power_level_content_override": {
                            "users_default": 10,
                            "events": {"m.room.topic": 60, "m.room.tombstone": 100, "m.room.power_levels": 100},
                        },
                    },
                )
            )["room_id"]
            await bob.post(f"/join/{quote(old)}")
            await eve.post(f"/join/{quote(old)}")
            pl = await alice.get(f"/rooms/{quote(old)}/state/m.room.power_levels/")
            pl["users"][bob.user_id] = 50
            await alice.put(f"/rooms/{quote(old)}/state/m.room.power_levels/", pl)
            await alice.post(f"/rooms/{quote(old)}/ban", {"user_id": eve.user_id, "reason": "spam"})
            await alice.send_message(old, "last words")

            code, body = await bob.raw("POST", f"/_matrix/client/v3/rooms/{quote(old)}/upgrade", {"new_version": new_version})
            self.assertEqual((code, body.get("errcode")), (403, "M_FORBIDDEN"))
            new = (await alice.post(f"/rooms/{quote(old)}/upgrade", {"new_version": new_version}))["replacement_room"]
            label = f"v{old_version} -> v{new_version}"

            old_state = await state_of(alice, old)
            tombstone = old_state[("m.room.tombstone", "")]
            self.assertEqual(tombstone["content"]["replacement_room"], new, label)
            new_state = await state_of(alice, new)
            create = new_state[("m.room.create", "")]["content"]
            self.assertEqual(create["room_version"], new_version, label)
            self.assertEqual(create["predecessor"]["room_id"], old, label)
            if new_version == "12":
                # v12: the new room's id is its create event's hash, known before the
                # tombstone: the predecessor names no event (as Synapse).
                self.assertNotIn("event_id", create["predecessor"], label)
            else:
                self.assertEqual(create["predecessor"]["event_id"], tombstone["event_id"], label)
            self.assertEqual("creator" in create, int(new_version) <= 10, label)
            self.assertEqual(new_state[("m.room.name", "")]["content"]["name"], f"from v{old_version}")
            self.assertEqual(new_state[("m.room.topic", "")]["content"]["topic"], "kept")
            self.assertEqual(new_state[("m.room.join_rules", "")]["content"]["join_rule"], "public")
            # banned users stay banned
            self.assertEqual(new_state[("m.room.member", eve.user_id)]["content"]["membership"], "ban", label)
            # power levels copied; the creator listed only where creators are not implicit
            new_pl = new_state[("m.room.power_levels", "")]["content"]
            self.assertEqual((new_pl["users_default"], new_pl["events"]["m.room.topic"]), (10, 60), label)
            self.assertEqual(new_pl["users"].get(bob.user_id), 50, label)
            if "12" in (old_version, new_version):
                # v12 creators may not be listed; from a v12 room the upgrader was not
                # listed, and (as with Synapse) the old levels are what the new room gets.
                self.assertNotIn(alice.user_id, new_pl["users"], label)
            else:
                self.assertEqual(new_pl["users"][alice.user_id], 100, label)
            # the old room is restricted: events and invites need more than users_default
            old_pl = old_state[("m.room.power_levels", "")]["content"]
            self.assertEqual((old_pl["events_default"], old_pl["invite"]), (50, 50), label)
            # the alias moved over
            alias = quote(f"#up{old_version}to{new_version}:localhost")
            self.assertEqual((await bob.get(f"/directory/room/{alias}"))["room_id"], new, label)
            self.assertEqual(new_state[("m.room.canonical_alias", "")]["content"]["alias"], f"#up{old_version}to{new_version}:localhost")
            self.assertNotIn("alias", old_state[("m.room.canonical_alias", "")]["content"], label)
            # the old room leaves the directory, the new one is listed
            public = {r["room_id"] for r in (await bob.get("/publicRooms"))["chunk"]}
            self.assertIn(new, public, label)
            self.assertNotIn(old, public, label)
            # bob follows and talks in the new room
            await bob.post(f"/join/{quote(new)}")
            await bob.send_message(new, "moved")
            code, body = await eve.raw("POST", f"/_matrix/client/v3/join/{quote(new)}", {})
            self.assertEqual(code, 403, label)

    async def test_v12_upgrade_with_additional_creators(self) -> None:
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        old = (await alice.post("/createRoom", {"room_version": "11", "preset": "public_chat"}))["room_id"]
        await bob.post(f"/join/{quote(old)}")
        pl = await alice.get(f"/rooms/{quote(old)}/state/m.room.power_levels/")
        pl["users"][bob.user_id] = 100
        await alice.put(f"/rooms/{quote(old)}/state/m.room.power_levels/", pl)
        new = (
            await alice.post(
                f"/rooms/{quote(old)}/upgrade", {"new_version": "12", "additional_creators": [bob.user_id]}
            )
        )["replacement_room"]
        create = await alice.get(f"/rooms/{quote(new)}/state/m.room.create/")
        self.assertEqual(create["additional_creators"], [bob.user_id])
        new_pl = await alice.get(f"/rooms/{quote(new)}/state/m.room.power_levels/")
        # creators may not appear in a v12 room's users
        self.assertNotIn(bob.user_id, new_pl["users"])
        self.assertNotIn(alice.user_id, new_pl["users"])
        await bob.post(f"/join/{quote(new)}")
        await bob.put(f"/rooms/{quote(new)}/state/m.room.topic/", {"topic": "co-creator"})


class UpgradeCarriesUserStateTest(unittest.TestCase):
    timeout = 120

    async def test_tags_direct_and_push_rules_follow_the_room(self) -> None:
        """Synapse's copy_user_state_on_room_upgrade, for each local member."""
        server = await start_homeserver(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        old = (await alice.post("/createRoom", {"room_version": "5", "preset": "public_chat"}))["room_id"]
        await bob.post(f"/join/{quote(old)}")
        await bob.put(f"/user/{quote(bob.user_id)}/rooms/{quote(old)}/tags/u.work", {"order": 0.5})
        await bob.put(f"/user/{quote(bob.user_id)}/account_data/m.direct", {alice.user_id: [old]})
        await bob.put(f"/pushrules/global/room/{quote(old)}", {"actions": []})
        await bob.put(
            "/pushrules/global/override/quiet-old",
            {"actions": [], "conditions": [{"kind": "event_match", "key": "room_id", "pattern": old}]},
        )
        new = (await alice.post(f"/rooms/{quote(old)}/upgrade", {"new_version": "10"}))["replacement_room"]
        tags = await bob.get(f"/user/{quote(bob.user_id)}/rooms/{quote(new)}/tags")
        self.assertEqual(tags["tags"], {"u.work": {"order": 0.5}})
        direct = await bob.get(f"/user/{quote(bob.user_id)}/account_data/m.direct")
        self.assertEqual(direct, {alice.user_id: [old, new]})
        room_rule = await bob.get(f"/pushrules/global/room/{quote(new)}")
        self.assertEqual(room_rule["actions"], [])
        override = await bob.get(f"/pushrules/global/override/{quote(new)}")
        self.assertEqual(override["conditions"], [{"kind": "event_match", "key": "room_id", "pattern": new}])


class UpgradeFromFederatedLevelsTest(unittest.TestCase):
    """Before room version 10 power levels may be strings ("50"): only events from other
    servers carry them (a local power levels event must hold integers, in Synapse as
    here). An upgrade makes them integers, as Synapse does; the new room's levels used
    to fail the upgrade after part of the room was stored."""

    timeout = 120

    async def test_upgrade_makes_string_levels_integers(self) -> None:
        from homeserver.handlers.room_events.builder import select_auth_events
        from homeserver.protocol.event_hashing import add_content_hash
        from homeserver.protocol.event_ids import compute_event_id
        from homeserver.protocol.signing import generate_signing_key, sign_event
        from homeserver.util.ids import now_ms
        from tests.federation.rooms.test_ingest import REMOTE, FakeKeyring

        server = await start_homeserver(self, server_name="a.test", federation={"enabled": False})
        hs = server.hs
        remote_key = generate_signing_key("r1")
        hs.federation.keyring = FakeKeyring({REMOTE: remote_key, "a.test": hs.signing_key})
        alice = await MatrixClient.register(server.base_url, "alice")
        eve = f"@eve:{REMOTE}"
        old = (await alice.post("/createRoom", {"room_version": "9", "preset": "public_chat"}))["room_id"]

        async def receive(event_type: str, state_key: str, content: dict[str, Any]) -> None:
            room = await hs.rooms.get_room(old)
            pdu: dict[str, Any] = {
                "type": event_type, "room_id": old, "sender": eve, "state_key": state_key, "content": content,
                "origin_server_ts": now_ms(), "prev_events": sorted(room.extremities), "depth": room.depth + 1,
                "origin": REMOTE,
            }
            pdu["auth_events"] = select_auth_events(pdu, room.state, room.version)
            pdu = sign_event(add_content_hash(pdu), room.version, REMOTE, remote_key)
            result = await hs.federation.ingest.on_receive_pdus(REMOTE, [pdu])
            self.assertEqual(result, {compute_event_id(pdu, room.version): None})

        await receive("m.room.member", eve, {"membership": "join"})
        pl = await alice.get(f"/rooms/{quote(old)}/state/m.room.power_levels/")
        await alice.put(f"/rooms/{quote(old)}/state/m.room.power_levels/", {**pl, "users": {**pl["users"], eve: 100}})
        strings = {
            "users": {alice.user_id: "100", eve: "100"},
            "events_default": "0",
            "state_default": "50",
            "events": {"m.room.name": "50", "m.room.tombstone": "100", "m.room.power_levels": "100"},
        }
        await receive("m.room.power_levels", "", strings)
        self.assertEqual((await alice.get(f"/rooms/{quote(old)}/state/m.room.power_levels/"))["events_default"], "0")

        new = (await alice.post(f"/rooms/{quote(old)}/upgrade", {"new_version": "11"}))["replacement_room"]
        upgraded = await alice.get(f"/rooms/{quote(new)}/state/m.room.power_levels/")
        self.assertEqual(upgraded["users"], {alice.user_id: 100, eve: 100})
        self.assertEqual((upgraded["events_default"], upgraded["events"]["m.room.name"]), (0, 50))
        restricted = await alice.get(f"/rooms/{quote(old)}/state/m.room.power_levels/")
        self.assertEqual((restricted["events_default"], restricted["invite"]), (50, 50))


class RoomVersionsPostgresTest(RoomVersionsTest):
    database = "postgresql"


class UpgradeAcrossVersionsPostgresTest(UpgradeAcrossVersionsTest):
    database = "postgresql"
