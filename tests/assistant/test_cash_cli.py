"""``main.py cash levels / exchange`` next to a running kiosk, with other databases, and at the PIN prompt."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.billing import LedgerBilling
from assistant.cash_setup import open_cash
from assistant.config import ROOT, Config
from assistant.storage import Database
from tests.cashkit import seed_account


@pytest.fixture
def data(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A kiosk data folder with a short path (a Unix socket path must stay under ~100 characters)."""
    folder = Path(tempfile.mkdtemp(prefix="kcc", dir="/tmp"))
    monkeypatch.setenv("KIOSK_DATA_DIR", str(folder))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def cli(data: Path, *args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    """``python main.py ARGS`` as a user runs it, on the kiosk in ``data``."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "main.py", *args, cwd=ROOT,
        env={"KIOSK_DATA_DIR": str(data), "PATH": "/usr/bin:/bin"},
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), 120)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_levels_while_the_kiosk_runs_leave_its_simulator_alone(data: Path) -> None:
    """``cash levels`` used to start a simulator of its own on the kiosk's files: it took over the
    port link and the control socket and removed both on exit, so ``cash insert`` then found
    no simulator. Now it reads the running one, and ``exchange`` is refused while the kiosk runs."""
    config = Config.load()
    config.data["cash"] = {"sim_speed": 20.0, "poll_interval_s": 0.05}
    dbfile = data / "kiosk.db"
    async with Database(dbfile) as db:
        await seed_account(db, "2000000001", {"2026-11": 3000})
        side = await open_cash(config, db, LedgerBilling(db), lambda e: None)
        try:
            sock, link = data / "cash" / "sim.sock", data / "cash" / "ssp.tty"
            before = (sock.stat().st_ino, os.readlink(link))

            code, out, err = await cli(data, "cash", "levels", "--db", str(dbfile))
            assert code == 0, err
            assert sock.exists() and link.is_symlink()
            assert (sock.stat().st_ino, os.readlink(link)) == before
            assert f"the kiosk's cash simulator is running (process {os.getpid()})" in out
            assert f"read through its control socket {sock}" in out
            assert "100.00" in out and "0.10" in out

            common = ["--db", str(dbfile), "--unit", "coins", "--bank", "B01", "--bank-pin", "1111",
                      "--hall", "H01", "--hall-pin", "3333"]
            code, _, err = await cli(data, "cash", "exchange", "start", *common)
            assert code == 2 and "the kiosk is running" in err and "Nothing was recorded" in err
            assert await db.fetchone("SELECT 1 FROM cash_exchange") is None
            assert (sock.stat().st_ino, os.readlink(link)) == before

            # the kiosk still takes cash through its own simulator
            await side.service.begin("P1", "2000000001", 3000, None)
            code, out, err = await cli(data, "cash", "insert", "50")
            assert code == 0 and "taken in" in out, err
            result = await side.service.wait_finished("P1", 30)
            assert result.posted_fen == 3000
        finally:
            await side.close()
