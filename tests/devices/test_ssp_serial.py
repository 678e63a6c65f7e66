"""The pyserial SSP driver against the simulator over a real pseudo-terminal."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from assistant.errors import CashDeviceNotResponding, CashPayoutRefused, CashPortLost
from devices.cash import DeviceEventKind
from tests.cashkit import fast_config, make_sim, open_units


@pytest.fixture
def sim(tmp_path: Path):
    s = make_sim(tmp_path, notes={5000: 1, 2000: 3, 1000: 0}, coins={50: 4, 10: 10}, escrow_timeout_s=0.5)
    yield s
    s.stop()


@pytest.fixture
async def units(sim):
    notes, coins = open_units(sim, fast_config(max_hold_s=2.0))
    await notes.open()
    await coins.open()
    await notes.enable()
    await coins.enable()
    yield notes, coins
    await notes.close()
    await coins.close()


async def poll_until(dev, kind: DeviceEventKind, timeout: float = 5.0) -> list:  # noqa: ASYNC109 - test helper
    seen = []
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        seen += await dev.poll()
        if any(e.kind == kind for e in seen):
            return seen
        await asyncio.sleep(0.02)
    raise AssertionError(f"no {kind}; saw {[e.kind for e in seen]}")


async def test_open_reads_setup_levels_and_counters(units) -> None:
    notes, coins = units
    assert notes.info.model == "SMART_PAYOUT" and coins.info.model == "SMART_HOPPER"
    assert notes.denominations == (100, 500, 1000, 2000, 5000, 10000)
    assert coins.denominations == (10, 50, 100)
    assert (await notes.levels())[2000] == 3
    assert await coins.levels() == {10: 10, 50: 4, 100: 0}
    assert (await notes.counters()).accepted == 0


async def test_lost_reply_is_retransmitted_and_the_payout_runs_once(sim, units) -> None:
    notes, _ = units
    sim.fault("no_reply", unit="notes", n=1)
    await notes.payout({2000: 1}, test=False)
    assert notes.link_stats()["retransmissions"] == 1
    await poll_until(notes, DeviceEventKind.DISPENSED)
    assert (await notes.levels())[2000] == 2  # one note out, not two
    assert sim.snapshot()["tallies"]["paid"] == {2000: 1}


async def test_corrupt_reply_is_retried(sim, units) -> None:
    notes, _ = units
    sim.fault("bad_crc", unit="notes", n=1)
    await notes.payout({5000: 1}, test=False)
    assert notes.link_stats()["crc_errors"] == 1
    await poll_until(notes, DeviceEventKind.DISPENSED)
    assert sim.snapshot()["tallies"]["paid"] == {5000: 1}


async def test_mute_unit_raises_after_retries(sim, units) -> None:
    _, coins = units
    sim.fault("mute", unit="coins")
    with pytest.raises(CashDeviceNotResponding, match="address 16") as err:
        await coins.levels()
    assert err.value.prompt_id == "cash_unavailable"
    assert coins.link_stats()["retransmissions"] == 2


async def test_vanished_port_is_reported_and_reopened(sim, units) -> None:
    notes, coins = units
    sim.fault("vanish")
    with pytest.raises(CashPortLost):
        await notes.poll()
    sim.fault("restore")
    await notes.reopen()
    await coins.reopen()
    assert (await notes.levels())[5000] == 1


async def test_escrow_unheld_goes_back_by_itself(sim, units) -> None:
    notes, _ = units
    await notes.set_accepting(frozenset({10000}))
    assert sim.insert_note(10000)
    await poll_until(notes, DeviceEventKind.ESCROW)
    assert notes.escrow_fen == 10000
    await asyncio.sleep(0.8)  # longer than the unit's 0.5 s escrow, and nobody holds it
    events = await poll_until(notes, DeviceEventKind.REJECTED)
    assert notes.escrow_fen == 0
    assert DeviceEventKind.STACKED not in [e.kind for e in events]
    assert sim.snapshot()["tallies"]["back"] == {10000: 1}


async def test_escrow_held_by_polling_then_stacked(sim, units) -> None:
    notes, _ = units
    await notes.set_accepting(frozenset({10000}))
    assert sim.insert_note(10000)
    await poll_until(notes, DeviceEventKind.ESCROW)
    for _ in range(12):  # 1.2 s: more than twice the escrow timeout, HOLD sent from poll()
        assert await notes.poll() == []
        await asyncio.sleep(0.1)
    assert notes.escrow_fen == 10000
    await notes.accept_escrow()
    events = await poll_until(notes, DeviceEventKind.STORED)
    assert [e.value_fen for e in events if e.kind == DeviceEventKind.STORED] == [10000]
    assert (await notes.counters()).stored == 1


async def test_undecided_note_goes_back_after_max_hold(sim, units) -> None:
    notes, _ = units
    await notes.set_accepting(frozenset({10000}))
    assert sim.insert_note(10000)
    await poll_until(notes, DeviceEventKind.ESCROW)
    await poll_until(notes, DeviceEventKind.REJECTED, timeout=5)  # max_hold is 2 s
    assert sim.snapshot()["tallies"]["back"] == {10000: 1}


async def test_inhibits_per_denomination(sim, units) -> None:
    notes, coins = units
    await notes.set_accepting(frozenset({5000}))
    assert not sim.insert_note(10000)
    assert sim.insert_note(5000)
    await coins.set_accepting(frozenset({50}))
    assert not sim.insert_coin(10)
    assert sim.insert_coin(50)
    events = await poll_until(coins, DeviceEventKind.COIN_CREDIT)
    assert [e.value_fen for e in events if e.kind == DeviceEventKind.COIN_CREDIT] == [50]
    await coins.set_accepting(frozenset())
    assert not sim.insert_coin(50)


async def test_payout_refusals_and_test_mode(sim, units) -> None:
    notes, coins = units
    with pytest.raises(CashPayoutRefused) as err:
        await notes.payout({2000: 4}, test=True)
    assert err.value.reason == "NOT_ENOUGH_VALUE"
    with pytest.raises(CashPayoutRefused) as err:
        await coins.payout_amount(5, test=True)  # no 分 coins
    assert err.value.reason == "CANNOT_PAY_EXACT"
    with pytest.raises(CashPayoutRefused) as err:
        await coins.payout_amount(400, test=True)
    assert err.value.reason == "NOT_ENOUGH_VALUE"
    await coins.payout_amount(30, test=True)
    await notes.payout({2000: 3}, test=True)
    assert (await notes.levels())[2000] == 3 and (await coins.levels())[10] == 10  # tests move nothing


async def test_unit_chooses_pieces_for_payout_amount(sim, units) -> None:
    notes, _ = units
    await notes.payout_amount(6000, test=False)  # one 50 + ... is impossible: three 20s
    events = await poll_until(notes, DeviceEventKind.DISPENSED)
    assert [e.value_fen for e in events if e.kind == DeviceEventKind.DISPENSED] == [6000]
    assert await notes.levels() == {100: 0, 500: 0, 1000: 0, 2000: 0, 5000: 1, 10000: 0}


async def test_halt_stops_a_payout(sim, units) -> None:
    _, coins = units
    await coins.payout({10: 10}, test=False)
    await asyncio.sleep(0.03)
    await coins.halt()
    events = await poll_until(coins, DeviceEventKind.HALTED)
    halted = [e for e in events if e.kind == DeviceEventKind.HALTED][0]
    assert 0 <= halted.value_fen < 100
    assert (await coins.levels())[10] == 10 - halted.value_fen // 10


async def test_separate_ports(tmp_path: Path) -> None:
    sim = make_sim(tmp_path, coins_link=True)
    try:
        notes, coins = open_units(sim, fast_config())
        assert notes.port is not coins.port
        await notes.open()
        await coins.open()
        assert (await coins.levels())[100] == 50 and (await notes.levels())[100] == 30
        await notes.close()
        await coins.close()
    finally:
        sim.stop()
