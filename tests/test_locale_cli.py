"""``python main.py locales ...`` end to end on copies of the shipped packs."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import wave
from pathlib import Path

import pytest

from assistant.cli import main
from tests.conftest import copy_shipped_locales


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A config whose locales folder is a copy of the shipped packs; returns (config, locales)."""
    locales = tmp_path / "locales"
    copy_shipped_locales(locales)
    cfg = tmp_path / "kiosk.toml"
    cfg.write_text(f'[kiosk]\ndata_dir = "{tmp_path / "var"}"\nlocales_dir = "{locales}"\n', encoding="utf-8")
    monkeypatch.delenv("KIOSK_DATA_DIR", raising=False)
    return cfg, locales


def test_check_reports_file_and_line(setup, capsys: pytest.CaptureFixture[str]) -> None:
    cfg, locales = setup
    assert main(["--config", str(cfg), "locales", "check"]) == 0
    assert "all packs" in capsys.readouterr().out
    f = locales / "yue" / "responses.yaml"
    f.write_text(f.read_text(encoding="utf-8").replace("依家欠费{amount}", "依家欠费"), encoding="utf-8")
    assert main(["--config", str(cfg), "locales", "check", "yue"]) == 1
    out = capsys.readouterr().out
    line = next(i for i, t in enumerate(f.read_text(encoding="utf-8").splitlines(), 1) if t.startswith("  arrears:"))
    assert f"locales/yue/responses.yaml:{line}: the placeholders of 'arrears' differ" in out
    assert "Fix: use exactly {account}, {amount}, {method}" in out


def test_check_names_the_config_line_of_a_default_pack_that_is_not_there(setup, capsys: pytest.CaptureFixture[str]) -> None:
    cfg, _ = setup
    cfg.write_text(cfg.read_text(encoding="utf-8") + 'locale = "zh-cn"\n', encoding="utf-8")
    assert main(["--config", str(cfg), "locales", "check"]) == 1
    out = capsys.readouterr().out.strip()
    line = len(cfg.read_text(encoding="utf-8").splitlines())
    assert out == (f"kiosk.toml:{line}: the kiosk's default pack 'zh-cn' ([kiosk] locale) is not a pack in {cfg.parent / 'locales'}. "
                   "Fix: set [kiosk] locale to one of: yue, zh-CN, zh-CN-sichuan (letter case matters)")


def test_new_pack_skeleton_is_checked_until_it_says_what_it_is(setup, capsys: pytest.CaptureFixture[str]) -> None:
    """The skeleton starts with the base pack's "好的，我说普通话。": the check names that line
    until the maintainer writes it in the dialect, so a new dialect never announces Mandarin."""
    from assistant.locale import LocaleRegistry

    cfg, locales = setup
    assert main(["--config", str(cfg), "locales", "new", "zh-CN-dongbei", "--extends", "zh-CN", "--name", "东北话"]) == 0
    capsys.readouterr()
    folder = locales / "zh-CN-dongbei"
    assert sorted(p.name for p in folder.iterdir()) == ["_common.yaml", "intents", "pack.yaml", "responses.yaml", "tests"]
    responses = folder / "responses.yaml"
    line = next(i for i, t in enumerate(responses.read_text(encoding="utf-8").splitlines(), 1)
                if t.startswith("  language_switched:"))
    # a draft: the line is on its to-do list (the check, and so `make test`, still passes)
    assert main(["--config", str(cfg), "locales", "check", "zh-CN-dongbei"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0] == f"locales check: pack zh-CN-dongbei in {locales} is fine"
    assert out[1] == "draft pack zh-CN-dongbei: still to write before 'draft: true' is removed from its pack.yaml:"
    assert len(out) == 3, out
    assert out[2].startswith(f"  locales/zh-CN-dongbei/responses.yaml:{line}: 'language_switched' is the same as in 'zh-CN'")
    assert "好的，我说普通话。" in out[2]
    # the running kiosk is not refused because of it either (customers never see a draft)
    assert LocaleRegistry(locales, "zh-CN").load().get("zh-CN-dongbei").draft
    # no longer a draft: the same line is now an error
    meta = folder / "pack.yaml"
    meta.write_text(meta.read_text(encoding="utf-8").replace("draft: true", ""), encoding="utf-8")
    assert main(["--config", str(cfg), "locales", "check", "zh-CN-dongbei"]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith(f"locales/zh-CN-dongbei/responses.yaml:{line}: 'language_switched' is the same as in 'zh-CN'")
    responses.write_text(responses.read_text(encoding="utf-8").replace("好的，我说普通话。", "好嘞，我跟你唠东北话。"),
                         encoding="utf-8")
    assert main(["--config", str(cfg), "locales", "check", "zh-CN-dongbei"]) == 0
    assert main(["--config", str(cfg), "locales", "new", "zh-CN-dongbei"]) == 1  # exists already


def test_a_pack_must_name_itself_in_its_own_words(setup, capsys: pytest.CaptureFixture[str]) -> None:
    """Without --name the skeleton's name and button are the pack id; a finished pack (no longer
    a draft) that still says the base pack's words, or inherits them, is refused at reload."""
    from assistant.locale import LocaleRegistry

    cfg, locales = setup
    assert main(["--config", str(cfg), "locales", "new", "zh-CN-xiang"]) == 0
    capsys.readouterr()
    assert main(["--config", str(cfg), "locales", "check", "zh-CN-xiang"]) == 0  # a draft: a to-do list
    out = capsys.readouterr().out
    assert "locales/zh-CN-xiang/pack.yaml:4: 'name: zh-CN-xiang' is the pack id" in out
    assert "'pack_name' is the pack id" in out and "'language_switched' is the same as in 'zh-CN'" in out
    # a maintainer drops the draft line and the self-describing lines, keeping the base's words
    folder = locales / "zh-CN-xiang"
    meta = folder / "pack.yaml"
    meta.write_text(meta.read_text(encoding="utf-8").replace("draft: true", "").replace("name: zh-CN-xiang", "name: 湘语"),
                    encoding="utf-8")
    (folder / "responses.yaml").write_text("language: zh-CN-xiang\nprompts: {}\nlabels: {}\n", encoding="utf-8")
    problems = LocaleRegistry(locales, "zh-CN").validate()[1]
    assert sorted(p.rule for p in problems) == ["own-words", "own-words"]
    assert all("zh-CN-xiang/responses.yaml" in str(p.file) and "inherited from 'zh-CN'" in p.message for p in problems)
    assert any("普通话" in p.message for p in problems)


def test_say_writes_speech(setup, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pyttsx3", reason="pyttsx3 (the tts extra) is not installed")
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    cfg, _ = setup
    out = cfg.parent / "arrears.wav"
    rc = main(["--config", str(cfg), "locales", "say", "yue", "arrears", "--slot", "amount=12.5元", "--out", str(out), "--no-play"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "spoken: 户号尾号一二三四，依家欠费十二蚊五毫" in printed
    assert "Audio saved" not in printed  # one line about the file, ours
    with wave.open(str(out)) as w:
        seconds = w.getnframes() / w.getframerate()
    assert seconds > 2.0  # a whole sentence of Cantonese, not an empty file


@pytest.mark.parametrize(("slot", "message"), [
    ("amount=abc", "amount='abc' is not an amount"),
    ("account=12ab", "account='12ab' must be digits"),
    ("foo=1", "prompt 'arrears' has no slot 'foo' (its slots: account, amount, method)"),
])
def test_say_refuses_a_slot_value_that_does_not_fit(setup, slot: str, message: str) -> None:
    cfg, _ = setup
    with pytest.raises(SystemExit) as exc:
        main(["--config", str(cfg), "locales", "say", "zh-CN", "arrears", "--slot", slot, "--no-play"])
    assert message in str(exc.value)


def test_say_reads_a_plain_amount_as_yuan(setup, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("pyttsx3", reason="pyttsx3 (the tts extra) is not installed")
    cfg, _ = setup
    out = cfg.parent / "a.wav"
    assert main(["--config", str(cfg), "locales", "say", "zh-CN", "arrears", "--slot", "amount=850",
                 "--out", str(out), "--no-play"]) == 0
    assert "欠费八百五十元" in capsys.readouterr().out


def test_reload_signals_the_running_kiosk_only_when_packs_are_valid(setup, tmp_path: Path) -> None:
    cfg, locales = setup
    marker = tmp_path / "hup"
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, sys, time, pathlib\n"
            f"p = pathlib.Path({str(marker)!r})\n"
            "signal.signal(signal.SIGHUP, lambda *a: p.write_text('reload'))\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        pid_path = tmp_path / "var" / "run" / "kiosk.pid"
        pid_path.parent.mkdir(parents=True, exist_ok=True)
        pid_path.write_text(str(child.pid))
        broken = locales / "zh-CN" / "intents" / "Deny.yaml"
        good = broken.read_text(encoding="utf-8")
        broken.write_text(good.replace("Deny:", "Deni:"), encoding="utf-8")
        assert main(["--config", str(cfg), "locales", "reload"]) == 1
        time.sleep(0.3)
        assert not marker.exists()  # refused: the kiosk was not told
        broken.write_text(good, encoding="utf-8")
        assert main(["--config", str(cfg), "locales", "reload"]) == 0
        for _ in range(100):
            if marker.exists():
                break
            time.sleep(0.05)
        assert marker.read_text() == "reload"
    finally:
        child.kill()
        child.wait()


def test_reload_leaves_alone_a_program_that_inherited_a_killed_kiosk_s_process_id(setup, tmp_path: Path) -> None:
    # a kiosk killed with SIGKILL leaves its pid file; once the number is reused, SIGHUP
    # (whose default action is to terminate) went to whichever program now has it
    def started(pid: int) -> int:
        return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19])

    cfg, _locales = setup
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        pid_path = tmp_path / "var" / "run" / "kiosk.pid"
        pid_path.parent.mkdir(parents=True, exist_ok=True)
        # what the dead kiosk wrote, with its number now in use by another program
        pid_path.write_text(f"{other.pid} {started(os.getpid()) - 1}\n")
        assert main(["--config", str(cfg), "locales", "reload"]) == 1
        time.sleep(0.3)
        assert other.poll() is None  # not terminated
        # a running kiosk's own record is honoured
        pid_path.write_text(f"{other.pid} {started(other.pid)}\n")
        assert main(["--config", str(cfg), "locales", "reload"]) == 0
        assert other.wait(10) == -signal.SIGHUP
    finally:
        other.kill()
        other.wait()


def test_a_new_pack_is_a_draft_customers_are_not_offered_until_the_line_is_removed(setup, capsys: pytest.CaptureFixture[str]) -> None:
    from assistant.locale import LocaleRegistry

    cfg, locales = setup
    registry = LocaleRegistry(locales, "zh-CN", None).load()
    assert main(["--config", str(cfg), "locales", "new", "zh-CN-dongbei", "--name", "东北话"]) == 0
    assert "remove 'draft: true' from zh-CN-dongbei/pack.yaml" in capsys.readouterr().out
    assert registry.reload() == []
    assert "zh-CN-dongbei" in registry.ids() and registry.get("zh-CN-dongbei").draft
    assert registry.offered() == ["yue", "zh-CN", "zh-CN-sichuan"]
    meta = locales / "zh-CN-dongbei" / "pack.yaml"
    text = meta.read_text(encoding="utf-8")
    line = next(i for i, t in enumerate(text.splitlines(), 1) if t.startswith("draft:"))
    meta.write_text(text.replace("draft: true", "draft: yes please"), encoding="utf-8")
    assert main(["--config", str(cfg), "locales", "check", "zh-CN-dongbei"]) == 1
    assert f"locales/zh-CN-dongbei/pack.yaml:{line}: draft must be true or false, not 'yes please'" in capsys.readouterr().out
    meta.write_text("".join(t for t in text.splitlines(keepends=True) if not t.startswith("draft:")), encoding="utf-8")
    # offered to customers while it would still say "好的，我说普通话。": refused
    assert [p.rule for p in registry.reload()] == ["own-words"]
    assert registry.offered() == ["yue", "zh-CN", "zh-CN-sichuan"]
    responses = locales / "zh-CN-dongbei" / "responses.yaml"
    responses.write_text(responses.read_text(encoding="utf-8").replace("好的，我说普通话。", "好嘞，我跟你唠东北话。"),
                         encoding="utf-8")
    assert registry.reload() == []
    assert registry.offered() == ["yue", "zh-CN", "zh-CN-dongbei", "zh-CN-sichuan"]


def test_say_with_a_mistyped_prompt_suggests_the_near_ones(setup, capsys: pytest.CaptureFixture[str]) -> None:
    cfg, _ = setup
    assert main(["--config", str(cfg), "locales", "say", "zh-CN", "arrear", "--no-play"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("locales say: pack 'zh-CN' has no prompt or label 'arrear'; did you mean arrears")


def test_a_draft_that_is_the_default_pack_is_held_to_its_own_words(setup, capsys: pytest.CaptureFixture[str]) -> None:
    """A draft is offered to nobody, except when the config makes it the kiosk's default: then
    every customer hears it, so a Mandarin "I speak Mandarin" left in it is an error for the
    check and the running kiosk alike, not a to-do."""
    from assistant.locale import LocaleRegistry, PackInvalid

    cfg, locales = setup
    assert main(["--config", str(cfg), "locales", "new", "zh-CN-dongbei", "--extends", "zh-CN", "--name", "东北话"]) == 0
    cfg.write_text(cfg.read_text(encoding="utf-8") + 'locale = "zh-CN-dongbei"\n', encoding="utf-8")
    capsys.readouterr()
    assert main(["--config", str(cfg), "locales", "check"]) == 1
    assert "'language_switched' is the same as in 'zh-CN'" in capsys.readouterr().out
    with pytest.raises(PackInvalid):
        LocaleRegistry(locales, "zh-CN-dongbei").load()
