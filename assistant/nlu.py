"""Understanding what the customer said: locale-pack sentences matched with hassil.

:func:`understand` (or :class:`Understander`) turns a transcript into an
:class:`IntentMatch` restricted to the intents the dialog expects in its current
state. Matching happens in two stages:

1. **Templates.** The pack's hassil templates, with the spaces a recogniser puts
   between Chinese words ignored and Traditional characters (as Whisper often
   writes them) folded to Simplified. Slot values are checked: ``amount`` goes
   through :func:`speech.numbers.parse_money` (an approximate amount is surfaced as
   ``problem = "amount_ambiguous"``, never guessed), ``digits`` through
   :func:`speech.numbers.parse_digits`; a wildcard that does not parse is not a match.
2. **Pinyin fallback.** Chinese recognition errors are mostly homophones (角费 for
   缴费), so when no template matches, the transcript and every expanded template
   sentence are compared as toneless pinyin syllables (with the usual accent
   confusions zh/z, ch/c, sh/s, n/l, -ng/-n counted as near misses). The best
   sentence above the threshold wins and is re-matched to get its slots.

:func:`grammar_sentences` expands the templates into concrete sentences (wildcards
filled with the pack's samples) with the ``file:line`` of each template, for the
speech recogniser's grammar and for the vocabulary check (:func:`missing_words`).
"""

from __future__ import annotations

import abc
import itertools
import logging
import re
import threading
import unicodedata
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from assistant.errors import AmbiguousAmount, NotAnAmount, NotDigits
from assistant.locale import LocalePack
from speech.numbers import parse_digits, parse_money

log = logging.getLogger(__name__)

DEFAULT_THRESHOLD = 0.8
"""Minimum pinyin similarity (0..1) for the fallback to accept a sentence."""

MAX_SENTENCES_PER_TEMPLATE = 2000
"""Expansion cap per template (a template with many optional parts explodes)."""

AMOUNT_SLOT = "amount"
DIGITS_SLOT = "digits"

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")
_WILDCARD_TOKEN = "<{}>"


@dataclass(frozen=True)
class IntentMatch:
    """What the customer meant."""

    intent: str
    """Intent name (an ``assistant.prompts.Intent`` value)."""
    slots: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """Slot values: ``amount`` in fen (int), ``digits`` as ASCII digits, ``method``
    (cash/card/ewallet), ``pack`` (a pack id)."""
    score: float = 1.0
    """1.0 for a template match; the pinyin similarity for a fallback match."""
    method: str = "template"
    """``template`` or ``pinyin``."""
    problem: str = ""
    """Prompt id to say when a slot could not be used (``amount_ambiguous``)."""
    template: str = ""
    """The sentence template that matched."""
    source: str = ""
    """``file:line`` of that template."""


# ===================================================================== text helpers

_converter_lock = threading.Lock()
_converter: Any = None


def to_simplified(text: str) -> str:
    """Fold Traditional characters to Simplified (OpenCC ``t2s``); unchanged if unavailable."""
    global _converter
    with _converter_lock:
        if _converter is None:
            try:
                import opencc

                _converter = opencc.OpenCC("t2s")
            except ImportError:  # pragma: no cover - opencc is a core dependency
                log.warning("opencc is not installed; Traditional characters will not be folded")
                _converter = False
        conv = _converter
    return conv.convert(text) if conv else text


def normalise_transcript(text: str) -> str:
    """Width, Traditional -> Simplified, and trimmed whitespace."""
    return to_simplified(unicodedata.normalize("NFKC", text)).strip()


# ===================================================================== pinyin

_INITIAL_FOLD = (("zh", "z"), ("ch", "c"), ("sh", "s"), ("l", "n"))
_FINAL_FOLD = (("ang", "an"), ("eng", "en"), ("ing", "in"))


@lru_cache(maxsize=4096)
def _fold(syllable: str) -> str:
    """A syllable with common accent confusions folded together."""
    s = syllable
    for a, b in _INITIAL_FOLD:
        if s.startswith(a):
            s = b + s[len(a) :]
            break
    for a, b in _FINAL_FOLD:
        if s.endswith(a):
            s = s[: -len(a)] + b
            break
    return s


def _syllables(text: str) -> list[str]:
    """Toneless pinyin of each CJK character; other letters/digits kept as tokens."""
    from pypinyin import Style, lazy_pinyin

    out: list[str] = []
    for chunk in re.findall(r"<\w+>|[\u3400-\u4dbf\u4e00-\u9fff]+|[A-Za-z]+|\d", text):
        if chunk.startswith("<"):
            out.append(chunk)
        elif _CJK.match(chunk):
            out.extend(lazy_pinyin(chunk, style=Style.NORMAL))
        else:
            out.append(chunk.lower())
    return out


def _sub_cost(a: str, b: str) -> float:
    if a == b:
        return 0.0
    if a.startswith("<") or b.startswith("<"):
        return 1.0
    return 0.3 if _fold(a) == _fold(b) else 1.0


def similarity(a: list[str], b: list[str]) -> float:
    """1 - weighted edit distance / longer length, over syllables."""
    if not a or not b:
        return 0.0
    prev = [float(j) for j in range(len(b) + 1)]
    for i in range(1, len(a) + 1):
        cur = [float(i)] + [0.0] * len(b)
        for j in range(1, len(b) + 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + _sub_cost(a[i - 1], b[j - 1]))
        prev = cur
    return max(0.0, 1.0 - prev[-1] / max(len(a), len(b)))


# ===================================================================== expansion


def _wildcards(pack: LocalePack) -> dict[str, list[str]]:
    """Wildcard list name -> its samples."""
    out = {}
    for name, body in pack.common.get("lists", {}).items():
        if isinstance(body, Mapping) and body.get("wildcard"):
            out[str(name)] = [str(s) for s in body.get("samples", [])]
    return out


def _expand(pack: LocalePack, intents: Iterable[str] | None) -> list[tuple[str, str, str, str]]:
    """(intent, template, sentence with {wildcards} left in, source) for every template."""
    from hassil import sample_expression

    hi = pack.intents
    wanted = set(intents) if intents is not None else None
    out: list[tuple[str, str, str, str]] = []
    for name, intent in hi.intents.items():
        if wanted is not None and name not in wanted:
            continue
        for data in intent.data:
            lists = {**hi.slot_lists, **data.slot_lists}
            rules = {**hi.expansion_rules, **data.expansion_rules}
            for sentence in data.sentences:
                src = pack.template_sources.get((name, sentence.text))
                source = str(src) if src else ""
                seen: set[str] = set()
                for text in itertools.islice(
                    sample_expression(sentence.expression, lists, rules, expand_ranges=False),
                    MAX_SENTENCES_PER_TEMPLATE,
                ):
                    text = re.sub(r"\s+", "", text)
                    if text and text not in seen:
                        seen.add(text)
                        out.append((name, str(sentence.text), text, source))
    return out


def grammar_sentences(pack: LocalePack, intents: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """Concrete sentences for the recogniser's grammar, each with its template's ``file:line``.

    Wildcards (``{amount}``, ``{digits}``) are filled with each of the list's
    ``samples``. Only the given intents (all when None).
    """
    samples = _wildcards(pack)
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for _intent, _template, text, source in _expand(pack, intents):
        names = re.findall(r"\{(\w+)\}", text)
        if not names:
            fills: Iterable[tuple[str, ...]] = [()]
        else:
            fills = itertools.product(*(samples.get(n, [""]) for n in names))
        for fill in fills:
            concrete = text
            for n, value in zip(names, fill, strict=True):
                concrete = concrete.replace("{" + n + "}", value, 1)
            if concrete and concrete not in seen:
                seen.add(concrete)
                out.append((concrete, source))
    return out


# ===================================================================== vocabulary


class Vocabulary(Protocol):
    """The words a speech recogniser knows (e.g. a Vosk model's ``words.txt``)."""

    def __contains__(self, word: object) -> bool: ...


class WordList:
    """A :class:`Vocabulary` from an iterable of words or a ``words.txt`` file."""

    def __init__(self, words: Iterable[str]) -> None:
        self.words = {w for w in words if w}
        self.longest = max((len(w) for w in self.words), default=1)

    @classmethod
    def from_file(cls, path: Path) -> WordList:
        """One word per line (a Kaldi/Vosk ``words.txt``: ``word id``)."""
        from assistant.errors import LocaleError

        try:
            text = Path(path).read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise LocaleError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        words = []
        for line in text.splitlines():
            parts = line.split()
            if parts and not parts[0].startswith(("<", "#", "[")):
                words.append(parts[0])
        return cls(words)

    def __contains__(self, word: object) -> bool:
        return word in self.words


def segment(sentence: str, vocab: Vocabulary, longest: int = 8) -> list[str] | None:
    """Split a sentence into vocabulary words (fewest words); None if impossible."""
    words, missing = _segment(sentence, vocab, longest)
    return None if missing else words


def missing_words(sentence: str, vocab: Vocabulary, longest: int = 8) -> list[str]:
    """The parts of ``sentence`` no vocabulary word covers (empty when all is covered)."""
    return _segment(sentence, vocab, longest)[1]


def _segment(sentence: str, vocab: Vocabulary, longest: int) -> tuple[list[str], list[str]]:
    text = re.sub(r"\s+", "", sentence)
    longest = getattr(vocab, "longest", longest)
    n = len(text)
    inf = (10**9, 10**9)
    # best[i] = (uncovered chars, words) for text[:i]
    best: list[tuple[int, int]] = [inf] * (n + 1)
    back: list[tuple[int, bool]] = [(0, False)] * (n + 1)
    best[0] = (0, 0)
    for i in range(n):
        if best[i] == inf:
            continue
        u, w = best[i]
        cand = (u + 1, w + 1)  # leave one character uncovered
        if cand < best[i + 1]:
            best[i + 1], back[i + 1] = cand, (i, False)
        for j in range(i + 1, min(n, i + longest) + 1):
            if text[i:j] in vocab:
                cand = (u, w + 1)
                if cand < best[j]:
                    best[j], back[j] = cand, (i, True)
    words: list[str] = []
    missing: list[str] = []
    pending = ""
    j = n
    pieces: list[tuple[str, bool]] = []
    while j > 0:
        i, ok = back[j]
        pieces.append((text[i:j], ok))
        j = i
    for piece, ok in reversed(pieces):
        if ok:
            if pending:
                missing.append(pending)
                pending = ""
            words.append(piece)
        else:
            pending += piece
    if pending:
        missing.append(pending)
    return words, missing


# ===================================================================== matching


@dataclass
class _Candidate:
    intent: str
    tokens: list[str]
    text: str
    template: str
    source: str


class Understanding(abc.ABC):
    """Turns a transcript into an intent, restricted to what the current state expects."""

    @abc.abstractmethod
    def match(self, text: str, expected: Iterable[str], pack_id: str | None = None) -> IntentMatch | None:
        """The best intent among ``expected`` for ``text`` in pack ``pack_id`` (None: default), or None."""


class PackUnderstanding(Understanding):
    """Understanding over the locale registry: one :class:`Understander` per pack, built on first use.

    Args:
        registry: the locale packs (reloads replace the packs; matchers are rebuilt).
        threshold: minimum pinyin similarity for the fallback.
    """

    def __init__(self, registry: Any, threshold: float = DEFAULT_THRESHOLD) -> None:
        self.registry = registry
        self.threshold = threshold
        self._by_pack: dict[str, tuple[Any, Understander]] = {}

    def understander(self, pack_id: str | None = None) -> Understander:
        """The matcher for a pack (rebuilt when the pack object changed after a reload)."""
        pack = self.registry.get(pack_id)
        cached = self._by_pack.get(pack.id)
        if cached is None or cached[0] is not pack:
            cached = (pack, Understander(pack, self.threshold))
            self._by_pack[pack.id] = cached
        return cached[1]

    def match(self, text: str, expected: Iterable[str], pack_id: str | None = None) -> IntentMatch | None:
        return self.understander(pack_id).match(text, expected)


class Understander:
    """Matches transcripts against one pack (built once per pack; thread-safe).

    Args:
        pack: the locale pack.
        threshold: minimum pinyin similarity for the fallback (0..1).
    """

    def __init__(self, pack: LocalePack, threshold: float = DEFAULT_THRESHOLD) -> None:
        self.pack = pack
        self.threshold = threshold
        self._filtered: dict[frozenset[str], Any] = {}
        self._candidates: list[_Candidate] | None = None
        self._lock = threading.Lock()
        style = pack.number_style
        chars = set(style.digits) | set(style.places) | set(style.liang) | set(style.digit_one) | set(style.half)
        for word in (*style.yuan, *style.jiao, *style.fen, *style.aliases, *style.filler):
            chars |= set(word)
        chars |= set("0123456789.¥")
        self._number_chars = chars
        self.skip_words = [str(w) for w in pack.common.get("skip_words", [])]

    # -- public -----------------------------------------------------------------------
    def match(self, text: str, expected: Iterable[str] | None = None) -> IntentMatch | None:
        """The best match for ``text`` among ``expected`` intents (all when None)."""
        expected_list = [str(e) for e in expected] if expected is not None else list(self.pack.intent_data)
        known = [e for e in expected_list if e in self.pack.intent_data]
        if not known:
            return None
        text = normalise_transcript(text)
        if not text:
            return None
        found = self._template_match(text, known)
        if found is not None:
            return found
        return self._pinyin_match(text, known)

    # -- stage 1: hassil templates -------------------------------------------------------
    def _intents_for(self, names: list[str]) -> Any:
        key = frozenset(names)
        with self._lock:
            cached = self._filtered.get(key)
            if cached is None:
                from hassil import Intents

                full = self.pack.intents
                cached = Intents(
                    language=full.language,
                    intents={n: full.intents[n] for n in names if n in full.intents},
                    slot_lists=full.slot_lists,
                    expansion_rules=full.expansion_rules,
                    skip_words=full.skip_words,
                    settings=full.settings,
                )
                self._filtered[key] = cached
            return cached

    def _template_match(self, text: str, names: list[str], limit: int = 64) -> IntentMatch | None:
        from hassil import recognize_all

        intents = self._intents_for(names)
        order = {n: i for i, n in enumerate(names)}
        best: tuple[tuple[Any, ...], IntentMatch] | None = None
        try:
            results = list(itertools.islice(recognize_all(text, intents), limit))
        except Exception as exc:  # hassil raises plain errors on odd input; treat as no match
            log.debug("hassil failed on %r: %s", text, exc)
            return None
        for result in results:
            slots, problem, ok = self._slots(result.entities)
            if not ok:
                continue
            wildcards = sum(1 for e in result.entities.values() if e.is_wildcard)
            template = result.intent_sentence.text if result.intent_sentence else ""
            src = self.pack.template_sources.get((result.intent.name, template))
            match = IntentMatch(
                intent=result.intent.name,
                slots=MappingProxyType(slots),
                score=1.0,
                method="template",
                problem=problem,
                template=template,
                source=str(src) if src else "",
            )
            rank = (bool(problem), wildcards, -result.text_chunks_matched, order.get(result.intent.name, 99))
            if best is None or rank < best[0]:
                best = (rank, match)
        return best[1] if best else None

    def _slots(self, entities: Mapping[str, Any]) -> tuple[dict[str, Any], str, bool]:
        """Parse slot values; (slots, problem prompt id, usable)."""
        style = self.pack.number_style
        slots: dict[str, Any] = {}
        problem = ""
        for name, entity in entities.items():
            value = entity.value
            if name == AMOUNT_SLOT:
                try:
                    slots[name] = parse_money(str(entity.text if entity.is_wildcard else value), style)
                except AmbiguousAmount as exc:
                    slots[name] = None
                    problem = exc.prompt_id
                except NotAnAmount:
                    return {}, "", False
            elif name == DIGITS_SLOT:
                try:
                    slots[name] = parse_digits(str(entity.text if entity.is_wildcard else value), style)
                except NotDigits:
                    return {}, "", False
            else:
                if entity.is_wildcard:
                    return {}, "", False  # an unknown wildcard cannot be checked
                slots[name] = str(value) if value is not None else None
        return slots, problem, True

    # -- stage 2: pinyin fallback ---------------------------------------------------------
    def candidates(self) -> list[_Candidate]:
        """Every expanded template sentence with its syllables (built once)."""
        with self._lock:
            if self._candidates is None:
                cands = []
                for intent, template, text, source in _expand(self.pack, None):
                    marked = re.sub(r"\{(\w+)\}", lambda m: _WILDCARD_TOKEN.format(m.group(1)), text)
                    cands.append(_Candidate(intent, _syllables(marked), text, template, source))
                self._candidates = cands
            return self._candidates

    def _strip_skip_words(self, text: str) -> str:
        for word in sorted(self.skip_words, key=len, reverse=True):
            text = text.replace(word, "")
        return text

    def _number_span(self, text: str) -> tuple[int, int] | None:
        """The longest run of number characters (an amount or digit string)."""
        best = None
        for m in re.finditer("[" + re.escape("".join(sorted(self._number_chars))) + "]+", text):
            if best is None or (m.end() - m.start()) > (best[1] - best[0]):
                best = (m.start(), m.end())
        return best

    def _pinyin_match(self, text: str, names: list[str]) -> IntentMatch | None:
        plain = self._strip_skip_words(re.sub(r"[\s\W_]+", "", text))
        if not plain:
            return None
        raw_tokens = _syllables(plain)
        span = self._number_span(plain)
        wanted = set(names)
        best: tuple[float, _Candidate, str] | None = None
        for cand in self.candidates():
            if cand.intent not in wanted:
                continue
            wild = re.search(r"<(\w+)>", " ".join(cand.tokens))
            if wild:
                if span is None:
                    continue
                token = _WILDCARD_TOKEN.format(wild.group(1))
                tokens = _syllables(plain[: span[0]]) + [token] + _syllables(plain[span[1] :])
            else:
                tokens = raw_tokens
            longer = max(len(tokens), len(cand.tokens))
            if abs(len(tokens) - len(cand.tokens)) > (1 - self.threshold) * longer:
                continue
            score = similarity(tokens, cand.tokens)
            if score >= self.threshold and (best is None or score > best[0]):
                concrete = cand.text
                if wild and span is not None:
                    concrete = re.sub(r"\{\w+\}", lambda _m: plain[span[0] : span[1]], concrete, count=1)
                best = (score, cand, concrete)
        if best is None:
            return None
        score, cand, concrete = best
        exact = self._template_match(concrete, [cand.intent])
        if exact is None:
            return None
        return IntentMatch(
            intent=exact.intent,
            slots=exact.slots,
            score=round(score, 3),
            method="pinyin",
            problem=exact.problem,
            template=cand.template,
            source=cand.source,
        )


_cache: weakref.WeakKeyDictionary[LocalePack, Understander] = weakref.WeakKeyDictionary()
_cache_lock = threading.Lock()


def understander(pack: LocalePack) -> Understander:
    """The (cached) :class:`Understander` for a pack."""
    with _cache_lock:
        u = _cache.get(pack)
        if u is None:
            u = Understander(pack)
            _cache[pack] = u
        return u


def understand(pack: LocalePack, text: str, expected: Iterable[str] | None = None) -> IntentMatch | None:
    """What ``text`` means in ``pack``, among the ``expected`` intents (all when None)."""
    return understander(pack).match(text, expected)
