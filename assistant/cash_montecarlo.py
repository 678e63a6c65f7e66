"""Monte Carlo of remittance cycles: resampled days of real payments through the kiosk's cash model.

A simulated cycle starts with the float loaded and an empty cashbox, then runs
``T`` days drawn from the history: day ``k`` of a cycle is a real day of the same
weekday within four weeks of the cycle's calendar position, so weekly rhythm and
season are kept while days are resampled. Every cash payment of those days goes
through :class:`~assistant.cash_model.KioskCash` (the kiosk's own note check,
stacking and change-making), and the cycle records what the planner needs: change
shortfalls and what ran out, the lowest level of every denomination, the cashbox
and hopper fill, and the cash held at each day's end.

Cycles are seeded one by one (``seed``, purpose, cycle number), so a run gives the
same answer for the same inputs whatever the number of worker processes.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta

from assistant.cash_model import KEYS, Capacities, ChangeMaker, KioskCash, Piece

CashDay = tuple[tuple[int, tuple[Piece, ...], int], ...]
"""One day's cash payments: (due fen, pieces inserted (compiled), minute of the day)."""
SNAPSHOT_MINUTES = tuple(range(8 * 60, 19 * 60, 60))
"""Times of day (minutes) the levels are sampled at for the chart."""


@dataclass(frozen=True)
class DayBook:
    """A kiosk's history as the Monte Carlo resamples it."""

    dates: tuple[date, ...]
    """Every calendar day from the first to the last payment (quiet days included)."""
    cash: tuple[CashDay, ...]
    """Cash payments per day, in time order."""

    def neighbours(self, window_days: int = 28) -> list[list[int]]:
        """For each day, the days of the same weekday within ``window_days`` (itself included)."""
        out = []
        n = len(self.dates)
        for i in range(n):
            same = [j for j in range(i % 7, n, 7) if abs(j - i) <= window_days]
            out.append(same or [i])
        return out


def draw_cycles(book: DayBook, days: int, count: int, seed: int, purpose: str) -> list[tuple[int, ...]]:
    """``count`` cycles of ``days`` resampled day indices (see the module notes)."""
    neigh = book.neighbours()
    n = len(book.dates)
    out = []
    for c in range(count):
        rng = random.Random(f"{seed}:{purpose}:{c}")
        anchor = rng.randrange(n)
        picks = []
        for k in range(days):
            t = anchor + k
            if t >= n:  # past the end of the history: the same weekday, whole weeks earlier
                t -= 7 * (-(-(t - n + 1) // 7))
                if t < 0:  # less than a week of history: any day
                    t = (anchor + k) % n
            picks.append(rng.choice(neigh[t]))
        out.append(tuple(picks))
    return out


@dataclass(frozen=True)
class CycleRecord:
    """What one simulated cycle did."""

    shortfalls: int
    """Payments whose change could not be paid down to the 角."""
    first_shortfall_day: int
    """Day index (0-based) of the first shortfall; -1 if none."""
    culprits: tuple[int, ...]
    """Per :data:`~assistant.cash_model.KEYS` index: shortfalls in which that denomination was empty."""
    running_min: tuple[tuple[int, ...], ...]
    """Per day end: the lowest level so far of each denomination."""
    levels: tuple[tuple[int, ...], ...]
    """Per day end: the level of each denomination."""
    cashbox: tuple[tuple[int, ...], ...]
    """Per day end: notes in the cashbox per note value (in ``NOTE_ORDER``)."""
    refused: tuple[int, ...]
    """Per day end: pieces refused so far because the cashbox or hopper was full."""
    taken: tuple[int, ...]
    """Per day end: net cash taken so far (in minus change out), fen."""
    payments: int
    snapshots: tuple[tuple[int, ...], ...] = ()
    """Levels at :data:`SNAPSHOT_MINUTES` of each day (only when asked for)."""


NOTE_ORDER = (100, 500, 1000, 2000, 5000, 10000)


@dataclass(frozen=True)
class Job:
    """A batch of cycles for one worker."""

    start: int
    cycles: tuple[tuple[int, ...], ...]
    float_counts: tuple[int, ...]
    capacities: Capacities
    auto_credit_limit_fen: int
    snapshots: bool
    fast: bool


_BOOK: DayBook | None = None
_MAKERS: dict[bool, ChangeMaker] = {}


def _init(book: DayBook) -> None:
    global _BOOK
    _BOOK = book
    _MAKERS.clear()


def maker(fast: bool) -> ChangeMaker:
    """This process's change-maker (its cache lives as long as the process)."""
    m = _MAKERS.get(fast)
    if m is None:
        m = _MAKERS[fast] = ChangeMaker(fast=fast)
    return m


def run_job(job: Job) -> tuple[int, list[CycleRecord], int, int]:
    """Simulate a batch; returns (start, records, change plans asked, change-makings run)."""
    assert _BOOK is not None, "worker not initialised"
    m = maker(job.fast)
    calls, solved = m.calls, m.solved
    out = [simulate_cycle(_BOOK, picks, job, m) for picks in job.cycles]
    return job.start, out, m.calls - calls, m.solved - solved


def simulate_cycle(book: DayBook, picks: Sequence[int], job: Job, m: ChangeMaker) -> CycleRecord:
    """Run one cycle of resampled days through a fresh :class:`KioskCash`."""
    kiosk = KioskCash(job.float_counts, job.capacities, m, job.auto_credit_limit_fen)
    n = len(KEYS)
    low = list(job.float_counts)
    culprits = [0] * n
    shortfalls, first = 0, -1
    running, levels, cashbox, refused, taken, snaps = [], [], [], [], [], []
    start_cash = kiosk.cash_fen
    payments = 0
    for day, idx in enumerate(picks):
        marks = iter(SNAPSHOT_MINUTES) if job.snapshots else iter(())
        mark = next(marks, None)
        for due, pieces, minute in book.cash[idx]:
            while mark is not None and minute >= mark:
                snaps.append(tuple(kiosk.counts))
                mark = next(marks, None)
            r = kiosk.pay(due, pieces)
            payments += 1
            if r.shortfall:
                shortfalls += 1
                if first < 0:
                    first = day
                for i in kiosk.culprits(max(r.change_due_fen, r.inserted_fen - due)):
                    culprits[i] += 1
            counts = kiosk.counts
            for i, _ in r.payout.pieces:  # only a payout lowers a level
                if counts[i] < low[i]:
                    low[i] = counts[i]
        while mark is not None:
            snaps.append(tuple(kiosk.counts))
            mark = next(marks, None)
        running.append(tuple(low))
        levels.append(tuple(kiosk.counts))
        cashbox.append(tuple(kiosk.cashbox.get(v, 0) for v in NOTE_ORDER))
        refused.append(kiosk.refused)
        taken.append(kiosk.cash_fen - start_cash)
    return CycleRecord(shortfalls, first, tuple(culprits), tuple(running), tuple(levels), tuple(cashbox),
                       tuple(refused), tuple(taken), payments, tuple(snaps))


@dataclass
class RunStats:
    """Counters of one Monte Carlo run."""

    cycles: int = 0
    change_plans: int = 0
    """Change plans the cycles asked for."""
    change_makings: int = 0
    """Times the kiosk's change-making ran (the rest came from the plan cache)."""


def run_cycles(
    book: DayBook,
    cycles: Sequence[tuple[int, ...]],
    float_counts: Sequence[int],
    capacities: Capacities,
    *,
    auto_credit_limit_fen: int = 100,
    snapshots: int = 0,
    fast: bool = True,
    workers: int = 1,
    progress: Callable[[int], None] | None = None,
    stats: RunStats | None = None,
) -> list[CycleRecord]:
    """Simulate ``cycles`` (day index tuples) from ``float_counts``; records in cycle order.

    Args:
        snapshots: record intra-day levels for the first this-many cycles (for the chart).
        workers: processes to spread the cycles over (1: in this process).
        progress: called with the number of cycles just finished.
    """
    chunk = max(8, min(64, len(cycles) // (workers * 8) or 1))
    jobs = [Job(s, tuple(cycles[s:s + chunk]), tuple(float_counts), capacities, auto_credit_limit_fen,
                s < snapshots, fast) for s in range(0, len(cycles), chunk)]
    results: dict[int, list[CycleRecord]] = {}
    st = stats or RunStats()

    def take(res: tuple[int, list[CycleRecord], int, int]) -> None:
        start, recs, calls, solved = res
        results[start] = recs
        st.cycles += len(recs)
        st.change_plans += calls
        st.change_makings += solved
        if progress is not None:
            progress(len(recs))

    if workers <= 1 or len(jobs) < 2:
        global _BOOK
        previous = _BOOK
        if _BOOK is not book:
            _init(book)
        try:
            for job in jobs:
                take(run_job(job))
        finally:
            if previous is not None and previous is not book:
                _init(previous)
    else:
        pool = _pool(book, workers)
        for fut in cf.as_completed([pool.submit(run_job, j) for j in jobs]):
            take(fut.result())
    return [r for s in sorted(results) for r in results[s]]


_POOLS: dict[int, tuple[DayBook, cf.ProcessPoolExecutor]] = {}


def _pool(book: DayBook, workers: int) -> cf.ProcessPoolExecutor:
    """A worker pool holding ``book`` (kept for further runs on the same book: warm plan caches)."""
    cached = _POOLS.get(workers)
    if cached is not None and cached[0] is book:
        return cached[1]
    if cached is not None:
        cached[1].shutdown(cancel_futures=True)
    # "spawn": the caller may have threads (aiosqlite), which fork does not copy safely
    ctx = multiprocessing.get_context("spawn")
    pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init, initargs=(book,))
    _POOLS[workers] = (book, pool)
    return pool


def shutdown_pools() -> None:
    """Stop the worker processes (the planner calls this when it is done)."""
    for _, pool in _POOLS.values():
        pool.shutdown(cancel_futures=True)
    _POOLS.clear()


def default_workers() -> int:
    """Worker processes to use: the machine's cores, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


class Progress:
    """A progress bar on stderr that appears only if the work takes more than a second."""

    def __init__(self, total: int, label: str, enabled: bool = True) -> None:
        self._bar = None
        if enabled and total > 0:
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=label, unit="cycle", delay=1.0, file=sys.stderr,
                             leave=False, dynamic_ncols=True)

    def __call__(self, n: int) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        """Remove the bar."""
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def day_dates(first: date, last: date) -> tuple[date, ...]:
    """Every date from ``first`` to ``last``."""
    return tuple(first + timedelta(days=i) for i in range((last - first).days + 1))
