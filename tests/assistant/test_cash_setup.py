"""The cash side built from ``[cash]``: simulator started by the kiosk, state kept across runs."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from assistant.billing import LedgerBilling
from assistant.cash_setup import demo_cash, open_cash
from assistant.config import Config
from assistant.messages import CashEvent, CashEventKind
from assistant.storage import Database
from devices.cash import CashConfig
from tests.cashkit import FAST, seed_account


async def wait_for(events: list[CashEvent], kind: CashEventKind, n: int = 1) -> None:
    for _ in range(1000):
        if sum(e.event == kind for e in events) >= n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no {kind}: {[e.event for e in events]}")


async def test_simulate_true_starts_the_simulator_and_keeps_its_counts(config: Config, tmp_path: Path) -> None:
    cfg = dataclasses.replace(config.section("cash", CashConfig), sim_speed=40.0, **FAST)
    assert cfg.simulate
    async with Database(tmp_path / "k.db") as db:
        await seed_account(db, "0012345678", {"2024-05": 12345})
        events: list[CashEvent] = []
        side = await open_cash(config, db, LedgerBilling(db), events.append, cash_config=cfg)
        try:
            assert side.simulator is not None
            assert (config.data_dir / "cash" / "ssp.tty").is_symlink()
            assert side.service.change_available()[100] == 30 + 50  # 1 元 notes and coins
            await side.service.begin("s1", "0012345678", 12345, None)
            for n in (1, 2):
                assert side.simulator.insert_note(10000)
                await wait_for(events, CashEventKind.CREDITED, n)
            result = await side.service.wait_finished("s1", 20)
        finally:
            await side.close()
        assert (result.change_paid_fen, result.credited_fen, result.ok) == (7650, 5, True)
        # a second start finds the simulator's cash as the first run left it
        side = await open_cash(config, db, LedgerBilling(db), events.append, cash_config=cfg)
        try:
            assert side.simulator.snapshot()["notes"][10000] == 12
        finally:
            await side.close()


async def test_demo_cash_factory(config: Config, tmp_path: Path) -> None:
    sim, factory = demo_cash(config, tmp_path / "demo")
    try:
        assert (tmp_path / "demo" / "cash" / "ssp.tty").is_symlink()
        async with Database(tmp_path / "demo" / "k.db") as db:
            side = await factory(db, LedgerBilling(db), lambda e: None)
            try:
                assert side.simulator is None and side.service.change_available()
            finally:
                await side.close()
    finally:
        sim.stop()
