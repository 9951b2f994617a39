"""Remote media both ways with a real Synapse: a WSPR user downloads and thumbnails an
image uploaded on Synapse (over Synapse's /_matrix/federation/v1/media endpoints), and a
Synapse user downloads and thumbnails one uploaded on WSPR (Synapse reading our
multipart answers)."""

from __future__ import annotations

from twisted.trial import unittest

from tests.federation.helpers import start_federating
from tests.homeserver.media.test_media_http import fetch, png
from tests.homeserver.media.test_remote_media import size_of
from tests.support.synapse import start_synapse_peer, synapse_client
from tests.support.wspr import MatrixClient

try:
    import synapse  # noqa: F401
except ImportError:  # matrix-synapse is a test extra
    synapse = None

V1 = "/_matrix/client/v1/media"


class SynapseMediaTest(unittest.TestCase):
    timeout = 180
    if synapse is None:
        skip = "matrix-synapse is not installed"

    async def test_remote_media_both_ways(self) -> None:
        syn = await start_synapse_peer(self, "wspr-media-synapse-")
        wspr = await start_federating(self)
        sam = await synapse_client(syn, "sam")
        alice = await MatrixClient.register(wspr.base_url, "alice")

        # Synapse -> WSPR: an image uploaded on Synapse, seen by a WSPR user.
        syn_image = png(900, 600, (20, 160, 40, 255))
        code, body = await sam.raw("POST", "/_matrix/media/v3/upload?filename=garden.png", data=syn_image, headers={"Content-Type": "image/png"})
        self.assertEqual(code, 200, body)
        syn_id = body["content_uri"].rsplit("/", 1)[1]
        code, hdrs, data = await fetch(wspr.base_url, f"{V1}/thumbnail/{syn.server_name}/{syn_id}?width=96&height=96&method=crop", alice.access_token)
        self.assertEqual((code, size_of(data)), (200, (96, 96)), data[:200])
        code, hdrs, data = await fetch(wspr.base_url, f"{V1}/download/{syn.server_name}/{syn_id}", alice.access_token)
        self.assertEqual((code, data), (200, syn_image))
        self.assertEqual((hdrs["content-type"], hdrs["content-disposition"]), ("image/png", "inline; filename=garden.png"))
        code, _, data = await fetch(wspr.base_url, f"{V1}/thumbnail/{syn.server_name}/{syn_id}?width=320&height=240&method=scale", alice.access_token)
        self.assertEqual((code, size_of(data)), (200, (320, 213)))
        code, _, body = await fetch(wspr.base_url, f"{V1}/download/{syn.server_name}/nosuchmedia", alice.access_token)
        self.assertEqual(code, 404, body)

        # WSPR -> Synapse: an image uploaded on WSPR, seen by a Synapse user.
        wspr_image = png(700, 500, (200, 30, 90, 255))
        code, body = await alice.raw("POST", "/_matrix/media/v3/upload?filename=sunset.png", data=wspr_image, headers={"Content-Type": "image/png"})
        wspr_id = body["content_uri"].rsplit("/", 1)[1]
        code, hdrs, data = await fetch(syn.client_url, f"{V1}/download/{wspr.server_name}/{wspr_id}", sam.access_token)
        self.assertEqual((code, data), (200, wspr_image), data[:300])
        self.assertEqual(hdrs["content-type"], "image/png")
        self.assertIn("sunset.png", hdrs["content-disposition"])
        code, _, data = await fetch(syn.client_url, f"{V1}/thumbnail/{wspr.server_name}/{wspr_id}?width=32&height=32&method=crop", sam.access_token)
        self.assertEqual((code, size_of(data)), (200, (32, 32)))
        code, _, data = await fetch(syn.client_url, f"{V1}/download/{wspr.server_name}/nosuchmedia", sam.access_token)
        self.assertEqual(code, 404, data)
