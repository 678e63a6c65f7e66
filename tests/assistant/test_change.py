"""Change-making: exact, bounded, scarcity-aware; checked against a brute-force solver."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from assistant.change import (
    best_change,
    exact_change,
    greedy_change,
    piece_cost,
)

RMB = (10000, 5000, 2000, 1000, 500, 100, 50, 10)


def brute_force(target: int, stock: dict) -> tuple[int, int] | None:
    """(cost, paid) of the cheapest exact plan by trying every combination, or None."""
    keys = [k for k, c in stock.items() if c > 0]
    best = None
    for combo in itertools.product(*(range(stock[k] + 1) for k in keys)):
        paid = sum((k[1] if isinstance(k, tuple) else k) * n for k, n in zip(keys, combo, strict=True))
        if paid != target:
            continue
        cost = sum(piece_cost(stock[k]) * n for k, n in zip(keys, combo, strict=True))
        if best is None or cost < best:
            best = cost
    return None if best is None else (best, target)


def test_sixty_yuan_with_one_fifty_and_three_twenties() -> None:
    stock = {5000: 1, 2000: 3, 1000: 0}
    assert greedy_change(6000, stock) is None  # greedy takes the 50 and is stuck
    plan = exact_change(6000, stock)
    assert plan is not None
    assert dict(plan.counts) == {2000: 3}
    assert plan.paid_fen == 6000 and plan.pieces == 3


def test_demo_change_down_to_jiao_with_the_fen_left_over() -> None:
    stock = {("notes", 5000): 10, ("notes", 2000): 20, ("notes", 1000): 20, ("notes", 500): 20,
             ("notes", 100): 30, ("coins", 100): 50, ("coins", 50): 50, ("coins", 10): 100}
    plan = best_change(20000 - 12345, stock)
    assert plan.paid_fen == 7650
    assert plan.remainder_fen == 5
    # 50 + 20 + 5 from the recycler; 1 元 from the hopper (50 coins beat 30 notes); one 5 角
    assert plan.by_unit() == {"notes": {5000: 1, 2000: 1, 500: 1}, "coins": {100: 1, 50: 1}}


def test_scarce_denomination_is_kept_when_there_is_another_way() -> None:
    # one 50 left but plenty of 20s and 10s: pay 50 as 20+20+10
    plan = exact_change(5000, {5000: 1, 2000: 40, 1000: 40})
    assert plan is not None and dict(plan.counts) == {2000: 2, 1000: 1}
    # with many 50s the single piece wins
    plan = exact_change(5000, {5000: 40, 2000: 40, 1000: 40})
    assert plan is not None and dict(plan.counts) == {5000: 1}


def test_bounded_by_stock_and_impossible_is_none() -> None:
    assert exact_change(3000, {2000: 1, 500: 1}) is None
    assert exact_change(15, {10: 5}) is None  # below one 角 cannot be paid
    best = best_change(3000, {2000: 1, 500: 1})
    assert best.paid_fen == 2500 and best.remainder_fen == 500
    assert best_change(700, {}).paid_fen == 0
    assert exact_change(0, {}).pieces == 0


def test_one_yuan_note_and_coin_are_separate_stock() -> None:
    stock = {("notes", 100): 1, ("coins", 100): 1}
    plan = exact_change(200, stock)
    assert plan is not None and dict(plan.counts) == {("notes", 100): 1, ("coins", 100): 1}


def test_large_amount() -> None:
    stock = {10000: 120, 5000: 40, 2000: 60, 1000: 60, 500: 60, 100: 100, 50: 100, 10: 200}
    plan = exact_change(1_000_000 - 10, stock)
    assert plan is not None and plan.paid_fen == 999_990
    assert all(plan.counts[k] <= stock[k] for k in plan.counts)


stocks = st.dictionaries(
    st.sampled_from(RMB), st.integers(min_value=0, max_value=4), min_size=1, max_size=5
)


@settings(max_examples=300, deadline=None)
@given(stock=stocks, target_jiao=st.integers(min_value=0, max_value=400))
def test_matches_brute_force(stock: dict, target_jiao: int) -> None:
    target = target_jiao * 10
    plan = exact_change(target, stock)
    truth = brute_force(target, stock)
    if truth is None:
        assert plan is None
        return
    assert plan is not None
    assert plan.paid_fen == target
    assert all(0 < n <= stock[k] for k, n in plan.counts.items())
    assert plan.cost == truth[0]
    assert plan.cost == sum(piece_cost(stock[k]) * n for k, n in plan.counts.items())


@settings(max_examples=150, deadline=None)
@given(stock=stocks, target=st.integers(min_value=0, max_value=40000))
def test_best_change_pays_the_largest_payable_amount(stock: dict, target: int) -> None:
    plan = best_change(target, stock)
    assert plan.paid_fen <= target
    assert all(0 < n <= stock[k] for k, n in plan.counts.items())
    # nothing between what was paid and the target is payable
    for amount in range(plan.paid_fen + 10, target + 1, 10):
        assert brute_force(amount, stock) is None
    if greedy := greedy_change(target, stock):
        assert greedy.paid_fen == target and plan.paid_fen == target


def test_bench_runs_and_reports_against_greedy(root) -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(root / "bench" / "change.py"), "--cases", "60"],
                         capture_output=True, text=True, check=True, timeout=120).stdout
    assert "greedy fails but an exact payout exists" in out
    assert out.count("ms") >= 4 and "ratio med" in out
