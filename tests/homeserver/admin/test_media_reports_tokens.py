"""The admin API for media, event reports, registration tokens, server notices and the
server version over HTTP, on SQLite and PostgreSQL. Quarantined media answers 404 to
every download, as Synapse's does."""

from __future__ import annotations

import os
import time

from twisted.trial import unittest

from tests.homeserver.admin.support import V1, admin_server, q
from tests.support.wspr import MatrixClient

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6300010000050001a5f645400000000049454e44ae426082"
)


async def upload(client: MatrixClient, data: bytes, content_type: str = "text/plain") -> str:
    answer = await client.request(
        "POST", "/_matrix/media/v3/upload?filename=f.txt", data=data, headers={"Content-Type": content_type}
    )
    return answer["content_uri"]


async def download(client: MatrixClient, mxc: str) -> int:
    server, media_id = mxc[len("mxc://"):].split("/")
    code, _ = await client.raw("GET", f"/_matrix/client/v1/media/download/{server}/{media_id}")
    return code


class AdminMediaTest(unittest.TestCase):
    timeout = 180
    database = "sqlite"

    async def test_user_media_quarantine_protect_delete(self) -> None:
        server, root = await admin_server(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        first = await upload(alice, b"first")
        second = await upload(alice, b"second, longer")
        same_as_first = await upload(alice, b"first")
        listing = await root.request("GET", f"{V1}/users/{q(alice.user_id)}/media")
        self.assertEqual(listing["total"], 3)
        entry = listing["media"][0]
        self.assertEqual(
            set(entry),
            {"media_id", "media_type", "media_length", "upload_name", "created_ts", "url_cache", "last_access_ts",
             "quarantined_by", "safe_from_quarantine", "user_id", "authenticated", "sha256"},
        )
        # newest first by default; ordered as asked otherwise
        self.assertEqual(entry["media_id"], same_as_first.rsplit("/", 1)[1])
        by_size = await root.request("GET", f"{V1}/users/{q(alice.user_id)}/media?order_by=media_length&dir=b")
        self.assertEqual(by_size["media"][0]["media_length"], len(b"second, longer"))
        page = await root.request("GET", f"{V1}/users/{q(alice.user_id)}/media?limit=2")
        self.assertEqual((len(page["media"]), page["next_token"]), (2, 2))
        code, body = await root.raw("GET", f"{V1}/users/{q('@nobody:localhost')}/media")
        self.assertEqual((code, body["errcode"]), (404, "M_NOT_FOUND"))
        info = await root.request("GET", f"{V1}/media/localhost/{first.rsplit('/', 1)[1]}")
        self.assertEqual((info["media_info"]["user_id"], info["media_info"]["media_length"]), (alice.user_id, 5))

        # quarantine one: the same content uploaded again goes with it (by hash)
        first_id = first.rsplit("/", 1)[1]
        self.assertEqual(await download(alice, first), 200)
        self.assertEqual(await root.request("POST", f"{V1}/media/quarantine/localhost/{first_id}", {}), {})
        self.assertEqual(await download(alice, first), 404)
        self.assertEqual(await download(alice, same_as_first), 404)
        self.assertEqual(await download(alice, second), 200)
        code, _ = await alice.raw("GET", f"/_matrix/client/v1/media/thumbnail/localhost/{first_id}?width=32&height=32")
        self.assertEqual(code, 404)
        quarantined = {m["media_id"]: m["quarantined_by"] for m in (await root.request("GET", f"{V1}/users/{q(alice.user_id)}/media"))["media"]}
        self.assertEqual(quarantined[first_id], root.user_id)
        await root.request("POST", f"{V1}/media/unquarantine/localhost/{first_id}", {})
        self.assertEqual(await download(alice, first), 200)
        self.assertEqual(await download(alice, same_as_first), 200)

        # protected media cannot be quarantined
        second_id = second.rsplit("/", 1)[1]
        await root.request("POST", f"{V1}/media/protect/{second_id}", {})
        self.assertEqual(await root.request("POST", f"{V1}/user/{q(alice.user_id)}/media/quarantine", {}), {"num_quarantined": 2})
        self.assertEqual(await download(alice, second), 200)
        self.assertEqual(await download(alice, first), 404)
        await root.request("POST", f"{V1}/media/unprotect/{second_id}", {})
        await root.request("POST", f"{V1}/media/unquarantine/localhost/{first_id}", {})

        # a room's media
        room_id = (await alice.post("/createRoom", {}))["room_id"]
        await alice.put(
            f"/rooms/{q(room_id)}/send/m.room.message/img1",
            {"msgtype": "m.image", "body": "pic", "url": second, "info": {"thumbnail_url": "mxc://elsewhere.example/thumb"}},
        )
        self.assertEqual(
            await root.request("GET", f"{V1}/room/{q(room_id)}/media"),
            {"local": [second], "remote": ["mxc://elsewhere.example/thumb"]},
        )
        self.assertEqual(await root.request("POST", f"{V1}/room/{q(room_id)}/media/quarantine", {}), {"num_quarantined": 1})
        self.assertEqual(await download(alice, second), 404)

        # delete by id: the file goes
        path = server.hs.media.files.local_path(second_id)
        self.assertTrue(os.path.exists(path))
        answer = await root.request("DELETE", f"{V1}/media/localhost/{second_id}")
        self.assertEqual(answer, {"deleted_media": [second_id], "total": 1})
        self.assertFalse(os.path.exists(path))
        code, body = await root.raw("DELETE", f"{V1}/media/localhost/{second_id}")
        self.assertEqual((code, body["errcode"]), (404, "M_NOT_FOUND"))
        code, body = await root.raw("DELETE", f"{V1}/media/elsewhere.example/abc")
        self.assertEqual(code, 400)

    async def test_delete_by_date_and_size(self) -> None:
        server, root = await admin_server(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        small = (await upload(alice, b"s")).rsplit("/", 1)[1]
        big = (await upload(alice, b"b" * 100)).rsplit("/", 1)[1]
        avatar = await upload(alice, PNG, "image/png")
        await alice.put(f"/profile/{q(alice.user_id)}/avatar_url", {"avatar_url": avatar})
        now = int(time.time() * 1000) + 1000
        answer = await root.request("POST", f"{V1}/media/delete?before_ts={now}&size_gt=10")
        # the big one only; the avatar is kept (keep_profiles)
        self.assertEqual(answer, {"deleted_media": [big], "total": 1})
        answer = await root.request("POST", f"{V1}/media/localhost/delete?before_ts={now}&keep_profiles=false")
        self.assertEqual(sorted(answer["deleted_media"]), sorted([small, avatar.rsplit("/", 1)[1]]))
        for query, errcode in (("", "M_MISSING_PARAM"), ("?before_ts=1000", "M_INVALID_PARAM"), (f"?before_ts={now}&size_gt=-1", "M_INVALID_PARAM")):
            code, body = await root.raw("POST", f"{V1}/media/delete{query}")
            self.assertEqual((code, body["errcode"]), (400, errcode), query)
        code, body = await root.raw("POST", f"{V1}/media/elsewhere.example/delete?before_ts={now}")
        self.assertEqual(code, 400)


class AdminReportsTokensNoticesTest(unittest.TestCase):
    timeout = 180
    database = "sqlite"

    async def test_event_reports(self) -> None:
        server, root = await admin_server(self)
        alice = await MatrixClient.register(server.base_url, "alice")
        bob = await MatrixClient.register(server.base_url, "bob")
        room_id = (await alice.post("/createRoom", {"preset": "public_chat", "name": "Town square"}))["room_id"]
        await bob.post(f"/rooms/{q(room_id)}/join")
        bad = await alice.send_message(room_id, "spam")
        worse = await alice.send_message(room_id, "more spam")
        await bob.post(f"/rooms/{q(room_id)}/report/{q(bad)}", {"reason": "spam", "score": -100})
        await bob.post(f"/rooms/{q(room_id)}/report/{q(worse)}", {"reason": "more"})
        listing = await root.request("GET", f"{V1}/event_reports")
        self.assertEqual(listing["total"], 2)
        newest = listing["event_reports"][0]
        self.assertEqual(
            set(newest),
            {"id", "received_ts", "room_id", "event_id", "user_id", "score", "reason", "sender", "canonical_alias", "name"},
        )
        self.assertEqual(
            (newest["event_id"], newest["user_id"], newest["sender"], newest["name"], newest["reason"]),
            (worse, bob.user_id, alice.user_id, "Town square", "more"),
        )
        oldest_first = await root.request("GET", f"{V1}/event_reports?dir=f&limit=1")
        self.assertEqual((oldest_first["event_reports"][0]["event_id"], oldest_first["next_token"]), (bad, 1))
        self.assertEqual((await root.request("GET", f"{V1}/event_reports?event_sender_user_id={q(bob.user_id)}"))["total"], 0)
        self.assertEqual((await root.request("GET", f"{V1}/event_reports?user_id=bob"))["total"], 2)
        self.assertEqual((await root.request("GET", f"{V1}/event_reports?room_id={q(room_id)}"))["total"], 2)
        report_id = oldest_first["event_reports"][0]["id"]
        detail = await root.request("GET", f"{V1}/event_reports/{report_id}")
        self.assertEqual((detail["score"], detail["event_json"]["content"]["body"]), (-100, "spam"))
        self.assertEqual(await root.request("DELETE", f"{V1}/event_reports/{report_id}"), {})
        for method in ("GET", "DELETE"):
            code, body = await root.raw(method, f"{V1}/event_reports/{report_id}")
            self.assertEqual((code, body["errcode"]), (404, "M_NOT_FOUND"))
            code, body = await root.raw(method, f"{V1}/event_reports/abc")
            self.assertEqual((code, body["errcode"]), (400, "M_INVALID_PARAM"))
        # a purged room's reports stay in the database but leave the listing
        await root.request("DELETE", f"{V1}/rooms/{q(room_id)}", {})
        self.assertEqual((await root.request("GET", f"{V1}/event_reports"))["total"], 0)

    async def test_registration_tokens(self) -> None:
        server, root = await admin_server(self, registration_requires_token=True)
        made = await root.request("POST", f"{V1}/registration_tokens/new", {"token": "open-sesame", "uses_allowed": 1})
        self.assertEqual(made, {"token": "open-sesame", "uses_allowed": 1, "pending": 0, "completed": 0, "expiry_time": None})
        generated = await root.request("POST", f"{V1}/registration_tokens/new", {"length": 20})
        self.assertEqual(len(generated["token"]), 20)
        self.assertEqual(len((await root.request("GET", f"{V1}/registration_tokens"))["registration_tokens"]), 2)
        # the token works for /register, once
        anon = MatrixClient(server.base_url)
        code, flow = await anon.raw("POST", "/_matrix/client/v3/register", {"username": "newbie", "password": "pw"})
        self.assertEqual(code, 401)
        # Synapse's flow with a required token: the token stage, then m.login.dummy.
        await anon.raw(
            "POST", "/_matrix/client/v3/register",
            {"username": "newbie", "password": "pw",
             "auth": {"type": "m.login.registration_token", "token": "open-sesame", "session": flow["session"]}},
        )
        done = await anon.request(
            "POST", "/_matrix/client/v3/register", {"auth": {"type": "m.login.dummy", "session": flow["session"]}}
        )
        self.assertEqual(done["user_id"], "@newbie:localhost")
        used = await root.request("GET", f"{V1}/registration_tokens/open-sesame")
        self.assertEqual(used["completed"], 1)
        valid = await root.request("GET", f"{V1}/registration_tokens?valid=true")
        self.assertEqual([t["token"] for t in valid["registration_tokens"]], [generated["token"]])
        invalid = await root.request("GET", f"{V1}/registration_tokens?valid=false")
        self.assertEqual([t["token"] for t in invalid["registration_tokens"]], ["open-sesame"])
        future = int(time.time() * 1000) + 3600_000
        updated = await root.request("PUT", f"{V1}/registration_tokens/open-sesame", {"uses_allowed": 5, "expiry_time": future})
        self.assertEqual((updated["uses_allowed"], updated["expiry_time"], updated["completed"]), (5, future, 1))
        self.assertEqual(await root.request("PUT", f"{V1}/registration_tokens/open-sesame", {}), updated)
        self.assertEqual(await root.request("DELETE", f"{V1}/registration_tokens/open-sesame"), {})
        for method, body in (("GET", None), ("PUT", {"uses_allowed": 1}), ("DELETE", None)):
            code, answer = await root.raw(method, f"{V1}/registration_tokens/open-sesame", body)
            self.assertEqual((code, answer["errcode"]), (404, "M_NOT_FOUND"), method)
        for body in (
            {"token": generated["token"]}, {"token": ""}, {"token": "no spaces"}, {"token": 5}, {"length": 0},
            {"length": "5"}, {"uses_allowed": -1}, {"expiry_time": 1}, {"expiry_time": "x"},
        ):
            code, answer = await root.raw("POST", f"{V1}/registration_tokens/new", body)
            self.assertEqual((code, answer["errcode"]), (400, "M_INVALID_PARAM"), body)

    async def test_server_notices(self) -> None:
        server, root = await admin_server(
            self, server_notices={"system_mxid_localpart": "notices", "system_mxid_display_name": "Server",
                                  "room_name": "Notices", "auto_join": False},
        )
        alice = await MatrixClient.register(server.base_url, "alice")
        body = {"user_id": alice.user_id, "content": {"msgtype": "m.text", "body": "Maintenance at noon"}}
        first = await root.request("POST", f"{V1}/send_server_notice", body)
        second = await root.request("POST", f"{V1}/send_server_notice", {**body, "content": {"msgtype": "m.text", "body": "Done"}})
        sync = await alice.sync()
        invites = sync["rooms"]["invite"]
        self.assertEqual(len(invites), 1)
        room_id = next(iter(invites))
        await alice.post(f"/rooms/{q(room_id)}/join")
        messages = await alice.get(f"/rooms/{q(room_id)}/messages?dir=b&limit=10")
        bodies = {e["event_id"]: e["content"].get("body") for e in messages["chunk"] if e["type"] == "m.room.message"}
        self.assertEqual(bodies, {first["event_id"]: "Maintenance at noon", second["event_id"]: "Done"})
        self.assertEqual({e["sender"] for e in messages["chunk"] if e["type"] == "m.room.message"}, {"@notices:localhost"})
        tags = await alice.get(f"/user/{q(alice.user_id)}/rooms/{q(room_id)}/tags")
        self.assertIn("m.server_notice", tags["tags"])
        name = await alice.get(f"/rooms/{q(room_id)}/state/m.room.name")
        self.assertEqual(name["name"], "Notices")
        # the user cannot speak there
        code, _ = await alice.raw("PUT", f"/_matrix/client/v3/rooms/{q(room_id)}/send/m.room.message/t1", {"msgtype": "m.text", "body": "hi"})
        self.assertEqual(code, 403)
        # a transaction id makes a retry idempotent
        again = [await root.request("PUT", f"{V1}/send_server_notice/txn1", body) for _ in range(2)]
        self.assertEqual(again[0], again[1])
        # after leaving, the next notice comes in a new room
        await alice.post(f"/rooms/{q(room_id)}/leave")
        await root.request("POST", f"{V1}/send_server_notice", body)
        invites = (await alice.sync())["rooms"].get("invite", {})
        self.assertEqual(len(invites), 1)
        self.assertNotEqual(next(iter(invites)), room_id)
        for bad, errcode, status in (
            ({"user_id": alice.user_id}, "M_MISSING_PARAM", 400),
            ({"user_id": "@nobody:localhost", "content": {}}, "M_NOT_FOUND", 404),
            ({"user_id": "@x:elsewhere.example", "content": {}}, "M_UNKNOWN", 400),
        ):
            code, answer = await root.raw("POST", f"{V1}/send_server_notice", bad)
            self.assertEqual((code, answer["errcode"]), (status, errcode), bad)

    async def test_server_notices_off(self) -> None:
        server, root = await admin_server(self)
        code, answer = await root.raw(
            "POST", f"{V1}/send_server_notice", {"user_id": root.user_id, "content": {"body": "x", "msgtype": "m.text"}}
        )
        self.assertEqual((code, answer["error"]), (400, "Server notices are not enabled on this server"))


class AdminMediaTestPostgres(AdminMediaTest):
    database = "postgresql"


class AdminReportsTokensNoticesTestPostgres(AdminReportsTokensNoticesTest):
    database = "postgresql"


