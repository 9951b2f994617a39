"""Shared pieces of the WSPR/Synapse benchmarks.

* server launchers with one interface (``SynapseBench`` wraps tests.support.synapse.SynapseServer,
  ``WsprServer`` drives the ``wspr init`` / ``wspr run`` CLI);
* /proc sampling of a server's process tree (CPU seconds, peak RSS);
* percentiles and formatting;
* a small asyncio/aiohttp Matrix client-server API client.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

import yaml  # noqa: E402

from tests.support.synapse import (  # noqa: E402
    SynapseServer,
    free_port,
    register_with_shared_secret,
)

CLK_TCK = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- statistics
def percentile(values: list[float], p: float) -> float:
    """Linear-interpolated percentile (p in 0..100); NaN for an empty list."""
    if not values:
        return float("nan")
    v = sorted(values)
    if len(v) == 1:
        return v[0]
    k = (len(v) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


# --------------------------------------------------------------------------- /proc
def _read_stat(pid: int) -> tuple[int, int, int] | None:
    """(ppid, utime+stime, cutime+cstime) in clock ticks, or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    # the command name (field 2) may contain spaces; it is enclosed in parentheses
    rest = data[data.rindex(")") + 2:].split()
    # rest[0] is field 3 (state); field N is rest[N-3]
    ppid = int(rest[1])
    utime, stime, cutime, cstime = (int(x) for x in rest[11:15])
    return ppid, utime + stime, cutime + cstime


def process_tree(root: int) -> list[int]:
    """root plus all its live descendants."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        st = _read_stat(int(name))
        if st:
            children.setdefault(st[0], []).append(int(name))
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, ()))
    return out


def tree_cpu_seconds(root: int) -> float:
    """CPU (user+system) of root and all live descendants, plus reaped children of all of them."""
    total = 0
    for pid in process_tree(root):
        st = _read_stat(pid)
        if st:
            total += st[1] + st[2]
    return total / CLK_TCK


def _status_kb(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_peak_rss_mb(root: int) -> float:
    """Sum of VmHWM (peak resident set) over root and its live descendants, in MiB."""
    return sum(_status_kb(p, "VmHWM") for p in process_tree(root)) / 1024.0


def self_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


# --------------------------------------------------------------------------- servers
class BenchServer:
    """Interface shared by the launchers."""

    kind = "?"
    client_url: str
    server_name: str
    pid: int

    def start(self) -> None: ...
    def stop(self) -> None: ...

    def settle(self) -> float:
        """Wait until start-up background work is over (before measuring); returns seconds waited."""
        return 0.0

    def register_user(self, localpart: str, password: str, admin: bool = False) -> dict: ...


class SynapseBench(BenchServer):
    kind = "synapse"

    def __init__(self, workdir: str, *, server_name: str | None = None,
                 database_url: str | None = None, log_level: str = "INFO",
                 extra_config: dict | None = None) -> None:
        self.s = SynapseServer(workdir, server_name=server_name, database_url=database_url,
                               log_level=log_level, extra_config=extra_config)

    def start(self) -> None:
        self.s.start()

    def stop(self) -> None:
        self.s.stop()

    def settle(self) -> float:
        return self.s.wait_background_updates()

    @property
    def client_url(self) -> str:
        return self.s.client_url

    @property
    def server_name(self) -> str:
        return self.s.server_name

    @property
    def pid(self) -> int:
        return self.s.pid

    @property
    def log_path(self) -> str:
        return self.s.log_path

    def register_user(self, localpart: str, password: str, admin: bool = False) -> dict:
        return self.s.register_user(localpart, password, admin)


def wspr_command() -> list[str]:
    """How to invoke the WSPR CLI: $WSPR_CMD, the venv's `wspr` script, or homeserver.cli:main."""
    if os.environ.get("WSPR_CMD"):
        return os.environ["WSPR_CMD"].split()
    exe = os.path.join(os.path.dirname(sys.executable), "wspr")
    if os.path.exists(exe):
        return [exe]
    if shutil.which("wspr"):
        return [shutil.which("wspr")]
    return [sys.executable, "-c", "import sys; from homeserver.cli import main; sys.exit(main())"]


class WsprServer(BenchServer):
    """`wspr init DIR --server-name N --http-port P --federation-port F`, then `wspr run -c DIR/wspr.yaml`.

    Before running, DIR/wspr.yaml is edited: top-level ``rate_limits: {enabled: false}`` and
    ``registration_shared_secret`` (used for /_synapse/admin/v1/register), plus ``extra_config``
    merged at top level.
    """

    kind = "wspr"

    def __init__(self, workdir: str, *, server_name: str | None = None,
                 http_port: int | None = None, federation_port: int | None = None,
                 extra_config: dict | None = None, start_timeout: float = 60.0) -> None:
        self.workdir = os.path.abspath(workdir)
        self.http_port = http_port or free_port()
        self.federation_port = federation_port or free_port()
        self._server_name = server_name or "localhost"
        self.extra_config = extra_config or {}
        self.start_timeout = start_timeout
        self.registration_shared_secret = secrets.token_urlsafe(24)
        self.config_path = os.path.join(self.workdir, "wspr.yaml")
        self.stdout_path = os.path.join(self.workdir, "stdout.log")
        self.log_path = self.stdout_path
        self.proc: subprocess.Popen | None = None
        self._out = None

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def federation_url(self) -> str:
        return f"https://127.0.0.1:{self.federation_port}"

    @property
    def server_name(self) -> str:
        return self._server_name

    @property
    def pid(self) -> int:
        return self.proc.pid

    def start(self) -> None:
        os.makedirs(self.workdir, exist_ok=True)
        cmd = wspr_command()
        if not os.path.exists(self.config_path):
            init = cmd + ["init", self.workdir, "--server-name", self._server_name,
                          "--http-port", str(self.http_port),
                          "--federation-port", str(self.federation_port)]
            r = subprocess.run(init, cwd=REPO_ROOT, capture_output=True, text=True)
            if r.returncode != 0:
                raise RuntimeError(f"{' '.join(init)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        with open(self.config_path) as f:
            cfg = yaml.safe_load(f) or {}
        # loopback only
        _deep_merge(cfg, {"listeners": {"federation": {"bind_address": "127.0.0.1"}}})
        cfg["rate_limits"] = {"enabled": False}
        # Messaging benchmarks compare homeservers: Synapse runs no SFU, so neither do we
        # (it would otherwise count in the process tree's CPU and RSS).
        cfg.setdefault("sfu", {})["enabled"] = False
        cfg["registration_shared_secret"] = self.registration_shared_secret
        _deep_merge(cfg, self.extra_config)
        with open(self.config_path, "w") as f:
            yaml.safe_dump(cfg, f, sort_keys=False)
        self._out = open(self.stdout_path, "ab")
        self.proc = subprocess.Popen(cmd + ["run", "-c", self.config_path], cwd=self.workdir,
                                     stdout=self._out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        wait_ready(self.client_url, self.proc, self.start_timeout, self.stdout_path)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self._out:
            self._out.close()
            self._out = None

    def register_user(self, localpart: str, password: str, admin: bool = False) -> dict:
        return register_with_shared_secret(self.client_url, self.registration_shared_secret,
                                           localpart, password, admin)


def _deep_merge(base: dict, extra: dict) -> dict:
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _deep_merge(base[k], v)
        else:
            base[k] = v
    return base


# Federation on loopback between test servers (self-signed certificates, 127.0.0.0/8 allowed,
# short back-off), the WSPR equivalent of the Synapse harness's settings.
WSPR_LOOPBACK_FEDERATION = {
    "federation": {
        "verify_certificates": False,
        "ip_range_blocklist": [],
        "ip_range_allowlist": ["127.0.0.0/8"],
        "min_retry_interval": 1.0,
        "max_retry_interval": 10.0,
    }
}


def wait_ready(base_url: str, proc: subprocess.Popen, timeout: float, log: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            tail = open(log, "rb").read()[-3000:].decode("utf8", "replace")
            raise RuntimeError(f"server exited with {proc.returncode} during startup:\n{tail}")
        try:
            with urllib.request.urlopen(base_url + "/_matrix/client/versions", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{base_url} not ready after {timeout}s")
        time.sleep(0.1)


def make_server(kind: str, workdir: str, *, federation: bool = False, **kw: Any) -> BenchServer:
    """kind: 'synapse' or 'wspr'. With federation=True the server_name is 127.0.0.1:<federation port>."""
    if kind == "synapse":
        return SynapseBench(workdir, **kw)
    if kind == "wspr":
        if federation:
            fport = free_port()
            extra = _deep_merge(json.loads(json.dumps(WSPR_LOOPBACK_FEDERATION)), kw.pop("extra_config", None) or {})
            return WsprServer(workdir, server_name=f"127.0.0.1:{fport}", federation_port=fport,
                              extra_config=extra, **kw)
        return WsprServer(workdir, **kw)
    raise ValueError(kind)


def exit_on_sigterm() -> None:
    """Turn SIGTERM (e.g. from `timeout`) into SystemExit so `finally:` blocks stop the servers
    (they run in their own sessions and would otherwise be orphaned)."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def bench_workdir(prefix: str, base: str | None = None) -> str:
    return tempfile.mkdtemp(prefix=prefix, dir=base)


def server_kinds(arg: str) -> list[str]:
    return ["wspr", "synapse"] if arg == "both" else [arg]


# --------------------------------------------------------------------------- async client
class MatrixError(Exception):
    def __init__(self, status: int, body: str, what: str) -> None:
        super().__init__(f"{what}: HTTP {status} {body[:300]}")
        self.status = status


class Client:
    """Minimal Matrix C-S client over a shared aiohttp session."""

    def __init__(self, session, base_url: str, user: dict) -> None:
        self.session = session
        self.base = base_url.rstrip("/") + "/_matrix/client/v3"
        self.user_id = user["user_id"]
        self.token = user["access_token"]
        self.headers = {"Authorization": "Bearer " + self.token}
        self._txn = 0

    async def call(self, method: str, path: str, body: Any = None, params: dict | None = None,
                   timeout: float | None = 120) -> Any:
        import aiohttp

        kw: dict[str, Any] = {"headers": self.headers, "params": params,
                              "timeout": aiohttp.ClientTimeout(total=timeout)}
        if body is not None:
            kw["data"] = json.dumps(body)
            kw["headers"] = {**self.headers, "Content-Type": "application/json"}
        async with self.session.request(method, self.base + path, **kw) as r:
            text = await r.text()
            if r.status != 200:
                raise MatrixError(r.status, text, f"{method} {path}")
            return json.loads(text) if text else {}

    async def create_room(self, **body: Any) -> str:
        return (await self.call("POST", "/createRoom", body, timeout=600))["room_id"]

    async def join(self, room_id_or_alias: str, via: list[str] | None = None) -> str:
        params = [("server_name", s) for s in via] if via else None
        q = urllib.parse.quote(room_id_or_alias, safe="")
        return (await self.call("POST", f"/join/{q}", {}, params=params, timeout=600))["room_id"]

    def next_txn(self) -> str:
        self._txn += 1
        return f"{os.getpid()}.{time.monotonic_ns()}.{self._txn}"

    async def send_message(self, room_id: str, content: dict, txn: str | None = None) -> str:
        q = urllib.parse.quote(room_id, safe="")
        txn = txn or self.next_txn()
        r = await self.call("PUT", f"/rooms/{q}/send/m.room.message/{txn}", content)
        return r["event_id"]

    async def send_state(self, room_id: str, etype: str, state_key: str, content: dict) -> str:
        q = urllib.parse.quote(room_id, safe="")
        k = urllib.parse.quote(state_key, safe="")
        r = await self.call("PUT", f"/rooms/{q}/state/{etype}/{k}", content)
        return r["event_id"]

    async def sync(self, since: str | None, timeout_ms: int, filter_json: str | None = None) -> dict:
        params = {"timeout": str(timeout_ms)}
        if since:
            params["since"] = since
        if filter_json:
            params["filter"] = filter_json
        return await self.call("GET", "/sync", params=params, timeout=timeout_ms / 1000 + 60)


# Lean sync filter used by all benchmarks: message timelines, lazy-loaded members, no presence.
SYNC_FILTER = json.dumps({
    "room": {
        "timeline": {"limit": 200},
        "state": {"lazy_load_members": True},
        "ephemeral": {"not_types": ["*"]},
        "account_data": {"not_types": ["*"]},
    },
    "presence": {"not_types": ["*"]},
    "account_data": {"not_types": ["*"]},
}, separators=(",", ":"))


def new_session(limit: int = 0):
    import aiohttp

    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit, force_close=False))
