"""Face detection and embedding, and the quality gate in front of enrolment and matching.

:class:`FaceRecognizer` is the engine role: ``detect`` finds faces with their box,
five keypoints (eyes, nose tip, mouth corners), detector score and quality measures;
``embed`` adds a unit-length embedding for one face. :class:`InsightFaceRecognizer`
runs a provisioned SCRFD detector and ArcFace-style recogniser with insightface on
onnxruntime. :func:`check_quality` decides whether a frame is good enough and, if not,
which :class:`~assistant.messages.FaceOutcome` tells the customer what to do.

Head pose comes from the five keypoints alone. The nose tip stands in front of the
eyes, so when the head turns it moves sideways relative to the eye midpoint in
proportion to ``tan(yaw)``; when the head nods it moves up or down relative to the
eye line. A flat photo turned in front of the camera moves all five points together
and keeps the nose centred, which is what the liveness check relies on.
"""

from __future__ import annotations

import asyncio
import math
import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from assistant.errors import FaceError, MissingPackageError
from assistant.messages import FaceOutcome

# insightface's alignment calls a scikit-image API deprecated in 0.26; the warning is
# noise on every frame and says nothing about the kiosk.
warnings.filterwarnings("ignore", category=FutureWarning, module=r"insightface\.utils\.face_align")

NOSE_DEPTH = 0.5
"""Depth of the nose tip in front of the eyes, as a fraction of the eye distance."""
NEUTRAL_NOSE_DROP = 0.6
"""Height of the nose tip below the eye line in a level frontal face (eye distances)."""
ALIGNED_SIZE = 112
"""Side of the aligned face crop used for the sharpness measure (the recogniser's input)."""


@dataclass(frozen=True)
class Pose:
    """Head pose estimated from the five keypoints, in degrees."""

    yaw: float
    """Turn: positive when the nose points to the image's right side."""
    pitch: float
    """Nod: positive when the head tilts down (nose lower than a level face)."""
    roll: float
    """Tilt of the eye line: positive when the image-right eye is lower."""


@dataclass(frozen=True, eq=False)
class FaceObservation:
    """One face in one frame."""

    bbox: tuple[float, float, float, float]
    """Box (x1, y1, x2, y2) in pixels; may extend beyond the frame."""
    keypoints: tuple[tuple[float, float], ...]
    """Five points (x, y): image-left eye, image-right eye, nose tip, left and right mouth corner."""
    det_score: float
    """Detector confidence in 0..1."""
    pose: Pose
    """Head pose from the keypoints."""
    sharpness: float
    """Variance of the Laplacian of the aligned 112x112 grey face (higher is sharper)."""
    frame_size: tuple[int, int]
    """(width, height) of the frame the face was found in."""
    embedding: np.ndarray | None = None
    """Unit-length float32 embedding, once :meth:`FaceRecognizer.embed` ran."""

    @property
    def width(self) -> float:
        """Box width in pixels (the size the quality gate uses)."""
        return self.bbox[2] - self.bbox[0]

    @property
    def eye_distance(self) -> float:
        """Distance between the eyes in pixels."""
        (lx, ly), (rx, ry) = self.keypoints[0], self.keypoints[1]
        return math.hypot(rx - lx, ry - ly)

    @property
    def outside_fraction(self) -> float:
        """Largest fraction of the box width/height that lies outside the frame."""
        w, h = self.frame_size
        x1, y1, x2, y2 = self.bbox
        bw, bh = max(x2 - x1, 1.0), max(y2 - y1, 1.0)
        return max(max(0.0, -x1) / bw, max(0.0, x2 - w) / bw, max(0.0, -y1) / bh, max(0.0, y2 - h) / bh)


def estimate_pose(keypoints: Sequence[Sequence[float]]) -> Pose:
    """Yaw, pitch and roll (degrees) from the five keypoints.

    The points are first rotated so the eye line is level (removing roll); yaw is
    then the nose's sideways offset from the eye midpoint and pitch its drop below
    the eye line compared with a level face, both measured in eye distances.
    """
    k = np.asarray(keypoints, dtype=np.float64).reshape(5, 2)
    le, re = k[0], k[1]
    roll = math.degrees(math.atan2(re[1] - le[1], re[0] - le[0]))
    c, s = math.cos(math.radians(-roll)), math.sin(math.radians(-roll))
    rot = np.array([[c, -s], [s, c]])
    p = (k - (le + re) / 2) @ rot.T
    iod = max(float(np.linalg.norm(p[1] - p[0])), 1e-6)
    nose = p[2]
    yaw = math.degrees(math.atan((nose[0] / iod) / NOSE_DEPTH))
    pitch = math.degrees(math.atan((nose[1] / iod - NEUTRAL_NOSE_DROP) / NOSE_DEPTH))
    return Pose(yaw=round(yaw, 2), pitch=round(pitch, 2), roll=round(roll, 2))


def measure_sharpness(image: np.ndarray, keypoints: Sequence[Sequence[float]]) -> float:
    """Variance of the Laplacian of the aligned, grey 112x112 face crop.

    Aligning first makes the number comparable between near and far faces; a face
    that is small in the frame is upsampled and so also reads as soft, which is
    right: it carries as little detail as a blurred one.
    """
    cv2 = _cv2()
    from insightface.utils import face_align  # noqa: PLC0415 - heavy, optional

    kps = np.asarray(keypoints, dtype=np.float32).reshape(5, 2)
    crop = face_align.norm_crop(image, kps, ALIGNED_SIZE)
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY).astype(np.float32)
    return round(float(cv2.Laplacian(grey, cv2.CV_32F).var()), 2)


# ----------------------------------------------------------------------------- quality


@dataclass(frozen=True)
class QualityLimits:
    """What a face must meet before it is enrolled or matched."""

    min_face_px: float = 80.0
    """Smallest box width in pixels (smaller: "please come closer")."""
    max_yaw_deg: float = 25.0
    """Largest head turn."""
    max_pitch_deg: float = 30.0
    """Largest nod up or down."""
    max_roll_deg: float = 30.0
    """Largest sideways tilt."""
    min_sharpness: float = 80.0
    """Smallest Laplacian variance of the aligned face (lower: "please hold still")."""
    max_outside: float = 0.05
    """Largest fraction of the face box allowed outside the frame."""
    several_ratio: float = 0.6
    """Another face at least this fraction of the largest one's width counts as a second person."""
    min_det_score: float = 0.5
    """Detections below this confidence are ignored."""


@dataclass(frozen=True, eq=False)
class QualityVerdict:
    """Result of the quality gate."""

    outcome: FaceOutcome | None
    """None when the face is good; otherwise what to tell the customer."""
    face: FaceObservation | None
    """The face the verdict is about (the largest one), if any."""

    @property
    def ok(self) -> bool:
        """True when the face may be enrolled or matched."""
        return self.outcome is None


def check_quality(faces: Sequence[FaceObservation], limits: QualityLimits) -> QualityVerdict:
    """Pick the customer's face and check it; the first problem found is reported.

    Order matters for the advice given: nobody there, then several people, then
    too far, then not facing the screen (or partly out of view), then blurred.
    Faces much smaller than the largest one are people in the background and are
    ignored.
    """
    faces = [f for f in faces if f.det_score >= limits.min_det_score]
    if not faces:
        return QualityVerdict(FaceOutcome.NO_FACE, None)
    faces = sorted(faces, key=lambda f: f.width, reverse=True)
    main = faces[0]
    rivals = [
        f for f in faces[1:]
        if f.width >= limits.several_ratio * main.width and f.width >= limits.min_face_px
    ]
    if rivals:
        return QualityVerdict(FaceOutcome.SEVERAL_FACES, main)
    if main.width < limits.min_face_px:
        return QualityVerdict(FaceOutcome.TOO_SMALL, main)
    p = main.pose
    if (
        abs(p.yaw) > limits.max_yaw_deg
        or abs(p.pitch) > limits.max_pitch_deg
        or abs(p.roll) > limits.max_roll_deg
        or main.outside_fraction > limits.max_outside
    ):
        return QualityVerdict(FaceOutcome.NOT_FRONTAL, main)
    if main.sharpness < limits.min_sharpness:
        return QualityVerdict(FaceOutcome.BLURRY, main)
    return QualityVerdict(None, main)


# ----------------------------------------------------------------------------- engines


MIN_FACE_PX = 8
"""A frame whose short side, letterboxed to the detector's input, is under this cannot hold a face."""


def _cv2() -> Any:
    try:
        import cv2
    except ImportError:
        raise MissingPackageError("cv2", "face") from None
    return cv2


class FaceRecognizer(ABC):
    """The face engine role: find faces, then embed the one that matters.

    Detection and embedding are separate so a crowded frame costs one detector run
    and a single embedding, not one per bystander.
    """

    model_id: str = ""
    """Id of the provisioned model; the match threshold is stored per model id."""
    dim: int = 512
    """Embedding length."""

    @abstractmethod
    def detect(self, image: np.ndarray) -> list[FaceObservation]:
        """Every face in a BGR frame, without embeddings."""

    @abstractmethod
    def embed(self, image: np.ndarray, face: FaceObservation) -> FaceObservation:
        """The same observation with its unit-length embedding filled in."""

    def analyse(self, image: np.ndarray) -> list[FaceObservation]:
        """Detect and embed every face (for calibration and tests)."""
        return [self.embed(image, f) for f in self.detect(image)]

    async def detect_async(self, image: np.ndarray, timeout: float = 5.0) -> list[FaceObservation]:
        """:meth:`detect` in a worker thread with a timeout."""
        return await _bounded(self.detect, timeout, image)

    async def embed_async(
        self, image: np.ndarray, face: FaceObservation, timeout: float = 5.0
    ) -> FaceObservation:
        """:meth:`embed` in a worker thread with a timeout."""
        return await _bounded(self.embed, timeout, image, face)


async def _bounded(fn: Any, timeout: float, *args: Any) -> Any:
    try:
        return await asyncio.wait_for(asyncio.to_thread(fn, *args), timeout)
    except TimeoutError:
        raise FaceError(f"face engine gave no answer within {timeout:.1f} s") from None


class InsightFaceRecognizer(FaceRecognizer):
    """SCRFD detection and ArcFace-style embedding through insightface on onnxruntime.

    Args:
        model_dir: folder with the detector and recogniser ``.onnx`` files.
        model_id: the models-manifest id of that folder.
        det_size: detector input side in pixels (frames are letterboxed to it).
        det_threshold: detector score threshold.
        threads: onnxruntime intra-op threads (0: library default).
    """

    def __init__(
        self,
        model_dir: str | Path,
        model_id: str = "face",
        det_size: int = 640,
        det_threshold: float = 0.5,
        threads: int = 0,
    ) -> None:
        try:
            import onnxruntime
            from insightface.app import FaceAnalysis
        except ImportError as exc:
            raise MissingPackageError(exc.name or "insightface", "face") from None
        self.model_id = model_id
        kwargs: dict[str, Any] = {"providers": ["CPUExecutionProvider"]}
        if threads:
            opts = onnxruntime.SessionOptions()
            opts.intra_op_num_threads = threads
            kwargs["sess_options"] = opts
        try:
            app = FaceAnalysis(name=str(model_dir), allowed_modules=["detection", "recognition"], **kwargs)
        except (AssertionError, RuntimeError, ValueError, OSError) as exc:
            raise FaceError(f"{model_dir}: cannot load the face models ({exc or type(exc).__name__})") from None
        if "recognition" not in app.models:
            raise FaceError(f"{model_dir}: no face recogniser model found")
        app.prepare(ctx_id=-1, det_thresh=det_threshold, det_size=(det_size, det_size))
        self.det_size = det_size
        self._det = app.models["detection"]
        self._rec = app.models["recognition"]
        self.dim = int(self._rec.output_shape[1]) if getattr(self._rec, "output_shape", None) else 512
        self._face_cls = _face_class()

    def detect(self, image: np.ndarray) -> list[FaceObservation]:
        """Every face in the frame with box, keypoints, score, pose and sharpness."""
        image = _as_bgr(image)
        h, w = image.shape[:2]
        if min(h, w) * self.det_size < MIN_FACE_PX * max(h, w, 1):
            # Letterboxed to the detector's input, the short side would be under a face's
            # size (an empty frame, a one-pixel strip): the detector's resize failed with an
            # OpenCV assertion. Such a frame is a glitch or the wrong file, said as such.
            raise FaceError(f"a {w}x{h} image is too small or too thin to hold a face")
        bboxes, kpss = self._det.detect(image, max_num=0)
        out = []
        for i in range(bboxes.shape[0]):
            kps = kpss[i]
            out.append(
                FaceObservation(
                    bbox=tuple(float(v) for v in bboxes[i, :4]),
                    keypoints=tuple((float(x), float(y)) for x, y in kps),
                    det_score=float(bboxes[i, 4]),
                    pose=estimate_pose(kps),
                    sharpness=measure_sharpness(image, kps),
                    frame_size=(w, h),
                )
            )
        return out

    def embed(self, image: np.ndarray, face: FaceObservation) -> FaceObservation:
        """Add the unit-length embedding of the aligned face."""
        image = _as_bgr(image)
        f = self._face_cls(
            bbox=np.asarray(face.bbox, dtype=np.float32),
            kps=np.asarray(face.keypoints, dtype=np.float32),
            det_score=face.det_score,
        )
        vec = np.asarray(self._rec.get(image, f), dtype=np.float32).ravel()
        norm = float(np.linalg.norm(vec))
        if not math.isfinite(norm) or norm == 0.0:
            raise FaceError("the face recogniser returned an empty embedding")
        return replace(face, embedding=vec / norm)


def _face_class() -> Any:
    from insightface.app.common import Face

    return Face


def _as_bgr(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim == 2:
        return np.ascontiguousarray(np.repeat(img[:, :, None], 3, axis=2))
    if img.ndim == 3 and img.shape[2] == 4:
        return np.ascontiguousarray(img[:, :, :3])
    if img.ndim != 3 or img.shape[2] != 3:
        raise FaceError(f"expected a BGR image, got an array of shape {img.shape}")
    return img


BACKENDS = {"insightface": InsightFaceRecognizer}


def create_recognizer(
    backend: str, model_dir: str | Path, model_id: str, det_size: int = 640, det_threshold: float = 0.5
) -> FaceRecognizer:
    """The configured face engine.

    Raises:
        FaceError: unknown backend or unloadable models.
        MissingPackageError: the backend's packages are not installed.
    """
    try:
        cls = BACKENDS[backend]
    except KeyError:
        raise FaceError(f"unknown face backend {backend!r}; known: {', '.join(BACKENDS)}") from None
    return cls(model_dir, model_id=model_id, det_size=det_size, det_threshold=det_threshold)
