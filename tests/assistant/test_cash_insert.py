"""``main.py cash insert``: a note put into the running kiosk's simulator through its control socket."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from assistant.billing import LedgerBilling
from assistant.cash_cli import _yuan_to_fen
from assistant.cash_setup import open_cash
from assistant.config import ROOT, Config
from assistant.messages import CashEventKind
from assistant.storage import Database
from tests.cashkit import seed_account


def test_yuan_is_parsed_exactly() -> None:
    assert _yuan_to_fen("100") == 10000
    assert _yuan_to_fen("0.5") == 50
    assert _yuan_to_fen("0.10") == 10
    assert _yuan_to_fen("1.005") is None
    assert _yuan_to_fen("-5") is None
    assert _yuan_to_fen("abc") is None


async def test_a_note_inserted_from_the_command_line_is_credited(monkeypatch) -> None:
    # a short folder: a Unix socket path must stay under about 100 characters
    data = Path(tempfile.mkdtemp(prefix="kci", dir="/tmp"))
    monkeypatch.setenv("KIOSK_DATA_DIR", str(data))
    try:
        config = Config.load()
        config.data["cash"] = {"sim_speed": 20.0, "poll_interval_s": 0.05}
        events = []
        async with Database(data / "kiosk.db") as db:
            await seed_account(db, "2000000001", {"2026-11": 3000})
            side = await open_cash(config, db, LedgerBilling(db), events.append)
            try:
                assert (data / "cash" / "sim.sock").exists()

                async def insert(*args: str) -> tuple[int, str, str]:
                    proc = await asyncio.create_subprocess_exec(
                        sys.executable, "main.py", "cash", "insert", *args, cwd=ROOT,
                        env={"KIOSK_DATA_DIR": str(data), "PATH": "/usr/bin:/bin"},
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                    )
                    out, err = await asyncio.wait_for(proc.communicate(), 60)
                    return proc.returncode or 0, out.decode(), err.decode()

                code, out, _ = await insert("50")  # no payment waits for cash yet
                assert code == 1 and "handed back - the unit takes cash only while a payment waits" in out
                code, _, err = await insert("3")  # there is no 3 yuan note
                assert code == 2 and "takes no 3 yuan note (it takes 100, 50, 20, 10, 5, 1)" in err
                await side.service.begin("P1", "2000000001", 3000, None)
                code, out, err = await insert("50")
                assert code == 0, err
                assert "taken in" in out
                result = await side.service.wait_finished("P1", 30)
                assert result.inserted_fen == 5000 and result.posted_fen == 3000
                assert CashEventKind.CREDITED in [e.event for e in events]
            finally:
                await side.close()
    finally:
        shutil.rmtree(data, ignore_errors=True)


def test_no_running_simulator_is_a_clear_error(tmp_path) -> None:
    proc = subprocess.run([sys.executable, "main.py", "cash", "insert", "100"], cwd=ROOT,
                          env={"KIOSK_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "no simulator is running" in proc.stderr
