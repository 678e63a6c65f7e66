"""Daily reconciliation: a day of real payments, then planted discrepancies, each found exactly.

The day is made by the real services: cash payments through the SSP simulator on a
pty with the real driver and :class:`CashPaymentService`, card and e-wallet payments
through :class:`NonCashPayments` and the sandbox gateways, and the units' own counts
read from the devices at the close. Each test plants one fault in a copy of it.
"""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from assistant.backoffice import business_day
from assistant.billing import LedgerBilling
from assistant.cli import main
from assistant.messages import CashEventKind
from assistant.noncash import NonCashPayments
from assistant.payments import SandboxConfig, SandboxGateway, SandboxTokenizer
from assistant.reconcile import Kind, reconcile_days, record_unit_counts, summary
from assistant.storage import Database
from devices.cash import Unit
from tests.cashkit import Harness, make_sim, seed_account

ZONE = "Asia/Shanghai"


@dataclass(frozen=True)
class Day:
    """A reconciled-clean day of real payments, and what a test needs to plant faults."""

    db: Path
    day: date
    short_levels: dict[str, dict[int, int]]
    """What the units report after one 10 元 note was taken out of the recycler's store."""


async def _build(tmp: Path) -> Day:
    from zoneinfo import ZoneInfo

    sim = make_sim(tmp / "sim")
    db = await Database(tmp / "kiosk.db").open()
    try:
        await seed_account(db, "0000000001", {"2024-05": 12345})
        await seed_account(db, "0000000002", {"2024-05": 8650})
        await seed_account(db, "0000000003", {"2024-05": 2000})
        await seed_account(db, "0000000004", {"2024-05": 31520})
        await seed_account(db, "0000000005", {"2024-05": 6780})
        async with Harness(db, sim) as h:
            credited = 0
            for pid, account, due, notes in (("cash-a", "0000000001", 12345, (10000, 10000)),
                                             ("cash-b", "0000000002", 8650, (10000,)),
                                             ("cash-c", "0000000003", 2000, (2000,))):
                await h.service.begin(pid, account, due, None)
                for n in notes:
                    await h.insert_note(n)
                    credited += 1  # the next note goes in once this one is stacked and credited
                    await h.wait_event(CashEventKind.CREDITED, count=credited)
                result = await h.service.wait_finished(pid, 20)
                assert result.posted_fen == due
            cfg = SandboxConfig(latency_s=0.0, timeout_s=1.0)
            card, wallet = SandboxGateway(db, "card", cfg), SandboxGateway(db, "ewallet", cfg)
            await card.ensure_schema()
            token = await SandboxTokenizer(db).tokenize("6222021234567897", "ICBC")
            noncash = NonCashPayments(db, h.billing, {"card": card, "ewallet": wallet}, "K001", timeout_s=1.0)
            assert (await noncash.pay("card-d", "0000000004", None, "card", token.token, 31520)).ok
            assert (await noncash.pay("wallet-e", "0000000005", None, "ewallet", "EW0000000005", 6780)).ok
            notes_dev, coins_dev = h.service.units[Unit.NOTES], h.service.units[Unit.COINS]
            # close of business: the units' own counts go on record
            await record_unit_counts(db, {"notes": await notes_dev.levels(), "coins": await coins_dev.levels()})
            # for the "short by one note" case: a 10 元 note leaves the store without a payment
            levels = sim.snapshot()["notes"]
            sim.load_cassette("notes", {**levels, 1000: levels[1000] - 1})
            short = {"notes": await notes_dev.levels(), "coins": await coins_dev.levels()}
        row = await db.fetchone("SELECT created_at FROM payment WHERE id = 'cash-a'")
        day = business_day(row[0], ZoneInfo(ZONE))
    finally:
        await db.close()
        sim.stop()
    return Day(tmp / "kiosk.db", day, short)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Day:
    return asyncio.run(_build(tmp_path_factory.mktemp("day")))


@pytest.fixture
def day(built: Day, tmp_path: Path) -> Day:
    """A private copy of the built day's database."""
    copy = tmp_path / "kiosk.db"
    shutil.copy(built.db, copy)
    return Day(copy, built.day, built.short_levels)


async def _reconcile(day: Day):
    from zoneinfo import ZoneInfo

    async with Database(day.db) as db:
        (report,) = await reconcile_days(db, day.day, day.day, zone=ZoneInfo(ZONE))
    return report


async def test_a_clean_day_says_so_with_the_totals(day: Day) -> None:
    r = await _reconcile(day)
    assert r.discrepancies == ()
    assert dict(r.payments) == {"cash": 3, "card": 1, "ewallet": 1}
    # cash: 200 + 100 + 20 in; 76.50 + 13.50 back; 0.05 credited (the 分 of 123.45)
    assert r.cash["inserted"] == 32000
    assert r.cash["change"] == 7650 + 1350
    assert r.cash["credited"] == 5
    assert r.cash["kept"] == 12345 + 8650 + 2000 + 5
    lines = {(c.channel, c.bank): c for c in r.clearing}
    assert (lines[("cash", "")].journal_fen, lines[("cash", "")].posted_fen) == (23000, 23000)
    assert (lines[("card", "ICBC")].journal_fen, lines[("card", "ICBC")].settled_fen) == (31520, 31520)
    assert lines[("ewallet", "ewallet")].settled_fen == 6780
    assert r.takings_fen == 23000 + 31520 + 6780
    counted = {(u.unit, u.denomination_fen): u for u in r.units if u.counted is not None}
    assert counted and all(u.difference == 0 for u in counted.values())
    text = summary(r)
    assert "NO DISCREPANCY" in text and "takings 613.00 yuan" in text


async def test_a_missing_posting_is_found_with_its_payment(day: Day) -> None:
    async with Database(day.db) as db, db.transaction() as tx:
        await tx.execute("DELETE FROM billing_posting WHERE reference = 'cash-b:pay'")
    r = await _reconcile(day)
    assert [(d.kind, d.payment_ids, d.amount_fen) for d in r.discrepancies] == [
        (Kind.MISSING_POSTING, ("cash-b",), 8650)]


async def test_a_double_posting_is_found_with_its_payment(day: Day) -> None:
    async with Database(day.db) as db:
        # a retry that posted the same payment again under a new reference
        await LedgerBilling(db).post("cash-a:pay-retry", "0000000001", 12345, "payment", "cash", "K001")
    r = await _reconcile(day)
    assert [(d.kind, d.payment_ids, d.amount_fen) for d in r.discrepancies] == [
        (Kind.DOUBLE_POSTING, ("cash-a",), 12345)]
    assert "cash-a:pay-retry" in r.discrepancies[0].detail


async def test_a_unit_short_by_one_note_is_found_with_the_payments_that_moved_it(day: Day) -> None:
    async with Database(day.db) as db:
        await record_unit_counts(db, day.short_levels)
        moved = {r[0] for r in await db.fetchall(
            "SELECT DISTINCT payment_id FROM cash_movement WHERE unit = 'notes' AND denomination_fen = 1000 "
            "AND payment_id IS NOT NULL")}
    r = await _reconcile(day)
    assert len(r.discrepancies) == 1
    d = r.discrepancies[0]
    assert (d.kind, d.unit, d.denomination_fen, d.amount_fen) == (Kind.UNIT_COUNT, "notes", 1000, -1000)
    assert set(d.payment_ids) == moved and moved  # 13.50 change for 86.50 took a 10 元 note
    assert "short by 1" in d.detail


async def test_a_missing_settlement_record_is_found(day: Day) -> None:
    async with Database(day.db) as db, db.transaction() as tx:
        await tx.execute("DELETE FROM sandbox_charge WHERE reference = 'card-d'")
    r = await _reconcile(day)
    assert [(d.kind, d.payment_ids, d.amount_fen) for d in r.discrepancies] == [
        (Kind.SETTLEMENT_MISSING, ("card-d",), 31520)]
    assert {(c.channel, c.bank): c.settled_fen for c in r.clearing}[("card", "ICBC")] == 0


async def test_a_mismatched_settlement_record_is_found(day: Day) -> None:
    async with Database(day.db) as db, db.transaction() as tx:
        await tx.execute("UPDATE sandbox_charge SET amount_fen = amount_fen - 100 WHERE reference = 'wallet-e'")
    r = await _reconcile(day)
    assert [(d.kind, d.payment_ids, d.amount_fen) for d in r.discrepancies] == [
        (Kind.SETTLEMENT_AMOUNT, ("wallet-e",), -100)]


async def test_a_settlement_with_no_payment_is_found(day: Day) -> None:
    async with Database(day.db) as db, db.transaction() as tx:
        await tx.execute("INSERT INTO sandbox_charge(reference, channel, payer, amount_fen, status, gateway_ref, bank) "
                         "VALUES ('ghost-1', 'card', 'tok_x', 5000, 'approved', 'CAghost', 'ICBC')")
    r = await _reconcile(day)
    assert [(d.kind, d.payment_ids, d.amount_fen) for d in r.discrepancies] == [
        (Kind.SETTLEMENT_WITHOUT_PAYMENT, ("ghost-1",), 5000)]


def test_cli_writes_the_reports_and_flags_a_bad_day(day: Day, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["reconcile", "--date", str(day.day), "--db", str(day.db), "--out", str(out), "--quiet"]) == 0
    names = sorted(p.name for p in out.iterdir())
    stem = f"K001-{day.day}"
    assert f"{stem}-summary.txt" in names and f"{stem}-clearing.csv" in names
    assert f"{stem}-settlement-card-ICBC.csv" in names
    assert "NO DISCREPANCY" in (out / f"{stem}-summary.txt").read_text()

    async def plant() -> None:
        async with Database(day.db) as db, db.transaction() as tx:
            await tx.execute("DELETE FROM billing_posting WHERE reference = 'card-d-pay'")

    asyncio.run(plant())
    assert main(["reconcile", "--date", str(day.day), "--db", str(day.db), "--out", str(out), "--quiet"]) == 3
    rows = (out / f"{stem}-discrepancies.csv").read_text().splitlines()
    assert len(rows) == 2 and "missing_posting" in rows[1] and "card-d" in rows[1]


def test_a_date_with_no_data_is_refused_and_nothing_is_written(day: Day, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["reconcile", "--date", "2020-01-01", "--db", str(day.db), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--date" in err and "2020-01-01" in err and f"data from {day.day}" in err
    assert not out.exists()
    assert main(["reconcile", "--date", "2025-02-30", "--db", str(day.db), "--out", str(out)]) == 2
    assert "'2025-02-30' is not a date" in capsys.readouterr().err
    assert not out.exists()


# ----------------------------------------------------------------------------- loaded histories


async def test_the_loader_writes_a_payment_the_way_the_service_does(built: Day, tmp_path: Path) -> None:
    """The same payment (123.45 due, two 100 notes, the demo float) through the real service and the loader."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from assistant.backoffice import BackofficeSection
    from assistant.cash_history import Transaction
    from assistant.cash_ledger import load_history
    from assistant.cash_model import KEYS, Capacities
    from tests.cashkit import DEMO_COINS, DEMO_NOTES

    def shape(rows):
        return [(r[0], r[1], r[2]) for r in rows if r[0] not in ("link", "fault")]

    sql = "SELECT step, state, amount_fen FROM journal WHERE payment_id = 'cash-a' ORDER BY id"
    async with Database(built.db) as db:
        real = shape(await db.fetchall(sql))
        real_moves = sorted(tuple(r) for r in await db.fetchall(
            "SELECT unit, denomination_fen, delta, reason FROM cash_movement WHERE payment_id = 'cash-a'"))
    t = Transaction("K001", "cash-a", datetime(2025, 3, 3, 9, 0, tzinfo=ZoneInfo(ZONE)), "0000000001", "cash",
                    12345, (("notes", 10000), ("notes", 10000)))
    section = BackofficeSection()
    floats = {("notes", v): n for v, n in DEMO_NOTES.items()} | {("coins", v): n for v, n in DEMO_COINS.items()}
    caps = Capacities(section.store_capacity(), section.cashbox_capacity, section.hopper_capacity())
    async with Database(tmp_path / "loaded.db") as db:
        await load_history(db, [t], zone=ZoneInfo(ZONE), float_counts={k: floats.get(k, 0) for k in KEYS},
                           capacities=caps, cycle_days=1)
        loaded = shape(await db.fetchall(sql))
        loaded_moves = sorted(tuple(r) for r in await db.fetchall(
            "SELECT unit, denomination_fen, delta, reason FROM cash_movement WHERE payment_id = 'cash-a'"))
    assert loaded == real
    assert loaded_moves == real_moves


async def test_a_loaded_history_reconciles_and_a_planted_fault_shows_on_its_day_only(tmp_path: Path) -> None:
    from zoneinfo import ZoneInfo

    from assistant.backoffice import BackofficeSection
    from assistant.cash_history import generate, read_database
    from assistant.cash_ledger import load_history
    from assistant.cash_model import KEYS, Capacities
    from assistant.cash_reconcile import reconcile_cash

    zone = ZoneInfo(ZONE)
    history = generate(4, start=date(2025, 3, 3), zone=zone, seed=11, per_day=60)
    section = BackofficeSection()
    caps = Capacities(section.store_capacity(), section.cashbox_capacity, section.hopper_capacity())
    floats = dict(zip(KEYS, (300, 100, 200, 30, 50, 50, 60, 20, 0), strict=True))
    async with Database(tmp_path / "year.db") as db:
        report = await load_history(db, history, zone=zone, float_counts=floats, capacities=caps, cycle_days=2)
        assert report.payments == len(history) and report.collections == 1
        assert (await reconcile_cash(db, LedgerBilling(db))).discrepancies == ()
        back = {t.payment_id: t for t in await read_database(db)}
        assert back == {t.payment_id: t for t in history}
        days = await reconcile_days(db, date(2025, 3, 3), date(2025, 3, 6), zone=zone)
        assert [r.discrepancies for r in days] == [()] * 4
        assert sum(r.payments.get("cash", 0) for r in days) == sum(t.method == "cash" for t in history)
        victim = next(t for t in history if t.method == "cash" and t.day(zone) == date(2025, 3, 4))
        async with db.transaction() as tx:
            await tx.execute("DELETE FROM billing_posting WHERE reference = ?", (f"{victim.payment_id}:pay",))
        days = await reconcile_days(db, date(2025, 3, 3), date(2025, 3, 6), zone=zone)
    assert [len(r.discrepancies) for r in days] == [0, 1, 0, 0]
    d = days[1].discrepancies[0]
    assert (d.kind, d.payment_ids) == (Kind.MISSING_POSTING, (victim.payment_id,))


def test_bank_settlement_files_can_replace_the_sandbox(day: Day, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["reconcile", "--date", str(day.day), "--db", str(day.db), "--out", str(out), "--quiet"]) == 0
    files = sorted(out.glob("*-settlement-*.csv"))
    assert [f.name.split("-settlement-")[1] for f in files] == ["card-ICBC.csv", "ewallet-ewallet.csv"]
    again = tmp_path / "again"
    args = ["reconcile", "--date", str(day.day), "--db", str(day.db), "--out", str(again), "--quiet"]
    assert main(args + [a for f in files for a in ("--settlements", str(f))]) == 0
    # the bank's file lacks the card payment: found from the file as from the sandbox
    assert main(args + ["--settlements", str(files[1])]) == 3
    assert "settlement_missing" in next(again.glob("*-discrepancies.csv")).read_text()
    # a malformed settlement row names its line and field, and nothing is written
    bad = tmp_path / "bad.csv"
    bad.write_text(files[0].read_text().replace(",31520,", ",-5,"))
    fresh = tmp_path / "fresh"
    assert main(["reconcile", "--date", str(day.day), "--db", str(day.db), "--out", str(fresh),
                 "--settlements", str(bad)]) == 2
    assert f"{bad}:2: amount_fen: '-5' is not a positive number of fen" in capsys.readouterr().err
    assert not fresh.exists()
