"""Push rules, per-event push actions (unread counts, /notifications), read positions
and pushers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from homeserver.storage.database import Database, Txn


@dataclass(frozen=True)
class StoredRule:
    kind: str
    rule_id: str
    priority: int
    rule: dict[str, Any]  # actions, conditions/pattern, enabled


@dataclass(frozen=True)
class PushActionRow:
    user_id: str
    room_id: str
    event_id: str
    stream_ordering: int
    thread_id: str
    highlight: bool
    actions: list[Any]
    ts: int


@dataclass(frozen=True)
class PusherRecord:
    user_id: str
    app_id: str
    pushkey: str
    kind: str
    app_display_name: str
    device_display_name: str
    profile_tag: str
    lang: Any
    data: Any
    # The device that registered it: the pusher goes with the device.
    device_id: str | None
    # When it was (re)registered, sent as the gateway's pushkey_ts.
    ts: int
    # The last notification sent (or given up on).
    last_stream_ordering: int
    last_success: int | None
    failing_since: int | None


class PushRuleError(Exception):
    """before/after names a rule that does not exist."""


class PushStore:
    db: Database

    # -- rules ------------------------------------------------------------------------

    async def get_push_rules_for_users(
        self, user_ids: list[str]
    ) -> dict[str, tuple[list[StoredRule], dict[str, tuple[bool | None, list[Any] | None]]]]:
        """Per user: their rules (most important first within a kind) and their changes
        to the server-default rules."""

        def txn_fn(txn: Txn) -> dict[str, tuple[list[StoredRule], dict[str, tuple[bool | None, list[Any] | None]]]]:
            out: dict[str, tuple[list[StoredRule], dict[str, tuple[bool | None, list[Any] | None]]]] = {
                u: ([], {}) for u in user_ids
            }
            for i in range(0, len(user_ids), 500):
                chunk = user_ids[i : i + 500]
                for user_id, kind, rule_id, priority, rule_json in txn.select_all(
                    f"SELECT user_id, kind, rule_id, priority, rule_json FROM push_rules"
                    f" WHERE user_id IN ({txn.in_list(chunk)}) ORDER BY user_id, kind, priority DESC",
                    chunk,
                ):
                    out[user_id][0].append(StoredRule(kind, rule_id, priority, json.loads(rule_json)))
                for user_id, rule_id, enabled, actions in txn.select_all(
                    f"SELECT user_id, rule_id, enabled, actions FROM push_rules_enabled"
                    f" WHERE user_id IN ({txn.in_list(chunk)})",
                    chunk,
                ):
                    out[user_id][1][rule_id] = (
                        None if enabled is None else bool(enabled),
                        json.loads(actions) if actions is not None else None,
                    )
            return out

        return await self.db.read(txn_fn, name="get_push_rules")

    async def put_push_rule(
        self, user_id: str, kind: str, rule_id: str, rule: dict[str, Any], before: str | None, after: str | None
    ) -> None:
        """Adds or replaces a user rule. It becomes the most important of its kind unless
        before/after place it (a replaced rule too, as Synapse)."""

        def txn_fn(txn: Txn) -> None:
            rows = txn.select_all(
                "SELECT rule_id, rule_json FROM push_rules WHERE user_id = ? AND kind = ? ORDER BY priority DESC",
                (user_id, kind),
            )
            order = [r[0] for r in rows]
            existing = {r[0]: json.loads(r[1]) for r in rows}
            if rule_id in existing and "enabled" in existing[rule_id]:
                rule.setdefault("enabled", existing[rule_id]["enabled"])
            anchor = before or after
            if anchor is not None:
                if anchor not in existing or anchor == rule_id:
                    raise PushRuleError(f"before/after rule not found: {anchor}")
                if rule_id in order:
                    order.remove(rule_id)
                pos = order.index(anchor)
                order.insert(pos if before else pos + 1, rule_id)
            else:
                # Added again without before/after, it becomes the most important of its
                # kind again, as on Synapse (which gives it a new top priority).
                if rule_id in order:
                    order.remove(rule_id)
                order.insert(0, rule_id)
            txn.execute("DELETE FROM push_rules WHERE user_id = ? AND kind = ?", (user_id, kind))
            existing[rule_id] = rule
            n = len(order)
            txn.executemany(
                "INSERT INTO push_rules (user_id, kind, rule_id, priority, rule_json) VALUES (?, ?, ?, ?, ?)",
                [(user_id, kind, rid, n - i, json.dumps(existing[rid])) for i, rid in enumerate(order)],
            )

        await self.db.write(txn_fn, name="put_push_rule")

    async def update_push_rule(self, user_id: str, kind: str, rule_id: str, changes: dict[str, Any]) -> bool:
        """Changes fields (enabled, actions) of a user rule; False if there is none."""

        def txn_fn(txn: Txn) -> bool:
            raw = txn.select_value(
                "SELECT rule_json FROM push_rules WHERE user_id = ? AND kind = ? AND rule_id = ?",
                (user_id, kind, rule_id),
            )
            if raw is None:
                return False
            rule = json.loads(raw)
            rule.update(changes)
            txn.execute(
                "UPDATE push_rules SET rule_json = ? WHERE user_id = ? AND kind = ? AND rule_id = ?",
                (json.dumps(rule), user_id, kind, rule_id),
            )
            return True

        return await self.db.write(txn_fn, name="update_push_rule")

    async def delete_push_rule(self, user_id: str, kind: str, rule_id: str) -> bool:
        def txn_fn(txn: Txn) -> bool:
            txn.execute(
                "DELETE FROM push_rules WHERE user_id = ? AND kind = ? AND rule_id = ?", (user_id, kind, rule_id)
            )
            return txn.rowcount > 0

        return await self.db.write(txn_fn, name="delete_push_rule")

    async def set_default_rule_override(
        self, user_id: str, rule_id: str, enabled: bool | None = None, actions: list[Any] | None = None
    ) -> None:
        """Records the user's change to a server-default rule (None keeps the other field)."""

        def txn_fn(txn: Txn) -> None:
            row = txn.select_one(
                "SELECT enabled, actions FROM push_rules_enabled WHERE user_id = ? AND rule_id = ?", (user_id, rule_id)
            )
            cur_enabled, cur_actions = (row[0], row[1]) if row else (None, None)
            new_enabled = enabled if enabled is not None else (None if cur_enabled is None else bool(cur_enabled))
            new_actions = json.dumps(actions) if actions is not None else cur_actions
            txn.upsert(
                "push_rules_enabled",
                {"user_id": user_id, "rule_id": rule_id},
                {"enabled": new_enabled, "actions": new_actions},
            )

        await self.db.write(txn_fn, name="set_default_rule_override")

    # -- push actions and read positions ----------------------------------------------

    async def write_push_batch(
        self, actions: list[PushActionRow], reads: list[tuple[str, str, str, int]]
    ) -> dict[tuple[str, str, str], tuple[int, int]]:
        """New push actions, and read positions (user_id, room_id, thread_id, stream_ordering)
        that only ever move forward, in one transaction. Returns, for every threaded read
        (thread id not ''), that thread's unread (notifications, highlights) afterwards."""

        def txn_fn(txn: Txn) -> dict[tuple[str, str, str], tuple[int, int]]:
            txn.executemany(
                "INSERT INTO event_push_actions (user_id, room_id, event_id, stream_ordering, thread_id, highlight,"
                " actions, ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                [
                    (r.user_id, r.room_id, r.event_id, r.stream_ordering, r.thread_id, r.highlight, json.dumps(r.actions), r.ts)
                    for r in actions
                ],
            )
            txn.executemany(
                "INSERT INTO event_push_read (user_id, room_id, thread_id, stream_ordering) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (user_id, room_id, thread_id) DO UPDATE SET stream_ordering = excluded.stream_ordering"
                " WHERE event_push_read.stream_ordering < excluded.stream_ordering",
                reads,
            )
            recounted: dict[tuple[str, str, str], tuple[int, int]] = {}
            for user_id, room_id, thread_id, _ in reads:
                if not thread_id or (user_id, room_id, thread_id) in recounted:
                    continue
                row = txn.select_one(
                    "SELECT COUNT(*), SUM(CASE WHEN highlight THEN 1 ELSE 0 END) FROM event_push_actions"
                    " WHERE user_id = ? AND room_id = ? AND thread_id = ? AND stream_ordering > COALESCE(("
                    " SELECT MAX(stream_ordering) FROM event_push_read WHERE user_id = ? AND room_id = ?"
                    " AND thread_id IN ('', ?)), 0)",
                    (user_id, room_id, thread_id, user_id, room_id, thread_id),
                )
                recounted[(user_id, room_id, thread_id)] = (int(row[0]), int(row[1] or 0)) if row else (0, 0)
            return recounted

        return await self.db.write(txn_fn, name="write_push_batch")

    async def prune_push_actions(self, before_ts: int) -> None:
        """Forgets notifications older than ``before_ts`` that have been read."""

        def txn_fn(txn: Txn) -> None:
            txn.execute(
                "DELETE FROM event_push_actions WHERE ts < ? AND stream_ordering <= COALESCE(("
                " SELECT MAX(r.stream_ordering) FROM event_push_read r WHERE r.user_id = event_push_actions.user_id"
                " AND r.room_id = event_push_actions.room_id"
                " AND r.thread_id IN ('', event_push_actions.thread_id)), 0)",
                (before_ts,),
            )

        await self.db.write(txn_fn, name="prune_push_actions")

    async def get_unread_counts(
        self, user_id: str, room_id: str | None = None
    ) -> dict[str, dict[str, tuple[int, int]]]:
        """room -> thread -> (notifications, highlights) after the user's read positions,
        for one room or (room_id None) every room with any."""

        def room_counts(txn: Txn, room: str) -> dict[str, tuple[int, int]]:
            reads = dict(
                txn.select_all(
                    "SELECT thread_id, stream_ordering FROM event_push_read WHERE user_id = ? AND room_id = ?",
                    (user_id, room),
                )
            )
            floor = reads.get("", 0)
            # An index range over the unread rows only (those after the unthreaded read
            # position); per-thread read positions are applied here.
            rows = txn.select_all(
                "SELECT thread_id, stream_ordering, highlight FROM event_push_actions"
                " WHERE user_id = ? AND room_id = ? AND stream_ordering > ?",
                (user_id, room, floor),
            )
            counts: dict[str, tuple[int, int]] = {}
            for thread, stream, highlight in rows:
                if stream <= reads.get(thread, 0):
                    continue
                n, h = counts.get(thread, (0, 0))
                counts[thread] = (n + 1, h + (1 if highlight else 0))
            return counts

        def txn_fn(txn: Txn) -> dict[str, dict[str, tuple[int, int]]]:
            if room_id is not None:
                rooms = [room_id]
            else:
                rooms = [r[0] for r in txn.select_all("SELECT DISTINCT room_id FROM event_push_actions WHERE user_id = ?", (user_id,))]
            out: dict[str, dict[str, tuple[int, int]]] = {}
            for room in rooms:
                counts = room_counts(txn, room)
                if counts:
                    out[room] = counts
            return out

        return await self.db.read(txn_fn, name="get_unread_counts")

    async def get_notifications(
        self, user_id: str, before: int | None, limit: int, only_highlight: bool
    ) -> list[tuple[PushActionRow, bool]]:
        """The newest notifications (before a stream position), each with whether it is read."""

        def txn_fn(txn: Txn) -> list[tuple[PushActionRow, bool]]:
            clauses = ["a.user_id = ?"]
            args: list[Any] = [user_id]
            if before is not None:
                clauses.append("a.stream_ordering < ?")
                args.append(before)
            if only_highlight:
                clauses.append("a.highlight")
            rows = txn.select_all(
                "SELECT a.room_id, a.event_id, a.stream_ordering, a.thread_id, a.highlight, a.actions, a.ts,"
                " COALESCE(t.stream_ordering, 0), COALESCE(u.stream_ordering, 0)"
                " FROM event_push_actions a"
                " LEFT JOIN event_push_read t ON t.user_id = a.user_id AND t.room_id = a.room_id AND t.thread_id = a.thread_id"
                " LEFT JOIN event_push_read u ON u.user_id = a.user_id AND u.room_id = a.room_id AND u.thread_id = ''"
                f" WHERE {' AND '.join(clauses)} ORDER BY a.stream_ordering DESC LIMIT ?",
                args + [limit],
            )
            return [
                (
                    PushActionRow(user_id, r[0], r[1], r[2], r[3], bool(r[4]), json.loads(r[5]), r[6]),
                    r[2] <= max(r[7], r[8]),
                )
                for r in rows
            ]

        return await self.db.read(txn_fn, name="get_notifications")

    async def get_unread_push_actions_for_pusher(
        self, user_id: str, after: int, up_to: int, limit: int
    ) -> list[PushActionRow]:
        """The user's notifications in ``(after, up_to]`` that are still unread, oldest
        first: what a pusher has left to send (as Synapse's
        ``get_unread_push_actions_for_user_in_range_for_http``)."""

        def txn_fn(txn: Txn) -> list[PushActionRow]:
            rows = txn.select_all(
                "SELECT a.room_id, a.event_id, a.stream_ordering, a.thread_id, a.highlight, a.actions, a.ts"
                " FROM event_push_actions a"
                " LEFT JOIN event_push_read t ON t.user_id = a.user_id AND t.room_id = a.room_id AND t.thread_id = a.thread_id"
                " LEFT JOIN event_push_read u ON u.user_id = a.user_id AND u.room_id = a.room_id AND u.thread_id = ''"
                " WHERE a.user_id = ? AND a.stream_ordering > ? AND a.stream_ordering <= ?"
                " AND a.stream_ordering > COALESCE(t.stream_ordering, 0) AND a.stream_ordering > COALESCE(u.stream_ordering, 0)"
                " ORDER BY a.stream_ordering LIMIT ?",
                (user_id, after, up_to, limit),
            )
            return [PushActionRow(user_id, r[0], r[1], r[2], r[3], bool(r[4]), json.loads(r[5]), r[6]) for r in rows]

        return await self.db.read(txn_fn, name="get_unread_push_actions_for_pusher")

    # -- pushers ----------------------------------------------------------------------

    _PUSHER_COLUMNS = (
        "user_id, app_id, pushkey, kind, app_display_name, device_display_name, profile_tag, lang, data,"
        " device_id, created_ts, last_stream_ordering, last_success, failing_since"
    )

    @staticmethod
    def _pusher(r: tuple) -> PusherRecord:
        return PusherRecord(
            user_id=r[0],
            app_id=r[1],
            pushkey=r[2],
            kind=r[3],
            app_display_name=r[4] or "",
            device_display_name=r[5] or "",
            profile_tag=r[6] or "",
            lang=r[7],
            data=json.loads(r[8]),
            device_id=r[9],
            ts=r[10],
            last_stream_ordering=r[11] or 0,
            last_success=r[12],
            failing_since=r[13],
        )

    async def get_pushers(self, user_id: str) -> list[PusherRecord]:
        return await self.db.read(
            lambda txn: [
                self._pusher(r)
                for r in txn.select_all(
                    f"SELECT {self._PUSHER_COLUMNS} FROM pushers WHERE user_id = ? ORDER BY created_ts, app_id, pushkey",
                    (user_id,),
                )
            ],
            name="get_pushers",
        )

    async def get_all_pushers(self) -> list[PusherRecord]:
        return await self.db.read(
            lambda txn: [self._pusher(r) for r in txn.select_all(f"SELECT {self._PUSHER_COLUMNS} FROM pushers")],
            name="get_all_pushers",
        )

    async def get_pushers_by_app_id_and_pushkey(self, app_id: str, pushkey: str) -> list[PusherRecord]:
        return await self.db.read(
            lambda txn: [
                self._pusher(r)
                for r in txn.select_all(
                    f"SELECT {self._PUSHER_COLUMNS} FROM pushers WHERE app_id = ? AND pushkey = ?", (app_id, pushkey)
                )
            ],
            name="get_pushers_by_app_id_and_pushkey",
        )

    async def add_pusher(self, pusher: PusherRecord) -> None:
        """Adds or replaces the user's pusher of (app_id, pushkey); delivery starts after
        ``pusher.last_stream_ordering``."""
        await self.db.write(
            lambda txn: txn.upsert(
                "pushers",
                {"app_id": pusher.app_id, "pushkey": pusher.pushkey, "user_id": pusher.user_id},
                {
                    "kind": pusher.kind,
                    "app_display_name": pusher.app_display_name,
                    "device_display_name": pusher.device_display_name,
                    "profile_tag": pusher.profile_tag,
                    "lang": pusher.lang,
                    "data": json.dumps(pusher.data),
                    "device_id": pusher.device_id,
                    "created_ts": pusher.ts,
                    "last_stream_ordering": pusher.last_stream_ordering,
                    "last_success": None,
                    "failing_since": None,
                },
            ),
            name="add_pusher",
        )

    async def delete_pusher(self, user_id: str, app_id: str, pushkey: str) -> None:
        await self.db.write(
            lambda txn: txn.execute(
                "DELETE FROM pushers WHERE user_id = ? AND app_id = ? AND pushkey = ?", (user_id, app_id, pushkey)
            ),
            name="delete_pusher",
        )

    async def update_pusher_last_stream_ordering(
        self, user_id: str, app_id: str, pushkey: str, last_stream_ordering: int, success_ts: int | None
    ) -> bool:
        """Records what a pusher has sent (and, with ``success_ts``, that the gateway took
        it); False when the pusher has been deleted meanwhile."""

        def txn_fn(txn: Txn) -> bool:
            if success_ts is None:
                txn.execute(
                    "UPDATE pushers SET last_stream_ordering = ? WHERE user_id = ? AND app_id = ? AND pushkey = ?",
                    (last_stream_ordering, user_id, app_id, pushkey),
                )
            else:
                txn.execute(
                    "UPDATE pushers SET last_stream_ordering = ?, last_success = ?"
                    " WHERE user_id = ? AND app_id = ? AND pushkey = ?",
                    (last_stream_ordering, success_ts, user_id, app_id, pushkey),
                )
            return txn.rowcount > 0

        return await self.db.write(txn_fn, name="update_pusher_last_stream_ordering")

    async def update_pusher_failing_since(self, user_id: str, app_id: str, pushkey: str, failing_since: int | None) -> None:
        await self.db.write(
            lambda txn: txn.execute(
                "UPDATE pushers SET failing_since = ? WHERE user_id = ? AND app_id = ? AND pushkey = ?",
                (failing_since, user_id, app_id, pushkey),
            ),
            name="update_pusher_failing_since",
        )
