"""Load a payment history into a fresh kiosk database, written the way the kiosk's services write it.

``python main.py cash simulate-history --load`` uses this so reconciliation, the
planner's database path and the back-office benchmark run on a year of realistic
data without a year of real payments. Each payment becomes what the real services
leave behind:

* cash (:class:`~assistant.cash_payment.CashPaymentService`): the header and the
  journal (``open``, ``accept_on``, ``note`` intent/done or ``coin``, ``accept_off``,
  ``change``, ``payout`` intent/done per unit, ``post``, ``credit``, ``close``), the
  cash movements, the billing postings and the stored receipt (built from the
  journal by :func:`assistant.receipts.receipt_from_state`); the change is what the
  kiosk's change-making pays from the simulated cassettes (exact, no shortcuts);
* card and e-wallet (:class:`~assistant.noncash.NonCashPayments`): the journal
  (``open``, ``charge``, ``post``, ``close``), the posting and the sandbox gateway's
  charge record, which is its settlement record;
* every ``cycle_days`` before opening, a collection under dual control
  (``cash_exchange`` of the cashbox, the note store and the hopper, refilled to the
  float) and, after closing each day, the units' own counts (``cash_count``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from assistant.backoffice import BackofficeError, utc_stamp
from assistant.cash_history import Transaction
from assistant.cash_journal import Outcome, Step, replay
from assistant.cash_model import COINS, KEYS, NOTES, VALUES, Capacities, ChangeMaker, KioskCash
from assistant.cash_montecarlo import Progress
from assistant.payments import SandboxGateway
from assistant.receipts import receipt_from_state
from assistant.seed import hash_pin
from assistant.storage import Database

OPENING = time(8, 0)
"""Collections happen before the hall opens."""
CLOSING_COUNT = time(18, 30)
"""The units are counted after the hall closes."""
LOADER_STAFF = (("B900", "bank escort (loaded history)", "bank"), ("H900", "hall staff (loaded history)", "hall"))


@dataclass(frozen=True)
class LoadReport:
    """What was written."""

    payments: int
    cash_payments: int
    collections: int
    days: int
    shortfalls: int
    """Cash payments in which change could not be paid down to the 角 (credited instead)."""


class _Writer:
    """Collects rows and writes them in large batches (one transaction per day)."""

    def __init__(self, next_journal_id: int) -> None:
        self.journal_id = next_journal_id
        self.payments: list[tuple[Any, ...]] = []
        self.journal: list[tuple[Any, ...]] = []
        self.movements: list[tuple[Any, ...]] = []
        self.postings: list[tuple[Any, ...]] = []
        self.receipts: list[tuple[Any, ...]] = []
        self.charges: list[tuple[Any, ...]] = []
        self.counts: list[tuple[Any, ...]] = []
        self.exchanges: list[tuple[Any, ...]] = []

    def entry(self, rows: list[dict[str, Any]], pid: str, step: str, state: str, amount: int, at: str,
              detail: Mapping[str, Any], noncash: bool = False) -> int:
        jid = self.journal_id
        self.journal_id += 1
        text = json.dumps(dict(detail), ensure_ascii=False, sort_keys=True) if noncash else \
            json.dumps(dict(detail), sort_keys=True)
        self.journal.append((jid, pid, step, state, amount, text, at))
        rows.append({"id": jid, "step": step, "state": state, "amount_fen": amount, "detail": text, "at": at})
        return jid

    async def flush(self, db: Database) -> None:
        async with db.transaction() as tx:
            await tx.executemany("INSERT INTO payment(id, account_no, user_id, method, due_fen, kiosk_id, "
                                 "created_at) VALUES (?, ?, NULL, ?, ?, ?, ?)", self.payments)
            await tx.executemany("INSERT INTO journal(id, payment_id, step, state, amount_fen, detail, at) "
                                 "VALUES (?, ?, ?, ?, ?, ?, ?)", self.journal)
            await tx.executemany("INSERT INTO cash_movement(unit, denomination_fen, delta, reason, payment_id, at) "
                                 "VALUES (?, ?, ?, ?, ?, ?)", self.movements)
            await tx.executemany("INSERT INTO billing_posting(reference, account_no, kind, amount_fen, channel, "
                                 "kiosk_id, at) VALUES (?, ?, ?, ?, ?, ?, ?)", self.postings)
            await tx.executemany("INSERT INTO receipt(payment_id, body, at) VALUES (?, ?, ?)", self.receipts)
            await tx.executemany("INSERT INTO sandbox_charge(reference, channel, payer, amount_fen, status, "
                                 "gateway_ref, bank, reason, at) VALUES (?, ?, ?, ?, 'approved', ?, ?, '', ?)",
                                 self.charges)
            await tx.executemany("INSERT INTO cash_count(unit, denomination_fen, count, source, at) "
                                 "VALUES (?, ?, ?, 'device', ?)", self.counts)
            await tx.executemany("INSERT INTO cash_exchange(unit, state, bank_staff_id, hall_staff_id, "
                                 "expected_out, counted_out, counts_in, device_in, end_bank_staff_id, "
                                 "end_hall_staff_id, started_at, ended_at) "
                                 "VALUES (?, 'closed', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", self.exchanges)
        for bucket in (self.payments, self.journal, self.movements, self.postings, self.receipts, self.charges,
                       self.counts, self.exchanges):
            bucket.clear()


def _js(counts: Mapping[int, int]) -> str:
    return json.dumps({str(k): int(v) for k, v in sorted(counts.items())})


def _levels(kiosk: KioskCash, unit: str) -> dict[int, int]:
    return {v: kiosk.counts[i] for i, (u, v) in enumerate(KEYS) if u == unit}


async def load_history(
    db: Database,
    transactions: Sequence[Transaction],
    *,
    zone: ZoneInfo,
    float_counts: Mapping[tuple[str, int], int],
    capacities: Capacities,
    cycle_days: int,
    auto_credit_limit_fen: int = 100,
    progress: bool = False,
) -> LoadReport:
    """Write one kiosk's history into ``db`` (which must hold no payments yet).

    ``progress`` shows a progress bar over the days when loading takes more than a second.
    """
    kiosks = sorted({t.kiosk_id for t in transactions})
    if len(kiosks) != 1:
        raise BackofficeError(f"a kiosk database holds one kiosk; the history has {len(kiosks)}: "
                              f"{', '.join(kiosks) or 'none'} (choose one with --kiosk)")
    if cycle_days < 1:
        raise BackofficeError(f"--cycle-days must be at least 1, got {cycle_days}")
    if await db.fetchone("SELECT 1 FROM payment LIMIT 1") is not None:
        raise BackofficeError(f"{db.path}: the database already holds payments; load into a fresh one")
    await SandboxGateway(db, "card").ensure_schema()
    staff = await _staff(db)
    accounts = sorted({t.account_no for t in transactions})
    async with db.transaction() as tx:
        await tx.executemany("INSERT OR IGNORE INTO billing_customer(account_no, holder_name) VALUES (?, ?)",
                             [(a, f"customer {a[-4:]}") for a in accounts])
    row = await db.fetchone("SELECT coalesce(max(id), 0) FROM journal")
    w = _Writer(int(row[0]) + 1)
    start = [int(float_counts.get(k, 0)) for k in KEYS]
    kiosk = KioskCash(start, capacities, ChangeMaker(fast=False), auto_credit_limit_fen)
    counters = {"stacked": 0, "stored": 0}
    ordered = sorted(transactions, key=lambda t: t.at)
    first, last = ordered[0].day(zone), ordered[-1].day(zone)
    by_day: dict[date, list[Transaction]] = {}
    for t in ordered:
        by_day.setdefault(t.day(zone), []).append(t)
    # the units are seen for the first time: their levels open the books
    opened = utc_stamp(datetime.combine(first, OPENING, zone) - timedelta(minutes=1))
    for (unit, v), n in zip(KEYS, start, strict=True):
        w.movements.append((unit, v, n, "initial", None, opened))
    collections = shortfalls = cash_payments = 0
    day = first
    index = 0
    bar = Progress((last - first).days + 1, "loading days", progress)
    while day <= last:
        if index and index % cycle_days == 0:
            _collect(w, kiosk, start, staff, utc_stamp(datetime.combine(day, OPENING, zone)))
            collections += 1
        for t in by_day.get(day, []):
            if t.method == "cash":
                cash_payments += 1
                shortfalls += _cash(w, kiosk, counters, t)
            else:
                _noncash(w, t)
        count_at = utc_stamp(datetime.combine(day, CLOSING_COUNT, zone))
        for unit in (NOTES, COINS):
            for v, n in _levels(kiosk, unit).items():
                w.counts.append((unit, v, n, count_at))
        await w.flush(db)
        bar(1)
        day += timedelta(days=1)
        index += 1
    bar.close()
    await _books(db)
    return LoadReport(len(ordered), cash_payments, collections, index, shortfalls)


async def _staff(db: Database) -> tuple[int, int]:
    ids = []
    for no, name, role in LOADER_STAFF:
        row = await db.fetchone("SELECT id FROM staff WHERE staff_no = ?", (no,))
        if row is None:
            async with db.transaction() as tx:
                cur = await tx.execute("INSERT INTO staff(staff_no, name, role, pin_hash, active) "
                                       "VALUES (?, ?, ?, ?, 0)", (no, name, role, hash_pin(no + role)))
                ids.append(int(cur.lastrowid or 0))
        else:
            ids.append(int(row[0]))
    return ids[0], ids[1]


def _collect(w: _Writer, kiosk: KioskCash, start: Sequence[int], staff: tuple[int, int], at: str) -> None:
    """The escort's visit: the cashbox is emptied, store and hopper are set back to the float."""
    bank, hall = staff
    cashbox = dict(kiosk.cashbox)
    w.exchanges.append(("cashbox", bank, hall, _js(cashbox), _js(cashbox), _js({}), None, bank, hall, at, at))
    for v, n in cashbox.items():
        if n:
            w.movements.append(("cashbox", v, -n, "exchange_out", None, at))
    for unit in (NOTES, COINS):
        before = _levels(kiosk, unit)
        loaded = {v: start[i] for i, (u, v) in enumerate(KEYS) if u == unit}
        w.exchanges.append((unit, bank, hall, _js(before), _js(before), _js(loaded), _js(loaded), bank, hall, at,
                            at))
        for v, n in before.items():
            if n:
                w.movements.append((unit, v, -n, "exchange_out", None, at))
        for v, n in loaded.items():
            if n:
                w.movements.append((unit, v, n, "exchange_in", None, at))
    kiosk.counts[:] = list(start)
    kiosk.cashbox.clear()
    kiosk.cashbox_notes = 0
    kiosk.cash_fen = sum(v * n for v, n in zip(VALUES, start, strict=True))


def _clock(t: Transaction) -> Any:
    """Timestamps of one payment's steps: a second apart, from the payment's start."""
    base = t.at
    step = [0]

    def tick() -> str:
        step[0] += 1
        return utc_stamp(base + timedelta(seconds=step[0]))

    return tick


def _cash(w: _Writer, kiosk: KioskCash, counters: dict[str, int], t: Transaction) -> int:
    pid, rows = t.payment_id, []
    tick = _clock(t)
    created = utc_stamp(t.at)
    coin_before = _levels(kiosk, COINS)
    result = kiosk.pay(t.due_fen, t.tendered)
    if result.inserted_fen == 0:
        return 0  # every piece refused (units full): no payment
    w.payments.append((pid, t.account_no, "cash", t.due_fen, t.kiosk_id, created))
    w.entry(rows, pid, Step.OPEN, "done", t.due_fen, created, {"account_no": t.account_no})
    on = w.entry(rows, pid, Step.ACCEPT_ON, "intent", 0, created,
                 {"coin_levels": {str(k): v for k, v in coin_before.items()}})
    w.entry(rows, pid, Step.ACCEPT_ON, "done", 0, tick(), {"intent": on})
    inserted = 0
    for (unit, v), route in zip(t.tendered, result.routes, strict=True):
        if route == "refused":
            continue
        at = tick()
        if unit == NOTES:
            if result.excess_to_credit and inserted + v > t.due_fen:
                w.entry(rows, pid, Step.NOTE_REJECTED, "info", 0, at,
                        {"value": v, "reason": "change_impossible", "change_fen": inserted + v - t.due_fen,
                         "payable_fen": 0, "smaller_note_fen": 0})
                w.entry(rows, pid, Step.EXCESS_TO_CREDIT, "info", 0, at, {})
            intent = w.entry(rows, pid, Step.NOTE, "intent", 0, at, {"value": v, "counters": dict(counters)})
            counters["stored" if route == "store" else "stacked"] += 1
            w.entry(rows, pid, Step.NOTE, "done", v, at, {"value": v, "route": route, "intent": intent})
            w.movements.append((NOTES if route == "store" else "cashbox", v, 1, "stacked", pid, at))
        else:
            w.entry(rows, pid, Step.COIN, "done", v, at, {"value": v})
            w.movements.append((COINS, v, 1, "accepted", pid, at))
        inserted += v
    at = tick()
    w.entry(rows, pid, Step.ACCEPT_OFF, "done", 0, at, {"coin_levels": _coins_before_payout(kiosk, result)})
    paid = result.change_paid_fen
    if result.payout.pieces:
        by_unit: dict[str, dict[int, int]] = {}
        for i, n in result.payout.pieces:
            unit, v = KEYS[i]
            by_unit.setdefault(unit, {})[v] = n
        w.entry(rows, pid, Step.CHANGE, "info", paid, at,
                {"purpose": "change", "target_fen": result.change_due_fen,
                 "plan": {u: {str(v): n for v, n in c.items()} for u, c in by_unit.items()},
                 "remainder_fen": result.change_due_fen - paid})
        for unit in sorted(by_unit, key=lambda u: u != COINS):
            counts = by_unit[unit]
            amount = sum(v * n for v, n in counts.items())
            after = _levels(kiosk, unit)
            before = {v: n + counts.get(v, 0) for v, n in after.items()}
            at = tick()
            intent = w.entry(rows, pid, Step.PAYOUT, "intent", amount, at,
                             {"unit": unit, "purpose": "change", "counts": {str(v): n for v, n in counts.items()},
                              "levels_before": {str(v): n for v, n in before.items()}})
            at = tick()
            w.entry(rows, pid, Step.PAYOUT, "done", amount, at,
                    {"intent": intent, "unit": unit, "dispensed": {str(v): n for v, n in counts.items()},
                     "event": "dispensed", "missing": {}})
            for v, n in counts.items():
                w.movements.append((unit, v, -n, "dispensed", pid, at))
    post = min(inserted, t.due_fen)
    credit = inserted - post - paid
    if post:
        ref = f"{pid}:pay"
        at = tick()
        w.entry(rows, pid, Step.POST, "intent", post, at, {"reference": ref, "kind": "payment"})
        w.postings.append((ref, t.account_no, "payment", post, "cash", t.kiosk_id, at))
        w.entry(rows, pid, Step.POST, "done", post, at, {"reference": ref, "duplicate": False})
    if credit > 0:
        ref = f"{pid}:credit"
        at = tick()
        w.entry(rows, pid, Step.CREDIT, "intent", credit, at, {"reference": ref, "kind": "prepayment"})
        w.postings.append((ref, t.account_no, "prepayment", credit, "cash", t.kiosk_id, at))
        w.entry(rows, pid, Step.CREDIT, "done", credit, at, {"reference": ref, "duplicate": False})
    outcome = Outcome.PAID if post >= t.due_fen else Outcome.PARTIAL
    at = tick()
    w.entry(rows, pid, Step.CLOSE, "done", inserted, at,
            {"outcome": str(outcome), "change_due_fen": result.change_due_fen, "inserted_fen": inserted,
             "posted_fen": post, "paid_out_fen": paid, "credited_fen": credit})
    head = {"id": pid, "account_no": t.account_no, "due_fen": t.due_fen, "user_id": None,
            "kiosk_id": t.kiosk_id, "created_at": created}
    receipt = receipt_from_state(replay(head, rows))
    w.receipts.append((pid, receipt.to_json(), at))
    return int(result.shortfall)


def _coins_before_payout(kiosk: KioskCash, result: Any) -> dict[str, int]:
    levels = _levels(kiosk, COINS)
    for i, n in result.payout.pieces:
        unit, v = KEYS[i]
        if unit == COINS:
            levels[v] += n
    return {str(v): n for v, n in levels.items()}


def _noncash(w: _Writer, t: Transaction) -> None:
    pid, rows = t.payment_id, []
    tick = _clock(t)
    created = utc_stamp(t.at)
    w.payments.append((pid, t.account_no, t.method, t.due_fen, t.kiosk_id, created))
    w.entry(rows, pid, "open", "done", t.due_fen, created, {}, noncash=True)
    w.entry(rows, pid, "charge", "intent", t.due_fen, tick(), {"channel": t.method}, noncash=True)
    digest = hashlib.sha256(f"{pid}:{t.method}".encode()).hexdigest()
    gateway_ref = f"{t.method[:2].upper()}{digest[:16]}"
    at = tick()
    w.entry(rows, pid, "charge", "done", t.due_fen, at, {"gateway_ref": gateway_ref, "bank": t.bank}, noncash=True)
    payer = f"tok_{digest[16:40]}" if t.method == "card" else f"EW{t.account_no}"
    w.charges.append((pid, t.method, payer, t.due_fen, gateway_ref, t.bank, at))
    at = tick()
    w.entry(rows, pid, "post", "intent", t.due_fen, at, {}, noncash=True)
    w.postings.append((f"{pid}-pay", t.account_no, "payment", t.due_fen, t.method, t.kiosk_id, at))
    w.entry(rows, pid, "post", "done", t.due_fen, at, {}, noncash=True)
    w.entry(rows, pid, "close", "done", t.due_fen, tick(), {"result": "posted"}, noncash=True)


async def _books(db: Database) -> None:
    """Set the books (``cash_unit``) to what the movements add up to."""
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO cash_unit(unit, denomination_fen, count) "
            "SELECT unit, denomination_fen, max(sum(delta), 0) FROM cash_movement WHERE true "
            "GROUP BY unit, denomination_fen ON CONFLICT(unit, denomination_fen) DO UPDATE SET count = excluded.count"
        )
