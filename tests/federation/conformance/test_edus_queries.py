"""The smaller federation files of Complement:

* ``federation_presence_test.go`` (TestRemotePresence, 2 cases)
* ``federation_room_typing_test.go`` (TestRemoteTyping)
* ``federation_query_profile_test.go`` (TestOutboundFederationProfile, TestInboundFederationProfile: 3 cases)
* ``federation_room_alias_test.go`` (TestRemoteAliasRequestsUnderstandUnicode)
* ``federation_upload_keys_test.go`` (TestFederationKeyUploadQuery: 2 cases)
* ``federation_media_content_test.go`` (TestContentMediaV1)
"""

from __future__ import annotations

from typing import Any

from twisted.trial import unittest

from tests.conformance.complement import CaseFn, Side, joined_to, q, sync_until
from tests.federation.conformance.harness import on_wspr_and_synapse, run_cases
from tests.federation.conformance.test_device_lists import generate_keys
from tests.federation.helpers import start_federating
from tests.support.fake_homeserver import FedRequest, start_fake_homeserver
from tests.support.wspr import MatrixClient

# The smallest PNG (1x1, transparent), for the media case.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
)


async def two_servers(test: unittest.TestCase) -> tuple[MatrixClient, MatrixClient, Any, Any]:
    hs1 = await start_federating(test)
    hs2 = await start_federating(test)
    alice = await MatrixClient.register(hs1.base_url, "alice")
    bob = await MatrixClient.register(hs2.base_url, "bob")
    return alice, bob, hs1, hs2


def presence_of(user_id: str, presence: str, status_msg: str | None = None) -> Any:
    def check(body: dict[str, Any]) -> bool:
        for ev in body.get("presence", {}).get("events", []):
            c = ev.get("content", {})
            if ev.get("sender") == user_id and c.get("presence") == presence:
                if status_msg is None or c.get("status_msg") == status_msg:
                    return True
        return False

    return check


class RemotePresenceTest(unittest.TestCase):
    timeout = 120

    async def test_remote_presence(self) -> None:
        alice, bob, hs1, _ = await two_servers(self)

        async def cases(case: CaseFn) -> None:
            room_id = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
            await bob.post(f"/join/{q(room_id)}?server_name={q(hs1.server_name)}", {})
            with case("Presence changes are also reported to remote room members"):
                since = (await bob.get("/sync?timeout=0"))["next_batch"]
                msg = "Update for room members"
                await alice.put(f"/presence/{q(alice.user_id)}/status", {"status_msg": msg, "presence": "online"})
                await sync_until(bob, presence_of(alice.user_id, "online", msg), since=since)
            with case("Presence changes to UNAVAILABLE are reported to remote room members"):
                since = (await bob.get("/sync?timeout=0"))["next_batch"]
                await alice.put(f"/presence/{q(alice.user_id)}/status", {"presence": "unavailable"})
                await sync_until(bob, presence_of(alice.user_id, "unavailable"), since=since)

        await run_cases("WSPR+WSPR", cases)


class RemoteTypingTest(unittest.TestCase):
    timeout = 120

    async def test_remote_typing(self) -> None:
        """Typing notifications also sent to remote room members."""
        hs1 = await start_federating(self)
        hs2 = await start_federating(self)

        async def cases(case: CaseFn) -> None:
            alice = await MatrixClient.register(hs1.base_url, "alice")
            bob = await MatrixClient.register(hs1.base_url, "bob")
            charlie = await MatrixClient.register(hs2.base_url, "charlie")
            room_id = (await alice.post("/createRoom", {"preset": "public_chat"}))["room_id"]
            await bob.post(f"/join/{q(room_id)}", {})
            await charlie.post(f"/join/{q(room_id)}?server_name={q(hs1.server_name)}", {})
            _, bob_since = await sync_until(bob, joined_to(bob.user_id, room_id))
            _, charlie_since = await sync_until(charlie, joined_to(charlie.user_id, room_id))
            await alice.put(f"/rooms/{q(room_id)}/typing/{q(alice.user_id)}", {"typing": True, "timeout": 10000})

            def typing(body: dict[str, Any]) -> bool:
                room = body.get("rooms", {}).get("join", {}).get(room_id, {})
                return any(
                    e.get("type") == "m.typing" and alice.user_id in e.get("content", {}).get("user_ids", [])
                    for e in room.get("ephemeral", {}).get("events", [])
                )

            with case("a local member sees the typing"):
                await sync_until(bob, typing, since=bob_since)
            with case("a remote member sees the typing"):
                await sync_until(charlie, typing, since=charlie_since)

        await run_cases("WSPR+WSPR", cases)


class FederationProfileTest(unittest.TestCase):
    timeout = 120

    async def test_outbound_federation_profile(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            srv = await start_fake_homeserver(self)
            remote = srv.user_id("user")
            asked: list[str | None] = []

            async def profile(req: FedRequest) -> tuple[int, Any]:
                asked.append(req.arg("user_id"))
                if req.arg("user_id") != remote:
                    return 500, {}
                return 200, {"displayname": "my remote display name", "avatar_url": ""}

            srv.handle("GET", r"/_matrix/federation/v1/query/profile", profile)
            with case("Outbound federation can query profile data"):
                anonymous = MatrixClient(side.base_url)
                body = await anonymous.request("GET", f"/_matrix/client/v3/profile/{q(remote)}/displayname")
                assert body["displayname"] == "my remote display name", body
                assert asked == [remote], asked

        await on_wspr_and_synapse(self, scenario)

    async def test_inbound_federation_profile(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            srv = await start_fake_homeserver(self)
            alice = await side.register("alice")
            with case("Non-numeric ports in server names are rejected"):
                code, body = await srv.raw_request(side.server_name, "GET", "/_matrix/federation/v1/query/profile",
                                                   query={"user_id": "@user1:localhost:http", "field": "displayname"})
                assert code == 400, (code, body)
            with case("Inbound federation can query profile data"):
                await alice.put(f"/profile/{q(alice.user_id)}/displayname", {"displayname": "Alice Cooper"})
                code, body = await srv.raw_request(side.server_name, "GET", "/_matrix/federation/v1/query/profile",
                                                   query={"user_id": alice.user_id, "field": "displayname"})
                assert code == 200, (code, body)
                assert body["displayname"] == "Alice Cooper", body

        await on_wspr_and_synapse(self, scenario)


class RemoteAliasTest(unittest.TestCase):
    timeout = 120

    async def test_remote_alias_requests_understand_unicode(self) -> None:
        alice, bob, hs1, _ = await two_servers(self)

        async def cases(case: CaseFn) -> None:
            alias = f"#老虎Â£я:{hs1.server_name}"
            room_id = (await alice.post("/createRoom", {}))["room_id"]
            await alice.put(f"/directory/room/{q(alias)}", {"room_id": room_id})
            with case("Remote room alias queries can handle Unicode"):
                body = await bob.get(f"/directory/room/{q(alias)}")
                assert body["room_id"] == room_id, body

        await run_cases("WSPR+WSPR", cases)


class FederationKeyUploadQueryTest(unittest.TestCase):
    timeout = 120

    async def test_federation_key_upload_query(self) -> None:
        alice, bob, _, _ = await two_servers(self)

        async def cases(case: CaseFn) -> None:
            device_keys, otks = generate_keys(alice.user_id, alice.device_id, 1)
            body = await alice.post("/keys/upload", {"device_keys": device_keys, "one_time_keys": otks})
            assert body["one_time_key_counts"].get("signed_curve25519") == 1, body
            claim = {"one_time_keys": {alice.user_id: {alice.device_id: "signed_curve25519"}}}
            with case("Can claim remote one time key using POST"):
                got = await bob.post("/keys/claim", claim)
                assert got["one_time_keys"][alice.user_id][alice.device_id] == otks, got
                again = await bob.post("/keys/claim", claim)
                assert alice.user_id not in again["one_time_keys"], again
            with case("Can query remote device keys using POST"):
                await alice.put(f"/devices/{q(alice.device_id)}", {"display_name": "My new displayname"})
                got = await bob.post("/keys/query", {"device_keys": {alice.user_id: []}})
                keys = got["device_keys"][alice.user_id][alice.device_id]
                for field in ("algorithms", "keys", "signatures"):
                    assert keys[field] == device_keys[field], (field, keys)
                # Complement also expects unsigned.device_display_name: its Synapse runs with
                # allow_device_name_lookup_over_federation: true. WSPR keeps Synapse's default
                # (names stay on their server) and has no such option.
                assert "device_display_name" not in keys.get("unsigned", {}), keys

        await run_cases("WSPR+WSPR", cases)


class ContentMediaTest(unittest.TestCase):
    timeout = 120

    async def test_content_media_v1(self) -> None:
        """Media uploaded on one server, downloaded through another's authenticated endpoint."""
        alice, bob, _, _ = await two_servers(self)

        async def cases(case: CaseFn) -> None:
            code, body = await alice.raw("POST", "/_matrix/media/v3/upload?filename=test.png", data=PNG,
                                         headers={"Content-Type": "img/png"})
            assert code == 200, body
            server_name, media_id = body["content_uri"][len("mxc://"):].split("/", 1)
            with case("the other server's user downloads the same bytes and content type"):
                import treq
                from twisted.internet import reactor
                from twisted.web.client import HTTPConnectionPool

                resp = await treq.get(
                    f"{bob.base_url}/_matrix/client/v1/media/download/{q(server_name)}/{q(media_id)}".encode(),
                    headers={"Authorization": [f"Bearer {bob.access_token}"]},
                    pool=HTTPConnectionPool(reactor, persistent=False),
                )
                data = await resp.content()
                assert resp.code == 200, (resp.code, data[:200])
                assert data == PNG, data[:64]
                ctype = resp.headers.getRawHeaders("Content-Type")
                assert ctype == ["img/png"], ctype

        await run_cases("WSPR+WSPR", cases)


