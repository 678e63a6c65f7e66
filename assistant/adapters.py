"""Adapters between the runtime's ports (``assistant.kiosk``) and the engines.

Small classes, one per port: speaking through ``speech.speaker.Speaker`` (or rendering
every prompt to a WAV file for the headless demo), listening through
``speech.listener.Listener`` with a grammar built from the active pack, and
printing receipts whose words come from the pack.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path
from typing import Any

from assistant.kiosk import Listener, Voice
from assistant.messages import DeviceAction
from assistant.nlu import grammar_sentences
from assistant.prompts import Label
from devices.printer import ReceiptPrinter

log = logging.getLogger(__name__)


class SpeakerVoice(Voice):
    """Speaks through the real speaker (interruptible, rate and volume steps).

    Args:
        speaker: ``speech.speaker.Speaker``.
    """

    def __init__(self, speaker: Any) -> None:
        self.speaker = speaker

    async def say(self, text: str, voice: str) -> bool:
        from speech.speaker import SpeechOutcome

        return await self.speaker.say(text, voice) is SpeechOutcome.COMPLETED

    def stop(self) -> None:
        self.speaker.stop()

    def rate_step(self, delta: int) -> None:
        self.speaker.step_rate(delta)

    def volume_step(self, delta: int) -> None:
        self.speaker.step_volume(delta)

    def reset(self) -> None:
        self.speaker.reset()


class WavVoice(SpeakerVoice):
    """Renders every prompt with the real synthesizer into numbered WAV files (headless demo).

    Args:
        speaker: ``speech.speaker.Speaker`` (its synthesizer, rate and volume are used).
        folder: where the WAVs go.
    """

    def __init__(self, speaker: Any, folder: Path) -> None:
        super().__init__(speaker)
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.files: list[tuple[Path, str, float]] = []
        """(file, text, seconds) of every prompt rendered."""
        self.index = self.folder / "index.tsv"
        """Which words each WAV holds: file, seconds, voice, the text handed to the engine."""
        self.index.write_text("file\tseconds\tvoice\ttext\n", encoding="utf-8")

    async def say(self, text: str, voice: str) -> bool:
        clip = await self.speaker.render(text, voice)
        name = f"{len(self.files) + 1:03d}.wav"
        path = clip.to_wav(self.folder / name)
        self.files.append((path, text, clip.duration))
        with self.index.open("a", encoding="utf-8") as f:
            f.write(f"{name}\t{clip.duration:.2f}\t{voice}\t{' '.join(text.split())}\n")
        return True

    def stop(self) -> None:
        """Nothing is playing: rendering is not interrupted."""


class SilentVoice(Voice):
    """No loudspeaker or engine: the screen caption is the only output (recorded for tests)."""

    def __init__(self) -> None:
        self.said: list[tuple[str, str]] = []
        self.rate = 0
        self.volume = 0

    async def say(self, text: str, voice: str) -> bool:
        self.said.append((text, voice))
        return True

    def stop(self) -> None:
        """Nothing to stop."""

    def rate_step(self, delta: int) -> None:
        self.rate += delta

    def volume_step(self, delta: int) -> None:
        self.volume += delta

    def reset(self) -> None:
        self.rate = self.volume = 0


class GrammarListener(Listener):
    """Gives the speech listener a grammar made from the pack's sentences for the expected intents.

    Args:
        listener: ``speech.listener.Listener``.
    """

    def __init__(self, listener: Any) -> None:
        self.listener = listener
        self._cache: dict[tuple[int, tuple[str, ...]], list[tuple[str, str]]] = {}

    def expect(self, pack: Any, intents: tuple[str, ...]) -> None:
        key = (id(pack), intents)
        sentences = self._cache.get(key)
        if sentences is None:
            sentences = grammar_sentences(pack, intents)
            self._cache[key] = sentences
        try:
            self.listener.expect_sentences(sentences)
        except Exception as exc:  # a grammar the model cannot take must not stop the kiosk
            log.error("grammar for %s rejected: %s", ",".join(intents), exc)


RECEIPT_FIELDS = (
    ("account", Label.HDR_ACCOUNT),
    ("paid", Label.HDR_PAID),
    ("inserted", Label.HDR_INSERTED),
    ("change", Label.HDR_CHANGE),
    ("credited", Label.HDR_CREDITED),
    ("reference", Label.HDR_REFERENCE),
)


class ReceiptDevice:
    """Prints the receipt of a ``printer.print`` device action in the active pack's words.

    Args:
        printer: the ESC/POS printer.
        pack: callable returning the active pack.
        kiosk_id: printed on the receipt.
        out: folder to keep a copy of each receipt's bytes and text (None: keep none).
        zone: the hall's time zone, in which the receipt's time is printed (None: the machine's).

    The action's ``at`` (an ISO time; stored times are UTC) is the time printed, so a reprint
    shows when the customer paid; without it, now. ``reprint`` marks the title as a copy.
    """

    def __init__(self, printer: ReceiptPrinter, pack: Any, kiosk_id: str, out: Path | None = None,
                 zone: dt.tzinfo | None = None) -> None:
        self.printer = printer
        self.pack = pack
        self.kiosk_id = kiosk_id
        self.out = out
        self.zone = zone
        self.printed: list[tuple[bytes, str]] = []

    def lines(self, args: dict[str, Any]) -> tuple[str, list[tuple[str, str]], str]:
        """Title, (label, value) lines and footer of a receipt."""
        pack = self.pack()
        rows = [(pack.label(Label.HDR_KIOSK), self.kiosk_id),
                (pack.label(Label.HDR_TIME), self.local_time(args.get("at")).strftime("%Y-%m-%d %H:%M"))]
        for key, label in RECEIPT_FIELDS:
            if key in args and (key in ("account", "paid", "reference") or getattr(args[key], "fen", 1)):
                rows.append((pack.label(label), pack.display(args[key])))
        title = pack.label(Label.RECEIPT_TITLE)
        if args.get("reprint"):
            title += pack.label(Label.RECEIPT_REPRINT)
        return title, rows, pack.label(Label.RECEIPT_FOOTER)

    def local_time(self, at: str | None) -> dt.datetime:
        """``at`` (ISO; naive or ``Z`` means UTC) or now, in the hall's zone."""
        when = dt.datetime.now(dt.UTC)
        if at:
            when = dt.datetime.fromisoformat(at.replace("Z", "+00:00"))
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.UTC)
        return when.astimezone(self.zone)

    async def __call__(self, action: DeviceAction) -> None:
        if action.action != "print":
            return
        title, rows, footer = self.lines(dict(action.args))
        data = await self.printer.print_lines(title, rows, footer)
        text = "\n".join([title, *(f"{a}: {b}" for a, b in rows), footer])
        self.printed.append((data, text))
        if self.out is not None:
            self.out.mkdir(parents=True, exist_ok=True)
            stem = re.sub(r"\W", "", str(action.args.get("payment", len(self.printed))))
            (self.out / f"receipt-{stem}.bin").write_bytes(data)
            (self.out / f"receipt-{stem}.txt").write_text(text + "\n", encoding="utf-8")
