"""Run a real Synapse homeserver on loopback for tests and benchmarks.

    server = SynapseServer("/tmp/syn1")
    server.start()                      # blocks until /_matrix/client/versions answers
    alice = server.register_user("alice", "pw")   # {"access_token", "user_id", "device_id"}
    ...
    server.stop()

Under trial use ``await server.start_async()`` / ``await server.register_user_async(...)`` /
``await server.stop_async()`` (thread-backed, so the reactor keeps spinning).

The generated configuration makes the instance usable as a federation peer of any other
server on loopback (see /work/shared/FIELD-NOTES.md, "Synapse as a test peer"):

* ``server_name`` defaults to ``127.0.0.1:<federation_port>``; the federation port is a TLS
  listener with a self-signed certificate generated here, so peers connect straight to it
  (no .well-known, no SRV);
* ``federation_verify_certificates: false`` (peers on loopback use self-signed certificates);
* ``ip_range_blacklist: []`` + ``ip_range_whitelist: [127.0.0.0/8]`` (Synapse refuses loopback
  destinations otherwise), ``trusted_key_servers: []`` (fetch keys from the origin);
* federation back-off shortened to 1 s .. 10 s (default is 10 min doubling to 7 days);
* open registration without verification, and all ``rc_*`` rate limits relaxed unless
  ``rate_limits=True``.

The database is SQLite in ``workdir`` unless ``database_url`` (e.g.
``postgresql://postgres@127.0.0.1:5432``) is given: then a fresh database named
``wspr_synapse_<random>`` is created (C collation, as Synapse requires) and dropped on stop()
unless ``keep_database=True``.

Logs go to ``<workdir>/homeserver.log``; stdout/stderr of the process to
``<workdir>/stdout.log``.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import ipaddress
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import yaml

__all__ = ["SynapseServer", "SynapseStartError", "free_port", "start_synapse_peer", "synapse_client"]


class SynapseStartError(RuntimeError):
    pass


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port that was free a moment ago, below Linux's ephemeral range
    (32768-60999): a port the kernel picked there could be handed to an outgoing
    connection (of this or another test worker) before the server binds it."""
    for _ in range(200):
        port = random.randrange(20000, 32000)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _self_signed_cert(cert_path: str, key_path: str, names: list[str]) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for n in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(key, hashes.SHA256())
    )
    with open(key_path, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


def _write_signing_key(path: str) -> None:
    from signedjson.key import generate_signing_key, write_signing_keys

    with open(path, "w") as f:
        write_signing_keys(f, [generate_signing_key("a_" + secrets.token_hex(2))])


# Very generous limits: effectively "no rate limiting" for loopback load tests.
_UNLIMITED = {"per_second": 100000, "burst_count": 100000}
RELAXED_RATE_LIMITS: dict[str, Any] = {
    "rc_message": _UNLIMITED,
    "rc_registration": _UNLIMITED,
    "rc_registration_token_validity": _UNLIMITED,
    "rc_login": {
        "address": _UNLIMITED,
        "account": _UNLIMITED,
        "failed_attempts": _UNLIMITED,
    },
    "rc_admin_redaction": _UNLIMITED,
    "rc_joins": {"local": _UNLIMITED, "remote": _UNLIMITED},
    "rc_joins_per_room": _UNLIMITED,
    "rc_key_requests": _UNLIMITED,
    "rc_3pid_validation": _UNLIMITED,
    "rc_invites": {
        "per_room": _UNLIMITED,
        "per_user": _UNLIMITED,
        "per_issuer": _UNLIMITED,
    },
    "rc_third_party_invite": _UNLIMITED,
    "rc_media_create": _UNLIMITED,
    "rc_presence": {"per_user": _UNLIMITED},
    "rc_delayed_event_mgmt": _UNLIMITED,
    "rc_room_creation": _UNLIMITED,
    "rc_reports": _UNLIMITED,
    "rc_user_directory": _UNLIMITED,
    "rc_profile": _UNLIMITED,
    "rc_federation": {
        "window_size": 1000,
        "sleep_limit": 100000,
        "sleep_delay": 0,
        "reject_limit": 100000,
        "concurrent": 100000,
    },
    "federation_rr_transactions_per_room_per_second": 100000,
}


def _deep_merge(base: dict, extra: dict) -> dict:
    for k, v in extra.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _deep_merge(base[k], v)
        else:
            base[k] = v
    return base


class SynapseServer:
    """One Synapse process on 127.0.0.1.

    ``http_port``: plain-HTTP listener (client API + federation + keys), used by ``client_url``.
    ``federation_port``: TLS listener (federation + keys + client); the port in ``server_name``.
    """

    def __init__(
        self,
        workdir: str,
        *,
        server_name: str | None = None,
        http_port: int | None = None,
        federation_port: int | None = None,
        rate_limits: bool = False,
        extra_config: dict | None = None,
        database_url: str | None = None,
        keep_database: bool = False,
        log_level: str = "INFO",
        python: str | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        self.workdir = os.path.abspath(workdir)
        self.http_port = http_port or free_port()
        self.federation_port = federation_port or free_port()
        while self.federation_port == self.http_port:
            self.federation_port = free_port()
        self._server_name = server_name or f"127.0.0.1:{self.federation_port}"
        self.rate_limits = rate_limits
        self.extra_config = extra_config or {}
        self.database_url = database_url
        self.keep_database = keep_database
        self.log_level = log_level
        self.python = python or sys.executable
        self.start_timeout = start_timeout
        self._registration_shared_secret = secrets.token_urlsafe(24)
        self.config_path = os.path.join(self.workdir, "homeserver.yaml")
        self.log_path = os.path.join(self.workdir, "homeserver.log")
        self.stdout_path = os.path.join(self.workdir, "stdout.log")
        self.db_name: str | None = None
        self.proc: subprocess.Popen | None = None
        self._stdout_file = None

    # ------------------------------------------------------------------ properties
    @property
    def server_name(self) -> str:
        return self._server_name

    @property
    def client_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def federation_url(self) -> str:
        return f"https://127.0.0.1:{self.federation_port}"

    @property
    def registration_shared_secret(self) -> str:
        return self._registration_shared_secret

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    # ------------------------------------------------------------------ config
    def _create_postgres_db(self) -> dict:
        import psycopg2

        u = urllib.parse.urlparse(self.database_url)
        self.db_name = "wspr_synapse_" + secrets.token_hex(6)
        conn_args = dict(
            user=u.username or "postgres",
            password=urllib.parse.unquote(u.password) if u.password else None,
            host=u.hostname or "127.0.0.1",
            port=u.port or 5432,
        )
        conn_args = {k: v for k, v in conn_args.items() if v is not None}
        conn = psycopg2.connect(dbname="postgres", **conn_args)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(
                    f'CREATE DATABASE "{self.db_name}" '
                    "ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
                )
        finally:
            conn.close()
        self._pg_conn_args = conn_args
        return {
            "name": "psycopg2",
            "args": {**conn_args, "database": self.db_name, "cp_min": 2, "cp_max": 10},
        }

    def _drop_postgres_db(self) -> None:
        if not self.db_name or self.keep_database:
            return
        import psycopg2

        conn = psycopg2.connect(dbname="postgres", **self._pg_conn_args)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')
        finally:
            conn.close()
        self.db_name = None

    def build_config(self) -> dict:
        w = self.workdir
        resources_all = [{"names": ["client", "federation", "keys", "openid"], "compress": False}]
        cfg: dict[str, Any] = {
            "server_name": self._server_name,
            "pid_file": os.path.join(w, "homeserver.pid"),
            "report_stats": False,
            "listeners": [
                {
                    "port": self.http_port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": False,
                    "x_forwarded": False,
                    "resources": resources_all,
                },
                {
                    "port": self.federation_port,
                    "bind_addresses": ["127.0.0.1"],
                    "type": "http",
                    "tls": True,
                    "resources": resources_all,
                },
            ],
            "tls_certificate_path": os.path.join(w, "tls.crt"),
            "tls_private_key_path": os.path.join(w, "tls.key"),
            "signing_key_path": os.path.join(w, "signing.key"),
            "log_config": os.path.join(w, "log.config"),
            "media_store_path": os.path.join(w, "media_store"),
            "registration_shared_secret": self._registration_shared_secret,
            "macaroon_secret_key": secrets.token_urlsafe(24),
            "form_secret": secrets.token_urlsafe(24),
            "enable_registration": True,
            "enable_registration_without_verification": True,
            "federation_verify_certificates": False,
            "ip_range_blacklist": [],
            "ip_range_whitelist": ["127.0.0.0/8"],
            "trusted_key_servers": [],
            "suppress_key_server_warning": True,
            "federation": {
                "max_short_retry_delay": "1s",
                "max_long_retry_delay": "5s",
                "max_short_retries": 3,
                "max_long_retries": 5,
                "destination_min_retry_interval": "1s",
                "destination_retry_multiplier": 1.5,
                "destination_max_retry_interval": "10s",
            },
            "allow_public_rooms_over_federation": True,
            "url_preview_enabled": False,
            "enable_metrics": False,
            # A fresh database queues ~55 background updates that Synapse runs one per second
            # (~1 min of extra CPU after start). Run them back to back instead.
            "background_updates": {"sleep_enabled": False},
        }
        if self.database_url:
            cfg["database"] = self._create_postgres_db()
        else:
            cfg["database"] = {
                "name": "sqlite3",
                "args": {"database": os.path.join(w, "homeserver.db")},
            }
        if not self.rate_limits:
            _deep_merge(cfg, json.loads(json.dumps(RELAXED_RATE_LIMITS)))
        _deep_merge(cfg, self.extra_config)
        return cfg

    def _log_config(self) -> dict:
        return {
            "version": 1,
            "formatters": {
                "precise": {
                    "format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - "
                    "%(request)s - %(message)s"
                }
            },
            "handlers": {
                "file": {
                    "class": "logging.FileHandler",
                    "formatter": "precise",
                    "filename": self.log_path,
                    "encoding": "utf8",
                },
                "buffer": {
                    "class": "synapse.logging.handlers.PeriodicallyFlushingMemoryHandler",
                    "target": "file",
                    "capacity": 10,
                    "flushLevel": 30,
                    "period": 5,
                },
            },
            "loggers": {"synapse.storage.SQL": {"level": "INFO"}},
            "root": {"level": self.log_level, "handlers": ["buffer"]},
            "disable_existing_loggers": False,
        }

    def write_config(self) -> None:
        os.makedirs(os.path.join(self.workdir, "media_store"), exist_ok=True)
        cfg = self.build_config()
        if not os.path.exists(cfg["signing_key_path"]):
            _write_signing_key(cfg["signing_key_path"])
        if not os.path.exists(cfg["tls_certificate_path"]):
            host = self._server_name.rsplit(":", 1)[0] if ":" in self._server_name else self._server_name
            names = [host] + [n for n in ("127.0.0.1", "localhost") if n != host]
            _self_signed_cert(cfg["tls_certificate_path"], cfg["tls_private_key_path"], names)
        with open(cfg["log_config"], "w") as f:
            yaml.safe_dump(self._log_config(), f)
        with open(self.config_path, "w") as f:
            yaml.safe_dump(cfg, f, sort_keys=False)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> SynapseServer:
        if self.proc is not None:
            raise RuntimeError("already started")
        os.makedirs(self.workdir, exist_ok=True)
        self.write_config()
        self._stdout_file = open(self.stdout_path, "ab")
        env = dict(os.environ)
        env.setdefault("SYNAPSE_ASYNC_IO_REACTOR", "0")
        self.proc = subprocess.Popen(
            [self.python, "-m", "synapse.app.homeserver", "-c", self.config_path],
            cwd=self.workdir,
            stdout=self._stdout_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.start_timeout
        url = self.client_url + "/_matrix/client/versions"
        while True:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self._cleanup_after_exit()
                raise SynapseStartError(
                    f"synapse exited with {rc} during startup; see {self.stdout_path} "
                    f"and {self.log_path}:\n{self._tail(self.stdout_path)}"
                )
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise SynapseStartError(f"synapse not ready after {self.start_timeout}s")
            time.sleep(0.1)
        return self

    def background_updates_pending(self) -> int:
        """Rows left in Synapse's background_updates table (schema/data migrations that a fresh
        database runs for a minute or more after start, using CPU; wait for them before measuring)."""
        q = "SELECT COUNT(*) FROM background_updates"
        if self.db_name:
            import psycopg2

            conn = psycopg2.connect(dbname=self.db_name, **self._pg_conn_args)
        else:
            import sqlite3

            conn = sqlite3.connect(os.path.join(self.workdir, "homeserver.db"), timeout=30)
        try:
            cur = conn.cursor()
            cur.execute(q)
            return int(cur.fetchone()[0])
        finally:
            conn.close()

    def wait_background_updates(self, timeout: float = 600.0) -> float:
        """Block until no background update is pending; returns the seconds waited."""
        t0 = time.monotonic()
        while self.background_updates_pending():
            if time.monotonic() - t0 > timeout:
                raise TimeoutError(f"synapse background updates still pending after {timeout}s")
            time.sleep(0.5)
        return time.monotonic() - t0

    @staticmethod
    def _tail(path: str, n: int = 4000) -> str:
        try:
            with open(path, "rb") as f:
                f.seek(0, 2)
                f.seek(max(0, f.tell() - n))
                return f.read().decode("utf8", "replace")
        except OSError:
            return ""

    def _cleanup_after_exit(self) -> None:
        if self._stdout_file:
            self._stdout_file.close()
            self._stdout_file = None
        self.proc = None
        self._drop_postgres_db()

    def stop(self, timeout: float = 15.0) -> None:
        proc = self.proc
        if proc is None:
            self._drop_postgres_db()
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self._cleanup_after_exit()

    def __enter__(self) -> SynapseServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ HTTP helpers
    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        access_token: str | None = None,
        timeout: float = 30.0,
    ) -> Any:
        """Blocking JSON request against the client listener. Raises HTTPError on non-2xx."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.client_url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if access_token:
            req.add_header("Authorization", "Bearer " + access_token)
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read() or b"{}")

    def register_user(self, localpart: str, password: str, admin: bool = False) -> dict:
        """Register via /_synapse/admin/v1/register (shared-secret HMAC-SHA1 nonce flow)."""
        return register_with_shared_secret(
            self.client_url, self._registration_shared_secret, localpart, password, admin
        )

    # ------------------------------------------------------------------ Twisted variants
    def start_async(self):
        from twisted.internet.threads import deferToThread

        return deferToThread(self.start)

    def stop_async(self):
        from twisted.internet.threads import deferToThread

        return deferToThread(self.stop)

    def register_user_async(self, localpart: str, password: str, admin: bool = False):
        from twisted.internet.threads import deferToThread

        return deferToThread(self.register_user, localpart, password, admin)


def register_with_shared_secret(
    base_url: str, shared_secret: str, localpart: str, password: str, admin: bool = False
) -> dict:
    """Synapse-compatible shared-secret registration; works against any server offering it."""
    url = base_url.rstrip("/") + "/_synapse/admin/v1/register"
    with urllib.request.urlopen(url, timeout=30) as r:
        nonce = json.loads(r.read())["nonce"]
    mac = hmac.new(shared_secret.encode("utf8"), digestmod=hashlib.sha1)
    mac.update(nonce.encode("utf8"))
    mac.update(b"\x00")
    mac.update(localpart.encode("utf8"))
    mac.update(b"\x00")
    mac.update(password.encode("utf8"))
    mac.update(b"\x00")
    mac.update(b"admin" if admin else b"notadmin")
    body = {
        "nonce": nonce,
        "username": localpart,
        "password": password,
        "admin": admin,
        "mac": mac.hexdigest(),
    }
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            res = json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"register {localpart} failed: {e.code} {e.read()[:500]!r}") from e
    return {
        "access_token": res["access_token"],
        "user_id": res["user_id"],
        "device_id": res.get("device_id"),
    }


async def start_synapse_peer(test: Any, prefix: str = "wspr-synapse-", **kwargs: Any) -> SynapseServer:
    """A running Synapse for the duration of a trial test (stopped and removed at cleanup)."""
    import shutil
    import tempfile

    workdir = tempfile.mkdtemp(prefix=prefix)
    server = SynapseServer(workdir, **kwargs)
    test.addCleanup(shutil.rmtree, workdir, True)
    test.addCleanup(server.stop_async)
    await server.start_async()
    return server


async def synapse_client(server: SynapseServer, localpart: str) -> Any:
    """A tests.support.wspr.MatrixClient for a new user of ``server``."""
    from tests.support.wspr import MatrixClient

    reg = await server.register_user_async(localpart, f"{localpart}-pw")
    return MatrixClient(server.client_url, reg["access_token"], reg["user_id"], reg["device_id"])
