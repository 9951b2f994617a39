"""Send the same requests to WSPR and to a real Synapse and compare the answers.

    pair = await server_pair(self)                 # a fresh WSPR, and the module's Synapse
    for side in pair:                              # the same steps on each server
        alice = await side.register("alice")
        side.record("versions", *await alice.raw("GET", "/_matrix/client/versions"))
    pair.assert_same()                              # status, errcode and JSON shape of each step

Synapse is the reference: where WSPR answers differently, the assertion names the step and
the path of each difference. Shapes are compared, not values (IDs, tokens and timestamps
differ between servers): which keys an object has, and the JSON type at every path. Lists
are compared element by element up to the shorter length. ``ignore`` takes path patterns
(``fnmatch`` style, e.g. ``"unstable_features.*"``) for differences a test accepts.

One Synapse serves every test of a process (it takes seconds to start); each test gets
fresh users (random localparts), so tests stay independent. It stops when the process exits.
"""

from __future__ import annotations

import atexit
import fnmatch
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from twisted.trial import unittest

from tests.support.synapse import SynapseServer
from tests.support.wspr import MatrixClient, start_homeserver

_shared_synapse: SynapseServer | None = None


async def shared_synapse() -> SynapseServer:
    global _shared_synapse
    if _shared_synapse is None:
        try:
            import synapse  # noqa: F401
        except ImportError as e:
            raise unittest.SkipTest("matrix-synapse is not installed (pip install matrix-synapse)") from e
        workdir = tempfile.mkdtemp(prefix="wspr-diff-synapse-")
        server = SynapseServer(workdir, log_level="WARNING", extra_config={"allow_guest_access": True})
        await server.start_async()
        _shared_synapse = server

        def stop() -> None:
            server.stop()
            shutil.rmtree(workdir, True)

        atexit.register(stop)
    return _shared_synapse


@dataclass
class Step:
    name: str
    code: int
    body: Any


@dataclass
class Side:
    """One server of the pair, as a client sees it."""

    label: str
    base_url: str
    server_name: str
    steps: list[Step] = field(default_factory=list)
    _suffix: str = field(default_factory=lambda: secrets.token_hex(3))

    def localpart(self, name: str) -> str:
        return f"{name}{self._suffix}"

    async def register(self, name: str, password: str = "correct horse") -> MatrixClient:
        return await MatrixClient.register(self.base_url, self.localpart(name), password)

    def anonymous(self) -> MatrixClient:
        return MatrixClient(self.base_url)

    def record(self, name: str, code: int, body: Any) -> tuple[int, Any]:
        self.steps.append(Step(name, code, body))
        return code, body

    async def call(self, client: MatrixClient, name: str, method: str, path: str, body: Any = None, **kw: Any) -> tuple[int, Any]:
        """``client.raw`` plus ``record``."""
        return self.record(name, *await client.raw(method, path, body, **kw))


@dataclass
class ServerPair:
    wspr: Side
    synapse: Side

    def __iter__(self) -> Iterator[Side]:
        return iter((self.wspr, self.synapse))

    def differences(self, ignore: tuple[str, ...] = ()) -> list[str]:
        out: list[str] = []
        names_w = [s.name for s in self.wspr.steps]
        names_s = [s.name for s in self.synapse.steps]
        if names_w != names_s:
            return [f"the two runs took different steps: WSPR {names_w}, Synapse {names_s}"]
        for w, s in zip(self.wspr.steps, self.synapse.steps, strict=True):
            out += [f"{w.name}: {d}" for d in compare_answers(w, s, ignore)]
        return out

    def assert_same(self, *ignore: str) -> None:
        diffs = self.differences(tuple(ignore))
        if diffs:
            raise AssertionError("WSPR and Synapse answer differently:\n  " + "\n  ".join(diffs))


def compare_answers(w: Step, s: Step, ignore: tuple[str, ...] = ()) -> list[str]:
    diffs: list[str] = []
    if w.code != s.code:
        diffs.append(f"status {w.code} (WSPR) != {s.code} (Synapse); bodies {w.body!r} / {s.body!r}")
        return diffs
    we = w.body.get("errcode") if isinstance(w.body, dict) else None
    se = s.body.get("errcode") if isinstance(s.body, dict) else None
    if we != se:
        diffs.append(f"errcode {we} (WSPR) != {se} (Synapse)")
    diffs += [d for p, d in shape_differences(w.body, s.body) if not any(fnmatch.fnmatchcase(p, pat) for pat in ignore)]
    return diffs


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if v is None:
        return "null"
    if isinstance(v, list):
        return "array"
    if isinstance(v, dict):
        return "object"
    return type(v).__name__


def shape_differences(w: Any, s: Any, path: str = "") -> list[tuple[str, str]]:
    """(path, description) for every place where the JSON shapes differ."""
    here = path or "<root>"
    if _kind(w) != _kind(s):
        return [(here, f"{here}: {_kind(w)} (WSPR) != {_kind(s)} (Synapse)")]
    out: list[tuple[str, str]] = []
    if isinstance(w, dict):
        for k in sorted(set(w) | set(s)):
            sub = f"{path}.{k}" if path else k
            if k not in s:
                out.append((sub, f"{sub}: only WSPR has it"))
            elif k not in w:
                out.append((sub, f"{sub}: only Synapse has it"))
            else:
                out += shape_differences(w[k], s[k], sub)
    elif isinstance(w, list):
        for i, (a, b) in enumerate(zip(w, s, strict=False)):
            out += shape_differences(a, b, f"{path}[{i}]")
    return out


async def server_pair(test: unittest.TestCase, **wspr_overrides: Any) -> ServerPair:
    """A fresh WSPR for ``test`` and the process's shared Synapse."""
    syn = await shared_synapse()
    hs = await start_homeserver(test, **wspr_overrides)
    return ServerPair(
        Side("WSPR", hs.base_url, hs.server_name),
        Side("Synapse", syn.client_url, syn.server_name),
    )
