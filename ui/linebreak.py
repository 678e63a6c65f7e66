"""Line breaking for Chinese text with numbers in it.

Kivy breaks lines only at spaces and otherwise cuts a long run anywhere, so a
sentence like 您的户号尾号是******2345吗？ could be split inside the number, and a
line could start with a comma. Here a line may break between two Chinese
characters or at a space, never inside a run of digits, letters, masks and money
signs (¥123.45, ****1234), never before closing punctuation (，。？」) and never
after opening punctuation (“「（). Pure Python: the measuring function is passed in.
"""

from __future__ import annotations

from collections.abc import Callable

CLOSING = set("，。、！？；：）」』”’》〉】…,.!?;:)]}%")
"""Never at the start of a line."""
OPENING = set("（「『“‘《〈【([{")
"""Never at the end of a line."""


def _word_char(c: str) -> bool:
    """Characters that stay together in a run: ASCII letters/digits, masks, money signs."""
    return (c.isascii() and (c.isalnum() or c in "*#.,:/+-_%")) or c in "¥￥"


def units(text: str) -> list[str]:
    """The text cut into pieces that may each start a line."""
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if _word_char(c):
            j = i
            while j < len(text) and _word_char(text[j]):
                j += 1
            piece = text[i:j]
            i = j
        else:
            piece = c
            i += 1
        if out and (piece[0] in CLOSING or out[-1][-1:] in OPENING) and not out[-1].isspace() and not piece.isspace():
            out[-1] += piece
        else:
            out.append(piece)
    return out


def break_lines(text: str, width: float, measure: Callable[[str], float]) -> str:
    """``text`` with newlines inserted so that every line measures at most ``width``.

    Args:
        text: the text (existing newlines are kept).
        width: the widest a line may be, in the units ``measure`` returns.
        measure: the width of a string as it will be drawn.
    """
    if width <= 0:
        return text
    lines: list[str] = []
    for paragraph in text.split("\n"):
        line = ""
        for piece in units(paragraph):
            candidate = line + piece
            if line and measure(candidate) > width:
                lines.append(line.rstrip(" "))
                candidate = piece.lstrip(" ")
            line = candidate
            # One piece wider than the line (a very long number): cut it where it must be.
            while measure(line) > width and len(line) > 1:
                cut = len(line) - 1
                while cut > 1 and measure(line[:cut]) > width:
                    cut -= 1
                lines.append(line[:cut])
                line = line[cut:]
        lines.append(line.rstrip(" "))
    return "\n".join(lines)
