"""A stand-in for the locale packs, reading the test YAML files in ``tests/ui/data``.

TEST DATA ONLY. It implements the presenter's ``Pack`` protocol (``id``, ``label``,
``render``) and the runtime's :class:`~assistant.kiosk.PackSource`, with just
enough number speaking that the runtime's "no digits reach TTS" guard holds. The
screen audit uses it until the real packs (``assistant.locale``) are on main; then
``ui.samples.default_packs`` switches to them in one line.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from assistant.kiosk import PackSource
from assistant.messages import Amount, Count, Digits, Masked, Seconds

DATA = Path(__file__).resolve().parent / "data"

_DIGIT_WORDS = "零一二三四五六七八九"


def _number_words(n: int) -> str:
    """Chinese words for 0 <= n < 100 000 000 (plain counting form)."""
    if n == 0:
        return "零"
    units = ["", "十", "百", "千"]
    out = ""
    for group, big in ((n // 10_000, "万"), (n % 10_000, "")):
        if not group:
            if out and not out.endswith("零"):
                out += "零"
            continue
        digits = f"{group:04d}" if out else str(group)
        part = ""
        for i, ch in enumerate(digits):
            d = int(ch)
            place = len(digits) - 1 - i
            if d == 0:
                if part and not part.endswith("零"):
                    part += "零"
                continue
            part += _DIGIT_WORDS[d] + units[place]
        out += part.rstrip("零") + big
    if out.startswith("一十"):
        out = out[1:]
    return out


def money_words(fen: int) -> str:
    """一百二十三元四角五分 style money words."""
    yuan, rest = divmod(abs(fen), 100)
    jiao, fen_ = divmod(rest, 10)
    words = ("负" if fen < 0 else "") + (_number_words(yuan) + "元" if yuan or not rest else "")
    if jiao:
        words += _DIGIT_WORDS[jiao] + "角"
    if fen_:
        words += ("零" if yuan and not jiao else "") + _DIGIT_WORDS[fen_] + "分"
    return words


@dataclass(frozen=True)
class Rendered:
    """A prompt for both channels."""

    speech: str
    display: str


class StandInPack:
    """One test pack (with the base pack it extends)."""

    def __init__(self, data: dict[str, Any], parent: StandInPack | None = None) -> None:
        self.id: str = data["id"]
        self.voice: str = data.get("voice", "cmn-latn-pinyin")
        self.rate: int = int(data.get("rate", 150))
        self.parent = parent
        self.prompts: dict[str, str] = dict(data.get("prompts") or {})
        self.labels: dict[str, str] = dict(data.get("labels") or {})

    def label(self, label_id: str) -> str:
        """A short on-screen text."""
        if label_id in self.labels:
            return self.labels[label_id]
        if self.parent is not None:
            return self.parent.label(label_id)
        raise KeyError(f"{self.id}: no label {label_id!r}")

    def _template(self, prompt_id: str) -> str:
        if prompt_id in self.prompts:
            return self.prompts[prompt_id]
        if self.parent is not None:
            return self.parent._template(prompt_id)
        raise KeyError(f"{self.id}: no prompt {prompt_id!r}")

    def render(self, prompt_id: str, slots: Mapping[str, Any]) -> Rendered:
        """A prompt with its slots filled, for speech and for display."""
        template = self._template(prompt_id)
        names = [f for _, f, _, _ in string.Formatter().parse(template) if f]
        speech = template.format(**{n: self._speak(slots.get(n, "")) for n in names})
        display = template.format(**{n: self._show(slots.get(n, "")) for n in names})
        return Rendered(speech, display)

    def _speak(self, value: Any) -> str:
        if isinstance(value, Amount):
            return money_words(value.fen)
        if isinstance(value, Digits):
            return "".join(_DIGIT_WORDS[int(c)] if c.isdigit() else "" for c in value.text)
        if isinstance(value, Masked):
            return "".join(_DIGIT_WORDS[int(c)] if c.isdigit() else c for c in value.spoken)
        if isinstance(value, (Count, Seconds)):
            return _number_words(value.value)
        if isinstance(value, str) and value and value in self._all_prompts():
            return self.render(value, {}).speech
        return str(value)

    def _show(self, value: Any) -> str:
        if isinstance(value, Amount):
            sign = "-" if value.fen < 0 else ""
            return f"{sign}¥{abs(value.fen) // 100}.{abs(value.fen) % 100:02d}"
        if isinstance(value, Digits):
            return value.text
        if isinstance(value, Masked):
            return value.display
        if isinstance(value, (Count, Seconds)):
            return str(value.value)
        if isinstance(value, str) and value and value in self._all_prompts():
            return self.render(value, {}).display
        return str(value)

    def _all_prompts(self) -> set[str]:
        names = set(self.prompts)
        if self.parent is not None:
            names |= self.parent._all_prompts()
        return names


class StandInPacks(PackSource):
    """Every test pack in a folder, by id."""

    def __init__(self, folder: Path = DATA, default: str = "zh-CN") -> None:
        raw = {}
        for path in sorted(folder.glob("*.yaml")):
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
            raw[data["id"]] = data
        self.packs: dict[str, StandInPack] = {}
        for pid in raw:
            self._load(pid, raw)
        self.default = default

    def _load(self, pid: str, raw: dict[str, Any]) -> StandInPack:
        if pid not in self.packs:
            parent_id = raw[pid].get("extends")
            parent = self._load(parent_id, raw) if parent_id else None
            self.packs[pid] = StandInPack(raw[pid], parent)
        return self.packs[pid]

    @property
    def ids(self) -> tuple[str, ...]:
        """Pack ids, the default first."""
        return (self.default, *sorted(p for p in self.packs if p != self.default))

    def get(self, pack_id: str) -> StandInPack:
        """A pack by id."""
        return self.packs[pack_id]

    def voice(self, pack_id: str) -> tuple[str, int]:
        """The pack's TTS voice id and speech rate."""
        pack = self.packs[pack_id]
        return pack.voice, pack.rate
