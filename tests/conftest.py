"""Shared fixtures: a fresh database per test, the project root, the default config."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.config import ROOT, Config
from assistant.storage import Database


@pytest.fixture
def root() -> Path:
    """The project root."""
    return ROOT


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    """The default config with its data folder in a temporary directory."""
    monkeypatch.setenv("KIOSK_DATA_DIR", str(tmp_path / "var"))
    return Config.load()


@pytest.fixture
async def db(tmp_path: Path):
    """An open, migrated database in a temporary file."""
    database = await Database(tmp_path / "kiosk.db").open()
    try:
        yield database
    finally:
        await database.close()
