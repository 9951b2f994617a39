"""Start a real WSPR homeserver on loopback inside a trial test, and talk to it over HTTP.

    hs = await start_homeserver(self, enable_registration=True)   # stops itself at cleanup
    alice = await MatrixClient.register(hs.base_url, "alice")
    room_id = (await alice.post("/createRoom", {}))["room_id"]

The server runs in the test's own reactor (the same process), listening on a random
port, with a fresh SQLite database in a temporary directory — or PostgreSQL when
``database="postgresql"`` (a fresh database is created and dropped afterwards).
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import treq
import yaml
from twisted.internet import defer, reactor
from twisted.trial import unittest
from twisted.web.client import HTTPConnectionPool

from homeserver.app import HomeServer
from homeserver.cli import main as wspr_main
from homeserver.config import load_config

POSTGRES_ADMIN_DSN = os.environ.get("WSPR_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


class PostgresUnavailable(Exception):
    pass


def create_postgres_database() -> str:
    """A fresh, empty PostgreSQL database URL; raises PostgresUnavailable with the reason."""
    import psycopg2

    name = "wspr_test_" + secrets.token_hex(6)
    try:
        conn = psycopg2.connect(POSTGRES_ADMIN_DSN.replace("postgresql://", "postgres://", 1), connect_timeout=3)
    except psycopg2.OperationalError as e:
        raise PostgresUnavailable(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_DSN}: {e}".strip()) from e
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0]
    return f"{base}/{name}"


def drop_postgres_database(url: str) -> None:
    import psycopg2

    name = url.rsplit("/", 1)[1]
    conn = psycopg2.connect(POSTGRES_ADMIN_DSN, connect_timeout=3)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def make_config_dir(
    server_name: str = "localhost",
    database: str = "sqlite",
    overrides: dict[str, Any] | None = None,
    federation_port: int = 0,
) -> tuple[str, str | None]:
    """Runs ``wspr init`` into a temp dir and applies test overrides; returns (config path, pg url)."""
    directory = tempfile.mkdtemp(prefix="wspr-test-")
    pg_url = None
    db_arg = None
    if database == "postgresql":
        pg_url = create_postgres_database()
        db_arg = pg_url
    args = ["init", directory, "--server-name", server_name, "--http-port", "0", "--federation-port", str(federation_port)]
    if db_arg:
        args += ["--database", db_arg]
    assert wspr_main(args) == 0
    path = os.path.join(directory, "wspr.yaml")
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    data["rate_limits"] = {"enabled": False}
    data["enable_registration"] = True
    data["web_client"] = {"enabled": False}
    data.setdefault("sfu", {})["enabled"] = False
    data["log_level"] = "WARNING"
    for key, value in (overrides or {}).items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key].update(value)
        else:
            data[key] = value
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(data, f)
    return path, pg_url


@dataclass
class RunningHomeServer:
    hs: HomeServer
    config_path: str

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.hs.client_port}"

    @property
    def server_name(self) -> str:
        return self.hs.server_name


async def start_homeserver(
    test: unittest.TestCase,
    *,
    server_name: str = "localhost",
    database: str | None = None,
    start_extras: bool = False,
    federation_port: int = 0,
    **overrides: Any,
) -> RunningHomeServer:
    """A live homeserver for the duration of ``test`` (cleaned up automatically).

    The database engine defaults to the test class's ``database`` attribute ("sqlite" or
    "postgresql"); when PostgreSQL cannot be reached the test is skipped saying so."""
    database = database or getattr(test, "database", "sqlite")
    try:
        path, pg_url = make_config_dir(server_name, database, overrides, federation_port)
    except PostgresUnavailable as e:
        raise unittest.SkipTest(str(e)) from e
    hs = HomeServer(load_config(path))
    await hs.start()
    if start_extras:
        await hs.start_extras()

    async def cleanup() -> None:
        if start_extras:
            await hs.stop_extras()
        await hs.stop()
        if pg_url:
            drop_postgres_database(pg_url)

    test.addCleanup(lambda: defer.ensureDeferred(cleanup()))
    return RunningHomeServer(hs, path)


class MatrixRequestError(Exception):
    def __init__(self, code: int, body: Any) -> None:
        super().__init__(f"HTTP {code}: {body}")
        self.code = code
        self.body = body

    @property
    def errcode(self) -> str | None:
        return self.body.get("errcode") if isinstance(self.body, dict) else None


class MatrixClient:
    """A minimal client-server API client over real HTTP (treq)."""

    def __init__(self, base_url: str, access_token: str | None = None, user_id: str = "", device_id: str = "") -> None:
        self.base_url = base_url.rstrip("/")
        self.access_token = access_token
        self.user_id = user_id
        self.device_id = device_id
        self._txn = 0

    @classmethod
    async def register(cls, base_url: str, username: str, password: str = "correct horse") -> MatrixClient:
        anon = cls(base_url)
        code, body = await anon.raw("POST", "/_matrix/client/v3/register", {"username": username, "password": password})
        assert code == 401, body
        body = await anon.request(
            "POST",
            "/_matrix/client/v3/register",
            {"username": username, "password": password, "auth": {"type": "m.login.dummy", "session": body["session"]}},
        )
        return cls(base_url, body["access_token"], body["user_id"], body["device_id"])

    @classmethod
    async def login(cls, base_url: str, user: str, password: str = "correct horse", **extra: Any) -> MatrixClient:
        body = await cls(base_url).request(
            "POST",
            "/_matrix/client/v3/login",
            {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": user}, "password": password, **extra},
        )
        return cls(base_url, body["access_token"], body["user_id"], body["device_id"])

    async def raw(
        self, method: str, path: str, body: Any = None, *, data: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        hdrs = {"Content-Type": "application/json"}
        if self.access_token:
            hdrs["Authorization"] = f"Bearer {self.access_token}"
        hdrs.update(headers or {})
        payload = data if data is not None else (json.dumps(body).encode() if body is not None else None)
        resp = await treq.request(
            method,
            (self.base_url + path).encode(),
            data=payload,
            headers={k: [v] for k, v in hdrs.items()},
            # A fresh connection per request leaves nothing open when the test ends.
            pool=HTTPConnectionPool(reactor, persistent=False),
        )
        content = await resp.content()
        try:
            parsed = json.loads(content) if content else None
        except ValueError:
            parsed = content
        return resp.code, parsed

    async def request(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        code, parsed = await self.raw(method, path, body, **kw)
        if code != 200:
            raise MatrixRequestError(code, parsed)
        return parsed

    # Client-API shorthands (paths relative to /_matrix/client/v3).
    async def get(self, path: str) -> Any:
        return await self.request("GET", "/_matrix/client/v3" + path)

    async def post(self, path: str, body: Any = None) -> Any:
        return await self.request("POST", "/_matrix/client/v3" + path, body if body is not None else {})

    async def put(self, path: str, body: Any = None) -> Any:
        return await self.request("PUT", "/_matrix/client/v3" + path, body if body is not None else {})

    async def send_message(self, room_id: str, body: str, msgtype: str = "m.text", **extra: Any) -> str:
        self._txn += 1
        result = await self.put(
            f"/rooms/{quote(room_id)}/send/m.room.message/t{self._txn}-{secrets.token_hex(4)}",
            {"msgtype": msgtype, "body": body, **extra},
        )
        return result["event_id"]

    async def sync(self, since: str | None = None, timeout: int = 0, filter: Any = None) -> Any:
        q = [f"timeout={timeout}"]
        if since:
            q.append(f"since={quote(since)}")
        if filter is not None:
            q.append("filter=" + quote(json.dumps(filter) if not isinstance(filter, str) else filter))
        return await self.get("/sync?" + "&".join(q))
