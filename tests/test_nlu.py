"""Matching transcripts against the shipped packs: templates, slots, pinyin fallback."""

from __future__ import annotations

import pytest

from assistant.config import ROOT
from assistant.locale import load_packs
from assistant.nlu import (
    WordList,
    grammar_sentences,
    missing_words,
    segment,
    similarity,
    understand,
)

PACKS = load_packs(ROOT / "locales")
ZH = PACKS["zh-CN"]


def test_recogniser_spacing_and_slots() -> None:
    m = understand(ZH, "我 的 户号 是 幺三八 零零 幺三八零零")
    assert (m.intent, dict(m.slots), m.method) == ("AccountNumber", {"digits": "1380013800"}, "template")
    assert m.source.endswith("zh-CN/intents/AccountNumber.yaml:6")
    m = understand(ZH, "用 银行卡 交")
    assert (m.intent, dict(m.slots)) == ("Pay", {"method": "card"})


def test_whisper_style_text() -> None:
    # Traditional characters and Arabic digits, as Whisper writes them
    m = understand(ZH, "我要繳費")
    assert (m.intent, m.method) == ("Pay", "template")
    m = understand(ZH, "交123.5元")
    assert (m.intent, dict(m.slots)) == ("Amount", {"amount": 12350})


def test_homophone_goes_through_pinyin_fallback() -> None:
    m = understand(ZH, "我要角费")
    assert (m.intent, m.method, m.score) == ("Pay", "pinyin", 1.0)
    m = understand(ZH, "户好是幺三八零零幺三八零零")  # 户号 misheard
    assert (m.intent, dict(m.slots), m.method) == ("AccountNumber", {"digits": "1380013800"}, "pinyin")


def test_only_expected_intents_are_matched() -> None:
    assert understand(ZH, "交").intent == "Confirm"
    assert understand(ZH, "交", ["Cancel", "Help"]) is None
    assert understand(ZH, "五", ["Amount"]).slots["amount"] == 500
    assert understand(ZH, "五", ["AccountNumber"]).slots["digits"] == "5"


def test_ambiguous_amount_is_surfaced_not_guessed() -> None:
    m = understand(ZH, "两三块", ["Amount", "Cancel"])
    assert (m.intent, m.problem, m.slots["amount"]) == ("Amount", "amount_ambiguous", None)


@pytest.mark.parametrize("text", ["今天天气怎么样", "我想吃饺子", "", "   "])
def test_out_of_domain(text: str) -> None:
    assert understand(ZH, text) is None


def test_pack_switch_is_explicit() -> None:
    assert understand(ZH, "说粤语").slots["pack"] == "yue"
    assert understand(PACKS["yue"], "讲普通话").slots["pack"] == "zh-CN"
    assert understand(PACKS["zh-CN-sichuan"], "要得").intent == "Confirm"
    assert understand(PACKS["zh-CN-sichuan"], "确认").intent == "Confirm"  # inherited
    assert understand(ZH, "要得") is None  # 四川话 only


def test_grammar_sentences_name_their_template() -> None:
    sentences = dict(grammar_sentences(ZH, ["Pay"]))
    assert sentences["我要交电费"].endswith("zh-CN/intents/Pay.yaml:6")
    assert sentences["用现金交"].endswith("zh-CN/intents/Pay.yaml:8")
    amounts = [s for s, _ in grammar_sentences(ZH, ["Amount"])]
    assert "一百二十三块五" in amounts and "{amount}" not in " ".join(amounts)


def test_vocabulary_segmentation() -> None:
    vocab = WordList(["我", "要", "交", "电费", "交费"])
    assert segment("我要交电费", vocab) == ["我", "要", "交", "电费"]
    assert missing_words("我要缴电费", vocab) == ["缴"]
    assert segment("我要缴电费", vocab) is None


def test_similarity_counts_accent_confusions_as_near() -> None:
    assert similarity(["jiao", "fei"], ["jiao", "fei"]) == 1.0
    assert similarity(["zhi", "fu"], ["zi", "fu"]) == pytest.approx(0.85)
    assert similarity(["dui"], ["tui"]) == 0.0


def test_a_long_run_of_arabic_digits_is_not_an_amount_and_does_not_crash() -> None:
    """Whisper writes numbers as digits; a 14-digit account number said with 户号 must not take
    the matcher down (it did: number words stop at 10**12)."""
    m = understand(ZH, "户号31000123456789")
    assert m is not None and (m.intent, dict(m.slots)) == ("AccountNumber", {"digits": "31000123456789"})
    assert understand(ZH, "交12345678901234元", ["Amount"]) is None


@pytest.mark.parametrize("text", ["交费", "缴费", "繳費", "我交费", "交电费"])
def test_the_plainest_way_to_say_pay_is_understood(text: str) -> None:
    """An elderly customer says just 交费 (pay the bill); it must not be "not understood"."""
    m = understand(ZH, text, ["Pay", "Confirm", "Amount", "Cancel"])
    assert m is not None and m.intent == "Pay", f"{text} -> {m}"
