"""Property-based fuzzing of the client-server API against the Matrix spec's OpenAPI files.

The spec's files under ``data/api/client-server`` are OpenAPI 3.1 with ``$ref``s into
sibling folders; schemathesis cannot follow relative file references from a dict, so
each file is bundled here (every external ``$ref`` inlined) before loading. Each file
declares its own base path (``/_matrix/client/v3`` or ``/v1``) as a server variable.

The generated path parameters are mostly junk (``roomId`` = "0"), which only exercises
the validators. To reach the handlers behind them, a share of the cases gets real ids
(a room the fuzzing user is in, an event in it, the user's own id) in place of the
generated ones. Everything is synchronous (requests): run it in a thread when the
server lives in the same reactor.
"""

from __future__ import annotations

import copy
import os
import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

SPEC_DIR = os.environ.get(
    "WSPR_MATRIX_SPEC", os.path.join(os.path.dirname(__file__), *[".."] * 4, "shared", "matrix-spec")
)
CLIENT_SERVER = os.path.join(SPEC_DIR, "data", "api", "client-server")


def spec_available() -> bool:
    return os.path.isdir(CLIENT_SERVER)


def _load_yaml(path: str, cache: dict[str, Any]) -> Any:
    if path not in cache:
        with open(path, encoding="utf-8") as f:
            cache[path] = yaml.safe_load(f)
    return cache[path]


def _pointer(doc: Any, fragment: str) -> Any:
    for part in [p for p in fragment.lstrip("/").split("/") if p]:
        doc = doc[part.replace("~1", "/").replace("~0", "~")]
    return doc


def _inline(node: Any, base_file: str, cache: dict[str, Any], depth: int = 0) -> Any:
    """Replace every ``$ref`` (file or file#pointer or #pointer) by its target, recursively."""
    if depth > 40:  # the spec has no recursive schemas; this guards against a future one
        return {}
    if isinstance(node, list):
        return [_inline(v, base_file, cache, depth) for v in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str):
        target_file, _, fragment = ref.partition("#")
        path = os.path.normpath(os.path.join(os.path.dirname(base_file), target_file)) if target_file else base_file
        target = copy.deepcopy(_pointer(_load_yaml(path, cache), fragment))
        resolved = _inline(target, path, cache, depth + 1)
        # OpenAPI 3.1 allows siblings next to $ref (description, examples...): keep them.
        siblings = {k: _inline(v, base_file, cache, depth) for k, v in node.items() if k != "$ref"}
        if siblings and isinstance(resolved, dict):
            return {**resolved, **siblings}
        return resolved
    return {k: _inline(v, base_file, cache, depth) for k, v in node.items()}


def bundle(name: str) -> dict[str, Any]:
    """One client-server OpenAPI file with every reference inlined."""
    path = os.path.join(CLIENT_SERVER, name)
    cache: dict[str, Any] = {}
    return _inline(_load_yaml(path, cache), path, cache)


def base_path(doc: dict[str, Any]) -> str:
    for srv in doc.get("servers", []):
        var = srv.get("variables", {}).get("basePath", {})
        if "default" in var:
            return var["default"]
    return "/_matrix/client/v3"


@dataclass
class Finding:
    file: str
    operation: str
    kind: str  # "5xx", "schema", "error"
    detail: str
    reproduce: str = ""

    def __str__(self) -> str:
        return f"[{self.kind}] {self.file} {self.operation}: {self.detail}\n    {self.reproduce}"


@dataclass
class Fixtures:
    """Real ids substituted into a share of the generated path parameters."""

    user_id: str
    room_id: str
    event_id: str
    device_id: str
    extra: dict[str, list[str]] = field(default_factory=dict)

    def values(self) -> dict[str, list[str]]:
        v = {
            "roomId": [self.room_id],
            "roomIdOrAlias": [self.room_id],
            "eventId": [self.event_id],
            "userId": [self.user_id],
            "deviceId": [self.device_id],
        }
        for k, extra in self.extra.items():
            v.setdefault(k, []).extend(extra)
        return v


# Operations that would end the fuzzing session (log the user out, lock the account) or
# that WSPR deliberately does not serve are left out: they are covered by the targeted tests.
DESTRUCTIVE = {
    ("POST", "/logout"),
    ("POST", "/logout/all"),
    ("POST", "/account/deactivate"),
    ("POST", "/account/password"),
    ("DELETE", "/devices/{deviceId}"),
    ("POST", "/delete_devices"),
    ("POST", "/rooms/{roomId}/leave"),
    ("POST", "/rooms/{roomId}/forget"),
    ("POST", "/rooms/{roomId}/upgrade"),
    ("PUT", "/rooms/{roomId}/state/{eventType}/{stateKey}"),  # could lock the user out of the room
}


def fuzz(
    base_url: str,
    token: str,
    files: Iterable[str],
    fixtures: Fixtures,
    *,
    max_examples: int = 20,
    seed: int = 1234,
    schema_checks: bool = True,
    skip: Callable[[str, str], bool] | None = None,
    stop: threading.Event | None = None,
    log: Callable[[str], None] = lambda s: None,
    stats: dict[str, dict[int, int]] | None = None,
) -> list[Finding]:
    """Runs every operation of ``files`` against the server; returns what went wrong.

    Only operations the server routes are kept: a probe without parameters that gets
    404/405 ``M_UNRECOGNIZED`` means "not implemented", and is skipped.
    """
    import requests

    session = requests.Session()
    try:
        return _fuzz_files(session, base_url, token, files, fixtures, max_examples, seed, schema_checks, skip, stop, log, stats)
    finally:
        session.close()  # no keep-alive connection left open on the server


def _fuzz_files(
    session: Any,
    base_url: str,
    token: str,
    files: Iterable[str],
    fixtures: Fixtures,
    max_examples: int,
    seed: int,
    schema_checks: bool,
    skip: Callable[[str, str], bool] | None,
    stop: threading.Event | None,
    log: Callable[[str], None],
    stats: dict[str, dict[int, int]] | None,
) -> list[Finding]:
    import requests
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st
    from schemathesis import GenerationMode
    from schemathesis.checks import response_schema_conformance

    findings: list[Finding] = []
    headers = {"Authorization": f"Bearer {token}"}
    fixture_values = fixtures.values()
    for name in files:
        try:
            doc = bundle(name)
        except Exception as e:  # a spec file we cannot bundle is reported, not fatal
            findings.append(Finding(name, "-", "error", f"cannot load: {e!r}"))
            continue
        prefix = base_path(doc)
        doc["servers"] = [{"url": base_url + prefix}]
        try:
            schema = schemathesis.openapi.from_dict(doc)
        except Exception as e:
            findings.append(Finding(name, "-", "error", f"schemathesis cannot load: {e!r}"))
            continue
        for result in schema.get_all_operations():
            if stop is not None and stop.is_set():
                return findings
            try:
                op = result.ok()
            except Exception as e:
                log(f"{name}: skipped an operation: {e!r}")
                continue
            method = op.method.upper()
            if (method, op.path) in DESTRUCTIVE or (skip and skip(method, op.path)):
                continue
            if not _routed(session, base_url + prefix, method, op.path, headers):
                continue
            label = f"{method} {prefix}{op.path}"
            log(f"fuzzing {label}")
            # A long poll (GET /events waits 30 s by default, as on Synapse) is not made to
            # wait out the client's timeout: its wait is kept short.
            long_poll = any(p.name == "timeout" for p in op.query)
            seen: set[str] = set()
            rng = random.Random(f"{seed}:{label}")

            # Schema-valid cases reach the handlers; schema-invalid ones (wrong types,
            # missing fields) must get a 4xx, never a 5xx.
            strategy = st.one_of(op.as_strategy(), op.as_strategy(GenerationMode.NEGATIVE))

            @settings(
                max_examples=max_examples,
                derandomize=True,
                database=None,
                deadline=None,
                phases=[Phase.explicit, Phase.generate],  # no shrinking: keep the run bounded
                suppress_health_check=list(HealthCheck),
                report_multiple_bugs=False,
            )
            @given(case=strategy)
            def run(case: Any) -> None:
                # Swap in real ids for about half the cases so handlers, not just parsers, run.
                for pname in list(case.path_parameters or {}):
                    if pname in fixture_values and rng.random() < 0.5:
                        case.path_parameters[pname] = rng.choice(fixture_values[pname])
                if long_poll:
                    wait = (case.query or {}).get("timeout")
                    if wait is None or (isinstance(wait, int) and wait > 1000):
                        case.query = {**(case.query or {}), "timeout": 0}
                try:
                    response = case.call(base_url=base_url + prefix, session=session, headers=headers, timeout=30)
                except requests.RequestException as e:
                    _record(findings, seen, Finding(name, label, "5xx", f"connection failed: {e!r}", _curl(case)))
                    return
                if stats is not None:
                    counts = stats.setdefault(label, {})
                    counts[response.status_code] = counts.get(response.status_code, 0) + 1
                if response.status_code >= 500:
                    _record(
                        findings, seen,
                        Finding(name, label, "5xx", f"{response.status_code} {response.text[:200]}", _curl(case)),
                    )
                    return
                if schema_checks and response.status_code < 500:
                    try:
                        case.validate_response(response, checks=[response_schema_conformance])
                    except (Exception, BaseExceptionGroup) as e:
                        msg = [line.strip() for line in str(e).splitlines() if line.strip()]
                        _record(findings, seen, Finding(name, label, "schema", " | ".join(msg[:6])[:600], _curl(case)))

            try:
                run()
            except (Exception, BaseExceptionGroup) as e:
                findings.append(Finding(name, label, "error", f"fuzzer error: {e!r}"[:400]))
    return findings


def _record(findings: list[Finding], seen: set[str], finding: Finding) -> None:
    key = finding.kind + finding.detail[:80]
    if key not in seen:
        seen.add(key)
        findings.append(finding)


def _curl(case: Any) -> str:
    try:
        return case.as_curl_command(headers={"Authorization": "Bearer TOKEN"})[:600]
    except Exception:
        return repr(case)[:600]


def _routed(session: Any, base: str, method: str, path: str, headers: dict[str, str]) -> bool:
    """Does the server route ``path`` at all? Unrouted paths get 404/405 M_UNRECOGNIZED."""
    probe = path
    for placeholder, value in (
        ("{roomId}", "!probe:localhost"), ("{roomIdOrAlias}", "!probe:localhost"), ("{eventId}", "$probe"),
        ("{userId}", "@probe:localhost"),
    ):
        probe = probe.replace(placeholder, value)
    while "{" in probe:
        start = probe.index("{")
        probe = probe[:start] + "x" + probe[probe.index("}", start) + 1:]
    # timeout=0: a long poll answers at once (other endpoints ignore it).
    query = "?timeout=0" if method == "GET" else ""
    r = session.request(method, base + probe + query, headers=headers, data=b"{}", timeout=30)
    if r.status_code in (404, 405):
        try:
            return r.json().get("errcode") != "M_UNRECOGNIZED"
        except ValueError:
            return False
    return True
