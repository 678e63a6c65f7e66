"""Cash payment driven by the journal: take notes and coins, give change, post, never lose a fen.

One :class:`CashPaymentService` runs the kiosk's two cash units (note recycler and
coin hopper). For each payment it:

1. opens the payment (journal ``open``) and starts taking cash (``accept_on``, with
   the hopper levels before, so coins that arrive while the kiosk is down are found);
2. for each note in escrow decides, while holding it, whether change can be given
   from the real cassette counts (:mod:`assistant.change`); if not, the note goes
   back **before** it is stacked and the dialog offers a smaller note or crediting
   the excess; otherwise ``note`` intent (with the unit's lifetime counters), stack,
   and ``note`` done only when the unit reports it stacked or stored;
3. when enough is in, stops taking cash, pays the change unit by unit (``payout``
   intent with the levels before, a test payout, the real payout, ``payout`` done
   with what the levels say left the unit); a unit that fails part-way is replaced
   by the other unit where possible;
4. posts the bill payment and credits what could not be paid out (the 分, an empty
   hopper, or the excess the customer chose to credit) as prepayment, each behind an
   intent and with an idempotent billing reference; then ``close`` and the receipt.

After a crash (or a unit that stopped answering) :meth:`recover` resolves every
open payment from the journal plus the hardware: the note counters say whether a
note in flight was stacked, the hopper levels say which coins came in, the levels
before and after an interrupted payout say what was paid. It never pays out cash
on recovery (the customer may be gone): what is owed back is credited to the
account, announced and printed on the receipt.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from assistant import audit, cash_journal
from assistant.billing import Billing
from assistant.cash_journal import Outcome, PaymentState, Step, record_movement, sync_books
from assistant.change import best_change
from assistant.dialog import CashPayments
from assistant.errors import (
    BillingError,
    CashDeviceError,
    CashDeviceNotResponding,
    CashPaymentBusy,
    CashPayoutRefused,
    CashPortLost,
    CashUnitLocked,
    PaymentError,
)
from assistant.messages import CashEvent, CashEventKind
from assistant.receipts import ReceiptData, receipt_from_state
from assistant.storage import Database
from devices.cash import (
    BUSY_KINDS,
    CashConfig,
    CashDevice,
    DeviceEvent,
    DeviceEventKind,
    Unit,
)

log = logging.getLogger(__name__)

PAYOUT_END_KINDS = frozenset(
    {
        DeviceEventKind.DISPENSED,
        DeviceEventKind.TIMEOUT,
        DeviceEventKind.INCOMPLETE_PAYOUT,
        DeviceEventKind.HALTED,
        DeviceEventKind.PAYOUT_JAM,
    }
)
UNIT_FAULTS = frozenset(
    {
        DeviceEventKind.NOTE_JAM,
        DeviceEventKind.STACKER_FULL,
        DeviceEventKind.CASHBOX_REMOVED,
        DeviceEventKind.COIN_JAM,
        DeviceEventKind.FRAUD,
        DeviceEventKind.OUT_OF_SERVICE,
        DeviceEventKind.DEVICE_FULL,
    }
)
SMALLEST_PAYABLE_FEN = 10
"""No 分 coins: change below one 角 is always credited."""


class CashPaymentPending(PaymentError):
    """A cash payment did not finish in the time given (staff are called)."""

    prompt_id = "cash_fault"


@dataclass(frozen=True)
class CashResult:
    """How a cash payment ended."""

    payment_id: str
    inserted_fen: int
    """Cash taken in."""
    change_due_fen: int
    """Change the customer was owed."""
    change_paid_fen: int
    """Change paid out."""
    refunded_fen: int
    """Cash paid back after a cancel."""
    credited_fen: int
    """Credited to the electricity account as prepayment."""
    posted_fen: int
    """Posted to the bill."""
    outcome: str
    """paid, partial, cancelled or recovered."""
    receipt: ReceiptData
    """The receipt fields (reprintable any time with :func:`assistant.receipts.receipt_for`)."""

    @property
    def change_fen(self) -> int:
        """Change paid out (the dialog's name for :attr:`change_paid_fen`)."""
        return self.change_paid_fen

    @property
    def ok(self) -> bool:
        """True when the whole amount due was posted to the bill."""
        return self.posted_fen >= self.receipt.due_fen

    @classmethod
    def from_receipt(cls, r: ReceiptData) -> CashResult:
        """The result as the receipt records it."""
        return cls(
            payment_id=r.reference, inserted_fen=r.inserted_fen, change_due_fen=r.change_due_fen,
            change_paid_fen=r.change_paid_fen, refunded_fen=r.refunded_fen,
            credited_fen=r.credited_fen, posted_fen=r.posted_fen, outcome=r.outcome, receipt=r,
        )


@dataclass
class _Active:
    """The payment the kiosk is serving now (memory only; the journal is the truth)."""

    pid: str
    account_no: str
    due: int
    inserted: int = 0
    phase: str = "accepting"  # accepting, settling, suspended
    excess_to_credit: bool = False
    cancel_requested: bool = False
    pending_note: int = 0
    pending_intent: int = 0
    note_settled: asyncio.Event = field(default_factory=asyncio.Event)
    settle_task: asyncio.Task[None] | None = None


class CashPaymentService(CashPayments):
    """The cash side of the kiosk: both units, the journal, change, posting, recovery.

    Args:
        db: the open kiosk database.
        billing: where payments and prepayment credits are posted (idempotent references).
        notes: the note recycler.
        coins: the coin hopper.
        kiosk_id: this kiosk's id (on postings and receipts).
        on_event: receives :class:`~assistant.messages.CashEvent` progress for the dialog.
        on_device: receives (unit, command, args) for every device command (transcript).
        config: the ``[cash]`` section (timings, payout mode, credit limit).
        checkpoint: called with a step name after each durable step; used by the crash drill
            to stop the process at an exact point (None in production).
    """

    def __init__(
        self,
        db: Database,
        billing: Billing,
        notes: CashDevice,
        coins: CashDevice,
        kiosk_id: str,
        on_event: Callable[[CashEvent], None],
        on_device: Callable[[str, str, dict[str, Any]], None] | None = None,
        *,
        config: CashConfig | None = None,
        checkpoint: Callable[[str], Awaitable[None] | None] | None = None,
    ) -> None:
        self.db = db
        self.billing = billing
        self.units: dict[Unit, CashDevice] = {Unit.NOTES: notes, Unit.COINS: coins}
        self.kiosk_id = kiosk_id
        self.on_event = on_event
        self.on_device = on_device
        self.cfg = config or CashConfig()
        self.checkpoint = checkpoint
        for dev in self.units.values():
            dev.listener = self._device_listener
        self._levels: dict[Unit, dict[int, int]] = {Unit.NOTES: {}, Unit.COINS: {}}
        self._faults: dict[Unit, set[str]] = {Unit.NOTES: set(), Unit.COINS: set()}
        self._payout_faults: set[Unit] = set()
        self._link_down: set[Unit] = set()
        self._locked: set[Unit] = set()
        self._accepting: dict[Unit, frozenset[int] | None] = {Unit.NOTES: None, Unit.COINS: None}
        self._active: _Active | None = None
        self._results: dict[str, asyncio.Future[CashResult]] = {}
        self._payout_waiters: dict[Unit, asyncio.Future[DeviceEvent]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._reconnect_task: asyncio.Task[None] | None = None
        self._running = False
        # polling waits for the first recovery: events left over from a crashed run must be
        # read back through the journal, not taken as new cash
        self._paused = 1
        self._recovered = False
        self._polls: dict[Unit, int] = {Unit.NOTES: 0, Unit.COINS: 0}
        self._link_seen: dict[Unit, dict[str, int]] = {Unit.NOTES: {}, Unit.COINS: {}}
        self._returning: dict[Unit, int] = {Unit.NOTES: 0, Unit.COINS: 0}
        self._recover_lock = asyncio.Lock()
        # held while a unit's poll and its events are handled, so a check of the unit's
        # levels never sees a coin whose journal entry is still being written
        self._unit_locks: dict[Unit, asyncio.Lock] = {Unit.NOTES: asyncio.Lock(), Unit.COINS: asyncio.Lock()}
        self._event_failed = False

    # ================================================================= lifecycle
    async def start(self) -> None:
        """Open both units, read their levels, sync the books, start polling.

        Raises :class:`~assistant.errors.CashDeviceNotResponding` (prompt
        ``error_device``) if a unit does not answer; nothing is written then.
        """
        try:
            for unit, dev in self.units.items():
                await dev.open()
                await dev.enable()
                self._levels[unit] = await dev.levels()
        except BaseException:
            # A unit that does not answer: the ports opened so far are released, so a
            # retry (or a staff tool) can open them; nothing was written.
            for dev in self.units.values():
                with contextlib.suppress(Exception):
                    await dev.close()
            raise
        await self._sync_books(correct=False)
        await self._load_locks()
        self._running = True
        for unit in self.units:
            self._tasks.append(asyncio.create_task(self._poll_loop(unit), name=f"cash-poll-{unit}"))

    async def stop(self) -> None:
        """Stop polling, stop taking cash, close the units."""
        self._running = False
        tasks = self._tasks + ([self._reconnect_task] if self._reconnect_task else [])
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks = []
        self._reconnect_task = None
        for unit, dev in self.units.items():
            if unit not in self._link_down:
                with contextlib.suppress(CashDeviceError):
                    await asyncio.wait_for(dev.set_accepting(frozenset()), 5)
        for dev in self.units.values():
            with contextlib.suppress(Exception):
                await dev.close()

    # ================================================================= public API
    def change_available(self) -> dict[int, int]:
        """Denomination (fen) -> pieces the kiosk can pay out now (both units together)."""
        out: dict[int, int] = {}
        for (_unit, value), n in self._stock().items():
            out[value] = out.get(value, 0) + n
        return dict(sorted(out.items(), reverse=True))

    async def begin(self, payment_id: str, account_no: str, due_fen: int, user_id: int | None) -> None:
        """Start taking cash for ``due_fen`` on ``account_no``; idempotent for the same id.

        A payment id that is already finished is left alone (its result is ready); one
        left open by a crash is resolved first. Raises :class:`CashPaymentBusy` while
        another payment is open, :class:`CashUnitLocked` during a cassette exchange and
        :class:`CashDeviceNotResponding` if the units are down.
        """
        if not isinstance(due_fen, int) or due_fen <= 0:
            raise PaymentError(f"cash payment {payment_id}: amount due must be positive fen")
        a = self._active
        if a is not None and a.pid == payment_id:
            return
        if self._link_down:
            raise CashDeviceNotResponding(f"cash unit(s) {', '.join(sorted(self._link_down))} not answering")
        if a is not None:
            raise CashPaymentBusy(f"cash payment {a.pid} is still open")
        existing = await cash_journal.load(self.db, payment_id)
        if existing is not None:
            if not existing.closed:
                await self._recover_one(payment_id, "reopened")
            return
        leftovers = await cash_journal.open_payment_ids(self.db)
        if leftovers or not self._recovered:
            await self.recover()
        await self._load_locks()
        if Unit.NOTES in self._locked and Unit.COINS in self._locked:
            raise CashUnitLocked("both cash units are locked for a cassette exchange")
        coin_levels = await self.units[Unit.COINS].levels()
        self._levels[Unit.COINS] = coin_levels
        a = _Active(pid=payment_id, account_no=account_no, due=due_fen)
        a.note_settled.set()
        self._active = a
        self._event_failed = False
        self._results[payment_id] = asyncio.get_running_loop().create_future()
        async with self.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO payment(id, account_no, user_id, method, due_fen, kiosk_id) "
                "VALUES (?, ?, ?, 'cash', ?, ?)",
                (payment_id, account_no, user_id, due_fen, self.kiosk_id),
            )
            await cash_journal.append(tx, payment_id, Step.OPEN, "done", due_fen, account_no=account_no)
            on_id = await cash_journal.append(
                tx, payment_id, Step.ACCEPT_ON, "intent", coin_levels=_str_keys(coin_levels)
            )
        await self._checkpoint("opened")
        try:
            await self._apply_acceptance()
        except CashDeviceNotResponding as exc:
            await self._link_lost(Unit.NOTES, exc)
            return
        async with self.db.transaction() as tx:
            await cash_journal.append(tx, payment_id, Step.ACCEPT_ON, "done", intent=on_id)
        await self._checkpoint("accepting")

    async def accept_excess_as_credit(self, payment_id: str) -> None:
        """The customer chose to credit the excess instead of taking change."""
        a = self._require_active(payment_id)
        if a.excess_to_credit:
            return
        async with self.db.transaction() as tx:
            await cash_journal.append(tx, payment_id, Step.EXCESS_TO_CREDIT, "info")
        a.excess_to_credit = True

    async def cancel(self, payment_id: str) -> bool:
        """The customer cancelled: pay back what was inserted (credit what cannot be paid back).

        Returns once the units stop taking cash and the refund has started; use
        :meth:`wait_finished` for the outcome. A payment already paid in full is not
        cancelled (it finishes normally), and one left open by a fault is resolved by
        recovery (which never pays out): both return False, so the customer is not told
        that money is coming back.
        """
        a = self._active
        if a is None or a.pid != payment_id:
            st = await cash_journal.load(self.db, payment_id)
            if st is None or st.closed:
                return False
            await self._recover_one(payment_id, "cancelled")
            return False
        if a.phase != "accepting":
            return False
        a.cancel_requested = True
        self._start_settle(a)  # returns at once; wait_finished() tells how it ended
        return True

    async def wait_finished(self, payment_id: str, timeout: float) -> CashResult:  # noqa: ASYNC109 - the dialog's interface
        """Wait until the payment is closed; raises :class:`CashPaymentPending` on timeout."""
        fut = self._results.get(payment_id)
        if fut is None:
            st = await cash_journal.load(self.db, payment_id)
            if st is None:
                raise PaymentError(f"no cash payment {payment_id}")
            if st.closed:
                return CashResult.from_receipt(receipt_from_state(st))
            fut = asyncio.get_running_loop().create_future()
            self._results[payment_id] = fut
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except TimeoutError:
            raise CashPaymentPending(f"cash payment {payment_id} not finished after {timeout:.0f} s") from None

    async def recover(self) -> list[CashResult]:
        """Resolve every open cash payment left by a crash; returns how each ended.

        A payment whose note is still jammed in a unit stays open (staff are called)
        and is resolved once the jam is cleared.
        """
        out = []
        for pid in await cash_journal.open_payment_ids(self.db):
            if self._active is not None and self._active.pid == pid:
                continue
            result = await self._recover_one(pid, "restart")
            if result is not None:
                out.append(result)
        if not await cash_journal.open_payment_ids(self.db):
            for unit, dev in self.units.items():
                if unit not in self._link_down:
                    self._levels[unit] = await dev.levels()
            await self._sync_books(correct=True)
        if not self._recovered:
            self._recovered = True
            self._paused -= 1
        return out

    async def refresh(self) -> None:
        """Re-read cassette locks and unit levels (after a cassette exchange, or staff clearing faults).

        A unit that failed a payout is left out of change-making until staff have looked at
        it: this is that moment, so it pays out again.
        """
        await self._load_locks()
        for unit, dev in self.units.items():
            if unit not in self._link_down and unit not in self._locked:
                self._levels[unit] = await dev.levels()
                self._payout_faults.discard(unit)
        if self._active is None:
            self._accepting = {u: None for u in self.units}
            await self._apply_acceptance()

    # ================================================================= books
    def _stock(self) -> dict[tuple[str, int], int]:
        out: dict[tuple[str, int], int] = {}
        for unit, levels in self._levels.items():
            if unit in self._payout_faults or unit in self._link_down or unit in self._locked:
                continue
            for value, n in levels.items():
                if n > 0:
                    out[(str(unit), value)] = n
        return out

    async def _sync_books(self, correct: bool) -> None:
        """Open the books for a unit seen for the first time; with ``correct``, match the units.

        Corrections are only made when no payment is open: a payment interrupted by a crash
        moved cash the journal has not recorded yet, and recovery books that movement itself.
        """
        await sync_books(self.db, {u: self._levels[u] for u in (Unit.NOTES, Unit.COINS)},
                         self.units[Unit.NOTES].denominations, correct=correct)

    async def _load_locks(self) -> None:
        rows = await self.db.fetchall("SELECT unit FROM cash_exchange WHERE state = 'open'")
        locked = set()
        for r in rows:
            if r[0] in (Unit.NOTES, Unit.CASHBOX):
                locked.add(Unit.NOTES)
            elif r[0] == Unit.COINS:
                locked.add(Unit.COINS)
        self._locked = locked

    # ================================================================= polling
    async def _poll_loop(self, unit: Unit) -> None:
        dev = self.units[unit]
        while self._running:
            if self._paused or unit in self._link_down:
                await asyncio.sleep(self.cfg.poll_interval_s)
                continue
            try:
                async with self._unit_locks[unit]:
                    events = await dev.poll()
                    self._polls[unit] += 1
                    if self._paused:
                        # a recovery started while this poll was on the wire; it reads the
                        # outcome back from counters and levels, so these events are not needed
                        log.info("cash unit %s: %d event(s) left to recovery", unit, len(events))
                        events = []
                    for ev in events:
                        await self._on_event(unit, ev)
                await self._note_link_stats(unit)
            except CashDeviceNotResponding as exc:
                await self._link_lost(unit, exc)
            except CashDeviceError as exc:
                log.warning("cash unit %s: %s", unit, exc)
            except asyncio.CancelledError:
                raise
            except Exception:  # the loop must survive anything one event does
                log.exception("cash unit %s: event handling failed", unit)
                self._event_not_recorded()
            await asyncio.sleep(self.cfg.poll_interval_s)

    async def _on_event(self, unit: Unit, ev: DeviceEvent) -> None:
        k = ev.kind
        if k == DeviceEventKind.ESCROW:
            await self._on_escrow(ev.value_fen)
        elif k in (DeviceEventKind.STACKED, DeviceEventKind.STORED, DeviceEventKind.CLEARED_TO_CASHBOX):
            route = "store" if k == DeviceEventKind.STORED else "cashbox"
            await self._on_note_in(ev.value_fen, route, cleared=k == DeviceEventKind.CLEARED_TO_CASHBOX)
        elif k == DeviceEventKind.CLEARED_FROM_FRONT:
            await self._on_note_back(ev.value_fen, cleared=True)
        elif k == DeviceEventKind.REJECTED:
            await self._on_note_back(0)
        elif k == DeviceEventKind.COIN_CREDIT:
            await self._on_coin(ev.value_fen)
        elif k in PAYOUT_END_KINDS:
            waiter = self._payout_waiters.pop(unit, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(ev)
            else:
                log.info("cash unit %s: %s (%d fen) with no payout waiting", unit, k, ev.value_fen)
        elif k in UNIT_FAULTS:
            await self._on_fault(unit, str(k), ev)
        elif k == DeviceEventKind.CASHBOX_REPLACED:
            await self._clear_fault(unit, str(DeviceEventKind.CASHBOX_REMOVED))
            await self._clear_fault(unit, str(DeviceEventKind.STACKER_FULL))
        elif k in (DeviceEventKind.RESET, DeviceEventKind.DISABLED):
            await self._reinit(unit, str(k))

    def _event_not_recorded(self) -> None:
        """An event could not be handled (e.g. the disk is full): staff must know, once per payment.

        The cash itself is safe: a note is handed back when its journal entry fails, and a
        coin that went in unrecorded is found from the hopper's levels when taking cash stops.
        """
        a = self._active
        if a is not None and not self._event_failed:
            self._event_failed = True
            self._emit(CashEventKind.FAULT, 0, a.inserted, "kiosk:storage")

    async def _note_link_stats(self, unit: Unit) -> None:
        stats = self.units[unit].link_stats()
        seen = self._link_seen[unit]
        if stats != seen:
            grew = {k: v - seen.get(k, 0) for k, v in stats.items() if v > seen.get(k, 0)}
            self._link_seen[unit] = dict(stats)
            a = self._active
            if grew and a is not None:
                async with self.db.transaction() as tx:
                    await cash_journal.append(tx, a.pid, Step.LINK, "info", unit=str(unit), **grew)

    # ================================================================= taking cash
    def _wanted(self, unit: Unit) -> frozenset[int]:
        a = self._active
        if (
            a is None or a.phase != "accepting" or unit in self._locked or unit in self._link_down
            or self._faults[unit]
        ):
            return frozenset()
        return frozenset(self.units[unit].denominations)

    async def _apply_acceptance(self) -> None:
        for unit, dev in self.units.items():
            if unit in self._link_down:
                continue
            wanted = self._wanted(unit)
            if self._accepting[unit] != wanted:
                await dev.set_accepting(wanted)
                self._accepting[unit] = wanted

    def _note_ok(self, a: _Active, value: int) -> tuple[bool, int, int]:
        """(acceptable, change it would need, change payable) for a note of ``value``."""
        total = a.inserted + a.pending_note + value
        if total <= a.due or a.excess_to_credit:
            return True, 0, 0
        change = total - a.due
        plan = best_change(change, self._stock())
        return change - plan.paid_fen < self.cfg.auto_credit_limit_fen, change, plan.paid_fen

    async def _on_escrow(self, value: int) -> None:
        a = self._active
        dev = self.units[Unit.NOTES]
        self._emit(CashEventKind.NOTE_IN_ESCROW, value, a.inserted if a else 0)

        async def decide() -> bool:
            if a is None or a.phase != "accepting" or self._active is not a:
                if a is not None:
                    async with self.db.transaction() as tx:
                        await cash_journal.append(tx, a.pid, Step.NOTE_REJECTED, "info",
                                                  value=value, reason="not_accepting")
                return False
            ok, change, payable = self._note_ok(a, value)
            if not ok:
                smaller = max((d for d in dev.denominations if d < value and self._note_ok(a, d)[0]), default=0)
                async with self.db.transaction() as tx:
                    await cash_journal.append(
                        tx, a.pid, Step.NOTE_REJECTED, "info", value=value, reason="change_impossible",
                        change_fen=change, payable_fen=payable, smaller_note_fen=smaller,
                    )
                self._emit(CashEventKind.CHANGE_IMPOSSIBLE, value, a.inserted,
                           f"smaller_note_fen={smaller}")
                return False
            counters = await dev.counters()
            async with self.db.transaction() as tx:
                intent = await cash_journal.append(
                    tx, a.pid, Step.NOTE, "intent", value=value,
                    counters={"stacked": counters.stacked, "stored": counters.stored},
                )
            a.pending_note, a.pending_intent = value, intent
            a.note_settled.clear()
            await self._checkpoint("note_intent")
            return True

        try:
            accepted = await dev.settle_escrow(decide(), self.cfg.hold_interval_s, self.cfg.max_hold_s)
        except CashDeviceNotResponding:
            raise
        except CashDeviceError as exc:
            # the note left escrow on its own (e.g. expired): the counters will say where it went
            log.warning("note of %d fen: %s", value, exc)
            accepted = False
            if a is not None and a.pending_note:
                await self._settle_pending_by_counters(a)
        except Exception:
            # the decision failed (e.g. the journal could not be written): the unit hands the
            # note back, and the customer is told so when it is out
            self._returning[Unit.NOTES] = value
            raise
        if accepted:
            await self._checkpoint("note_accept_sent")
        else:
            self._returning[Unit.NOTES] = value

    async def _on_note_in(self, value: int, route: str, cleared: bool = False) -> None:
        a = self._active
        if a is None or not a.pending_note:
            if a is None and await cash_journal.open_payment_ids(self.db):
                # it belongs to a payment still open from an earlier run: recovery reads it back
                if cleared:
                    await self._clear_fault(Unit.NOTES, str(DeviceEventKind.NOTE_JAM))
                await self._resolve_open_after_jam()
                return
            # a note the kiosk did not expect: keep it on the books and tell staff
            await self._unassigned(Unit.NOTES if route == "store" else Unit.CASHBOX, value,
                                   "note_without_payment")
            if cleared:
                await self._clear_fault(Unit.NOTES, str(DeviceEventKind.NOTE_JAM))
                await self._resolve_open_after_jam()
            return
        value = value or a.pending_note
        await self._checkpoint("note_stacked")
        async with self.db.transaction() as tx:
            await cash_journal.append(tx, a.pid, Step.NOTE, "done", value, value=value, route=route,
                                      intent=a.pending_intent)
            await record_movement(tx, Unit.NOTES if route == "store" else Unit.CASHBOX, value, 1, "stacked", a.pid)
        if route == "store":
            lv = self._levels[Unit.NOTES]
            lv[value] = lv.get(value, 0) + 1
        a.inserted += value
        a.pending_note = a.pending_intent = 0
        a.note_settled.set()
        await self._checkpoint("note_credited")
        self._emit(CashEventKind.CREDITED, value, a.inserted, str(Unit.NOTES))
        if cleared:
            await self._clear_fault(Unit.NOTES, str(DeviceEventKind.NOTE_JAM))
        self._maybe_settle(a)

    async def _on_note_back(self, value: int, cleared: bool = False) -> None:
        a = self._active
        if a is not None and a.pending_note:
            value = value or a.pending_note
            async with self.db.transaction() as tx:
                await cash_journal.append(tx, a.pid, Step.NOTE, "failed", 0, value=value,
                                          intent=a.pending_intent, reason="handed_back")
            a.pending_note = a.pending_intent = 0
            a.note_settled.set()
        value = value or self._returning[Unit.NOTES]
        self._returning[Unit.NOTES] = 0
        if value:
            self._emit(CashEventKind.RETURNED, value, a.inserted if a else 0, str(Unit.NOTES))
        if cleared:
            await self._clear_fault(Unit.NOTES, str(DeviceEventKind.NOTE_JAM))
            if a is None:
                await self._resolve_open_after_jam()

    async def _on_coin(self, value: int) -> None:
        a = self._active
        if a is None:
            if not await cash_journal.open_payment_ids(self.db):
                await self._unassigned(Unit.COINS, value, "coin_without_payment")
            return
        async with self.db.transaction() as tx:
            await cash_journal.append(tx, a.pid, Step.COIN, "done", value, value=value)
            await record_movement(tx, Unit.COINS, value, 1, "accepted", a.pid)
        lv = self._levels[Unit.COINS]
        lv[value] = lv.get(value, 0) + 1
        a.inserted += value
        await self._checkpoint("coin_credited")
        self._emit(CashEventKind.CREDITED, value, a.inserted, str(Unit.COINS))
        self._maybe_settle(a)

    async def _unassigned(self, unit: Unit, value: int, why: str) -> None:
        log.warning("cash: %s of %d fen in %s with no open payment", why, value, unit)
        async with self.db.transaction() as tx:
            await record_movement(tx, unit, value, 1, "unassigned", None)
        if unit in (Unit.NOTES, Unit.COINS):
            lv = self._levels[unit]
            lv[value] = lv.get(value, 0) + 1
        self._emit(CashEventKind.FAULT, value, 0, f"{unit}:{why}")

    # ================================================================= faults
    async def _on_fault(self, unit: Unit, fault: str, ev: DeviceEvent) -> None:
        already = fault in self._faults[unit]
        self._faults[unit].add(fault)
        if already:
            return
        a = self._active
        if a is not None:
            async with self.db.transaction() as tx:
                await cash_journal.append(
                    tx, a.pid, Step.FAULT, "info", unit=str(unit), fault=fault, value=ev.value_fen,
                    inserted_fen=a.inserted, pending_note_fen=a.pending_note, phase=a.phase,
                )
        else:
            await audit.record(self.db, "cash_fault", None, unit=str(unit), fault=fault, value_fen=ev.value_fen)
        self._emit(CashEventKind.FAULT, ev.value_fen, a.inserted if a else 0, f"{unit}:{fault}")
        with contextlib.suppress(CashDeviceError):
            await self._apply_acceptance()

    async def _clear_fault(self, unit: Unit, fault: str) -> None:
        if fault not in self._faults[unit]:
            return
        self._faults[unit].discard(fault)
        self._emit(CashEventKind.FAULT_CLEARED, 0, self._active.inserted if self._active else 0,
                   f"{unit}:{fault}")
        with contextlib.suppress(CashDeviceError):
            await self._apply_acceptance()

    async def _reinit(self, unit: Unit, why: str) -> None:
        """A unit restarted or disabled itself: set it up again and restore what it should accept."""
        if unit in self._locked:
            return  # disabled on purpose for a cassette exchange
        dev = self.units[unit]
        # the first poll after opening a unit carries its own power-up reset: routine
        level = logging.DEBUG if self._polls[unit] <= 1 else logging.WARNING
        log.log(level, "cash unit %s reported %s: setting it up again", unit, why)
        await dev.open()
        await dev.enable()
        self._accepting[unit] = None
        if not self._payout_waiters.get(unit):
            self._levels[unit] = await dev.levels()
        await self._apply_acceptance()

    async def _link_lost(self, unit: Unit, exc: Exception) -> None:
        fault = "port_lost" if isinstance(exc, CashPortLost) else "no_reply"
        units = [u for u in self.units if u not in self._link_down]
        if not units:
            return
        log.error("cash unit %s: %s", unit, exc)
        for u in units:
            self._link_down.add(u)
            self._accepting[u] = None
        a = self._active
        with contextlib.suppress(Exception):
            if a is not None:
                a.phase = "suspended"
                async with self.db.transaction() as tx:
                    await cash_journal.append(
                        tx, a.pid, Step.FAULT, "info", unit=str(unit), fault=fault, detail=str(exc),
                        inserted_fen=a.inserted, pending_note_fen=a.pending_note,
                    )
            else:
                await audit.record(self.db, "cash_fault", None, unit=str(unit), fault=fault, detail=str(exc))
        for waiter in self._payout_waiters.values():
            if not waiter.done():
                waiter.set_exception(CashDeviceNotResponding(str(exc)))
        self._emit(CashEventKind.FAULT, 0, a.inserted if a else 0, f"{unit}:{fault}")
        if self._running and (self._reconnect_task is None or self._reconnect_task.done()):
            self._reconnect_task = asyncio.create_task(self._reconnect(), name="cash-reconnect")

    async def _reconnect(self) -> None:
        """Try the lost unit(s) again until they answer; then resolve the suspended payment."""
        while self._running and self._link_down:
            await asyncio.sleep(self.cfg.reconnect_interval_s)
            try:
                for unit in sorted(self._link_down):
                    dev = self.units[unit]
                    await dev.reopen()
                    await dev.enable()
                    self._levels[unit] = await dev.levels()
            except CashDeviceError as exc:
                log.info("cash units still not answering: %s", exc)
                continue
            self._paused += 1
            try:
                lost = sorted(self._link_down)
                self._link_down.clear()
                a = self._active
                if a is not None and a.phase == "suspended":
                    if a.settle_task is not None and not a.settle_task.done():
                        with contextlib.suppress(Exception):
                            await a.settle_task
                    self._active = None
                    await self._recover_one(a.pid, "link_lost")
                # only now: the suspended payment has ended, so "working again" cannot be
                # taken as "go on inserting" for it
                for unit in lost:
                    self._emit(CashEventKind.FAULT_CLEARED, 0, 0, f"{unit}:link")
                await self._apply_acceptance()
            except CashDeviceNotResponding as exc:
                await self._link_lost(Unit.NOTES, exc)
            finally:
                self._paused -= 1

    async def _resolve_open_after_jam(self) -> None:
        if self._active is None and await cash_journal.open_payment_ids(self.db):
            await self.recover()

    # ================================================================= settling
    def _maybe_settle(self, a: _Active) -> None:
        if a.phase == "accepting" and a.inserted >= a.due and not a.pending_note:
            self._start_settle(a)

    def _start_settle(self, a: _Active) -> None:
        if a.settle_task is None:
            a.phase = "settling"
            a.settle_task = asyncio.create_task(self._settle(a), name=f"cash-settle-{a.pid}")

    async def _settle(self, a: _Active) -> None:
        try:
            await self._settle_steps(a)
        except CashDeviceNotResponding as exc:
            await self._link_lost(Unit.NOTES, exc)
        except BillingError as exc:
            log.error("cash payment %s: billing failed: %s", a.pid, exc)
            async with self.db.transaction() as tx:
                await cash_journal.append(tx, a.pid, Step.FAULT, "info", unit="billing", fault="billing",
                                          detail=str(exc))
            a.phase = "suspended"
            self._emit(CashEventKind.FAULT, 0, a.inserted, "billing:failed")
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("cash payment %s: settling failed; it stays open for recovery", a.pid)
            a.phase = "suspended"
            self._emit(CashEventKind.FAULT, 0, a.inserted, "kiosk:internal")

    async def _settle_steps(self, a: _Active) -> None:
        await self._stop_accepting(a)
        st = await self._state(a.pid)
        inserted = st.inserted_fen
        a.inserted = inserted
        cancel = a.cancel_requested
        if cancel:
            async with self.db.transaction() as tx:
                await cash_journal.append(tx, a.pid, Step.CANCEL, "info", inserted_fen=inserted)
            target, purpose, post_amount = inserted, "refund", 0
        else:
            post_amount = min(inserted, a.due)
            excess = inserted - post_amount
            target = 0 if a.excess_to_credit else excess
            purpose = "change"
            self._emit(CashEventKind.PAID_IN_FULL, target, inserted)
        paid = await self._pay_out(a, target, purpose) if target >= SMALLEST_PAYABLE_FEN else 0
        if paid:
            self._emit(CashEventKind.RETURNED if cancel else CashEventKind.CHANGE_PAID, paid, inserted)
        if a.pending_note:
            # A note is stuck inside the unit (a jam): whose money it is is only known when
            # staff clear it. The payment stays open; clearing the jam resolves it through
            # recovery (credited to the account if it went in, nothing if it came back out).
            async with self.db.transaction() as tx:
                await cash_journal.append(tx, a.pid, Step.FAULT, "info", unit=str(Unit.NOTES), fault="note_jam",
                                          pending_note_fen=a.pending_note, inserted_fen=inserted, phase="settling")
            a.phase = "suspended"
            self._active = None
            with contextlib.suppress(CashDeviceError):
                await self._apply_acceptance()
            return
        st = await self._state(a.pid)
        if post_amount:
            await self._post(st, post_amount)
        credit = st.inserted_fen - post_amount - st.paid_out_fen()
        if credit > 0:
            await self._credit(st, credit)
            self._emit(CashEventKind.REMAINDER_CREDITED, credit, inserted)
        outcome = Outcome.CANCELLED if cancel else (Outcome.PAID if post_amount >= a.due else Outcome.PARTIAL)
        result = await self._close(a.pid, outcome, target if not cancel else 0)
        self._active = None
        self._finish(result)
        with contextlib.suppress(CashDeviceError):
            await self._apply_acceptance()

    async def _stop_accepting(self, a: _Active) -> None:
        """Stop both units taking cash and wait until everything in flight has landed."""
        await self._apply_acceptance()
        notes = self.units[Unit.NOTES]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.finish_timeout_s
        # a note in escrow is being decided by the poll loop (it will be handed back now);
        # a note accepted before the stop is still on its way into the unit
        jam = str(DeviceEventKind.NOTE_JAM)
        while (a.pending_note or notes.escrow_fen) and jam not in self._faults[Unit.NOTES]:
            left = deadline - loop.time()
            if left <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(a.note_settled.wait(), min(left, self.cfg.poll_interval_s * 2))
        # one full poll of the hopper after the inhibit catches a coin that was already falling
        target = self._polls[Unit.COINS] + 2
        while self._polls[Unit.COINS] < target and loop.time() < deadline and Unit.COINS not in self._link_down:  # noqa: ASYNC110 - a poll counter, bounded by the deadline
            await asyncio.sleep(self.cfg.poll_interval_s / 2)
        async with self._unit_locks[Unit.COINS]:
            coin_levels = dict(self._levels[Unit.COINS])
            if Unit.COINS not in self._link_down:
                with contextlib.suppress(CashDeviceError):
                    coin_levels = await self.units[Unit.COINS].levels()
            st = await self._state(a.pid)
            # coins the hopper holds but the journal does not (an entry that could not be
            # written): they are the customer's, as recovery would find them after a restart
            found = _coins_found(st, coin_levels)
            async with self.db.transaction() as tx:
                for value, n in sorted(found.items()):
                    for _ in range(n):
                        await cash_journal.append(tx, a.pid, Step.COIN, "done", value, value=value, found=True)
                        await record_movement(tx, Unit.COINS, value, 1, "accepted", a.pid)
                await cash_journal.append(tx, a.pid, Step.ACCEPT_OFF, "done",
                                          coin_levels=_str_keys(coin_levels))
            self._levels[Unit.COINS] = coin_levels
        if found:
            log.warning("cash payment %s: coins found in the hopper but not in the journal: %s", a.pid, found)
            a.inserted += _value(found)
        await self._checkpoint("accept_off")

    async def _pay_out(self, a: _Active, target: int, purpose: str) -> int:
        """Pay ``target`` from the units, replacing a failing unit by the other; returns fen paid."""
        remaining = target
        for _attempt in range(3):
            if remaining < SMALLEST_PAYABLE_FEN:
                break
            plan = best_change(remaining, self._stock())
            if plan.paid_fen == 0:
                break
            async with self.db.transaction() as tx:
                await cash_journal.append(
                    tx, a.pid, Step.CHANGE, "info", plan.paid_fen, purpose=purpose, target_fen=remaining,
                    plan={u: _str_keys(c) for u, c in plan.by_unit().items()},
                    remainder_fen=plan.remainder_fen,
                )
            self._emit(CashEventKind.DISPENSING, plan.paid_fen, a.inserted)
            all_ok = True
            # coins first: a hopper fault can then still be covered by a 1 元 note
            for unit_name in sorted(plan.by_unit(), key=lambda u: u != Unit.COINS):
                counts = plan.by_unit()[unit_name]
                paid, ok = await self._payout_unit(a, Unit(unit_name), counts, purpose)
                remaining -= paid
                all_ok = all_ok and ok
            if all_ok:
                break
        return target - remaining

    async def _payout_unit(self, a: _Active, unit: Unit, counts: Mapping[int, int], purpose: str) -> tuple[int, bool]:
        dev = self.units[unit]
        amount = sum(v * n for v, n in counts.items())
        before = await dev.levels()
        async with self.db.transaction() as tx:
            intent = await cash_journal.append(
                tx, a.pid, Step.PAYOUT, "intent", amount, unit=str(unit), purpose=purpose,
                counts=_str_keys(counts), levels_before=_str_keys(before),
            )
        await self._checkpoint("payout_intent")
        try:
            if self.cfg.payout_mode == "denomination":
                await dev.payout(counts, test=True)
            else:
                await dev.payout_amount(amount, test=True)
        except CashPayoutRefused as exc:
            await self._payout_refused(a, unit, intent, exc)
            return 0, False
        await self._checkpoint("payout_tested")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[DeviceEvent] = loop.create_future()
        self._payout_waiters[unit] = waiter
        try:
            if self.cfg.payout_mode == "denomination":
                await dev.payout(counts, test=False)
            else:
                await dev.payout_amount(amount, test=False)
        except CashPayoutRefused as exc:
            self._payout_waiters.pop(unit, None)
            await self._payout_refused(a, unit, intent, exc)
            return 0, False
        except BaseException:
            # e.g. the unit stopped answering: recovery reads the outcome from the levels; a
            # wait left behind would only fail later, unread
            self._payout_waiters.pop(unit, None)
            raise
        await self._checkpoint("payout_started")
        end: DeviceEvent | None
        try:
            end = await asyncio.wait_for(asyncio.shield(waiter), self.cfg.finish_timeout_s)
        except TimeoutError:
            end = None
            with contextlib.suppress(CashDeviceError):
                await dev.halt()
                end = await asyncio.wait_for(asyncio.shield(waiter), 10)
        finally:
            self._payout_waiters.pop(unit, None)
        after = await dev.levels()
        paid_fen = end.value_fen if end is not None else _value(_delta(before, after))
        dispensed, missing = _split_dispensed(counts, before, after, paid_fen)
        ok = end is not None and end.kind == DeviceEventKind.DISPENSED and paid_fen == amount
        async with self.db.transaction() as tx:
            await cash_journal.append(
                tx, a.pid, Step.PAYOUT, "done", paid_fen, intent=intent, unit=str(unit),
                dispensed=_str_keys(dispensed), event=str(end.kind) if end else "no_end_event",
                missing=_str_keys(missing),
            )
            for value, n in dispensed.items():
                await record_movement(tx, unit, value, -n, "dispensed", a.pid)
            for value, n in missing.items():
                await record_movement(tx, unit, value, -n, "missing", a.pid)
            if not ok:
                await cash_journal.append(
                    tx, a.pid, Step.FAULT, "info", unit=str(unit),
                    fault=str(end.kind) if end else "payout_timeout", paid_fen=paid_fen,
                    requested_fen=amount, inserted_fen=a.inserted,
                )
        self._levels[unit] = after
        if ok:
            self._faults[unit].discard(str(DeviceEventKind.DEVICE_FULL))  # room again
        await self._checkpoint("payout_done")
        if not ok:
            self._payout_faults.add(unit)
            self._emit(CashEventKind.FAULT, paid_fen, a.inserted,
                       f"{unit}:{end.kind if end else 'payout_timeout'}")
        return paid_fen, ok

    async def _payout_refused(self, a: _Active, unit: Unit, intent: int, exc: CashPayoutRefused) -> None:
        async with self.db.transaction() as tx:
            await cash_journal.append(tx, a.pid, Step.PAYOUT, "failed", 0, intent=intent, unit=str(unit),
                                      reason=exc.reason or str(exc))
        self._payout_faults.add(unit)
        self._levels[unit] = await self.units[unit].levels()
        log.warning("cash payout refused by %s: %s", unit, exc)

    async def _post(self, st: PaymentState, amount: int) -> None:
        if st.post is not None and st.post["done"]:
            return
        reference = f"{st.payment_id}:pay"
        if st.post is None:
            async with self.db.transaction() as tx:
                await cash_journal.append(tx, st.payment_id, Step.POST, "intent", amount,
                                          reference=reference, kind="payment")
        else:
            amount, reference = int(st.post["amount"]), st.post["reference"]
        await self._checkpoint("post_intent")
        posting = await self.billing.post(reference, st.account_no, amount, "payment", "cash", self.kiosk_id)
        await self._checkpoint("posted")
        async with self.db.transaction() as tx:
            await cash_journal.append(tx, st.payment_id, Step.POST, "done", amount, reference=reference,
                                      duplicate=posting.duplicate)
        await self._checkpoint("post_done")

    async def _credit(self, st: PaymentState, amount: int) -> None:
        """Credit ``amount`` more than the confirmed credits (reusing an unconfirmed intent)."""
        pending = [c for c in st.credits if not c["done"]]
        for slot in pending:
            await self._post_credit(st, slot["reference"], int(slot["amount"]))
            amount -= int(slot["amount"])
        if amount <= 0:
            return
        reference = f"{st.payment_id}:credit" + (f"-{len(st.credits)}" if st.credits else "")
        async with self.db.transaction() as tx:
            await cash_journal.append(tx, st.payment_id, Step.CREDIT, "intent", amount,
                                      reference=reference, kind="prepayment")
        await self._post_credit(st, reference, amount)

    async def _post_credit(self, st: PaymentState, reference: str, amount: int) -> None:
        await self._checkpoint("credit_intent")
        posting = await self.billing.post(reference, st.account_no, amount, "prepayment", "cash",
                                          self.kiosk_id)
        await self._checkpoint("credited")
        async with self.db.transaction() as tx:
            await cash_journal.append(tx, st.payment_id, Step.CREDIT, "done", amount, reference=reference,
                                      duplicate=posting.duplicate)
        await self._checkpoint("credit_done")

    async def _close(self, pid: str, outcome: Outcome, change_due: int) -> CashResult:
        async with self.db.transaction() as tx:
            st = await self._state(pid)
            await cash_journal.append(
                tx, pid, Step.CLOSE, "done", st.inserted_fen, outcome=str(outcome),
                change_due_fen=change_due, inserted_fen=st.inserted_fen, posted_fen=st.posted_fen,
                paid_out_fen=st.paid_out_fen(), credited_fen=st.credited_fen,
            )
            st = await self._state(pid)
            receipt = receipt_from_state(st)
            await tx.execute("INSERT OR REPLACE INTO receipt(payment_id, body) VALUES (?, ?)",
                             (pid, receipt.to_json()))
        await self._checkpoint("closed")
        return CashResult.from_receipt(receipt)

    def _finish(self, result: CashResult) -> None:
        fut = self._results.get(result.payment_id)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._results[result.payment_id] = fut
        if not fut.done():
            fut.set_result(result)
        self._emit(CashEventKind.FINISHED, result.posted_fen, result.inserted_fen, result.outcome,
                   payment_id=result.payment_id)

    # ================================================================= recovery
    async def _recover_one(self, pid: str, reason: str) -> CashResult | None:
        """Resolve one open payment from its journal and the units; never pays out cash."""
        async with self._recover_lock:
            st = await self._state(pid)
            if st.closed:
                return CashResult.from_receipt(receipt_from_state(st))
            self._paused += 1
            try:
                return await self._recover_steps(st, reason)
            finally:
                self._paused -= 1

    async def _recover_steps(self, st: PaymentState, reason: str) -> CashResult | None:
        pid = st.payment_id
        notes, coins = self.units[Unit.NOTES], self.units[Unit.COINS]
        for unit, dev in self.units.items():
            await dev.set_accepting(frozenset())
            self._accepting[unit] = frozenset()
        jammed = await self._drain()
        found: dict[str, Any] = {"reason": reason}
        if st.pending_note and jammed:
            # the note is stuck inside the unit: nobody can say yet whose it is; staff clear it
            async with self.db.transaction() as tx:
                await cash_journal.append(tx, pid, Step.FAULT, "info", unit=str(Unit.NOTES), fault="note_jam",
                                          pending_note_fen=st.pending_note["value"], inserted_fen=st.inserted_fen)
            self._faults[Unit.NOTES].add(str(DeviceEventKind.NOTE_JAM))
            self._emit(CashEventKind.FAULT, st.pending_note["value"], st.inserted_fen, "notes:note_jam",
                       payment_id=pid)
            return None
        counters_now = await notes.counters()
        coin_levels_now = await coins.levels()
        levels_now = {unit: await dev.levels() for unit, dev in self.units.items()}
        async with self.db.transaction() as tx:
            if st.pending_note:
                now = counters_now
                before = st.pending_note["counters"]
                took = (now.stacked + now.stored) - (int(before.get("stacked", 0)) + int(before.get("stored", 0)))
                value = int(st.pending_note["value"])
                if took >= 1:
                    route = "store" if now.stored > int(before.get("stored", 0)) else "cashbox"
                    await cash_journal.append(tx, pid, Step.NOTE, "done", value, value=value, route=route,
                                              intent=st.pending_note["id"], recovered=True)
                    await record_movement(tx, Unit.NOTES if route == "store" else Unit.CASHBOX, value, 1, "stacked", pid)
                    found["note"] = {"value": value, "stacked": route}
                else:
                    await cash_journal.append(tx, pid, Step.NOTE, "failed", 0, value=value,
                                              intent=st.pending_note["id"], recovered=True, reason="not_stacked")
                    found["note"] = {"value": value, "stacked": False}
            if st.accept_window is not None:
                now_levels = coin_levels_now
                extra = _coins_found(st, now_levels)
                for v, n in sorted(extra.items()):
                    for _ in range(n):
                        await cash_journal.append(tx, pid, Step.COIN, "done", v, value=v, recovered=True)
                        await record_movement(tx, Unit.COINS, v, 1, "accepted", pid)
                if extra:
                    found["coins"] = _str_keys(extra)
                await cash_journal.append(tx, pid, Step.ACCEPT_OFF, "done", coin_levels=_str_keys(now_levels))
            for p in st.open_payouts:
                after = levels_now[Unit(p.unit)]
                dispensed = {v: n for v, n in _delta(p.levels_before, after).items() if n > 0}
                paid = _value(dispensed)
                await cash_journal.append(tx, pid, Step.PAYOUT, "done", paid, intent=p.intent_id, unit=p.unit,
                                          dispensed=_str_keys(dispensed), recovered=True)
                for v, n in dispensed.items():
                    await record_movement(tx, Unit(p.unit), v, -n, "dispensed", pid)
                found.setdefault("payouts", []).append({"unit": p.unit, "paid_fen": paid})
            await cash_journal.append(tx, pid, Step.RECOVERY, "info", **found)
        self._levels = levels_now
        st = await self._state(pid)
        if st.cancelled:
            post_amount = 0
        elif st.post is not None:
            post_amount = int(st.post["amount"])
        else:
            post_amount = min(st.inserted_fen, st.due_fen)
        if post_amount:
            await self._post(st, post_amount)
        st = await self._state(pid)
        credit = st.inserted_fen - post_amount - st.paid_out_fen() - st.credited_fen
        if credit > 0 or any(not c["done"] for c in st.credits):
            await self._credit(st, credit)
        outcome = Outcome.CANCELLED if st.cancelled and not post_amount else Outcome.RECOVERED
        result = await self._close(pid, outcome, 0)
        self._finish(result)
        if result.credited_fen:
            self._emit(CashEventKind.REMAINDER_CREDITED, result.credited_fen, result.inserted_fen, "recovered",
                       payment_id=pid)
        return result

    async def _drain(self) -> bool:
        """Poll both units until nothing moves; True if a note is jammed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.cfg.finish_timeout_s
        quiet = 0
        jammed = False
        while quiet < 2 and loop.time() < deadline:
            busy = False
            jammed = False
            for unit, dev in self.units.items():
                for ev in await dev.poll():
                    if ev.kind in BUSY_KINDS:
                        busy = True
                    if ev.kind == DeviceEventKind.NOTE_JAM:
                        jammed = True
                    if ev.kind in (DeviceEventKind.CLEARED_TO_CASHBOX, DeviceEventKind.CLEARED_FROM_FRONT):
                        self._faults[unit].discard(str(DeviceEventKind.NOTE_JAM))
                if dev.escrow_fen:
                    busy = True
            if jammed:
                return True
            quiet = 0 if busy else quiet + 1
            await asyncio.sleep(self.cfg.poll_interval_s)
        return jammed

    async def _settle_pending_by_counters(self, a: _Active) -> None:
        """After an escrow error: wait for the unit to settle and ask its counters."""
        async with self.db.transaction() as tx:
            await cash_journal.append(tx, a.pid, Step.FAULT, "info", unit=str(Unit.NOTES),
                                      fault="escrow_lost", pending_note_fen=a.pending_note)
        st = await self._state(a.pid)
        if not st.pending_note:
            return
        await asyncio.sleep(self.cfg.poll_interval_s * 3)
        now = await self.units[Unit.NOTES].counters()
        before = st.pending_note["counters"]
        if now.stacked + now.stored == int(before.get("stacked", 0)) + int(before.get("stored", 0)):
            await self._on_note_back(a.pending_note)

    # ================================================================= helpers
    async def _state(self, pid: str) -> PaymentState:
        st = await cash_journal.load(self.db, pid)
        if st is None:
            raise PaymentError(f"no cash payment {pid}")
        return st

    def _require_active(self, pid: str) -> _Active:
        a = self._active
        if a is None or a.pid != pid:
            raise PaymentError(f"cash payment {pid} is not in progress")
        return a

    async def _checkpoint(self, name: str) -> None:
        if self.checkpoint is not None:
            r = self.checkpoint(name)
            if inspect.isawaitable(r):
                await r

    def _emit(self, kind: CashEventKind, value: int = 0, inserted: int = 0, detail: str = "",
              payment_id: str | None = None) -> None:
        """Report progress; the event names its payment (the active one unless given)."""
        if payment_id is None:
            payment_id = self._active.pid if self._active is not None else ""
        try:
            self.on_event(CashEvent(event=kind, value_fen=value, inserted_fen=inserted, detail=detail,
                                    payment_id=payment_id))
        except Exception:  # a broken listener must not break the money path
            log.exception("cash event listener failed")

    def _device_listener(self, unit: str, command: str, args: dict[str, Any]) -> None:
        if self.on_device is not None:
            try:
                self.on_device(unit, command, args)
            except Exception:
                log.exception("device transcript listener failed")


def new_payment_id() -> str:
    """A fresh payment id (also the idempotency key for billing)."""
    return uuid.uuid4().hex


def _str_keys(m: Mapping[int, int]) -> dict[str, int]:
    return {str(k): int(v) for k, v in m.items()}


def _delta(before: Mapping[int, int], after: Mapping[int, int]) -> dict[int, int]:
    return {v: before.get(v, 0) - after.get(v, 0) for v in set(before) | set(after)}


def _value(counts: Mapping[int, int]) -> int:
    return sum(v * n for v, n in counts.items())


def _coins_found(st: PaymentState, levels_now: Mapping[int, int]) -> dict[int, int]:
    """Coins in the hopper beyond its levels when taking cash began plus the coins journalled since."""
    if st.accept_window is None:
        return {}
    expected = dict(st.accept_window["coin_levels"])
    for v in st.coins_since_window:
        expected[v] = expected.get(v, 0) + 1
    return {v: n - expected.get(v, 0) for v, n in levels_now.items() if n > expected.get(v, 0)}


def _split_dispensed(
    plan: Mapping[int, int], before: Mapping[int, int], after: Mapping[int, int], paid_fen: int
) -> tuple[dict[int, int], dict[int, int]]:
    """Which pieces reached the customer, and which the unit found missing.

    Normally the level drop is exactly what was paid. When a unit discovers it was
    short (a hopper that ran empty), levels drop by more than was paid: the pieces
    are attributed largest first (the order units pay in) up to the paid value and
    the rest is recorded as missing, which reconciliation reports.
    """
    drop = {v: n for v, n in _delta(before, after).items() if n > 0}
    if _value(drop) == paid_fen:
        return drop, {}
    dispensed: dict[int, int] = {}
    left = paid_fen
    for v in sorted(plan, reverse=True):
        n = min(plan[v], drop.get(v, 0), left // v)
        if n:
            dispensed[v] = n
            left -= n * v
    missing = {v: drop[v] - dispensed.get(v, 0) for v in drop if drop[v] > dispensed.get(v, 0)}
    return dispensed, missing
