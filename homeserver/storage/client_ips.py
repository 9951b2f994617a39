"""Where and with which client each session was last seen (Synapse's user_ips), for
``/admin/whois``: one row per (user, access token, client IP), with the latest user agent."""

from __future__ import annotations

from dataclasses import dataclass

from homeserver.storage.database import Database, Txn


@dataclass(frozen=True)
class Connection:
    token_hash: str
    ip: str
    user_agent: str
    last_seen: int


class ClientIpStore:
    db: Database

    async def record_client_ip(
        self, user_id: str, token_hash: str, device_id: str | None, ip: str, user_agent: str, last_seen: int
    ) -> None:
        await self.db.write(
            lambda txn: txn.upsert(
                "user_ips",
                {"user_id": user_id, "token_hash": token_hash, "ip": ip},
                {"device_id": device_id, "user_agent": user_agent, "last_seen": last_seen},
            ),
            name="record_client_ip",
        )

    async def get_user_connections(self, user_id: str, since_ts: int = 0) -> list[Connection]:
        """The user's (token, IP) pairs seen since ``since_ts``, most recent first."""

        def txn_fn(txn: Txn) -> list[Connection]:
            return [
                Connection(*r)
                for r in txn.select_all(
                    "SELECT token_hash, ip, user_agent, last_seen FROM user_ips WHERE user_id = ? AND last_seen >= ?"
                    " ORDER BY last_seen DESC",
                    (user_id, since_ts),
                )
            ]

        return await self.db.read(txn_fn, name="user_connections")

    async def prune_client_ips(self, older_than: int) -> int:
        """Forgets connections last seen before ``older_than`` (ms); how many."""

        def txn_fn(txn: Txn) -> int:
            txn.execute("DELETE FROM user_ips WHERE last_seen < ?", (older_than,))
            return max(txn.rowcount, 0)

        return await self.db.write(txn_fn, name="prune_client_ips")
