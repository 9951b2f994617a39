"""What clients ask a server before anything else: /versions, /capabilities, /thirdparty."""

from __future__ import annotations

from twisted.trial import unittest

from tests.support.differential import server_pair

# Unstable features Synapse advertises that WSPR does not implement (yet), so must not claim.
NOT_IMPLEMENTED = {
    "org.matrix.label_based_filtering",
    "uk.half-shot.msc2666.query_mutual_rooms.stable",
    "org.matrix.msc3827.stable",
    "fi.mau.msc2659.stable",
    "uk.tcpip.msc4133.stable",
    "org.matrix.msc4380.stable",
    "org.matrix.msc4445.initial_sync_timeline_topological_ordering",
}


class DiscoveryTest(unittest.TestCase):
    timeout = 120

    async def test_unstable_features_cover_what_synapse_offers(self) -> None:
        """Element sets up cross-signing only where `org.matrix.e2e_cross_signing` is on:
        every feature Synapse turns on is on here too, unless listed as not implemented."""
        pair = await server_pair(self)
        features = {}
        for side in pair:
            client = side.anonymous()
            code, body = await side.call(client, "versions", "GET", "/_matrix/client/versions")
            self.assertEqual(code, 200)
            features[side.label] = {k for k, v in body["unstable_features"].items() if v is True}
        self.assertIn("org.matrix.e2e_cross_signing", features["WSPR"])
        missing = features["Synapse"] - features["WSPR"] - NOT_IMPLEMENTED
        self.assertEqual(missing, set(), "features Synapse offers and WSPR neither offers nor lists as missing")
        wrongly_claimed = features["WSPR"] & NOT_IMPLEMENTED
        self.assertEqual(wrongly_claimed, set())

    async def test_capabilities(self) -> None:
        pair = await server_pair(self)
        for side in pair:
            alice = await side.register("alice")
            await side.call(alice, "capabilities", "GET", "/_matrix/client/v3/capabilities")
        # Synapse lists experimental room versions and MSC capabilities WSPR does not offer.
        pair.assert_same(
            "capabilities.m.room_versions.available.org.matrix.*",
            "capabilities.m.profile_fields",
            "capabilities.org.matrix.msc4140.delayed_events",
        )

    async def test_thirdparty_lookups(self) -> None:
        pair = await server_pair(self)
        for side in pair:
            alice = await side.register("alice")
            for name, path in [
                ("protocols", "/thirdparty/protocols"),
                ("protocol", "/thirdparty/protocol/irc"),
                ("user by protocol", "/thirdparty/user/irc?nick=x"),
                ("location by protocol", "/thirdparty/location/irc"),
                ("user reverse", "/thirdparty/user?userid=%40a%3Ab"),
                ("location reverse", "/thirdparty/location?alias=%23a%3Ab"),
            ]:
                await side.call(alice, name, "GET", "/_matrix/client/v3" + path)
        pair.assert_same()
        for step in pair.wspr.steps:
            self.assertEqual(step.body, next(s.body for s in pair.synapse.steps if s.name == step.name), step.name)
