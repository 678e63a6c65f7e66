"""The remittance-cycle cost model against hand-computed cases."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest

from assistant.cash_cost import (
    CycleOption,
    choose_cycle,
    combined,
    cycle_cost,
    round_fen,
    unconstrained_optimum,
)

E = 30_000  # 300 元 per escort visit
H = Decimal("0.0002")  # per yuan per day
F = 500_000  # 5 000 元 float
D = 1_500_000  # 15 000 元 net cash a day


def test_one_day_cycle_by_hand() -> None:
    # escort 300 元 a day; nights hold 5 000 + 15 000 = 20 000 元 -> 0.0002 x 20 000 = 4 元
    c = cycle_cost(1, E, H, F, D)
    assert c.escort_per_day == 30_000
    assert c.average_cash == 2_000_000
    assert c.holding_per_day == 400
    assert c.total_fen == 30_400


def test_three_day_cycle_by_hand() -> None:
    # nights hold 5 000 + 15 000 x (1 + 2 + 3) / 3 = 35 000 元 on average -> 7 元; escort 100 元
    c = cycle_cost(3, E, H, F, D)
    assert c.average_cash == 3_500_000
    assert (c.escort_fen, c.holding_fen, c.total_fen) == (10_000, 700, 10_700)


def test_seven_day_cycle_rounds_once() -> None:
    # escort 300/7 = 42.857142... 元; average 5 000 + 15 000 x 4 = 65 000 元 -> 13 元
    c = cycle_cost(7, E, H, F, D)
    assert c.escort_per_day == Fraction(30_000, 7)
    assert c.escort_fen == 4286
    assert c.holding_fen == 1300
    assert c.total_fen == 5586  # 5585.714... rounded from the exact sum


def test_rounding_is_half_up() -> None:
    assert round_fen(Fraction(1, 2)) == 1
    assert round_fen(Fraction(3, 2)) == 2
    assert round_fen(Fraction(5, 2)) == 3
    assert round_fen(Fraction(-1, 2)) == -1
    assert round_fen(Fraction(249, 100)) == 2


def test_curve_minimum_is_where_the_formula_says() -> None:
    # sqrt(2 x 30 000 / (0.0002 x 1 500 000)) = sqrt(200) = 14.14 days
    assert unconstrained_optimum(E, H, D) == pytest.approx(200 ** 0.5)
    costs = {t: cycle_cost(t, E, H, F, D).total_per_day for t in range(1, 31)}
    assert min(costs, key=costs.get) == 14
    # by hand: 14 d = 2 142.857 + 0.0002 x (500 000 + 1 500 000 x 7.5) = 4 492.857 fen
    assert round_fen(costs[14]) == 4493
    assert round_fen(costs[15]) == 4500


def test_a_hall_pays_one_escort_for_all_its_kiosks() -> None:
    a = cycle_cost(2, E, H, F, D)  # holding 0.0002 x (500 000 + 2 250 000) = 550
    b = cycle_cost(2, E, H, 200_000, 600_000)  # 0.0002 x (200 000 + 900 000) = 220
    hall = combined([a, b], E)
    assert hall.escort_fen == 15_000
    assert hall.holding_fen == 770
    assert hall.total_fen == 15_770


def test_the_cheapest_allowed_cycle_wins_and_the_reasons_say_why() -> None:
    options = [
        CycleOption(cycle_cost(1, E, H, F, D)),
        CycleOption(cycle_cost(3, E, H, F, D)),
        CycleOption(cycle_cost(7, E, H, F, D), ("holds up to 110000.00 yuan, over the insured 50000.00",)),
    ]
    choice = choose_cycle(options)
    assert choice.chosen is not None and choice.chosen.days == 3
    text = "\n".join(choice.reasons)
    assert "3 d costs 107.00 per day" in text
    assert "1 d costs 304.00 per day, 197.00 more" in text
    assert "7 d would cost 55.86 per day (cheaper) but is not allowed: holds up to 110000.00" in text


def test_no_allowed_cycle_is_reported() -> None:
    choice = choose_cycle([CycleOption(cycle_cost(1, E, H, F, D), ("cashbox full",))])
    assert choice.chosen is None
    assert choice.reasons[0] == "no candidate cycle is allowed"
    assert "1 d: cashbox full" in choice.reasons[1]


def test_a_tie_goes_to_the_shorter_cycle() -> None:
    # with no holding cost every cycle costs E/T: make two equal by giving them the same days
    a = CycleOption(cycle_cost(2, 0, H, 0, 0))
    b = CycleOption(cycle_cost(4, 0, H, 0, 0))
    assert choose_cycle([b, a]).chosen.days == 2
