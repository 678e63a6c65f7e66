"""Endpointing tuned for slow speakers: when has the customer finished speaking?

Elderly customers pause in the middle of an amount ("yibai ershisan kuai ... wu mao") and take a
while to start. The endpointer therefore

* waits for ``trailing_silence_ms`` of silence after speech before it ends an utterance
  (longer than Vosk's own 0.5 s rule), and for the longer ``hesitation_silence_ms`` when
  the words so far look unfinished (a predicate the caller supplies, e.g. "ends with a
  number word");
* ignores bursts shorter than ``min_speech_ms`` (a cough, a click);
* never gives up on a customer who has not started yet: after each
  ``no_speech_reprompt_s`` of silence it reports :attr:`EndpointKind.NO_SPEECH` so the
  dialog can gently re-prompt, and keeps listening;
* cuts an utterance at ``max_utterance_s`` so a noisy hall cannot keep it open forever.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class EndpointKind(StrEnum):
    """What the endpointer decided about the latest block."""

    SPEECH_START = "speech_start"
    SPEECH_END = "speech_end"
    NO_SPEECH = "no_speech"
    MAX_LENGTH = "max_length"


class _State(StrEnum):
    WAITING = "waiting"
    SPEECH = "speech"


@dataclass(frozen=True)
class EndpointSettings:
    """Timing of the endpointer (copied from ``[asr]``)."""

    trailing_silence_ms: int = 1200
    """Silence after speech that ends an utterance."""
    hesitation_silence_ms: int = 2200
    """Silence allowed after words that look unfinished."""
    min_speech_ms: int = 200
    """Shorter bursts are noise."""
    max_utterance_s: float = 15.0
    """An utterance is cut after this long."""
    no_speech_reprompt_s: float = 8.0
    """Report no-speech after this much silence (repeatedly); 0 disables."""


class Endpointer:
    """Turns per-block speech decisions into utterance boundaries.

    Args:
        settings: timing.
        unfinished: returns True when the partial transcript looks unfinished.
    """

    def __init__(
        self, settings: EndpointSettings, unfinished: Callable[[str], bool] | None = None
    ) -> None:
        self.settings = settings
        self.unfinished = unfinished
        self.reset()

    def reset(self) -> None:
        """Start a fresh turn: waiting for speech, timers cleared."""
        self._state = _State.WAITING
        self._speech_ms = 0.0
        self._silence_ms = 0.0
        self._waited_ms = 0.0
        self._utterance_ms = 0.0

    @property
    def in_speech(self) -> bool:
        """True between speech start and end."""
        return self._state is _State.SPEECH

    def process(self, is_speech: bool, block_ms: float, partial: str = "") -> EndpointKind | None:
        """Feed one block's decision (and the transcript so far); returns an event or None."""
        s = self.settings
        if self._state is _State.WAITING:
            if is_speech:
                self._speech_ms += block_ms
                self._silence_ms = 0.0
                if self._speech_ms >= s.min_speech_ms:
                    self._state = _State.SPEECH
                    self._utterance_ms = self._speech_ms
                    self._waited_ms = 0.0
                    return EndpointKind.SPEECH_START
                return None
            # A burst too short to be speech is forgotten after a short gap.
            self._silence_ms += block_ms
            if self._silence_ms >= s.min_speech_ms:
                self._speech_ms = 0.0
            self._waited_ms += block_ms
            if s.no_speech_reprompt_s > 0 and self._waited_ms >= s.no_speech_reprompt_s * 1000:
                self._waited_ms = 0.0
                return EndpointKind.NO_SPEECH
            return None

        self._utterance_ms += block_ms
        if is_speech:
            self._silence_ms = 0.0
        else:
            self._silence_ms += block_ms
        if self._utterance_ms >= s.max_utterance_s * 1000:
            self.reset()
            return EndpointKind.MAX_LENGTH
        limit = s.trailing_silence_ms
        if partial and self.unfinished is not None and self.unfinished(partial):
            limit = max(limit, s.hesitation_silence_ms)
        if self._silence_ms >= limit:
            self.reset()
            return EndpointKind.SPEECH_END
        return None
