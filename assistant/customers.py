"""The four-account model: login user, person, e-wallet / quick-pay accounts, electricity accounts.

One customer record ties together the unified login user (phone number), the
person (name), the e-wallet account, the quick-pay bank-card account (token and
last four digits only) and one or more electricity accounts (户号). Linking happens
in one transaction so an enrolment never leaves a half-linked customer.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from assistant.errors import StorageError
from assistant.messages import Masked
from assistant.storage import Database

METHODS = ("cash", "card", "ewallet")


@dataclass(frozen=True)
class Customer:
    """A customer as the dialog needs them (read side of the four-account model)."""

    user_id: int
    """login_user.id."""
    uid: str
    """Unified user id."""
    phone: str
    """Login phone number."""
    name: str
    """Full name; only ever shown or spoken through :func:`mask_name`."""
    default_method: str
    """cash, card or ewallet."""
    accounts: tuple[str, ...]
    """Electricity account numbers, oldest link first."""
    wallet_no: str | None = None
    """E-wallet account number, if any."""
    card_last4: str | None = None
    """Last four digits of the bound quick-pay card, if any."""
    card_token: str | None = None
    """The bank's token for the bound card, if any."""


def mask_name(name: str) -> Masked:
    """Mask a name: keep the first character (the surname), star the rest (张三丰 -> 张**)."""
    name = name.strip()
    if not name:
        return Masked(display="", spoken="")
    return Masked(display=name[0] + "*" * max(1, len(name) - 1), spoken=name[0])


def mask_account(account_no: str) -> Masked:
    """Mask an account or phone number to its last four digits (****1234)."""
    tail = account_no[-4:]
    return Masked(display="*" * max(0, len(account_no) - 4) + tail, spoken=tail)


class CustomerDirectory:
    """Reads and links customers in the kiosk database.

    Args:
        db: the open kiosk database.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    async def by_user(self, user_id: int) -> Customer | None:
        """The customer with this login user id, or None."""
        row = await self.db.fetchone(
            "SELECT u.id, u.uid, u.phone, u.default_method, p.name, w.wallet_no, "
            "       q.card_last4, q.card_token "
            "FROM login_user u JOIN person p ON p.user_id = u.id "
            "LEFT JOIN ewallet_account w ON w.user_id = u.id "
            "LEFT JOIN quickpay_account q ON q.id = "
            "  (SELECT max(id) FROM quickpay_account WHERE user_id = u.id) "
            "WHERE u.id = ?",
            (user_id,),
        )
        if row is None:
            return None
        accounts = await self.db.fetchall(
            "SELECT account_no FROM electricity_account WHERE user_id = ? ORDER BY id", (user_id,)
        )
        return Customer(
            user_id=row["id"],
            uid=row["uid"],
            phone=row["phone"],
            name=row["name"],
            default_method=row["default_method"],
            accounts=tuple(r["account_no"] for r in accounts),
            wallet_no=row["wallet_no"],
            card_last4=row["card_last4"],
            card_token=row["card_token"],
        )

    async def by_account(self, account_no: str) -> Customer | None:
        """The customer linked to an electricity account, or None if unlinked/unknown."""
        row = await self.db.fetchone(
            "SELECT user_id FROM electricity_account WHERE account_no = ? AND user_id IS NOT NULL",
            (account_no,),
        )
        return await self.by_user(row["user_id"]) if row else None

    async def by_phone(self, phone: str) -> Customer | None:
        """The customer whose login phone number this is, or None."""
        row = await self.db.fetchone("SELECT id FROM login_user WHERE phone = ?", (phone,))
        return await self.by_user(row["id"]) if row else None

    async def link(
        self,
        phone: str,
        name: str,
        accounts: list[str],
        default_method: str = "cash",
        wallet_no: str | None = None,
        card_token: str | None = None,
        card_last4: str | None = None,
        issuer: str = "",
        extra: Callable[[Any, int], Awaitable[None]] | None = None,
    ) -> int:
        """Create (or complete) a customer and link all four accounts in one transaction.

        Returns the login user id. Re-linking an existing phone number adds the
        accounts and card to that user instead of creating a second one. ``extra``
        runs inside the same transaction (consent record, face embeddings), so either
        everything is linked or nothing is.
        """
        if default_method not in METHODS:
            raise StorageError(f"unknown payment method {default_method!r}")
        if (card_token is None) != (card_last4 is None):
            raise StorageError("a quick-pay card needs both a token and its last four digits")
        async with self.db.transaction() as tx:
            cur = await tx.execute("SELECT id FROM login_user WHERE phone = ?", (phone,))
            existing = await cur.fetchone()
            if existing:
                user_id = int(existing["id"])
                await tx.execute(
                    "UPDATE login_user SET default_method = ? WHERE id = ?",
                    (default_method, user_id),
                )
            else:
                cur = await tx.execute(
                    "INSERT INTO login_user(uid, phone, default_method) VALUES (?, ?, ?)",
                    (uuid.uuid4().hex, phone, default_method),
                )
                user_id = int(cur.lastrowid or 0)
                await tx.execute("INSERT INTO person(user_id, name) VALUES (?, ?)", (user_id, name))
            if wallet_no:
                await tx.execute(
                    "INSERT OR IGNORE INTO ewallet_account(user_id, wallet_no) VALUES (?, ?)",
                    (user_id, wallet_no),
                )
            if card_token and card_last4:
                await tx.execute(
                    "INSERT OR IGNORE INTO quickpay_account(user_id, card_token, card_last4, issuer) "
                    "VALUES (?, ?, ?, ?)",
                    (user_id, card_token, card_last4, issuer),
                )
            for account_no in accounts:
                cur = await tx.execute(
                    "SELECT user_id FROM electricity_account WHERE account_no = ?", (account_no,)
                )
                linked = await cur.fetchone()
                if linked is None:
                    await tx.execute(
                        "INSERT INTO electricity_account(account_no, user_id) VALUES (?, ?)",
                        (account_no, user_id),
                    )
                elif linked["user_id"] in (None, user_id):
                    await tx.execute(
                        "UPDATE electricity_account SET user_id = ? WHERE account_no = ?",
                        (user_id, account_no),
                    )
                else:
                    raise StorageError(
                        f"electricity account {account_no} is already linked to another customer"
                    )
            if extra is not None:
                await extra(tx, user_id)
        return user_id
