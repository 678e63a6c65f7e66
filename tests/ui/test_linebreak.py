"""Chinese line breaking: never inside a number, never a comma at the start of a line."""

from __future__ import annotations

from ui.linebreak import break_lines, units


def monospace(s: str) -> float:
    """Every character one unit wide (the real font's CJK glyphs are all the same width)."""
    return float(len(s))


def test_numbers_and_masks_stay_whole() -> None:
    text = "不太确定是您，您的户号尾号是******2345吗？"
    out = break_lines(text, 16, monospace)
    assert "******2345吗？" in out.split("\n")[1]
    assert all(len(line) <= 16 for line in out.split("\n"))
    assert out.replace("\n", "") == text


def test_closing_punctuation_never_starts_a_line() -> None:
    text = "请把银行卡正面朝上放在下方扫描区，保持不动，直到听到提示音为止。"
    for width in range(4, 30):
        lines = break_lines(text, width, monospace).split("\n")
        assert not any(line[:1] in "，。" for line in lines), (width, lines)
        assert "".join(lines) == text


def test_money_is_one_unit_and_opening_quotes_stick_to_the_next_word() -> None:
    assert units("欠费¥123.45。") == ["欠", "费", "¥123.45。"]
    assert units("说“交”，用现金") == ["说", "“交”，", "用", "现", "金"]


def test_a_run_longer_than_the_line_is_cut_only_where_it_must_be() -> None:
    out = break_lines("卡号6222020200112233445566", 8, monospace).split("\n")
    assert all(len(line) <= 8 for line in out)
    assert "".join(out) == "卡号6222020200112233445566"


def test_spaces_at_a_break_are_dropped_and_newlines_kept() -> None:
    out = break_lines("张**，您好。 户号尾号******2345。\n谢谢", 8, monospace)
    assert out.split("\n")[0] == "张**，您好。"
    assert out.endswith("\n谢谢")
