"""Liveness: a head-turn challenge checked on the five keypoints across frames.

Before a quick-pay payment or an account change the kiosk asks the customer to turn
their head to one side, chosen at random ("请向左转头"). The challenge passes only
when, within the time limit, the same single face is first seen looking at the
screen and then turns far enough the asked way through at least one intermediate
frame.

Why this defeats a held-up photo: the head pose comes from where the nose tip sits
relative to the eyes (:func:`devices.face.estimate_pose`). A real head turning moves
the nose tip sideways because it stands in front of the eyes; a flat photo, however
it is turned or tilted, keeps the nose where it is printed, so its yaw does not
change. A still frame never changes at all. Swapping a frontal photo for a turned
one shows up as a jump between consecutive frames (or a gap without a face), which
restarts the challenge.

What it does not defeat: a video of the customer turning their head in the asked
direction, or a 3D mask. The random direction and the time limit make a prepared
video harder to use, and face is never the only way in: the account number always
works.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from assistant.messages import LivenessResult
from devices.face import FaceObservation, FaceRecognizer


class Direction(StrEnum):
    """Which way the customer is asked to turn (their own left or right)."""

    LEFT = "left"
    RIGHT = "right"


class LivenessState(StrEnum):
    """Where a challenge stands."""

    WAITING_FRONTAL = "waiting_frontal"
    """Waiting for one face looking at the screen."""
    TURNING = "turning"
    """A frontal face was seen; waiting for the turn."""
    PASSED = "passed"
    FAILED = "failed"


class LivenessPrompt(StrEnum):
    """Prompt ids the challenge asks the dialog to say (texts live in the locale pack)."""

    CHALLENGE = "liveness_challenge"
    """Please slowly turn your head to the {direction} (``liveness_left``/``liveness_right``)."""
    LOOK_AT_SCREEN = "liveness_look_at_screen"
    """Please look straight at the screen first."""
    FAILED = "liveness_failed"
    """The check did not pass; please pay in cash or ask staff."""
    SEVERAL = "face_several"
    """Several people in view; only the one paying, please."""
    PASSED = ""
    """Nothing to say: the dialog carries on."""


@dataclass(frozen=True)
class LivenessSettings:
    """The ``[face.liveness]`` config section."""

    turn_deg: float = 20.0
    """Head turn (yaw, degrees) to reach in the asked direction."""
    frontal_deg: float = 12.0
    """Largest yaw that counts as looking at the screen at the start."""
    timeout_s: float = 10.0
    """Time allowed for the whole challenge."""
    max_jump_deg: float = 25.0
    """Largest yaw change between consecutive frames; more looks like a swapped photo."""
    min_turn_frames: int = 1
    """Frames needed between the frontal frame and the turned one (a gradual turn)."""
    same_person: float = 0.3
    """Lowest cosine similarity of each frame to the reference embedding (when given)."""
    several_ratio: float = 0.6
    """A second face at least this fraction of the first one's width is a second person."""
    frame_interval_s: float = 0.1
    """Pause between camera frames while the challenge runs."""


@dataclass(frozen=True)
class LivenessStatus:
    """The challenge after one frame."""

    state: LivenessState
    prompt: str
    """Prompt id to say or keep showing now."""
    reason: str = ""
    """Why it failed or restarted: timeout, several_faces, jump, gap, other_person."""
    yaw: float = 0.0
    """Yaw of the last frame, signed so that the asked direction is positive."""
    peak: float = 0.0
    """Largest signed yaw reached since the frontal frame."""

    @property
    def done(self) -> bool:
        """True once passed or failed."""
        return self.state in (LivenessState.PASSED, LivenessState.FAILED)

    def event(self) -> LivenessResult:
        """The dialog event for a finished challenge."""
        return LivenessResult(passed=self.state is LivenessState.PASSED, reason=self.reason)


class HeadTurnChallenge:
    """Checks one head-turn challenge frame by frame.

    Args:
        direction: the customer's own left or right.
        settings: thresholds.
        mirrored: the camera image is mirrored (selfie view), so left and right swap.
        reference: the identified customer's embedding; frames that carry an
            embedding must stay this person.
        started_at: clock time at which the challenge was asked.
    """

    def __init__(
        self,
        direction: Direction,
        settings: LivenessSettings | None = None,
        mirrored: bool = False,
        reference: np.ndarray | None = None,
        started_at: float = 0.0,
    ) -> None:
        self.direction = direction
        self.settings = settings or LivenessSettings()
        # Unmirrored camera: the customer's left is the image's right, where a positive
        # yaw (nose towards image right) points.
        sign = 1.0 if direction is Direction.LEFT else -1.0
        self._sign = -sign if mirrored else sign
        self.reference = None if reference is None else np.asarray(reference, dtype=np.float32)
        self.started_at = started_at
        self.state = LivenessState.WAITING_FRONTAL
        self._prev: float | None = None
        self._turn_frames = 0
        self._peak = 0.0
        self.last = LivenessStatus(LivenessState.WAITING_FRONTAL, self.turn_prompt)

    @classmethod
    def random(cls, settings: LivenessSettings | None = None, **kw: object) -> HeadTurnChallenge:
        """A challenge with a random direction (so a prepared video cannot know it)."""
        return cls(random.SystemRandom().choice(list(Direction)), settings, **kw)  # type: ignore[arg-type]

    @property
    def turn_prompt(self) -> str:
        """The prompt asking for the turn (its ``{direction}`` slot is :attr:`direction_prompt`)."""
        return LivenessPrompt.CHALLENGE

    @property
    def direction_prompt(self) -> str:
        """The word for this challenge's direction: ``liveness_left`` or ``liveness_right``."""
        return "liveness_left" if self.direction is Direction.LEFT else "liveness_right"

    def feed(self, faces: Sequence[FaceObservation], at: float) -> LivenessStatus:
        """Take one frame's faces (observed at clock time ``at``) and return the status."""
        if self.last.done:
            return self.last
        s = self.settings
        if at - self.started_at > s.timeout_s:
            return self._finish(LivenessState.FAILED, "timeout")
        if not faces:
            return self._restart("gap")
        faces = sorted(faces, key=lambda f: f.width, reverse=True)
        face = faces[0]
        if any(f.width >= s.several_ratio * face.width for f in faces[1:]):
            return self._restart("several_faces", LivenessPrompt.SEVERAL)
        if (
            self.reference is not None
            and face.embedding is not None
            and float(face.embedding @ self.reference) < s.same_person
        ):
            return self._finish(LivenessState.FAILED, "other_person")
        yaw = self._sign * face.pose.yaw
        prev, self._prev = self._prev, yaw
        if self.state is LivenessState.WAITING_FRONTAL:
            if abs(yaw) <= s.frontal_deg:
                self.state = LivenessState.TURNING
                self._turn_frames = 0
                self._peak = yaw
                return self._status(self.turn_prompt, yaw=yaw)
            return self._status(LivenessPrompt.LOOK_AT_SCREEN, yaw=yaw)
        # TURNING
        if prev is not None and abs(yaw - prev) > s.max_jump_deg:
            return self._restart("jump")
        self._peak = max(self._peak, yaw)
        if yaw >= s.turn_deg and self._turn_frames >= s.min_turn_frames:
            return self._finish(LivenessState.PASSED, "", yaw=yaw)
        if yaw > s.frontal_deg:
            self._turn_frames += 1
        return self._status(self.turn_prompt, yaw=yaw)

    # -- helpers -----------------------------------------------------------------------
    def _status(self, prompt: str, reason: str = "", yaw: float = 0.0) -> LivenessStatus:
        self.last = LivenessStatus(self.state, prompt, reason, yaw=yaw, peak=self._peak)
        return self.last

    def _restart(self, reason: str, prompt: str = LivenessPrompt.LOOK_AT_SCREEN) -> LivenessStatus:
        self.state = LivenessState.WAITING_FRONTAL
        self._prev = None
        self._turn_frames = 0
        return self._status(prompt, reason)

    def _finish(self, state: LivenessState, reason: str, yaw: float = 0.0) -> LivenessStatus:
        self.state = state
        prompt = LivenessPrompt.PASSED if state is LivenessState.PASSED else LivenessPrompt.FAILED
        return self._status(prompt, reason, yaw=yaw)


async def run_challenge(
    challenge: HeadTurnChallenge,
    camera: object,
    recognizer: FaceRecognizer,
    on_status: Callable[[LivenessStatus], object] | None = None,
    clock: Callable[[], float] = time.monotonic,
    frame_timeout: float = 2.0,
) -> LivenessStatus:
    """Run a challenge on live camera frames until it passes or fails.

    Each frame is detected (and, when the challenge has a reference, the main face
    embedded) in a worker thread. ``on_status`` is called whenever the prompt to
    show changes, so the dialog can speak it.

    Args:
        camera: a :class:`devices.camera.Camera`.
    """
    challenge.started_at = clock()
    shown = None
    while True:
        frame = await camera.read_async(frame_timeout)  # type: ignore[attr-defined]
        if frame is None:
            status = challenge.feed([], clock())
        else:
            faces = await recognizer.detect_async(frame)
            if faces and challenge.reference is not None:
                main = max(faces, key=lambda f: f.width)
                faces = [await recognizer.embed_async(frame, main)] + [f for f in faces if f is not main]
            status = challenge.feed(faces, clock())
        if on_status is not None and status.prompt != shown:
            shown = status.prompt
            on_status(status)
        if status.done:
            return status
        await asyncio.sleep(challenge.settings.frame_interval_s)
