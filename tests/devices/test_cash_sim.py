"""The cash simulator: its state file, power-up reports, watchdog, and running as its own process."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devices.cash import DeviceEventKind
from devices.cash_sim import SimControl, device_pieces
from tests.cashkit import fast_config, make_sim, open_units


async def poll_all(dev, seconds: float) -> list:
    out = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        out += await dev.poll()
        await asyncio.sleep(0.02)
    return out


def test_device_pieces_is_exact_and_bounded() -> None:
    assert device_pieces(6000, {5000: 1, 2000: 3}) == {2000: 3}
    assert device_pieces(7000, {5000: 1, 2000: 3}) == {5000: 1, 2000: 1}
    assert device_pieces(3000, {2000: 1}) is None
    assert device_pieces(0, {}) == {}


async def test_state_survives_a_restart_and_interrupted_moves_are_reported(tmp_path: Path) -> None:
    sim = make_sim(tmp_path, notes={2000: 2}, coins={10: 5}, speed=1.0)
    notes, coins = open_units(sim, fast_config())
    await notes.open()
    await notes.enable()
    await notes.set_accepting(frozenset({5000}))
    assert sim.insert_note(5000)
    while notes.escrow_fen == 0:
        await notes.poll()
        await asyncio.sleep(0.05)
    await notes.accept_escrow()  # stacking takes 0.6 s at speed 1 ...
    await notes.close()
    await coins.close()
    sim.stop()  # ... and the power goes before it finishes
    sim2 = make_sim(tmp_path, notes={}, coins={})  # same state file: the float arguments are ignored
    try:
        notes, coins = open_units(sim2, fast_config())
        await notes.open()
        await coins.open()
        events = await poll_all(notes, 0.3)
        kinds = [e.kind for e in events]
        assert DeviceEventKind.RESET in kinds
        cleared = [e for e in events if e.kind == DeviceEventKind.CLEARED_TO_CASHBOX]
        assert [e.value_fen for e in cleared] == [5000]
        assert (await notes.counters()).stacked == 1
        assert (await notes.levels())[2000] == 2
        assert (await coins.levels())[10] == 5
        assert sim2.snapshot()["cashbox"][5000] == 1
        await notes.close()
        await coins.close()
    finally:
        sim2.stop()


async def test_watchdog_disables_a_unit_whose_host_went_quiet(tmp_path: Path) -> None:
    sim = make_sim(tmp_path, host_timeout_s=0.3)
    try:
        notes, coins = open_units(sim, fast_config())
        await notes.open()
        await notes.enable()
        await notes.set_accepting(frozenset({1000}))
        await asyncio.sleep(0.6)
        assert not sim.insert_note(1000)  # disabled by itself: the note is refused
        events = await notes.poll()
        assert DeviceEventKind.DISABLED in [e.kind for e in events]
        await notes.close()
        await coins.close()
    finally:
        sim.stop()


def _start(root: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "devices.cash_sim", *args], cwd=root,
                            stdout=subprocess.PIPE, text=True)


async def test_simulator_as_its_own_process(tmp_path: Path, root: Path) -> None:
    link, sock, state = tmp_path / "ssp.tty", tmp_path / "sim.sock", tmp_path / "sim.json"
    proc = _start(root, "--link", str(link), "--control", str(sock), "--state", str(state),
                  "--notes", "2000=3", "--coins", "50=2", "--speed", "50")
    try:
        line = proc.stdout.readline()
        assert line.startswith("READY ") and line.split()[1] == str(link)
        from devices.ssp_serial import SerialPort, SspNoteRecycler
        notes = SspNoteRecycler(SerialPort(link), 0, reply_timeout=0.2)
        await notes.open()
        await notes.enable()
        assert (await notes.levels())[2000] == 3
        # a second program on the same cash port is refused, naming why; the first goes on
        from assistant.errors import CashDeviceNotResponding

        with pytest.raises(CashDeviceNotResponding, match="in use by another program"):
            SerialPort(link).open()
        assert (await notes.levels())[2000] == 3
        await notes.set_accepting(frozenset({10000}))
        ctl = SimControl(sock)
        assert ctl.insert_note(10000)
        while notes.escrow_fen == 0:
            await notes.poll()
            await asyncio.sleep(0.02)
        await notes.accept_escrow()
        events = await poll_all(notes, 0.3)
        assert DeviceEventKind.STORED in [e.kind for e in events]
        snap = ctl.snapshot()
        assert snap["notes"]["10000"] == 1 and snap["tallies"]["in"] == {"10000": 1}
        ctl.close()
        await notes.close()
    finally:
        proc.terminate()
        proc.wait(5)
    assert '"10000": 1' in state.read_text()


def test_a_second_simulator_on_the_same_state_leaves_the_running_one_alone(tmp_path: Path, root: Path) -> None:
    """A second simulator (another kiosk, or a command) used to replace the running one's port link
    and control socket and write over its state; now it refuses to start and touches nothing."""
    import os
    import signal

    import pytest

    from assistant.errors import CashSimulatorBusy
    from devices.cash_sim import running_simulator

    state = tmp_path / "sim.json"
    assert running_simulator(state) is None
    first = make_sim(tmp_path)
    try:
        first.serve_control(tmp_path / "sim.sock")
        assert running_simulator(state) == os.getpid()
        link_before = os.readlink(tmp_path / "ssp.tty")
        sock_before = (tmp_path / "sim.sock").stat().st_ino
        with pytest.raises(CashSimulatorBusy, match=rf"already running on {state} \(process {os.getpid()}\)"):
            make_sim(tmp_path)
        assert os.readlink(tmp_path / "ssp.tty") == link_before
        assert (tmp_path / "sim.sock").stat().st_ino == sock_before
        ctl = SimControl(tmp_path / "sim.sock")
        assert ctl.call("ping") == "pong"
        ctl.close()
    finally:
        first.stop()
    assert running_simulator(state) is None
    make_sim(tmp_path).stop()  # free again once the first one stopped

    # a simulator killed outright does not block the next one (the kernel drops its lock)
    proc = _start(root, "--link", str(tmp_path / "ssp.tty"), "--state", str(state))
    try:
        assert proc.stdout.readline().startswith("READY ")
        assert running_simulator(state) == proc.pid
        second = subprocess.run([sys.executable, "-m", "devices.cash_sim", "--link", str(tmp_path / "x.tty"),
                                 "--state", str(state)], cwd=root, capture_output=True, text=True, timeout=30)
        assert second.returncode == 1 and "already running" in second.stderr
        assert not (tmp_path / "x.tty").exists()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
    assert running_simulator(state) is None
    make_sim(tmp_path).stop()
