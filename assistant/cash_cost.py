"""The remittance-cycle cost model: escort visits against the cost of holding cash.

A kiosk (or a hall of kiosks, collected in one escort visit) is emptied down to its
float every ``T`` days. The model, per day:

* **escort**: ``E / T`` - one visit of cost ``E`` every ``T`` days;
* **holding**: ``h x (F + D x (T + 1) / 2)`` - the cash held overnight, valued at the
  daily holding/insurance rate ``h`` per yuan. The escort comes before opening, so on
  the ``k``-th night of a cycle the kiosk holds its float ``F`` plus ``k`` days of net
  cash takings ``D``; the average over the ``T`` nights is ``F + D (T + 1) / 2``.

Longer cycles spread the escort cost but hold more cash; the cheapest cycle of the
unconstrained model is near ``sqrt(2 E / (h D))``. A cycle is only allowed when, at
the chosen service level, the cash held stays within the insured limit, the notes
fit in the cashbox, the coins fit in the hopper, and the float standard fits in the
cassettes. Costs are kept exact (fractions of a fen) for comparing cycles and
rounded half up to whole fen only for showing them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction


def round_fen(x: Fraction) -> int:
    """An exact amount of fen rounded half up (away from zero) to whole fen."""
    sign = -1 if x < 0 else 1
    a = abs(x)
    return sign * int((a * 2 + 1) // 2)


@dataclass(frozen=True)
class CycleCost:
    """Cost per day of one remittance cycle (exact fen)."""

    days: int
    escort_per_day: Fraction
    """Escort visit cost spread over the cycle's days."""
    holding_per_day: Fraction
    """Holding/insurance cost of the average cash held."""
    average_cash: Fraction
    """Average cash held overnight, fen."""

    @property
    def total_per_day(self) -> Fraction:
        """Escort plus holding, per day."""
        return self.escort_per_day + self.holding_per_day

    @property
    def escort_fen(self) -> int:
        """Escort per day, whole fen."""
        return round_fen(self.escort_per_day)

    @property
    def holding_fen(self) -> int:
        """Holding per day, whole fen."""
        return round_fen(self.holding_per_day)

    @property
    def total_fen(self) -> int:
        """Total per day, whole fen (rounded once, from the exact sum)."""
        return round_fen(self.total_per_day)


def cycle_cost(days: int, escort_fen: int, rate: Decimal | Fraction, float_fen: int,
               daily_takings_fen: int | Fraction) -> CycleCost:
    """Cost per day of collecting every ``days`` days.

    Args:
        days: the cycle ``T`` (>= 1).
        escort_fen: cost of one escort visit ``E``.
        rate: holding/insurance cost per yuan per day ``h`` (the same per fen).
        float_fen: the float ``F`` loaded at each collection.
        daily_takings_fen: average net cash taken per day ``D`` (cash in minus change out).
    """
    if days < 1:
        raise ValueError("a cycle is at least one day")
    h = Fraction(rate) if isinstance(rate, Decimal) else rate
    average = Fraction(float_fen) + Fraction(daily_takings_fen) * Fraction(days + 1, 2)
    return CycleCost(days=days, escort_per_day=Fraction(escort_fen, days), holding_per_day=h * average,
                     average_cash=average)


def combined(costs: Sequence[CycleCost], escort_fen: int) -> CycleCost:
    """A hall's cost: one escort visit for all its kiosks, each kiosk's holding cost added."""
    days = costs[0].days
    if any(c.days != days for c in costs):
        raise ValueError("kiosk costs are for different cycles")
    return CycleCost(days=days, escort_per_day=Fraction(escort_fen, days),
                     holding_per_day=sum((c.holding_per_day for c in costs), Fraction(0)),
                     average_cash=sum((c.average_cash for c in costs), Fraction(0)))


def unconstrained_optimum(escort_fen: int, rate: Decimal | Fraction, daily_takings_fen: int | Fraction) -> float:
    """``sqrt(2 E / (h D))``: the cycle (days, not rounded) the cost curve is lowest at without limits."""
    h = float(rate)
    d = float(daily_takings_fen)
    if h <= 0 or d <= 0:
        return float("inf")
    return (2 * escort_fen / (h * d)) ** 0.5


@dataclass(frozen=True)
class CycleOption:
    """One candidate cycle: its cost and what rules it out (if anything)."""

    cost: CycleCost
    problems: tuple[str, ...] = ()
    """Why the cycle is not allowed (empty when it is)."""
    facts: dict[str, int] = field(default_factory=dict)
    """Figures behind the checks (e.g. peak cash, cashbox notes), for the report."""

    @property
    def days(self) -> int:
        """The cycle length."""
        return self.cost.days

    @property
    def feasible(self) -> bool:
        """True when nothing rules the cycle out."""
        return not self.problems


@dataclass(frozen=True)
class CycleChoice:
    """The recommended cycle and why it wins."""

    chosen: CycleOption | None
    """The cheapest allowed cycle (None when none is allowed)."""
    options: tuple[CycleOption, ...]
    reasons: tuple[str, ...]
    """Plain statements: why the chosen one wins over each other candidate."""


def choose_cycle(options: Sequence[CycleOption]) -> CycleChoice:
    """The allowed cycle with the lowest cost per day (the shorter one on a tie), with reasons."""
    from assistant.backoffice import yuan

    ordered = tuple(sorted(options, key=lambda o: o.days))
    allowed = [o for o in ordered if o.feasible]
    if not allowed:
        reasons = tuple(f"{o.days} d: {'; '.join(o.problems)}" for o in ordered)
        return CycleChoice(None, ordered, ("no candidate cycle is allowed",) + reasons)
    best = min(allowed, key=lambda o: (o.cost.total_per_day, o.days))
    reasons = [f"{best.days} d costs {yuan(best.cost.total_fen)} per day "
               f"(escort {yuan(best.cost.escort_fen)} + holding {yuan(best.cost.holding_fen)}): "
               f"the lowest of the allowed cycles"]
    for o in ordered:
        if o is best:
            continue
        diff = o.cost.total_per_day - best.cost.total_per_day
        if not o.feasible:
            cheaper = "cheaper" if diff < 0 else "dearer"
            reasons.append(f"{o.days} d would cost {yuan(o.cost.total_fen)} per day ({cheaper}) but is not "
                           f"allowed: {'; '.join(o.problems)}")
        else:
            reasons.append(f"{o.days} d costs {yuan(o.cost.total_fen)} per day, {yuan(round_fen(diff))} more")
    return CycleChoice(best, ordered, tuple(reasons))
