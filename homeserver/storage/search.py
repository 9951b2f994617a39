"""Full-text search over room events (``POST /search``): the ``event_search`` index and
its queries, FTS5 on SQLite and tsvector/GIN on PostgreSQL (migrations *_event_search.*.sql).

The index is written in the transaction that stores the events (``EventsStore``'s
persist transaction calls ``_update_search_index_txn``), and an event leaves it in the
transaction that stores its redaction, so search never shows what the timeline no longer
does. Which hits a user may see is decided by the caller (history visibility).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from homeserver.events.event import Event
from homeserver.storage.database import Database, Txn
from homeserver.storage.events import PersistBatch, _filter_clauses

# The searchable field of each event type (Synapse indexes the same three).
SEARCH_KEYS = {"m.room.message": "content.body", "m.room.name": "content.name", "m.room.topic": "content.topic"}

# What ``/search`` matches and what the ``value MATCH``/``@@`` query reads, per engine.
_SQLITE_FROM = "event_search_fts JOIN event_search s ON s.stream_ordering = event_search_fts.rowid"
_SQLITE_MATCH = "event_search_fts MATCH ?"
_SQLITE_SCORE = "-bm25(event_search_fts)"  # bm25 is lower-is-better; ranks are higher-is-better
_PG_FROM = "event_search s, websearch_to_tsquery('english', ?) q"
_PG_MATCH = "s.vector @@ q"
_PG_SCORE = "ts_rank_cd(s.vector, q)"

_HIT_COLS = "s.event_id, s.room_id, s.origin_server_ts, s.stream_ordering, s.state_group"


@dataclass(frozen=True, slots=True)
class SearchHit:
    event_id: str
    room_id: str
    rank: float
    origin_server_ts: int
    stream_ordering: int
    # the snapshot the event was authorised against (history visibility is judged on it)
    state_group: int | None


@dataclass(frozen=True)
class SearchFilter:
    """Where to look: rooms (all given, never empty), keys, and the sender/type parts of
    the client's RoomEventFilter, applied in SQL so paging and counting agree."""

    rooms: Sequence[str]
    keys: Sequence[str]
    types: list[str] | None = None
    not_types: list[str] | None = None
    senders: list[str] | None = None
    not_senders: list[str] | None = None


def search_value(event: Event) -> tuple[str, str] | None:
    """(key, text) under which an event is indexed, or None: the body of a message, the
    name of a room name event, the plain-text topic of a topic event (Synapse's choice of
    fields; a topic with an ``m.topic`` text/plain representation is indexed by that)."""
    key = SEARCH_KEYS.get(event.type)
    if key is None:
        return None
    content = event.content
    field = key.split(".", 1)[1]
    value = content.get(field)
    if not isinstance(value, str):
        return None
    if event.type == "m.room.topic":
        value = _plain_text_topic(content) or value
    # Neither engine stores NUL in text.
    value = value.replace("\x00", " ")
    return (key, value) if value.strip() else None


def _plain_text_topic(content: dict[str, Any]) -> str | None:
    rich = content.get("m.topic")
    texts = rich.get("m.text") if isinstance(rich, dict) else None
    if not isinstance(texts, list):
        return None
    for representation in texts:
        if not isinstance(representation, dict):
            continue
        if representation.get("mimetype") in (None, "text/plain") and isinstance(representation.get("body"), str):
            return representation["body"]
    return None


# -- query syntax -----------------------------------------------------------------------
#
# Users type what they would into a web search box: words (all must match), "quoted
# phrases", `or` between alternatives, `-word` to exclude. PostgreSQL reads exactly that
# with websearch_to_tsquery (as Synapse does); for SQLite the same is written in FTS5's
# syntax, every word quoted so that no user input is read as FTS5 syntax.

# PostgreSQL's english configuration drops these words from queries; so does the FTS5
# translation, so that "the meeting" finds the same events on both engines.
_STOP_WORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can did do does doing don down during each few for from further had has have having
    he her here hers herself him himself his how i if in into is it its itself just me more most my myself
    no nor not now of off on once only or other our ours ourselves out over own s same she should so some
    such t than that the their theirs them themselves then there these they this those through to too under
    until up very was we were what when where which while who whom why will with you your yours yourself
    yourselves""".split()
)

_WORD = re.compile(r"\w", re.UNICODE)


@dataclass(frozen=True)
class _Term:
    text: str
    negated: bool = False


def parse_search_terms(search_term: str) -> list[list[_Term]]:
    """The query as alternatives (split at `or`), each a list of words or phrases that
    must all match (or, negated, must not)."""
    alternatives: list[list[_Term]] = [[]]
    for i, part in enumerate(search_term.split('"')):
        if i % 2:  # inside quotes: a phrase
            words = [w for w in part.split() if _WORD.search(w) and w.lower() not in _STOP_WORDS]
            if words:
                alternatives[-1].append(_Term(" ".join(words)))
            continue
        for word in part.split():
            if word.lower() == "or":
                alternatives.append([])
                continue
            negated = word.startswith("-") and len(word) > 1
            if negated:
                word = word[1:]
            if not _WORD.search(word) or word.lower() in _STOP_WORDS:
                continue
            alternatives[-1].append(_Term(word, negated))
    return [alt for alt in alternatives if any(not t.negated for t in alt)]


def fts5_query(search_term: str) -> str | None:
    """The FTS5 MATCH expression for a search term, or None when nothing in it can match
    (no word left, or only exclusions: FTS5's NOT needs something to subtract from)."""
    parts = []
    for alternative in parse_search_terms(search_term):
        positive = [_quote(t.text) for t in alternative if not t.negated]
        negative = [_quote(t.text) for t in alternative if t.negated]
        expr = " AND ".join(positive)
        if negative:
            expr = f"({expr}) NOT ({' OR '.join(negative)})"
        parts.append(f"({expr})")
    return " OR ".join(parts) if parts else None


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


# -- the store ----------------------------------------------------------------------------


class SearchStore:
    db: Database

    def _update_search_index_txn(self, txn: Txn, batch: PersistBatch) -> None:
        """Within the persist transaction: index the batch's searchable timeline events,
        and drop the events its redactions redact (redactions a remote batch stores without
        applying them, ``unapplied_redactions``, leave their target in place)."""
        unapplied = set(getattr(batch, "unapplied_redactions", ()))
        redacted = [
            ev.redacts
            for ev in batch.events
            if ev.type == "m.room.redaction" and ev.redacts and not ev.rejected_reason and ev.event_id not in unapplied
        ]
        rows = []
        for ev in batch.events:
            if ev.outlier or ev.rejected_reason or ev.soft_failed or ev.redacted_by:
                continue
            found = search_value(ev)
            if found is not None:
                key, value = found
                rows.append(
                    (ev.stream_ordering, ev.event_id, ev.room_id, ev.sender, ev.type, key, value,
                     ev.origin_server_ts, batch.state_groups_before.get(ev.event_id))
                )
        if rows:
            # A redaction may have arrived before the event it redacts.
            ids = [r[1] for r in rows]
            gone = {
                r[0]
                for r in txn.select_all(
                    f"SELECT redacts FROM redactions WHERE redacts IN ({txn.in_list(ids)})", ids
                )
            }
            gone |= set(redacted)
            _insert_txn(txn, [r for r in rows if r[1] not in gone])
        if redacted:
            delete_from_search_index_txn(txn, redacted)

    async def search_events(
        self, query: str, where: SearchFilter, *, order: str, limit: int, offset: int = 0,
        before: tuple[int, int] | None = None,
    ) -> list[SearchHit]:
        """Hits in ``where``, best first (``order`` "rank", paged by ``offset``) or newest
        first ("recent", paged by ``before``: the (origin_server_ts, stream_ordering) of the
        last hit already returned). Ties in rank go to the older event."""
        if not where.rooms or not where.keys or limit <= 0:
            return []

        def txn_fn(txn: Txn) -> list[SearchHit]:
            sql, args, score = _select(txn, query, where)
            if sql is None:
                return []
            if order == "recent":
                if before is not None:
                    sql += " AND (s.origin_server_ts < ? OR (s.origin_server_ts = ? AND s.stream_ordering < ?))"
                    args += [before[0], before[0], before[1]]
                sql += " ORDER BY s.origin_server_ts DESC, s.stream_ordering DESC LIMIT ?"
                args.append(limit)
            else:
                sql += " ORDER BY score DESC, s.stream_ordering ASC LIMIT ? OFFSET ?"
                args += [limit, offset]
            rows = txn.select_all(f"SELECT {_HIT_COLS}, {score} AS score FROM {sql}", args)
            return [SearchHit(r[0], r[1], float(r[5]), r[2], r[3], r[4]) for r in rows]

        return await self.db.read(txn_fn, name="search_events")

    async def count_search_hits(self, query: str, where: SearchFilter) -> dict[tuple[str, int | None], int]:
        """How many hits each (room, snapshot) holds: the caller counts those the user may
        see without loading every hit."""
        if not where.rooms or not where.keys:
            return {}

        def txn_fn(txn: Txn) -> dict[tuple[str, int | None], int]:
            sql, args, _ = _select(txn, query, where)
            if sql is None:
                return {}
            rows = txn.select_all(
                f"SELECT s.room_id, s.state_group, COUNT(*) FROM {sql} GROUP BY s.room_id, s.state_group", args
            )
            return {(r[0], r[1]): int(r[2]) for r in rows}

        return await self.db.read(txn_fn, name="count_search_hits")

    async def search_highlights(self, query: str, events: list[Event]) -> set[str]:
        """The words of these events' indexed text that the query matched, lower-cased, for
        clients to highlight (Synapse takes them from ts_headline on PostgreSQL). The
        markers are chosen so that they cannot occur in the text."""
        texts_by_id = {ev.event_id: found[1] for ev in events if (found := search_value(ev)) is not None}
        if not texts_by_id:
            return set()
        start, stop = _markers(texts_by_id.values())
        ids = list(texts_by_id)

        def txn_fn(txn: Txn) -> list[str]:
            if txn.dialect == "sqlite":
                match = fts5_query(query)
                if match is None:
                    return []
                return [
                    r[0]
                    for r in txn.select_all(
                        "SELECT highlight(event_search_fts, 0, ?, ?) FROM event_search_fts WHERE event_search_fts MATCH ?"
                        " AND rowid IN (SELECT stream_ordering FROM event_search"
                        f" WHERE event_id IN ({txn.in_list(ids)}))",
                        [start, stop, match, *ids],
                    )
                ]
            options = f'StartSel="{start}", StopSel="{stop}", HighlightAll=true'
            return [
                r[0]
                for r in txn.select_all(
                    "SELECT ts_headline('english', v, websearch_to_tsquery('english', ?), ?) FROM unnest(?) AS v",
                    [query, options, list(texts_by_id.values())],
                )
            ]

        texts = await self.db.read(txn_fn, name="search_highlights")
        pattern = re.compile(re.escape(start) + "(.*?)" + re.escape(stop), re.DOTALL)
        return {m.lower() for text in texts for m in pattern.findall(text) if m.strip()}


def _select(txn: Txn, query: str, where: SearchFilter) -> tuple[str | None, list[Any], str]:
    """FROM ... WHERE ... matching ``query`` in ``where`` (None when the query can match
    nothing), its arguments, and the score expression of the engine."""
    clauses: list[str] = []
    args: list[Any] = []
    if txn.dialect == "sqlite":
        match = fts5_query(query)
        if match is None:
            return None, [], ""
        sql, score = f"{_SQLITE_FROM} WHERE {_SQLITE_MATCH}", _SQLITE_SCORE
        args.append(match)
    else:
        if not parse_search_terms(query):
            return None, [], ""
        sql, score = f"{_PG_FROM} WHERE {_PG_MATCH}", _PG_SCORE
        args.append(query)
    clauses.append(f"s.room_id IN ({txn.in_list(where.rooms)})")
    args += list(where.rooms)
    clauses.append(f"s.key IN ({txn.in_list(where.keys)})")
    args += list(where.keys)
    # type and sender are columns of event_search only, so unqualified names are unambiguous.
    _filter_clauses(clauses, args, where.types, where.not_types, where.senders, where.not_senders)
    return sql + " AND " + " AND ".join(clauses), args, score


def _insert_txn(txn: Txn, rows: list[tuple]) -> None:
    if not rows:
        return
    cols = "stream_ordering, event_id, room_id, sender, type, key, {}, origin_server_ts, state_group"
    if txn.dialect == "sqlite":
        txn.executemany(f"INSERT INTO event_search ({cols.format('value')}) VALUES (?,?,?,?,?,?,?,?,?)", rows)
        txn.executemany("INSERT INTO event_search_fts (rowid, value) VALUES (?, ?)", [(r[0], r[6]) for r in rows])
    else:
        txn.executemany(
            f"INSERT INTO event_search ({cols.format('vector')}) VALUES (?,?,?,?,?,?,to_tsvector('english', ?),?,?)",
            rows,
        )


def delete_from_search_index_txn(txn: Txn, event_ids: Iterable[str]) -> None:
    """Removes events from the index (on SQLite the FTS5 index is told the text it held)."""
    ids = list(dict.fromkeys(event_ids))
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        if txn.dialect == "sqlite":
            rows = txn.select_all(
                f"SELECT stream_ordering, value FROM event_search WHERE event_id IN ({txn.in_list(chunk)})", chunk
            )
            if not rows:
                continue
            txn.executemany(
                "INSERT INTO event_search_fts (event_search_fts, rowid, value) VALUES ('delete', ?, ?)", rows
            )
        txn.execute(f"DELETE FROM event_search WHERE event_id IN ({txn.in_list(chunk)})", chunk)


def _markers(values: Iterable[str]) -> tuple[str, str]:
    # Private-use characters: no text has them, save by design, and then longer runs.
    text = "".join(values)
    start, stop = "\ue000", "\ue001"
    while start in text or stop in text:
        start, stop = start + "\ue000", stop + "\ue001"
    return start, stop

