"""The append-only payment journal: written before every side effect, completed after it.

Each payment has a header row (``payment``) and a sequence of journal entries. A
step with a side effect (charging a card, paying out change, posting to billing)
is written as ``intent`` *before* the effect and as ``done`` or ``failed`` after
it. After a crash, a step with an intent and no outcome is exactly the step whose
effect is in doubt; recovery resolves it by asking the device or the remote side
(which are idempotent by the payment's reference) and never by guessing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from assistant.storage import Database

OPEN = "open"
CLOSE = "close"


@dataclass(frozen=True)
class JournalEntry:
    """One journal line."""

    id: int
    payment_id: str
    step: str
    state: str
    """intent, done, failed or info."""
    amount_fen: int
    detail: dict[str, Any]
    at: str


@dataclass(frozen=True)
class PaymentHeader:
    """The payment's fixed facts."""

    id: str
    account_no: str
    user_id: int | None
    method: str
    due_fen: int
    kiosk_id: str
    created_at: str


async def open_payment(
    db: Database, payment_id: str, account_no: str, user_id: int | None, method: str, due_fen: int, kiosk_id: str
) -> bool:
    """Create the payment header and its ``open`` entry; False if it already exists (idempotent)."""
    async with db.transaction() as tx:
        cur = await tx.execute("SELECT 1 FROM payment WHERE id = ?", (payment_id,))
        if await cur.fetchone() is not None:
            return False
        await tx.execute(
            "INSERT INTO payment(id, account_no, user_id, method, due_fen, kiosk_id) VALUES (?, ?, ?, ?, ?, ?)",
            (payment_id, account_no, user_id, method, due_fen, kiosk_id),
        )
        await tx.execute(
            "INSERT INTO journal(payment_id, step, state, amount_fen) VALUES (?, ?, 'done', ?)",
            (payment_id, OPEN, due_fen),
        )
    return True


async def append_in(tx: Any, payment_id: str, step: str, state: str, amount_fen: int = 0, **detail: Any) -> int:
    """Append one entry inside the open transaction ``tx``; returns its id."""
    cur = await tx.execute(
        "INSERT INTO journal(payment_id, step, state, amount_fen, detail) VALUES (?, ?, ?, ?, ?)",
        (payment_id, str(step), state, int(amount_fen), json.dumps(detail, ensure_ascii=False, sort_keys=True)),
    )
    return int(cur.lastrowid or 0)


async def append(db: Database, payment_id: str, step: str, state: str, amount_fen: int = 0, **detail: Any) -> None:
    """Append one entry (its own transaction, so it is on disk before the caller goes on)."""
    async with db.transaction() as tx:
        await append_in(tx, payment_id, step, state, amount_fen, **detail)


async def entries(db: Database, payment_id: str) -> list[JournalEntry]:
    """A payment's entries in order."""
    rows = await db.fetchall(
        "SELECT id, payment_id, step, state, amount_fen, detail, at FROM journal WHERE payment_id = ? ORDER BY id",
        (payment_id,),
    )
    return [
        JournalEntry(r["id"], r["payment_id"], r["step"], r["state"], r["amount_fen"], json.loads(r["detail"]), r["at"])
        for r in rows
    ]


async def header(db: Database, payment_id: str) -> PaymentHeader | None:
    """The payment header, or None."""
    r = await db.fetchone("SELECT * FROM payment WHERE id = ?", (payment_id,))
    if r is None:
        return None
    return PaymentHeader(r["id"], r["account_no"], r["user_id"], r["method"], r["due_fen"], r["kiosk_id"], r["created_at"])


async def unfinished(db: Database, method: str | None = None) -> list[str]:
    """Payments with no ``close`` entry (optionally of one method), oldest first."""
    sql = (
        "SELECT p.id FROM payment p WHERE NOT EXISTS "
        "(SELECT 1 FROM journal j WHERE j.payment_id = p.id AND j.step = 'close')"
    )
    params: tuple[Any, ...] = ()
    if method:
        sql += " AND p.method = ?"
        params = (method,)
    return [r[0] for r in await db.fetchall(sql + " ORDER BY p.created_at, p.rowid", params)]


def outcome(log: list[JournalEntry], step: str) -> JournalEntry | None:
    """The last ``done``/``failed`` entry of ``step``, or None if it never completed."""
    for e in reversed(log):
        if e.step == step and e.state in ("done", "failed"):
            return e
    return None


def has_intent(log: list[JournalEntry], step: str) -> bool:
    """True when ``step`` was started."""
    return any(e.step == step and e.state == "intent" for e in log)
