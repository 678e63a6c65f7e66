"""Cash payments end to end: real simulator on a real pty, real pyserial driver, real journal."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant import cash_journal
from assistant.messages import CashEventKind
from assistant.receipts import receipt_for
from assistant.storage import Database
from tests.cashkit import Harness, books, journal_steps, make_sim, seed_account, sim_inventory


@pytest.fixture
def sim(tmp_path: Path):
    s = make_sim(tmp_path)
    yield s
    s.stop()


async def test_demo_200_yuan_for_123_45(db: Database, sim) -> None:
    """200 元 (RMB has no 200 note: two 100 notes) for 123.45 元: 76.50 back, 0.05 credited."""
    await seed_account(db, "0012345678", {"2024-05": 12345})
    async with Harness(db, sim) as h:
        await h.service.begin("pay-1", "0012345678", 12345, None)
        await h.insert_note(10000)
        await h.wait_event(CashEventKind.CREDITED)
        await h.insert_note(10000)
        result = await h.service.wait_finished("pay-1", 20)
    assert result.inserted_fen == 20000
    assert result.change_due_fen == 7655
    assert result.change_paid_fen == 7650
    assert result.credited_fen == 5
    assert result.posted_fen == 12345
    assert result.outcome == "paid"
    kinds = h.kinds()
    for k in (CashEventKind.NOTE_IN_ESCROW, CashEventKind.CREDITED, CashEventKind.PAID_IN_FULL,
              CashEventKind.DISPENSING, CashEventKind.CHANGE_PAID, CashEventKind.REMAINDER_CREDITED,
              CashEventKind.FINISHED):
        assert k in kinds
    assert kinds.index(CashEventKind.CREDITED) < kinds.index(CashEventKind.CHANGE_PAID)
    snap = sim.snapshot()
    assert sum(v * n for v, n in snap["tallies"]["paid"].items()) == 7650
    account = await h.billing.account("0012345678")
    assert account.arrears_fen == 0 and account.prepaid_fen == 5
    receipt = await receipt_for(db, "pay-1")
    assert receipt == result.receipt
    assert receipt.inserted == ((10000, 2),)
    assert sum(v * n for v, n in receipt.change) == 7650
    steps = await journal_steps(db, "pay-1")
    names = [(s, st) for s, st, _ in steps]
    # every side effect has its intent before its outcome
    for step in ("note", "payout", "post", "credit"):
        assert names.index((step, "intent")) < names.index((step, "done"))
    assert names[-1] == ("close", "done")
    assert await books(db) == {k: {v: n for v, n in m.items()} for k, m in sim_inventory(snap).items()}


async def test_greedy_trap_pays_three_twenties(db: Database, tmp_path: Path) -> None:
    """60 元 change with one 50, three 20s and no 10s: three 20s go out."""
    sim = make_sim(tmp_path / "s", notes={5000: 1, 2000: 3}, coins={})
    try:
        await seed_account(db, "0000000001", {"2024-05": 4000})
        async with Harness(db, sim) as h:
            await h.service.begin("p60", "0000000001", 4000, None)
            await h.insert_note(10000)
            result = await h.service.wait_finished("p60", 20)
        assert result.change_paid_fen == 6000 and result.credited_fen == 0
        assert result.receipt.change == ((2000, 3),)
        assert sim.snapshot()["notes"][5000] == 1
    finally:
        sim.stop()


async def test_change_impossible_returns_the_note_before_stacking(db: Database, tmp_path: Path) -> None:
    sim = make_sim(tmp_path / "s", notes={2000: 1}, coins={})
    try:
        await seed_account(db, "0000000002", {"2024-05": 3000})
        async with Harness(db, sim) as h:
            await h.service.begin("pimp", "0000000002", 3000, None)
            assert h.service.change_available() == {2000: 1}
            await h.insert_note(10000)  # change 70 元: impossible from one 20
            ev = await h.wait_event(CashEventKind.CHANGE_IMPOSSIBLE)
            assert ev.value_fen == 10000
            # a 50 would need 20 change: payable, so that is the smaller note to offer
            assert ev.detail == "smaller_note_fen=5000"
            await h.wait_event(CashEventKind.RETURNED)
            snap = sim.snapshot()
            assert snap["tallies"]["back"] == {10000: 1}
            assert snap["notes"][10000] == 0 and snap["cashbox"][10000] == 0
            steps = await journal_steps(db, "pimp")
            assert ("note_rejected", "info", 0) in steps
            assert not any(s == "note" for s, _, _ in steps)  # never stacked, never credited
            # the customer chooses to credit the excess and inserts the note again
            await h.service.accept_excess_as_credit("pimp")
            await h.insert_note(10000)
            result = await h.service.wait_finished("pimp", 20)
        assert result.posted_fen == 3000 and result.credited_fen == 7000 and result.change_paid_fen == 0
        assert (await h.billing.account("0000000002")).prepaid_fen == 7000
    finally:
        sim.stop()


async def test_coins_only_exact(db: Database, sim) -> None:
    await seed_account(db, "0000000003", {"2024-05": 160})
    async with Harness(db, sim) as h:
        await h.service.begin("pc", "0000000003", 160, None)
        await h.insert_coin(100)
        await h.insert_coin(50)
        await h.insert_coin(10)
        result = await h.service.wait_finished("pc", 20)
    assert (result.inserted_fen, result.change_paid_fen, result.credited_fen) == (160, 0, 0)
    assert result.receipt.inserted == ((100, 1), (50, 1), (10, 1))


async def test_cancel_pays_back_what_was_inserted(db: Database, sim) -> None:
    await seed_account(db, "0000000004", {"2024-05": 12345})
    async with Harness(db, sim) as h:
        await h.service.begin("pcan", "0000000004", 12345, None)
        await h.insert_note(5000)
        await h.wait_event(CashEventKind.CREDITED)
        await h.insert_coin(50)
        await h.wait_event(CashEventKind.CREDITED, count=2)
        await h.service.cancel("pcan")
        result = await h.service.wait_finished("pcan", 5)
    assert result.outcome == "cancelled"
    assert result.refunded_fen == 5050 and result.posted_fen == 0 and result.credited_fen == 0
    assert sum(v * n for v, n in sim.snapshot()["tallies"]["paid"].items()) == 5050
    assert (await h.billing.account("0000000004")).arrears_fen == 12345


async def test_begin_is_idempotent(db: Database, sim) -> None:
    await seed_account(db, "0000000005", {"2024-05": 500})
    async with Harness(db, sim) as h:
        await h.service.begin("pid", "0000000005", 500, None)
        await h.service.begin("pid", "0000000005", 500, None)
        await h.insert_note(500)
        first = await h.service.wait_finished("pid", 20)
        await h.service.begin("pid", "0000000005", 500, None)  # finished: nothing happens again
        again = await h.service.wait_finished("pid", 1)
    assert first == again
    rows = await db.fetchall("SELECT count(*) FROM payment WHERE id = 'pid'")
    assert rows[0][0] == 1
    postings = await db.fetchall("SELECT count(*) FROM billing_posting WHERE reference LIKE 'pid%'")
    assert postings[0][0] == 1


async def test_escrow_is_held_while_the_kiosk_decides(db: Database, tmp_path: Path) -> None:
    """The unit hands an unheld note back after its escrow timeout; HOLD keeps it in time."""
    sim = make_sim(tmp_path / "s", escrow_timeout_s=0.6)
    try:
        await seed_account(db, "0000000006", {"2024-05": 5000})

        async def slow(step: str) -> None:
            if step == "note_intent":
                import asyncio
                await asyncio.sleep(1.5)  # a slow decision: 2.5x the unit's escrow timeout

        from tests.cashkit import fast_config
        async with Harness(db, sim, fast_config(hold_interval_s=0.2), checkpoint=slow) as h:
            await h.service.begin("ph", "0000000006", 5000, None)
            await h.insert_note(5000)
            result = await h.service.wait_finished("ph", 20)
        assert result.inserted_fen == 5000 and result.posted_fen == 5000
        assert sum(1 for u, c, _ in h.device_log if c == "accept") == 1
    finally:
        sim.stop()


async def test_without_hold_the_unit_returns_the_note(db: Database, tmp_path: Path) -> None:
    sim = make_sim(tmp_path / "s", escrow_timeout_s=0.4)
    try:
        await seed_account(db, "0000000007", {"2024-05": 5000})

        async def slow(step: str) -> None:
            if step == "note_intent":
                import asyncio
                await asyncio.sleep(1.0)

        from tests.cashkit import fast_config
        # HOLD only every 5 s: too late for a 0.4 s escrow
        async with Harness(db, sim, fast_config(hold_interval_s=5.0), checkpoint=slow) as h:
            await h.service.begin("pn", "0000000007", 5000, None)
            await h.insert_note(5000)
            await h.wait_event(CashEventKind.RETURNED)
            st = await cash_journal.load(db, "pn")
            assert st is not None and st.inserted_fen == 0 and st.pending_note is None
            assert sim.snapshot()["tallies"]["back"] == {5000: 1}
            await h.service.cancel("pn")
    finally:
        sim.stop()
