"""Interruptible speaking: render a prompt, then play it in short chunks.

Playing chunk by chunk is what lets a prompt be **stopped mid-sentence** (a key, or the
customer talking over it) within one chunk. The speaker also keeps the customer's
settings -- a slower rate, a louder volume -- until :meth:`Speaker.reset` for the next
customer, can repeat the last prompt, and closes the microphone gate while it speaks
(plus a tail) so the kiosk never hears itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from enum import StrEnum

import numpy as np

from speech.audio import AudioClip, AudioOutput, level_dbfs
from speech.gate import MicGate
from speech.tts import Synthesizer, TtsSection

log = logging.getLogger(__name__)


class SpeechOutcome(StrEnum):
    """How a prompt ended."""

    COMPLETED = "completed"
    INTERRUPTED = "interrupted"


class Speaker:
    """Says prompts through a :class:`~speech.tts.Synthesizer` and an :class:`~speech.audio.AudioOutput`.

    Args:
        synth: renders text to PCM.
        output: the loudspeaker.
        settings: the ``[tts]`` section (voice, rate and volume steps).
        gate: the microphone gate shared with the listener (None: no microphone).
        block_ms: playback chunk length; a stop takes effect within one chunk.
        play_timeout: longest wait for the device to take one chunk.
    """

    def __init__(
        self,
        synth: Synthesizer,
        output: AudioOutput,
        settings: TtsSection | None = None,
        gate: MicGate | None = None,
        block_ms: int = 50,
        play_timeout: float = 2.0,
    ) -> None:
        self.synth = synth
        self.output = output
        self.settings = settings or TtsSection()
        self.gate = gate
        self.block_ms = block_ms
        self.play_timeout = play_timeout
        self.voice = self.settings.voice
        """Voice used when :meth:`say` is not given one (the active pack's voice)."""
        self._rate_index = self.settings.default_rate
        self._volume_index = self.settings.default_volume
        self._cache: OrderedDict[tuple[str, str, int], AudioClip] = OrderedDict()
        self._stop = asyncio.Event()
        self._lock = asyncio.Lock()
        self._last: tuple[str, str] | None = None
        self._speaking = False
        if gate is not None:
            gate.on_barge_in(self.stop)

    # -- settings ------------------------------------------------------------------------
    @property
    def rate(self) -> int:
        """Current speaking rate in words per minute."""
        return self.settings.rates[self._rate_index]

    @property
    def volume_db(self) -> float:
        """Current loudness step in dB (0 = full scale)."""
        return self.settings.volumes_db[self._volume_index]

    def step_rate(self, delta: int) -> bool:
        """Slower (-1) or faster (+1); False when already at the limit."""
        new = min(max(self._rate_index + delta, 0), len(self.settings.rates) - 1)
        changed = new != self._rate_index
        self._rate_index = new
        return changed

    def step_volume(self, delta: int) -> bool:
        """Louder (+1) or softer (-1); False when already at the limit."""
        new = min(max(self._volume_index + delta, 0), len(self.settings.volumes_db) - 1)
        changed = new != self._volume_index
        self._volume_index = new
        return changed

    def reset(self) -> None:
        """A new customer: default rate, default volume, nothing to repeat."""
        self._rate_index = self.settings.default_rate
        self._volume_index = self.settings.default_volume
        self._last = None

    @property
    def speaking(self) -> bool:
        """True while a prompt is playing."""
        return self._speaking

    # -- speaking ------------------------------------------------------------------------
    async def render(self, text: str, voice: str | None = None) -> AudioClip:
        """The prompt as PCM at the output's rate, peak-normalised, at the current rate (cached)."""
        voice = voice or self.voice
        key = (text, voice, self.rate)
        clip = self._cache.get(key)
        if clip is None:
            raw = await self.synth.synthesize(text, voice, self.rate)
            clip = raw.mono().resampled(self.output.rate).normalised(-1.0)
            self._cache[key] = clip
            while len(self._cache) > self.settings.cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return clip

    async def say(self, text: str, voice: str | None = None) -> SpeechOutcome:
        """Speak ``text`` (already normalised for speech) and wait until it ends or is stopped.

        A new prompt stops one still playing. Returns whether it completed.
        """
        self.stop()
        async with self._lock:
            self._stop = asyncio.Event()
            voice = voice or self.voice
            self._last = (text, voice)
            clip = await self.render(text, voice)
            if self._stop.is_set():
                return SpeechOutcome.INTERRUPTED
            return await self._play(clip.gain(self.volume_db))

    async def repeat(self) -> SpeechOutcome | None:
        """Say the last prompt again (at the current rate and volume); None if there is none."""
        if self._last is None:
            return None
        text, voice = self._last
        return await self.say(text, voice)

    def stop(self) -> None:
        """Stop the current prompt within one chunk (a key press or barge-in)."""
        self._stop.set()

    async def _play(self, clip: AudioClip) -> SpeechOutcome:
        frames = max(1, self.output.rate * self.block_ms // 1000)
        samples = clip.samples[:, 0]
        outcome = SpeechOutcome.COMPLETED
        self._speaking = True
        if self.gate is not None:
            self.gate.close()
        try:
            for i in range(0, len(samples), frames):
                if self._stop.is_set():
                    outcome = SpeechOutcome.INTERRUPTED
                    self.output.abort()
                    break
                chunk = samples[i : i + frames]
                if self.gate is not None:
                    self.gate.note_playback(time.monotonic(), len(chunk) / self.output.rate, level_dbfs(chunk))
                await asyncio.wait_for(self.output.play(np.ascontiguousarray(chunk)), self.play_timeout)
            else:
                await asyncio.wait_for(self.output.drain(), self.play_timeout)
        finally:
            self._speaking = False
            if self.gate is not None:
                self.gate.open_after()
        log.debug("prompt %s after %.2f s", outcome, clip.duration)
        return outcome
