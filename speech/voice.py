"""Wiring for the runtime: open everything speech needs from the config, degrading clearly.

:func:`open_voice` builds the microphone gate, the speaker and the listener from
``[audio]``, ``[tts]`` and ``[asr]``. Nothing here raises for a missing package, model or
device: each problem is recorded in :attr:`Voice.problems`, the matching part is left out
(no recogniser or no microphone: keypad-only; no loudspeaker or engine: silent, screen
only), and when :attr:`Voice.keypad_only` the dialog greets with a welcome that asks for
the keys and never invites speech.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from assistant.config import Config
from assistant.errors import KioskError
from assistant.messages import Event
from speech.asr import AsrSection, TranscriberChoice, open_transcriber
from speech.audio import AudioInput, AudioOutput, AudioSection, open_input, open_output
from speech.gate import MicGate
from speech.listener import Listener
from speech.speaker import Speaker
from speech.tts import Synthesizer, TtsSection, create_synthesizer

log = logging.getLogger(__name__)


@dataclass
class Voice:
    """The kiosk's speech parts, each None when unavailable."""

    gate: MicGate
    """Shared by speaker and listener."""
    speaker: Speaker | None
    """Says prompts; None: the kiosk shows text only."""
    listener: Listener | None
    """Hears the customer; None: keypad only."""
    transcriber: TranscriberChoice
    """Which recogniser was chosen and why."""
    problems: list[str] = field(default_factory=list)
    """Every reason a part is missing (for the log and the staff screen)."""

    @property
    def keypad_only(self) -> bool:
        """True when the customer cannot be heard."""
        return self.listener is None

    async def close(self) -> None:
        """Stop listening and release the engines."""
        if self.listener is not None:
            self.listener.stop()
        if self.speaker is not None:
            await self.speaker.synth.close()
            await self.speaker.output.stop()


async def open_voice(
    config: Config,
    on_event: Callable[[Event], None],
    mic: AudioInput | None = None,
    loudspeaker: AudioOutput | None = None,
    synth: Synthesizer | None = None,
    self_test_text: str = "",
) -> Voice:
    """Open speech from the config.

    Args:
        config: the kiosk config (``[audio]``, ``[tts]``, ``[asr]``).
        on_event: receives :class:`~assistant.messages.Utterance` and no-speech
            :class:`~assistant.messages.Timeout` events.
        mic, loudspeaker, synth: use these instead of the configured ones (demo, tests).
        self_test_text: a sentence of the active pack; when given, the voice self-test runs
            and a voice that fails it disables speech output (a problem is recorded).
    """
    audio = config.section("audio", AudioSection)
    tts = config.section("tts", TtsSection)
    asr = config.section("asr", AsrSection)
    problems: list[str] = []
    gate = MicGate(tail=audio.gate_tail_ms / 1000)

    speaker: Speaker | None = None
    try:
        synth = synth or create_synthesizer(tts)
        loudspeaker = loudspeaker or open_output(audio, config.resolve)
        await loudspeaker.start()
        if self_test_text:
            await synth.check_voice(tts.voice, self_test_text)
        speaker = Speaker(synth, loudspeaker, tts, gate, block_ms=audio.block_ms)
    except KioskError as exc:
        problems.append(f"speech output: {exc}")

    listener: Listener | None = None
    try:
        mic = mic or open_input(audio, config.resolve)
    except KioskError as exc:
        # No microphone: a recogniser would only cost start-up time and memory.
        choice = TranscriberChoice(None, f"microphone: {exc}; keypad only")
        problems.append(choice.reason)
    else:
        choice = await open_transcriber(asr, config.resolve)
        if choice.transcriber is None:
            problems.append(choice.reason)
        else:
            try:
                listener = Listener(mic, choice.transcriber, on_event, asr=asr, audio=audio, gate=gate)
            except KioskError as exc:
                problems.append(f"microphone: {exc}; keypad only")
    for p in problems:
        log.warning("speech: %s", p)
    return Voice(gate, speaker, listener, choice, problems)
