"""The microphone gate: the kiosk never hears itself.

The speaker closes the gate before the first sample of a prompt leaves the loudspeaker
and opens it again a tail after the last one (room echo and device latency). The
listener judges every microphone chunk by the time it was *captured*, so audio recorded
while the kiosk spoke is dropped even if it is read from a buffer later. Each time the
gate closes its generation number goes up; the listener resets the recogniser and drops
buffered audio when it sees a new generation.

While closed, the gate also carries the level of what is being played, so the listener
can tell the customer talking over a prompt (barge-in) from the kiosk's own echo.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable


class MicGate:
    """Shared between one :class:`~speech.speaker.Speaker` and one listener.

    Args:
        tail: seconds the gate stays closed after playback ends.
        clock: monotonic clock (the same one audio chunks are stamped with).
    """

    def __init__(self, tail: float = 0.4, clock: Callable[[], float] = time.monotonic) -> None:
        self.tail = tail
        self.clock = clock
        self._lock = threading.Lock()
        self._closed_at: float | None = None
        # Finished closed intervals (start, end including tail); a few are enough because
        # the listener reads chunks within a second or so of capture.
        self._intervals: deque[tuple[float, float]] = deque(maxlen=16)
        self._levels: deque[tuple[float, float, float]] = deque(maxlen=400)
        self.generation = 0
        """Goes up each time the gate closes."""
        self.opened_at: float | None = None
        """When the gate (last) opens again: end of playback plus tail."""
        self._barge_in: Callable[[], None] | None = None
        self._barged = False

    # -- speaker side --------------------------------------------------------------------
    def close(self) -> None:
        """The kiosk is about to speak."""
        with self._lock:
            if self._closed_at is None:
                self._closed_at = self.clock()
                self.generation += 1
                self._barged = False

    def open_after(self, tail: float | None = None) -> None:
        """Playback has ended now; open again after ``tail`` seconds (default: :attr:`tail`)."""
        with self._lock:
            if self._closed_at is None:
                return
            if tail is None:
                # After a barge-in the customer is already talking: no tail, or their
                # first words would be cut off.
                tail = 0.0 if self._barged else self.tail
            end = self.clock() + tail
            self._intervals.append((self._closed_at, end))
            self.opened_at = end
            self._closed_at = None

    def note_playback(self, start: float, duration: float, level_db: float) -> None:
        """A chunk at ``level_db`` dBFS starts playing at ``start`` for ``duration`` seconds."""
        with self._lock:
            self._levels.append((start, start + duration, level_db))

    def on_barge_in(self, callback: Callable[[], None] | None) -> None:
        """Who to call when the listener hears the customer over a prompt."""
        self._barge_in = callback

    # -- listener side -------------------------------------------------------------------
    @property
    def speaking(self) -> bool:
        """True while a prompt is playing."""
        return self._closed_at is not None

    def is_open(self, start: float, end: float | None = None) -> bool:
        """Whether audio captured between ``start`` and ``end`` may be listened to."""
        end = start if end is None else end
        with self._lock:
            if self._closed_at is not None and end >= self._closed_at:
                return False
            return all(end < a or start > b for a, b in self._intervals)

    def echo_level(self, start: float, end: float, window: float = 0.3) -> float:
        """Loudest playback level (dBFS) that can be echoing in ``start..end``.

        ``window`` covers device latency and room reverberation: sound played that long
        before the chunk can still be arriving at the microphone.
        """
        with self._lock:
            levels = [lv for a, b, lv in self._levels if a <= end and b >= start - window]
        return max(levels) if levels else -math.inf

    def barge_in(self) -> None:
        """The customer spoke over the prompt: ask the speaker to stop."""
        self._barged = True
        callback = self._barge_in
        if callback is not None:
            callback()
