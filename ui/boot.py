"""Kivy set-up that must happen before the window exists.

Kivy reads its configuration when ``kivy.core.window`` is first imported, so the
window size, kiosk mode (fullscreen, borderless, no cursor) and the CJK font are
set here, once, by whoever opens the window (the ``run`` command, the audit, the
tests, the benchmark).
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from assistant.config import UiSection
from assistant.errors import ConfigError

log = logging.getLogger(__name__)

_prepared: dict[str, object] = {}


def display_available() -> bool:
    """True when there is a display to open a window on (X11 or Wayland)."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def prepare(ui: UiSection, kiosk_mode: bool | None = None) -> None:
    """Configure Kivy for the kiosk and register the CJK font as the default font.

    Args:
        ui: the ``[ui]`` config section (font, window size, fullscreen).
        kiosk_mode: fullscreen, borderless, no cursor; None means ``ui.fullscreen``.

    Raises:
        ConfigError: the font file does not exist.
    """
    full = ui.fullscreen if kiosk_mode is None else kiosk_mode
    font = Path(ui.font)
    if not font.is_file():
        raise ConfigError(f"[ui] font: {font} not found (install fonts-wqy-microhei or set [ui] font)")
    wanted = {"font": str(font), "full": full, "size": (ui.width, ui.height)}
    if _prepared:
        if _prepared != wanted:
            log.warning("kivy already configured with %s; ignoring %s", _prepared, wanted)
        return
    # Kivy must not parse our command line, must not write log files into the home
    # folder, and must log through the standard logging module like the rest of the kiosk.
    os.environ.setdefault("KIVY_NO_ARGS", "1")
    os.environ.setdefault("KIVY_NO_FILELOG", "1")
    os.environ.setdefault("KIVY_NO_CONFIG", "1")
    os.environ.setdefault("KIVY_LOG_MODE", "PYTHON")
    if "kivy.core.window" in sys.modules:
        log.warning("kivy window already imported: window settings may not apply")
    from kivy.config import Config

    Config.set("graphics", "width", str(ui.width))
    Config.set("graphics", "height", str(ui.height))
    Config.set("graphics", "fullscreen", "auto" if full else "0")
    Config.set("graphics", "borderless", "1" if full else "0")
    Config.set("graphics", "show_cursor", "0" if full else "1")
    Config.set("graphics", "resizable", "0" if full else "1")
    # Escape is the keypad's cancel key, never "quit".
    Config.set("kivy", "exit_on_escape", "0")
    # A right click must not leave red multitouch dots on a customer's screen.
    Config.set("input", "mouse", "mouse,disable_multitouch")
    Config.set("kivy", "keyboard_mode", "system")

    from kivy.core.text import LabelBase

    # Registering under Kivy's default name makes every label use the CJK font.
    LabelBase.register(name="Roboto", fn_regular=str(font))
    _prepared.update(wanted)
