"""Rooms of every room version, 1 to 12, shared between WSPR and a real Synapse: created
on Synapse and joined from WSPR, and the reverse, with messages both ways, a redaction
and a leave. One Synapse and one WSPR serve all twelve versions of a direction.

The figure printed is the one issue 11 asks for: of rooms of versions 1-12 created on
Synapse, how many WSPR users can join (and the reverse)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote as _quote

from twisted.trial import unittest

from tests.federation.helpers import start_federating
from tests.federation.rooms.test_two_wspr import SyncWatcher
from tests.support.synapse import start_synapse_peer, synapse_client
from tests.support.wspr import MatrixClient

try:
    import synapse  # noqa: F401
except ImportError:  # matrix-synapse is a test extra
    synapse = None

VERSIONS = [str(n) for n in range(1, 13)]


def quote(value: str) -> str:
    return _quote(value, safe="")


class SynapseRoomVersionsTest(unittest.TestCase):
    timeout = 600
    if synapse is None:
        skip = "matrix-synapse is not installed"

    async def _servers(self) -> tuple[Any, Any]:
        syn = await start_synapse_peer(self, "wspr-synapse-versions-")
        wspr = await start_federating(self)
        return wspr, syn

    async def _exchange(
        self, room_id: str, version: str, host: MatrixClient, guest: MatrixClient, host_sync: SyncWatcher, guest_sync: SyncWatcher
    ) -> None:
        """Messages both ways, the guest's message redacted by its sender, seen by both."""
        to_guest = f"v{version} from the host"
        await host.send_message(room_id, to_guest)
        from_guest = await guest.send_message(room_id, f"v{version} from the guest")
        await guest_sync.until(lambda: to_guest in guest_sync.bodies(room_id), timeout=30)
        await host_sync.until(lambda: f"v{version} from the guest" in host_sync.bodies(room_id), timeout=30)
        redaction = (await guest.put(f"/rooms/{quote(room_id)}/redact/{quote(from_guest)}/r{version}", {}))["event_id"]
        await host_sync.until(
            lambda: any(e["event_id"] == redaction for e in host_sync.timeline.get(room_id, [])), timeout=30
        )
        event = await host.get(f"/rooms/{quote(room_id)}/event/{quote(from_guest)}")
        self.assertEqual(event["content"], {}, version)

    async def test_rooms_of_every_version_created_on_synapse_joined_from_wspr(self) -> None:
        wspr, syn = await self._servers()
        alice = await MatrixClient.register(wspr.base_url, "alice")
        bob = await synapse_client(syn, "bob")
        alice_sync, bob_sync = SyncWatcher(alice), SyncWatcher(bob)
        joined: list[str] = []
        failures: dict[str, str] = {}
        for version in VERSIONS:
            room_id = (await bob.post("/createRoom", {"room_version": version, "preset": "public_chat"}))["room_id"]
            for i in range(3):
                await bob.send_message(room_id, f"v{version} history {i}")
            try:
                answer = await alice.post(f"/join/{quote(room_id)}?server_name={quote(syn.server_name)}")
            except Exception as e:  # counted, and the test fails below
                failures[version] = str(e)
                continue
            self.assertEqual(answer["room_id"], room_id)
            joined.append(version)
            await bob_sync.until(lambda: bob_sync.has_member(room_id, alice.user_id, "join"), timeout=30)
            await self._exchange(room_id, version, bob, alice, bob_sync, alice_sync)
            # the history from before the join, backfilled from Synapse
            page = await alice.get(f"/rooms/{quote(room_id)}/messages?dir=b&limit=50")
            bodies = {e["content"].get("body") for e in page["chunk"]}
            self.assertLessEqual({f"v{version} history {i}" for i in range(3)}, bodies, version)
            await alice.post(f"/rooms/{quote(room_id)}/leave")
            await bob_sync.until(lambda: bob_sync.has_member(room_id, alice.user_id, "leave"), timeout=30)

            # an invite to a room of this version, rejected over federation
            other = (await bob.post("/createRoom", {"room_version": version, "invite": [alice.user_id]}))["room_id"]
            await alice_sync.until(lambda: other in alice_sync.invites, timeout=30)
            await alice.post(f"/rooms/{quote(other)}/leave")
            await bob_sync.until(lambda: bob_sync.has_member(other, alice.user_id, "leave"), timeout=30)
        print(f"\n  of rooms of versions 1-12 created on Synapse, WSPR users can join {len(joined)}")
        self.assertEqual(failures, {})

    async def test_rooms_of_every_version_created_on_wspr_joined_from_synapse(self) -> None:
        wspr, syn = await self._servers()
        alice = await MatrixClient.register(wspr.base_url, "alice")
        bob = await synapse_client(syn, "bob")
        alice_sync, bob_sync = SyncWatcher(alice), SyncWatcher(bob)
        joined: list[str] = []
        failures: dict[str, str] = {}
        for version in VERSIONS:
            room_id = (await alice.post("/createRoom", {"room_version": version, "preset": "private_chat"}))["room_id"]
            try:
                await alice.post(f"/rooms/{quote(room_id)}/invite", {"user_id": bob.user_id})
                await bob_sync.until(lambda: room_id in bob_sync.invites, timeout=30)
                await bob.post(f"/join/{quote(room_id)}")
            except Exception as e:  # counted, and the test fails below
                failures[version] = str(e)
                continue
            joined.append(version)
            await alice_sync.until(lambda: alice_sync.has_member(room_id, bob.user_id, "join"), timeout=30)
            await self._exchange(room_id, version, alice, bob, alice_sync, bob_sync)
            await bob.post(f"/rooms/{quote(room_id)}/leave")
            await alice_sync.until(lambda: alice_sync.has_member(room_id, bob.user_id, "leave"), timeout=30)

            # an invite to a room of this version, rejected over federation
            other = (await alice.post("/createRoom", {"room_version": version, "invite": [bob.user_id]}))["room_id"]
            await bob_sync.until(lambda: other in bob_sync.invites, timeout=30)
            await bob.post(f"/rooms/{quote(other)}/leave")
            await alice_sync.until(lambda: alice_sync.has_member(other, bob.user_id, "leave"), timeout=30)
        print(f"\n  of rooms of versions 1-12 created on WSPR, Synapse users can join {len(joined)}")
        self.assertEqual(failures, {})

    async def test_knocks_and_restricted_joins_of_every_version_both_ways(self) -> None:
        """Knocking (room versions 7+), restricted joins (8+) and knock_restricted (10+),
        on rooms of each side, by users of the other."""
        wspr, syn = await self._servers()
        alice = await MatrixClient.register(wspr.base_url, "alice")
        bob = await synapse_client(syn, "bob")
        alice_sync, bob_sync = SyncWatcher(alice), SyncWatcher(bob)
        # the rooms whose members may join the restricted rooms, one on each side, both in
        syn_space = (await bob.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        wspr_space = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
        await alice.post(f"/join/{quote(syn_space)}?server_name={quote(syn.server_name)}")
        await bob.post(f"/join/{quote(wspr_space)}?server_name={quote(wspr.server_name)}")
        sides = (
            # (resident, its server, its sync, the other user, their sync, the allowed room)
            (bob, syn.server_name, bob_sync, alice, alice_sync, syn_space),
            (alice, wspr.server_name, alice_sync, bob, bob_sync, wspr_space),
        )
        for version in VERSIONS[6:]:
            for resident, server, resident_sync, joiner, joiner_sync, space in sides:
                via = f"?server_name={quote(server)}"
                room_id = (await resident.post("/createRoom", {"room_version": version}))["room_id"]
                room = quote(room_id)
                await resident.put(f"/rooms/{room}/state/m.room.join_rules/", {"join_rule": "knock"})
                await joiner.post(f"/knock/{room}{via}", {"reason": f"v{version}"})
                await resident_sync.until(lambda: resident_sync.has_member(room_id, joiner.user_id, "knock"), timeout=30)
                await resident.post(f"/rooms/{room}/invite", {"user_id": joiner.user_id})
                await joiner_sync.until(lambda: room_id in joiner_sync.invites, timeout=30)
                await joiner.post(f"/join/{room}{via}")
                await resident_sync.until(lambda: resident_sync.has_member(room_id, joiner.user_id, "join"), timeout=30)
                rules = ["restricted"] if version in ("8", "9") else ["restricted", "knock_restricted"]
                for rule in rules if int(version) >= 8 else []:
                    room_id = (await resident.post("/createRoom", {"room_version": version}))["room_id"]
                    room = quote(room_id)
                    await resident.put(
                        f"/rooms/{room}/state/m.room.join_rules/",
                        {"join_rule": rule, "allow": [{"type": "m.room_membership", "room_id": space}]},
                    )
                    await joiner.post(f"/join/{room}{via}")
                    await resident_sync.until(
                        lambda: resident_sync.has_member(room_id, joiner.user_id, "join"), timeout=30
                    )
                    await joiner.send_message(room_id, f"v{version} {rule}")
                    await resident_sync.until(lambda: f"v{version} {rule}" in resident_sync.bodies(room_id), timeout=30)

    async def test_upgrades_followed_across_servers(self) -> None:
        """A room upgraded on one side: the other side's member sees the tombstone, joins
        the replacement room and talks there (v1 -> v12 and v12 -> v10 on WSPR, v2 -> v11
        on Synapse)."""
        wspr, syn = await self._servers()
        alice = await MatrixClient.register(wspr.base_url, "alice")
        bob = await synapse_client(syn, "bob")
        alice_sync, bob_sync = SyncWatcher(alice), SyncWatcher(bob)
        cases = (
            (alice, wspr.server_name, alice_sync, bob, bob_sync, "1", "12"),
            (alice, wspr.server_name, alice_sync, bob, bob_sync, "12", "10"),
            (bob, syn.server_name, bob_sync, alice, alice_sync, "2", "11"),
        )
        for owner, server, owner_sync, member, member_sync, old_version, new_version in cases:
            old = (await owner.post("/createRoom", {"room_version": old_version, "preset": "public_chat"}))["room_id"]
            await member.post(f"/join/{quote(old)}?server_name={quote(server)}")
            await owner_sync.until(lambda: owner_sync.has_member(old, member.user_id, "join"), timeout=30)
            new = (await owner.post(f"/rooms/{quote(old)}/upgrade", {"new_version": new_version}))["replacement_room"]

            def tombstoned() -> bool:
                return any(
                    e["type"] == "m.room.tombstone" and e["content"].get("replacement_room") == new
                    for e in member_sync.timeline.get(old, [])
                )

            await member_sync.until(tombstoned, timeout=30)
            await member.post(f"/join/{quote(new)}?server_name={quote(server)}")
            create = await member.get(f"/rooms/{quote(new)}/state/m.room.create/")
            self.assertEqual((create["room_version"], create["predecessor"]["room_id"]), (new_version, old))
            await member.send_message(new, f"moved to v{new_version}")
            await owner_sync.until(lambda: f"moved to v{new_version}" in owner_sync.bodies(new), timeout=30)
