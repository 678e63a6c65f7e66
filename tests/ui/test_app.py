"""The commands end to end: ``run`` opens the window, ``ui audit`` works anywhere, and the
session script brings the window back after the display goes away and returns."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assistant.config import ROOT
from tests.ui.conftest import NO_DISPLAY
from ui.boot import display_available

pytestmark = pytest.mark.ui


def env_for(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, KIOSK_DATA_DIR=str(tmp_path / "var"), PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def wait_for(path: Path, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return json.loads(path.read_text())
        time.sleep(0.05)
    raise AssertionError(f"{path} did not appear in {timeout} s")


def test_run_opens_the_window_and_closes_on_request(tmp_path) -> None:
    if not display_available():
        pytest.skip(NO_DISPLAY)
    ready = tmp_path / "ready.json"
    proc = subprocess.run(
        [sys.executable, "main.py", "run", "--ready-file", str(ready), "--exit-after", "0.3"],
        cwd=ROOT, env=env_for(tmp_path), capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    info = json.loads(ready.read_text())
    assert info["drawn_s"] > 0
    assert "welcome screen drawn" in proc.stderr


def test_run_without_a_display_says_so(tmp_path) -> None:
    env = env_for(tmp_path)
    env.pop("DISPLAY", None)
    env.pop("WAYLAND_DISPLAY", None)
    proc = subprocess.run(
        [sys.executable, "main.py", "run"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 3
    assert "no display" in proc.stderr


@pytest.mark.slow
def test_ui_audit_runs_without_a_display_by_starting_xvfb(tmp_path) -> None:
    if shutil.which("xvfb-run") is None:
        pytest.skip("xvfb-run is not installed")
    env = env_for(tmp_path)
    env.pop("DISPLAY", None)
    out = tmp_path / "shots"
    proc = subprocess.run(
        [sys.executable, "main.py", "ui", "audit", "--only", "identified", "--scale", "1.5", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    assert "identified" in proc.stdout and "0 failed" in proc.stdout
    assert (out / "identified@1.5.png").stat().st_size > 5_000


def free_display() -> int:
    for n in range(90, 200):
        if not Path(f"/tmp/.X11-unix/X{n}").exists() and not Path(f"/tmp/.X{n}-lock").exists():
            return n
    raise RuntimeError("no free X display number")


def start_xvfb(n: int) -> subprocess.Popen:
    xvfb = subprocess.Popen(
        ["Xvfb", f":{n}", "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not Path(f"/tmp/.X11-unix/X{n}").exists():
        assert time.monotonic() < deadline, "Xvfb did not start"
        time.sleep(0.05)
    return xvfb


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


@pytest.mark.slow
def test_the_window_comes_back_when_the_display_does(tmp_path) -> None:
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed")
    n = free_display()
    ready = tmp_path / "ready.json"
    xvfb = start_xvfb(n)
    env = env_for(tmp_path, DISPLAY=f":{n}", KIOSK_PYTHON=sys.executable, KIOSK_RESTART_DELAY="0.5")
    session = subprocess.Popen(
        [str(ROOT / "deploy" / "kiosk-session.sh"), "--ready-file", str(ready)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        first = wait_for(ready, 60)["pid"]
        ready.unlink()
        xvfb.terminate()
        xvfb.wait(10)
        deadline = time.monotonic() + 15
        while alive(first):
            assert time.monotonic() < deadline, "the window did not exit when the display went away"
            time.sleep(0.1)
        time.sleep(1.0)  # the script is now waiting for the display
        assert session.poll() is None
        xvfb = start_xvfb(n)
        second = wait_for(ready, 60)["pid"]
        assert second != first and alive(second)
    finally:
        session.send_signal(signal.SIGTERM)
        try:
            _, err = session.communicate(timeout=20)
        finally:
            xvfb.terminate()
            xvfb.wait(10)
    assert session.returncode == 0
    assert "waiting for display" in err and "starting it again" in err


def test_recorded_screens_are_drawn_for_the_demo(tmp_path, packs) -> None:
    if not display_available():
        pytest.skip(NO_DISPLAY)
    from ui.render import dump_models, model_from_dict, model_to_dict
    from ui.samples import build_samples, present

    source, ids = packs
    chosen = {"identified", "cassette", "card_scan_readback"}
    models = [present(s, source, ids) for s in build_samples(pack_ids=ids) if s.name in chosen]
    # The JSON round trip keeps everything the window draws.
    assert [model_from_dict(model_to_dict(m)) for m in models] == models
    spec = tmp_path / "models.json"
    dump_models(models, spec)
    proc = subprocess.run(
        [sys.executable, "-m", "ui.render", str(spec), str(tmp_path / "shots")],
        cwd=ROOT, env=env_for(tmp_path), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    pngs = sorted((tmp_path / "shots").glob("*.png"))
    assert [p.name for p in pngs] == ["00-identified-zh-CN.png", "01-card_scan-zh-CN.png", "02-cassette-zh-CN.png"]
    assert all(p.stat().st_size > 5_000 for p in pngs)
