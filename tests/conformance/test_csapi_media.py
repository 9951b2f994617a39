"""Complement's media cases, ported (tests/conformance/complement.py runs each on Synapse and
WSPR): media_misc_test.go, media_async_uploads_test.go."""

from __future__ import annotations

import io

import treq
from PIL import Image
from twisted.internet import reactor
from twisted.trial import unittest
from twisted.web.client import HTTPConnectionPool

from tests.conformance.complement import (
    CaseFn,
    Side,
    create_room,
    expect,
    messages,
    new_user,
    on_both,
    q,
    send,
    sync_until,
    timeline_has,
)

MEDIA_V3 = "/_matrix/media/v3"
MEDIA_V1 = "/_matrix/media/v1"
CLIENT_MEDIA = "/_matrix/client/v1/media"


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (8, 8), (200, 30, 30, 255)).save(buf, "PNG")
    return buf.getvalue()


class MediaTest(unittest.TestCase):
    timeout = 240

    async def test_room_image_roundtrip(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice = await new_user(side, "alice")
            with case("Can send image in room message, can fetch images in room"):
                uri = (await expect(alice, "POST", f"{MEDIA_V3}/upload?filename=test.png", data=png(),
                                    headers={"Content-Type": "image/png"}))["content_uri"]
                room = await create_room(alice)
                await send(alice, room, "m.room.message", {"msgtype": "m.text", "body": "test"})
                last = await send(alice, room, "m.room.message", {"msgtype": "m.file", "body": "test.png", "url": uri})
                await sync_until(alice, timeline_has(room, lambda ev: ev["event_id"] == last))
                got = await messages(alice, room, filter={"contains_url": True})
                assert isinstance(got["start"], str) and isinstance(got["end"], str), got
                assert [e["event_id"] for e in got["chunk"]] == [last], got

        await on_both(self, scenario)

    async def test_media_config(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice = await new_user(side, "alice")
            with case("Can read configuration endpoint"):
                got = await expect(alice, "GET", f"{MEDIA_V3}/config")
                assert isinstance(got["m.upload.size"], int), got

        await on_both(self, scenario)

    async def test_async_upload(self) -> None:
        async def scenario(side: Side, case: CaseFn) -> None:
            alice = await new_user(side, "alice")
            image = png()
            origin = media_id = uri = ""
            with case("Create media"):
                uri = (await expect(alice, "POST", f"{MEDIA_V1}/create", {}))["content_uri"]
                origin, media_id = uri[len("mxc://"):].split("/", 1)
            with case("Not yet uploaded"):
                # timeout_ms keeps the server from waiting its default 20 s for the upload.
                await expect(alice, "GET", f"{CLIENT_MEDIA}/download/{origin}/{media_id}?timeout_ms=100",
                             status=504, errcode="M_NOT_YET_UPLOADED")
            with case("Upload media"):
                await expect(alice, "PUT", f"{MEDIA_V3}/upload/{origin}/{media_id}?filename=test.png", data=image,
                             headers={"Content-Type": "image/png"})
            with case("Cannot upload to a media ID that has already been uploaded to"):
                got = await expect(alice, "PUT", f"{MEDIA_V3}/upload/{origin}/{media_id}", data=image,
                                   headers={"Content-Type": "image/png"}, status=409, errcode="M_CANNOT_OVERWRITE_MEDIA")
                assert got["error"] == "Media ID already has content", got
            with case("Download media over _matrix/client/v1/media/download"):
                resp = await treq.get(f"{side.base_url}{CLIENT_MEDIA}/download/{q(origin)}/{q(media_id)}".encode(),
                                      headers={"Authorization": [f"Bearer {alice.access_token}"]},
                                      pool=HTTPConnectionPool(reactor, persistent=False))
                body = await resp.content()
                assert resp.code == 200 and body == image, (resp.code, body[:100])
                assert resp.headers.getRawHeaders("Content-Type") == ["image/png"], resp.headers.getRawHeaders("Content-Type")

        await on_both(self, scenario)
