"""Chinese number and money text, both ways.

Out (for speech): :func:`money_words`, :func:`number_words`, :func:`year_words`,
:func:`digit_words` and :func:`normalise_for_tts`, which guarantees that no ASCII
digit reaches the speech engine (espeak-ng drops decimal points and reads years
as quantities).

In (from the recogniser or the keypad): :func:`parse_money` turns colloquial or
formal amounts into integer fen, and :func:`parse_digits` turns a digit string
spoken one digit at a time into ASCII digits with leading zeros kept. An
approximate amount raises :class:`AmbiguousAmount` so the kiosk asks again; it
never guesses.

Every word used here comes from a :class:`NumberStyle`, built from the ``numbers:``
block of a locale pack's ``pack.yaml``; this module holds no words of any language.
That is what lets a dialect pack say money its own way (Cantonese 蚊/毫) while the
arithmetic stays in one tested place.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from assistant.errors import AmbiguousAmount, NotAnAmount, NotDigits

__all__ = [
    "AmbiguousAmount",
    "NotAnAmount",
    "NotDigits",
    "NumberStyle",
    "digit_words",
    "money_words",
    "normalise_for_tts",
    "number_words",
    "parse_digits",
    "parse_money",
    "year_words",
]

YUAN, JIAO, FEN = 100, 10, 1
"""Value in fen of each money unit."""

_TEN, _HUNDRED, _THOUSAND, _WAN, _YI = 10, 100, 1000, 10_000, 100_000_000
_PLACE_VALUES = (_TEN, _HUNDRED, _THOUSAND, _WAN, _YI)

# Full-width digits and the yen/yuan signs that ASR and keyboards produce.
_FULLWIDTH = str.maketrans("０１２３４５６７８９．，", "0123456789.,")
_FULLWIDTH_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")
_CURRENCY_SIGNS = "¥￥"


@dataclass(frozen=True)
class NumberStyle:
    """How one locale pack says and understands numbers and money.

    Built from the ``numbers:`` block of ``pack.yaml`` with :meth:`from_dict`; the
    first word of each unit list is the one spoken, the rest are only understood.
    """

    digits: str
    """Ten characters, the digits 0 to 9 as read in numbers and years."""
    places: tuple[str, str, str, str, str]
    """The words for ten, hundred, thousand, ten thousand and hundred million."""
    yuan: tuple[str, ...]
    """Words for the yuan (first is spoken; e.g. formal 元, colloquial 块)."""
    jiao: tuple[str, ...]
    """Words for the jiao, a tenth of a yuan."""
    fen: tuple[str, ...]
    """Words for the fen, a hundredth of a yuan."""
    digit_one: str = ""
    """How 1 is read in a digit string (Mandarin 幺); empty means ``digits[1]``."""
    liang: str = ""
    """The word for 2 before a measure word and before thousand / ten thousand /
    hundred million; empty means ``digits[2]`` everywhere."""
    half: str = ""
    """Word for half a yuan after the yuan word (一块半); empty disables it."""
    point: str = ""
    """Decimal point word for plain decimals (三点五)."""
    percent: str = ""
    """Prefix that makes a percentage (百分之)."""
    year_marker: str = ""
    """The word after a year (年): a 4-digit number before it is read as a year."""
    aliases: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Input spellings mapped to canonical ones before parsing (Traditional forms,
    capital numerals, 〇 and 洞 for zero...)."""
    filler: tuple[str, ...] = ()
    """Words ignored inside an amount (钱, 整, 人民币)."""
    approximate: tuple[str, ...] = ()
    """Words that make an amount approximate (几, 多, 左右...): it is re-asked."""
    digit_group: int = 0
    """Read digit strings longer than twice this in groups of this many, counted from
    the right as phone numbers are (138，0013，8000); 0 = no groups."""
    digit_separator: str = ""
    """Text put between digit groups in speech (a comma gives a short pause)."""
    masked_tail: str = "{tail}"
    """How a masked digit string is spoken; ``{tail}`` is the visible digits."""
    masked_name: str = "{visible}"
    """How a masked name is spoken; ``{visible}`` is the unmasked characters."""

    def __post_init__(self) -> None:
        if len(self.digits) != 10:
            raise ValueError("NumberStyle.digits must have exactly ten characters")
        if len(self.places) != 5 or not all(self.places):
            raise ValueError("NumberStyle.places needs ten, hundred, thousand, 10^4, 10^8")
        if not (self.yuan and self.jiao and self.fen):
            raise ValueError("NumberStyle needs at least one word for yuan, jiao and fen")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NumberStyle:
        """Build a style from a ``numbers:`` mapping (keys are the field names)."""
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown number style key(s): {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key in ("yuan", "jiao", "fen", "filler", "approximate", "places"):
                value = tuple(str(v) for v in value)
            elif key == "aliases":
                value = MappingProxyType({str(k): str(v) for k, v in dict(value).items()})
            elif key == "digit_group":
                value = int(value)
            else:
                value = "" if value is None else str(value)
            values[key] = value
        return cls(**values)

    # -- derived tables ---------------------------------------------------------------
    @property
    def two(self) -> str:
        """The word for 2 before a measure word."""
        return self.liang or self.digits[2]

    @property
    def one_in_digit_strings(self) -> str:
        """The word for 1 when reading a digit string."""
        return self.digit_one or self.digits[1]

    def canonical(self, text: str) -> str:
        """Apply the aliases (longest first) and fold 两/幺 into plain digits."""
        for src in sorted(self.aliases, key=len, reverse=True):
            text = text.replace(src, self.aliases[src])
        if self.liang:
            text = text.replace(self.liang, self.digits[2])
        if self.digit_one:
            text = text.replace(self.digit_one, self.digits[1])
        return text


# ===================================================================== number to words


MAX_WORDS = 10**12
"""Numbers from here up have no words (they would need 兆): :func:`number_words` refuses them."""


def number_words(n: int, style: NumberStyle, *, measure: bool = False) -> str:
    """Say a non-negative integer (1005 -> 一千零五, 20000 -> 两万).

    Args:
        n: the number, 0 <= n < 10**12.
        style: the pack's number style.
        measure: True when a measure word follows (money, counts), so a lone 2 is
            said with ``style.liang`` (两元 rather than 二元).
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"number_words needs a non-negative integer, got {n!r}")
    if n >= MAX_WORDS:
        raise ValueError(f"number_words: {n} is too large")
    zero = style.digits[0]
    if n == 0:
        return zero
    if n == 2 and measure:
        return style.two
    groups = [(n // _YI, style.places[4]), (n // _WAN % _WAN, style.places[3]), (n % _WAN, "")]
    out = ""
    gap = False
    for value, unit in groups:
        if value == 0:
            gap = bool(out)
            continue
        if out and (gap or value < 1000):
            out += zero
        gap = False
        if value == 2 and unit:
            out += style.two + unit  # 两万, 两亿
        else:
            out += _four(value, style, leading=not out) + unit
    return out


def _four(value: int, style: NumberStyle, *, leading: bool) -> str:
    """Words for 1..9999 inside a larger number."""
    out = ""
    zero_pending = False
    for place, word in ((1000, style.places[2]), (100, style.places[1]), (10, style.places[0]), (1, "")):
        d = value // place % 10
        if d == 0:
            zero_pending = bool(out)
            continue
        if zero_pending:
            out += style.digits[0]
            zero_pending = False
        if place == 10 and d == 1 and leading and not out:
            digit = ""  # 十五, not 一十五, at the very start
        elif place == 1000 and d == 2:
            digit = style.two  # 两千
        else:
            digit = style.digits[d]
        out += digit + word
    return out


def money_words(fen: int, style: NumberStyle) -> str:
    """Say an amount in full money words (12345 -> 一百二十三元四角五分, 100005 -> 一千元零五分)."""
    if not isinstance(fen, int) or isinstance(fen, bool) or fen < 0:
        raise ValueError(f"money_words needs non-negative integer fen, got {fen!r}")
    yuan, jiao, cents = fen // 100, fen // 10 % 10, fen % 10
    out = ""
    if yuan:
        out += number_words(yuan, style, measure=True) + style.yuan[0]
    if jiao:
        out += number_words(jiao, style, measure=True) + style.jiao[0]
    if cents:
        if yuan and not jiao:
            out += style.digits[0]  # 一千元零五分: the 零 marks the missing jiao
        out += number_words(cents, style, measure=True) + style.fen[0]
    return out or style.digits[0] + style.yuan[0]


def year_words(year: int, style: NumberStyle) -> str:
    """Say a year digit by digit, as years are read (2019 -> 二零一九)."""
    if not isinstance(year, int) or year < 0:
        raise ValueError(f"year_words needs a non-negative integer, got {year!r}")
    return "".join(style.digits[int(d)] for d in str(year))


def digit_words(digits: str, style: NumberStyle) -> str:
    """Read a digit string one digit at a time, leading zeros kept.

    ``1380013800`` -> 幺三八零零幺三八零零 (grouped with the style's separator). A
    masked string (``****1234``) is read as the style's ``masked_tail`` with the
    visible tail, e.g. 尾号一二三四.
    """
    text = digits.translate(_FULLWIDTH_DIGITS).replace(" ", "")
    if "*" in text:
        tail = text.rsplit("*", 1)[1]
        return style.masked_tail.format(tail=_read_digits(tail, style, group=False))
    return _read_digits(text, style, group=True)


def _read_digits(text: str, style: NumberStyle, *, group: bool) -> str:
    if not text.isascii() or not text.isdigit():
        if text == "":
            return ""
        raise ValueError(f"digit_words needs ASCII digits or '*', got {text!r}")
    words = [style.one_in_digit_strings if d == "1" else style.digits[int(d)] for d in text]
    size = style.digit_group
    # short codes (a hotline, a card tail) read best in one breath
    if not group or size <= 0 or len(words) <= 2 * size:
        return "".join(words)
    first = len(words) % size or size
    chunks = ["".join(words[:first])]
    chunks += ["".join(words[i : i + size]) for i in range(first, len(words), size)]
    return style.digit_separator.join(chunks)


# ===================================================================== text for TTS

_NUMBER = r"\d+(?:,\d{3})*(?:\.\d+)?"


def normalise_for_tts(text: str, style: NumberStyle) -> str:
    """Turn every Arabic numeral in ``text`` into words; the result has no ASCII digit.

    Money (``¥12.50``, ``12.5元``) becomes money words, a four-digit number before
    the style's year marker (``2019年``) a year, long digit runs and runs with a
    leading zero (phone, account numbers) digit by digit, decimals with the point
    word, percentages with the percent word, and other integers as numbers. Mask
    characters (``*``) are dropped: masked values are spoken through their slot.
    """
    text = text.translate(_FULLWIDTH_DIGITS)
    yuan_words = "|".join(re.escape(w) for w in sorted(style.yuan, key=len, reverse=True))

    def money(m: re.Match[str]) -> str:
        try:
            return money_words(_decimal_to_fen(m.group("n")), style)
        except (NotAnAmount, ValueError):
            # not a sum of money (three decimals): say the number, keep the rest
            return _plain_number(m.group("n"), style) + m.group(0)[m.end("n") - m.start() :]

    text = re.sub(rf"[{_CURRENCY_SIGNS}]\s*(?P<n>{_NUMBER})", money, text)
    text = re.sub(rf"(?P<n>{_NUMBER})\s*(?:{yuan_words})", money, text)
    if style.year_marker:
        # 2019年 is read 二零一九年, not 两千零一十九年
        text = re.sub(
            rf"(?<!\d)(\d{{4}})(?=\s*{re.escape(style.year_marker)})",
            lambda m: year_words(int(m.group(1)), style),
            text,
        )
    if style.percent:
        text = re.sub(
            rf"(?P<n>{_NUMBER})\s*%",
            lambda m: style.percent + _plain_number(m.group("n"), style),
            text,
        )
    text = re.sub(_NUMBER, lambda m: _plain_number(m.group(0), style), text)
    text = text.replace("*", "")
    # Guarantee: whatever slipped through is read digit by digit.
    return re.sub(r"\d", lambda m: style.digits[int(m.group(0))], text)


def _plain_number(raw: str, style: NumberStyle) -> str:
    """Words for a number that is not money: integer, decimal, or a code."""
    raw = raw.replace(",", "")
    whole, _, frac = raw.partition(".")
    if (len(whole) >= 5 or (len(whole) > 1 and whole.startswith("0"))) and not frac:
        return _read_digits(whole, style, group=True)
    words = number_words(int(whole), style) if len(whole) < 13 else _read_digits(whole, style, group=False)
    if frac:
        words += (style.point or "") + "".join(style.digits[int(d)] for d in frac)
    return words


def _decimal_to_fen(raw: str) -> int:
    """``"1,234.5"`` -> 123450; more than two decimals is not money."""
    raw = raw.replace(",", "")
    whole, _, frac = raw.partition(".")
    if len(frac) > 2:
        raise NotAnAmount(f"{raw!r} has more than two decimals")
    return int(whole or "0") * 100 + int((frac + "00")[:2])


# ===================================================================== words to numbers


def parse_money(text: str, style: NumberStyle) -> int:
    """Turn a spoken or written amount into integer fen.

    Accepts formal and colloquial forms (元/块/圆, 角/毛, 分, 两, 零; a bare digit
    after the yuan word means jiao: 八块五 = 850; after 零 it means fen: 三块零五 =
    305; 半 after the yuan word is 5 jiao), ASR spacing (一百 二十 三), Arabic
    digits (``123.5元``, ``¥123.45``, ``12块5``) and Traditional forms listed in the
    style's aliases. A bare number is yuan.

    Raises:
        AmbiguousAmount: an approximation (两三块, 十几块, 一百多, 大概五十).
        NotAnAmount: anything else that is not one exact amount.
    """
    t = _prepare(text, style)
    if not t:
        raise NotAnAmount(f"{text!r}: no amount")
    rest = t
    found = ""
    for word in sorted(style.approximate, key=len, reverse=True):
        if word and word in rest:
            found = found or word
            rest = rest.replace(word, "")
    if found:
        # only an amount that is approximate is ambiguous; other text is not an amount
        numerals = set(style.digits) | set(style.places) | set("0123456789")
        alphabet = numerals | set("".join((*style.yuan, *style.jiao, *style.fen, style.half))) | set(_CURRENCY_SIGNS + ".")
        if rest and all(ch in alphabet for ch in rest) and any(ch in numerals for ch in rest):
            raise AmbiguousAmount(f"{text!r} is approximate ({found})")
        raise NotAnAmount(f"{text!r}: not an amount")
    decimal = _parse_arabic_decimal(t, style)
    if decimal is not None:
        return decimal
    t = re.sub(r"\d+", lambda m: _arabic_int_to_words(m.group(0), style), t)
    tokens = _tokenise(t, style, text)
    return _amount_from_tokens(tokens, style, text)


def _prepare(text: str, style: NumberStyle) -> str:
    """Normalise width, aliases, spacing, punctuation and filler words."""
    t = unicodedata.normalize("NFKC", text).translate(_FULLWIDTH)
    t = style.canonical(t)
    t = re.sub(r"\s+", "", t)
    t = re.sub(r"(?<=\d),(?=\d{3})", "", t)
    # keep a point only between digits; drop other punctuation and symbols
    t = "".join(
        ch
        for i, ch in enumerate(t)
        if not (
            (unicodedata.category(ch)[0] in "PZS" and ch not in _CURRENCY_SIGNS)
            and not (ch == "." and 0 < i < len(t) - 1 and t[i - 1].isdigit() and t[i + 1].isdigit())
        )
    )
    for word in sorted(style.filler, key=len, reverse=True):
        if word:
            t = t.replace(word, "")
    return t


def _parse_arabic_decimal(t: str, style: NumberStyle) -> int | None:
    """``¥123.45``, ``123.5元``, ``123.50``: a decimal number with at most a yuan word."""
    signs = f"[{_CURRENCY_SIGNS}]?"
    yuan = "|".join(re.escape(w) for w in sorted(style.yuan, key=len, reverse=True))
    m = re.fullmatch(rf"{signs}(\d+\.\d+)(?:{yuan})?", t)
    if m:
        return _decimal_to_fen(m.group(1))
    if "." in t:
        raise NotAnAmount(f"{t!r}: a decimal point where no amount can have one")
    if t[:1] in _CURRENCY_SIGNS:
        m = re.fullmatch(rf"{signs}(\d+)", t)
        if m:
            return int(m.group(1)) * 100
        raise NotAnAmount(f"{t!r}: a currency sign before something that is not a number")
    return None


def _arabic_int_to_words(raw: str, style: NumberStyle) -> str:
    """Arabic digits inside a spoken amount become words, keeping a leading zero (3块05).

    A run too long to be an amount (an account or phone number written in digits, as
    Whisper does) is not an amount: :class:`NotAnAmount`, like any other non-amount.
    """
    stripped = raw.lstrip("0")
    zeros = style.digits[0] if len(stripped) < len(raw) else ""
    if stripped and int(stripped) >= MAX_WORDS:
        raise NotAnAmount(f"{raw!r}: too many digits for an amount")
    return zeros + (number_words(int(stripped), style) if stripped else "")


# token kinds
_NUM, _UNIT, _HALF = "num", "unit", "half"


def _tokenise(t: str, style: NumberStyle, original: str) -> list[tuple[str, Any]]:
    numerals = set(style.digits) | set(style.places)
    units = sorted(
        [(w, YUAN) for w in style.yuan] + [(w, JIAO) for w in style.jiao] + [(w, FEN) for w in style.fen],
        key=lambda x: len(x[0]),
        reverse=True,
    )
    tokens: list[tuple[str, Any]] = []
    i = 0
    while i < len(t):
        ch = t[i]
        if ch in numerals:
            j = i
            while j < len(t) and t[j] in numerals:
                j += 1
            tokens.append((_NUM, t[i:j]))
            i = j
            continue
        for word, value in units:
            if word and t.startswith(word, i):
                tokens.append((_UNIT, value))
                i += len(word)
                break
        else:
            if style.half and t.startswith(style.half, i):
                tokens.append((_HALF, None))
                i += len(style.half)
                continue
            raise NotAnAmount(f"{original!r}: {t[i]!r} is not part of an amount")
    return tokens


def _amount_from_tokens(tokens: list[tuple[str, Any]], style: NumberStyle, original: str) -> int:
    """Read ``[num unit]* [num | half]`` with units strictly decreasing."""
    total = 0
    last_unit: int | None = None
    i = 0
    while i < len(tokens):
        kind, value = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if kind == _NUM and nxt is not None and nxt[0] == _UNIT:
            unit = nxt[1]
            if last_unit is not None and unit >= last_unit:
                raise NotAnAmount(f"{original!r}: units out of order")
            n = _parse_int(value, style, original, leading_zero=last_unit is not None)
            if last_unit is not None and n > 9:
                raise NotAnAmount(f"{original!r}: {value} is too many for that unit")
            total += n * unit
            last_unit = unit
            i += 2
        elif kind == _NUM and nxt is None:
            if last_unit is None:
                return _parse_int(value, style, original) * YUAN  # a bare number is yuan
            after_zero = value.startswith(style.digits[0])
            n = _parse_int(value, style, original, leading_zero=True)
            unit = last_unit // (100 if after_zero else 10)
            if unit < 1 or not 1 <= n <= 9:
                raise NotAnAmount(f"{original!r}: the last digit has no unit")
            total += n * unit
            i += 1
        elif kind == _HALF and last_unit == YUAN and tokens[i - 1][0] == _UNIT and nxt is None:
            total += 5 * JIAO
            i += 1
        else:
            raise NotAnAmount(f"{original!r}: not an amount")
    return total


def _parse_int(s: str, style: NumberStyle, original: str, *, leading_zero: bool = False) -> int:
    """A canonical numeral string (digits, places, zeros) -> int.

    Colloquial abbreviations are read as people mean them: a final bare digit right
    after a place word is one place lower (一千二 = 1200, 三万五 = 35000).
    """
    zero = style.digits[0]
    if leading_zero:
        s = s.lstrip(zero) or zero
    if s == zero:
        return 0
    digit_of = {c: i for i, c in enumerate(style.digits)}
    place_of = dict(zip(style.places, _PLACE_VALUES, strict=True))
    # adjacent non-zero digits: increasing (两三, 一两, 七八) is an approximation
    for a, b in zip(s, s[1:], strict=False):
        if a in digit_of and b in digit_of and digit_of[a] and digit_of[b]:
            if digit_of[b] > digit_of[a]:
                raise AmbiguousAmount(f"{original!r}: {a}{b} is an approximation")
            raise NotAnAmount(f"{original!r}: {a}{b} is not a number")
    if s.startswith(zero):
        raise NotAnAmount(f"{original!r}: a number cannot start with zero here")
    return _parse_big(s, style, digit_of, place_of, original)


def _parse_big(s: str, style: NumberStyle, digit_of: dict[str, int], place_of: dict[str, int], original: str) -> int:
    for big, value in ((style.places[4], _YI), (style.places[3], _WAN)):
        if big in s:
            left, _, right = s.partition(big)
            if not left:
                raise NotAnAmount(f"{original!r}: {big} without a number before it")
            hi = _parse_big(left, style, digit_of, place_of, original)
            if hi >= value and value == _WAN:
                raise NotAnAmount(f"{original!r}: malformed number")
            zero = style.digits[0]
            if not right:
                lo = 0
            elif right.startswith(zero):
                lo = _parse_big(right.lstrip(zero), style, digit_of, place_of, original)
            elif len(right) == 1 and right in digit_of:
                lo = digit_of[right] * value // 10  # 三万五 = 35000
            else:
                lo = _parse_big(right, style, digit_of, place_of, original)
            if lo >= value:
                raise NotAnAmount(f"{original!r}: malformed number")
            return hi * value + lo
    return _parse_small(s, style, digit_of, place_of, original)


def _parse_small(s: str, style: NumberStyle, digit_of: dict[str, int], place_of: dict[str, int], original: str) -> int:
    """0..9999 from digits, 十/百/千 and zeros."""
    total = 0
    pending: int | None = None
    last_place = 10_000
    after_zero = False
    for ch in s:
        if ch in digit_of:
            d = digit_of[ch]
            if d == 0:
                if pending is not None:
                    raise NotAnAmount(f"{original!r}: malformed number")
                after_zero = True
                continue
            if pending is not None:
                raise NotAnAmount(f"{original!r}: malformed number")
            pending = d
        elif ch in place_of:
            p = place_of[ch]
            if p >= last_place or p > _THOUSAND:
                raise NotAnAmount(f"{original!r}: malformed number")
            if pending is None:
                if p == _TEN and total == 0 and not after_zero:
                    pending = 1  # 十五
                elif p == _TEN and after_zero:
                    pending = 1  # 一百零十 is unusual but unambiguous
                else:
                    raise NotAnAmount(f"{original!r}: {ch} without a digit")
            total += pending * p
            pending = None
            last_place = p
            after_zero = False
        else:
            raise NotAnAmount(f"{original!r}: {ch!r} is not a numeral")
    if pending is not None:
        if last_place == 10_000 or after_zero or last_place == _TEN:
            total += pending
        else:
            total += pending * last_place // 10  # 一千二 = 1200, 两百五 = 250
    if total == 0 and not s:
        raise NotAnAmount(f"{original!r}: empty number")
    return total


def parse_digits(text: str, style: NumberStyle) -> str:
    """A digit string spoken or typed one digit at a time -> ASCII digits.

    幺三八零零幺三八零零 -> ``"1380013800"``: leading zeros are kept and no place
    value is applied. Arabic and full-width digits, spaces, dashes and punctuation
    between digits are accepted.

    Raises:
        NotDigits: the text holds anything but digits (for instance place words).
    """
    t = unicodedata.normalize("NFKC", text).translate(_FULLWIDTH)
    t = style.canonical(t)
    digit_of = {c: str(i) for i, c in enumerate(style.digits)}
    out = []
    for ch in t:
        if ch.isascii() and ch.isdigit():
            out.append(ch)
        elif ch in digit_of:
            out.append(digit_of[ch])
        elif ch.isspace() or unicodedata.category(ch)[0] in "PZ":
            continue
        else:
            raise NotDigits(f"{text!r}: {ch!r} is not a digit")
    if not out:
        raise NotDigits(f"{text!r}: no digits")
    return "".join(out)
