"""Versioned schema migrations, applied in place at start.

Each ``schema/NNN_name.sql`` file runs once, in name order, inside one transaction, and
is recorded in ``applied_migrations``; an existing database is upgraded by running the
files it has not seen. Files use {BLOB}/{BIGINT}/{AUTOINC_PK} for engine-specific types.
What cannot be written portably (full-text search: FTS5 on SQLite, tsvector on
PostgreSQL) goes in ``NNN_name.sqlite.sql`` / ``NNN_name.postgres.sql``, which run on
that engine only.
"""

from __future__ import annotations

import logging
import os
import time

from homeserver.storage.database import Database, Txn

logger = logging.getLogger(__name__)

SCHEMA_DIR = os.path.join(os.path.dirname(__file__), "schema")


_ENGINE_SUFFIXES = {"sqlite": ".sqlite.sql", "postgres": ".postgres.sql"}


def migration_files(engine: str | None = None) -> list[str]:
    """The migrations, in order: all of them, or those that run on ``engine``."""
    names = sorted(f for f in os.listdir(SCHEMA_DIR) if f.endswith(".sql"))
    if engine is None:
        return names
    others = tuple(suffix for name, suffix in _ENGINE_SUFFIXES.items() if name != engine)
    return [f for f in names if not f.endswith(others)]


def _split_statements(sql: str) -> list[str]:
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def _apply(txn: Txn, db: Database) -> list[str]:
    txn.execute(
        "CREATE TABLE IF NOT EXISTS applied_migrations (name TEXT PRIMARY KEY, applied_ts BIGINT NOT NULL)"
    )
    done = {row[0] for row in txn.select_all("SELECT name FROM applied_migrations")}
    applied = []
    for name in migration_files(db.engine):
        if name in done:
            continue
        with open(os.path.join(SCHEMA_DIR, name), encoding="utf-8") as f:
            sql = f.read()
        for key, value in db.dialect.types.items():
            sql = sql.replace("{" + key + "}", value)
        for statement in _split_statements(sql):
            txn.execute(statement)
        txn.execute("INSERT INTO applied_migrations (name, applied_ts) VALUES (?, ?)", (name, int(time.time() * 1000)))
        applied.append(name)
    return applied


def prepare_database(db: Database) -> None:
    """Brings the schema up to date; runs synchronously before the server starts."""
    applied = db.run_sync(_apply, db, name="migrations")
    for name in applied:
        logger.info("applied schema migration %s", name)
