"""Cassette exchange under dual control, against the simulator, plus the ``cash`` command."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant import audit
from assistant.cassette import CassetteExchange
from assistant.cli import main
from assistant.errors import CassetteError
from assistant.messages import CashEventKind
from assistant.seed import hash_pin
from assistant.staff import StaffDirectory, StaffVerificationFailed
from assistant.storage import Database
from devices.cash import Unit
from tests.cashkit import Harness, books, make_sim, seed_account


async def add_staff(db: Database) -> None:
    async with db.transaction() as tx:
        for no, role, pin in (("B01", "bank", "1111"), ("B02", "bank", "2222"), ("H01", "hall", "3333")):
            await tx.execute("INSERT INTO staff(staff_no, name, role, pin_hash) VALUES (?, ?, ?, ?)",
                             (no, f"staff {no}", role, hash_pin(pin)))


BANK, HALL = ("B01", "1111"), ("H01", "3333")


async def test_dual_control_is_enforced(db: Database, tmp_path: Path) -> None:
    sim = make_sim(tmp_path)
    try:
        await add_staff(db)
        async with Harness(db, sim) as h:
            ex = CassetteExchange(db, h.service.units, StaffDirectory(db, max_failures=10))
            with pytest.raises(StaffVerificationFailed):
                await ex.start(Unit.NOTES, ("B01", "0000"), HALL)
            with pytest.raises(StaffVerificationFailed, match="not hall or admin"):
                await ex.start(Unit.NOTES, BANK, ("B02", "2222"))
            with pytest.raises(StaffVerificationFailed, match="not bank"):
                await ex.start(Unit.NOTES, HALL, HALL)
            with pytest.raises(CassetteError, match="hand count"):
                await ex.start(Unit.CASHBOX, BANK, HALL)
            assert await db.fetchone("SELECT 1 FROM cash_exchange") is None
            failed = [e for e in await audit.entries(db) if e.action == "staff_verify_failed"]
            assert len(failed) == 1  # the wrong PIN (the others verified, then had the wrong role)
    finally:
        sim.stop()


async def test_exchange_locks_the_unit_and_reports_differences(db: Database, tmp_path: Path) -> None:
    sim = make_sim(tmp_path, notes={2000: 30, 5000: 10}, coins={100: 20})
    try:
        await add_staff(db)
        await seed_account(db, "2000000001", {"2024-05": 300})
        async with Harness(db, sim) as h:
            ex = CassetteExchange(db, h.service.units)
            sim.notes.levels[2000] -= 1  # a note goes missing behind the kiosk's back
            report = await ex.start(Unit.NOTES, BANK, HALL)
            assert report.expected_out == {100: 0, 500: 0, 1000: 0, 2000: 30, 5000: 10, 10000: 0}
            assert report.difference_out == {2000: -1}
            assert report.difference_out_fen == -2000
            with pytest.raises(CassetteError, match="already open"):
                await ex.start(Unit.NOTES, BANK, HALL)
            # while the recycler is locked a payment still works with coins only
            await h.service.refresh()
            await h.service.begin("lockpay", "2000000001", 300, None)
            assert not sim.insert_note(1000)
            for _ in range(3):
                await h.insert_coin(100)
            await h.service.wait_finished("lockpay", 10)
            # the bank loads a new cassette: 50 x 20 declared, but only 49 went in
            sim.load_cassette("notes", {2000: 49, 10000: 5})
            done = await ex.end(Unit.NOTES, BANK, HALL, {2000: 50, 10000: 5})
            assert done.state == "closed"
            assert done.difference_in == {2000: -1}
            await h.service.refresh()
            assert h.service.change_available()[2000] == 49
            b = await books(db)
            assert b["notes"][2000] == 49 and b["notes"][10000] == 5
            assert b["coins"][100] == 23
            # both ends are in the hash-chained audit log, with the differences
            entries = [e for e in await audit.entries(db) if e.action.startswith("cassette")]
            assert [e.action for e in entries] == ["cassette_exchange_start", "cassette_exchange_end"]
            assert entries[0].detail["difference"] == '{"2000": -1}'
            assert entries[1].detail["difference"] == '{"2000": -1}'
            assert await audit.verify(db) is None
    finally:
        sim.stop()


async def test_no_exchange_during_an_open_payment(db: Database, tmp_path: Path) -> None:
    sim = make_sim(tmp_path)
    try:
        await add_staff(db)
        await seed_account(db, "2000000002", {"2024-05": 5000})
        async with Harness(db, sim) as h:
            await h.service.begin("busy", "2000000002", 5000, None)
            with pytest.raises(CassetteError, match="still open"):
                await CassetteExchange(db, h.service.units).start(Unit.COINS, BANK, HALL)
            await h.insert_note(5000)
            await h.wait_event(CashEventKind.FINISHED)
    finally:
        sim.stop()


def test_cash_cli_levels_and_exchange(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """``main.py cash`` with the simulator: levels, then a full coin hopper refill."""
    import asyncio

    monkeypatch.setenv("KIOSK_DATA_DIR", str(tmp_path / "var"))
    dbfile = str(tmp_path / "kiosk.db")

    async def prepare() -> None:
        async with Database(dbfile) as db:
            await add_staff(db)

    asyncio.run(prepare())
    assert main(["cash", "levels", "--db", dbfile]) == 0
    out = capsys.readouterr().out
    assert "notes (SMART_PAYOUT, firmware 0420)" in out
    # the books column is there before the books know the units ...
    header = "     value  in unit    books  difference"
    assert out.count(header) == 2
    assert "    100.00       10        -           -\n" in out and "      0.10      100        -           -\n" in out
    assert "  value: 2230.00 yuan in the unit, not in the books yet" in out
    common = ["--db", dbfile, "--unit", "coins", "--bank", "B01", "--bank-pin", "1111",
              "--hall", "H01", "--hall-pin", "3333"]
    assert main(["cash", "exchange", "start", *common]) == 0
    assert "exchange 1 of coins: open" in capsys.readouterr().out
    assert main(["cash", "exchange", "end", *common, "--counts", "100=80,50=60,10=200"]) == 0
    out = capsys.readouterr().out
    assert "closed" in out and "DIFFERENCE" not in out
    assert main(["cash", "levels", "--db", dbfile]) == 0
    out = capsys.readouterr().out
    # ... and stays when the books agree with the counts (it used to be left out then)
    assert out.count(header) == 2 and "DIFFERENCE" not in out
    assert "      1.00       80       80           0\n" in out and "    100.00       10       10           0\n" in out
    assert "  value: 130.00 yuan in the unit, 130.00 yuan in the books" in out
    assert "cashbox (the recycler cannot count it: books only)\n     value    books\n  value: 0.00 yuan" in out
    assert main(["cash", "exchange", "start", *common[:-4], "--hall", "H01", "--hall-pin", "9999"]) == 2


async def test_counts_that_cannot_be_right_are_refused_before_anything_is_recorded(db: Database, tmp_path: Path) -> None:
    """Bank staff type a hand count with a minus sign, or a note the kiosk has no such value of
    (30 元): the exchange is refused naming the entry, and neither the books nor the lock change."""
    sim = make_sim(tmp_path, notes={2000: 30, 5000: 10}, coins={100: 20})
    try:
        await add_staff(db)
        async with Harness(db, sim) as h:
            ex = CassetteExchange(db, h.service.units)
            before = await books(db)
            with pytest.raises(CassetteError, match="negative"):
                await ex.start(Unit.CASHBOX, BANK, HALL, {10000: -3})
            with pytest.raises(CassetteError, match="30.00"):
                await ex.start(Unit.CASHBOX, BANK, HALL, {3000: 2})
            with pytest.raises(CassetteError, match="0.50"):
                await ex.start(Unit.NOTES, BANK, HALL, {50: 4})
            assert await db.fetchone("SELECT 1 FROM cash_exchange") is None
            assert await books(db) == before
            await ex.start(Unit.CASHBOX, BANK, HALL, {10000: 3})
            with pytest.raises(CassetteError, match="30.00"):
                await ex.end(Unit.CASHBOX, BANK, HALL, {3000: 1})
            assert (await ex.open_exchange(Unit.CASHBOX)) is not None  # still locked, nothing booked
            done = await ex.end(Unit.CASHBOX, BANK, HALL, {})
            assert done.state == "closed"
    finally:
        sim.stop()
