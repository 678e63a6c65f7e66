"""``python main.py run``: the kiosk window, with the kiosk running inside Kivy's loop.

Kivy runs inside the kiosk's asyncio loop (``App.async_run``): the window, the
dialog, speech and devices share one loop and one thread. :func:`run_window` is
the entry point: give it a factory that builds the whole kiosk (models, devices,
speech) around the :class:`~ui.display.KivyDisplay` it is handed.

``run`` builds the whole kiosk with :func:`assistant.app.build_kiosk` (every model
the config names is loaded before the welcome screen is drawn). In kiosk mode the window is fullscreen, borderless and has no cursor. If the
window dies (a crash, or the X display going away) the process exits non-zero and
``deploy/kiosk-session.sh`` (under systemd, ``deploy/powerkiosk.service``) starts it
again once the display is back.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from assistant.config import Config
from assistant.kiosk import Kiosk
from ui.boot import display_available, prepare

log = logging.getLogger(__name__)

KioskFactory = Callable[[Any, contextlib.AsyncExitStack], Awaitable[Kiosk]]
"""``async (display, stack) -> Kiosk``: builds the kiosk around ``display``; resources it
opens are registered on ``stack`` and closed when the window closes."""

EXIT_NO_DISPLAY = 3


async def full_kiosk(
    display: Any, stack: contextlib.AsyncExitStack, config: Config, voice: str = "speaker"
) -> Kiosk:
    """The whole kiosk (``assistant.app.build_kiosk``: models, speech, devices) around ``display``."""
    from assistant.app import build_kiosk

    parts = await build_kiosk(config, display, voice=voice, write_pid=True)
    stack.push_async_callback(parts.close)
    for problem in parts.problems:
        log.warning("kiosk degraded: %s", problem)
    return parts.kiosk


def _app_class() -> type:
    from kivy.app import App

    class KioskApp(App):
        """The Kivy application: one root widget, the screen host."""

        title = "powerkiosk"

        def __init__(self, display: Any, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.display = display

        def build(self) -> Any:
            from kivy.core.window import Window

            from ui.theme import PALETTE

            Window.clearcolor = PALETTE.page
            return self.display.build()

    return KioskApp


async def run_window(
    kiosk_factory: KioskFactory,
    config: Config,
    *,
    kiosk_mode: bool | None = None,
    stop: asyncio.Event | None = None,
    ready_file: Path | None = None,
    exit_after: float | None = None,
) -> int:
    """Open the window and run the kiosk in it until ``stop`` is set or the window closes.

    Args:
        kiosk_factory: builds the kiosk around the display it is given (see KioskFactory).
        config: the kiosk configuration (``[ui]`` for the window).
        kiosk_mode: fullscreen, borderless, no cursor (None: ``[ui] fullscreen``).
        stop: set it to close the window (SIGTERM and SIGINT set it too).
        ready_file: written (JSON: pid, seconds since start) once the welcome screen is drawn.
        exit_after: close by itself after this many seconds (tests, benchmarks).

    Returns:
        The exit code: 0 when closed on request.
    """
    started = time.perf_counter()
    prepare(config.ui, kiosk_mode=kiosk_mode)
    from ui.display import KivyDisplay

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    display = KivyDisplay()
    display.first_drawn = asyncio.Event()
    async with contextlib.AsyncExitStack() as stack:
        kiosk = await kiosk_factory(display, stack)
        display.attach(kiosk)
        app = _app_class()(display)
        kiosk_task = asyncio.create_task(kiosk.run(stop), name="kiosk")
        app_task = asyncio.create_task(app.async_run(async_lib="asyncio"), name="window")

        async def when_drawn() -> None:
            await display.first_drawn.wait()
            elapsed = time.perf_counter() - started
            log.info("welcome screen drawn %.2f s after start", elapsed)
            if ready_file is not None:
                tmp = ready_file.with_suffix(".tmp")
                tmp.write_text(json.dumps({"pid": os.getpid(), "drawn_s": elapsed}), encoding="utf-8")
                tmp.replace(ready_file)
            if exit_after is not None:
                await asyncio.sleep(exit_after)
                stop.set()

        drawn_task = asyncio.create_task(when_drawn())
        stopped = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({app_task, kiosk_task, stopped}, return_when=asyncio.FIRST_COMPLETED)
        code = 0
        if kiosk_task in done and kiosk_task.exception() is not None:
            log.error("kiosk stopped", exc_info=kiosk_task.exception())
            code = 1
        stop.set()
        app.stop()
        for task in (drawn_task, stopped):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(app_task, timeout=5.0)
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(kiosk_task, timeout=5.0)
    return code


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``run`` options."""
    parser.add_argument("--kiosk", action="store_true", help="fullscreen, no cursor, no window decorations")
    parser.add_argument("--ready-file", type=Path, help="write the pid here once the welcome screen is drawn")
    parser.add_argument("--exit-after", type=float, help="close after this many seconds (tests, benchmarks)")
    parser.add_argument(
        "--voice", choices=("speaker", "silent"), default="speaker", help="speak, or show captions only"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, config: Config) -> int:
    """Open the kiosk window."""
    if not display_available():
        print("main.py run: no display (DISPLAY is not set); the window needs X11 or Wayland", file=sys.stderr)
        return EXIT_NO_DISPLAY

    async def factory(display: Any, stack: contextlib.AsyncExitStack) -> Kiosk:
        return await full_kiosk(display, stack, config, voice=args.voice)

    return asyncio.run(
        run_window(
            factory,
            config,
            kiosk_mode=True if args.kiosk else None,
            ready_file=args.ready_file,
            exit_after=args.exit_after,
        )
    )
