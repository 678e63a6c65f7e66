"""Cash planning: the float standard replayed on held-out days, the cycle choice, halls, the command."""

from __future__ import annotations

import math
import re
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from assistant.backoffice import BackofficeSection
from assistant.cash_cost import cycle_cost
from assistant.cash_history import generate, write_csv
from assistant.cash_model import KEYS, Capacities
from assistant.cash_montecarlo import draw_cycles, run_cycles
from assistant.cash_plan import compile_history, plan_hall
from assistant.cli import main

ZONE = ZoneInfo("Asia/Shanghai")
SECTION = replace(BackofficeSection(), service_level=0.9, simulations=120, cycles_days=(1, 2))
START = date(2025, 3, 3)


def binom_tail(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p)."""
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))


@pytest.fixture(scope="module")
def plan():
    history = generate(42, start=START, zone=ZONE, seed=1, per_day=50)
    return plan_hall(history, SECTION, zone=ZONE, hall="t")


def test_the_float_standard_holds_on_held_out_days(plan) -> None:
    std = plan.kiosks[0].float_standard
    assert std is not None and plan.days == std.days
    assert std.passed >= SECTION.service_level * std.cycles
    # days the planner never saw, replayed through the kiosk's change-making on the exact stock
    held_out = compile_history(generate(42, start=START, zone=ZONE, seed=99, per_day=50), ZONE, "K001")
    caps = Capacities(SECTION.store_capacity(), SECTION.cashbox_capacity, SECTION.hopper_capacity())
    picks = draw_cycles(held_out.book, std.days, 120, 5, "held-out")
    failures = sum(r.shortfalls > 0 for r in run_cycles(held_out.book, picks, std.counts(), caps, fast=False))
    # no more often than the service level allows (up to sampling: a 1 % tail)
    assert binom_tail(failures, len(picks), 1 - SECTION.service_level) >= 0.01
    # and the check can fail: with half that float change runs out far too often
    half = [n // 2 for n in std.counts()]
    short = sum(r.shortfalls > 0 for r in run_cycles(held_out.book, picks, half, caps, fast=False))
    assert binom_tail(short, len(picks), 1 - SECTION.service_level) < 1e-6


def test_the_plan_is_reproducible_and_the_same_on_two_processes(plan) -> None:
    history = generate(42, start=START, zone=ZONE, seed=1, per_day=50)
    again = plan_hall(history, SECTION, zone=ZONE, hall="t", workers=2)
    assert again.days == plan.days
    assert again.kiosks[0].float_standard.counts() == plan.kiosks[0].float_standard.counts()
    assert again.kiosks[0].float_standard.passed == plan.kiosks[0].float_standard.passed


def test_the_insured_limit_shortens_the_cycle_and_can_rule_out_every_one() -> None:
    history = generate(21, start=START, zone=ZONE, seed=2, per_day=50)
    daily = compile_history(history, ZONE, "K001").daily_takings
    limit = int(daily * 2)  # a busy day and the float fit, two days do not
    section = replace(SECTION, insured_limit_fen=limit, simulations=60)
    p = plan_hall(history, section, zone=ZONE, hall="t")
    assert p.days == 1
    two = next(o for o in p.choice.options if o.days == 2)
    assert not two.feasible and "over the insured" in two.problems[0]
    assert any(r.startswith("2 d would cost") and "not allowed" in r for r in p.choice.reasons)
    none = plan_hall(history, replace(section, insured_limit_fen=int(daily // 4)), zone=ZONE, hall="t")
    assert none.days is None and none.choice.reasons[0] == "no candidate cycle is allowed"


def test_a_hall_shares_one_escort_and_adds_up_its_floats() -> None:
    history = sorted(generate(21, start=START, zone=ZONE, seed=3, per_day=40, kiosk_id="K001")
                     + generate(21, start=START, zone=ZONE, seed=3, per_day=25, kiosk_id="K002"),
                     key=lambda t: t.at)
    p = plan_hall(history, replace(SECTION, simulations=60), zone=ZONE, hall="h")
    assert [k.kiosk_id for k in p.kiosks] == ["K001", "K002"]
    stds = [k.float_standard for k in p.kiosks]
    assert all(s is not None and s.days == p.days for s in stds)
    total = p.float_total()
    for i, key in enumerate(KEYS):
        assert total[key] == stds[0].counts()[i] + stds[1].counts()[i]
    # one escort visit for the hall, each kiosk's holding cost on top
    d = p.days
    expected = cycle_cost(d, SECTION.escort_cost_fen, SECTION.holding_rate, stds[0].value_fen,
                          p_k(history, "K001")).holding_per_day + cycle_cost(
        d, SECTION.escort_cost_fen, SECTION.holding_rate, stds[1].value_fen, p_k(history, "K002")).holding_per_day
    assert p.choice.chosen.cost.holding_per_day == expected
    assert p.choice.chosen.cost.escort_fen == SECTION.escort_cost_fen // d


def p_k(history, kiosk: str):
    return compile_history(history, ZONE, kiosk).daily_takings


def test_the_command_writes_table_csv_and_chart(tmp_path: Path, config, capsys) -> None:
    csv_path = tmp_path / "h.csv"
    assert main(["cash", "simulate-history", "--days", "14", "--start", "2025-03-03", "--per-day", "40",
                 "--out", str(csv_path)]) == 0
    out = tmp_path / "reports"
    assert main(["cash", "plan", "--csv", str(csv_path), "--simulations", "40", "--workers", "1",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "remittance cycle (cost per day, yuan)" in printed and "float standard for K001" in printed
    # the float table's columns say what they count (a bare "empty in" used to stand there)
    assert "empty in" not in printed
    assert "  unit    denom   load      value  capacity   ran out  lowest" in printed
    assert re.search(r"\(ran out: in how many of the 40 simulated \d+-day cycles this denomination was empty "
                     r"when a customer's change needed it;\n   lowest: the fewest pieces of it left during a "
                     r"cycle, median over the simulated cycles\)", printed)
    files = {p.name.split("-")[-1]: p for p in out.iterdir()}
    assert set(files) == {"summary.txt", "cycles.csv", "float.csv", "chart.png"}
    assert files["chart.png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = files["float.csv"].read_text().splitlines()
    assert rows[0] == "kiosk_id,unit,denomination,load,value,capacity,empty_in_cycles,median_lowest_level"
    assert len(rows) == 1 + len(KEYS)
    cycles = files["cycles.csv"].read_text().splitlines()
    assert cycles[0].startswith("days,escort_per_day,holding_per_day,total_per_day")
    assert sum(1 for r in cycles[1:] if r.split(",")[6] == "yes") == 1  # one recommended cycle


def test_a_bad_csv_row_stops_the_plan_and_writes_nothing(tmp_path: Path, config, capsys) -> None:
    history = generate(3, start=START, zone=ZONE, seed=4, per_day=20)
    text = write_csv(history, ZONE).splitlines()
    text[5] = text[5].rsplit(",", 1)[0] + ",10000:-2"  # a negative count on line 6
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(text) + "\n")
    out = tmp_path / "reports"
    assert main(["cash", "plan", "--csv", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:6: tendered: negative count -2 of 10000" in err
    assert not out.exists()


def test_a_report_that_cannot_be_written_leaves_no_report_and_no_temporary_file(
        tmp_path: Path, config, capsys, tiny_disk: Path) -> None:
    # the disk fills up at the chart, the last file: the summary and the tables used to be in
    # place already (with temporary files left over) when that write failed
    import os

    from tests.conftest import fill

    csv_path = tmp_path / "h.csv"
    assert main(["cash", "simulate-history", "--days", "7", "--start", "2025-03-03", "--per-day", "20",
                 "--out", str(csv_path)]) == 0
    out = tiny_disk / "reports"
    out.mkdir()
    filler = fill(tiny_disk)
    os.truncate(filler, filler.stat().st_size - 32 * 1024)  # room for the text files, not the chart
    capsys.readouterr()
    assert main(["cash", "plan", "--csv", str(csv_path), "--simulations", "20", "--workers", "1",
                 "--no-progress", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "-chart.png" in err and "Traceback" not in err
    assert list(out.iterdir()) == []


def test_a_plan_made_again_the_same_day_keeps_the_earlier_one(tmp_path: Path, config, capsys) -> None:
    """A second plan on the same day used to overwrite the first one's files (same names)."""
    csv_path = tmp_path / "h.csv"
    assert main(["cash", "simulate-history", "--days", "7", "--start", "2025-03-03", "--per-day", "20",
                 "--out", str(csv_path)]) == 0
    out = tmp_path / "reports"
    args = ["cash", "plan", "--csv", str(csv_path), "--simulations", "20", "--workers", "1", "--no-progress",
            "--out", str(out)]
    assert main(args) == 0
    first = {p: p.read_bytes() for p in out.iterdir()}
    assert len(first) == 4
    assert main([*args[:5], "40", *args[6:]]) == 0  # more simulations: another plan
    assert {p: p.read_bytes() for p in first} == first  # the first plan is untouched
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "reports (new files, made " in printed and "Asia/Shanghai; earlier plans are kept)" in printed
    summaries = sorted(out.glob("*-summary.txt"))
    assert len(summaries) == 3 and len(list(out.iterdir())) == 12
    # named by the local date and time the plan was made (and -2, -3 within one second)
    today = datetime.now(ZONE).strftime("%Y-%m-%d")
    assert all(re.fullmatch(rf"cash-plan-demo-hall-{today}-\d{{6}}(-\d)?-summary\.txt", p.name) for p in summaries)


def test_a_full_disk_while_writing_a_report_leaves_nothing_behind(tmp_path: Path) -> None:
    import errno
    import os

    from assistant.backoffice import OutputSet

    out = OutputSet()
    first, second = out.add(tmp_path / "a.txt", "one"), out.add(tmp_path / "b.png", b"\x89PNG" * 1000)
    # the second file's temporary name leads to /dev/full: every write to it fails with ENOSPC
    (tmp_path / f".b.png.{os.getpid()}.tmp").symlink_to("/dev/full")
    with pytest.raises(OSError) as err:
        out.commit()
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(second)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    assert not first.exists()


def test_plan_from_the_kiosk_database_is_recorded_for_the_alerts(tmp_path: Path, config) -> None:
    import asyncio

    from assistant.storage import Database

    db = tmp_path / "kiosk.db"
    assert main(["cash", "simulate-history", "--days", "10", "--start", "2025-03-03", "--per-day", "40",
                 "--out", str(tmp_path / "h.csv"), "--load", str(db), "--cycle-days", "2"]) == 0
    assert main(["cash", "plan", "--db", str(db), "--simulations", "40", "--workers", "1",
                 "--out", str(tmp_path / "r")]) == 0

    async def saved():
        async with Database(db) as d:
            return await d.fetchall("SELECT kiosk_id, cycle_days, float FROM cash_plan")

    (row,) = asyncio.run(saved())
    assert row[0] == "K001" and row[1] >= 1 and '"notes"' in row[2]
    # loading into a database that exists is refused, and nothing is written
    assert main(["cash", "simulate-history", "--days", "2", "--out", str(tmp_path / "h2.csv"),
                 "--load", str(db)]) == 2
    assert not (tmp_path / "h2.csv").exists()


def _shortfalls(printed: str) -> tuple[int, str]:
    line = next(x for x in printed.splitlines() if x.startswith("loaded into"))
    short = int(line.split("; ")[-1].split(" of ")[0])
    return short, line


def test_a_history_replayed_with_the_planned_float_runs_short_of_change_less(tmp_path: Path, config, capsys) -> None:
    csv_path = tmp_path / "h.csv"
    args = ["cash", "simulate-history", "--days", "10", "--start", "2025-03-03", "--per-day", "60"]
    assert main([*args, "--out", str(csv_path), "--load", str(tmp_path / "sim.db")]) == 0
    small, line = _shortfalls(capsys.readouterr().out)
    assert "[cash] sim_notes and sim_coins" in line
    assert main(["cash", "plan", "--csv", str(csv_path), "--simulations", "60", "--workers", "1",
                 "--no-progress", "--out", str(tmp_path / "r")]) == 0
    (float_csv,) = (tmp_path / "r").glob("*float.csv")
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "h2.csv"), "--load", str(tmp_path / "planned.db"),
                 "--float", str(float_csv)]) == 0
    planned, line = _shortfalls(capsys.readouterr().out)
    assert str(float_csv) in line
    assert small > 0 and planned < small / 4


def test_a_bad_float_csv_names_the_line_and_loads_nothing(tmp_path: Path, config, capsys) -> None:
    bad = tmp_path / "float.csv"
    bad.write_text("kiosk_id,unit,denomination,load\nK001,notes,20,40\nK001,notes,30,5\n")
    db = tmp_path / "sim.db"
    assert main(["cash", "simulate-history", "--days", "2", "--start", "2025-03-03", "--out",
                 str(tmp_path / "h.csv"), "--load", str(db), "--float", str(bad)]) == 2
    assert f"{bad}:3: notes 30 is not a denomination" in capsys.readouterr().err
    assert not db.exists() and not (tmp_path / "h.csv").exists()


def test_a_plan_from_too_little_history_says_so_and_from_how_much(tmp_path: Path, config, capsys) -> None:
    """One payment used to be planned from without a word; now the plan (on the terminal and in
    the summary file) says how many days and payments it rests on and that it is unreliable."""
    one = [t for t in generate(1, start=START, zone=ZONE, seed=3, per_day=20) if t.method == "cash"][:1]
    csv_path = tmp_path / "one.csv"
    csv_path.write_text(write_csv(one, ZONE))
    out = tmp_path / "reports"
    assert main(["cash", "plan", "--csv", str(csv_path), "--simulations", "20", "--workers", "1",
                 "--no-progress", "--out", str(out)]) == 0
    captured = capsys.readouterr()
    warning = ("K001 is planned from only 1 day(s) and 1 cash payment(s) (1 payment(s) in all): the plan is "
               "UNRELIABLE below 28 days or 100 cash payments")
    assert f"  WARNING: {warning}" in captured.out
    assert f"cash plan: WARNING: {warning}" in captured.err
    (summary,) = out.glob("*-summary.txt")
    assert warning in summary.read_text()

    # enough history (here: the limits lowered to what there is) plans without the warning
    cfg = tmp_path / "kiosk.toml"
    cfg.write_text("[backoffice]\nmin_history_days = 1\nmin_cash_payments = 1\n")
    assert main(["--config", str(cfg), "cash", "plan", "--csv", str(csv_path), "--simulations", "20",
                 "--workers", "1", "--no-progress", "--out", str(tmp_path / "r2")]) == 0
    captured = capsys.readouterr()
    assert "WARNING" not in captured.out + captured.err


def test_plan_from_a_database_that_is_not_one_creates_nothing(tmp_path: Path, config, capsys) -> None:
    """``cash plan --db`` on an empty file used to turn it into a new kiosk database (then found no
    payments); now an empty, foreign or missing file is refused naming it, and left as it is."""
    import sqlite3

    empty = tmp_path / "empty.db"
    empty.touch()
    foreign = tmp_path / "other.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE t (x)")
    foreign_bytes = foreign.read_bytes()
    missing = tmp_path / "missing" / "kiosk.db"
    for path, why in ((empty, "is an empty file, not a kiosk database"),
                      (foreign, "is not a kiosk database (it has no kiosk tables)"),
                      (missing, "does not exist; nothing was created")):
        assert main(["cash", "plan", "--db", str(path), "--no-progress", "--out", str(tmp_path / "r")]) == 2
        assert f"cash plan: --db {path} {why}" in capsys.readouterr().err
    assert empty.read_bytes() == b"" and foreign.read_bytes() == foreign_bytes
    assert not missing.parent.exists() and not (tmp_path / "r").exists()
    assert {p.name for p in tmp_path.iterdir()} - {"var"} == {"empty.db", "other.db"}
    # without --db: the kiosk's own database, named as such
    assert main(["cash", "plan", "--no-progress"]) == 2
    assert f"the kiosk database ([storage] path) {tmp_path / 'var' / 'kiosk.db'} does not exist" in capsys.readouterr().err
    assert not (tmp_path / "var" / "kiosk.db").exists()
