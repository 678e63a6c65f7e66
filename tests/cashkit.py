"""Test helpers for the cash path: a real simulator on a real pty, the real driver, the real service."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from assistant.billing import LedgerBilling
from assistant.cash_payment import CashPaymentService
from assistant.messages import CashEvent, CashEventKind
from assistant.storage import Database
from devices.cash import CashConfig, Unit
from devices.cash_sim import CashSimulator, SimCoinHopper, SimNoteRecycler, SimTiming
from devices.ssp_serial import SerialPort, SspCoinHopper, SspNoteRecycler

DEMO_NOTES = {10000: 10, 5000: 10, 2000: 20, 1000: 20, 500: 20, 100: 30}
DEMO_COINS = {100: 50, 50: 50, 10: 100}

FAST = dict(
    reply_timeout_s=0.15, retries=2, poll_interval_s=0.02, hold_interval_s=0.3, max_hold_s=5.0,
    finish_timeout_s=10.0, reconnect_interval_s=0.1,
)


def fast_config(**overrides: Any) -> CashConfig:
    """A ``[cash]`` section with timings for tests (the logic is unchanged)."""
    return replace(CashConfig(), **{**FAST, **overrides})


def make_sim(
    tmp: Path,
    notes: Mapping[int, int] = DEMO_NOTES,
    coins: Mapping[int, int] = DEMO_COINS,
    *,
    speed: float = 40.0,
    escrow_timeout_s: float = 10.0,
    host_timeout_s: float = 5.0,
    state: bool = True,
    coins_link: bool = False,
) -> CashSimulator:
    """A started simulator with both units on one pty (or two with ``coins_link``)."""
    timing = SimTiming(speed=speed, escrow_timeout_s=escrow_timeout_s, host_timeout_s=host_timeout_s)
    sim = CashSimulator(
        SimNoteRecycler(0, notes, timing),
        SimCoinHopper(0x10, coins, timing),
        tmp / "ssp.tty",
        tmp / "coins.tty" if coins_link else None,
        tmp / "sim.json" if state else None,
    )
    return sim.start()


def open_units(sim: CashSimulator, cfg: CashConfig) -> tuple[SspNoteRecycler, SspCoinHopper]:
    """The real pyserial driver on the simulator's port link(s)."""
    kw = dict(reply_timeout=cfg.reply_timeout_s, retries=cfg.retries,
              hold_interval=cfg.hold_interval_s, max_hold=cfg.max_hold_s)
    notes_port = SerialPort(sim.port_path("notes"))
    coins_path = sim.port_path("coins")
    coins_port = notes_port if coins_path == sim.port_path("notes") else SerialPort(coins_path)
    notes = SspNoteRecycler(notes_port, 0, owns_port=notes_port is not coins_port, **kw)
    coins = SspCoinHopper(coins_port, 0x10, **kw)
    return notes, coins


async def seed_account(db: Database, account_no: str, bills: Mapping[str, int], name: str = "张三") -> None:
    """An electricity account with unpaid bills (period -> fen) in the embedded ledger."""
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO billing_customer(account_no, holder_name) VALUES (?, ?)",
                         (account_no, name))
        for period, fen in bills.items():
            await tx.execute("INSERT INTO billing_bill(account_no, period, amount_fen) VALUES (?, ?, ?)",
                             (account_no, period, fen))


class Harness:
    """A started :class:`CashPaymentService` on the simulator, recording what it reports."""

    def __init__(self, db: Database, sim: CashSimulator, cfg: CashConfig | None = None,
                 checkpoint: Callable[[str], Any] | None = None, kiosk_id: str = "K001") -> None:
        self.db = db
        self.sim = sim
        self.cfg = cfg or fast_config()
        self.events: list[CashEvent] = []
        self.device_log: list[tuple[str, str, dict[str, Any]]] = []
        self.billing = LedgerBilling(db)
        self.dead = False
        notes, coins = open_units(sim, self.cfg)
        self.service = CashPaymentService(
            db, self.billing, notes, coins, kiosk_id, self.events.append,
            lambda u, c, a: self.device_log.append((u, c, a)), config=self.cfg, checkpoint=checkpoint,
        )

    async def __aenter__(self) -> Harness:
        await self.service.start()
        await self.service.recover()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if not self.dead:  # a dead kiosk stops nothing
            await self.service.stop()

    def die(self) -> None:
        """The kiosk process dies here: its tasks stop where they are, nothing is cleaned up,
        and (as the system does for a dead process) its serial ports are closed."""
        self.dead = True
        for t in self.service._tasks:
            t.cancel()
        self.service._running = False
        for dev in self.service.units.values():
            dev.port.close()

    def kinds(self) -> list[CashEventKind]:
        """Event kinds reported so far."""
        return [e.event for e in self.events]

    async def wait_event(self, kind: CashEventKind, timeout: float = 10.0, count: int = 1) -> CashEvent:  # noqa: ASYNC109 - test helper
        """Wait until ``count`` events of ``kind`` have been reported; returns the last."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = [e for e in self.events if e.event == kind]
            if len(found) >= count:
                return found[count - 1]
            if loop.time() > deadline:
                raise AssertionError(f"no {kind} after {timeout} s; got {self.kinds()}")
            await asyncio.sleep(0.01)

    async def insert_note(self, value: int) -> None:
        """A customer pushes a note in (it must be taken into the slot)."""
        assert await asyncio.to_thread(self.sim.insert_note, value), f"note {value} refused at the slot"

    async def insert_coin(self, value: int) -> None:
        """A customer drops a coin in."""
        assert await asyncio.to_thread(self.sim.insert_coin, value), f"coin {value} refused"


async def journal_steps(db: Database, payment_id: str) -> list[tuple[str, str, int]]:
    """(step, state, amount) of a payment's journal in order."""
    rows = await db.fetchall(
        "SELECT step, state, amount_fen FROM journal WHERE payment_id = ? ORDER BY id", (payment_id,)
    )
    return [(r[0], r[1], r[2]) for r in rows]


async def books(db: Database) -> dict[str, dict[int, int]]:
    """The kiosk's cash books (``cash_unit``): unit -> value -> count."""
    out: dict[str, dict[int, int]] = {}
    for r in await db.fetchall("SELECT unit, denomination_fen, count FROM cash_unit"):
        out.setdefault(r[0], {})[int(r[1])] = int(r[2])
    return out


def sim_inventory(snapshot: Mapping[str, Any]) -> dict[str, dict[int, int]]:
    """The simulator's physical cash: unit -> value -> count (for comparing with the books)."""
    return {
        str(Unit.NOTES): {int(k): int(v) for k, v in snapshot["notes"].items()},
        str(Unit.CASHBOX): {int(k): int(v) for k, v in snapshot["cashbox"].items()},
        str(Unit.COINS): {int(k): int(v) for k, v in snapshot["coins"].items()},
    }
