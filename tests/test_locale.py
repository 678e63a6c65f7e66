"""Loading packs with inheritance, rendering prompts, and reloading at run time."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from pathlib import Path

import pytest

from assistant.config import ROOT
from assistant.errors import LocaleError
from assistant.locale import LocaleRegistry, install_reload_signal, load_packs
from assistant.locale_check import used_ids
from assistant.locale_cli import example_slots
from assistant.messages import Amount, Count, Digits, Seconds
from assistant.prompts import Label, Prompt
from tests.conftest import copy_shipped_locales

LOCALES = ROOT / "locales"
FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
PACKS = load_packs(LOCALES)


def test_render_speech_and_display() -> None:
    zh = PACKS["zh-CN"]
    r = zh.render(Prompt.ARREARS, {"account": Digits("****1234"), "amount": Amount(12345), "method": Prompt.METHOD_CASH})
    assert r.speech == "户号尾号幺二三四，现在欠费一百二十三元四角五分。按确认键或者说“交”，就用现金交。"
    assert r.display == "户号****1234，现在欠费¥123.45。按确认键或者说“交”，就用现金交。"
    r = zh.render(Prompt.GREETING_NAMED, {"name": "张**"})
    assert (r.speech, r.display) == ("姓张的客户，您好！", "张**，您好！")
    r = zh.render(Prompt.STILL_THERE, {"seconds": Seconds(20)})
    assert "二十秒" in r.speech and "20秒" in r.display
    r = zh.render(Prompt.ENROL_FACE_PROGRESS, {"count": Count(2), "total": Count(5)})
    assert r.speech.startswith("第两张，共五张")
    r = PACKS["yue"].render(Prompt.CASH_RECEIVED_IN_FULL, {"inserted": Amount(10000)})
    assert r.speech == "一共收到一百蚊，够晒。"
    r = PACKS["yue"].render(Prompt.CASH_DISPENSING, {"change": Amount(1250)})
    assert r.speech == "依家找钱十二蚊五毫，请拎好。"
    assert zh.label(Label.BTN_ONE_KEY_PAY, {"method": Prompt.METHOD_CARD}) == "一键交费（银行卡）"


def test_missing_slot_and_unknown_id_are_errors() -> None:
    with pytest.raises(LocaleError):
        PACKS["zh-CN"].render(Prompt.ARREARS, {"account": Digits("1")})
    with pytest.raises(LocaleError):
        PACKS["zh-CN"].render("no_such_prompt")


@pytest.mark.parametrize("pack_id", sorted(PACKS))
def test_every_prompt_speaks_without_ascii_digits(pack_id: str) -> None:
    pack = PACKS[pack_id]
    for pid in sorted(used_ids().all):
        r = pack.render(pid, example_slots(pack, pid))
        assert not re.search(r"[0-9]", r.speech), (pid, r.speech)
        assert "{" not in r.speech and "{" not in r.display, pid


def test_dialect_inherits_and_overrides() -> None:
    zh, sc = PACKS["zh-CN"], PACKS["zh-CN-sichuan"]
    assert (sc.voice, sc.rate, zh.rate) == ("sit/cmn-latn-pinyin", 140, 150)
    assert sc.number_style == zh.number_style
    assert sc.text("ask_account") == zh.text("ask_account")
    assert sc.text("language_switched") != zh.text("language_switched")
    confirm = [str(s) for block in sc.intent_data["Confirm"]["data"] for s in block["sentences"]]
    assert any("要得" in s for s in confirm) and any("确认" in s for s in confirm)
    assert PACKS["yue"].voice == "sit/yue" and PACKS["yue"].extends is None


def _copy_locales(tmp_path: Path) -> Path:
    return copy_shipped_locales(tmp_path / "locales")


def test_reload_refuses_a_broken_pack_and_keeps_the_old_one(tmp_path: Path) -> None:
    locales = _copy_locales(tmp_path)
    registry = LocaleRegistry(locales, "zh-CN", FONT).load()
    responses = locales / "zh-CN" / "responses.yaml"
    original = responses.read_text(encoding="utf-8")
    responses.write_text(original.replace("  goodbye: 谢谢您，慢走。\n", ""), encoding="utf-8")
    problems = registry.reload()
    assert [p.rule for p in problems] == ["prompt-missing"]
    assert registry.get("zh-CN").text("goodbye") == "谢谢您，慢走。"  # still the old pack
    responses.write_text(original.replace("谢谢您，慢走。", "谢谢您，再见。"), encoding="utf-8")
    assert registry.reload() == []
    assert registry.get("zh-CN").text("goodbye") == "谢谢您，再见。"


async def test_sighup_reloads_the_registry(tmp_path: Path) -> None:
    locales = _copy_locales(tmp_path)
    registry = LocaleRegistry(locales, "zh-CN", None).load()
    responses = locales / "zh-CN" / "responses.yaml"
    responses.write_text(responses.read_text(encoding="utf-8").replace("谢谢您，慢走。", "谢谢，慢走。"), encoding="utf-8")
    done: asyncio.Queue[list] = asyncio.Queue()
    install_reload_signal(registry, on_result=done.put_nowait)
    try:
        os.kill(os.getpid(), signal.SIGHUP)
        problems = await asyncio.wait_for(done.get(), timeout=60)
    finally:
        asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
    assert problems == []
    assert registry.get("zh-CN").text("goodbye") == "谢谢，慢走。"


@pytest.mark.parametrize("pack_id", sorted(PACKS))
def test_every_pack_names_the_confirm_key_one_way(pack_id: str) -> None:
    """The badge on the primary button says 按确认键; the keypad hint, the spoken instructions
    and the enter button must name that same key, never a 确定 key beside it."""
    pack = PACKS[pack_id]
    badge = pack.label(Label.KEY_CONFIRM)
    key = re.sub(r"^(按|撳)", "", badge)  # 确认键 / 确认掣
    assert key and key != badge, badge
    assert key in pack.label(Label.HINT_KEYS), pack.label(Label.HINT_KEYS)
    assert pack.label(Label.BTN_ENTER) == pack.label(Label.BTN_CONFIRM)
    for text_id in sorted({*pack.prompts, *pack.labels}):
        text = pack.text(text_id)
        assert not re.search(r"(按|撳)确定", text), (text_id, text)
