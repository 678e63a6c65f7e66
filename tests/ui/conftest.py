"""Fixtures for the window tests: one real Kivy window per test run (Kivy allows one).

Tests that need the window are marked ``ui`` and are skipped, with the reason, when
there is no display; ``make test`` runs the suite under ``xvfb-run`` so they run.
"""

from __future__ import annotations

import os

import pytest

from assistant.config import Config
from ui.boot import display_available

# Kivy reads these when it is first imported; the window tests import it lazily.
os.environ.setdefault("KIVY_NO_ARGS", "1")
os.environ.setdefault("KIVY_NO_FILELOG", "1")
os.environ.setdefault("KIVY_NO_CONFIG", "1")
os.environ.setdefault("KIVY_LOG_MODE", "PYTHON")

NO_DISPLAY = "no display: the window tests run under xvfb-run (make test does this)"


@pytest.fixture(scope="session")
def renderer():
    """The window with the screen host in it, drawn synchronously."""
    if not display_available():
        pytest.skip(NO_DISPLAY)
    from ui.audit import Renderer

    return Renderer(Config.load())


@pytest.fixture(scope="session")
def packs():
    """The real locale packs (``locales/``) and the ids a customer can choose, default first."""
    from ui.samples import default_packs

    return default_packs(Config.load())
