"""``[cash]``: values a bank or hall operator could get wrong are refused at start-up, by key."""

from __future__ import annotations

import pytest

from assistant.config import Config
from assistant.errors import ConfigError


@pytest.mark.parametrize(("line", "message"), [
    ('sim_notes = { "10000" = 10, "3000" = 5 }', "[cash] sim_notes: there is no 30 yuan note"),
    ('sim_coins = { "100" = 10, "20" = 5 }', "[cash] sim_coins: there is no 0.2 yuan coin"),
    ("reply_timeout_s = -1", "[cash] reply_timeout_s = -1: must be more than 0"),
    ("finish_timeout_s = 0", "[cash] finish_timeout_s = 0: must be more than 0"),
    ("retries = -2", "[cash] retries = -2: must be 0 or more"),
])
def test_cash_section_mistakes_name_the_key(tmp_path, line: str, message: str) -> None:
    path = tmp_path / "kiosk.toml"
    path.write_text(f"[cash]\n{line}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        Config.load(path).check()
    assert message in str(err.value)


def test_every_renminbi_denomination_is_accepted(tmp_path) -> None:
    path = tmp_path / "kiosk.toml"
    path.write_text('[cash]\nsim_notes = { "10000" = 1, "5000" = 1, "2000" = 1, "1000" = 1, "500" = 1, "100" = 1 }\n'
                    'sim_coins = { "100" = 1, "50" = 1, "10" = 1 }\n', encoding="utf-8")
    Config.load(path).check()
