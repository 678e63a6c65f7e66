"""Chinese number and money text, both ways, with the real pack number styles."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assistant.config import ROOT
from assistant.errors import AmbiguousAmount, NotAnAmount, NotDigits, SpokenNumberError
from assistant.locale import load_packs
from speech.numbers import (
    digit_words,
    money_words,
    normalise_for_tts,
    number_words,
    parse_digits,
    parse_money,
    year_words,
)

PACKS = load_packs(ROOT / "locales")
ZH = PACKS["zh-CN"].number_style
YUE = PACKS["yue"].number_style


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("一百二十三块五毛", 12350),
        ("八块五", 850),
        ("三块零五分", 305),
        ("两千两百二十五块", 222500),
        ("一百二十三元四角五分", 12345),
        ("三块零五", 305),
        ("一块半", 150),
        ("五毛五", 55),
        ("一千二", 120000),
        ("一千元零五分", 100005),
        ("一百零五块钱", 10500),
        ("十万零五块", 10000500),
        ("贰拾元整", 2000),
        # recogniser output: spaces between words, Arabic digits, Traditional forms
        ("一百 二十 三 块 五", 12350),
        ("123.5元", 12350),
        ("¥123.45", 12345),
        ("12块5", 1250),
        ("123元4角5分", 12345),
        ("兩塊錢", 200),
    ],
)
def test_parse_money_mandarin(text: str, fen: int) -> None:
    assert parse_money(text, ZH) == fen


@pytest.mark.parametrize("text", ["两三块", "一两块", "十几块", "一百多块", "大概五十块", "五块或者六块", "三五块"])
def test_approximate_amounts_are_rejected_for_a_re_ask(text: str) -> None:
    with pytest.raises(AmbiguousAmount) as info:
        parse_money(text, ZH)
    assert info.value.prompt_id == "amount_ambiguous"
    assert isinstance(info.value, SpokenNumberError)


@pytest.mark.parametrize("text", ["", "你好", "多谢", "多少钱", "块五", "五块三毛四分二", "1.234元", "八块五五"])
def test_non_amounts(text: str) -> None:
    with pytest.raises(NotAnAmount) as info:
        parse_money(text, ZH)
    assert info.value.prompt_id == "amount_not_understood"


@pytest.mark.parametrize(
    ("text", "fen"),
    [("十二蚊五毫", 1250), ("十二個五", 1250), ("十二个五", 1250), ("廿五蚊", 2500), ("八蚊半", 850), ("三蚊零五仙", 305)],
)
def test_parse_money_cantonese(text: str, fen: int) -> None:
    assert parse_money(text, YUE) == fen


def test_money_words() -> None:
    assert money_words(12345, ZH) == "一百二十三元四角五分"
    assert money_words(100005, ZH) == "一千元零五分"
    assert money_words(0, ZH) == "零元"
    assert money_words(200, ZH) == "两元"
    assert money_words(10_000_000_000, ZH) == "一亿元"
    assert money_words(1250, YUE) == "十二蚊五毫"
    assert money_words(100005, YUE) == "一千蚊零五分"


def test_numbers_and_years() -> None:
    assert year_words(2019, ZH) == "二零一九"
    assert number_words(1005, ZH) == "一千零五"
    assert number_words(2, ZH) == "二"
    assert number_words(2, ZH, measure=True) == "两"
    assert number_words(20000, ZH) == "两万"
    assert number_words(110, ZH) == "一百一十"
    assert number_words(100010, ZH) == "十万零一十"


def test_account_digits_both_ways() -> None:
    assert parse_digits("幺三八零零幺三八零零", ZH) == "1380013800"
    assert parse_digits("零 零 幺 二", ZH) == "0012"
    assert parse_digits("１３８-0013", ZH) == "1380013"
    spoken = digit_words("1380013800", ZH)
    assert spoken.replace(ZH.digit_separator, "") == "幺三八零零幺三八零零"
    assert parse_digits(spoken, ZH) == "1380013800"
    assert digit_words("0012", ZH) == "零零幺二"
    assert digit_words("****1234", ZH) == "尾号幺二三四"
    assert digit_words("1234", YUE) == "一二三四"  # no 幺 in Cantonese
    with pytest.raises(NotDigits):
        parse_digits("一百二十三", ZH)


def test_tts_text_never_has_ascii_digits() -> None:
    text = normalise_for_tts("2019年共交费12次，合计¥1234.50，热线95598，户号0012345678，占3.5%", ZH)
    assert text == (
        "二零一九年共交费十二次，合计一千二百三十四元五角，热线九五五九八，"
        "户号零零，幺二三四，五六七八，占百分之三点五"
    )
    assert not re.search(r"[0-9]", text)


@settings(max_examples=400, deadline=None)
@given(st.integers(min_value=0, max_value=10**8))
def test_money_round_trip(fen: int) -> None:
    assert parse_money(money_words(fen, ZH), ZH) == fen
    assert parse_money(money_words(fen, YUE), YUE) == fen


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=10**8))
def test_display_amount_round_trip(fen: int) -> None:
    display = f"¥{fen // 100}.{fen % 100:02d}"
    assert parse_money(display, ZH) == fen


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789", min_size=1, max_size=20))
def test_digit_string_round_trip(digits: str) -> None:
    assert parse_digits(digit_words(digits, ZH), ZH) == digits
    assert parse_digits(digit_words(digits, YUE), YUE) == digits


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789.,%¥年元块号 交费户０５", max_size=40))
def test_normalise_for_tts_guarantee(text: str) -> None:
    assert not re.search(r"[0-9]", normalise_for_tts(text, ZH))
    assert not re.search(r"[0-9]", normalise_for_tts(text, YUE))


@pytest.mark.parametrize("text", ["31000123456789元", "1000000000000元", "12345678901234567890"])
def test_huge_arabic_numbers_are_not_amounts(text: str) -> None:
    with pytest.raises(NotAnAmount):
        parse_money(text, ZH)
