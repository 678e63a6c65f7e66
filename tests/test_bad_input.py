"""Bad input through the whole kiosk (real builder, real packs, real face models, real
simulator): no face, several faces, a stranger, a cash unit that does not answer, a
missing model, a corrupt database. Each gets a clear spoken and shown message or a
CLI error, and nothing in the journal is lost."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.app import build_kiosk
from assistant.config import ROOT, Config
from assistant.kiosk import HeadlessDisplay
from assistant.messages import Key, KeyPressed, Utterance
from assistant.seed import seed
from assistant.storage import Database
from tests.conftest import copy_shipped_locales

DATA = ROOT / "var" / "data"
MODELS = ROOT / "var" / "models"


def kiosk_config(tmp: Path, camera: str, **sections) -> Config:
    cfg = Config.default(
        storage={"path": str(tmp / "kiosk.db")},
        face={"camera": camera, "presence_interval_s": 0.05, "frame_interval_s": 0.05},
        models={"models_dir": str(MODELS), "data_dir": str(DATA)},
        cash={"port": str(tmp / "nothing.tty"), "simulate": False, "reply_timeout_s": 0.1, "retries": 1},
        **sections,
    )
    return cfg


async def start(cfg: Config, tmp: Path, **kw):
    async with Database(tmp / "kiosk.db") as db:
        await seed(db, DATA.parent)
    display = HeadlessDisplay()
    parts = await build_kiosk(cfg, display, voice="silent", **kw)
    stop = asyncio.Event()
    task = asyncio.create_task(parts.kiosk.run(stop))
    await display.wait_for("welcome", 20)
    return parts, display, stop, task


async def finish(parts, stop, task) -> None:
    stop.set()
    await asyncio.wait_for(task, 10)
    await parts.close()


def spoken(parts) -> list[str]:
    return [ln.text.split("]", 1)[0].lstrip("[") for ln in parts.kiosk.transcript.lines if ln.kind == "say"]


@pytest.mark.skipif(not (MODELS / "face").exists(), reason="face models not provisioned: run make test")
@pytest.mark.parametrize(
    ("photo", "prompt"),
    [
        ("scrfd-images/solvay_conference_1927.jpg", "face_several"),  # 29 people in view
        ("face-images/biden.jpg", "face_unknown"),  # a real face, not enrolled
    ],
)
async def test_camera_problems_end_in_the_account_number_path(tmp_path, photo, prompt) -> None:
    cfg = kiosk_config(tmp_path, str(DATA / photo), dialog={"face_attempts": 2})
    parts, display, stop, task = await start(cfg, tmp_path, cash=False)
    try:
        parts.kiosk.post(KeyPressed(Key.CONFIRM))  # the customer touches "pay": the camera looks
        model = await display.wait_for("account_entry", 30)
        assert prompt in spoken(parts)
        # asked for the way it can be given: typed only when the kiosk cannot hear
        assert ("ask_account" if parts.services.voice_available else "ask_account_keys") in spoken(parts)
        assert model.caption  # what is said is also shown
    finally:
        await finish(parts, stop, task)


async def test_cash_unit_that_does_not_answer_is_said_and_other_ways_offered(tmp_path) -> None:
    """The note recycler's port exists but nothing answers on it."""
    import pty

    master, slave = pty.openpty()
    port = os.ttyname(slave)
    cfg = kiosk_config(tmp_path, str(DATA / "face-images/biden.jpg"))
    cfg.data["cash"].update({"port": port})
    parts, display, stop, task = await start(cfg, tmp_path)
    try:
        assert any("cash unavailable" in p for p in parts.problems)
        assert parts.services.cash is None
        parts.kiosk.post(KeyPressed(Key.CONFIRM))
        await display.wait_for("account_entry", 30)
        for d in "3100023456":
            parts.kiosk.post(KeyPressed(Key(d)))
        parts.kiosk.post(KeyPressed(Key.ENTER))
        await display.wait_for("confirm", 10)
        parts.kiosk.post(KeyPressed(Key.CONFIRM))
        await display.wait_for("identified", 10)
        parts.kiosk.post(KeyPressed(Key.CONFIRM))
        model = await display.wait_for("choose_method", 10)
        assert "cash_unavailable" in spoken(parts)
        assert "现金" in model.caption or model.caption
        rows = await parts.db.fetchall("SELECT * FROM journal")
        assert rows == []  # nothing was started, nothing is half-done
    finally:
        await finish(parts, stop, task)
        os.close(master)
        os.close(slave)


async def test_missing_face_model_degrades_to_account_numbers(tmp_path) -> None:
    empty = tmp_path / "no-models"
    empty.mkdir()
    cfg = kiosk_config(tmp_path, str(DATA / "face-images/obama2.jpg"))
    cfg.data["models"]["models_dir"] = str(empty)
    parts, display, stop, task = await start(cfg, tmp_path, cash=False)
    try:
        assert parts.face is None
        assert any("face recognition unavailable" in p and "models install" in p for p in parts.problems)
        parts.kiosk.post(KeyPressed(Key.CONFIRM))
        await display.wait_for("account_entry", 30)
        # no camera wait at all: the welcome itself asks for the account number and never
        # asks the customer to look at the screen
        said = spoken(parts)
        voice = parts.services.voice_available
        assert said[0] == ("welcome_no_camera" if voice else "welcome_keys_no_camera")
        assert "looking" not in said and "ask_account" not in said
    finally:
        await finish(parts, stop, task)


def test_corrupt_database_is_a_clear_cli_error(tmp_path) -> None:
    bad = tmp_path / "kiosk.db"
    bad.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    cfg = tmp_path / "kiosk.toml"
    cfg.write_text((ROOT / "config" / "kiosk.toml").read_text().replace('path = "var/kiosk.db"', f'path = "{bad}"'))
    proc = subprocess.run([sys.executable, "main.py", "--config", str(cfg), "db", "check"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert str(bad) in proc.stderr and "Traceback" not in proc.stderr
    assert "backup" in proc.stderr


def test_missing_model_is_a_clear_cli_error(tmp_path) -> None:
    env = dict(os.environ, KIOSK_DATA_DIR=str(tmp_path))
    proc = subprocess.run([sys.executable, "main.py", "face", "identify", str(DATA / "face-images/obama.jpg")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode != 0
    assert "models install" in proc.stderr and "Traceback" not in proc.stderr


def test_read_only_data_folder_is_a_clear_cli_error(tiny_disk) -> None:
    """The data folder on a read-only disk: one line naming the problem, not a traceback."""
    from tests.conftest import remount

    data = tiny_disk / "var"
    data.mkdir()
    env = dict(os.environ, KIOSK_DATA_DIR=str(data))
    assert subprocess.run([sys.executable, "main.py", "db", "migrate"], cwd=ROOT, env=env,
                          capture_output=True, timeout=60).returncode == 0
    remount(tiny_disk, "ro")
    try:
        for command in (["cash", "levels"], ["db", "seed"]):
            proc = subprocess.run([sys.executable, "main.py", *command], cwd=ROOT, capture_output=True,
                                  text=True, timeout=60, env=env)
            assert proc.returncode == 1, (command, proc.stderr)
            assert "Traceback" not in proc.stderr, (command, proc.stderr)
            assert "read-only" in proc.stderr.lower(), (command, proc.stderr)
    finally:
        remount(tiny_disk, "rw")


def remove_cantonese(locales: Path) -> None:
    """What a maintainer does to retire a pack: its folder, its list entry, its tests."""
    import shutil

    shutil.rmtree(locales / "yue")
    common = locales / "zh-CN" / "_common.yaml"
    common.write_text(common.read_text(encoding="utf-8").replace('      - in: "(粤语|广东话|白话)"\n        out: yue\n', ""), encoding="utf-8")
    tests = locales / "zh-CN" / "tests" / "ChooseLanguage.yaml"
    text = tests.read_text(encoding="utf-8")
    text = text.replace("- sentences:\n  - 说粤语\n  - 广东话\n  intent:\n    name: ChooseLanguage\n    slots:\n      pack: yue\n", "")
    tests.write_text(text.replace("  - 讲普通话\n", "  - 讲普通话\n  - 普通话\n"), encoding="utf-8")


async def test_a_reload_that_removes_the_customer_s_pack_goes_on_in_the_default_pack(tmp_path) -> None:
    # every screen and prompt failed ('no locale pack yue') until the session ended, and
    # the language buttons still offered the removed pack

    from assistant.locale_check import check

    locales = tmp_path / "locales"
    copy_shipped_locales(locales)
    cfg = kiosk_config(tmp_path, str(DATA / "face-images/biden.jpg"), kiosk={"locales_dir": str(locales)})
    parts, display, stop, task = await start(cfg, tmp_path, cash=False)
    try:
        k = parts.kiosk
        k.post(KeyPressed(Key.CONFIRM))
        await display.wait_for("account_entry", 30)
        k.post(Utterance("说粤语", 0.95))
        for _ in range(100):
            if k.pack_id == "yue":
                break
            await asyncio.sleep(0.05)
        assert k.pack.id == "yue"
        remove_cantonese(locales)
        assert check(locales) == []  # a valid edit: the reload is applied
        assert parts.services.reload_locales() == []
        assert parts.services.packs == ("zh-CN", "zh-CN-sichuan")
        for d in "3100023456":
            k.post(KeyPressed(Key(d)))
        k.post(KeyPressed(Key.ENTER))
        model = await display.wait_for("confirm", 10)
        assert model.caption == "您的户号是3100023456，对吗？"
        assert k.pack.id == "zh-CN"
    finally:
        await finish(parts, stop, task)


async def test_locales_reload_redraws_the_screen_on_display(tmp_path) -> None:
    """'python main.py locales reload' on a running kiosk (SIGHUP): the screen on display is
    drawn again at once with the new packs - a new language's button appears, changed words
    show - not only after the next key."""
    import shutil
    import signal

    locales = tmp_path / "locales"
    copy_shipped_locales(locales)
    cfg = kiosk_config(tmp_path, str(DATA / "face-images/biden.jpg"),
                       kiosk={"locales_dir": str(locales), "data_dir": str(tmp_path / "var")})
    cfg.data["face"]["enabled"] = False  # nobody walks up: the welcome screen stays on display
    parts, display, stop, task = await start(cfg, tmp_path, cash=False, write_pid=True)
    try:
        before = display.current
        assert before.screen == "welcome"
        assert "zh-CN-dongbei" not in [b.value for b in before.buttons]
        # a maintainer finishes a new dialect (not a draft) and changes a button's words
        dongbei = locales / "zh-CN-dongbei"
        shutil.copytree(locales / "zh-CN-sichuan", dongbei)
        for name in ("pack.yaml", "responses.yaml", "_common.yaml"):
            f = dongbei / name
            f.write_text(f.read_text(encoding="utf-8").replace("zh-CN-sichuan", "zh-CN-dongbei")
                         .replace("四川话", "东北话"), encoding="utf-8")
        for f in [*(dongbei / "intents").glob("*.yaml"), *(dongbei / "tests").glob("*.yaml"),
                  dongbei / "known_failures.yaml"]:
            f.write_text(f.read_text(encoding="utf-8").replace("zh-CN-sichuan", "zh-CN-dongbei"), encoding="utf-8")
        zh = locales / "zh-CN" / "responses.yaml"
        zh.write_text(zh.read_text(encoding="utf-8").replace("  btn_services: 办理业务\n", "  btn_services: 业务办理\n"),
                      encoding="utf-8")
        drawn = len(display.shown)
        os.kill(os.getpid(), signal.SIGHUP)
        for _ in range(600):
            if len(display.shown) > drawn:
                break
            await asyncio.sleep(0.1)
        assert len(display.shown) > drawn, "the screen was not drawn again after the reload"
        model = display.current
        assert model.screen == "welcome"
        languages = {b.value: b.label for b in model.buttons if b.action == "language"}
        assert languages.get("zh-CN-dongbei") == "东北话"
        assert "业务办理" in [b.label for b in model.buttons]
        assert parts.services.packs == ("zh-CN", "yue", "zh-CN-dongbei", "zh-CN-sichuan")  # default first, fixed order
        assert any(ln.kind == "event" and "packs_reloaded" in ln.text for ln in parts.kiosk.transcript.lines)
    finally:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        await finish(parts, stop, task)
