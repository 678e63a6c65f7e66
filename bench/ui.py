"""Window speed: dialog state change to the new screen drawn, and cold start to the welcome screen.

Both are measured against a blank Kivy app in the same run:

* **state change -> drawn**: a real kiosk (dialog over the seeded ledger, the presenter,
  the window) is driven through a customer flow by key events; each time is from
  ``Kiosk.post(event)`` to the first frame flipped after the new screen was applied.
  Baseline: in the same window, a blank app's single label changing its text, to the
  next flip.
* **cold start -> welcome drawn**: ``main.py run`` in a fresh process, from spawn to the
  welcome screen's first frame (the window writes a ready file); baseline: a fresh
  process that opens a Kivy window with one label, same font, same measurement. The
  kiosk is built by whatever factory ``run`` uses (today: dialog and ledger only; the
  full runtime factory adds the models, and this benchmark then includes loading them).

Usage: ``xvfb-run -a -s "-screen 0 1280x800x24" python bench/ui.py [--rounds N] [--starts N]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from assistant.config import Config  # noqa: E402
from assistant.messages import ActionChosen, Event, Key, KeyPressed  # noqa: E402
from assistant.screens import Action  # noqa: E402
from ui.boot import display_available, prepare  # noqa: E402


def flow() -> list[Event]:
    """One customer: start, type the account number, confirm, look at other methods, cancel."""
    events: list[Event] = [KeyPressed(Key.CONFIRM)]
    events += [KeyPressed(Key(d)) for d in "0300045678"]
    events += [KeyPressed(Key.ENTER), KeyPressed(Key.CONFIRM), ActionChosen(Action.OTHER_METHODS),
               KeyPressed(Key.CANCEL)]
    return events


async def measure_window(rounds: int) -> tuple[list[float], list[float], dict[str, list[float]]]:
    """State change -> drawn for the kiosk, and text change -> drawn for a blank label."""
    from kivy.app import App
    from kivy.core.window import Window
    from kivy.uix.label import Label

    from assistant.seed import seed
    from ui.app import full_kiosk
    from ui.display import KivyDisplay

    config = Config.load()
    display = KivyDisplay()
    kiosk_times: list[float] = []
    per_screen: dict[str, list[float]] = {}
    blank_times: list[float] = []
    async with contextlib.AsyncExitStack() as stack:
        # The whole kiosk with captions only: drawing is measured, not speaking.
        kiosk = await full_kiosk(display, stack, config, voice="silent")
        await seed(kiosk.dialog.services.billing.db, config.data_dir)  # type: ignore[attr-defined]
        display.attach(kiosk)

        class BenchApp(App):
            def build(self):
                return display.build()

        app = BenchApp()
        stop = asyncio.Event()
        welcome = asyncio.ensure_future(display.next_applied())
        app_task = asyncio.create_task(app.async_run(async_lib="asyncio"))
        kiosk_task = asyncio.create_task(kiosk.run(stop))
        await welcome
        await display.drawn()
        for _ in range(rounds):
            for event in flow():
                applied = asyncio.ensure_future(display.next_applied())
                t0 = time.perf_counter()
                kiosk.post(event)
                model = await applied
                t1 = await asyncio.wait_for(display.drawn(), 5.0)
                kiosk_times.append(t1 - t0)
                per_screen.setdefault(str(model.screen), []).append(t1 - t0)
            await asyncio.sleep(0.05)
        stop.set()
        await kiosk_task
        # The baseline, same window, same run: a blank app's one label.
        Window.remove_widget(display.host)
        label = Label(text="-", font_size=40)
        Window.add_widget(label)
        for warm in range(3):  # the label's first texture and frames are not part of the measure
            label.text = f"w{warm}"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(display.next_flip(), 1.0)
        for i in range(rounds * len(flow())):
            t0 = time.perf_counter()
            label.text = str(i)  # always a new text, so the frame must be redrawn
            t1 = await asyncio.wait_for(display.next_flip(), 5.0)
            blank_times.append(t1 - t0)
        app.stop()
        await app_task
    return kiosk_times, blank_times, per_screen


def cold_start(cmd: list[str], env: dict[str, str], ready: Path) -> float:
    """Seconds from spawning ``cmd`` to its ready file appearing."""
    ready.unlink(missing_ok=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
        try:
            while not ready.exists():
                if proc.poll() is not None:
                    err.seek(0)
                    tail = err.read().decode(errors="replace").strip().splitlines()[-5:]
                    raise RuntimeError(
                        f"{' '.join(cmd)} exited with {proc.returncode} before drawing:\n" + "\n".join(tail)
                    )
                time.sleep(0.005)
            return time.perf_counter() - t0
        finally:
            proc.wait(30)


def blank_child(ready: Path) -> None:
    """The baseline process: one Kivy window with one label, ready file on first flip."""
    config = Config.load()
    prepare(config.ui, kiosk_mode=False)
    from kivy.app import App
    from kivy.clock import Clock
    from kivy.core.window import Window
    from kivy.uix.label import Label

    class Blank(App):
        def build(self):
            def flipped(*_):
                Window.unbind(on_flip=flipped)
                ready.write_text(json.dumps({"pid": os.getpid()}))
                Clock.schedule_once(lambda _dt: self.stop(), 0.2)

            Window.bind(on_flip=flipped)
            return Label(text="0", font_size=40)

    Blank().run()


def summary(name: str, values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p95 = ms[min(len(ms) - 1, int(len(ms) * 0.95))]
    return f"{name:<34} n={len(ms):<4} median {statistics.median(ms):7.1f} ms   p95 {p95:7.1f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="customer flows to time (default 5)")
    parser.add_argument("--starts", type=int, default=3, help="cold starts of each kind (default 3)")
    parser.add_argument("--blank-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.blank_child:
        blank_child(args.blank_child)
        return 0
    if importlib.util.find_spec("kivy") is None:
        print(
            f"bench/ui.py: Kivy is not installed for {sys.executable}; "
            "run it with the project's .venv/bin/python (make setup makes it)",
            file=sys.stderr,
        )
        return 2
    if not display_available():
        print("bench/ui.py: no display; run under xvfb-run", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        # The kiosk's own data folder: the models are provisioned there.
        env = dict(os.environ)
        ready = Path(tmp) / "ready.json"
        kiosk_starts, blank_starts = [], []
        for _ in range(args.starts):
            blank_starts.append(cold_start([sys.executable, __file__, "--blank-child", str(ready)], env, ready))
            kiosk_starts.append(
                cold_start(
                    [sys.executable, "main.py", "run", "--voice", "silent", "--ready-file", str(ready),
                     "--exit-after", "0.2"],
                    env,
                    ready,
                )
            )
        prepare(Config.load().ui, kiosk_mode=False)
        kiosk_times, blank_times, per_screen = asyncio.run(measure_window(args.rounds))
    print("state change -> new screen drawn (same window, same run)")
    print(summary("  kiosk (dialog+presenter+window)", kiosk_times))
    for screen, values in sorted(per_screen.items()):
        print(summary(f"    {screen}", values))
    print(summary("  blank app (one label)", blank_times))
    ratio = statistics.median(kiosk_times) / statistics.median(blank_times)
    print(f"  ratio kiosk / blank (median): {ratio:.2f}")
    print("cold start -> first screen drawn (fresh processes)")
    print(summary("  kiosk: main.py run -> welcome", kiosk_starts))
    print(summary("  blank Kivy app -> one label", blank_starts))
    print(f"  ratio kiosk / blank (median): {statistics.median(kiosk_starts) / statistics.median(blank_starts):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
