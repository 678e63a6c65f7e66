"""The camera as the dialog drives it: face presence, identification, enrolment capture,
liveness, and card scans.

The dialog asks for these with ``DeviceAction("camera", ...)`` and
``DeviceAction("card", ...)``; the runtime passes each action to the handler
registered for its device name. Each handler runs one background task at a time
(a new action replaces the running one, ``stop`` ends it) and posts what it finds
as events: :class:`FaceSeen`, :class:`FaceCaptured`, :class:`LivenessResult`,
:class:`CardRead`.

Guidance is not repeated on every frame: a quality problem is posted when it changes
or after ``[face] guidance_interval_s``, so the dialog does not talk over itself and
its count of face problems means seconds, not frames.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from assistant.errors import KioskError
from assistant.identity import FaceIdentifier, FaceSection
from assistant.liveness import Direction, HeadTurnChallenge, run_challenge
from assistant.messages import (
    CardRead,
    DeviceAction,
    Event,
    FaceCaptured,
    FaceOutcome,
    FaceSeen,
    LivenessResult,
)
from devices.camera import Camera
from devices.card_ocr import CardProblem, CardReader, CardReading

log = logging.getLogger(__name__)

DECISIVE = (FaceOutcome.IDENTIFIED, FaceOutcome.UNCERTAIN, FaceOutcome.UNKNOWN)


class _Worker:
    """One background task at a time."""

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    def start(self, coro: Awaitable[None]) -> None:
        self.cancel_nowait()
        self._task = asyncio.ensure_future(coro)

    def cancel_nowait(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._task = None

    async def stop(self) -> None:
        """Cancel the running task and wait for it to end."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def join(self) -> None:
        """Wait for the running task to finish by itself (tests and the demo)."""
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @property
    def busy(self) -> bool:
        return self._task is not None and not self._task.done()


class CameraDevice:
    """Handles ``camera`` actions: presence, identify, capture, liveness, stop.

    Args:
        camera: where frames come from.
        identifier: quality gate + 1:N identification (None: face is unavailable and
            every identification ends as UNKNOWN, so the account number is asked).
        post: delivers an event to the dialog.
        section: the ``[face]`` settings.
        add_frame: receives each good enrolment embedding and returns how many are
            kept (the enrolment's ``add_face_frame``).
        clock: monotonic seconds (replaceable in tests).
    """

    def __init__(
        self,
        camera: Camera,
        identifier: FaceIdentifier | None,
        post: Callable[[Event], Any],
        section: FaceSection | None = None,
        add_frame: Callable[[np.ndarray], int] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.camera = camera
        self.identifier = identifier
        self.post = post
        self.section = section or (identifier.section if identifier else FaceSection())
        self.add_frame = add_frame
        self.clock = clock
        self.worker = _Worker()
        self.last_embedding: np.ndarray | None = None
        """Embedding of the last IDENTIFIED or UNCERTAIN face (the liveness reference)."""

    async def __call__(self, action: DeviceAction) -> None:
        """Start (or stop) what the dialog asked for; returns at once."""
        name = action.action
        if name == "stop":
            await self.worker.stop()
        elif name == "presence":
            self.worker.start(self._guarded(name, self._presence))
        elif name == "identify":
            self.worker.start(self._guarded(name, self._identify))
        elif name == "capture":
            frames = int(action.args.get("frames", self.section.enrol_frames))
            self.worker.start(self._guarded(name, self._capture, frames))
        elif name == "liveness":
            direction = Direction(str(action.args.get("direction", "left")))
            self.worker.start(self._guarded(name, self._liveness, direction))
        else:
            log.warning("camera: unknown action %s", name)

    async def _frame(self) -> np.ndarray | None:
        return await self.camera.read_async(self.section.timeout_s)

    async def _guarded(self, what: str, job: Callable[..., Awaitable[None]], *args: Any) -> None:
        try:
            await job(*args)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A broken camera or engine must not leave the customer waiting: the
            # account number (or cash) is always the way forward. Engines raise their own
            # errors too (a glitched frame makes the detector divide by zero), not only ours.
            if isinstance(exc, KioskError):
                log.error("camera %s failed: %s", what, exc)
            else:
                log.exception("camera %s failed", what)
            if what == "identify":
                self.post(FaceSeen(FaceOutcome.UNKNOWN))
            elif what == "liveness":
                self.post(LivenessResult(passed=False, reason="camera_failed"))

    async def _presence(self) -> None:
        """Post the first frame that shows someone (a session starts on it)."""
        if self.identifier is None:
            return
        while True:
            frame = await self._frame()
            if frame is not None:
                decision = await self.identifier.look(frame)
                if decision.outcome is not FaceOutcome.NO_FACE:
                    self._remember(decision)
                    self.post(decision.event())
                    return
            await asyncio.sleep(self.section.presence_interval_s)

    async def _identify(self) -> None:
        """Guide until a decision; UNKNOWN needs ``unknown_frames`` frames in a row."""
        if self.identifier is None:
            self.post(FaceSeen(FaceOutcome.UNKNOWN))
            return
        unknown = 0
        last: FaceOutcome | None = None
        last_at = -1e9
        while True:
            frame = await self._frame()
            if frame is not None:
                decision = await self.identifier.look(frame)
                outcome = decision.outcome
                unknown = unknown + 1 if outcome is FaceOutcome.UNKNOWN else 0
                if outcome in (FaceOutcome.IDENTIFIED, FaceOutcome.UNCERTAIN) or (
                    outcome is FaceOutcome.UNKNOWN and unknown >= self.section.unknown_frames
                ):
                    self._remember(decision)
                    self.post(decision.event())
                    return
                now = self.clock()
                if outcome not in DECISIVE and (
                    outcome != last or now - last_at >= self.section.guidance_interval_s
                ):
                    last, last_at = outcome, now
                    self.post(decision.event())
            await asyncio.sleep(self.section.frame_interval_s)

    async def _capture(self, needed: int) -> None:
        """Collect good enrolment frames; each one kept is a :class:`FaceCaptured`."""
        if self.identifier is None or self.add_frame is None:
            return
        capture = self.identifier.capture(None, needed)
        last: FaceOutcome | None = None
        last_at = -1e9
        while not capture.complete:
            frame = await self._frame()
            if frame is not None:
                progress = await capture.feed(frame)
                now = self.clock()
                if progress.outcome is None:
                    kept = self.add_frame(capture.embeddings[-1])
                    self.post(FaceCaptured(frames=kept))
                    last = None
                elif progress.outcome != last or now - last_at >= self.section.guidance_interval_s:
                    last, last_at = progress.outcome, now
                    self.post(FaceSeen(progress.outcome))
            await asyncio.sleep(self.section.frame_interval_s)

    async def _liveness(self, direction: Direction) -> None:
        """Run the head-turn challenge against the identified customer's face."""
        if self.identifier is None:
            self.post(LivenessResult(passed=False, reason="face_unavailable"))
            return
        challenge = HeadTurnChallenge(
            direction, self.section.liveness, mirrored=self.section.mirrored, reference=self.last_embedding
        )
        status = await run_challenge(
            challenge, self.camera, self.identifier.recognizer, clock=self.clock,
            frame_timeout=self.section.timeout_s,
        )
        self.post(status.event())

    def _remember(self, decision: Any) -> None:
        if decision.outcome in (FaceOutcome.IDENTIFIED, FaceOutcome.UNCERTAIN) and decision.face is not None:
            self.last_embedding = decision.face.embedding


class CardDevice:
    """Handles ``card`` actions: ``scan`` reads frames until a number passes, ``stop``.

    Args:
        camera: the camera the card is held under.
        reader: the card reader.
        post: delivers an event to the dialog.
        hold: receives the full number and issuer name (the enrolment keeps it in
            memory until the bank tokenises it); called before the event is posted.
        attempts: frames read before a failure is reported.
        timeout_s: longest wait for one read.
        interval_s: pause between frames.
    """

    def __init__(
        self,
        camera: Camera,
        reader: CardReader,
        post: Callable[[Event], Any],
        hold: Callable[[str, str], Any] | None = None,
        attempts: int = 3,
        timeout_s: float = 15.0,
        interval_s: float = 0.3,
    ) -> None:
        self.camera = camera
        self.reader = reader
        self.post = post
        self.hold = hold
        self.attempts = attempts
        self.timeout_s = timeout_s
        self.interval_s = interval_s
        self.worker = _Worker()

    async def __call__(self, action: DeviceAction) -> None:
        """Start or stop a scan; returns at once."""
        if action.action == "scan":
            self.worker.start(self._scan())
        elif action.action == "stop":
            await self.worker.stop()
        else:
            log.warning("card: unknown action %s", action.action)

    async def _scan(self) -> None:
        order = [CardProblem.NO_NUMBER, CardProblem.CUT_OFF, CardProblem.CHECK_FAILED]
        worst: CardReading | None = None
        for _ in range(self.attempts):
            try:
                frame = await self.camera.read_async(self.timeout_s)
                reading = (
                    await self.reader.read_async(frame, self.timeout_s)
                    if frame is not None
                    else CardReading(None, CardProblem.NO_NUMBER)
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # the OCR engine raises its own errors too (an odd frame size fails in its
                # resize): a rescan is asked for, the customer is never left waiting
                if isinstance(exc, KioskError):
                    log.error("card scan failed: %s", exc)
                else:
                    log.exception("card scan failed")
                reading = CardReading(None, CardProblem.NO_NUMBER)
            if reading.number is not None:
                if self.hold is not None:
                    issuer = reading.number.issuer.name if reading.number.issuer else ""
                    self.hold(reading.number.digits, issuer)
                log.info("card read: %s", reading.number.masked)
                self.post(reading.event())
                return
            if worst is None or order.index(reading.problem or CardProblem.NO_NUMBER) > order.index(
                worst.problem or CardProblem.NO_NUMBER
            ):
                worst = reading
            await asyncio.sleep(self.interval_s)
        self.post(worst.event() if worst else CardRead(ok=False, problem=str(CardProblem.NO_NUMBER)))
