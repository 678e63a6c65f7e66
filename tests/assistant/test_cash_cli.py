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


def _staff_db(path: Path) -> Path:
    from tests.assistant.test_cassette import add_staff

    async def make() -> None:
        async with Database(path) as db:
            await add_staff(db)

    path.parent.mkdir(parents=True, exist_ok=True)
    asyncio.run(make())
    return path


def test_another_kiosks_database_goes_with_the_cash_state_in_its_own_folder(
        data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--db`` used to be paired with this kiosk's simulator state: levels showed differences that
    were not there, and an exchange emptied this kiosk's note unit. Now the state comes from the
    database's own folder, and a database without one of its own is refused."""
    from assistant.cli import main
    from devices.cash import CashConfig
    from devices.cash_sim import CashSimulator

    # this kiosk (KIOSK_DATA_DIR): 3 notes of 100 yuan in its recycler
    config = Config.load()
    sim = CashSimulator.from_config(config.section("cash", CashConfig), data).start()
    sim.load_cassette("notes", {10000: 3})
    sim.stop()
    mine = (data / "cash" / "sim.json").read_text()

    other = _staff_db(tmp_path / "k2" / "kiosk.db")
    common = ["--db", str(other), "--unit", "notes", "--bank", "B01", "--bank-pin", "1111",
              "--hall", "H01", "--hall-pin", "3333"]
    assert main(["cash", "exchange", "start", *common]) == 0
    assert "found            100.00 x 10," in capsys.readouterr().out  # the other kiosk's own float
    assert main(["cash", "exchange", "end", *common, "--counts", "10000=5,2000=10"]) == 0
    assert "DIFFERENCE" not in capsys.readouterr().out
    assert main(["cash", "levels", "--db", str(other)]) == 0
    out = capsys.readouterr().out
    assert "DIFFERENCE" not in out and "  value: 700.00 yuan in the unit, 700.00 yuan in the books" in out
    assert (tmp_path / "k2" / "cash" / "sim.json").is_file()
    assert (data / "cash" / "sim.json").read_text() == mine  # this kiosk's cash untouched

    # databases that own no cash state are refused, naming why; nothing is created or changed
    stray = _staff_db(data / "history.db")
    assert main(["cash", "levels", "--db", str(stray)]) == 1
    err = capsys.readouterr().err
    assert f"lies in its data folder {data}" in err and f"belongs to {data / 'kiosk.db'}" in err
    assert main(["cash", "exchange", "start", *common[:1], str(stray), *common[2:]]) == 1
    assert "lies in its data folder" in capsys.readouterr().err
    renamed = _staff_db(tmp_path / "k3" / "books.db")
    assert main(["cash", "levels", "--db", str(renamed)]) == 1
    assert f"belongs to the kiosk database {tmp_path / 'k3' / 'kiosk.db'}, not to books.db" in capsys.readouterr().err
    missing = tmp_path / "k4" / "kiosk.db"
    assert main(["cash", "levels", "--db", str(missing)]) == 1
    assert "no such database file" in capsys.readouterr().err
    assert not missing.parent.exists() and not (tmp_path / "k3" / "cash").exists()
    assert (data / "cash" / "sim.json").read_text() == mine
    assert not (data / "kiosk.db").exists()


async def test_no_pin_at_the_prompt_is_one_line_and_records_nothing(data: Path) -> None:
    """End of input at the PIN prompt (``echo | main.py cash exchange start ...``, stdin closed) used
    to end in an EOFError (and getpass warnings); now it says no PIN was entered and stops."""
    dbfile = await asyncio.to_thread(_staff_db, data / "kiosk.db")
    args = ["cash", "exchange", "start", "--unit", "coins", "--bank", "B01", "--hall", "H01"]

    async def exchanges() -> int:
        async with Database(dbfile) as db:
            return len(await db.fetchall("SELECT 1 FROM cash_exchange")) + len(
                await db.fetchall("SELECT 1 FROM audit_log"))

    for stdin, who in ((b"\n", "bank staff B01"), (b"", "bank staff B01"), (b"1111\n", "hall staff H01")):
        code, out, err = await cli(data, *args, stdin=stdin)
        assert code == 2, (stdin, out, err)
        assert f"cash exchange: no PIN entered for {who}; nothing was recorded" in err
        assert "Traceback" not in err and "Error" not in err and "Warning" not in err
    proc = await asyncio.create_subprocess_exec(
        "/bin/sh", "-c", f'exec "{sys.executable}" main.py {" ".join(args)} <&-', cwd=ROOT,
        env={"KIOSK_DATA_DIR": str(data), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, err_bytes = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2 and "no PIN entered for bank staff B01" in err_bytes.decode()
    assert await exchanges() == 0
    assert not (data / "cash").exists()  # not even the simulator was started

    # PINs piped in, one a line, are taken
    code, out, err = await cli(data, *args, stdin=b"1111\n3333\n")
    assert code == 0 and "exchange 1 of coins: open" in out, err


def test_a_refused_exchange_end_leaves_the_cassette_as_it_was(
        data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A wrong PIN, or no exchange open, used to load the counts into the simulator before the
    refusal: the unit's cash changed and the next real exchange showed a false shortage."""
    from assistant.cli import main

    db = _staff_db(tmp_path / "k" / "kiosk.db")
    common = ["--db", str(db), "--unit", "coins", "--bank", "B01", "--hall", "H01", "--hall-pin", "3333"]
    assert main(["cash", "levels", "--db", str(db)]) == 0
    before = capsys.readouterr().out
    sim_state = (tmp_path / "k" / "cash" / "sim.json").read_text()
    # no exchange open
    assert main(["cash", "exchange", "end", *common, "--bank-pin", "1111", "--counts", "10=1"]) == 2
    assert "no open exchange of coins" in capsys.readouterr().out
    assert (tmp_path / "k" / "cash" / "sim.json").read_text() == sim_state
    # an exchange open, but a wrong PIN at the end
    assert main(["cash", "exchange", "start", *common, "--bank-pin", "1111"]) == 0
    capsys.readouterr()
    sim_state = (tmp_path / "k" / "cash" / "sim.json").read_text()
    assert main(["cash", "exchange", "end", *common, "--bank-pin", "0000", "--counts", "10=1"]) == 2
    assert "refused" in capsys.readouterr().out
    assert (tmp_path / "k" / "cash" / "sim.json").read_text() == sim_state
    assert "value:" in before  # levels were readable before any of this

    async def attempts() -> list[tuple[str, str]]:
        from assistant import audit

        async with Database(db) as d:
            return [(e.action, e.detail["by"]) for e in await audit.entries(d) if e.action.startswith("staff_verif")]

    # recorded as typed on the command line (not "by face"); the failure counts towards the lock
    assert asyncio.run(attempts())[-1] == ("staff_verify_failed", "cli")
