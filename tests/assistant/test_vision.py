"""The camera and card devices as the dialog drives them, on real engines and real photos."""

from __future__ import annotations

import functools

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2", reason="OpenCV (the face extra) is not installed")

from assistant.identity import (  # noqa: E402
    EmbeddingCipher,
    FaceIdentifier,
    FaceSection,
    Gallery,
    GalleryEnroller,
)
from assistant.liveness import LivenessSettings  # noqa: E402
from assistant.messages import (  # noqa: E402
    CardRead,
    DeviceAction,
    FaceCaptured,
    FaceOutcome,
    FaceSeen,
    LivenessResult,
    frozen_map,
)
from assistant.vision import CameraDevice, CardDevice  # noqa: E402
from devices.camera import Camera  # noqa: E402
from devices.card_ocr import CardReader  # noqa: E402
from devices.face import InsightFaceRecognizer  # noqa: E402
from tests.face_support import load, provisioned, turn_head  # noqa: E402

SECTION = FaceSection(
    thresholds={"face": 0.55}, frame_interval_s=0.0, presence_interval_s=0.0,
    liveness=LivenessSettings(frame_interval_s=0.0, timeout_s=30.0),
)


class ListCamera(Camera):
    """Plays frames in order, then repeats the last one."""

    def __init__(self, frames):
        self.frames = list(frames)
        self.i = 0

    def read(self):
        frame = self.frames[min(self.i, len(self.frames) - 1)]
        self.i += 1
        return frame


@functools.cache
def photo(name: str) -> np.ndarray:
    img = load(provisioned("face-images") / name)
    img.setflags(write=False)
    return img


@pytest.fixture(scope="module")
def engine():
    return InsightFaceRecognizer(provisioned("face"), model_id="face")


@pytest.fixture
async def enrolled(db, engine):
    """A gallery with obama.jpg enrolled as customer 1."""
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO login_user(uid, phone) VALUES ('U1', '13800138000')")
        await tx.execute("INSERT OR IGNORE INTO staff(id, staff_no, name, role, pin_hash) VALUES (1, 'H001', 'x', 'hall', 'x')")
        await tx.execute("INSERT INTO consent(user_id, purpose, granted, staff_id) VALUES (1, 'face', 1, 1)")
    gallery = Gallery(db, EmbeddingCipher(bytes(32)), "face")
    await gallery.enrol(1, [engine.analyse(photo("obama.jpg"))[0].embedding])
    return FaceIdentifier(engine, gallery, SECTION)


async def run(device, action: str, **args) -> None:
    await device(DeviceAction("camera", action, frozen_map(args)))
    await device.worker.join()


async def test_identify_guides_then_decides(enrolled):
    posted = []
    blurred = cv2.GaussianBlur(photo("obama3.jpg"), (0, 0), 6)
    device = CameraDevice(ListCamera([blurred, blurred, photo("obama3.jpg")]), enrolled, posted.append)
    await run(device, "identify")
    assert [e.outcome for e in posted] == [FaceOutcome.BLURRY, FaceOutcome.IDENTIFIED]
    assert posted[-1].customer_id == 1 and posted[-1].score > 0.6
    assert device.last_embedding is not None


async def test_unknown_needs_two_frames_and_presence_waits_for_someone(enrolled):
    posted = []
    device = CameraDevice(ListCamera([photo("biden.jpg")]), enrolled, posted.append)
    await run(device, "identify")
    assert posted == [FaceSeen(FaceOutcome.UNKNOWN, score=posted[0].score, margin=posted[0].margin)]
    posted.clear()
    empty = np.ascontiguousarray(photo("obama.jpg")[:150, :350])
    device = CameraDevice(ListCamera([empty, empty, photo("obama2.jpg")]), enrolled, posted.append)
    await run(device, "presence")
    assert len(posted) == 1 and posted[0].outcome is FaceOutcome.IDENTIFIED


async def test_capture_posts_each_kept_frame(enrolled, engine):
    kept: list[np.ndarray] = []

    def add_frame(embedding):
        kept.append(embedding)
        return len(kept)

    posted = []
    img = photo("obama.jpg")
    frames = [img, photo("obama2.jpg"), cv2.flip(img, 1), cv2.resize(img, None, fx=0.8, fy=0.8)]
    device = CameraDevice(ListCamera(frames), enrolled, posted.append, add_frame=add_frame)
    await run(device, "capture", frames=3)
    assert posted == [FaceCaptured(1), FaceSeen(FaceOutcome.NOT_FRONTAL), FaceCaptured(2), FaceCaptured(3)]
    ref = engine.analyse(img)[0].embedding
    assert len(kept) == 3 and min(float(k @ ref) for k in kept) > 0.85


async def test_liveness_after_identification(enrolled, engine):
    img = np.ascontiguousarray(photo("obama.jpg")[0:640, 170:810])
    face = engine.detect(img)[0]
    turning = [turn_head(img, face.keypoints, face.bbox, a) for a in (0, 10, 20, 30, 35)]
    posted = []
    device = CameraDevice(ListCamera([photo("obama3.jpg")]), enrolled, posted.append)
    await run(device, "identify")
    device.camera = ListCamera(turning)
    await run(device, "liveness", direction="left")
    assert posted[-1] == LivenessResult(passed=True)
    # a still photo of the same face fails (the challenge times out)
    device.camera = ListCamera([img])
    device.section = FaceSection(thresholds={"face": 0.55}, liveness=LivenessSettings(frame_interval_s=0.0, timeout_s=1.0))
    await run(device, "liveness", direction="right")
    assert posted[-1] == LivenessResult(passed=False, reason="timeout")


async def test_stop_and_no_face_engine(enrolled):
    posted = []
    device = CameraDevice(ListCamera([np.zeros((200, 200, 3), np.uint8)]), enrolled, posted.append)
    await device(DeviceAction("camera", "presence"))
    assert device.worker.busy
    await device(DeviceAction("camera", "stop"))
    assert not device.worker.busy and posted == []
    blind = CameraDevice(ListCamera([photo("obama.jpg")]), None, posted.append, SECTION)
    await run(blind, "identify")
    assert posted == [FaceSeen(FaceOutcome.UNKNOWN)]


async def test_gallery_enroller_inside_the_enrolment_transaction(db, engine):
    gallery = Gallery(db, EmbeddingCipher(bytes(32)), "face")
    ident = FaceIdentifier(engine, gallery, SECTION)
    port = GalleryEnroller(gallery, duplicate_threshold=0.55)
    frames = [engine.analyse(photo("obama.jpg"))[0].embedding]
    # rolled back: the template must not survive anywhere
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO login_user(uid, phone) VALUES ('U1', '13800138000')")
            await tx.execute("INSERT OR IGNORE INTO staff(id, staff_no, name, role, pin_hash) VALUES (1, 'H001', 'x', 'hall', 'x')")
            await tx.execute("INSERT INTO consent(user_id, purpose, granted, staff_id) VALUES (1, 'face', 1, 1)")
            await port.enrol_in(tx, 1, frames)
            raise RuntimeError("the customer walked away")
    assert (await ident.look(photo("obama3.jpg"))).outcome is FaceOutcome.UNKNOWN
    # committed: found after the transaction
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO login_user(uid, phone) VALUES ('U2', '13900139000')")
        await tx.execute("INSERT OR IGNORE INTO staff(id, staff_no, name, role, pin_hash) VALUES (1, 'H001', 'x', 'hall', 'x')")
        await tx.execute("INSERT INTO consent(user_id, purpose, granted, staff_id) VALUES (1, 'face', 1, 1)")
        assert await port.enrol_in(tx, 1, frames) == 1
        assert len(gallery) == 0  # not searchable before the commit
    d = await ident.look(photo("obama3.jpg"))
    assert d.outcome is FaceOutcome.IDENTIFIED and d.customer_id == 1


async def test_card_scan_holds_the_number_and_posts_last_four():
    pytest.importorskip("rapidocr_onnxruntime", reason="the ocr extra is not installed")
    from devices.card_ocr import RapidOcrCardReader
    from tests.devices import card_images

    number = "6222021234567894"
    reader = RapidOcrCardReader(provisioned("ppocr-v4"))
    desk = card_images.photograph(np.full((540, 856, 3), (96, 110, 128), np.uint8))
    card = card_images.photograph(card_images.render_card(number), noise=6, jpeg=60)
    held, posted = [], []
    device = CardDevice(ListCamera([desk, card]), reader, posted.append, hold=lambda n, i: held.append((n, i)),
                        interval_s=0.0)
    await device(DeviceAction("card", "scan"))
    await device.worker.join()
    assert held == [(number, "中国工商银行")]
    assert posted == [CardRead(ok=True, last4="7894", issuer="中国工商银行")]
    posted.clear()
    device = CardDevice(ListCamera([desk]), reader, posted.append, attempts=2, interval_s=0.0)
    await device(DeviceAction("card", "scan"))
    await device.worker.join()
    assert posted == [CardRead(ok=False, problem="card_unreadable")]


class FailingEngine(CardReader):
    """An OCR engine that fails inside, with its own error type (as engines do)."""

    def __init__(self) -> None:
        super().__init__(try_rotated=False)

    def recognise(self, image):
        raise cv2.error("resize: invalid size")


async def test_an_ocr_engine_failure_asks_for_a_rescan_instead_of_leaving_the_customer_waiting():
    # the scan caught only the kiosk's own errors: the engine's error ended the scan
    # task silently and the card screen waited for an answer that never came
    posted = []
    device = CardDevice(ListCamera([np.zeros((540, 856, 3), np.uint8)]), FailingEngine(), posted.append,
                        attempts=2, interval_s=0.0)
    await device(DeviceAction("card", "scan"))
    await device.worker.join()
    assert posted == [CardRead(ok=False, problem="card_unreadable")]


@pytest.mark.parametrize(
    "bad", [np.zeros((0, 0, 3), np.uint8), np.zeros((480, 640, 3, 2), np.uint8)], ids=["empty frame", "5-d frame"]
)
async def test_a_camera_glitch_frame_sends_the_customer_to_the_account_number(enrolled, bad):
    """A camera that hands over a broken frame must end in the account-number path. An empty
    frame made the detector itself fail (ZeroDivisionError inside insightface), which stopped
    the camera worker silently and left the customer on "looking at you"."""
    posted = []
    device = CameraDevice(ListCamera([bad]), enrolled, posted.append)
    await run(device, "identify")
    assert [type(e) for e in posted] == [FaceSeen]
    assert posted[-1].outcome is FaceOutcome.UNKNOWN
