"""The config file: every section checked at start-up, errors name the file and the key."""

from __future__ import annotations

import subprocess
import sys

import pytest

from assistant.config import ROOT, SECTIONS, Config, KioskSection
from assistant.dialog import DialogConfig
from assistant.errors import ConfigError


def test_the_shipped_config_reads_every_section() -> None:
    cfg = Config.load()
    cfg.check()
    assert set(cfg.data) <= set(SECTIONS)
    assert cfg.section("dialog", DialogConfig).account_digits == 10


def write(tmp_path, text: str):
    p = tmp_path / "k.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_unknown_key_names_file_section_and_known_keys(tmp_path) -> None:
    cfg = Config.load(write(tmp_path, '[tts]\ncolour = "red"\n'))
    with pytest.raises(ConfigError) as err:
        cfg.check()
    msg = str(err.value)
    assert "k.toml" in msg and "[tts]" in msg and "colour" in msg and "voice" in msg


def test_wrong_type_is_refused(tmp_path) -> None:
    cfg = Config.load(write(tmp_path, '[dialog]\nidle_timeout_s = "forty"\n'))
    with pytest.raises(ConfigError, match=r"\[dialog\] idle_timeout_s: expected float"):
        cfg.check()
    cfg = Config.load(write(tmp_path, "[dialog]\naccount_digits = true\n"))
    with pytest.raises(ConfigError, match="expected an integer"):
        cfg.check()


def test_unknown_section_and_bad_toml(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"unknown section\(s\) \[colour\]"):
        Config.load(write(tmp_path, "[colour]\nx = 1\n")).check()
    with pytest.raises(ConfigError, match="k.toml"):
        Config.load(write(tmp_path, "[kiosk\n"))
    with pytest.raises(ConfigError, match="not found"):
        Config.load(tmp_path / "missing.toml")


def test_ints_become_floats_and_lists_tuples(tmp_path) -> None:
    cfg = Config.load(write(tmp_path, "[dialog]\nidle_timeout_s = 30\ntext_scales = [1, 1.5]\n"))
    d = cfg.section("dialog", DialogConfig)
    assert d.idle_timeout_s == 30.0 and isinstance(d.idle_timeout_s, float)
    assert d.text_scales == (1.0, 1.5)
    assert cfg.section("kiosk", KioskSection).id == "K001"  # defaults for what is not written


def test_a_bad_config_stops_any_command_before_it_starts(tmp_path) -> None:
    bad = write(tmp_path, '[tts]\ncolour = "red"\n')
    proc = subprocess.run([sys.executable, "main.py", "--config", str(bad), "models", "list"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "colour" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[tts]\ndefault_rate = 9\n", "default_rate"),
        ("[tts]\nrates = []\n", "rates"),
        ("[tts]\ndefault_volume = -1\n", "default_volume"),
        ("[dialog]\ntext_scales = []\n", "text_scales"),
        ("[dialog]\nidle_timeout_s = 0\n", "idle_timeout_s"),
        ("[cash]\nretries = -3\n", "retries"),
        ("[cash]\nnotes_address = 200\n", "notes_address"),
        ("[cash]\ncoins_address = 0\n", "coins_address"),
    ],
)
def test_a_value_out_of_range_is_refused_naming_file_and_key(tmp_path, text: str, key: str) -> None:
    # default_rate = 9 used to pass the check and then fail on every prompt the kiosk spoke
    cfg = Config.load(write(tmp_path, text))
    with pytest.raises(ConfigError) as err:
        cfg.check()
    msg = str(err.value)
    assert msg.startswith(str(tmp_path / "k.toml")) and key in msg and "\n" not in msg


def test_a_section_range_check_names_the_file(tmp_path) -> None:
    cfg = Config.load(write(tmp_path, '[cash]\npayout_mode = "denom"\n'))
    with pytest.raises(ConfigError) as err:
        cfg.check()
    assert str(err.value) == f"{tmp_path / 'k.toml'}: [cash] payout_mode must be 'denomination' or 'amount', got 'denom'"
