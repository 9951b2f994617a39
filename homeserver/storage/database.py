"""The database engine layer: SQLite or PostgreSQL behind one transaction API.

All database work runs in a thread pool so the reactor never blocks. Each call is one
transaction: the function gets a ``Txn``, its statements commit together or not at all.
SQL is written once with ``?`` placeholders (parameterised, never formatted) and
translated to psycopg2's ``%s`` on PostgreSQL.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast
from urllib.parse import unquote, urlparse

from prometheus_client import Histogram
from twisted.internet import defer, threads
from twisted.internet.interfaces import IReactorCore, IReactorThreads
from twisted.python.threadpool import ThreadPool

logger = logging.getLogger(__name__)

T = TypeVar("T")

TXN_SECONDS = Histogram("wspr_db_transaction_seconds", "Database transaction time", ["name"])


class DatabaseUnavailable(Exception):
    pass


@dataclass(frozen=True)
class Dialect:
    name: str
    placeholder: str
    types: dict[str, str]


SQLITE = Dialect(
    "sqlite",
    "?",
    {"BLOB": "BLOB", "AUTOINC_PK": "INTEGER PRIMARY KEY AUTOINCREMENT", "BIGINT": "INTEGER"},
)
POSTGRES = Dialect(
    "postgres",
    "%s",
    {"BLOB": "BYTEA", "AUTOINC_PK": "BIGSERIAL PRIMARY KEY", "BIGINT": "BIGINT"},
)


def _unstorable(e: Exception) -> Exception:
    """A client-supplied value the driver refuses before it reaches the database: NUL in
    a PostgreSQL text value, an integer beyond 64 bits on SQLite. It is bad input (400),
    not a server fault; the transaction is rolled back as for any error."""
    if isinstance(e, OverflowError) or "NUL" in str(e):
        from homeserver.http.errors import MatrixError

        return MatrixError(400, "M_INVALID_PARAM", "A value in the request cannot be stored (NUL character or integer out of range)")
    return e


# Bytes of SQLite page cache per connection, in KiB (five connections by default).
SQLITE_CACHE_KIB = 8192
# Statements whose PostgreSQL form is remembered (``Txn._sql``).
MAX_CACHED_STATEMENTS = 4096


class Txn:
    """A cursor inside one transaction, with ``?`` placeholders on both engines."""

    __slots__ = ("_cur", "_dialect", "_sql_cache")

    def __init__(self, cursor: Any, dialect: Dialect, sql_cache: dict[str, str]) -> None:
        self._cur = cursor
        self._dialect = dialect
        self._sql_cache = sql_cache

    @property
    def dialect(self) -> str:
        return self._dialect.name

    def _sql(self, sql: str) -> str:
        if self._dialect is SQLITE:
            return sql
        out = self._sql_cache.get(sql)
        if out is None:
            # Literal % must be doubled for psycopg2's pyformat parser.
            out = sql.replace("%", "%%").replace("?", "%s")
            if len(self._sql_cache) >= MAX_CACHED_STATEMENTS:
                # IN (?, ?, ...) lists make a new text per length: keep the cache bounded.
                self._sql_cache.clear()
            self._sql_cache[sql] = out
        return out

    def execute(self, sql: str, args: Sequence[Any] = ()) -> Txn:
        try:
            self._cur.execute(self._sql(sql), tuple(args))
        except (ValueError, OverflowError) as e:
            raise _unstorable(e) from None
        return self

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = [tuple(r) for r in rows]
        if rows:
            try:
                self._cur.executemany(self._sql(sql), rows)
            except (ValueError, OverflowError) as e:
                raise _unstorable(e) from None

    def fetchone(self) -> tuple | None:
        return self._cur.fetchone()

    def fetchall(self) -> list[tuple]:
        return self._cur.fetchall()

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount

    def select_one(self, sql: str, args: Sequence[Any] = ()) -> tuple | None:
        return self.execute(sql, args).fetchone()

    def select_value(self, sql: str, args: Sequence[Any] = (), default: Any = None) -> Any:
        row = self.execute(sql, args).fetchone()
        return row[0] if row is not None else default

    def select_all(self, sql: str, args: Sequence[Any] = ()) -> list[tuple]:
        return self.execute(sql, args).fetchall()

    def in_list(self, items: Sequence[Any]) -> str:
        """Placeholders for an IN (...) clause; the values still go through args."""
        return ",".join("?" * len(items)) if items else "NULL"

    def upsert(self, table: str, keys: dict[str, Any], values: dict[str, Any]) -> None:
        cols = list(keys) + list(values)
        placeholders = ",".join("?" * len(cols))
        conflict = ",".join(keys)
        if values:
            update = ",".join(f"{c} = excluded.{c}" for c in values)
            action = f"DO UPDATE SET {update}"
        else:
            action = "DO NOTHING"
        self.execute(
            f"INSERT INTO {table} ({','.join(cols)}) VALUES ({placeholders}) ON CONFLICT ({conflict}) {action}",
            list(keys.values()) + list(values.values()),
        )


class IDatabaseReactor(IReactorThreads, IReactorCore):
    """What a Database needs of its reactor: thread pools and the shutdown trigger."""


class Database:
    """Runs transactions on a thread pool. SQLite gets one writer thread (it allows only one
    writer at a time anyway) plus readers; PostgreSQL gets a pool of connections."""

    def __init__(
        self, url: str, reactor: IDatabaseReactor | None = None, pool_size: int = 6, synchronous: str = "normal"
    ) -> None:
        """``synchronous``: SQLite's PRAGMA synchronous, "normal" or "full" (see ``_connect``)."""
        if synchronous not in ("normal", "full"):
            raise ValueError(f"synchronous must be normal or full, not {synchronous!r}")
        self.synchronous = synchronous
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = cast(IDatabaseReactor, default_reactor)
        self.url = url
        self._reactor: IDatabaseReactor = reactor
        self._local = threading.local()
        self._sql_cache: dict[str, str] = {}
        self._connections: list[Any] = []
        self._conn_lock = threading.Lock()
        if url.startswith("sqlite:///"):
            self.dialect = SQLITE
            self._sqlite_path = url[len("sqlite:///"):]
            if self._sqlite_path != ":memory:":
                create_private_file(self._sqlite_path)
            read_threads = 1 if self._sqlite_path == ":memory:" else max(2, pool_size - 2)
            self._write_pool = ThreadPool(1, 1, name="db-writer")
            self._read_pool = ThreadPool(1, read_threads, name="db-reader") if read_threads > 1 else self._write_pool
        else:
            self.dialect = POSTGRES
            self._pg_dsn = _postgres_dsn(url)
            self._write_pool = ThreadPool(1, pool_size, name="db")
            self._read_pool = self._write_pool
        self._started = False

    @property
    def engine(self) -> str:
        return self.dialect.name

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._write_pool.start()
        if self._read_pool is not self._write_pool:
            self._read_pool.start()
        self._reactor.addSystemEventTrigger("during", "shutdown", self.close)

    def close(self) -> None:
        if not self._started:
            return
        self._started = False
        self._write_pool.stop()
        if self._read_pool is not self._write_pool:
            self._read_pool.stop()
        with self._conn_lock:
            for conn in self._connections:
                try:
                    conn.close()
                except Exception:
                    pass
            self._connections.clear()

    def _connect(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self.dialect is SQLITE:
            conn = sqlite3.connect(self._sqlite_path, check_same_thread=False, isolation_level=None, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a commit is durable once it is in the WAL file, so a crash of
            # the process loses nothing, but the WAL is fsynced only at checkpoints: a power
            # cut or OS crash can lose the last acknowledged commits (never corrupt the
            # database). FULL fsyncs the WAL at every commit: durable, slower writes.
            conn.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
            conn.execute("PRAGMA foreign_keys=OFF")
            # Each connection has a page cache of its own (the pages are in the OS page
            # cache too, shared and reclaimable). At 32 MB each the five connections' caches
            # filled over half an hour of traffic to ~160 MB of RSS that was never given back.
            conn.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        else:
            import psycopg2

            try:
                conn = psycopg2.connect(self._pg_dsn)
            except psycopg2.OperationalError as e:
                raise DatabaseUnavailable(f"cannot connect to PostgreSQL at {self.url}: {e}") from e
            conn.autocommit = False
        self._local.conn = conn
        with self._conn_lock:
            self._connections.append(conn)
        return conn

    def run_sync(self, fn: Callable[..., T], *args: Any, name: str = "txn") -> T:
        """Runs one transaction on the calling thread (startup, CLI and migrations)."""
        conn = self._connect()
        start = time.perf_counter()
        try:
            if self.dialect is SQLITE:
                conn.execute("BEGIN IMMEDIATE")
                cur = conn.cursor()
                try:
                    result = fn(Txn(cur, self.dialect, self._sql_cache), *args)
                    conn.execute("COMMIT")
                    return result
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                finally:
                    cur.close()
            else:
                import psycopg2

                try:
                    with conn.cursor() as cur:
                        result = fn(Txn(cur, self.dialect, self._sql_cache), *args)
                    conn.commit()
                    return result
                except psycopg2.InterfaceError:
                    # The connection died (server restart): forget it so the next call reconnects.
                    self._local.conn = None
                    raise
                except BaseException:
                    try:
                        conn.rollback()
                    except Exception:
                        self._local.conn = None
                    raise
        finally:
            TXN_SECONDS.labels(name).observe(time.perf_counter() - start)

    def run_read_sync(self, fn: Callable[..., T], *args: Any, name: str = "read") -> T:
        if self.dialect is SQLITE:
            conn = self._connect()
            start = time.perf_counter()
            cur = conn.cursor()
            try:
                conn.execute("BEGIN")
                try:
                    return fn(Txn(cur, self.dialect, self._sql_cache), *args)
                finally:
                    conn.execute("COMMIT")
            finally:
                cur.close()
                TXN_SECONDS.labels(name).observe(time.perf_counter() - start)
        return self.run_sync(fn, *args, name=name)

    def write(self, fn: Callable[..., T], *args: Any, name: str = "write") -> defer.Deferred[T]:
        """Runs ``fn(txn, *args)`` in one write transaction off the reactor thread."""
        if self.dialect is not SQLITE:
            return threads.deferToThreadPool(
                self._reactor, self._write_pool, self.run_sync, _one_writer, fn, *args, name=name
            )
        return threads.deferToThreadPool(self._reactor, self._write_pool, self.run_sync, fn, *args, name=name)

    def read(self, fn: Callable[..., T], *args: Any, name: str = "read") -> defer.Deferred[T]:
        """Runs ``fn(txn, *args)`` in a read transaction off the reactor thread."""
        return threads.deferToThreadPool(self._reactor, self._read_pool, self.run_read_sync, fn, *args, name=name)


def create_private_file(path: str) -> None:
    """Creates the SQLite database file readable by its owner only (SQLite gives its -wal,
    -shm and -journal files the database file's mode), or takes group and other access
    away from an existing one: it holds messages, password hashes and key backups."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for name in (path, path + "-wal", path + "-shm", path + "-journal"):
            try:
                mode = os.stat(name).st_mode & 0o777
            except FileNotFoundError:
                continue
            if mode & 0o077:
                logger.warning("%s was readable by others (mode %o): making it private to its owner", name, mode)
                os.chmod(name, mode & 0o700)
    else:
        os.close(fd)


# Any constant: the key of the advisory lock every PostgreSQL write transaction takes.
_WRITE_LOCK_KEY = 0x5753_5052  # "WSPR"


def _one_writer(txn: Txn, fn: Callable[..., T], *args: Any) -> T:
    """The storage code is written for SQLite's one writer at a time (BEGIN IMMEDIATE):
    select-then-insert of users, aliases, filters, push rules, backup versions. On
    PostgreSQL the pool's writers ran side by side under READ COMMITTED, so two
    concurrent requests both passed the SELECT and one died on the unique key (a 500).
    A transaction-scoped advisory lock gives PostgreSQL the same one-writer order;
    reads do not take it."""
    txn.execute("SELECT pg_advisory_xact_lock(?)", (_WRITE_LOCK_KEY,))
    return fn(txn, *args)


def _postgres_dsn(url: str) -> str:
    parsed = urlparse(url)
    parts = []
    if parsed.hostname:
        parts.append(f"host={parsed.hostname}")
    if parsed.port:
        parts.append(f"port={parsed.port}")
    if parsed.username:
        parts.append(f"user={unquote(parsed.username)}")
    if parsed.password:
        parts.append(f"password={unquote(parsed.password)}")
    dbname = parsed.path.lstrip("/")
    if dbname:
        parts.append(f"dbname={unquote(dbname)}")
    if parsed.query:
        for kv in parsed.query.split("&"):
            if "=" in kv:
                parts.append(unquote(kv))
    return " ".join(parts)
