"""Daily reconciliation and clearing: ``python main.py reconcile --date D``.

For one business day of one kiosk (local time: see :mod:`assistant.backoffice`) four
records must tell the same story:

1. the **payment journal** - every payment opened that day, replayed;
2. the **cash units** - books and movements per unit and denomination (start, in,
   out, end), the units' own counts taken that day and any cassette exchange;
3. the **billing postings** - what billing holds under each reference the journal
   names, and every posting the kiosk made that day;
4. the **settlement records** of the card and e-wallet gateways (the sandbox's by
   default, or settlement files from the banks).

Every mismatch becomes a :class:`Discrepancy` naming the payments involved: cash
not accounted for, a missing, double or different posting, a posting or settlement
with no payment, a settlement missing or for another amount or bank, a payment's
cash movements that differ from its journal, a unit whose count differs from its
books (with the payments that moved that denomination since the last count). The
day's takings are split by channel and bank for clearing. Reports: a printable
summary and CSV files (discrepancies, clearing, cash units, per-bank settlement
files), written together or not at all.

The checks run on rows read in one pass (:func:`read_window`), so a year reconciles
in one read; the cash payment checks are those of :mod:`assistant.cash_reconcile`.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from assistant.backoffice import (
    BackofficeError,
    OutputSet,
    backoffice_section,
    business_day,
    day_window,
    denomination,
    parse_day,
    reports_dir,
    tz,
    yuan,
)
from assistant.billing import Posting
from assistant.cash_journal import PaymentState, replay
from assistant.cash_reconcile import check_payment, posting_references
from assistant.config import Config
from assistant.payments import (
    Charge,
    PaymentGateway,
    SandboxGateway,
    read_settlement_csv,
    settlement_csv,
)
from assistant.storage import Database, database_path


class Kind(StrEnum):
    """Kinds of discrepancy."""

    PAYMENT_OPEN = "payment_open"
    """A payment of the day is not finished (money in doubt)."""
    CASH_UNACCOUNTED = "cash_unaccounted"
    """Cash in does not equal change out + posted + credited."""
    MISSING_POSTING = "missing_posting"
    """The journal posted (or credited) but billing has no such posting."""
    POSTING_AMOUNT = "posting_amount"
    """Billing holds the posting with another amount or kind."""
    DOUBLE_POSTING = "double_posting"
    """Billing holds more postings for a payment than the journal made."""
    POSTING_WITHOUT_PAYMENT = "posting_without_payment"
    """A posting made by this kiosk that day belongs to no payment."""
    RECEIPT_MISSING = "receipt_missing"
    """A finished cash payment has no stored receipt."""
    SETTLEMENT_MISSING = "settlement_missing"
    """A card or e-wallet charge the journal has is not in the settlement."""
    SETTLEMENT_AMOUNT = "settlement_amount"
    """The settlement has the charge for another amount."""
    SETTLEMENT_BANK = "settlement_bank"
    """The settlement has the charge under another bank."""
    SETTLEMENT_WITHOUT_PAYMENT = "settlement_without_payment"
    """A settled charge that no approved payment of the journal explains."""
    MOVEMENTS = "movements"
    """A payment's cash movements differ from what its journal says went in and out."""
    UNASSIGNED_CASH = "unassigned_cash"
    """Cash taken in or books corrected outside any payment."""
    UNIT_COUNT = "unit_count"
    """A unit's own count differs from the books."""
    EXCHANGE = "exchange"
    """A cassette exchange found or loaded other counts than recorded."""


@dataclass(frozen=True)
class Discrepancy:
    """One thing that does not add up, with the payments involved."""

    kind: Kind
    detail: str
    payment_ids: tuple[str, ...] = ()
    amount_fen: int = 0
    """Money concerned (signed where it is a difference: negative = short)."""
    unit: str = ""
    denomination_fen: int = 0


@dataclass(frozen=True)
class ClearingLine:
    """The day's takings of one channel and bank."""

    channel: str
    bank: str
    payments: int
    journal_fen: int
    """What the journal says the kiosk took (cash: kept after change; card/e-wallet: charged)."""
    posted_fen: int
    """What billing holds for those payments."""
    settled_fen: int | None
    """What the gateway settled (None for cash: the escort takes it to the bank)."""


@dataclass(frozen=True)
class UnitLine:
    """One denomination of one unit over the day."""

    unit: str
    denomination_fen: int
    start: int
    pieces_in: int
    pieces_out: int
    end: int
    counted: int | None = None
    """The last count of the day (the unit's own, or a hand count), if any."""
    counted_books: int | None = None
    """What the books said at the moment of that count."""

    @property
    def difference(self) -> int:
        """Counted minus books at the count (0 when not counted)."""
        return 0 if self.counted is None or self.counted_books is None else self.counted - self.counted_books


@dataclass(frozen=True)
class DayReport:
    """The reconciliation of one business day."""

    kiosk_id: str
    day: date
    payments: Mapping[str, int]
    """Payments opened that day per method."""
    cash: Mapping[str, int]
    """Cash totals (fen): inserted, change, refunded, credited, posted, kept."""
    clearing: tuple[ClearingLine, ...]
    units: tuple[UnitLine, ...]
    discrepancies: tuple[Discrepancy, ...]
    notes: tuple[str, ...] = ()
    """Facts worth knowing that are not discrepancies (e.g. settled after midnight)."""

    @property
    def ok(self) -> bool:
        """True when nothing is out."""
        return not self.discrepancies

    @property
    def takings_fen(self) -> int:
        """The day's takings over all channels (journal)."""
        return sum(c.journal_fen for c in self.clearing)


# ============================================================================ reading


@dataclass
class Window:
    """Everything reconciliation needs for a run of days, read in one pass."""

    start: str
    end: str
    payments: dict[str, Any] = field(default_factory=dict)
    journal: dict[str, list[Any]] = field(default_factory=dict)
    postings: dict[str, Posting] = field(default_factory=dict)
    """reference -> posting (the window's, plus those the window's payments name)."""
    receipts: set[str] = field(default_factory=set)
    movements: list[Any] = field(default_factory=list)
    opening: dict[tuple[str, int], int] = field(default_factory=dict)
    """Books per (unit, value) at the window's start."""
    counts: list[Any] = field(default_factory=list)
    exchanges: list[Any] = field(default_factory=list)
    settlements: dict[tuple[str, str], list[Charge]] = field(default_factory=dict)
    """(channel, reference) -> settlement records."""
    other_payments: dict[str, Any] = field(default_factory=dict)
    """Payments outside the window that postings or settlements in it name."""


async def read_window(db: Database, start: str, end: str, *, kiosk_id: str | None = None,
                      gateways: Sequence[PaymentGateway] = (), settlements: Sequence[Charge] | None = None) -> Window:
    """Read the rows of ``[start, end)`` (UTC stamps): the whole input of reconciliation, no checks."""
    w = Window(start, end)
    kf, kp = ("AND p.kiosk_id = ?", [kiosk_id]) if kiosk_id else ("", [])
    for r in await db.fetchall(f"SELECT * FROM payment p WHERE created_at >= ? AND created_at < ? {kf}",
                               [start, end, *kp]):
        w.payments[r["id"]] = r
    rows = await db.fetchall(
        "SELECT j.payment_id, j.id, j.step, j.state, j.amount_fen, j.detail, j.at FROM journal j "
        f"JOIN payment p ON p.id = j.payment_id WHERE p.created_at >= ? AND p.created_at < ? {kf} "
        "ORDER BY j.payment_id, j.id", [start, end, *kp])
    current, bucket = None, None
    for r in rows:
        if r[0] != current:
            current, bucket = r[0], []
            w.journal[current] = bucket
        bucket.append(r)  # type: ignore[union-attr]
    pk = ("AND kiosk_id = ?", [kiosk_id]) if kiosk_id else ("", [])
    for r in await db.fetchall(
        f"SELECT reference, account_no, kind, amount_fen, channel, at FROM billing_posting "
        f"WHERE at >= ? AND at < ? {pk[0]}", [start, end, *pk[1]]):
        w.postings[r[0]] = Posting(r[0], r[1], r[2], int(r[3]), r[4], r[5])
    w.receipts = {r[0] for r in await db.fetchall(
        f"SELECT r.payment_id FROM receipt r JOIN payment p ON p.id = r.payment_id "
        f"WHERE p.created_at >= ? AND p.created_at < ? {kf}", [start, end, *kp])}
    for r in await db.fetchall("SELECT unit, denomination_fen, sum(delta) FROM cash_movement WHERE at < ? "
                               "GROUP BY unit, denomination_fen", (start,)):
        w.opening[(r[0], int(r[1]))] = int(r[2])
    w.movements = await db.fetchall(
        "SELECT unit, denomination_fen, delta, reason, payment_id, at FROM cash_movement WHERE at >= ? AND at < ? "
        "ORDER BY at, id", (start, end))
    w.counts = await db.fetchall("SELECT unit, denomination_fen, count, source, at FROM cash_count "
                                 "WHERE at >= ? AND at < ? ORDER BY at, id", (start, end))
    w.exchanges = await db.fetchall("SELECT * FROM cash_exchange WHERE started_at >= ? AND started_at < ? "
                                    "ORDER BY id", (start, end))
    records: list[Charge] = list(settlements) if settlements is not None else []
    if settlements is None:
        for g in gateways:
            records += await g.settlements_between(start, end)
    for c in records:
        w.settlements.setdefault((c.channel, c.reference), []).append(c)
    await _names(db, w)
    return w


async def _names(db: Database, w: Window) -> None:
    """Postings the window's payments name but posted later, and payments the window's records name."""
    wanted = []
    for pid, head in w.payments.items():
        if head["method"] == "cash":
            continue
        ref = f"{pid}-pay"
        if ref not in w.postings:
            wanted.append(ref)
    for pid, rows in w.journal.items():
        if w.payments[pid]["method"] != "cash":
            continue
        for r in rows:
            if r["step"] in ("post", "credit") and r["state"] == "intent":
                ref = json.loads(r["detail"]).get("reference", "")
                if ref and ref not in w.postings:
                    wanted.append(ref)
    for chunk in _chunks(wanted, 500):
        marks = ",".join("?" * len(chunk))
        for r in await db.fetchall("SELECT reference, account_no, kind, amount_fen, channel, at FROM billing_posting "
                                   f"WHERE reference IN ({marks})", chunk):
            w.postings[r[0]] = Posting(r[0], r[1], r[2], int(r[3]), r[4], r[5])
    unknown = {payment_of(ref) for ref in w.postings} | {ref for _, ref in w.settlements}
    unknown -= set(w.payments)
    for chunk in _chunks(sorted(unknown), 500):
        marks = ",".join("?" * len(chunk))
        for r in await db.fetchall(f"SELECT * FROM payment WHERE id IN ({marks})", chunk):
            w.other_payments[r["id"]] = r


def _chunks(xs: Sequence[str], n: int) -> Iterable[list[str]]:
    for i in range(0, len(xs), n):
        yield list(xs[i:i + n])


def payment_of(reference: str) -> str:
    """The payment id a billing reference belongs to (``pid:pay``, ``pid:credit-2``, ``pid-pay``)."""
    if ":" in reference:
        return reference.split(":", 1)[0]
    if reference.endswith("-pay"):
        return reference[:-4]
    return reference


# ============================================================================ checking


def reconcile_window(w: Window, days: Sequence[date], zone: ZoneInfo, kiosk_id: str) -> list[DayReport]:
    """Reconcile each of ``days`` from one window (which covers them with a margin)."""
    by_day: dict[date, list[str]] = defaultdict(list)
    for pid, head in w.payments.items():
        by_day[business_day(head["created_at"], zone)].append(pid)
    postings_by_payment: dict[str, list[Posting]] = defaultdict(list)
    strays: dict[date, list[Posting]] = defaultdict(list)
    for p in w.postings.values():
        owner = payment_of(p.reference)
        postings_by_payment[owner].append(p)
        if owner not in w.payments:  # only these can be postings without a payment of their day
            strays[business_day(p.at, zone)].append(p)
    stray_settlements: dict[date, list[Charge]] = defaultdict(list)
    for (_, ref), recs in w.settlements.items():
        if ref not in w.payments:
            for c in recs:
                stray_settlements[business_day(c.at, zone)].append(c)
    counts: dict[date, list[Any]] = defaultdict(list)
    for c in w.counts:
        counts[business_day(c["at"], zone)].append(c)
    exchanges: dict[date, list[Any]] = defaultdict(list)
    for x in w.exchanges:
        exchanges[business_day(x["started_at"], zone)].append(x)
    balance = dict(w.opening)
    moves = iter(w.movements)
    pending = next(moves, None)
    reports = []
    for day in sorted(days):
        start, end = day_window(day, zone)
        # movements before the day (in the margin) only move the opening balance
        while pending is not None and pending["at"] < start:
            key = (pending["unit"], int(pending["denomination_fen"]))
            balance[key] = balance.get(key, 0) + int(pending["delta"])
            pending = next(moves, None)
        todays = []
        while pending is not None and pending["at"] < end:
            todays.append(pending)
            pending = next(moves, None)
        reports.append(_day(w, day, start, end, sorted(by_day.get(day, [])), postings_by_payment, balance, todays,
                            kiosk_id, strays.get(day, []), stray_settlements.get(day, []), counts.get(day, []),
                            exchanges.get(day, [])))
        for m in todays:
            key = (m["unit"], int(m["denomination_fen"]))
            balance[key] = balance.get(key, 0) + int(m["delta"])
    return reports


def _day(w: Window, day: date, start: str, end: str, pids: Sequence[str],
         postings_by_payment: Mapping[str, list[Posting]], opening: Mapping[tuple[str, int], int],
         movements: Sequence[Any], kiosk_id: str, strays: Sequence[Posting], stray_settlements: Sequence[Charge],
         counts: Sequence[Any], exchanges: Sequence[Any]) -> DayReport:
    found: list[Discrepancy] = []
    notes: list[str] = []
    methods: dict[str, int] = defaultdict(int)
    cash = dict.fromkeys(("inserted", "change", "refunded", "credited", "posted", "kept"), 0)
    clearing: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # payments, journal, posted, settled
    moved_by_payment: dict[str, dict[tuple[str, int], int]] = defaultdict(lambda: defaultdict(int))
    for m in movements:
        if m["payment_id"]:
            moved_by_payment[m["payment_id"]][(m["unit"], int(m["denomination_fen"]))] += int(m["delta"])
    expected_refs: set[str] = set()
    for pid in pids:
        head = w.payments[pid]
        methods[head["method"]] += 1
        rows = w.journal.get(pid, [])
        if head["method"] == "cash":
            st = replay(head, rows)
            expected_refs.update(posting_references(st))
            line, problems = check_payment(st, {r: w.postings.get(r) for r in posting_references(st)},
                                           pid in w.receipts)
            found += [_cash_problem(p) for p in problems]
            cash["inserted"] += st.inserted_fen
            cash["change"] += st.paid_out_fen("change")
            cash["refunded"] += st.paid_out_fen("refund")
            cash["credited"] += st.credited_fen
            cash["posted"] += st.posted_fen
            kept = st.inserted_fen - st.paid_out_fen()
            cash["kept"] += kept
            c = clearing[("cash", "")]
            c[0] += 1
            c[1] += kept
            c[2] += sum(p.amount_fen for p in postings_by_payment.get(pid, []))
            found += _movements(st, moved_by_payment.get(pid, {}))
            found += _extra_postings(pid, postings_by_payment.get(pid, []), set(posting_references(st)))
        else:
            found += _noncash(w, head, rows, postings_by_payment.get(pid, []), clearing, notes, start, end)
            expected_refs.add(f"{pid}-pay")
    # postings made that day that no payment of the window explains
    for p in strays:
        owner = payment_of(p.reference)
        if owner in w.other_payments:
            notes.append(f"posting {p.reference} ({yuan(p.amount_fen)}) on this day belongs to payment {owner} "
                         f"of {w.other_payments[owner]['created_at'][:10]}")
            continue
        twin = _twin(p, pids, w, postings_by_payment)
        if twin:
            found.append(Discrepancy(Kind.DOUBLE_POSTING, f"posting {p.reference} repeats the posting of payment "
                                     f"{twin} ({yuan(p.amount_fen)} yuan to {p.account_no})", (twin,), p.amount_fen))
        else:
            found.append(Discrepancy(Kind.POSTING_WITHOUT_PAYMENT, f"posting {p.reference} of {yuan(p.amount_fen)} "
                                     f"yuan to {p.account_no} belongs to no payment", (), p.amount_fen))
    # settled charges that no payment of the window explains
    for c in stray_settlements:
        ref, channel = c.reference, c.channel
        head = w.other_payments.get(ref)
        if head is None:
            found.append(Discrepancy(Kind.SETTLEMENT_WITHOUT_PAYMENT, f"{channel} settlement {c.gateway_ref} of "
                                     f"{yuan(c.amount_fen)} yuan ({c.bank}) names payment {ref}, which the "
                                     f"journal does not have", (ref,), c.amount_fen))
        else:
            notes.append(f"{channel} settlement of payment {ref} (opened {head['created_at'][:10]}) "
                         f"settled on this day")
    found += [_unassigned(m) for m in movements if not m["payment_id"] and m["reason"] in ("unassigned", "correction")]
    units, unit_problems = _units(opening, movements, counts, moved_by_payment)
    found += unit_problems
    found += _exchanges(exchanges)
    lines = tuple(ClearingLine(ch, bank, v[0], v[1], v[2], None if ch == "cash" else v[3])
                  for (ch, bank), v in sorted(clearing.items()))
    return DayReport(kiosk_id, day, dict(methods), cash, lines, tuple(units), tuple(found), tuple(notes))


def _cash_problem(p: Any) -> Discrepancy:
    kind = {"open": Kind.PAYMENT_OPEN, "unaccounted": Kind.CASH_UNACCOUNTED, "missing_posting": Kind.MISSING_POSTING,
            "posting_amount": Kind.POSTING_AMOUNT, "receipt_missing": Kind.RECEIPT_MISSING}[p.kind]
    return Discrepancy(kind, p.message, (p.payment_id,), p.amount_fen)


def _extra_postings(pid: str, postings: Sequence[Posting], expected: set[str]) -> list[Discrepancy]:
    out = []
    for p in postings:
        if p.reference in expected:
            continue
        kind = Kind.DOUBLE_POSTING if p.kind == "payment" and any(
            q.kind == "payment" and q.reference in expected for q in postings) else Kind.POSTING_WITHOUT_PAYMENT
        what = "a second payment posting" if kind == Kind.DOUBLE_POSTING else "a posting its journal did not make"
        out.append(Discrepancy(kind, f"{pid}: billing holds {what}: {p.reference}, {yuan(p.amount_fen)} yuan "
                               f"{p.kind} to {p.account_no}", (pid,), p.amount_fen))
    return out


def _twin(p: Posting, pids: Sequence[str], w: Window, postings_by_payment: Mapping[str, list[Posting]]) -> str:
    """A payment of the day that already has a posting like ``p`` (same account, amount and kind)."""
    for pid in pids:
        if w.payments[pid]["account_no"] != p.account_no:
            continue
        for q in postings_by_payment.get(pid, []):
            if q.amount_fen == p.amount_fen and q.kind == p.kind:
                return pid
    return ""


def _movements(st: PaymentState, moved: Mapping[tuple[str, int], int]) -> list[Discrepancy]:
    """A cash payment's movements against its journal (what went into which unit, what came out)."""
    want: dict[tuple[str, int], int] = defaultdict(int)
    for row_route, value in st_routes(st):
        want[(row_route, value)] += 1
    for p in st.payouts:
        if p.state == "done":
            for v, n in p.dispensed.items():
                want[(p.unit, v)] -= n
    diff = {k: moved.get(k, 0) - want.get(k, 0) for k in set(want) | set(moved)}
    out = []
    for (unit, value), d in sorted(diff.items()):
        if d:
            out.append(Discrepancy(Kind.MOVEMENTS, f"{st.payment_id}: {unit} {denomination(value)} yuan moved "
                                   f"{moved.get((unit, value), 0):+d} but the journal says {want.get((unit, value), 0):+d}",
                                   (st.payment_id,), d * value, unit, value))
    return out


def st_routes(st: PaymentState) -> list[tuple[str, int]]:
    """(unit, value) for each note stacked and coin accepted by a payment."""
    return [("notes" if r == "store" else "cashbox", v) for v, r in st.note_routes] + [("coins", v) for v in st.coins]


def _noncash(w: Window, head: Any, rows: Sequence[Any], postings: Sequence[Posting],
             clearing: dict[tuple[str, str], list[int]], notes: list[str], start: str, end: str) -> list[Discrepancy]:
    pid, method = head["id"], head["method"]
    steps = [(r["step"], r["state"]) for r in rows]
    charge = next((r for r in reversed(rows) if r["step"] == "charge" and r["state"] in ("done", "failed")), None)
    out: list[Discrepancy] = []
    records = w.settlements.get((method, pid), [])
    if charge is None:
        if ("charge", "intent") in steps:
            out.append(Discrepancy(Kind.PAYMENT_OPEN, f"{pid}: {method} charge of {yuan(int(head['due_fen']))} yuan "
                                   f"undecided (no answer from the gateway yet)", (pid,), int(head["due_fen"])))
        return out
    if charge["state"] == "failed":
        for c in records:
            out.append(Discrepancy(Kind.SETTLEMENT_WITHOUT_PAYMENT, f"{pid}: declined in the journal but settled by "
                                   f"{c.bank}: {yuan(c.amount_fen)} yuan ({c.gateway_ref})", (pid,), c.amount_fen))
        return out
    d = json.loads(charge["detail"] or "{}")
    amount, bank = int(charge["amount_fen"]), d.get("bank", "")
    line = clearing[(method, bank)]
    line[0] += 1
    line[1] += amount
    line[2] += sum(p.amount_fen for p in postings)
    if not records:
        out.append(Discrepancy(Kind.SETTLEMENT_MISSING, f"{pid}: {method} charge {d.get('gateway_ref', '')} of "
                               f"{yuan(amount)} yuan ({bank}) is not in the settlement", (pid,), amount))
    else:
        settled = sum(c.amount_fen for c in records)
        line[3] += settled
        c = records[0]
        if len(records) > 1:
            out.append(Discrepancy(Kind.SETTLEMENT_AMOUNT, f"{pid}: settled {len(records)} times, "
                                   f"{yuan(settled)} yuan for a charge of {yuan(amount)}", (pid,), settled - amount))
        elif c.amount_fen != amount:
            out.append(Discrepancy(Kind.SETTLEMENT_AMOUNT, f"{pid}: settlement {c.gateway_ref} is "
                                   f"{yuan(c.amount_fen)} yuan, the journal charged {yuan(amount)}",
                                   (pid,), c.amount_fen - amount))
        if c.bank != bank:
            out.append(Discrepancy(Kind.SETTLEMENT_BANK, f"{pid}: settled under {c.bank or '(none)'}, the journal "
                                   f"says {bank or '(none)'}", (pid,), c.amount_fen))
        if not start <= c.at < end:
            notes.append(f"{method} payment {pid} settled on {c.at[:10]} (UTC), another day than it was opened")
    closed = ("close", "done") in steps
    posted = [r for r in rows if r["step"] == "post" and r["state"] == "done"]
    ref = f"{pid}-pay"
    if not closed or not posted:
        out.append(Discrepancy(Kind.PAYMENT_OPEN, f"{pid}: charged {yuan(amount)} yuan by {method} but not posted "
                               f"to billing yet", (pid,), amount))
    else:
        p = next((q for q in postings if q.reference == ref), None)
        if p is None:
            out.append(Discrepancy(Kind.MISSING_POSTING, f"{pid}: billing has no payment posting of {yuan(amount)} "
                                   f"yuan ({ref})", (pid,), amount))
        elif p.amount_fen != amount or p.kind != "payment":
            out.append(Discrepancy(Kind.POSTING_AMOUNT, f"{pid}: billing posted {yuan(p.amount_fen)} yuan as "
                                   f"{p.kind} under {ref}; the charge was {yuan(amount)}", (pid,),
                                   p.amount_fen - amount))
    out += _extra_postings(pid, postings, {ref})
    return out


def _unassigned(m: Any) -> Discrepancy:
    v, d = int(m["denomination_fen"]), int(m["delta"])
    what = "taken in with no payment open" if m["reason"] == "unassigned" else "corrected to the unit's own count"
    return Discrepancy(Kind.UNASSIGNED_CASH, f"{m['unit']} {denomination(v)} yuan x {d:+d} {what} at {m['at']}",
                       (), d * v, m["unit"], v)


def _units(opening: Mapping[tuple[str, int], int], movements: Sequence[Any], counts: Sequence[Any],
           moved_by_payment: Mapping[str, Mapping[tuple[str, int], int]]
           ) -> tuple[list[UnitLine], list[Discrepancy]]:
    by_key: dict[tuple[str, int], list[Any]] = defaultdict(list)
    for m in movements:
        by_key[(m["unit"], int(m["denomination_fen"]))].append(m)
    keys = {k for k, v in opening.items() if v} | set(by_key)
    keys |= {(c["unit"], int(c["denomination_fen"])) for c in counts}
    last_count: dict[tuple[str, int], Any] = {}
    for c in counts:
        last_count[(c["unit"], int(c["denomination_fen"]))] = c
    lines, problems = [], []
    order = {"notes": 0, "cashbox": 1, "coins": 2}
    for key in sorted(keys, key=lambda k: (order.get(k[0], 9), -k[1])):
        mine = by_key.get(key, [])
        start_n = opening.get(key, 0)
        pin = sum(int(m["delta"]) for m in mine if int(m["delta"]) > 0)
        pout = -sum(int(m["delta"]) for m in mine if int(m["delta"]) < 0)
        counted = books_then = None
        c = last_count.get(key)
        if c is not None:
            counted = int(c["count"])
            books_then = start_n + sum(int(m["delta"]) for m in mine if m["at"] <= c["at"])
        line = UnitLine(key[0], key[1], start_n, pin, pout, start_n + pin - pout, counted, books_then)
        lines.append(line)
        if line.difference:
            since = [pid for pid, moved in moved_by_payment.items() if moved.get(key)]
            shown = ", ".join(sorted(since)[:20]) + (f" and {len(since) - 20} more" if len(since) > 20 else "")
            short = "short" if line.difference < 0 else "over"
            problems.append(Discrepancy(
                Kind.UNIT_COUNT,
                f"{key[0]} {denomination(key[1])} yuan: the {c['source']} count at {c['at']} found {counted}, the "
                f"books say {books_then}: {short} by {abs(line.difference)} ({yuan(abs(line.difference) * key[1])} "
                f"yuan); payments that moved it that day: {shown or 'none'}",
                tuple(sorted(since)), line.difference * key[1], key[0], key[1]))
    return lines, problems


def _exchanges(rows: Sequence[Any]) -> list[Discrepancy]:
    from assistant.cassette import report_from_row

    out = []
    for row in rows:
        r = report_from_row(row)
        for title, diff in (("found at opening", r.difference_out), ("after loading", r.difference_in)):
            for v, d in diff.items():
                out.append(Discrepancy(Kind.EXCHANGE, f"cassette exchange {r.exchange_id} of {r.unit}: {title} "
                                       f"{d:+d} x {denomination(v)} yuan against the record", (), d * v, r.unit, v))
    return out


# ============================================================================ running


async def reconcile_days(
    db: Database, first: date, last: date, *, zone: ZoneInfo, kiosk_id: str | None = None,
    gateways: Sequence[PaymentGateway] | None = None, settlements: Sequence[Charge] | None = None,
    require_data: bool = True,
) -> list[DayReport]:
    """Reconcile every business day from ``first`` to ``last`` (one read for all of them).

    Raises :class:`BackofficeError` when ``require_data`` and the days have nothing at
    all (no payment, posting, settlement, movement or count): that is a wrong date, not
    a clean day.
    """
    if last < first:
        raise BackofficeError(f"--to {last} is before --date {first}")
    start, _ = day_window(first - timedelta(days=1), zone)
    _, end = day_window(last + timedelta(days=1), zone)
    if gateways is None:
        gateways = await sandbox_gateways(db)
    w = await read_window(db, start, end, kiosk_id=kiosk_id, gateways=gateways, settlements=settlements)
    kiosk = kiosk_id or _kiosk_of(w) or ""
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    reports = reconcile_window(w, days, zone, kiosk)
    if require_data and all(_empty(r) for r in reports):
        # a quiet day inside a run of days is reported as such; a date (or run) with nothing is a wrong date
        span = await data_span(db, zone)
        where = f"; the database has data from {span[0]} to {span[1]}" if span else "; the database has no payments"
        when = str(first) if first == last else f"{first} .. {last}"
        raise BackofficeError(f"--date: no payments, postings, settlements or cash movements on {when}{where}")
    return reports


def _empty(r: DayReport) -> bool:
    return not r.payments and not r.discrepancies and not any(u.pieces_in or u.pieces_out or u.counted is not None
                                                              for u in r.units) and not r.clearing


def _kiosk_of(w: Window) -> str:
    ids = {h["kiosk_id"] for h in w.payments.values()}
    return ids.pop() if len(ids) == 1 else ""


async def data_span(db: Database, zone: ZoneInfo) -> tuple[date, date] | None:
    """First and last business day with a payment."""
    row = await db.fetchone("SELECT min(created_at), max(created_at) FROM payment")
    if row is None or row[0] is None:
        return None
    return business_day(row[0], zone), business_day(row[1], zone)


async def sandbox_gateways(db: Database) -> list[PaymentGateway]:
    """The embedded sandbox bank and e-wallet, when their tables exist."""
    row = await db.fetchone("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sandbox_charge'")
    if row is None:
        return []
    return [SandboxGateway(db, "card"), SandboxGateway(db, "ewallet")]


async def record_unit_counts(db: Database, levels: Mapping[str, Mapping[int, int]], source: str = "device") -> None:
    """Record what the units report (unit -> value -> pieces): the counts reconciliation checks the books against.

    The runtime calls this after closing (and staff may record a hand count of the
    cashbox with ``source="hand"``).
    """
    if source not in ("device", "hand"):
        raise ValueError("source is device or hand")
    async with db.transaction() as tx:
        for unit, counts in levels.items():
            for value, n in counts.items():
                if n < 0:
                    raise BackofficeError(f"{unit} {value} fen: count {n} is negative")
                await tx.execute("INSERT INTO cash_count(unit, denomination_fen, count, source) VALUES (?, ?, ?, ?)",
                                 (str(unit), int(value), int(n), source))


# ============================================================================ reports


def discrepancy_rows(reports: Sequence[DayReport]) -> list[dict[str, str]]:
    """Discrepancies as CSV rows."""
    return [{"day": str(r.day), "kiosk_id": r.kiosk_id, "kind": str(d.kind), "payment_ids": " ".join(d.payment_ids),
             "amount": yuan(d.amount_fen), "unit": d.unit,
             "denomination": denomination(d.denomination_fen) if d.denomination_fen else "", "detail": d.detail}
            for r in reports for d in r.discrepancies]


def clearing_rows(reports: Sequence[DayReport]) -> list[dict[str, str]]:
    """Clearing lines as CSV rows."""
    return [{"day": str(r.day), "kiosk_id": r.kiosk_id, "channel": c.channel, "bank": c.bank,
             "payments": str(c.payments), "journal": yuan(c.journal_fen), "posted": yuan(c.posted_fen),
             "settled": "" if c.settled_fen is None else yuan(c.settled_fen)}
            for r in reports for c in r.clearing]


def unit_rows(reports: Sequence[DayReport]) -> list[dict[str, str]]:
    """Cash unit lines as CSV rows."""
    return [{"day": str(r.day), "kiosk_id": r.kiosk_id, "unit": u.unit, "denomination": denomination(u.denomination_fen),
             "start": str(u.start), "in": str(u.pieces_in), "out": str(u.pieces_out), "end": str(u.end),
             "counted": "" if u.counted is None else str(u.counted),
             "books_at_count": "" if u.counted_books is None else str(u.counted_books),
             "difference": str(u.difference)}
            for r in reports for u in r.units]


_HEADERS = {
    "discrepancies": ("day", "kiosk_id", "kind", "payment_ids", "amount", "unit", "denomination", "detail"),
    "clearing": ("day", "kiosk_id", "channel", "bank", "payments", "journal", "posted", "settled"),
    "cash_units": ("day", "kiosk_id", "unit", "denomination", "start", "in", "out", "end", "counted",
                   "books_at_count", "difference"),
}


def _csv(name: str, rows: Sequence[Mapping[str, str]]) -> str:
    buf = io.StringIO()
    wr = csv.DictWriter(buf, fieldnames=list(_HEADERS[name]), lineterminator="\n")
    wr.writeheader()
    wr.writerows(rows)
    return buf.getvalue()


def summary(r: DayReport) -> str:
    """The printable summary of one day."""
    total = sum(r.payments.values())
    lines = [f"reconciliation of kiosk {r.kiosk_id}, business day {r.day} (local time)", "=" * 72,
             f"payments opened: {total} (" + ", ".join(f"{m} {n}" for m, n in sorted(r.payments.items())) + ")",
             f"cash: inserted {yuan(r.cash['inserted'])}, change {yuan(r.cash['change'])}, refunded "
             f"{yuan(r.cash['refunded'])}; kept {yuan(r.cash['kept'])} yuan (posted to bills "
             f"{yuan(r.cash['posted'])}, credited as prepayment {yuan(r.cash['credited'])})", "",
             "clearing (yuan; posted includes the prepayments)",
             f"  {'channel':<8} {'bank':<8} {'payments':>8} {'journal':>12} {'posted':>12} {'settled':>12}"]
    for c in r.clearing:
        settled = "escort" if c.settled_fen is None else yuan(c.settled_fen)
        lines.append(f"  {c.channel:<8} {c.bank or '-':<8} {c.payments:>8} {yuan(c.journal_fen):>12} "
                     f"{yuan(c.posted_fen):>12} {settled:>12}")
    lines.append(f"  {'total':<8} {'':<8} {sum(c.payments for c in r.clearing):>8} {yuan(r.takings_fen):>12} "
                 f"{yuan(sum(c.posted_fen for c in r.clearing)):>12}")
    lines += ["", "cash units (pieces)",
              f"  {'unit':<8} {'denom':>6} {'start':>7} {'in':>6} {'out':>6} {'end':>7} {'counted':>8} {'diff':>5}"]
    for u in r.units:
        counted = "" if u.counted is None else str(u.counted)
        lines.append(f"  {u.unit:<8} {denomination(u.denomination_fen):>6} {u.start:>7} {u.pieces_in:>6} "
                     f"{u.pieces_out:>6} {u.end:>7} {counted:>8} {u.difference or '':>5}")
    lines.append("")
    if r.ok:
        lines.append(f"NO DISCREPANCY: every payment, posting, settlement and cash movement of {r.day} agrees; "
                     f"takings {yuan(r.takings_fen)} yuan.")
    else:
        lines.append(f"{len(r.discrepancies)} DISCREPANCIES:")
        for d in r.discrepancies:
            lines.append(f"  [{d.kind}] {d.detail}")
    if r.notes:
        lines += ["", "notes:"] + [f"  {n}" for n in r.notes]
    return "\n".join(lines) + "\n"


def range_summary(reports: Sequence[DayReport]) -> str:
    """One line per day for a run of days."""
    lines = [f"reconciliation of kiosk {reports[0].kiosk_id}, {reports[0].day} .. {reports[-1].day}",
             f"  {'day':<12} {'payments':>8} {'takings':>14} {'discrepancies':>14}"]
    for r in reports:
        lines.append(f"  {str(r.day):<12} {sum(r.payments.values()):>8} {yuan(r.takings_fen):>14} "
                     f"{len(r.discrepancies) or 'none':>14}")
    bad = sum(1 for r in reports if not r.ok)
    lines.append(f"{len(reports)} day(s), {bad} with discrepancies; takings "
                 f"{yuan(sum(r.takings_fen for r in reports))} yuan")
    return "\n".join(lines) + "\n"


def settlement_files(w_records: Iterable[Charge]) -> dict[tuple[str, str], str]:
    """Per (channel, bank): the settlement file of those records."""
    groups: dict[tuple[str, str], list[Charge]] = defaultdict(list)
    for c in w_records:
        groups[(c.channel, c.bank)].append(c)
    return {k: settlement_csv(sorted(v, key=lambda c: c.at)) for k, v in sorted(groups.items())}


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``reconcile`` arguments."""
    parser.add_argument("--date", required=True, help="business day YYYY-MM-DD (local time)")
    parser.add_argument("--to", help="last day of a run of days (default: --date only)")
    parser.add_argument("--db", help="database file (default: [storage] path)")
    parser.add_argument("--kiosk", help="kiosk id (default: the kiosk in the database)")
    parser.add_argument("--out", help="report folder (default: <data>/<[backoffice] reports_dir>/reconcile)")
    parser.add_argument("--settlements", action="append", default=[], metavar="FILE",
                        help="bank settlement file(s) instead of the sandbox gateways (repeatable)")
    parser.add_argument("--quiet", action="store_true", help="print only the result line")
    parser.set_defaults(func=lambda args, config: asyncio.run(run(args, config)))


async def run(args: argparse.Namespace, config: Config) -> int:
    """``reconcile``: 0 when every day agrees, 3 when there are discrepancies, 2 on bad input."""
    try:
        return await _run(args, config)
    except BackofficeError as exc:
        print(f"reconcile: {exc}", file=sys.stderr)
        return 2


async def _run(args: argparse.Namespace, config: Config) -> int:
    section = backoffice_section(config)
    zone = tz(section)
    first = parse_day(args.date, "--date")
    last = parse_day(args.to, "--to") if args.to else first
    settlements: list[Charge] | None = None
    if args.settlements:
        from assistant.errors import PaymentError

        settlements = []
        for path in args.settlements:
            try:
                settlements += read_settlement_csv(path)
            except PaymentError as exc:
                raise BackofficeError(str(exc)) from None
    path = Path(args.db) if args.db else database_path(config)
    if not path.exists():
        raise BackofficeError(f"--db: {path} does not exist")
    async with Database(path) as db:
        reports = await reconcile_days(db, first, last, zone=zone, kiosk_id=args.kiosk, settlements=settlements)
        start, end = day_window(first, zone)[0], day_window(last, zone)[1]
        records = settlements if settlements is not None else [
            c for g in await sandbox_gateways(db) for c in await g.settlements_between(start, end)]
    kiosk = reports[0].kiosk_id or "kiosk"
    folder = Path(args.out) if args.out else reports_dir(config) / "reconcile"
    stem = f"{kiosk}-{first}" + (f"-to-{last}" if last != first else "")
    out = OutputSet()
    text = summary(reports[0]) if len(reports) == 1 else range_summary(reports) + "\n" + "\n".join(
        summary(r) for r in reports if not r.ok)
    out.add(folder / f"{stem}-summary.txt", text)
    out.add(folder / f"{stem}-discrepancies.csv", _csv("discrepancies", discrepancy_rows(reports)))
    out.add(folder / f"{stem}-clearing.csv", _csv("clearing", clearing_rows(reports)))
    out.add(folder / f"{stem}-cash-units.csv", _csv("cash_units", unit_rows(reports)))
    for (channel, bank), body in settlement_files(records).items():
        out.add(folder / f"{stem}-settlement-{channel}-{bank or 'none'}.csv", body)
    written = out.commit()
    bad = [r for r in reports if not r.ok]
    if not args.quiet:
        print(text, end="")
    print(f"{len(reports)} day(s) reconciled, {len(bad)} with discrepancies; reports in {folder} "
          f"({len(written)} files)")
    return 3 if bad else 0
