"""Camera frames for the face watcher and the card reader.

A :class:`Camera` yields BGR ``uint8`` frames (the OpenCV convention the face and OCR
engines expect). Backends: a live camera by index or a video file
(:class:`OpenCvCamera`), a folder of images played in name order
(:class:`FolderCamera`), and one still image returned on every read
(:class:`ImageCamera`). The backend is chosen from one config string by
:func:`open_camera`, so a kiosk, a demo and a test differ only in configuration.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from assistant.errors import DeviceError, MissingPackageError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def _cv2() -> Any:
    try:
        import cv2
    except ImportError:
        raise MissingPackageError("cv2", "face") from None
    return cv2


class Camera(ABC):
    """A source of frames.

    ``read`` blocks (a real camera waits for the next frame); use :meth:`read_async`
    from the event loop.
    """

    name: str = "camera"

    @abstractmethod
    def read(self):
        """The next frame as a BGR ``numpy.ndarray`` (H, W, 3), or None when there is none."""

    def close(self) -> None:  # noqa: B027 - most backends hold nothing to release
        """Release the device (safe to call twice)."""

    async def read_async(self, timeout: float = 2.0):
        """:meth:`read` in a worker thread, bounded by ``timeout`` seconds.

        Raises:
            DeviceError: the camera gave no frame in time.
        """
        try:
            return await asyncio.wait_for(asyncio.to_thread(self.read), timeout)
        except TimeoutError:
            raise DeviceError(f"{self.name}: no frame within {timeout:.1f} s") from None

    def __enter__(self) -> Camera:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_image(path: str | Path):
    """Read an image file as a BGR frame (alpha dropped, grey expanded).

    Raises:
        DeviceError: the file is missing or not an image.
    """
    cv2 = _cv2()
    p = Path(path)
    if not p.is_file():
        # said before OpenCV is asked: it only warns on stderr that it cannot open the file
        raise DeviceError(f"{p}: {'a folder, not an image' if p.is_dir() else 'no such file'}")
    img = cv2.imread(str(p), cv2.IMREAD_COLOR)
    if img is None:
        raise DeviceError(f"{p}: not a readable image")
    return img


class ImageCamera(Camera):
    """One still image, returned on every read (a photo held perfectly still)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.name = f"image {self.path.name}"
        self._frame = load_image(self.path)

    def read(self):
        """The same frame every time (a copy, so callers may draw on it)."""
        return self._frame.copy()


class FolderCamera(Camera):
    """The images of a folder in name order, one per read.

    Args:
        folder: the folder.
        loop: start again after the last image (otherwise ``read`` returns None).
    """

    def __init__(self, folder: str | Path, loop: bool = False) -> None:
        self.folder = Path(folder)
        self.name = f"folder {self.folder}"
        self.loop = loop
        self.files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise DeviceError(f"{self.folder}: no images ({', '.join(IMAGE_SUFFIXES)})")
        self._next = 0

    def read(self):
        """The next image, or None after the last one when not looping."""
        if self._next >= len(self.files):
            if not self.loop:
                return None
            self._next = 0
        path = self.files[self._next]
        self._next += 1
        return load_image(path)


class OpenCvCamera(Camera):
    """A camera by index (``0``) or a video file, through ``cv2.VideoCapture``.

    Args:
        source: camera index or video path.
        width, height: requested capture size (cameras may ignore it).
        loop: restart a video file at its end.
    """

    def __init__(
        self, source: int | str, width: int = 0, height: int = 0, loop: bool = False
    ) -> None:
        cv2 = _cv2()
        self.source = source
        self.name = f"camera {source}"
        self.loop = loop and not isinstance(source, int)
        node = Path(f"/dev/video{source}") if isinstance(source, int) else None
        if node is not None and sys.platform.startswith("linux") and not node.exists():
            # asked to open a missing index, OpenCV prints its own error lines: say it once, plainly
            raise DeviceError(f"{self.name}: cannot open ({node} does not exist)")
        self._cap = cv2.VideoCapture(source)
        if not self._cap.isOpened():
            raise DeviceError(f"{self.name}: cannot open")
        if width and height:
            self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)

    def read(self):
        """The next frame, or None at the end of a video (or when the camera fails)."""
        ok, frame = self._cap.read()
        if not ok and self.loop:
            self._cap.set(_cv2().CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._cap.read()
        if not ok:
            return None
        return frame

    def close(self) -> None:
        """Release the capture device."""
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def open_camera(source: str | int, width: int = 0, height: int = 0, loop: bool = False) -> Camera:
    """Open a camera from one config value.

    ``"0"`` (digits) is a camera index; a folder plays its images; an image file is a
    still; anything else is a video file or stream address for OpenCV.

    Raises:
        DeviceError: the source does not exist or cannot be opened.
        MissingPackageError: OpenCV is not installed.
    """
    if isinstance(source, int) or str(source).strip().isdigit():
        return OpenCvCamera(int(source), width, height)
    p = Path(str(source)).expanduser()
    if p.is_dir():
        return FolderCamera(p, loop=loop)
    if p.suffix.lower() in IMAGE_SUFFIXES:
        if not p.is_file():
            raise DeviceError(f"{p}: image not found")
        return ImageCamera(p)
    if "://" not in str(source) and not p.exists():
        raise DeviceError(f"{p}: camera source not found")
    return OpenCvCamera(str(source), width, height, loop=loop)
