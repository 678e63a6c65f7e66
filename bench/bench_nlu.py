"""How much the pinyin fallback and the amount parser cost next to a plain template match.

Run: ``.venv/bin/python bench/bench_nlu.py``. Prints per-call times and ratios against
the baseline (a template match of a short sentence) measured in the same run.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's packages, not an installed copy

from assistant.locale import load_packs  # noqa: E402
from assistant.nlu import understand, understander  # noqa: E402
from speech.numbers import money_words, parse_money  # noqa: E402


def per_call(fn, n: int) -> float:
    """Seconds per call of ``fn`` over ``n`` calls."""
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def main() -> None:
    """Measure and print."""
    pack = load_packs(ROOT / "locales")["zh-CN"]
    understander(pack).candidates()  # build the pinyin index outside the timing
    style = pack.number_style
    base = per_call(lambda: understand(pack, "我要交电费"), 300)
    cases = {
        "template, restricted to 3 intents": lambda: understand(pack, "一百二十三块五", ["Amount", "Cancel", "Help"]),
        "pinyin fallback (角费 for 缴费)": lambda: understand(pack, "我要角费"),
        "no match at all (pinyin scan)": lambda: understand(pack, "今天天气怎么样"),
        "parse_money": lambda: parse_money("两千两百二十五块五毛", style),
        "money_words": lambda: money_words(222550, style),
    }
    print(f"baseline: template match of 我要交电费: {base * 1e3:.3f} ms per call")
    for name, fn in cases.items():
        t = per_call(fn, 100)
        print(f"{name:36s} {t * 1e3:8.3f} ms  ratio {t / base:6.2f}x")


if __name__ == "__main__":
    main()
