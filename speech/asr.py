"""Speech recognition: the ``Transcriber`` role with Vosk and faster-whisper backends.

* :class:`VoskTranscriber` (default) streams 16-bit audio at the microphone's true rate
  into Kaldi and is constrained per dialog state by a :class:`Grammar` built from the
  locale pack's sentences. Every grammar word is checked against the model's vocabulary
  when the grammar is built -- Vosk itself silently drops unknown words -- and Chinese
  sentences are segmented into the model's words first.
* :class:`WhisperTranscriber` (optional ``whisper`` extra) is segment-based: the listener's
  voice activity detector cuts an utterance, which is resampled to 16 kHz and decoded with
  an initial prompt made of the pack's domain words. Its output is converted to Simplified
  characters (Whisper sometimes writes Traditional ones for ``zh``) so that the amount
  parser sees the Simplified forms of kuai, wan and liang, not the Traditional ones.

:func:`choose_transcriber` picks the first backend in ``[asr] backends`` whose package and
model are present; when none is, the kiosk runs keypad-only and the choice carries the
reason.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import importlib.util
import json
import logging
import math
import os
import re
import struct
import threading
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assistant.errors import LocaleError, MissingPackageError, ModelError, SpeechError
from speech.audio import AudioClip, resample

log = logging.getLogger(__name__)

WHISPER_RATE = 16000
"""Whisper models take 16 kHz mono."""
UNK = "[unk]"
"""Vosk's out-of-grammar word (only where the model has it)."""

# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class AsrSection:
    """The ``[asr]`` config section: recogniser choice, models and endpointing."""

    backends: tuple[str, ...] = ("vosk", "whisper")
    """Backends in order of preference; the first whose package and model exist is used."""
    models_dir: str = "var/models"
    """Folder with one sub-folder per model id (relative to the project root)."""
    vosk_model: str = "vosk-model-small-cn-0.22"
    """Vosk model id."""
    whisper_model: str = "whisper-base"
    """faster-whisper (CTranslate2) model id."""
    language: str = "zh"
    """Language code passed to Whisper."""
    whisper_beam_size: int = 1
    """Beam size for Whisper (1 = greedy, fastest on two cores)."""
    whisper_threads: int = 2
    """CPU threads for Whisper."""
    whisper_compute_type: str = "int8"
    """CTranslate2 compute type."""
    whisper_prompt_chars: int = 160
    """At most this many characters of domain words in Whisper's initial prompt."""
    timeout_s: float = 20.0
    """Longest wait for one engine call before it counts as failed."""
    trailing_silence_ms: int = 1200
    """Silence that ends an utterance (Vosk's own rule is 500 ms: too short for elderly speakers)."""
    hesitation_silence_ms: int = 2200
    """Silence allowed after words that look unfinished (e.g. a number word)."""
    min_speech_ms: int = 200
    """Shorter sounds are noise."""
    max_utterance_s: float = 15.0
    """Cut an utterance after this long."""
    no_speech_reprompt_s: float = 8.0
    """After this much silence the dialog is told, to re-prompt gently (0 disables)."""
    vad_threshold_db: float = 12.0
    """Speech must be this far above the noise floor."""
    vad_min_dbfs: float = -50.0
    """Nothing quieter than this is speech."""
    preroll_ms: int = 300
    """Audio kept before the detected start of speech (segment-based backends)."""


# --------------------------------------------------------------------------- errors


class GrammarError(LocaleError):
    """A pack sentence uses a word the recognition model does not know.

    The message names the pack file and line, the sentence, and the missing characters.
    """

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = tuple(problems)


# --------------------------------------------------------------------------- vocabulary

_FST_MAGIC = 2125659606
_SYMTAB_MAGIC = 2125658996
_SPECIAL = {"<eps>", "<s>", "</s>", "#0", "<unk>"}


def _read_string(buf: memoryview, pos: int) -> tuple[str, int]:
    (n,) = struct.unpack_from("<i", buf, pos)
    pos += 4
    return bytes(buf[pos : pos + n]).decode("utf-8", "replace"), pos + n


def read_fst_symbols(path: Path) -> list[str]:
    """The words of the input symbol table embedded in an OpenFst binary (e.g. ``Gr.fst``).

    Layout (little endian): int32 magic, string fst type, string arc type, int32 version,
    int32 flags, uint64 properties, int64 start, int64 states, int64 arcs, then the input
    symbol table if ``flags & 1``. A symbol table is int32 magic, string name, int64
    available key, int64 size, then ``size`` pairs of (string symbol, int64 key).
    """
    with open(path, "rb") as f:
        head = f.read(4096)
        (magic,) = struct.unpack_from("<i", head, 0)
        if magic != _FST_MAGIC:
            raise ModelError(f"{path}: not an OpenFst binary (magic {magic})")
        mv = memoryview(head)
        _, pos = _read_string(mv, 4)
        _, pos = _read_string(mv, pos)
        _version, flags = struct.unpack_from("<ii", mv, pos)
        pos += 8 + 8 + 8 * 3
        if not flags & 1:
            raise ModelError(f"{path}: the FST carries no symbol table")
        f.seek(pos)
        (sym_magic,) = struct.unpack("<i", f.read(4))
        if sym_magic != _SYMTAB_MAGIC:
            raise ModelError(f"{path}: bad symbol table (magic {sym_magic})")
        (name_len,) = struct.unpack("<i", f.read(4))
        f.read(name_len)
        _available, size = struct.unpack("<qq", f.read(16))
        # Entries are short; read generously once and parse from memory.
        data = memoryview(f.read(size * 64 + 1024))
    words: list[str] = []
    p = 0
    for _ in range(size):
        if p + 4 > len(data):
            raise ModelError(f"{path}: symbol table truncated")
        (n,) = struct.unpack_from("<i", data, p)
        words.append(bytes(data[p + 4 : p + 4 + n]).decode("utf-8", "replace"))
        p += 4 + n + 8
    return words


class Vocabulary:
    """The words a recognition model can output.

    Args:
        words: every word of the model.
        source: where they were read from (for error messages).
    """

    def __init__(self, words: Iterable[str], source: str = "") -> None:
        self.words = frozenset(w for w in words if w and w not in _SPECIAL and not w.startswith("#"))
        self.source = source
        cjk = [len(w) for w in self.words if _segmentable(w)]
        self.max_len = min(max(cjk, default=1), 12)

    def __contains__(self, word: object) -> bool:
        return word in self.words

    def __len__(self) -> int:
        return len(self.words)

    @property
    def has_unk(self) -> bool:
        """True when the model has Vosk's ``[unk]`` word for out-of-grammar speech."""
        return UNK in self.words

    @classmethod
    def from_model(cls, model_dir: str | os.PathLike[str]) -> Vocabulary:
        """Read a Vosk model's vocabulary (``graph/words.txt`` if present, else ``graph/Gr.fst``).

        Parsed vocabularies are cached per file (the Korean model has ~500k words).
        """
        d = Path(model_dir)
        for candidate in (d / "graph" / "words.txt", d / "words.txt", d / "graph" / "Gr.fst"):
            if candidate.is_file():
                st = candidate.stat()
                return _load_vocabulary(str(candidate.resolve()), st.st_mtime_ns, st.st_size)
        raise ModelError(f"{d}: no graph/words.txt or graph/Gr.fst to read the vocabulary from")

    def segment(self, text: str) -> list[str] | None:
        """Split a run of characters into vocabulary words, or None if impossible.

        Chooses the segmentation with the fewest words (dynamic programming), breaking
        ties towards longer words first; unlike greedy forward maximum matching it finds
        a segmentation whenever one exists.
        """
        n = len(text)
        best: list[tuple[int, int] | None] = [None] * (n + 1)  # (word count, previous index)
        best[0] = (0, -1)
        for i in range(n):
            if best[i] is None:
                continue
            count = best[i][0]  # type: ignore[index]
            for j in range(min(n, i + self.max_len), i, -1):
                if text[i:j] in self.words:
                    cand = (count + 1, i)
                    if best[j] is None or cand[0] < best[j][0]:  # type: ignore[index]
                        best[j] = cand
        if best[n] is None:
            return None
        out: list[str] = []
        j = n
        while j > 0:
            i = best[j][1]  # type: ignore[index]
            out.append(text[i:j])
            j = i
        return out[::-1]

    def uncovered(self, text: str) -> list[str]:
        """Characters of ``text`` that no vocabulary word can cover (for error messages)."""
        covered = [False] * len(text)
        for i in range(len(text)):
            for j in range(i + 1, min(len(text), i + self.max_len) + 1):
                if text[i:j] in self.words:
                    for k in range(i, j):
                        covered[k] = True
        missing = [c for c, ok in zip(text, covered, strict=True) if not ok]
        return missing or [text]


@functools.lru_cache(maxsize=4)
def _load_vocabulary(path: str, _mtime: int, _size: int) -> Vocabulary:
    p = Path(path)
    if p.suffix == ".fst":
        words = read_fst_symbols(p)
    else:
        words = [line.split()[0] for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    log.debug("vocabulary: %d words from %s", len(words), p)
    return Vocabulary(words, str(p))


_SEGMENTABLE = "\u3400-\u9fff\uf900-\ufaff\uac00-\ud7af\u1100-\u11ff\u3130-\u318f"
"""Han and Hangul: scripts written without spaces between a model's words."""
_SEGMENTABLE_RUN = re.compile(f"[{_SEGMENTABLE}]+|[^{_SEGMENTABLE}]+")


def _segmentable(word: str) -> bool:
    return bool(word) and re.fullmatch(f"[{_SEGMENTABLE}]+", word) is not None


# --------------------------------------------------------------------------- grammar


def sentence_tokens(text: str) -> list[str]:
    """A pack sentence as tokens: punctuation removed, split at spaces and at CJK/other edges."""
    cleaned = "".join(" " if unicodedata.category(c).startswith(("P", "S")) else c for c in text)
    tokens: list[str] = []
    for part in cleaned.lower().split():
        # Split where Han/Hangul meets other letters, so "WiFi" followed by Hanzi becomes
        # two tokens.
        tokens.extend(m.group(0) for m in _SEGMENTABLE_RUN.finditer(part))
    return tokens


PROMPT_PHRASES_PER_SOURCE = 2
"""At most this many phrases of one intent file go into Whisper's prompt (variety, not volume)."""


@dataclass(frozen=True)
class Grammar:
    """What the recogniser may hear in one dialog state.

    ``phrases`` are model words joined by spaces (one entry per distinct sentence).
    """

    phrases: tuple[str, ...]
    """Sentences as space-separated model words, de-duplicated, in pack order."""
    include_unk: bool = False
    """Add ``[unk]`` so out-of-grammar speech does not get forced onto a phrase."""
    sources: tuple[str, ...] = field(default=(), compare=False)
    """Pack file:line of each phrase (same order)."""

    def to_json(self) -> str:
        """The Vosk grammar: a JSON list of phrases as real UTF-8 (no ``\\uXXXX`` escapes)."""
        items = list(self.phrases) + ([UNK] if self.include_unk else [])
        return json.dumps(items, ensure_ascii=False)

    @property
    def words(self) -> frozenset[str]:
        """Every distinct word in the grammar."""
        return frozenset(w for p in self.phrases for w in p.split())

    def domain_prompt(self, max_chars: int = 160) -> str:
        """Short, varied phrases (spaces removed for CJK) as one line for Whisper's initial prompt.

        The shortest phrase of each source file (one intent each) comes first, then the
        next shortest of each, and so on: a prompt made of one intent's long sample
        sentences (amounts, say) primes Whisper to repeat them, which is slow and wrong.
        """
        by_source: dict[str, list[str]] = {}
        sources = self.sources or ("",) * len(self.phrases)
        for p, src in zip(self.phrases, sources, strict=False):
            text = re.sub(r"(?<=[\u3400-\u9fff]) (?=[\u3400-\u9fff])", "", p)
            group = by_source.setdefault(src.rsplit(":", 1)[0], [])
            if text not in group:
                group.append(text)
        queues = [sorted(g, key=len) for g in by_source.values()]
        ordered: list[str] = []
        for rank in range(min(PROMPT_PHRASES_PER_SOURCE, max((len(q) for q in queues), default=0))):
            for q in queues:
                if rank < len(q) and q[rank] not in ordered:
                    ordered.append(q[rank])
        out = ""
        for text in ordered:
            # U+3001 (ideographic comma) is how a list of Chinese words is written, which
            # keeps Whisper in Simplified Chinese rather than switching script.
            nxt = f"{out}\u3001{text}" if out else text
            if len(nxt) > max_chars:
                continue
            out = nxt
        return out


def build_grammar(
    sentences: Iterable[tuple[str, str]],
    vocabulary: Vocabulary | None = None,
    model_id: str = "",
) -> Grammar:
    """Turn pack sentences into a :class:`Grammar`, checking every word against the model.

    Args:
        sentences: ``(sentence, source)`` pairs; ``source`` is the pack file and line
            (``"locales/zh-CN/intents/Pay.yaml:12"``) named in errors.
        vocabulary: the model's words; None skips the check (open-vocabulary engines).
        model_id: named in error messages.

    Raises:
        GrammarError: listing every sentence with a word (or characters) the model lacks.
    """
    phrases: list[str] = []
    sources: list[str] = []
    problems: list[str] = []
    for sentence, source in sentences:
        words: list[str] = []
        missing: list[str] = []
        for token in sentence_tokens(sentence):
            if vocabulary is None or token in vocabulary:
                words.append(token)
                continue
            parts = vocabulary.segment(token) if _segmentable(token) else None
            if parts is None:
                missing.extend(vocabulary.uncovered(token) if _segmentable(token) else [token])
                continue
            words.extend(parts)
        if missing:
            problems.append(
                f"{source}: sentence {sentence!r}: "
                + ", ".join(repr(m) for m in dict.fromkeys(missing))
                + f" not in the vocabulary of ASR model {model_id or vocabulary.source}"  # type: ignore[union-attr]
            )
            continue
        if not words:
            continue
        phrase = " ".join(words)
        if phrase not in phrases:
            phrases.append(phrase)
            sources.append(source)
    if problems:
        raise GrammarError(problems)
    include_unk = vocabulary is not None and vocabulary.has_unk
    return Grammar(tuple(phrases), include_unk, tuple(sources))


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Transcript:
    """What a recogniser heard in one utterance."""

    text: str
    """Words as recognised (Vosk: space-separated model words), ``[unk]`` removed."""
    confidence: float
    """0..1: mean word confidence (Vosk) or exp(mean log-probability) (Whisper)."""
    unknown: bool = False
    """True when out-of-grammar speech (``[unk]``) was heard."""


_DIGIT_PUNCT = re.compile(r"(?<=\d)[.,](?=\d)")


def clean_transcript(text: str, converter: Callable[[str], str] | None = None) -> str:
    """Simplified characters, punctuation removed (a '.' or ',' between digits is kept)."""
    if converter is not None:
        text = converter(text)
    keep = {m.start() for m in _DIGIT_PUNCT.finditer(text)}
    out = []
    for i, c in enumerate(text):
        if i in keep or not unicodedata.category(c).startswith("P"):
            out.append(c)
        else:
            out.append(" ")
    return " ".join("".join(out).split())


# --------------------------------------------------------------------------- role


class TranscriberStream(ABC):
    """One listening turn: audio in, partial text out, a transcript at the end."""

    @abstractmethod
    async def accept(self, samples: np.ndarray) -> str:
        """Feed mono int16 samples; returns the words heard so far in this turn ("" if none)."""

    @abstractmethod
    def mark_start(self) -> None:
        """Speech has just started: forget what was decoded from the silence before it."""

    @abstractmethod
    async def finish(self) -> Transcript:
        """The utterance is over: the final transcript; the stream is ready for the next one."""

    @abstractmethod
    def reset(self) -> None:
        """Drop everything heard so far (the microphone was gated, or the state changed)."""


class Transcriber(ABC):
    """The speech-recognition role. Backends: :class:`VoskTranscriber`, :class:`WhisperTranscriber`."""

    name: str = ""
    """Backend name as written in ``[asr] backends``."""
    supports_streaming: bool = False
    """True when partial results arrive while the customer speaks."""
    model_id: str = ""
    """The model folder's id."""

    @abstractmethod
    def build_grammar(self, sentences: Iterable[tuple[str, str]]) -> Grammar:
        """A grammar for this engine from ``(sentence, "file:line")`` pairs.

        Raises:
            GrammarError: a sentence has a word the model lacks.
        """

    @abstractmethod
    def open_stream(self, rate: int, grammar: Grammar | None = None) -> TranscriberStream:
        """Start a listening turn for audio at ``rate`` Hz constrained by ``grammar``."""

    async def transcribe(self, clip: AudioClip, grammar: Grammar | None = None) -> Transcript:
        """Recognise a whole recording as one utterance."""
        mono = clip.mono()
        stream = self.open_stream(mono.rate, grammar)
        stream.mark_start()
        step = max(1, mono.rate // 10)
        for chunk in mono.chunks(step):
            await stream.accept(chunk[:, 0])
        return await stream.finish()

    def close(self) -> None:  # noqa: B027 -- optional hook, most engines hold nothing to release
        """Release the model."""


async def _call(fn: Callable[..., object], *args: object, limit: float) -> object:
    """Run a blocking engine call in a thread, giving up after ``limit`` seconds."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(fn, *args), limit)
    except TimeoutError:
        raise SpeechError(f"speech recogniser did not answer within {limit:.0f} s") from None


# --------------------------------------------------------------------------- Vosk


def _import(module: str, extra: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingPackageError(module, extra) from None


class VoskTranscriber(Transcriber):
    """Kaldi through Vosk: streaming, grammar-constrained, at the microphone's true rate.

    Args:
        model_dir: the Vosk model folder.
        timeout: longest wait for one engine call.
    """

    name = "vosk"
    supports_streaming = True

    def __init__(self, model_dir: str | os.PathLike[str], timeout: float = 20.0) -> None:
        vosk = _import("vosk", "vosk")
        self.model_dir = Path(model_dir)
        self.model_id = self.model_dir.name
        if not (self.model_dir / "am").is_dir() and not (self.model_dir / "conf").is_dir():
            raise ModelError(f"{self.model_dir}: not a Vosk model folder")
        vosk.SetLogLevel(-1 if not log.isEnabledFor(logging.DEBUG) else 0)
        try:
            self._model = vosk.Model(str(self.model_dir))
        except Exception as exc:  # vosk raises a bare Exception on a broken model
            raise ModelError(f"{self.model_dir}: Vosk cannot load the model: {exc}") from None
        self._vosk = vosk
        self.timeout = timeout
        self._vocabulary: Vocabulary | None = None

    @property
    def vocabulary(self) -> Vocabulary:
        """The model's words (read once)."""
        if self._vocabulary is None:
            self._vocabulary = Vocabulary.from_model(self.model_dir)
        return self._vocabulary

    def has_word(self, word: str) -> bool:
        """Ask Vosk itself whether the model knows ``word``."""
        return self._model.vosk_model_find_word(word) >= 0

    def build_grammar(self, sentences: Iterable[tuple[str, str]]) -> Grammar:
        """Check and segment the sentences against this model's vocabulary."""
        return build_grammar(sentences, self.vocabulary, self.model_id)

    def _recognizer(self, rate: int, grammar_json: str | None):
        # A fresh recogniser per turn (a few ms): a reused one carries its speaker
        # adaptation over, which makes results depend on what was heard before.
        if grammar_json is None:
            rec = self._vosk.KaldiRecognizer(self._model, float(rate))
        else:
            rec = self._vosk.KaldiRecognizer(self._model, float(rate), grammar_json)
        rec.SetWords(True)
        return rec

    def open_stream(self, rate: int, grammar: Grammar | None = None) -> TranscriberStream:
        """A streaming turn; Vosk resamples from ``rate`` itself, so the true rate is passed."""
        grammar_json = grammar.to_json() if grammar is not None else None
        return _VoskStream(lambda: self._recognizer(rate, grammar_json), self.timeout)


def _vosk_transcript(results: list[dict]) -> Transcript:
    words: list[str] = []
    confs: list[float] = []
    unknown = False
    for res in results:
        for w in res.get("result", []):
            if w.get("word") == UNK:
                unknown = True
                continue
            words.append(w["word"])
            confs.append(float(w.get("conf", 1.0)))
        if not res.get("result") and res.get("text"):
            for w in res["text"].split():
                if w == UNK:
                    unknown = True
                else:
                    words.append(w)
                    confs.append(1.0)
    conf = float(np.mean(confs)) if confs else 0.0
    return Transcript(" ".join(words), conf, unknown)


class _VoskStream(TranscriberStream):
    """Vosk ends segments on its own 0.5 s rule; segments are collected until our endpoint."""

    def __init__(self, make: Callable[[], Any], timeout: float) -> None:
        self._make = make
        self._rec = make()
        self._timeout = timeout
        self._segments: list[dict] = []

    def _accept(self, pcm: bytes) -> str:
        if self._rec.AcceptWaveform(pcm):
            res = json.loads(self._rec.Result())
            if res.get("text"):
                self._segments.append(res)
            partial = ""
        else:
            partial = json.loads(self._rec.PartialResult()).get("partial", "")
        words = [s["text"] for s in self._segments] + ([partial] if partial else [])
        return " ".join(w for w in " ".join(words).split() if w != UNK)

    async def accept(self, samples: np.ndarray) -> str:
        """Feed samples; returns the words of this turn so far."""
        pcm = np.ascontiguousarray(samples, dtype="<i2").tobytes()
        return await _call(self._accept, pcm, limit=self._timeout)  # type: ignore[return-value]

    def mark_start(self) -> None:
        """Drop segments Vosk completed before speech began (noise forced onto the grammar)."""
        self._segments.clear()

    def _finish(self) -> Transcript:
        res = json.loads(self._rec.FinalResult())
        results = self._segments + ([res] if res.get("text") else [])
        self.reset()
        return _vosk_transcript(results)

    async def finish(self) -> Transcript:
        """The whole utterance, across Vosk's internal segments."""
        return await _call(self._finish, limit=self._timeout)  # type: ignore[return-value]

    def reset(self) -> None:
        """Forget everything: a fresh recogniser for the next turn."""
        self._segments = []
        self._rec = self._make()


# --------------------------------------------------------------------------- Whisper


MAX_TOKENS_PER_SECOND = 12
"""Upper bound on Whisper tokens per second of speech (Mandarin: about 4-6 characters)."""

MAX_NEW_TOKENS = 220
"""Whisper's context is 448 tokens; faster-whisper keeps at most 223 prompt tokens plus a
few task tokens, so a budget above this makes it refuse the decode (a ValueError) once a
recording is longer than about 36 s, or shorter with the domain prompt."""


class WhisperTranscriber(Transcriber):
    """faster-whisper: segment-based, behind the listener's voice activity detector.

    Args:
        model_dir: a CTranslate2 Whisper model folder (``model.bin``...).
        language: language code (``zh``).
        beam_size, cpu_threads, compute_type: decoding settings.
        prompt_chars: cap on the initial prompt built from the grammar's phrases.
        timeout: longest wait for one decode.
        preroll_ms: audio kept from before the detected start of speech.
    """

    name = "whisper"
    supports_streaming = False

    def __init__(
        self,
        model_dir: str | os.PathLike[str],
        language: str = "zh",
        beam_size: int = 1,
        cpu_threads: int = 2,
        compute_type: str = "int8",
        prompt_chars: int = 160,
        timeout: float = 20.0,
        preroll_ms: int = 300,
    ) -> None:
        fw = _import("faster_whisper", "whisper")
        opencc = _import("opencc", "whisper")
        self.model_dir = Path(model_dir)
        self.model_id = self.model_dir.name
        if not (self.model_dir / "model.bin").is_file():
            raise ModelError(f"{self.model_dir}: no model.bin (not a faster-whisper model)")
        try:
            self._model = fw.WhisperModel(
                str(self.model_dir), device="cpu", compute_type=compute_type, cpu_threads=cpu_threads
            )
        except Exception as exc:  # CTranslate2 raises RuntimeError/ValueError variously
            raise ModelError(f"{self.model_dir}: faster-whisper cannot load the model: {exc}") from None
        converter = opencc.OpenCC("t2s") if language.startswith("zh") else None
        self._convert = converter.convert if converter is not None else None
        self.language = language
        self.beam_size = beam_size
        self.prompt_chars = prompt_chars
        self.timeout = timeout
        self.preroll_ms = preroll_ms
        self._lock = threading.Lock()

    def build_grammar(self, sentences: Iterable[tuple[str, str]]) -> Grammar:
        """Whisper has an open vocabulary: phrases only feed the initial prompt."""
        return build_grammar(sentences, None, self.model_id)

    def open_stream(self, rate: int, grammar: Grammar | None = None) -> TranscriberStream:
        """A turn that buffers the utterance and decodes it at :meth:`~TranscriberStream.finish`."""
        prompt = grammar.domain_prompt(self.prompt_chars) if grammar else None
        return _WhisperStream(self, rate, prompt or None)

    def decode(self, audio16k: np.ndarray, prompt: str | None) -> Transcript:
        """Decode 16 kHz float32 mono audio (blocking; one decode at a time)."""
        with self._lock:
            # One greedy pass with a token budget for the audio's length: the default
            # temperature fallback re-decodes a hallucinating segment up to six times and
            # a repeating loop can run to the model's limit -- minutes on this hardware
            # for a one-word answer.
            seconds = len(audio16k) / 16000.0
            segments, _info = self._model.transcribe(
                audio16k,
                language=self.language,
                beam_size=self.beam_size,
                initial_prompt=prompt,
                condition_on_previous_text=False,
                vad_filter=False,
                temperature=0.0,
                without_timestamps=True,
                no_repeat_ngram_size=3,
                max_new_tokens=min(int(MAX_TOKENS_PER_SECOND * seconds) + 8, MAX_NEW_TOKENS),
            )
            segs = [s for s in segments if s.no_speech_prob < 0.6 or s.avg_logprob > -0.5]
        text = clean_transcript("".join(s.text for s in segs), self._convert)
        if not segs or not text:
            return Transcript("", 0.0)
        conf = float(np.mean([math.exp(min(0.0, s.avg_logprob)) for s in segs]))
        return Transcript(text, conf)


class _WhisperStream(TranscriberStream):
    def __init__(self, owner: WhisperTranscriber, rate: int, prompt: str | None) -> None:
        self._owner = owner
        self._rate = rate
        self._prompt = prompt
        self._preroll: list[np.ndarray] = []
        self._preroll_frames = rate * owner.preroll_ms // 1000
        self._speech: list[np.ndarray] | None = None

    async def accept(self, samples: np.ndarray) -> str:
        """Buffer audio (no partial results from a segment-based engine)."""
        a = np.asarray(samples, dtype=np.int16).reshape(-1)
        if self._speech is not None:
            self._speech.append(a)
        else:
            self._preroll.append(a)
            total = sum(len(x) for x in self._preroll)
            while self._preroll and total - len(self._preroll[0]) >= self._preroll_frames:
                total -= len(self._preroll.pop(0))
        return ""

    def mark_start(self) -> None:
        """Begin the segment with the pre-roll so the first syllable is not clipped."""
        self._speech = list(self._preroll)
        self._preroll = []

    async def finish(self) -> Transcript:
        """Resample the segment to 16 kHz and decode it."""
        parts = self._speech if self._speech is not None else self._preroll
        self._speech, self._preroll = None, []
        if not parts:
            return Transcript("", 0.0)
        audio = np.concatenate(parts)
        if self._rate != WHISPER_RATE:
            audio = resample(audio, self._rate, WHISPER_RATE)[:, 0]
        f32 = audio.astype(np.float32) / 32768.0
        return await _call(self._owner.decode, f32, self._prompt, limit=self._owner.timeout)  # type: ignore[return-value]

    def reset(self) -> None:
        """Drop the buffered audio."""
        self._speech, self._preroll = None, []


# --------------------------------------------------------------------------- factory


@dataclass(frozen=True)
class TranscriberChoice:
    """The outcome of :func:`choose_transcriber`."""

    transcriber: Transcriber | None
    """The backend to use, or None: the kiosk runs keypad-only."""
    reason: str
    """Why this backend (or none) was chosen, naming what was missing (for logs and staff)."""

    @property
    def keypad_only(self) -> bool:
        """True when no recogniser is available (the dialog then greets with a keys-only welcome)."""
        return self.transcriber is None


def _model_path(section: AsrSection, model_id: str, resolve: Callable[[str], Path]) -> Path:
    return resolve(section.models_dir) / model_id


def choose_transcriber(section: AsrSection, resolve: Callable[[str], Path] = Path) -> TranscriberChoice:
    """Load the first backend in ``section.backends`` whose package and model are present.

    Never raises for a missing package or model: each problem is collected into the
    reason, and with no usable backend the result is keypad-only.

    Args:
        section: the ``[asr]`` settings.
        resolve: turns config paths into absolute paths (``Config.resolve``).
    """
    skipped: list[str] = []
    for name in section.backends:
        try:
            if name == "vosk":
                path = _model_path(section, section.vosk_model, resolve)
                if importlib.util.find_spec("vosk") is None:
                    raise MissingPackageError("vosk", "vosk")
                if not path.is_dir():
                    raise ModelError(f"model {section.vosk_model} not found at {path} (run: main.py models install)")
                t: Transcriber = VoskTranscriber(path, section.timeout_s)
            elif name == "whisper":
                path = _model_path(section, section.whisper_model, resolve)
                for pkg in ("faster_whisper", "opencc"):
                    if importlib.util.find_spec(pkg) is None:
                        raise MissingPackageError(pkg, "whisper")
                if not path.is_dir():
                    raise ModelError(f"model {section.whisper_model} not found at {path} (run: main.py models install)")
                t = WhisperTranscriber(
                    path,
                    section.language,
                    section.whisper_beam_size,
                    section.whisper_threads,
                    section.whisper_compute_type,
                    section.whisper_prompt_chars,
                    section.timeout_s,
                    section.preroll_ms,
                )
            else:
                raise ModelError(f"unknown ASR backend {name!r} (known: vosk, whisper)")
        except (ModelError, SpeechError) as exc:
            skipped.append(f"{name}: {exc}")
            log.warning("speech recognition backend %s unavailable: %s", name, exc)
            continue
        reason = f"using {name} with model {t.model_id}"
        if skipped:
            reason += " (skipped " + "; ".join(skipped) + ")"
        log.info("speech recognition: %s", reason)
        return TranscriberChoice(t, reason)
    reason = "no speech recogniser available, keypad only: " + ("; ".join(skipped) or "no backends configured")
    log.warning(reason)
    return TranscriberChoice(None, reason)


async def open_transcriber(section: AsrSection, resolve: Callable[[str], Path] = Path) -> TranscriberChoice:
    """:func:`choose_transcriber` in a thread (loading a model takes seconds)."""
    return await asyncio.to_thread(choose_transcriber, section, resolve)
