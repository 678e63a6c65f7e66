"""Every cash fault ends safely: note returned, change from the other unit, credit, or staff with the state.

Real simulator on a real pty and the real pyserial driver; faults are injected into the simulator.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from assistant import cash_journal
from assistant.errors import CashDeviceNotResponding
from assistant.messages import CashEventKind
from assistant.receipts import receipt_for
from assistant.storage import Database
from tests.cashkit import Harness, books, journal_steps, make_sim, seed_account, sim_inventory


async def faults_in_journal(db: Database, pid: str) -> list[str]:
    st = await cash_journal.load(db, pid)
    assert st is not None
    return st.faults


async def test_note_jam_calls_staff_then_credits_when_cleared_to_cashbox(db: Database, tmp_path: Path) -> None:
    sim = make_sim(tmp_path)
    try:
        await seed_account(db, "1000000001", {"2024-05": 5000})
        async with Harness(db, sim) as h:
            await h.service.begin("pj", "1000000001", 5000, None)
            sim.fault("note_jam")
            await h.insert_note(5000)
            ev = await h.wait_event(CashEventKind.FAULT)
            assert ev.detail == "notes:note_jam"
            assert "notes:note_jam" in await faults_in_journal(db, "pj")
            st = await cash_journal.load(db, "pj")
            assert st is not None and st.pending_note is not None and st.inserted_fen == 0
            sim.clear_jam("cashbox")  # staff open the unit; the note drops into the cashbox
            await h.wait_event(CashEventKind.FAULT_CLEARED)
            result = await h.service.wait_finished("pj", 10)
        assert result.posted_fen == 5000 and result.inserted_fen == 5000
        assert sim.snapshot()["cashbox"][5000] == 1
        assert result.receipt.faults == ("notes:note_jam",)
    finally:
        sim.stop()


async def test_note_jam_cleared_to_the_front_is_not_credited(db: Database, tmp_path: Path) -> None:
    sim = make_sim(tmp_path)
    try:
        await seed_account(db, "1000000002", {"2024-05": 5000})
        async with Harness(db, sim) as h:
            await h.service.begin("pjf", "1000000002", 5000, None)
            sim.fault("note_jam")
            await h.insert_note(5000)
            await h.wait_event(CashEventKind.FAULT)
            sim.clear_jam("front")
            ev = await h.wait_event(CashEventKind.RETURNED)
            assert ev.value_fen == 5000
            await h.service.cancel("pjf")
            result = await h.service.wait_finished("pjf", 5)
        assert result.outcome == "cancelled" and result.inserted_fen == 0
        assert sim.snapshot()["tallies"]["back"] == {5000: 1}
    finally:
        sim.stop()


async def test_stacker_full_at_stacking_hands_the_note_back(db: Database, tmp_path: Path) -> None:
    sim = make_sim(tmp_path, notes={})
    try:
        await seed_account(db, "1000000003", {"2024-05": 5000})
        async with Harness(db, sim) as h:
            await h.service.begin("psf", "1000000003", 5000, None)
            # the unit only notices at stacking time that nothing fits any more
            sim.notes.stacker_full_fault = True
            for v in sim.notes.capacity:
                sim.notes.capacity[v] = 0
            await h.insert_note(1000)
            ev = await h.wait_event(CashEventKind.FAULT)
            assert ev.detail == "notes:stacker_full"
            await h.wait_event(CashEventKind.RETURNED)
            st = await cash_journal.load(db, "psf")
            assert st is not None and st.inserted_fen == 0 and st.pending_note is None
            assert ("note", "failed", 0) in await journal_steps(db, "psf")
            # coins are still taken while notes are out of service
            for _ in range(5):
                await h.insert_coin(100)
            for _ in range(45):
                await h.insert_coin(100)
            result = await h.service.wait_finished("psf", 10)
        assert result.posted_fen == 5000
        assert sim.snapshot()["tallies"]["back"] == {1000: 1}
    finally:
        sim.stop()


async def test_cashbox_removed_and_replaced(db: Database, tmp_path: Path) -> None:
    sim = make_sim(tmp_path)
    try:
        await seed_account(db, "1000000004", {"2024-05": 1000})
        async with Harness(db, sim) as h:
            await h.service.begin("pcb", "1000000004", 1000, None)
            sim.fault("cashbox_removed")
            ev = await h.wait_event(CashEventKind.FAULT)
            assert ev.detail == "notes:cashbox_removed"
            assert not sim.insert_note(1000)  # handed straight back
            sim.fault("cashbox_replaced")
            await h.wait_event(CashEventKind.FAULT_CLEARED)
            await asyncio.sleep(0.1)
            await h.insert_note(1000)
            result = await h.service.wait_finished("pcb", 10)
        assert result.posted_fen == 1000
        assert "notes:cashbox_removed" in result.receipt.faults
    finally:
        sim.stop()


async def test_hopper_empty_mid_payout_other_unit_pays_rest_is_credited(db: Database, tmp_path: Path) -> None:
    sim = make_sim(tmp_path, notes={5000: 1, 2000: 1, 500: 1, 100: 1}, coins={100: 5, 50: 5})
    try:
        await seed_account(db, "1000000005", {"2024-05": 12345})
        async with Harness(db, sim) as h:
            await h.service.begin("phe", "1000000005", 12345, None)
            await h.insert_note(10000)
            await h.wait_event(CashEventKind.CREDITED)
            sim.fault("hopper_empty", unit="coins", n=0)  # it finds itself empty at the first coin
            await h.insert_note(10000)
            result = await h.service.wait_finished("phe", 20)
            fault = await h.wait_event(CashEventKind.FAULT)
        assert fault.detail == "coins:timeout"
        # 50 + 20 + 5 from notes, the 1 元 from the recycler instead of the hopper; 5 角 + 5 分 credited
        assert result.change_paid_fen == 7600
        assert result.credited_fen == 55
        assert result.posted_fen == 12345
        assert result.inserted_fen == result.posted_fen + result.change_paid_fen + result.credited_fen
        snap = sim.snapshot()
        assert sum(v * n for v, n in snap["tallies"]["paid"].items()) == 7600
        assert snap["tallies"]["missing"] == {1: 750}  # the coins the hopper only thought it had
        assert await books(db) == sim_inventory(snap)
        moves = await db.fetchall("SELECT sum(delta * denomination_fen) FROM cash_movement WHERE reason = 'missing'")
        assert moves[0][0] == -750
    finally:
        sim.stop()


async def test_partial_payout_is_finished_by_the_hopper(db: Database, tmp_path: Path) -> None:
    sim = make_sim(tmp_path, notes={2000: 5}, coins={100: 60})
    try:
        await seed_account(db, "1000000006", {"2024-05": 4000})
        async with Harness(db, sim) as h:
            await h.service.begin("ppp", "1000000006", 4000, None)
            sim.fault("partial_payout", unit="notes", n=1)
            await h.insert_note(10000)
            result = await h.service.wait_finished("ppp", 20)
            fault = await h.wait_event(CashEventKind.FAULT)
        assert fault.detail == "notes:incomplete_payout"
        assert result.change_paid_fen == 6000 and result.credited_fen == 0
        assert dict(result.receipt.change) == {2000: 1, 100: 40}
        assert await books(db) == sim_inventory(sim.snapshot())
    finally:
        sim.stop()


async def test_payout_jam_remainder_is_credited(db: Database, tmp_path: Path) -> None:
    sim = make_sim(tmp_path, notes={2000: 5}, coins={})
    try:
        await seed_account(db, "1000000007", {"2024-05": 4000})
        async with Harness(db, sim) as h:
            await h.service.begin("pjam", "1000000007", 4000, None)
            sim.fault("payout_jam", unit="notes", n=2)
            await h.insert_note(10000)
            result = await h.service.wait_finished("pjam", 20)
        assert result.change_paid_fen == 4000 and result.credited_fen == 2000
        assert "notes:payout_jam" in result.receipt.faults
    finally:
        sim.stop()


async def test_bad_crc_and_lost_replies_are_retried_and_recorded(db: Database, tmp_path: Path) -> None:
    sim = make_sim(tmp_path)
    try:
        await seed_account(db, "1000000008", {"2024-05": 5000})
        async with Harness(db, sim) as h:
            await h.service.begin("pcrc", "1000000008", 5000, None)
            sim.fault("bad_crc", unit="notes", n=2)
            sim.fault("no_reply", unit="coins", n=1)
            await asyncio.sleep(0.5)
            await h.insert_note(5000)
            result = await h.service.wait_finished("pcrc", 10)
        assert result.posted_fen == 5000
        rows = await db.fetchall("SELECT detail FROM journal WHERE payment_id = 'pcrc' AND step = 'link'")
        text = " ".join(r[0] for r in rows)
        assert "crc_errors" in text and "retransmissions" in text
        assert not any(e.event == CashEventKind.FAULT for e in h.events)
    finally:
        sim.stop()


async def test_unit_that_stops_answering_mid_payment(db: Database, tmp_path: Path) -> None:
    sim = make_sim(tmp_path)
    try:
        await seed_account(db, "1000000009", {"2024-05": 12345})
        async with Harness(db, sim) as h:
            await h.service.begin("pmute", "1000000009", 12345, None)
            await h.insert_note(5000)
            await h.wait_event(CashEventKind.CREDITED)
            sim.fault("mute", unit="notes")
            ev = await h.wait_event(CashEventKind.FAULT)
            assert ev.detail == "notes:no_reply"
            with pytest.raises(CashDeviceNotResponding) as err:
                await h.service.begin("other", "1000000009", 100, None)
            assert err.value.prompt_id == "cash_unavailable"
            sim.fault("unmute", unit="notes")
            result = await h.service.wait_finished("pmute", 10)
        # nothing more was paid out; the 50 元 received was posted against the bill
        assert result.outcome == "recovered" and result.posted_fen == 5000
        assert result.receipt.recovered
        assert "notes:no_reply" in result.receipt.faults
    finally:
        sim.stop()


async def test_port_vanishes_and_comes_back(db: Database, tmp_path: Path) -> None:
    sim = make_sim(tmp_path)
    try:
        await seed_account(db, "1000000010", {"2024-05": 3000})
        async with Harness(db, sim) as h:
            await h.service.begin("pvan", "1000000010", 3000, None)
            await h.insert_note(5000)
            await h.wait_event(CashEventKind.PAID_IN_FULL)
            sim.fault("vanish")
            ev = await h.wait_event(CashEventKind.FAULT)
            assert ev.detail.endswith(("port_lost", "no_reply"))
            await asyncio.sleep(0.3)
            sim.fault("restore")
            result = await h.service.wait_finished("pvan", 20)
        assert result.inserted_fen == 5000
        assert result.inserted_fen == result.posted_fen + result.change_paid_fen + result.credited_fen
        snap = sim.snapshot()
        assert sum(v * n for v, n in snap["tallies"]["paid"].items()) == result.change_paid_fen
        assert await receipt_for(db, "pvan") == result.receipt
    finally:
        sim.stop()


async def test_unit_not_answering_at_start_is_a_clear_error_and_loses_nothing(db: Database, tmp_path: Path) -> None:
    sim = make_sim(tmp_path)
    try:
        await seed_account(db, "1000000011", {"2024-05": 12345})
        async with Harness(db, sim) as h:
            await h.service.begin("pleft", "1000000011", 12345, None)
            await h.insert_note(10000)
            await h.wait_event(CashEventKind.CREDITED)
            h.die()  # no stop: the payment stays open in the journal
        sim.fault("mute", unit="coins")
        h2 = Harness(db, sim)
        with pytest.raises(CashDeviceNotResponding) as err:
            await h2.service.start()
        assert err.value.prompt_id == "cash_unavailable"
        assert "does not answer" in str(err.value)
        assert await cash_journal.open_payment_ids(db) == ["pleft"]
        sim.fault("unmute", unit="coins")
        async with Harness(db, sim) as h3:
            assert await cash_journal.open_payment_ids(db) == []
            result = await h3.service.wait_finished("pleft", 5)
        assert result.inserted_fen == 10000 and result.posted_fen == 10000
    finally:
        sim.stop()


async def test_fault_between_payments_goes_to_the_audit_log(db: Database, tmp_path: Path) -> None:
    from assistant import audit

    sim = make_sim(tmp_path)
    try:
        async with Harness(db, sim) as h:
            sim.fault("cashbox_removed")
            ev = await h.wait_event(CashEventKind.FAULT)
            assert ev.detail == "notes:cashbox_removed"
            for _ in range(100):
                entries = [e for e in await audit.entries(db) if e.action == "cash_fault"]
                if entries:
                    break
                await asyncio.sleep(0.01)
            assert entries[0].detail == {"unit": "notes", "fault": "cashbox_removed", "value_fen": 0}
            assert h.service.change_available()  # payouts still possible
    finally:
        sim.stop()


async def test_cancel_with_a_note_jammed_inside_keeps_that_note_for_the_customer(db: Database, tmp_path: Path) -> None:
    """20 元 went in, then a 50 jams inside the unit and the customer cancels (or times out).
    The 20 comes back at once; the jammed 50 must stay the customer's: when staff clear it into
    the cashbox it is credited to the account, never booked as cash with no owner."""
    from assistant.cash_reconcile import reconcile_cash

    sim = make_sim(tmp_path)
    try:
        await seed_account(db, "1000000012", {"2024-05": 12345})
        async with Harness(db, sim) as h:
            await h.service.begin("pjc", "1000000012", 12345, None)
            await h.insert_note(2000)
            await h.wait_event(CashEventKind.CREDITED)
            sim.fault("note_jam")
            await h.insert_note(5000)
            await h.wait_event(CashEventKind.FAULT)
            assert await h.service.cancel("pjc")
            await h.wait_event(CashEventKind.RETURNED)  # the 20 is handed back without waiting for staff
            paid = sim.snapshot()["tallies"]["paid"]  # by the hopper: the jammed recycler cannot pay
            assert sum(v * n for v, n in paid.items()) == 2000
            assert await cash_journal.open_payment_ids(db) == ["pjc"]  # the 50 is still unresolved
            sim.clear_jam("cashbox")
            result = await h.service.wait_finished("pjc", 10)
        assert result.inserted_fen == 7000 and result.refunded_fen == 2000
        assert result.credited_fen == 5000 and result.posted_fen == 0
        assert (await h.billing.account("1000000012")).prepaid_fen == 5000
        unowned = await db.fetchall("SELECT * FROM cash_movement WHERE reason = 'unassigned'")
        assert unowned == []
        assert (await reconcile_cash(db, h.billing)).discrepancies == ()
        assert await books(db) == sim_inventory(sim.snapshot())
        assert await receipt_for(db, "pjc") == result.receipt
    finally:
        sim.stop()


async def test_jam_cleared_after_a_restart_puts_the_note_unit_back_in_service(db: Database, tmp_path: Path) -> None:
    sim = make_sim(tmp_path)
    try:
        await seed_account(db, "1000000013", {"2024-05": 12345, "2024-06": 1000})
        async with Harness(db, sim) as h:
            await h.service.begin("pjr", "1000000013", 12345, None)
            sim.fault("note_jam")
            await h.insert_note(5000)
            await h.wait_event(CashEventKind.FAULT)
            h.die()  # with the note stuck inside
        async with Harness(db, sim) as h2:
            assert await cash_journal.open_payment_ids(db) == ["pjr"]
            sim.clear_jam("cashbox")
            first = await h2.service.wait_finished("pjr", 10)
            assert first.inserted_fen == 5000 and first.posted_fen == 5000
            await h2.service.begin("pjr2", "1000000013", 1000, None)
            await asyncio.sleep(0.2)
            await h2.insert_note(1000)  # the unit takes notes again
            second = await h2.service.wait_finished("pjr2", 10)
        assert second.posted_fen == 1000
    finally:
        sim.stop()


async def test_a_coin_taken_while_the_disk_is_full_is_still_the_customers(tiny_disk: Path, tmp_path: Path) -> None:
    """The disk fills up mid-payment: a note is handed back (its journal entry cannot be
    written), but a coin drops straight into the hopper. Staff are called, and once there is
    room again the coin is counted for the customer when the payment settles."""
    from tests.conftest import fill

    sim = make_sim(tmp_path)
    db = await Database(tiny_disk / "kiosk.db").open()
    try:
        await seed_account(db, "1000000014", {"2024-05": 300})
        async with Harness(db, sim) as h:
            await h.service.begin("pdf", "1000000014", 300, None)
            filler = fill(tiny_disk)
            await h.insert_coin(100)  # physically in the hopper; the journal cannot take it
            ev = await h.wait_event(CashEventKind.FAULT)
            assert ev.detail == "kiosk:storage"
            assert not await asyncio.to_thread(sim.insert_note, 1000) or await h.wait_event(CashEventKind.RETURNED)
            filler.unlink()
            for n in range(1, 4):
                await h.insert_coin(100)
                await h.wait_event(CashEventKind.CREDITED, count=n)
            result = await h.service.wait_finished("pdf", 10)
        # four coins in for a 3 元 bill: 3 posted, 1 back as change
        assert result.inserted_fen == 400 and result.posted_fen == 300 and result.change_paid_fen == 100
        assert await books(db) == sim_inventory(sim.snapshot())
        assert sim.snapshot()["tallies"]["back"].get(1000, 0) == 1  # the note never went in
    finally:
        sim.stop()
        await db.close()


async def test_staff_clearing_faults_puts_a_refilled_hopper_back_into_change(db: Database, tmp_path: Path) -> None:
    sim = make_sim(tmp_path, notes={5000: 1, 2000: 1, 500: 1, 100: 1}, coins={100: 5, 50: 5})
    try:
        await seed_account(db, "1000000015", {"2024-05": 12345, "2024-06": 950})
        async with Harness(db, sim) as h:
            await h.service.begin("phf", "1000000015", 12345, None)
            await h.insert_note(10000)
            await h.wait_event(CashEventKind.CREDITED)
            sim.fault("hopper_empty", unit="coins", n=0)
            await h.insert_note(10000)
            await h.service.wait_finished("phf", 20)
            assert 50 not in h.service.change_available()  # the hopper failed: out of change-making
            sim.load_cassette("coins", {100: 20, 50: 20, 10: 20})  # staff refill it ...
            await h.service.refresh()  # ... and clear the fault on the staff menu
            assert h.service.change_available().get(50) == 20
            await h.service.begin("phf2", "1000000015", 950, None)
            await h.insert_note(1000)
            result = await h.service.wait_finished("phf2", 20)
        assert result.change_paid_fen == 50 and result.credited_fen == 0
        assert dict(result.receipt.change) == {50: 1}
    finally:
        sim.stop()


async def test_receipt_of_a_payment_finished_after_a_power_cut_can_be_reprinted(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The kiosk dies while the change is going out; the restart finishes the payment from the
    journal, but the customer never got a receipt. At the counter staff must be able to print
    it - by the serial number a customer may have heard, or by the account number."""
    from assistant.cli import main

    sim = make_sim(tmp_path)
    frozen = asyncio.Event()

    async def power_cut(step: str) -> None:
        if step == "payout_started":  # the kiosk stops dead here, the unit pays out on its own
            frozen.set()
            await asyncio.Event().wait()

    db_file = str(tmp_path / "kiosk.db")
    try:
        await seed_account(db, "1000000016", {"2024-05": 12345})
        h = Harness(db, sim, checkpoint=power_cut)
        await h.__aenter__()
        await h.service.begin("20261203120000123456", "1000000016", 12345, None)
        await h.insert_note(10000)
        await h.wait_event(CashEventKind.CREDITED)
        await h.insert_note(10000)
        await asyncio.wait_for(frozen.wait(), 10)
        h.die()
        await asyncio.sleep(0.5)
        async with Database(db_file) as db2, Harness(db2, sim) as h2:  # the restart
            result = await h2.service.wait_finished("20261203120000123456", 10)
        assert result.receipt.recovered and result.posted_fen == 12345
    finally:
        sim.stop()
    monkeypatch.setenv("KIOSK_DATA_DIR", str(tmp_path / "var"))
    capsys.readouterr()
    def cli(*args: str) -> int:
        return main(["cash", "receipt", *args, "--db", db_file])

    assert await asyncio.to_thread(cli, "123456") == 0  # the serial number, as spoken and printed
    text = capsys.readouterr().out
    assert "电费交费凭条（补打）" in text and "******0016" in text  # marked as a copy
    assert f"¥{result.posted_fen // 100}.{result.posted_fen % 100:02d}" in text
    # the time the customer paid, in the hall's time zone - not the time of the reprint
    paid_at = dt.datetime.fromisoformat(result.receipt.closed_at.replace("Z", "+00:00"))
    assert paid_at.astimezone(ZoneInfo("Asia/Shanghai")).strftime("时间: %Y-%m-%d %H:%M") in text
    assert await asyncio.to_thread(cli, "--account", "1000000016") == 0
    listing = capsys.readouterr().out
    assert "20261203120000123456" in listing and "recovered" in listing
    # when it was paid, in the hall's local time and saying so (it used to be the stored UTC)
    (stamp,) = await db.fetchone("SELECT created_at FROM payment WHERE id = '20261203120000123456'")
    local = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00")).astimezone(ZoneInfo("Asia/Shanghai"))
    assert listing.startswith("times in Asia/Shanghai (UTC+08:00), the kiosk's time zone")
    assert f"20261203120000123456  {local:%Y-%m-%d %H:%M:%S}  due 123.45  recovered" in listing
    assert stamp not in listing
    assert await asyncio.to_thread(cli, "999999") == 1
    assert "no cash payment with the id or serial number '999999'" in capsys.readouterr().err
    assert await asyncio.to_thread(cli, "--account", "1000000099") == 1
    assert "no cash payments for account 1000000099" in capsys.readouterr().err
    missing = tmp_path / "nosuch.db"
    assert await asyncio.to_thread(main, ["cash", "receipt", "123456", "--db", str(missing)]) == 1
    assert f"no database at {missing}" in capsys.readouterr().err and not missing.exists()


async def test_payout_command_lost_three_times_pays_once_and_leaves_no_stray_error(db: Database, tmp_path: Path) -> None:
    """The real payout command gets no reply, three times: the unit paid on the first (it answers
    retransmissions from memory), recovery reads what left the unit from its levels - and no
    orphaned payout wait is left behind, failed, to surface in the log as "Future exception was
    never retrieved" whenever it is collected."""
    sim = make_sim(tmp_path)
    armed: list[str] = []

    def at(step: str) -> None:
        if step == "payout_tested" and not armed:
            armed.append(step)
            sim.fault("no_reply", unit="notes", n=3)

    try:
        await seed_account(db, "1000000017", {"2024-05": 4000})
        async with Harness(db, sim, checkpoint=at) as h:
            await h.service.begin("plost", "1000000017", 4000, None)
            await h.insert_note(10000)
            result = await h.service.wait_finished("plost", 20)
            assert h.service._payout_waiters == {}
        assert result.change_paid_fen == 6000 and result.posted_fen == 4000
        assert sum(v * n for v, n in sim.snapshot()["tallies"]["paid"].items()) == 6000
        assert "notes:no_reply" in result.receipt.faults
    finally:
        sim.stop()
