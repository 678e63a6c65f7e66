"""Transaction history: the CSV format with its error messages, and the demo generator's realism."""

from __future__ import annotations

import random
import statistics
from datetime import date
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from assistant.backoffice import BackofficeError
from assistant.cash_history import COLUMNS, generate, read_csv, tender, write_csv

ZONE = ZoneInfo("Asia/Shanghai")
HEADER = ",".join(COLUMNS)


def test_csv_round_trip(tmp_path: Path) -> None:
    history = generate(3, start=date(2025, 3, 3), zone=ZONE, seed=5, per_day=40)
    path = tmp_path / "h.csv"
    path.write_text(write_csv(history, ZONE))
    back = read_csv(path)
    assert back == sorted(history, key=lambda t: t.at)
    assert path.read_text().splitlines()[0] == HEADER


@pytest.mark.parametrize(("line", "message"), [
    ("K001,p2,2025-03-03T09:00:00+08:00,31,cash,,12.5,10000:1", "due_fen: '12.5' is not a whole number of fen"),
    ("K001,p2,2025-03-03T09:00:00+08:00,31,cash,,-500,10000:1", "due_fen: -500 is not positive"),
    ("K001,p2,2025-03-03T09:00:00+08:00,31,cash,,5000,10000:-1", "tendered: negative count -1 of 10000"),
    ("K001,p2,2025-03-03T09:00:00+08:00,31,cash,,5000,30000:1", "tendered: 30000 is not a note or coin"),
    ("K001,p2,2025-03-03T09:00:00+08:00,31,cash,,5000,10000", "tendered: '10000' is not VALUE:COUNT"),
    ("K001,p2,2025-03-03T09:00:00+08:00,31,cheque,,5000,", "method: 'cheque' is not one of cash, card, ewallet"),
    ("K001,p2,2025-03-03T09:00:00,31,cash,,5000,10000:1", "at: '2025-03-03T09:00:00' has no UTC offset"),
    ("K001,p2,yesterday,31,cash,,5000,10000:1", "at: 'yesterday' is not an ISO time"),
    ("K001,p2,2025-03-03T09:00:00+08:00,31,cash,,5000", "7 fields, the header has 8"),
    ("K001,p1,2025-03-03T09:00:00+08:00,31,cash,,5000,10000:1", "payment_id p1 repeats line 3"),
    ("K001,p2,2025-03-03T09:00:00+08:00,31,cash,,5000,10000:2", "the kiosk stops taking cash once 5000 is covered"),
    ("K001,p2,2025-03-03T09:00:00+08:00,31,card,ICBC,5000,10000:1", "a card payment has no cash"),
    (",p2,2025-03-03T09:00:00+08:00,31,cash,,5000,10000:1", "kiosk_id is empty"),
])
def test_a_bad_row_is_named_by_line_and_field(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "h.csv"
    good = "K001,p1,2025-03-03T08:59:00+08:00,31,cash,,8650,10000:1"
    path.write_text(f"# demo\n{HEADER}\n{good}\n{line}\n")
    with pytest.raises(BackofficeError) as err:
        read_csv(path)
    assert str(err.value).startswith(f"{path}:4: ") and message in str(err.value)


def test_a_missing_column_or_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("kiosk_id,payment_id,at,method,due_fen,tendered\n")
    with pytest.raises(BackofficeError, match=r"h.csv:1: header lacks column\(s\) account_no, bank"):
        read_csv(path)
    with pytest.raises(BackofficeError, match="no such file"):
        read_csv(tmp_path / "missing.csv")
    path.write_text("")
    with pytest.raises(BackofficeError, match="empty file"):
        read_csv(path)


def test_coins_are_told_from_notes(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text(f"{HEADER}\nK001,p1,2025-03-03T09:00:00+08:00,31,cash,,11250,10000:1 1000:1 c100:2 c50:1\n")
    (t,) = read_csv(path)
    assert t.tendered == (("notes", 10000), ("notes", 1000), ("coins", 100), ("coins", 100), ("coins", 50))
    assert write_csv([t], ZONE).splitlines()[1].endswith("10000:1 1000:1 c100:2 c50:1")


def test_people_tender_the_way_people_do() -> None:
    rng = random.Random(3)
    seen_112 = {tender(11200, rng) for _ in range(300)}
    assert (("notes", 10000), ("notes", 2000)) in seen_112  # 100 + 20 for 112
    assert (("notes", 10000), ("notes", 10000)) in seen_112  # or two hundreds
    seen_8650 = {tender(8650, rng) for _ in range(300)}
    assert (("notes", 10000),) in seen_8650  # one 100 for 86.50
    exact = [t for t in seen_8650 if sum(v for _, v in t) == 8650]
    assert exact and all(("coins", 50) in t for t in exact)  # the 5 角 as a coin
    for due in (1, 990, 8650, 11200, 15630, 123456):
        for _ in range(50):
            pieces = tender(due, rng)
            total = sum(v for _, v in pieces)
            assert total >= due - due % 10 and total - pieces[-1][1] < due  # covers it; the last piece was needed


def test_a_demo_year_looks_like_a_service_hall() -> None:
    year = generate(365, start=date(2025, 1, 1), zone=ZONE, seed=7)
    assert 45_000 <= len(year) <= 56_000
    cash = [t for t in year if t.method == "cash"]
    assert 0.72 <= len(cash) / len(year) <= 0.78
    dues = [t.due_fen for t in year]
    assert 9_000 <= statistics.median(dues) <= 16_000  # around 120 元
    assert sum(1 for d in dues if d % 100) / len(dues) > 0.95  # bills have 角 and 分
    per_day: dict[date, int] = {}
    for t in year:
        per_day[t.day(ZONE)] = per_day.get(t.day(ZONE), 0) + 1
    monday = statistics.mean(n for d, n in per_day.items() if d.weekday() == 0)
    sunday = statistics.mean(n for d, n in per_day.items() if d.weekday() == 6)
    assert monday > 1.2 * sunday
    summer = statistics.mean(n for d, n in per_day.items() if d.month in (7, 8))
    spring = statistics.mean(n for d, n in per_day.items() if d.month in (4, 5))
    assert summer > 1.15 * spring
    assert all(8 <= t.at.astimezone(ZONE).hour < 18 for t in year)
    assert {t.bank for t in year if t.method == "card"} >= {"ICBC", "CCB", "ABC", "BOC"}
    # reproducible: the same seed gives the same history; another seed another one
    again = generate(30, start=date(2025, 1, 1), zone=ZONE, seed=7)
    assert again == generate(30, start=date(2025, 1, 1), zone=ZONE, seed=7)
    assert again != generate(30, start=date(2025, 1, 1), zone=ZONE, seed=8)
