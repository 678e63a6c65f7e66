"""Shared helpers for the face and card tests: the provisioned models and photos, and frame synthesis.

The models and photos are provisioned by ``python main.py models install`` into the
project's data folder; a test that needs them skips with the install command when
they are missing.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

from assistant.config import ROOT, Config
from assistant.errors import ModelError


def project_config() -> Config:
    """The project's default config, ignoring a test's ``KIOSK_DATA_DIR``.

    ``KIOSK_TEST_DATA_DIR`` points the tests at another provisioned data folder
    (one filled by ``KIOSK_DATA_DIR=... python main.py models install --all``).
    """
    saved = os.environ.pop("KIOSK_DATA_DIR", None)
    try:
        config = Config.load(ROOT / "config" / "kiosk.toml")
    finally:
        if saved is not None:
            os.environ["KIOSK_DATA_DIR"] = saved
    other = os.environ.get("KIOSK_TEST_DATA_DIR")
    if other:
        config = Config(dict(config.data, kiosk=dict(config.data.get("kiosk", {}), data_dir=other)), config.path)
    return config


def provisioned(entry_id: str) -> Path:
    """The installed folder of a models-manifest entry, or skip the test."""
    from assistant.models import model_path

    try:
        return model_path(project_config(), entry_id)
    except ModelError as exc:
        pytest.skip(f"{entry_id} not provisioned: {exc}")


def load(path: Path) -> np.ndarray:
    """A photo as a BGR frame."""
    from devices.camera import load_image

    return load_image(path)


def turn_print(image: np.ndarray, degrees: float, distance: float = 1.5) -> np.ndarray:
    """The view of a flat print of ``image`` turned about its vertical axis.

    A pinhole camera with a focal length of one image width looks at the print from
    ``distance`` focal lengths; the print rotates by ``degrees`` about its centre line.
    """
    import cv2

    h, w = image.shape[:2]
    f = float(w)
    cx, cy = w / 2, h / 2
    t = math.radians(degrees)
    depth = distance * f
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    dst = []
    for x, y in src:
        xr, zr = (x - cx) * math.cos(t), (x - cx) * math.sin(t)
        s = depth / (depth + zr)
        dst.append([cx + xr * s, cy + (y - cy) * s])
    m = cv2.getPerspectiveTransform(src, np.float32(dst))
    return cv2.warpPerspective(image, m, (w, h), borderValue=(90, 90, 90))


def turn_head(image: np.ndarray, keypoints, bbox, degrees: float) -> np.ndarray:
    """A crude render of the head in ``image`` turned by ``degrees`` about a vertical axis.

    The face is modelled as a depth map (a half-ellipsoid head plus a bump at the nose
    tip, about half an eye distance high) and re-projected orthographically after the
    rotation; the background stays put. Positive degrees move the nose towards the
    image's right, like a customer turning to their left in front of an unmirrored
    camera. It is a depth-consistent rotation, not a photograph of one.
    """
    import cv2

    h, w = image.shape[:2]
    kps = np.asarray(keypoints, dtype=np.float32)
    x1, y1, x2, y2 = bbox
    if degrees < 0:
        # Turning the other way is the mirror image of turning this way.
        flipped = kps.copy()
        flipped[:, 0] = w - 1 - kps[:, 0]
        flipped[[0, 1, 3, 4]] = flipped[[1, 0, 4, 3]]
        out = turn_head(image[:, ::-1].copy(), flipped, (w - 1 - x2, y1, w - 1 - x1, y2), -degrees)
        return np.ascontiguousarray(out[:, ::-1])
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 + 0.05 * (y2 - y1)
    a, b = (x2 - x1) * 0.62, (y2 - y1) * 0.75
    iod = float(np.linalg.norm(kps[1] - kps[0]))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = (xs - cx) / a, (ys - cy) / b
    r2 = u * u + v * v
    head = np.sqrt(np.clip(1 - r2, 0, 1)) * a * 0.9
    nx, ny = kps[2]
    nose = 0.5 * iod * np.exp(-(((xs - nx) / (0.28 * iod)) ** 2 + ((ys - ny) / (0.45 * iod)) ** 2))
    z = head + nose
    mask = np.clip((1 - r2) * 4, 0, 1)
    t = math.radians(degrees)
    xp = xs + mask * ((xs - cx) * (math.cos(t) - 1) + z * math.sin(t))
    mapx = np.empty((h, w), np.float32)
    cols = np.arange(w, dtype=np.float32)
    for row in range(h):
        # Where the surface folds over itself the front-most point wins: keep x' monotone.
        mono = np.maximum.accumulate(xp[row])
        mapx[row] = np.interp(cols, mono, xs[row])
    return cv2.remap(image, mapx, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
