"""The cash payment journal: step names, how entries are written, and how they are read back.

A cash payment is a header row in ``payment`` plus an append-only list of journal
entries. Every side effect has an ``intent`` entry written (and committed) before
it and a ``done`` or ``failed`` entry after it; ``info`` entries record what the
kiosk saw or decided. After a crash, an intent without its outcome is exactly the
set of things whose result must be read back from the hardware or from billing.

:func:`replay` folds the entries of one payment into a :class:`PaymentState`; the
payment service uses it to recover, the receipt builder to print, reconciliation
to check every fen.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import aiosqlite

from assistant import journal
from assistant.storage import Database

log = logging.getLogger(__name__)


class Step(StrEnum):
    """Journal step names of a cash payment."""

    OPEN = "open"
    """done: the payment exists (account, amount due)."""
    ACCEPT_ON = "accept_on"
    """intent/done: taking cash from the customer starts; detail holds the hopper levels before."""
    ACCEPT_OFF = "accept_off"
    """done: taking cash stopped; detail holds the hopper levels after."""
    NOTE = "note"
    """intent: a note in escrow is about to be stacked (note counters before); done: stacked; failed: handed back."""
    NOTE_REJECTED = "note_rejected"
    """info: a note was handed back before stacking (and why)."""
    COIN = "coin"
    """done: a coin was accepted."""
    EXCESS_TO_CREDIT = "excess_to_credit"
    """info: the customer chose to credit the excess instead of taking change."""
    CANCEL = "cancel"
    """info: the customer cancelled; what was inserted is paid back."""
    CHANGE = "change"
    """info: the change (or refund) plan."""
    PAYOUT = "payout"
    """intent: a unit is about to pay out (levels before); done: what it paid; failed: refused."""
    POST = "post"
    """intent/done: the bill payment posted to billing."""
    CREDIT = "credit"
    """intent/done: the prepayment credited to the electricity account."""
    FAULT = "fault"
    """info: a device fault during the payment, with the exact state."""
    LINK = "link"
    """info: replies had to be requested again (lost or corrupt) but arrived."""
    RECOVERY = "recovery"
    """info: the payment was resolved after a crash or lost port (what was found)."""
    CLOSE = "close"
    """done: the payment is finished; detail is the summary the receipt prints."""


class Outcome(StrEnum):
    """How a payment ended."""

    PAID = "paid"
    """The amount due was posted (change paid and/or credited)."""
    PARTIAL = "partial"
    """Less than the amount due was received; what came in was posted."""
    CANCELLED = "cancelled"
    """The customer cancelled; the cash was paid back (or credited)."""
    RECOVERED = "recovered"
    """Resolved after a crash or a lost unit: nothing further was paid out, the rest credited."""


async def append(
    tx: aiosqlite.Connection, payment_id: str, step: Step, state: str, amount_fen: int = 0,
    **detail: Any,
) -> int:
    """Add one journal entry inside an open transaction; returns its id."""
    return await journal.append_in(tx, payment_id, step, state, amount_fen, **detail)


async def record_movement(
    tx: aiosqlite.Connection, unit: str, value: int, delta: int, reason: str,
    payment_id: str | None = None,
) -> None:
    """Record a cash movement and keep the books (``cash_unit``) in step, inside ``tx``.

    Reasons: initial, correction, stacked, accepted, dispensed, missing, unassigned,
    exchange_out, exchange_in.
    """
    await tx.execute(
        "INSERT INTO cash_movement(unit, denomination_fen, delta, reason, payment_id) VALUES (?, ?, ?, ?, ?)",
        (str(unit), value, delta, reason, payment_id),
    )
    await tx.execute(
        "INSERT INTO cash_unit(unit, denomination_fen, count) VALUES (?, ?, max(?, 0)) "
        "ON CONFLICT(unit, denomination_fen) DO UPDATE SET count = max(count + ?, 0)",
        (str(unit), value, delta, delta),
    )


async def read_books(db: Database) -> dict[str, dict[int, int]]:
    """What the books say each unit holds: unit -> value (fen) -> count."""
    books: dict[str, dict[int, int]] = {}
    for r in await db.fetchall("SELECT unit, denomination_fen, count FROM cash_unit"):
        books.setdefault(r[0], {})[int(r[1])] = int(r[2])
    return books


async def sync_books(
    db: Database, levels: Mapping[str, Mapping[int, int]], note_values: Iterable[int], correct: bool
) -> dict[str, dict[int, int]]:
    """Open the books of units seen for the first time (their levels are the opening count);
    with ``correct``, also book the difference between the books and what the units report.

    Returns the corrections made (unit -> value -> delta). Only correct when no payment
    is open: an interrupted payment moved cash that its recovery books itself.
    """
    made: dict[str, dict[int, int]] = {}
    async with db.transaction() as tx:
        for unit, unit_levels in levels.items():
            cur = await tx.execute("SELECT denomination_fen, count FROM cash_unit WHERE unit = ?", (str(unit),))
            books = {int(r[0]): int(r[1]) for r in await cur.fetchall()}
            for value, have in unit_levels.items():
                if value not in books:
                    await tx.execute("INSERT INTO cash_unit(unit, denomination_fen, count) VALUES (?, ?, 0)",
                                     (str(unit), value))
                delta = have - books.get(value, 0)
                if delta and (correct or not books):
                    await record_movement(tx, str(unit), value, delta, "correction" if books else "initial")
                    if books:
                        made.setdefault(str(unit), {})[value] = delta
        for value in note_values:
            await tx.execute("INSERT OR IGNORE INTO cash_unit(unit, denomination_fen, count) VALUES ('cashbox', ?, 0)",
                             (value,))
    for unit, deltas in made.items():
        log.warning("cash books of %s corrected to what the unit reports: %s", unit, deltas)
    return made


@dataclass
class PayoutRecord:
    """One payout by one unit, from its intent entry and outcome."""

    intent_id: int
    unit: str
    purpose: str
    """``change`` or ``refund``."""
    counts: dict[int, int]
    """Planned pieces, fen -> count."""
    levels_before: dict[int, int]
    state: str = "intent"
    """intent (outcome unknown), done or failed."""
    dispensed: dict[int, int] = field(default_factory=dict)
    dispensed_fen: int = 0


@dataclass
class PaymentState:
    """Everything the journal says about one cash payment."""

    payment_id: str
    account_no: str = ""
    due_fen: int = 0
    user_id: int | None = None
    kiosk_id: str = ""
    opened_at: str = ""
    closed_at: str = ""
    notes: list[int] = field(default_factory=list)
    """Values of notes stacked, in order."""
    note_routes: list[tuple[int, str]] = field(default_factory=list)
    """(value, ``store`` or ``cashbox``) of each note stacked: where it went."""
    coins: list[int] = field(default_factory=list)
    """Values of coins accepted, in order."""
    pending_note: dict[str, Any] | None = None
    """The open NOTE intent (``id``, ``value``, ``counters``) if its outcome is unknown."""
    accept_window: dict[str, Any] | None = None
    """The open ACCEPT_ON (``id``, ``coin_levels``) and coins journalled since, if not closed."""
    coins_since_window: list[int] = field(default_factory=list)
    payouts: list[PayoutRecord] = field(default_factory=list)
    post: dict[str, Any] | None = None
    """The bill payment posting: ``reference``, ``amount``, ``done``."""
    credits: list[dict[str, Any]] = field(default_factory=list)
    """Prepayment postings (normally at most one): ``reference``, ``amount``, ``done``."""
    excess_to_credit: bool = False
    cancelled: bool = False
    faults: list[str] = field(default_factory=list)
    recovered: bool = False
    closed: bool = False
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def inserted_fen(self) -> int:
        """Cash taken in for good (stacked notes and accepted coins)."""
        return sum(self.notes) + sum(self.coins)

    def paid_out_fen(self, purpose: str | None = None) -> int:
        """Value handed back by completed payouts (optionally of one purpose)."""
        return sum(p.dispensed_fen for p in self.payouts if p.state == "done"
                   and (purpose is None or p.purpose == purpose))

    @property
    def credited_fen(self) -> int:
        """Prepayment credited (postings confirmed)."""
        return sum(int(c["amount"]) for c in self.credits if c["done"])

    @property
    def credit_intended_fen(self) -> int:
        """Prepayment credit decided (confirmed or not)."""
        return sum(int(c["amount"]) for c in self.credits)

    @property
    def posted_fen(self) -> int:
        """Bill payment posted (confirmed)."""
        return int(self.post["amount"]) if self.post and self.post["done"] else 0

    @property
    def open_payouts(self) -> list[PayoutRecord]:
        """Payouts whose outcome the journal does not know."""
        return [p for p in self.payouts if p.state == "intent"]

    @property
    def inserted_counts(self) -> dict[int, int]:
        """Value -> pieces inserted (notes and coins together)."""
        out: dict[int, int] = {}
        for v in self.notes + self.coins:
            out[v] = out.get(v, 0) + 1
        return out

    def dispensed_counts(self, purpose: str | None = None) -> dict[int, int]:
        """Value -> pieces paid out."""
        out: dict[int, int] = {}
        for p in self.payouts:
            if p.state == "done" and (purpose is None or p.purpose == purpose):
                for v, n in p.dispensed.items():
                    out[v] = out.get(v, 0) + n
        return out


def _ints(raw: Mapping[str, Any] | None) -> dict[int, int]:
    return {int(k): int(v) for k, v in (raw or {}).items()}


def replay(payment: Mapping[str, Any], rows: Iterable[Mapping[str, Any]]) -> PaymentState:
    """Fold a payment header and its journal rows (in id order) into a :class:`PaymentState`."""
    st = PaymentState(
        payment_id=payment["id"], account_no=payment["account_no"], due_fen=int(payment["due_fen"]),
        user_id=payment["user_id"], kiosk_id=payment["kiosk_id"], opened_at=payment["created_at"],
    )
    payouts: dict[int, PayoutRecord] = {}
    for row in rows:
        step, state, amount = row["step"], row["state"], int(row["amount_fen"])
        d = json.loads(row["detail"] or "{}")
        if step == Step.NOTE:
            if state == "intent":
                st.pending_note = {"id": row["id"], "value": d["value"], "counters": d.get("counters", {})}
            else:
                if state == "done":
                    st.notes.append(int(d["value"]))
                    st.note_routes.append((int(d["value"]), str(d.get("route", "cashbox"))))
                if st.pending_note and st.pending_note["id"] == d.get("intent"):
                    st.pending_note = None
        elif step == Step.COIN and state == "done":
            st.coins.append(amount)
            if st.accept_window is not None:
                st.coins_since_window.append(amount)
        elif step == Step.ACCEPT_ON and state == "intent":
            st.accept_window = {"id": row["id"], "coin_levels": _ints(d.get("coin_levels"))}
            st.coins_since_window = []
        elif step == Step.ACCEPT_OFF:
            st.accept_window = None
            st.coins_since_window = []
        elif step == Step.PAYOUT:
            if state == "intent":
                rec = PayoutRecord(
                    intent_id=row["id"], unit=d["unit"], purpose=d.get("purpose", "change"),
                    counts=_ints(d.get("counts")), levels_before=_ints(d.get("levels_before")),
                )
                payouts[row["id"]] = rec
                st.payouts.append(rec)
            elif d.get("intent") in payouts:
                rec = payouts[d["intent"]]
                rec.state = state
                rec.dispensed = _ints(d.get("dispensed"))
                rec.dispensed_fen = amount
        elif step == Step.POST:
            if state == "intent":
                st.post = {"reference": d.get("reference", ""), "amount": amount, "done": False}
            elif state == "done" and st.post is not None:
                st.post["done"] = True
        elif step == Step.CREDIT:
            if state == "intent":
                st.credits.append({"reference": d.get("reference", ""), "amount": amount, "done": False})
            elif state == "done":
                for slot in st.credits:
                    if slot["reference"] == d.get("reference"):
                        slot["done"] = True
        elif step == Step.EXCESS_TO_CREDIT:
            st.excess_to_credit = True
        elif step == Step.CANCEL:
            st.cancelled = True
        elif step == Step.FAULT:
            st.faults.append(f"{d.get('unit', '')}:{d.get('fault', '')}")
        elif step == Step.RECOVERY:
            st.recovered = True
        elif step == Step.CLOSE:
            st.closed = True
            st.closed_at = row["at"]
            st.summary = d
    return st


async def load(db: Database, payment_id: str) -> PaymentState | None:
    """Read one payment's journal; None if there is no such payment."""
    head = await db.fetchone("SELECT * FROM payment WHERE id = ?", (payment_id,))
    if head is None:
        return None
    rows = await db.fetchall(
        "SELECT id, step, state, amount_fen, detail, at FROM journal WHERE payment_id = ? ORDER BY id",
        (payment_id,),
    )
    return replay(head, rows)


async def open_payment_ids(db: Database) -> list[str]:
    """Cash payments without a CLOSE entry, oldest first."""
    return await journal.unfinished(db, "cash")
