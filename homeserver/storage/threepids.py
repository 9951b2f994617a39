"""Third-party identifiers (e-mail addresses, phone numbers) bound to local accounts, as
Synapse's user_threepids (schema 053)."""

from __future__ import annotations

from dataclasses import dataclass

from homeserver.storage.database import Database, Txn


@dataclass(frozen=True)
class Threepid:
    medium: str
    address: str
    validated_at: int
    added_at: int


def remove_user_threepids_txn(txn: Txn, user_id: str) -> None:
    txn.execute("DELETE FROM user_threepids WHERE user_id = ?", (user_id,))


class ThreepidStore:
    db: Database

    async def get_threepids(self, user_id: str) -> list[Threepid]:
        return await self.db.read(
            lambda txn: [
                Threepid(*r)
                for r in txn.select_all(
                    "SELECT medium, address, validated_at, added_at FROM user_threepids WHERE user_id = ?"
                    " ORDER BY added_at, medium, address",
                    (user_id,),
                )
            ],
            name="get_threepids",
        )

    async def add_threepid(self, user_id: str, medium: str, address: str, validated_at: int, added_at: int) -> None:
        """Binds the address to the user (taking it from any other account, as Synapse's
        admin API does)."""
        await self.db.write(
            lambda txn: txn.upsert(
                "user_threepids",
                {"medium": medium, "address": address},
                {"user_id": user_id, "validated_at": validated_at, "added_at": added_at},
            ),
            name="add_threepid",
        )

    async def remove_threepid(self, user_id: str, medium: str, address: str) -> None:
        await self.db.write(
            lambda txn: txn.execute(
                "DELETE FROM user_threepids WHERE user_id = ? AND medium = ? AND address = ?",
                (user_id, medium, address),
            ),
            name="remove_threepid",
        )

    async def get_user_by_threepid(self, medium: str, address: str) -> str | None:
        return await self.db.read(
            lambda txn: txn.select_value(
                "SELECT user_id FROM user_threepids WHERE medium = ? AND address = ?", (medium, address)
            ),
            name="user_by_threepid",
        )
