"""Reading a bank card number from a camera photo.

The kiosk camera photographs the card; PP-OCR models (text detection, an upright /
upside-down classifier, text recognition) read it through RapidOCR on onnxruntime.
The number is then rebuilt and checked:

- text boxes are grouped into lines and each line's boxes joined left to right;
- inside runs of digits only, letters that look like digits are mapped (O->0, I->1,
  S->5, B->8...), so the bank's name or the holder's name is never "corrected";
- a card number has 16 to 19 digits and must pass the Luhn check;
- the issuer comes from the BIN table ``devices/data/bin_table.csv``;
- a number touching the edge of the photo, or too short, is reported as cut off.

When nothing valid is found, the photo is read again turned by 180 degrees (a card
held upside down puts its digit groups in reverse order).

The full number exists only in memory, inside :class:`CardNumber`, whose ``repr`` is
masked; it is never logged. The binding step passes it to the bank backend, which
returns a token; only the token and the last four digits are stored.
"""

from __future__ import annotations

import asyncio
import csv
import logging
import re
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np

from assistant.config import ROOT, Config
from assistant.errors import DeviceError, MissingPackageError
from assistant.messages import CardRead, Digits

log = logging.getLogger(__name__)

MIN_DIGITS = 16
MAX_DIGITS = 19
DEFAULT_BIN_TABLE = ROOT / "devices" / "data" / "bin_table.csv"

# Only applied inside a run of digits. Chosen from the confusions OCR makes on
# embossed and printed card digits.
LOOKALIKES = {
    "O": "0", "o": "0", "D": "0", "Q": "0",
    "I": "1", "l": "1", "i": "1", "|": "1", "!": "1",
    "Z": "2", "z": "2",
    "S": "5", "s": "5", "$": "5",
    "G": "6", "b": "6",
    "T": "7",
    "B": "8",
    "g": "9", "q": "9",
    # A slash inside a run of digits is a 1, or a 7 whose top bar is worn off; either
    # way the digit is then checked by Luhn rather than splitting the number in two.
    "/": "1",
}


class CardProblem(StrEnum):
    """Why a photo gave no usable number; each is a prompt id that says what to do."""

    NO_NUMBER = "card_unreadable"
    """No card number seen: place the card again, face up under the camera."""
    CUT_OFF = "card_cut_off"
    """Part of the number is outside the photo: put the whole card in view."""
    CHECK_FAILED = "card_check_failed"
    """A number was read but fails the check digit: please scan again."""
    SEVERAL_CARDS = "card_several"
    """Two or more valid card numbers in view: put only one card under the camera."""


@dataclass(frozen=True)
class OcrSection:
    """The ``[ocr]`` config section."""

    backend: str = "rapidocr"
    """OCR backend."""
    model: str = "ppocr-v4"
    """Models-manifest id of the PP-OCR model folder."""
    det_model: str = "ch_PP-OCRv4_det_infer.onnx"
    """Text detection model file in that folder."""
    rec_model: str = "ch_PP-OCRv4_rec_infer.onnx"
    """Text recognition model file."""
    cls_model: str = "ch_ppocr_mobile_v2.0_cls_infer.onnx"
    """Upright / upside-down classifier model file."""
    bin_table: str = "devices/data/bin_table.csv"
    """Issuer prefixes (relative to the project root)."""
    min_score: float = 0.5
    """Recognised text below this confidence is ignored."""
    try_rotated: bool = True
    """Read again turned by 180 degrees when the first read finds no valid number."""
    timeout_s: float = 15.0
    """Longest wait for one card read."""


# ----------------------------------------------------------------------------- checks


def luhn_ok(digits: str) -> bool:
    """True when ``digits`` (ASCII digits only) passes the Luhn check."""
    if not digits.isdigit() or not digits.isascii():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def luhn_check_digit(body: str) -> str:
    """The digit that makes ``body + digit`` pass the Luhn check."""
    for d in "0123456789":
        if luhn_ok(body + d):
            return d
    raise ValueError(body)


def digit_run(token: str) -> str | None:
    """The token as digits if it is a run of digits (look-alike letters mapped), else None.

    A token is a digit run when it has at least one real digit, at least half of its
    characters are real digits, and every other character is a known look-alike. So
    "6222O212" becomes "62220212" while "BOC" or "SOLID" stay words.
    """
    token = unicodedata.normalize("NFKC", token).strip("-.,:;")
    if not token:
        return None
    real = sum(ch.isdigit() and ch.isascii() for ch in token)
    if real == 0 or real * 2 < len(token):
        return None
    out = []
    for ch in token:
        if ch.isdigit() and ch.isascii():
            out.append(ch)
        elif ch in LOOKALIKES:
            out.append(LOOKALIKES[ch])
        else:
            return None
    return "".join(out)


# ----------------------------------------------------------------------------- issuers


@dataclass(frozen=True)
class Issuer:
    """A card issuer from the BIN table."""

    code: str
    """Bank code, e.g. ICBC."""
    name: str
    """Bank name as printed on cards."""
    card_type: str
    """DC (debit) or CC (credit)."""


class BinTable:
    """Issuer prefixes; the longest prefix matching the number (and its length) wins."""

    def __init__(self, rows: Sequence[tuple[str, int, Issuer]]) -> None:
        self._by_prefix: dict[str, dict[int, Issuer]] = {}
        for prefix, length, issuer in rows:
            self._by_prefix.setdefault(prefix, {})[length] = issuer
        self._lengths = sorted({len(p) for p in self._by_prefix}, reverse=True)

    @classmethod
    def load(cls, path: str | Path = DEFAULT_BIN_TABLE) -> BinTable:
        """Read the CSV (``#`` lines are comments).

        Raises:
            DeviceError: the file is missing or a row is malformed (file and line named).
        """
        p = Path(path)
        rows = []
        try:
            lines = [ln for ln in p.read_text(encoding="utf-8").splitlines() if not ln.startswith("#")]
        except OSError as exc:
            raise DeviceError(f"{p}: cannot read the BIN table ({exc})") from None
        reader = csv.DictReader(lines)
        for n, row in enumerate(reader, start=2):
            try:
                prefix, length = row["prefix"].strip(), int(row["length"])
                if not prefix.isdigit():
                    raise ValueError(prefix)
                rows.append((prefix, length, Issuer(row["bank_code"], row["bank_name"], row["card_type"])))
            except (KeyError, ValueError, TypeError):
                raise DeviceError(f"{p}: malformed row {n} (after comments): {row}") from None
        return cls(rows)

    def lookup(self, number: str) -> Issuer | None:
        """The issuer of ``number``, or None when no prefix matches."""
        fallback = None
        for n in self._lengths:
            entry = self._by_prefix.get(number[:n])
            if entry:
                if len(number) in entry:
                    return entry[len(number)]
                fallback = fallback or next(iter(entry.values()))
        return fallback

    def __len__(self) -> int:
        return sum(len(v) for v in self._by_prefix.values())


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class CardNumber:
    """A card number that passed every check. Its ``repr`` never shows the number."""

    digits: str = field(repr=False)
    """The full number: keep in memory only, pass to the bank, never store or log."""
    issuer: Issuer | None = None

    @property
    def last4(self) -> str:
        """The last four digits (what may be stored and shown)."""
        return self.digits[-4:]

    @property
    def masked(self) -> str:
        """Masked for screens and logs: ``**** **** **** 7897``."""
        stars = "*" * (len(self.digits) - 4)
        grouped = " ".join(stars[i:i + 4] for i in range(0, len(stars), 4))
        return f"{grouped} {self.last4}"

    def readback(self) -> Digits:
        """The full number as a digit-by-digit slot, for the customer to confirm once."""
        return Digits(self.digits)

    def groups(self) -> list[str]:
        """The number in groups of four for large display."""
        return [self.digits[i:i + 4] for i in range(0, len(self.digits), 4)]

    def __str__(self) -> str:
        return self.masked


@dataclass(frozen=True)
class CardReading:
    """The outcome of reading one photo."""

    number: CardNumber | None
    """The checked number, or None."""
    problem: CardProblem | None = None
    """What went wrong, when ``number`` is None."""
    upside_down: bool = False
    """The number was found only after turning the photo by 180 degrees."""
    digits_seen: int = 0
    """Length of the best digit run seen (for diagnostics; not the digits)."""

    @property
    def ok(self) -> bool:
        """True when a number passed every check."""
        return self.number is not None

    def event(self) -> CardRead:
        """The dialog event (last four digits and issuer only)."""
        if self.number is None:
            return CardRead(ok=False, problem=str(self.problem or CardProblem.NO_NUMBER))
        issuer = self.number.issuer.name if self.number.issuer else ""
        return CardRead(ok=True, last4=self.number.last4, issuer=issuer)


@dataclass(frozen=True)
class TextBox:
    """One piece of recognised text."""

    text: str = field(repr=False)
    score: float
    box: tuple[tuple[float, float], ...]
    """Four corners (x, y) in the photo."""

    @property
    def left(self) -> float:
        return min(x for x, _ in self.box)

    @property
    def right(self) -> float:
        return max(x for x, _ in self.box)

    @property
    def top(self) -> float:
        return min(y for _, y in self.box)

    @property
    def bottom(self) -> float:
        return max(y for _, y in self.box)

    @property
    def cy(self) -> float:
        return (self.top + self.bottom) / 2


@dataclass(frozen=True)
class _Run:
    digits: str = field(repr=False)
    left: float
    right: float


def digit_runs(boxes: Sequence[TextBox]) -> list[_Run]:
    """Candidate numbers: runs of consecutive digit tokens on each text line, left to right."""
    # Lines are chained left to right: a box continues the line whose last box is to its
    # left and overlaps it vertically, so a tilted card still gives one line per row.
    lines: list[list[TextBox]] = []
    for b in sorted(boxes, key=lambda b: b.left):
        best, best_overlap = None, 0.0
        for line in lines:
            last = line[-1]
            if last.right > b.left + 0.5 * (b.right - b.left):
                continue
            overlap = min(last.bottom, b.bottom) - max(last.top, b.top)
            if overlap >= 0.5 * min(last.bottom - last.top, b.bottom - b.top) and overlap > best_overlap:
                best, best_overlap = line, overlap
        if best is None:
            lines.append([b])
        else:
            best.append(b)
    runs: list[_Run] = []
    for line in lines:
        current, left, right = "", 0.0, 0.0
        for b in line:
            # A wide gap ends a number: the digit groups of one number sit close together.
            if current and b.left - right > 3.0 * max(b.bottom - b.top, 1.0):
                runs.append(_Run(current, left, right))
                current = ""
            for token in re.split(r"\s+", b.text.strip()):
                d = digit_run(token) if token else None
                if d is None:
                    if current:
                        runs.append(_Run(current, left, right))
                    current = ""
                    continue
                if not current:
                    left = b.left
                current += d
                right = b.right
        if current:
            runs.append(_Run(current, left, right))
    return runs


def judge(boxes: Sequence[TextBox], width: int, bins: BinTable) -> CardReading:
    """Find the card number among recognised text and check it."""
    runs = digit_runs(boxes)
    edge = max(2.0, 0.005 * width)
    best_bad: tuple[int, CardProblem] | None = None

    def worse(problem: CardProblem, n: int) -> None:
        nonlocal best_bad
        rank = {CardProblem.NO_NUMBER: 0, CardProblem.CUT_OFF: 1, CardProblem.CHECK_FAILED: 2,
                CardProblem.SEVERAL_CARDS: 3}
        if best_bad is None or rank[problem] > rank[best_bad[1]]:
            best_bad = (n, problem)

    found: list[CardNumber] = []
    for run in runs:
        n = len(run.digits)
        touches = run.left <= edge or run.right >= width - edge
        if n < 8:
            continue
        if touches or n < MIN_DIGITS:
            worse(CardProblem.CUT_OFF, n)
        elif n > MAX_DIGITS or not luhn_ok(run.digits):
            worse(CardProblem.CHECK_FAILED, n)
        else:
            found.append(CardNumber(run.digits, bins.lookup(run.digits)))
    banks = {c.digits for c in found if c.issuer is not None}
    if len(banks) > 1:
        # Two cards in view (the customer's and a spouse's side by side): binding whichever
        # was read first could tie the wrong person's card to this customer.
        return CardReading(None, CardProblem.SEVERAL_CARDS, digits_seen=max(len(d) for d in banks))
    if found:
        # Prefer a number whose issuer is known (the expiry or a phone number cannot be one).
        found.sort(key=lambda c: c.issuer is None)
        return CardReading(found[0], digits_seen=len(found[0].digits))
    if best_bad is None:
        return CardReading(None, CardProblem.NO_NUMBER)
    return CardReading(None, best_bad[1], digits_seen=best_bad[0])


# ----------------------------------------------------------------------------- readers


MIN_FRAME_PX = 16
"""Frames narrower or lower than this hold no readable card number and are not OCR'd."""


class CardReader(ABC):
    """The card-reading engine role: OCR a photo, then find and check the number.

    Args:
        bins: issuer table.
        min_score: recognised text below this confidence is ignored.
        try_rotated: read again turned by 180 degrees when nothing valid is found.
    """

    def __init__(self, bins: BinTable | None = None, min_score: float = 0.5, try_rotated: bool = True) -> None:
        self.bins = bins or BinTable.load()
        self.min_score = min_score
        self.try_rotated = try_rotated

    @abstractmethod
    def recognise(self, image: np.ndarray) -> list[TextBox]:
        """All text in a BGR photo."""

    def read(self, image: np.ndarray) -> CardReading:
        """Read and check the card number in a BGR photo."""
        if image.ndim < 2 or min(image.shape[:2]) < MIN_FRAME_PX:
            # no card number fits in it; and the detector scales a one-pixel strip up
            # to gigabytes and minutes, or fails inside (an empty frame divides by zero)
            return CardReading(None, CardProblem.NO_NUMBER)
        width = int(image.shape[1])
        reading = judge(self._boxes(image), width, self.bins)
        if not self.try_rotated or reading.problem is CardProblem.SEVERAL_CARDS or (
            reading.number is not None and reading.number.issuer is not None
        ):
            return reading
        # Nothing valid, or a valid number from no known bank: an upside-down card read
        # group by group gives the groups in reverse order, which passes Luhn one time
        # in ten. Reading the turned photo settles it.
        turned = np.ascontiguousarray(image[::-1, ::-1])
        again = judge(self._boxes(turned), width, self.bins)
        if again.number is not None and (again.number.issuer is not None or reading.number is None):
            return CardReading(again.number, upside_down=True, digits_seen=again.digits_seen)
        if reading.ok:
            return reading
        # Report the more specific of the two problems.
        order = [CardProblem.NO_NUMBER, CardProblem.CUT_OFF, CardProblem.CHECK_FAILED, CardProblem.SEVERAL_CARDS]
        return max(reading, again, key=lambda r: order.index(r.problem or CardProblem.NO_NUMBER))

    async def read_async(self, image: np.ndarray, timeout: float = 15.0) -> CardReading:
        """:meth:`read` in a worker thread with a timeout.

        Raises:
            DeviceError: the OCR engine gave no answer in time.
        """
        try:
            return await asyncio.wait_for(asyncio.to_thread(self.read, image), timeout)
        except TimeoutError:
            raise DeviceError(f"card reader gave no answer within {timeout:.0f} s") from None

    def _boxes(self, image: np.ndarray) -> list[TextBox]:
        return [b for b in self.recognise(image) if b.score >= self.min_score]


class RapidOcrCardReader(CardReader):
    """PP-OCR through RapidOCR, with the model files from the provisioned folder.

    Args:
        model_dir: folder with the detection, classifier and recognition models.
        det_model, rec_model, cls_model: file names in that folder.
    """

    def __init__(
        self,
        model_dir: str | Path,
        det_model: str = OcrSection.det_model,
        rec_model: str = OcrSection.rec_model,
        cls_model: str = OcrSection.cls_model,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        try:
            from rapidocr_onnxruntime import RapidOCR
        except ImportError:
            raise MissingPackageError("rapidocr_onnxruntime", "ocr") from None
        folder = Path(model_dir)
        paths = {"det": folder / det_model, "rec": folder / rec_model, "cls": folder / cls_model}
        for role, p in paths.items():
            if not p.is_file():
                raise DeviceError(f"{p}: OCR {role} model missing; run: python main.py models install ppocr-v4")
        # Explicit paths: the engine must use the provisioned, hash-checked files.
        self._ocr = RapidOCR(
            det_model_path=str(paths["det"]),
            rec_model_path=str(paths["rec"]),
            cls_model_path=str(paths["cls"]),
        )

    def recognise(self, image: np.ndarray) -> list[TextBox]:
        """All text boxes RapidOCR finds."""
        result, _ = self._ocr(image)
        boxes = []
        for quad, text, score in result or []:
            boxes.append(TextBox(str(text), float(score), tuple((float(x), float(y)) for x, y in quad)))
        return boxes


def create_card_reader(config: Config) -> CardReader:
    """The configured card reader on the provisioned OCR models.

    Raises:
        ModelError: the OCR models are not installed.
        DeviceError: unknown backend or a bad BIN table.
        MissingPackageError: the OCR extra is not installed.
    """
    from assistant.models import model_path

    s = config.section("ocr", OcrSection)
    if s.backend != "rapidocr":
        raise DeviceError(f"unknown OCR backend {s.backend!r}; known: rapidocr")
    bins = BinTable.load(config.resolve(s.bin_table))
    return RapidOcrCardReader(
        model_path(config, s.model), s.det_model, s.rec_model, s.cls_model,
        bins=bins, min_score=s.min_score, try_rotated=s.try_rotated,
    )
