"""Benchmark: change-making time over realistic cassette stocks, DP against greedy.

Run: ``.venv/bin/python bench/change.py`` (about half a minute on two cores).

Stocks are drawn around the default float (``[cash] sim_notes`` / ``sim_coins``) and a
large hall's float, drained to a random point of the remittance cycle (2 % to 100 %
left), each denomination unevenly, and now and then one run out entirely; 30 % are
late-cycle stocks whose small denominations are down to a few pieces, which is when
greedy goes wrong (60 元 from one 50 and three 20s).
Amounts go from 1 角 to 10 000 元, log-uniform, in whole 角 (the 分 part is never paid).
Both solvers see the same case, alternately timed, in the same process; the report
gives median and p99 per solver and size band, the DP/greedy ratio, and how often
greedy fails where an exact payout exists.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant.change import exact_change, greedy_change  # noqa: E402

STANDARD_FLOATS = [
    # the default demo float: notes in the recycler, coins in the hopper
    {("notes", 10000): 10, ("notes", 5000): 10, ("notes", 2000): 20, ("notes", 1000): 20,
     ("notes", 500): 20, ("notes", 100): 30, ("coins", 100): 50, ("coins", 50): 50, ("coins", 10): 100},
    # a busy hall's float
    {("notes", 10000): 100, ("notes", 5000): 60, ("notes", 2000): 80, ("notes", 1000): 80,
     ("notes", 500): 60, ("notes", 100): 100, ("coins", 100): 300, ("coins", 50): 200, ("coins", 10): 300},
]
BANDS = [(10, 10_000), (10_000, 100_000), (100_000, 1_000_001)]  # fen: < 100 元, < 1 000 元, <= 10 000 元


def stock(rng: random.Random, late: bool) -> dict[tuple[str, int], int]:
    """A cassette state somewhere in a remittance cycle.

    ``late``: just before the next refill, when the small denominations that change
    is made of (10 元 and below) are down to a few pieces or gone; the large notes
    customers pay with have piled up in the recycler.
    """
    base = rng.choice(STANDARD_FLOATS)
    fill = rng.uniform(0.02, 1.0)  # how far the float has drained since the last refill
    out = {}
    for key, n in base.items():
        if late and key[1] <= 1000:
            out[key] = 0 if rng.random() < 0.4 else rng.randint(0, 3)
        else:
            # denominations drain unevenly (busy days pay out lots of 1 元 and 5 角)
            out[key] = 0 if rng.random() < 0.15 else round(n * fill * rng.uniform(0.0, 2.0))
    return out


def amount(rng: random.Random) -> int:
    """1 角 .. 10 000 元, log-uniform, whole 角."""
    return max(10, int(math.exp(rng.uniform(math.log(10), math.log(1_000_000)))) // 10 * 10)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", type=int, default=3000)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    exact_change(100, {100: 1})  # import and warm up numpy outside the timings
    times: dict[str, dict[int, list[float]]] = {"dp": {i: [] for i in range(len(BANDS))},
                                                 "greedy": {i: [] for i in range(len(BANDS))}}
    greedy_fails_dp_ok = both_fail = dp_fewer_pieces = dp_spares = agree = 0
    family = {False: [0, 0], True: [0, 0]}  # late -> [cases, greedy fails where DP pays]
    for case in range(args.cases):
        late = rng.random() < 0.3
        s, a = stock(rng, late), amount(rng)
        family[late][0] += 1
        band = next(i for i, (lo, hi) in enumerate(BANDS) if lo <= a < hi)
        order = ("dp", "greedy") if case % 2 else ("greedy", "dp")
        result = {}
        for name in order:
            fn = exact_change if name == "dp" else greedy_change
            t = time.perf_counter()
            result[name] = fn(a, s)
            times[name][band].append(time.perf_counter() - t)
        dp, greedy = result["dp"], result["greedy"]
        if greedy is not None:
            assert dp is not None and dp.paid_fen == a  # DP never misses what greedy finds
            agree += 1
            if dict(dp.counts) != dict(greedy.counts):
                dp_fewer_pieces += dp.pieces < greedy.pieces
                dp_spares += dp.pieces >= greedy.pieces
        elif dp is not None:
            greedy_fails_dp_ok += 1
            family[late][1] += 1
        else:
            both_fail += 1

    print(f"change-making over {args.cases} cases (amounts 1 角 .. 10 000 元, realistic stocks)")
    print(f"{'amount band':<22}{'cases':>7}{'DP median':>12}{'DP p99':>10}{'greedy med':>12}"
          f"{'greedy p99':>12}{'ratio med':>11}")
    for i, (lo, hi) in enumerate(BANDS):
        d, g = times["dp"][i], times["greedy"][i]
        if not d:
            continue
        label = f"{lo // 100}-{(hi - 1) // 100} yuan" if lo >= 100 else f"0.1-{(hi - 1) // 100} yuan"
        print(f"{label:<22}{len(d):>7}{statistics.median(d) * 1e3:>10.3f}ms{pct(d, 99) * 1e3:>8.2f}ms"
              f"{statistics.median(g) * 1e6:>10.1f}us{pct(g, 99) * 1e6:>10.1f}us"
              f"{statistics.median(d) / statistics.median(g):>10.0f}x")
    all_d = [t for v in times["dp"].values() for t in v]
    all_g = [t for v in times["greedy"].values() for t in v]
    print(f"{'all':<22}{len(all_d):>7}{statistics.median(all_d) * 1e3:>10.3f}ms{pct(all_d, 99) * 1e3:>8.2f}ms"
          f"{statistics.median(all_g) * 1e6:>10.1f}us{pct(all_g, 99) * 1e6:>10.1f}us"
          f"{statistics.median(all_d) / statistics.median(all_g):>10.0f}x")
    print(f"greedy fails but an exact payout exists (DP pays it): {greedy_fails_dp_ok} "
          f"({100 * greedy_fails_dp_ok / args.cases:.1f}% of cases): "
          f"{family[False][1]} of {family[False][0]} mid-cycle stocks, "
          f"{family[True][1]} of {family[True][0]} late-cycle stocks")
    print(f"both pay exactly: {agree}; the DP pays differently in {dp_fewer_pieces + dp_spares} of them "
          f"({dp_fewer_pieces} with fewer pieces, {dp_spares} sparing a denomination that runs short)")
    print(f"no exact payout at all (remainder credited): {both_fail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
