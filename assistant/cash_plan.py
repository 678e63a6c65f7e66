"""Cash planning: the remittance cycle and the float standard, per kiosk and for a hall.

``python main.py cash plan`` does, for the kiosks of one hall:

1. **Explore.** Resampled cycles of the longest candidate length run through the
   kiosk's cash model with ample stock and unbounded cassettes
   (:mod:`assistant.cash_montecarlo`). From the same cycles, for every shorter cycle
   (a prefix of a longer one), the planner reads how deep each denomination is drawn
   down, how far notes and coins pile up, and how much cash is taken - at the
   service level. That gives each candidate cycle a first float estimate, the cash
   it holds, and whether the cashbox, the hopper and the insured limit allow it.
2. **Choose.** Every candidate gets the cost per day of :mod:`assistant.cash_cost`
   (one escort visit for the whole hall; each kiosk's holding cost). The cheapest
   allowed cycle wins; the report says why each other one does not.
3. **Float standard.** At the chosen cycle, each kiosk's float is simulated with the
   real cassette sizes: start from the estimate, add to the denominations that ran
   out in too many cycles, take back what stayed unused, until at least the service
   level of cycles pass without a change shortfall; a last run on fresh cycles gives
   the service level reported. If the float then breaks a limit, the next cheapest
   cycle is tried.

Upper quantiles use ``service_level``; the float's per-denomination estimate uses a
stricter level (the shortfall risk of ``m`` denominations adds up) that the
simulation then trims back.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from fractions import Fraction
from zoneinfo import ZoneInfo

import numpy as np

from assistant.backoffice import BackofficeError, BackofficeSection, denomination, yuan
from assistant.cash_cost import (
    CycleChoice,
    CycleCost,
    CycleOption,
    choose_cycle,
    combined,
    cycle_cost,
    unconstrained_optimum,
)
from assistant.cash_history import Transaction
from assistant.cash_model import IS_NOTE, KEYS, VALUES, Capacities, compile_pieces
from assistant.cash_montecarlo import (
    NOTE_ORDER,
    SNAPSHOT_MINUTES,
    CycleRecord,
    DayBook,
    Progress,
    RunStats,
    day_dates,
    draw_cycles,
    run_cycles,
)

AMPLE = 5000
"""Pieces of every denomination in the explore run: enough that nothing runs out."""
UNBOUNDED = 10**7
MAX_SEARCH_ROUNDS = 8


@dataclass(frozen=True)
class KioskBook:
    """One kiosk's history, compiled for the simulation."""

    kiosk_id: str
    book: DayBook
    net_cash: tuple[int, ...]
    """Per day: cash the kiosk keeps (the amount due rounded up to the 角; the 分 are credited)."""
    payments: int
    cash_payments: int

    @property
    def days(self) -> int:
        """Days in the history (first to last payment)."""
        return len(self.book.dates)

    @property
    def daily_takings(self) -> Fraction:
        """Average net cash per day."""
        return Fraction(sum(self.net_cash), max(1, self.days))


def compile_history(transactions: Sequence[Transaction], zone: ZoneInfo, kiosk_id: str) -> KioskBook:
    """Group one kiosk's payments into local business days (quiet days included)."""
    mine = [t for t in transactions if t.kiosk_id == kiosk_id]
    if not mine:
        raise BackofficeError(f"kiosk {kiosk_id}: no payments in the history")
    first, last = mine[0].day(zone), mine[-1].day(zone)
    dates = day_dates(first, last)
    index = {d: i for i, d in enumerate(dates)}
    cash: list[list[tuple[int, tuple[tuple[str, int], ...], int]]] = [[] for _ in dates]
    net = [0] * len(dates)
    for t in mine:
        if t.method != "cash":
            continue
        local = t.at.astimezone(zone)
        i = index[local.date()]
        cash[i].append((t.due_fen, compile_pieces(t.tendered), local.hour * 60 + local.minute))
        net[i] += min(t.tendered_fen, -(-t.due_fen // 10) * 10)
    cash_count = sum(len(c) for c in cash)
    if cash_count == 0:
        raise BackofficeError(f"kiosk {kiosk_id}: no cash payments in the history; nothing to plan")
    return KioskBook(kiosk_id, DayBook(dates, tuple(tuple(sorted(c, key=lambda x: x[2])) for c in cash)),
                     tuple(net), len(mine), cash_count)


def _quantile(xs: Sequence[float] | np.ndarray, q: float) -> float:
    a = np.asarray(xs, dtype=float)
    if a.size == 0:
        return 0.0
    return float(np.quantile(a, q, method="higher"))


# ============================================================================ explore


@dataclass(frozen=True)
class Estimate:
    """What the explore run says about one cycle length for one kiosk."""

    days: int
    float_counts: tuple[int, ...]
    """First float estimate per :data:`KEYS` index."""
    taken_q: int
    """Net cash taken by the cycle's end, at the service level (fen)."""
    cashbox_q: int
    """Notes in the cashbox at the end with that float, at the service level."""
    coins_over_q: int
    """Coins the hopper would have no room for, at the service level."""

    @property
    def float_fen(self) -> int:
        """Value of the estimated float."""
        return sum(v * n for v, n in zip(VALUES, self.float_counts, strict=True))


def explore(kb: KioskBook, section: BackofficeSection, max_days: int, cycles: int, *, caps: Capacities,
            auto_credit_limit_fen: int, workers: int, progress: bool, stats: RunStats | None = None
            ) -> dict[int, Estimate]:
    """Estimates for every candidate cycle up to ``max_days`` from one run of ``max_days``-day cycles."""
    picks = draw_cycles(kb.book, max_days, cycles, section.seed, f"explore:{kb.kiosk_id}")
    unbounded = Capacities({v: UNBOUNDED for v in NOTE_ORDER}, UNBOUNDED, {v: UNBOUNDED for v in (10, 50, 100)})
    start = [AMPLE] * len(KEYS)
    with Progress(len(picks), f"{kb.kiosk_id} explore {max_days} d", progress) as bar:
        records = run_cycles(kb.book, picks, start, unbounded, auto_credit_limit_fen=auto_credit_limit_fen,
                             workers=workers, progress=bar, stats=stats)
    cap = caps.of_index()
    out: dict[int, Estimate] = {}
    for days in sorted(d for d in section.cycles_days if d <= max_days):
        low = np.array([r.running_min[days - 1] for r in records])  # cycles x keys
        high = np.array([_running_max(r, days) for r in records])
        draw = AMPLE - low
        active = int(np.count_nonzero(draw.max(axis=0)))
        q_each = 1 - (1 - section.service_level) / max(1, active)
        fl = tuple(min(cap[i], math.ceil(_quantile(draw[:, i], q_each))) for i in range(len(KEYS)))
        # with float F the unbounded level path is F + (level - AMPLE); what rises above the
        # cassette's size overflows (into the cashbox for notes; refused for coins)
        over = np.maximum(0, np.array(fl) + (high - AMPLE) - np.array(cap))
        notes_over = over[:, list(IS_NOTE)].sum(axis=1)
        coins_over = over[:, [not n for n in IS_NOTE]].sum(axis=1)
        taken = [r.taken[days - 1] for r in records]
        out[days] = Estimate(days, fl, int(_quantile(taken, section.service_level)),
                             int(_quantile(notes_over, section.service_level)),
                             int(_quantile(coins_over, section.service_level)))
    return out


def _running_max(r: CycleRecord, days: int) -> tuple[int, ...]:
    levels = np.array(r.levels[:days])
    return tuple(levels.max(axis=0))


def takings_quantiles(kb: KioskBook, section: BackofficeSection, cycles: int) -> dict[int, int]:
    """Per candidate cycle: net cash taken over the cycle at the service level (fen, float not included).

    Resampled the way the Monte Carlo resamples days; no change-making is needed for
    a total, so every candidate gets its figure cheaply.
    """
    net = np.array(kb.net_cash)
    out = {}
    for days in sorted(section.cycles_days):
        picks = np.array(draw_cycles(kb.book, days, cycles, section.seed, f"insured:{kb.kiosk_id}:{days}"))
        out[days] = int(_quantile(net[picks].sum(axis=1), section.service_level))
    return out


def insured_horizon(takings: Mapping[int, int], section: BackofficeSection) -> int:
    """The longest candidate cycle whose takings alone stay within the insured limit (the shortest if none)."""
    best = min(section.cycles_days)
    for days in sorted(takings):
        if takings[days] > section.insured_limit_fen:
            break
        best = days
    return best


# ============================================================================ float standard


@dataclass(frozen=True)
class FloatLine:
    """The float standard of one denomination."""

    unit: str
    value_fen: int
    load: int
    """Pieces to load at each collection."""
    capacity: int
    empty_cycles: int
    """Verification cycles in which a shortfall found this denomination empty."""
    low_median: int
    """Median over cycles of the lowest level reached."""


@dataclass(frozen=True)
class FloatStandard:
    """One kiosk's float at one cycle, and how it did in the final simulation."""

    kiosk_id: str
    days: int
    lines: tuple[FloatLine, ...]
    cycles: int
    """Cycles in the final verification."""
    passed: int
    """Of those, cycles with no change shortfall."""
    target: float
    rounds: int
    """Simulation rounds the search took before the final verification."""
    shortfall_payments: int
    payments: int
    cashbox_q: int
    """Notes in the cashbox at the end, at the service level."""
    refused_cycles: int
    """Cycles in which a full cashbox or hopper refused a piece."""
    taken_q: int
    """Net cash taken by the cycle's end at the service level (fen)."""
    levels: dict[str, tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]] = field(default_factory=dict)
    """For the chart: denomination label -> (low band, median, high band) of the level at each snapshot."""
    plan_cache_rate: float = 0.0
    """Share of change plans taken from the plan cache in the final run."""

    @property
    def service_level(self) -> float:
        """Share of verification cycles with no change shortfall."""
        return self.passed / self.cycles if self.cycles else 0.0

    @property
    def value_fen(self) -> int:
        """Value of the float."""
        return sum(line.value_fen * line.load for line in self.lines)

    def counts(self) -> tuple[int, ...]:
        """Pieces per :data:`KEYS` index."""
        return tuple(line.load for line in self.lines)


def search_float(kb: KioskBook, section: BackofficeSection, days: int, start: Sequence[int], *, caps: Capacities,
                 auto_credit_limit_fen: int, simulations: int, workers: int, progress: bool,
                 stats: RunStats | None = None) -> FloatStandard:
    """The smallest float found that keeps change flowing in ``service_level`` of ``days``-day cycles.

    ``start`` is the explore run's estimate; its proportions are kept while the whole
    float is scaled up until enough search cycles pass, then bisected down; then each
    denomination is set to how deep the passing float was drawn down (at a level that
    leaves the service level for all of them together), which is kept if it passes.
    The search runs on a fixed sample of cycles (each float sees the same days); the
    float found is then verified on ``simulations`` fresh cycles.
    """
    sl = section.service_level
    cap = caps.of_index()
    n = max(100, min(300, simulations // 4))
    picks = draw_cycles(kb.book, days, n, section.seed, f"search:{kb.kiosk_id}")
    # aim a standard error above the service level: the final run on fresh cycles must pass too
    target = min(0.999, sl + math.sqrt(sl * (1 - sl) / n))
    shape = [max(0, int(x)) for x in start]
    kw = dict(auto_credit_limit_fen=auto_credit_limit_fen, workers=workers, stats=stats)
    rounds = 0

    def scaled(alpha: float) -> list[int]:
        return [min(c, math.ceil(alpha * x)) for c, x in zip(cap, shape, strict=True)]

    def trial(counts: Sequence[int]) -> tuple[float, list[CycleRecord]]:
        nonlocal rounds
        rounds += 1
        with Progress(len(picks), f"{kb.kiosk_id} float {days} d, round {rounds}", progress) as bar:
            recs = run_cycles(kb.book, picks, counts, caps, progress=bar, **kw)
        for i, b in enumerate(np.array([r.culprits for r in recs]).sum(axis=0)):
            if b and shape[i] == 0:
                shape[i] = 5  # ran out of a denomination the estimate left empty: give it a share
        return sum(1 for r in recs if r.shortfalls == 0) / len(recs), recs

    lo: float | None = None
    hi: float | None = None
    best: tuple[list[int], list[CycleRecord]] | None = None
    alpha = 1.0
    while rounds < MAX_SEARCH_ROUNDS:  # grow until the search cycles pass
        counts = scaled(alpha)
        rate, recs = trial(counts)
        if rate >= target:
            hi, best = alpha, (counts, recs)
            break
        lo = alpha
        if scaled(alpha * 1.6) == counts:
            break  # the cassettes are as full as they go
        alpha *= 1.6
    if hi is not None:
        if lo is None:  # the estimate passed at once: look below it too
            lo = hi / 2
        for _ in range(2):  # bisect between failing and passing
            mid = (lo + hi) / 2
            counts = scaled(mid)
            if best is not None and counts == best[0]:
                break
            rate, recs = trial(counts)
            if rate >= target:
                hi, best = mid, (counts, recs)
            else:
                lo = mid
    if best is not None:
        # scaling raised every denomination alike: re-estimate each from how deep the passing
        # float was drawn down (its scarcity is close to the real one), and keep it if it passes
        counts, recs = best
        draw = np.array(counts) - np.array([r.running_min[-1] for r in recs])
        active = max(1, int(np.count_nonzero(draw.max(axis=0))))
        q_each = 1 - (1 - target) / active
        trimmed = [min(c, math.ceil(_quantile(draw[:, i], q_each)) + 1) if c else 0 for i, c in enumerate(counts)]
        if trimmed != counts:
            rate, recs = trial(trimmed)
            if rate >= target:
                best = (trimmed, recs)
    final = best[0] if best is not None else scaled(alpha)
    verify = draw_cycles(kb.book, days, simulations, section.seed, f"verify:{kb.kiosk_id}")
    run = RunStats()
    with Progress(len(verify), f"{kb.kiosk_id} verify {days} d", progress) as bar:
        recs = run_cycles(kb.book, verify, final, caps, progress=bar, snapshots=min(400, simulations),
                          stats=run, **{k: v for k, v in kw.items() if k != "stats"})
    if stats is not None:
        stats.cycles += run.cycles
        stats.change_plans += run.change_plans
        stats.change_makings += run.change_makings
    return _standard(kb, days, final, recs, caps, sl, rounds, run)


def _standard(kb: KioskBook, days: int, counts: Sequence[int], recs: Sequence[CycleRecord], caps: Capacities,
              sl: float, rounds: int, run: RunStats) -> FloatStandard:
    cap = caps.of_index()
    low = np.array([r.running_min[-1] for r in recs])
    lines = tuple(
        FloatLine(unit, value, counts[i], cap[i], sum(1 for r in recs if r.shortfalls and r.culprits[i]),
                  int(np.median(low[:, i])))
        for i, (unit, value) in enumerate(KEYS)
    )
    cashbox = [sum(r.cashbox[-1]) for r in recs]
    levels: dict[str, tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]] = {}
    snaps = [r.snapshots for r in recs if r.snapshots]
    if snaps:
        arr = np.array(snaps, dtype=float)  # cycles x snapshots x keys
        for i, (unit, value) in enumerate(KEYS):
            if counts[i] == 0 and arr[:, :, i].max() == 0:
                continue
            series = arr[:, :, i]
            levels[f"{denomination(value)} {unit}"] = (
                tuple(np.quantile(series, 1 - sl, axis=0)), tuple(np.median(series, axis=0)),
                tuple(np.quantile(series, sl, axis=0)))
    cache_rate = 1 - run.change_makings / run.change_plans if run.change_plans else 0.0
    return FloatStandard(
        kiosk_id=kb.kiosk_id, days=days, lines=lines, cycles=len(recs),
        passed=sum(1 for r in recs if r.shortfalls == 0), target=sl, rounds=rounds,
        shortfall_payments=sum(r.shortfalls for r in recs), payments=sum(r.payments for r in recs),
        cashbox_q=int(_quantile(cashbox, sl)), refused_cycles=sum(1 for r in recs if r.refused[-1]),
        taken_q=int(_quantile([r.taken[-1] for r in recs], sl)), levels=levels, plan_cache_rate=cache_rate,
    )


# ============================================================================ the plan


@dataclass(frozen=True)
class KioskPlan:
    """One kiosk's side of the plan."""

    kiosk_id: str
    history_days: int
    payments: int
    cash_payments: int
    daily_takings_fen: int
    estimates: Mapping[int, Estimate]
    costs: Mapping[int, CycleCost]
    problems: Mapping[int, tuple[str, ...]]
    float_standard: FloatStandard | None


@dataclass(frozen=True)
class HallPlan:
    """The plan for a hall: one remittance cycle, a float per kiosk."""

    hall: str
    kiosks: tuple[KioskPlan, ...]
    choice: CycleChoice
    section: BackofficeSection
    made_on: date
    first_day: date
    last_day: date
    stats: RunStats

    @property
    def days(self) -> int | None:
        """The recommended cycle (None when no candidate is allowed)."""
        return self.choice.chosen.days if self.choice.chosen else None

    def float_total(self) -> dict[tuple[str, int], int]:
        """The hall's float: pieces per denomination over all kiosks."""
        out: dict[tuple[str, int], int] = {}
        for k in self.kiosks:
            if k.float_standard:
                for line in k.float_standard.lines:
                    out[(line.unit, line.value_fen)] = out.get((line.unit, line.value_fen), 0) + line.load
        return out


def plan_hall(
    transactions: Sequence[Transaction],
    section: BackofficeSection,
    *,
    zone: ZoneInfo,
    hall: str,
    auto_credit_limit_fen: int = 100,
    simulations: int | None = None,
    workers: int = 1,
    progress: bool = False,
    made_on: date | None = None,
) -> HallPlan:
    """Plan the remittance cycle and every kiosk's float from a hall's history.

    ``transactions`` may hold several kiosks (``kiosk_id``); they are collected together.
    """
    if not transactions:
        raise BackofficeError("the history is empty: nothing to plan")
    sims = simulations or section.simulations
    if sims < 10:
        raise BackofficeError(f"--simulations must be at least 10, got {sims}")
    stats = RunStats()
    caps = Capacities(section.store_capacity(), section.cashbox_capacity, section.hopper_capacity())
    ids = sorted({t.kiosk_id for t in transactions})
    books = [compile_history(transactions, zone, k) for k in ids]
    explore_n = max(60, min(sims // 10, 600))
    takings = {kb.kiosk_id: takings_quantiles(kb, section, max(200, sims // 5)) for kb in books}
    horizon = min(insured_horizon(takings[kb.kiosk_id], section) for kb in books)
    # simulate one cycle longer than the insured horizon, so the report shows what the limit excludes
    longer = [d for d in sorted(section.cycles_days) if d > horizon]
    max_days = longer[0] if longer else horizon
    estimates = {kb.kiosk_id: explore(kb, section, max_days, explore_n, caps=caps,
                                      auto_credit_limit_fen=auto_credit_limit_fen, workers=workers,
                                      progress=progress, stats=stats) for kb in books}
    candidates = sorted(d for d in section.cycles_days if d <= max_days)
    costs: dict[str, dict[int, CycleCost]] = {kb.kiosk_id: {} for kb in books}
    problems: dict[str, dict[int, list[str]]] = {kb.kiosk_id: {} for kb in books}
    for kb in books:
        for d in candidates:
            est = estimates[kb.kiosk_id][d]
            costs[kb.kiosk_id][d] = cycle_cost(d, section.escort_cost_fen, section.holding_rate, est.float_fen,
                                               kb.daily_takings)
            problems[kb.kiosk_id][d] = _checks(est.taken_q + est.float_fen, est.cashbox_q, est.coins_over_q,
                                               section)
    # longer cycles are out on the takings alone; their cost (with the longest simulated cycle's
    # float) still goes on the curve, so the report shows the whole trade-off
    beyond = sorted(d for d in section.cycles_days if d > max_days)
    for kb in books:
        fl = estimates[kb.kiosk_id][max_days].float_fen
        for d in beyond:
            costs[kb.kiosk_id][d] = cycle_cost(d, section.escort_cost_fen, section.holding_rate, fl,
                                               kb.daily_takings)
            problems[kb.kiosk_id][d] = [f"takings alone reach {yuan(takings[kb.kiosk_id][d])} yuan, over the "
                                        f"insured {yuan(section.insured_limit_fen)}"]
    candidates = sorted(section.cycles_days)
    searched: dict[int, dict[str, FloatStandard]] = {}
    while True:
        choice = choose_cycle([_hall_option(d, books, costs, problems, section) for d in candidates])
        if choice.chosen is None or choice.chosen.days in searched:
            break  # nothing allowed, or the cheapest allowed cycle has its simulated float already
        d = choice.chosen.days
        searched[d] = {}
        for kb in books:
            est = estimates[kb.kiosk_id][d]
            std = search_float(kb, section, d, est.float_counts, caps=caps,
                               auto_credit_limit_fen=auto_credit_limit_fen, simulations=sims, workers=workers,
                               progress=progress, stats=stats)
            searched[d][kb.kiosk_id] = std
            costs[kb.kiosk_id][d] = cycle_cost(d, section.escort_cost_fen, section.holding_rate, std.value_fen,
                                               kb.daily_takings)
            found = _checks(std.taken_q + std.value_fen, std.cashbox_q, 0, section)
            if std.refused_cycles > (1 - section.service_level) * std.cycles:
                found.append(f"the cashbox or hopper refused cash in {std.refused_cycles} of {std.cycles} cycles")
            if std.service_level < section.service_level:
                full = all(line.load >= line.capacity for line in std.lines if line.empty_cycles)
                why = "even with the cassettes as full as they go" if full else "with the best float found"
                found.append(f"change ran out in {std.cycles - std.passed} of {std.cycles} cycles {why}")
            problems[kb.kiosk_id][d] = found
    floats = searched.get(choice.chosen.days, {}) if choice.chosen else {}
    kiosks = tuple(
        KioskPlan(kb.kiosk_id, kb.days, kb.payments, kb.cash_payments, int(kb.daily_takings),
                  estimates[kb.kiosk_id], costs[kb.kiosk_id],
                  {d: tuple(p) for d, p in problems[kb.kiosk_id].items()}, floats.get(kb.kiosk_id))
        for kb in books
    )
    return HallPlan(hall, kiosks, choice, section, made_on or date.today(),
                    min(kb.book.dates[0] for kb in books), max(kb.book.dates[-1] for kb in books), stats)


def _checks(peak_cash: int, cashbox: int, coins_over: int, section: BackofficeSection) -> list[str]:
    out = []
    if peak_cash > section.insured_limit_fen:
        out.append(f"holds up to {yuan(peak_cash)} yuan, over the insured {yuan(section.insured_limit_fen)}")
    if cashbox > section.cashbox_capacity:
        out.append(f"{cashbox} notes for a cashbox of {section.cashbox_capacity}")
    if coins_over > 0:
        out.append(f"{coins_over} coins more than the hopper holds")
    return out


def _hall_option(days: int, books: Sequence[KioskBook], costs: Mapping[str, Mapping[int, CycleCost]],
                 problems: Mapping[str, Mapping[int, list[str]]], section: BackofficeSection) -> CycleOption:
    cost = combined([costs[kb.kiosk_id][days] for kb in books], section.escort_cost_fen)
    found: list[str] = []
    several = len(books) > 1
    for kb in books:
        found += [f"{kb.kiosk_id}: {p}" if several else p for p in problems[kb.kiosk_id][days]]
    return CycleOption(cost, tuple(found))


# ============================================================================ output


def cycle_rows(plan: HallPlan) -> list[dict[str, str]]:
    """The cost curve as table rows (hall level)."""
    rows = []
    chosen = plan.days
    for o in plan.choice.options:
        rows.append({
            "days": str(o.days),
            "escort_per_day": yuan(o.cost.escort_fen),
            "holding_per_day": yuan(o.cost.holding_fen),
            "total_per_day": yuan(o.cost.total_fen),
            "average_cash": yuan(round(o.cost.average_cash)),
            "allowed": "yes" if o.feasible else "no",
            "chosen": "yes" if o.days == chosen else "",
            "why_not": "; ".join(o.problems),
        })
    return rows


def float_rows(plan: HallPlan) -> list[dict[str, str]]:
    """The float standard as table rows: per kiosk, then the hall total."""
    rows = []
    for k in plan.kiosks:
        std = k.float_standard
        if std is None:
            continue
        for line in std.lines:
            rows.append({
                "kiosk_id": k.kiosk_id, "unit": line.unit, "denomination": denomination(line.value_fen),
                "load": str(line.load), "value": yuan(line.load * line.value_fen),
                "capacity": str(line.capacity), "empty_in_cycles": str(line.empty_cycles),
                "median_lowest_level": str(line.low_median),
            })
    if len(plan.kiosks) > 1:
        for (unit, value), n in sorted(plan.float_total().items(), key=lambda x: KEYS.index(x[0])):
            rows.append({"kiosk_id": "hall", "unit": unit, "denomination": denomination(value), "load": str(n),
                         "value": yuan(n * value), "capacity": "", "empty_in_cycles": "", "median_lowest_level": ""})
    return rows


def read_float_csv(path, kiosk_id: str) -> dict[tuple[str, int], int]:
    """The float standard for ``kiosk_id`` from a ``cash plan`` float CSV.

    Returns ``{(unit, value_fen): count}``. Raises :class:`BackofficeError` naming the file
    and line of a malformed row, or saying that the file holds no lines for the kiosk.
    """
    from pathlib import Path

    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise BackofficeError(f"{path}: no such file") from None
    except (IsADirectoryError, UnicodeDecodeError) as exc:
        raise BackofficeError(f"{path}: not a float CSV ({exc.__class__.__name__})") from None
    rows = list(csv.reader(io.StringIO(text)))
    need = ("kiosk_id", "unit", "denomination", "load")
    if not rows or any(c not in rows[0] for c in need):
        raise BackofficeError(f"{path}:1: expected a header with {', '.join(need)} (the float CSV of cash plan)")
    index = {c: rows[0].index(c) for c in need}
    values = {(unit, v) for unit, v in KEYS}
    out: dict[tuple[str, int], int] = {}
    for n, row in enumerate(rows[1:], 2):
        if not row or len(row) < len(rows[0]) or row[index["kiosk_id"]].strip() != kiosk_id:
            if row and len(row) < len(rows[0]):
                raise BackofficeError(f"{path}:{n}: {len(row)} fields, the header has {len(rows[0])}")
            continue
        unit, denom, load = (row[index[c]].strip() for c in ("unit", "denomination", "load"))
        try:
            fen = Fraction(denom) * 100
        except (ValueError, ZeroDivisionError):
            raise BackofficeError(f"{path}:{n}: denomination {denom!r} is not a number of yuan") from None
        if fen.denominator != 1 or (unit, int(fen)) not in values:
            raise BackofficeError(f"{path}:{n}: {unit} {denom} is not a denomination the kiosk's units hold")
        if not load.isdigit():
            raise BackofficeError(f"{path}:{n}: load {load!r} is not a whole count of pieces")
        key = (unit, int(fen))
        if key in out:
            raise BackofficeError(f"{path}:{n}: {unit} {denom} appears twice for {kiosk_id}")
        out[key] = int(load)
    if not out:
        raise BackofficeError(f"{path}: no float lines for kiosk {kiosk_id}")
    return out


def to_csv(rows: Sequence[Mapping[str, str]]) -> str:
    """Rows as CSV text."""
    if not rows:
        return ""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def history_warnings(plan: HallPlan) -> list[str]:
    """One line per kiosk whose history is too short to plan from reliably (empty when all are fine).

    The limits are ``[backoffice] min_history_days`` and ``min_cash_payments``.
    """
    s = plan.section
    out = []
    for k in plan.kiosks:
        if k.history_days < s.min_history_days or k.cash_payments < s.min_cash_payments:
            out.append(f"{k.kiosk_id} is planned from only {k.history_days} day(s) and {k.cash_payments} cash "
                       f"payment(s) ({k.payments} payment(s) in all): the plan is UNRELIABLE below "
                       f"{s.min_history_days} days or {s.min_cash_payments} cash payments "
                       f"([backoffice] min_history_days, min_cash_payments)")
    return out


def summary(plan: HallPlan) -> str:
    """The plan as the terminal shows it."""
    s = plan.section
    lines = [
        f"cash plan for hall {plan.hall}: {len(plan.kiosks)} kiosk(s), history {plan.first_day} .. {plan.last_day}",
        f"  escort {yuan(s.escort_cost_fen)} yuan per visit, holding {s.holding_cost_per_yuan_day} per yuan per day, "
        f"insured {yuan(s.insured_limit_fen)} yuan per kiosk, service level {s.service_level:.0%}",
    ]
    for k in plan.kiosks:
        lines.append(f"  {k.kiosk_id}: {k.payments} payments over {k.history_days} days, {k.cash_payments} in cash, "
                     f"net cash {yuan(k.daily_takings_fen)} yuan per day")
    lines += [f"  WARNING: {w}" for w in history_warnings(plan)]
    lines.append("")
    lines.append("remittance cycle (cost per day, yuan)")
    lines.append(f"  {'days':>4} {'escort':>10} {'holding':>10} {'total':>10} {'avg cash':>12}  allowed")
    for r in cycle_rows(plan):
        mark = "  <- recommended" if r["chosen"] else ""
        why = "" if r["allowed"] == "yes" else f"  ({r['why_not']})"
        lines.append(f"  {r['days']:>4} {r['escort_per_day']:>10} {r['holding_per_day']:>10} {r['total_per_day']:>10} "
                     f"{r['average_cash']:>12}  {r['allowed']:<3}{mark}{why}")
    takings = sum(k.daily_takings_fen for k in plan.kiosks)
    best = unconstrained_optimum(s.escort_cost_fen, s.holding_rate, takings)
    if math.isfinite(best):
        lines.append(f"  without limits the cost is lowest near {best:.1f} days (sqrt(2 x escort / (holding x "
                     f"daily takings)))")
    lines.append("")
    if plan.days is None:
        lines.append("no cycle is allowed:")
    else:
        lines.append(f"recommended: collect every {plan.days} day(s), because")
    lines += [f"  - {r}" for r in plan.choice.reasons]
    for k in plan.kiosks:
        std = k.float_standard
        if std is None:
            continue
        lines.append("")
        lines.append(f"float standard for {k.kiosk_id} ({std.days}-day cycle): load at each collection")
        lines.append(f"  {'unit':<6} {'denom':>6} {'load':>6} {'value':>10} {'capacity':>9} {'ran out':>9} "
                     f"{'lowest':>7}")
        for line in std.lines:
            lines.append(f"  {line.unit:<6} {denomination(line.value_fen):>6} {line.load:>6} "
                         f"{yuan(line.load * line.value_fen):>10} {line.capacity:>9} {line.empty_cycles:>9} "
                         f"{line.low_median:>7}")
        lines.append(f"  (ran out: in how many of the {std.cycles} simulated {std.days}-day cycles this denomination "
                     "was empty when a customer's change needed it;")
        lines.append("   lowest: the fewest pieces of it left during a cycle, median over the simulated cycles)")
        lines.append(f"  float value {yuan(std.value_fen)} yuan; change never ran out in {std.passed} of "
                     f"{std.cycles} simulated cycles ({std.service_level:.1%}, target {std.target:.0%}); "
                     f"{std.shortfall_payments} of {std.payments} payments short of change; cashbox "
                     f"{std.cashbox_q} notes at the service level")
    if len(plan.kiosks) > 1 and all(k.float_standard for k in plan.kiosks):
        total = plan.float_total()
        value = sum(v * n for (_, v), n in total.items())
        lines.append("")
        lines.append(f"hall total float: {yuan(value)} yuan: " + ", ".join(
            f"{denomination(v)} {u} x {n}" for (u, v), n in sorted(total.items(), key=lambda x: KEYS.index(x[0]))
            if n))
    return "\n".join(lines) + "\n"


def chart(plan: HallPlan) -> bytes:
    """PNG: the hall's cost curve, and each kiosk's float levels over a simulated cycle."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kiosks = [k for k in plan.kiosks if k.float_standard is not None]
    fig, axes = plt.subplots(1 + len(kiosks), 1, figsize=(9, 4 + 3.2 * len(kiosks)), squeeze=False)
    ax = axes[0][0]
    opts = plan.choice.options
    xs = [o.days for o in opts]
    ax.plot(xs, [o.cost.escort_fen / 100 for o in opts], "o--", label="escort")
    ax.plot(xs, [o.cost.holding_fen / 100 for o in opts], "s--", label="holding")
    ax.plot(xs, [o.cost.total_fen / 100 for o in opts], "k^-", label="total")
    bad = [o for o in opts if not o.feasible]
    if bad:
        ax.scatter([o.days for o in bad], [o.cost.total_fen / 100 for o in bad], s=140, facecolors="none",
                   edgecolors="red", label="not allowed")
    if plan.choice.chosen is not None:
        c = plan.choice.chosen
        ax.scatter([c.days], [c.cost.total_fen / 100], s=160, marker="*", color="green", zorder=5,
                   label=f"recommended: {c.days} d")
    ax.set_xlabel("remittance cycle (days)")
    ax.set_ylabel("cost per day (yuan)")
    ax.set_title(f"hall {plan.hall}: cost of a remittance cycle")
    ax.legend()
    ax.grid(alpha=0.3)
    for row, k in enumerate(kiosks, 1):
        std = k.float_standard
        assert std is not None
        ax = axes[row][0]
        per_day = len(SNAPSHOT_MINUTES)
        for label, (lo, mid, hi) in std.levels.items():
            x = np.arange(len(mid)) / per_day
            line, = ax.plot(x, mid, label=label)
            ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.15)
        ax.set_xlabel("day of the cycle (hourly)")
        ax.set_ylabel("pieces in the kiosk")
        ax.set_title(f"{k.kiosk_id}: float levels over a {std.days}-day cycle "
                     f"(median, {1 - std.target:.0%}-{std.target:.0%} band)")
        ax.legend(fontsize="small", ncol=3)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def with_simulations(section: BackofficeSection, simulations: int | None) -> BackofficeSection:
    """The section with ``simulations`` replaced (when given)."""
    return replace(section, simulations=simulations) if simulations else section
