"""The client-server API fuzzed from the Matrix spec's own OpenAPI files (schemathesis).

Every operation of ``data/api/client-server/*.yaml`` that WSPR routes gets a bounded,
derandomized run of schema-valid and schema-invalid requests (fixed seed, capped
examples). The test fails on any 5xx and on any response that violates the spec's
response schema, except the few deliberate deviations listed in KNOWN_DEVIATIONS.

Needs the spec snapshot (../shared/matrix-spec beside the repo, or WSPR_MATRIX_SPEC) and
schemathesis; skipped, saying so, without them. WSPR_FUZZ_EXAMPLES raises the number of
examples per operation for a longer local run.
"""

from __future__ import annotations

import os
import threading
from urllib.parse import quote

from twisted.internet import threads
from twisted.trial import unittest

from tests.homeserver.compat import spec_fuzz
from tests.support.wspr import MatrixClient, start_homeserver

MAX_EXAMPLES = int(os.environ.get("WSPR_FUZZ_EXAMPLES", "25"))
SEED = 20261125

# (operation label, text in the finding, why it is accepted): schema findings
KNOWN_DEVIATIONS = [
    (
        "GET /_matrix/client/v3/voip/turnServer",
        '"username" is a required property',
        "no TURN server configured: {} as Synapse answers; clients treat it as 'no TURN'",
    ),
    (
        "GET /_matrix/client/v3/room_keys/version",
        "is not one of",
        "key backup stores any algorithm string it was given (E2E storage, owned elsewhere; reported)",
    ),
    (
        "GET /_matrix/client/v3/devices",
        "null is not of type",
        "a device's display_name, last_seen_ip and last_seen_ts are null when unknown, as Synapse sends"
        " them: the spec leaves them out, but matrix-nio rejects a listing without them",
    ),
    (
        "GET /_matrix/client/v1/auth_metadata",
        '"org.matrix.sessions_list" is not one of',
        "MSC4191's earlier account management action names are advertised next to the spec's, for the"
        " released clients (Element X) that deep-link with them",
    ),
    (
        "POST /_matrix/client/v3/account/3pid/add",
        '"flows" is a required property',
        "a request without an access token gets M_MISSING_TOKEN before user-interactive auth starts,"
        " as Synapse answers (the spec's 401 schema there is the UIA one)",
    ),
    (
        "GET /_matrix/client/v3/notifications",
        "Schema at /properties/next_token",
        "next_token is null on the last page, as Synapse sends it",
    ),
    (
        "GET /_matrix/client/v3/rooms/{roomId}/joined_members",
        "null is not of type",
        "display_name and avatar_url are null when unset, as Synapse sends them (Complement expects both keys)",
    ),
    (
        "GET /_matrix/client/v3/thirdparty/protocol/",
        '"errcode" is a required property',
        'an unknown protocol is 404 {"error": "Unknown protocol"} without errcode, as Synapse answers',
    ),
]

# (operation label, text in the finding, why it is accepted): 5xx answers that Synapse gives too
KNOWN_5XX = [
    (
        "POST /_matrix/client/v3/rooms/{roomId}/join",
        "502 {\"errcode\":\"M_UNKNOWN\",\"error\":\"Failed to make_join via any server\"",
        "a room on another server that no server can be asked about (the test's federation allowlist is"
        " empty) is 502 'Failed to make_join via any server', Synapse's answer",
    ),
]


def _known(finding: spec_fuzz.Finding) -> bool:
    known = {"schema": KNOWN_DEVIATIONS, "5xx": KNOWN_5XX}.get(finding.kind, [])
    return any(finding.operation.startswith(label) and text in finding.detail for label, text, _ in known)


class SpecFuzzTest(unittest.TestCase):
    timeout = 600
    max_examples = MAX_EXAMPLES

    def setUp(self) -> None:
        if not spec_fuzz.spec_available():
            raise unittest.SkipTest(f"Matrix spec not found at {spec_fuzz.CLIENT_SERVER}")
        try:
            import schemathesis  # noqa: F401
        except ImportError:
            raise unittest.SkipTest("schemathesis is not installed (pip install schemathesis)") from None

    async def test_client_server_api(self) -> None:
        # An empty federation allowlist: remote ids the fuzzer invents (matrix.org,
        # example.com) are refused locally (403) instead of resolved over the network.
        server = await start_homeserver(self, federation={"domain_allowlist": []})
        alice = await MatrixClient.register(server.base_url, "fuzzer")
        room_id = (await alice.post("/createRoom", {"name": "fuzz"}))["room_id"]
        event_id = await alice.send_message(room_id, "fuzz me")
        # An event the fuzzer is not told about: nothing it does may change it.
        sentinel_id = await alice.send_message(room_id, "before the fuzz")
        fixtures = spec_fuzz.Fixtures(alice.user_id, room_id, event_id, alice.device_id)

        files = sorted(f for f in os.listdir(spec_fuzz.CLIENT_SERVER) if f.endswith(".yaml"))
        stop = threading.Event()
        self.addCleanup(stop.set)
        stats: dict[str, dict[int, int]] = {}
        # Synchronous HTTP in a thread; the server keeps running in this reactor.
        findings = await threads.deferToThread(
            spec_fuzz.fuzz,
            server.base_url,
            alice.access_token,
            files,
            fixtures,
            max_examples=self.max_examples,
            seed=SEED,
            stop=stop,
            stats=stats,
        )
        # The run really exercised the API: many operations, and handlers reached (2xx).
        self.assertGreater(len(stats), 60, sorted(stats))
        self.assertGreater(sum(1 for codes in stats.values() if any(200 <= c < 300 for c in codes)), 50)
        bad = [f for f in findings if not _known(f)]
        self.assertEqual(bad, [], "\n" + "\n".join(str(f) for f in bad))

        # The server is still healthy and the fuzzed room's data intact.
        self.assertEqual((await alice.get("/account/whoami"))["user_id"], alice.user_id)
        event = await alice.get(f"/rooms/{quote(room_id)}/event/{quote(sentinel_id)}")
        self.assertEqual(event["content"]["body"], "before the fuzz")
        # The fuzzer may have left a typing notice with a pending expiry timer.
        await alice.raw(
            "PUT", f"/_matrix/client/v3/rooms/{quote(room_id)}/typing/{quote(alice.user_id)}", {"typing": False}
        )
        create = await alice.get(f"/rooms/{quote(room_id)}/state/m.room.create/")
        self.assertEqual(create["room_version"], server.hs.config.default_room_version)


class SpecFuzzPostgresTest(SpecFuzzTest):
    # PostgreSQL is stricter than SQLite (NUL in text, negative LIMIT): fuzz it too.
    database = "postgresql"
    max_examples = max(5, MAX_EXAMPLES * 3 // 5)  # the same seed; fewer cases keeps the pair near a minute
