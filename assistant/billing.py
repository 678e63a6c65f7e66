"""Billing: who owes what, and posting payments to the electricity accounts.

:class:`Billing` is the port a real utility integration implements. The default
backend, :class:`LedgerBilling`, is an embedded ledger in the kiosk's own database
(tables ``billing_*``), seeded with demo customers by ``python main.py db seed``.

Postings are idempotent: each carries the kiosk's reference (the payment id plus a
suffix), and posting the same reference twice returns the first posting instead of
charging twice. That is what makes crash recovery safe to retry.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Literal

from assistant.errors import BillingError, UnknownAccount
from assistant.storage import Database

PostingKind = Literal["payment", "prepayment"]


@dataclass(frozen=True)
class AccountInfo:
    """An electricity account as billing knows it."""

    account_no: str
    """户号: digits, leading zeros kept."""
    holder_name: str
    """Full name; mask it before showing or speaking."""
    address: str
    """Supply address."""
    arrears_fen: int
    """Total unpaid, in fen."""
    prepaid_fen: int
    """Prepayment balance held on the account, in fen."""


@dataclass(frozen=True)
class Posting:
    """A posting accepted by billing."""

    reference: str
    """The kiosk's idempotency key."""
    account_no: str
    kind: PostingKind
    amount_fen: int
    channel: str
    """cash, card or ewallet."""
    at: str
    """ISO timestamp (UTC)."""
    duplicate: bool = False
    """True when this reference had already been posted (nothing new was charged)."""


class Billing(abc.ABC):
    """The utility's billing system as the kiosk sees it."""

    @abc.abstractmethod
    async def account(self, account_no: str) -> AccountInfo:
        """Look up an account; raises :class:`UnknownAccount` if it does not exist."""

    @abc.abstractmethod
    async def post(
        self,
        reference: str,
        account_no: str,
        amount_fen: int,
        kind: PostingKind,
        channel: str,
        kiosk_id: str,
    ) -> Posting:
        """Post a payment (settles bills oldest first) or a prepayment credit; idempotent."""

    @abc.abstractmethod
    async def posting(self, reference: str) -> Posting | None:
        """The posting made under ``reference``, if any (for recovery and reconciliation)."""


class LedgerBilling(Billing):
    """The embedded billing ledger in the kiosk database.

    Args:
        db: the open kiosk database.
    """

    def __init__(self, db: Database) -> None:
        self.db = db

    async def account(self, account_no: str) -> AccountInfo:
        row = await self.db.fetchone(
            "SELECT account_no, holder_name, address, prepaid_fen FROM billing_customer "
            "WHERE account_no = ?",
            (account_no,),
        )
        if row is None:
            raise UnknownAccount(f"no electricity account {account_no}")
        due = await self.db.fetchone(
            "SELECT coalesce(sum(amount_fen - paid_fen), 0) FROM billing_bill WHERE account_no = ?",
            (account_no,),
        )
        return AccountInfo(
            account_no=row["account_no"],
            holder_name=row["holder_name"],
            address=row["address"],
            arrears_fen=int(due[0]),
            prepaid_fen=int(row["prepaid_fen"]),
        )

    async def post(
        self,
        reference: str,
        account_no: str,
        amount_fen: int,
        kind: PostingKind,
        channel: str,
        kiosk_id: str,
    ) -> Posting:
        if not isinstance(amount_fen, int) or amount_fen <= 0:
            raise BillingError(f"posting {reference}: amount must be a positive integer of fen")
        async with self.db.transaction() as tx:
            cur = await tx.execute(
                "SELECT reference, account_no, kind, amount_fen, channel, at FROM billing_posting "
                "WHERE reference = ?",
                (reference,),
            )
            existing = await cur.fetchone()
            if existing is not None:
                if (existing["account_no"], existing["amount_fen"], existing["kind"]) != (
                    account_no,
                    amount_fen,
                    kind,
                ):
                    raise BillingError(
                        f"posting {reference} already exists with different content"
                    )
                return _posting(existing, duplicate=True)
            cur = await tx.execute(
                "SELECT 1 FROM billing_customer WHERE account_no = ?", (account_no,)
            )
            if await cur.fetchone() is None:
                raise UnknownAccount(f"no electricity account {account_no}")
            remaining = amount_fen
            if kind == "payment":
                cur = await tx.execute(
                    "SELECT id, amount_fen - paid_fen AS open FROM billing_bill "
                    "WHERE account_no = ? AND paid_fen < amount_fen ORDER BY period",
                    (account_no,),
                )
                for bill in await cur.fetchall():
                    if remaining == 0:
                        break
                    take = min(remaining, int(bill["open"]))
                    await tx.execute(
                        "UPDATE billing_bill SET paid_fen = paid_fen + ? WHERE id = ?",
                        (take, bill["id"]),
                    )
                    remaining -= take
            if remaining:
                # paying more than the arrears (or a prepayment) goes to the prepaid balance
                await tx.execute(
                    "UPDATE billing_customer SET prepaid_fen = prepaid_fen + ? WHERE account_no = ?",
                    (remaining, account_no),
                )
            await tx.execute(
                "INSERT INTO billing_posting(reference, account_no, kind, amount_fen, channel, "
                "kiosk_id) VALUES (?, ?, ?, ?, ?, ?)",
                (reference, account_no, kind, amount_fen, channel, kiosk_id),
            )
            cur = await tx.execute(
                "SELECT reference, account_no, kind, amount_fen, channel, at FROM billing_posting "
                "WHERE reference = ?",
                (reference,),
            )
            return _posting(await cur.fetchone(), duplicate=False)

    async def posting(self, reference: str) -> Posting | None:
        row = await self.db.fetchone(
            "SELECT reference, account_no, kind, amount_fen, channel, at FROM billing_posting "
            "WHERE reference = ?",
            (reference,),
        )
        return _posting(row, duplicate=False) if row else None


def _posting(row: object, duplicate: bool) -> Posting:
    r = row  # sqlite3.Row
    return Posting(
        reference=r["reference"],  # type: ignore[index]
        account_no=r["account_no"],  # type: ignore[index]
        kind=r["kind"],  # type: ignore[index]
        amount_fen=int(r["amount_fen"]),  # type: ignore[index]
        channel=r["channel"],  # type: ignore[index]
        at=r["at"],  # type: ignore[index]
        duplicate=duplicate,
    )
