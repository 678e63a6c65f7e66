"""The head-turn liveness challenge on real detector output.

What these tests prove, and what they do not:

- a still photo (the same frame again and again) never passes: its pose never changes;
- a flat print of a real face turned in front of the camera by up to 45 degrees never
  passes: the eyes move closer together (the print did turn) but the nose stays
  between them, so the estimated yaw stays small;
- frames rendered from a real photo by rotating a depth model of the head (nose in
  front of the eyes) pass, in the asked direction only. These frames are synthetic:
  the test shows that the check accepts a depth-consistent rotation as the detector
  sees it, not that every real customer's turn is accepted, and it says nothing about
  replayed videos or masks, which this check does not claim to stop;
- swapping a frontal photo for a turned one, a second person, or another person's
  face during the challenge fails or restarts it.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2", reason="OpenCV (the face extra) is not installed")

from assistant.liveness import (  # noqa: E402
    Direction,
    HeadTurnChallenge,
    LivenessPrompt,
    LivenessSettings,
    LivenessState,
    run_challenge,
)
from assistant.messages import LivenessResult  # noqa: E402
from devices.camera import Camera, ImageCamera  # noqa: E402
from devices.face import InsightFaceRecognizer  # noqa: E402
from tests.face_support import load, provisioned, turn_head, turn_print  # noqa: E402

SETTINGS = LivenessSettings(frame_interval_s=0.0, timeout_s=4.0)


@pytest.fixture(scope="module")
def engine():
    return InsightFaceRecognizer(provisioned("face"), model_id="face")


def portrait():
    """obama.jpg cut to head and shoulders (smaller frames keep the tests quick)."""
    return np.ascontiguousarray(load(provisioned("face-images") / "obama.jpg")[0:640, 170:810])


@pytest.fixture(scope="module")
def obama():
    return portrait()


@functools.cache
def _head_turn_frames(angles: tuple[int, ...]):
    engine = InsightFaceRecognizer(provisioned("face"), model_id="face")
    img = portrait()
    face = engine.detect(img)[0]
    return [turn_head(img, face.keypoints, face.bbox, a) for a in angles]


def feed_all(challenge: HeadTurnChallenge, engine, frames, dt: float = 0.2):
    """Feed frames at ``dt`` intervals (each distinct frame is detected once)."""
    seen: dict[int, list] = {}
    status = None
    for i, frame in enumerate(frames):
        if id(frame) not in seen:
            seen[id(frame)] = engine.detect(frame)
        status = challenge.feed(seen[id(frame)], at=i * dt)
        if status.done:
            break
    return status


class ListCamera(Camera):
    """Frames from a list, then the last one again (a test camera)."""

    def __init__(self, frames):
        self.frames = list(frames)
        self.i = 0

    def read(self):
        frame = self.frames[min(self.i, len(self.frames) - 1)]
        self.i += 1
        return frame


async def test_a_still_photo_fails_by_timeout(engine, obama, tmp_path):
    path = tmp_path / "still.jpg"
    cv2.imwrite(str(path), obama)
    clock = itertools.count(0.0, 0.5)
    prompts = []
    status = await run_challenge(
        HeadTurnChallenge(Direction.LEFT, SETTINGS),
        ImageCamera(path),
        engine,
        on_status=lambda s: prompts.append(s.prompt),
        clock=lambda: next(clock),
    )
    assert status.state is LivenessState.FAILED and status.reason == "timeout"
    assert status.peak < 5  # the pose never moved
    assert prompts == [LivenessPrompt.CHALLENGE, LivenessPrompt.FAILED]
    assert status.event() == LivenessResult(passed=False, reason="timeout")


def test_a_flat_print_turned_in_front_of_the_camera_fails(engine, obama):
    angles = [0, 8, 15, 22, 30, 38, 45, 45, 45]
    frames = [turn_print(obama, a) for a in angles]
    faces = [engine.detect(f)[0] for f in frames]
    # the print really turned: the eyes came much closer together...
    assert faces[-1].eye_distance < 0.8 * faces[0].eye_distance
    # ...but the nose stayed between them
    assert max(abs(f.pose.yaw) for f in faces) < 15
    patient = LivenessSettings(frame_interval_s=0.0, timeout_s=60.0)
    for direction in Direction:
        status = feed_all(HeadTurnChallenge(direction, patient), engine, frames + frames[::-1] * 5)
        assert status.state is not LivenessState.PASSED
        assert status.peak < SETTINGS.turn_deg


def test_a_depth_consistent_head_turn_passes_in_the_asked_direction_only(engine):
    frames = _head_turn_frames((0, 10, 20, 30, 35))
    yaws = [engine.detect(f)[0].pose.yaw for f in frames]
    assert yaws == sorted(yaws) and yaws[-1] > 20  # the nose moved to the image's right
    status = feed_all(HeadTurnChallenge(Direction.LEFT, SETTINGS), engine, frames)
    assert status.state is LivenessState.PASSED and status.event() == LivenessResult(passed=True)
    wrong = feed_all(HeadTurnChallenge(Direction.RIGHT, SETTINGS), engine, frames * 2)
    assert wrong.state is not LivenessState.PASSED
    # a mirrored camera swaps left and right
    mirrored = feed_all(HeadTurnChallenge(Direction.RIGHT, SETTINGS, mirrored=True), engine, frames)
    assert mirrored.state is LivenessState.PASSED


def test_turning_the_other_way_passes_the_other_challenge(engine):
    frames = _head_turn_frames((0, -10, -20, -30, -35))
    status = feed_all(HeadTurnChallenge(Direction.RIGHT, SETTINGS), engine, frames)
    assert status.state is LivenessState.PASSED


def test_swapping_a_frontal_photo_for_a_turned_one_restarts(engine):
    frontal, _, _, _, turned = _head_turn_frames((0, 10, 20, 30, 35))
    ch = HeadTurnChallenge(Direction.LEFT, LivenessSettings(frame_interval_s=0, max_jump_deg=15))
    for i, frame in enumerate([frontal, turned, frontal, turned, frontal, turned]):
        status = ch.feed(engine.detect(frame), at=i * 0.2)
        assert status.state is not LivenessState.PASSED
    assert status.reason == "jump"
    # hiding the face between the two photos does not help either
    ch = HeadTurnChallenge(Direction.LEFT, SETTINGS)
    ch.feed(engine.detect(frontal), at=0.0)
    assert ch.feed([], at=0.2).reason == "gap"
    assert ch.feed(engine.detect(turned), at=0.4).prompt == LivenessPrompt.LOOK_AT_SCREEN


def test_a_second_person_or_another_face_is_caught(engine, obama):
    group = load(provisioned("scrfd-images") / "solvay_conference_1927.jpg")
    status = HeadTurnChallenge(Direction.LEFT, SETTINGS).feed(engine.detect(group), at=0.0)
    assert status.prompt == LivenessPrompt.SEVERAL and status.reason == "several_faces"
    reference = engine.analyse(obama)[0].embedding
    biden = load(provisioned("face-images") / "biden.jpg")
    stranger = engine.analyse(biden)
    ch = HeadTurnChallenge(Direction.LEFT, SETTINGS, reference=reference)
    status = ch.feed(stranger, at=0.0)
    assert status.state is LivenessState.FAILED and status.reason == "other_person"


async def test_run_challenge_with_reference_on_camera_frames(engine, obama):
    frames = _head_turn_frames((0, 10, 20, 30, 35))
    reference = engine.analyse(obama)[0].embedding
    clock = itertools.count(0.0, 0.3)
    status = await run_challenge(
        HeadTurnChallenge(Direction.LEFT, SETTINGS, reference=reference),
        ListCamera(frames),
        engine,
        clock=lambda: next(clock),
    )
    assert status.state is LivenessState.PASSED
    assert np.isfinite(status.peak) and status.peak > SETTINGS.turn_deg


def test_random_direction_and_prompts():
    seen = {HeadTurnChallenge.random(SETTINGS).direction for _ in range(40)}
    assert seen == {Direction.LEFT, Direction.RIGHT}
    assert HeadTurnChallenge(Direction.RIGHT).direction_prompt == "liveness_right"
    assert HeadTurnChallenge(Direction.LEFT).turn_prompt == "liveness_challenge"
