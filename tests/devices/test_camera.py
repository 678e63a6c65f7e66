"""Camera backends: image folder, still image, video file through OpenCV, and the dispatcher."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2", reason="OpenCV (the face extra) is not installed")

from assistant.errors import DeviceError  # noqa: E402
from devices.camera import FolderCamera, ImageCamera, OpenCvCamera, open_camera  # noqa: E402


def frame(value: int, w: int = 64, h: int = 48) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[:, :, 1] = value
    return img


def test_folder_camera_plays_images_in_name_order(tmp_path: Path):
    for name, value in [("b.png", 20), ("a.png", 10), ("c.jpg", 30)]:
        cv2.imwrite(str(tmp_path / name), frame(value))
    (tmp_path / "notes.txt").write_text("not an image")
    cam = open_camera(str(tmp_path))
    assert isinstance(cam, FolderCamera)
    greens = [int(cam.read()[0, 0, 1]) for _ in range(3)]
    assert greens[:2] == [10, 20] and abs(greens[2] - 30) <= 2  # c.jpg is lossy
    assert cam.read() is None
    looping = FolderCamera(tmp_path, loop=True)
    assert [int(looping.read()[0, 0, 1]) for _ in range(4)][3] == 10


def test_image_camera_returns_the_same_still(tmp_path: Path):
    path = tmp_path / "still.png"
    cv2.imwrite(str(path), frame(77))
    cam = open_camera(path)
    assert isinstance(cam, ImageCamera)
    a, b = cam.read(), cam.read()
    assert np.array_equal(a, b) and a is not b and a.shape == (48, 64, 3)


def test_video_file_through_opencv(tmp_path: Path):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for v in (0, 100, 200):
        writer.write(frame(v))
    writer.release()
    with open_camera(str(path)) as cam:
        assert isinstance(cam, OpenCvCamera)
        greens = [int(cam.read()[10, 10, 1]) for _ in range(3)]
        assert cam.read() is None
    assert [round(g, -2) for g in greens] == [0, 100, 200]


async def test_read_async_and_errors(tmp_path: Path):
    path = tmp_path / "still.png"
    cv2.imwrite(str(path), frame(5))
    img = await open_camera(path).read_async(timeout=2.0)
    assert img.shape == (48, 64, 3)
    with pytest.raises(DeviceError, match="not found"):
        open_camera(tmp_path / "missing.jpg")
    with pytest.raises(DeviceError, match="no images"):
        open_camera(str((tmp_path / "empty").mkdir() or tmp_path / "empty"))
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(DeviceError, match="not a readable image"):
        ImageCamera(bad)


def test_a_photo_that_is_not_there_is_named_before_opencv_warns(tmp_path, capfd):
    from devices.camera import load_image

    with pytest.raises(DeviceError, match="missing.jpg: no such file"):
        load_image(tmp_path / "missing.jpg")
    with pytest.raises(DeviceError, match="a folder, not an image"):
        load_image(tmp_path)
    assert "WARN" not in capfd.readouterr().err  # OpenCV was not asked
