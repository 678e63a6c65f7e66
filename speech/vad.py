"""Voice activity detection: is there speech in this block of audio?

:class:`EnergyVad` needs nothing but numpy and works at any sample rate, so it can judge
microphone chunks at the device's own rate. It tracks the background noise floor and
calls a block speech when it stands clearly above that floor *and* above an absolute
minimum (a quiet hall must not turn hiss into speech).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import numpy as np

from speech.audio import level_dbfs


class Vad(ABC):
    """One engine role: decide speech / no speech per block of mono int16 samples."""

    @abstractmethod
    def is_speech(self, samples: np.ndarray, rate: int) -> bool:
        """True when the block contains speech."""

    @abstractmethod
    def reset(self) -> None:
        """Forget adaptation state (a new listening turn)."""


class EnergyVad(Vad):
    """Level above an adaptive noise floor.

    Args:
        threshold_db: how far above the noise floor speech must be.
        min_dbfs: absolute level below which nothing is speech.
        floor_db: the initial noise floor guess.
        adapt: how fast the floor follows quieter blocks (0..1 per block).
    """

    def __init__(
        self,
        threshold_db: float = 12.0,
        min_dbfs: float = -50.0,
        floor_db: float = -60.0,
        adapt: float = 0.05,
    ) -> None:
        self.threshold_db = threshold_db
        self.min_dbfs = min_dbfs
        self.initial_floor = floor_db
        self.adapt = adapt
        self.floor_db = floor_db

    def is_speech(self, samples: np.ndarray, rate: int) -> bool:
        """Judge one block and update the noise floor from non-speech blocks."""
        level = level_dbfs(samples)
        if level == -math.inf:
            return False
        speech = level >= self.min_dbfs and level >= self.floor_db + self.threshold_db
        if not speech:
            # The floor follows the background both ways, slowly, so a fan switching on
            # raises it and a door closing lowers it; speech never moves it.
            self.floor_db += self.adapt * (level - self.floor_db)
        return speech

    def reset(self) -> None:
        """Keep the learned floor: the background does not change between turns."""
