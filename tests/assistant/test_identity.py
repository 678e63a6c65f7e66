"""Identification, enrolment and the encrypted gallery, with the real face models on real photos."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import stat

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2", reason="OpenCV (the face extra) is not installed")

from assistant.config import Config  # noqa: E402
from assistant.enrolment import EnrolmentError  # noqa: E402
from assistant.errors import FaceError  # noqa: E402
from assistant.face_index import Candidate, SearchResult  # noqa: E402
from assistant.identity import (  # noqa: E402
    EmbeddingCipher,
    FaceEnrolmentError,
    FaceIdentifier,
    FaceSection,
    Gallery,
    decide,
    load_face_key,
    open_face_service,
)
from assistant.messages import FaceOutcome, FaceSeen  # noqa: E402
from devices.face import InsightFaceRecognizer  # noqa: E402
from tests.face_support import load, provisioned  # noqa: E402

KEY = bytes(range(32))
SECTION = FaceSection(thresholds={"face": 0.55})


@pytest.fixture(scope="module")
def engine():
    return InsightFaceRecognizer(provisioned("face"), model_id="face")


@pytest.fixture(scope="module")
def photos():
    return provisioned("face-images")


async def hall_staff(db) -> int:
    """A hall staff member to record consents with (added once)."""
    async with db.transaction() as tx:
        await tx.execute("INSERT OR IGNORE INTO staff(staff_no, name, role, pin_hash) VALUES ('H001', 'x', 'hall', 'x')")
    return int((await db.fetchone("SELECT id FROM staff WHERE staff_no = 'H001'"))[0])


async def add_user(db, phone: str, consent: bool = True) -> int:
    staff_id = await hall_staff(db)
    async with db.transaction() as tx:
        cur = await tx.execute("INSERT INTO login_user(uid, phone) VALUES (?, ?)", (f"U{phone}", phone))
        user_id = cur.lastrowid
        if consent:
            await tx.execute(
                "INSERT INTO consent(user_id, purpose, granted, staff_id) VALUES (?, 'face', 1, ?)", (user_id, staff_id)
            )
    return user_id


@functools.cache
def photo(path) -> np.ndarray:
    """A photo, decoded once per test run (callers must not modify it)."""
    img = load(path)
    img.setflags(write=False)
    return img


_embeddings: dict = {}


def embed(engine, path) -> np.ndarray:
    if path not in _embeddings:
        _embeddings[path] = engine.analyse(photo(path))[0].embedding
    return _embeddings[path]


@pytest.fixture
async def ident(db, engine):
    gallery = Gallery(db, EmbeddingCipher(KEY), "face")
    await gallery.load()
    return FaceIdentifier(engine, gallery, SECTION)


def test_decision_rules():
    def result(best, second):
        return SearchResult(Candidate(7, best), Candidate(8, second) if second is not None else None, True)

    assert decide(result(0.70, 0.10), 0.55, 0.08, 0.05) == (FaceOutcome.IDENTIFIED, 7)
    assert decide(result(0.70, None), 0.55, 0.08, 0.05) == (FaceOutcome.IDENTIFIED, 7)
    assert decide(result(0.70, 0.65), 0.55, 0.08, 0.05) == (FaceOutcome.UNCERTAIN, 7)  # look-alike
    assert decide(result(0.52, 0.10), 0.55, 0.08, 0.05) == (FaceOutcome.UNCERTAIN, 7)  # near threshold
    assert decide(result(0.45, 0.10), 0.55, 0.08, 0.05) == (FaceOutcome.UNKNOWN, None)
    assert decide(SearchResult(None, None, True), 0.55, 0.08, 0.05) == (FaceOutcome.UNKNOWN, None)


async def test_enrol_then_identify_real_photos(db, ident, engine, photos):
    obama = await add_user(db, "13800138000")
    await ident.gallery.enrol(obama, [embed(engine, photos / "obama.jpg")])
    for name in ("obama2.jpg", "obama3.jpg"):
        d = await ident.look(photo(photos / name))
        assert d.outcome is FaceOutcome.IDENTIFIED and d.customer_id == obama, name
        assert 0.6 < d.score < 0.8
    d = await ident.look(photo(photos / "biden.jpg"))
    assert d.outcome is FaceOutcome.UNKNOWN and d.customer_id is None and d.score < 0.2
    ev = d.event()
    assert isinstance(ev, FaceSeen) and ev.outcome is FaceOutcome.UNKNOWN
    # a second customer: the margin is now measured against them
    biden = await add_user(db, "13900139000")
    await ident.gallery.enrol(biden, [embed(engine, photos / "biden.jpg")])
    d = await ident.look(photo(photos / "obama2.jpg"))
    assert d.outcome is FaceOutcome.IDENTIFIED and d.customer_id == obama
    assert d.margin == pytest.approx(d.score - float(embed(engine, photos / "obama2.jpg") @ embed(engine, photos / "biden.jpg")), abs=1e-4)


async def test_bad_frames_are_not_matched(ident, photos, engine):
    img = photo(photos / "obama.jpg")
    assert (await ident.look(img[:150, :350])).outcome is FaceOutcome.NO_FACE
    assert (await ident.look(cv2.GaussianBlur(img, (0, 0), 4))).outcome is FaceOutcome.BLURRY
    small = cv2.resize(img, None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
    assert (await ident.look(small)).outcome is FaceOutcome.TOO_SMALL
    group = photo(provisioned("scrfd-images") / "solvay_conference_1927.jpg")
    assert (await ident.look(group)).outcome is FaceOutcome.SEVERAL_FACES


async def test_embeddings_are_encrypted_and_bound_to_the_customer(db, engine, photos):
    obama = await add_user(db, "13800138000")
    other = await add_user(db, "13700137000")
    gallery = Gallery(db, EmbeddingCipher(KEY), "face")
    vec = embed(engine, photos / "obama.jpg")
    row_id = await gallery.enrol(obama, [vec])
    row = await db.fetchone("SELECT embedding FROM face_embedding WHERE id = ?", (row_id,))
    blob = bytes(row["embedding"])
    assert vec.astype("<f4").tobytes()[:16] not in blob
    assert len(blob) == 1 + 12 + 512 * 4 + 16
    # the right key opens it; a fresh gallery loads it
    fresh = Gallery(db, EmbeddingCipher(KEY), "face")
    assert await fresh.load() == 1
    # a row moved to another customer no longer decrypts (and is ignored)
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO face_embedding(user_id, model_id, embedding) VALUES (?, 'face', ?)", (other, blob)
        )
    moved = Gallery(db, EmbeddingCipher(KEY), "face")
    assert await moved.load() == 1
    assert moved.index.owners() == {obama}
    # the wrong key opens nothing: refuse to run with it
    with pytest.raises(FaceError, match="can be decrypted with the configured key"):
        await Gallery(db, EmbeddingCipher(bytes(32)), "face").load()


async def test_consent_is_required_and_forget_withdraws_it(db, ident, engine, photos):
    no_consent = await add_user(db, "13600136000", consent=False)
    with pytest.raises(FaceEnrolmentError) as exc:
        await ident.gallery.enrol(no_consent, [embed(engine, photos / "obama.jpg")])
    assert exc.value.reason == "no_consent" and exc.value.prompt_id == "enrol_failed"
    assert isinstance(exc.value, EnrolmentError)  # the conversation handles it like its own
    user = await add_user(db, "13800138000")
    await ident.gallery.enrol(user, [embed(engine, photos / "obama.jpg")])
    assert (await ident.look(photo(photos / "obama3.jpg"))).customer_id == user
    assert await ident.gallery.forget(user, await hall_staff(db)) == 1
    assert (await ident.look(photo(photos / "obama3.jpg"))).outcome is FaceOutcome.UNKNOWN
    assert await db.fetchone("SELECT 1 FROM face_embedding WHERE user_id = ?", (user,)) is None
    with pytest.raises(FaceEnrolmentError, match="not consented"):
        await ident.gallery.enrol(user, [embed(engine, photos / "obama.jpg")])


async def test_the_same_face_cannot_be_enrolled_twice(db, ident, engine, photos):
    first = await add_user(db, "13800138000")
    second = await add_user(db, "13900139000")
    await ident.gallery.enrol(first, [embed(engine, photos / "obama.jpg")])
    enroller = ident.capture(second, frames_needed=1)
    assert (await enroller.feed(photo(photos / "obama3.jpg"))).complete
    with pytest.raises(FaceEnrolmentError) as exc:
        await enroller.finish()
    assert exc.value.reason == "already_enrolled" and exc.value.other_user == first


async def test_enrolment_from_several_frames(db, ident, photos):
    user = await add_user(db, "13800138000")
    enroller = ident.capture(user)  # three frames
    img = photo(photos / "obama.jpg")
    p = await enroller.feed(cv2.GaussianBlur(img, (0, 0), 4))
    assert p.outcome is FaceOutcome.BLURRY and p.accepted == 0
    # obama2.jpg is turned by about 25 degrees: fine for matching, not for enrolment
    p = await enroller.feed(photo(photos / "obama2.jpg"))
    assert p.outcome is FaceOutcome.NOT_FRONTAL
    with pytest.raises(FaceEnrolmentError, match="0 good frame"):
        await enroller.finish()
    for frame in (img, cv2.flip(img, 1), cv2.resize(img, None, fx=0.8, fy=0.8)):
        p = await enroller.feed(frame)
        assert p.outcome is None
    assert p.complete and p.accepted == 3
    await enroller.finish()
    d = await ident.look(photo(photos / "obama3.jpg"))
    assert d.outcome is FaceOutcome.IDENTIFIED and d.customer_id == user


async def test_frames_of_different_people_are_refused(db, ident, engine, photos):
    user = await add_user(db, "13800138000")
    with pytest.raises(FaceEnrolmentError) as exc:
        await ident.gallery.enrol(user, [embed(engine, photos / "obama.jpg"), embed(engine, photos / "biden.jpg")])
    assert exc.value.reason == "inconsistent"


async def test_templates_are_capped_and_purged_after_retention(db, engine, photos):
    gallery = Gallery(db, EmbeddingCipher(KEY), "face", max_templates=2)
    user = await add_user(db, "13800138000")
    vec = embed(engine, photos / "obama.jpg")
    ids = [await gallery.enrol(user, [vec]) for _ in range(3)]
    rows = await db.fetchall("SELECT id FROM face_embedding ORDER BY id")
    assert [r["id"] for r in rows] == ids[1:] and len(gallery) == 2
    assert await gallery.purge(730) == 0
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=731)
    assert await gallery.purge(730, now=later) == 2
    assert len(gallery) == 0 and await db.fetchone("SELECT 1 FROM face_embedding") is None


async def test_photos_kept_only_when_configured_and_encrypted(db, engine, photos, tmp_path):
    section = FaceSection(thresholds={"face": 0.55}, store_images=True)
    gallery = Gallery(db, EmbeddingCipher(KEY), "face", images_dir=tmp_path / "faces")
    ident = FaceIdentifier(engine, gallery, section)
    user = await add_user(db, "13800138000")
    enroller = ident.capture(user, frames_needed=1)
    await enroller.feed(photo(photos / "obama.jpg"))
    row = await enroller.finish()
    kept = sorted((tmp_path / "faces" / str(user)).iterdir())
    assert [p.name for p in kept] == [f"{row}-0.jpg.enc"]
    data = kept[0].read_bytes()
    assert not data.startswith(b"\xff\xd8")  # not a readable JPEG
    jpeg = gallery.cipher.open_bytes(data, f"image:{user}:{row}:0")
    assert jpeg.startswith(b"\xff\xd8")
    await gallery.forget(user, await hall_staff(db))
    assert not (tmp_path / "faces" / str(user)).exists()
    # default: nothing is written
    plain = FaceIdentifier(engine, Gallery(db, EmbeddingCipher(KEY), "face"), FaceSection(thresholds={"face": 0.55}))
    other = await add_user(db, "13900139000")
    e = plain.capture(other, frames_needed=1)
    await e.feed(photo(photos / "biden.jpg"))
    await e.finish()
    assert e.images == []


def test_keys_from_config_file_and_errors(config: Config):
    good = base64.urlsafe_b64encode(KEY).decode()
    assert load_face_key(config, FaceSection(key_source="config", key=good)) == KEY
    with pytest.raises(FaceError, match="32 bytes"):
        load_face_key(config, FaceSection(key_source="config", key="c2hvcnQ="))
    section = FaceSection(key_source="file", key_file="secrets/face.key")
    first = load_face_key(config, section)
    path = config.data_dir / "secrets" / "face.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_face_key(config, section) == first and len(first) == 32
    with pytest.raises(FaceError, match="key_source"):
        load_face_key(config, FaceSection(key_source="usb"))


def test_keyring_source(config: Config):
    keyring = pytest.importorskip("keyring", reason="keyring is an optional extra, not part of the kiosk's install")
    from keyring.backend import KeyringBackend

    class MemoryKeyring(KeyringBackend):
        priority = 1
        store: dict = {}

        def get_password(self, service, username):
            return self.store.get((service, username))

        def set_password(self, service, username, password):
            self.store[(service, username)] = password

        def delete_password(self, service, username):
            self.store.pop((service, username), None)

    keyring.set_keyring(MemoryKeyring())
    section = FaceSection(key_source="keyring")
    key = load_face_key(config, section)
    assert load_face_key(config, section) == key and len(key) == 32


async def test_open_face_service_needs_a_threshold_for_the_model(db, engine, tmp_path):
    cfg_file = tmp_path / "kiosk.toml"
    cfg_file.write_text(f'[kiosk]\ndata_dir = "{tmp_path}"\n[face]\nthresholds = {{ other = 0.5 }}\n')
    with pytest.raises(FaceError, match="no entry for model 'face'"):
        await open_face_service(Config.load(cfg_file), db, recognizer=engine)
    cfg_file.write_text(f'[kiosk]\ndata_dir = "{tmp_path}"\n[face]\nthresholds = {{ face = 0.55 }}\n')
    ident = await open_face_service(Config.load(cfg_file), db, recognizer=engine)
    assert ident.threshold == 0.55 and len(ident.gallery) == 0
    assert (tmp_path / "secrets" / "face.key").is_file()


async def test_a_lost_key_file_is_not_replaced_while_faces_are_stored(db, engine, photos, tmp_path):
    cfg_file = tmp_path / "kiosk.toml"
    cfg_file.write_text(f'[kiosk]\ndata_dir = "{tmp_path}"\n[face]\nthresholds = {{ face = 0.55 }}\n')
    config = Config.load(cfg_file)
    ident = await open_face_service(config, db, recognizer=engine)
    obama = await add_user(db, "13800138000")
    await ident.gallery.enrol(obama, [embed(engine, photos / "obama.jpg")])
    key_file = tmp_path / "secrets" / "face.key"
    saved = key_file.read_bytes()
    key_file.unlink()  # lost (a disk swapped, a folder cleaned)
    with pytest.raises(FaceError, match="face-data key is missing.*restore the key"):
        await open_face_service(config, db, recognizer=engine)
    assert not key_file.exists()  # no new key that would orphan the stored faces
    key_file.write_bytes(saved)  # restored from the backup: the customer is known again
    ident = await open_face_service(config, db, recognizer=engine)
    d = await ident.look(photo(photos / "obama2.jpg"))
    assert d.outcome is FaceOutcome.IDENTIFIED and d.customer_id == obama


async def test_a_running_kiosk_stops_recognising_faces_past_retention(db, engine, photos):
    """[face] retention_days is kept by the kiosk itself: a template older than it is deleted
    (and no longer recognised) without anyone running `face purge`."""
    section = FaceSection(thresholds={"face": 0.55}, retention_days=30)
    gallery = Gallery(db, EmbeddingCipher(KEY), "face")
    await gallery.load()
    ident = FaceIdentifier(engine, gallery, section)
    old, new = await add_user(db, "13800138000"), await add_user(db, "13900139000")
    await gallery.enrol(old, [embed(engine, photos / "obama.jpg")])
    await gallery.enrol(new, [embed(engine, photos / "biden.jpg")])
    assert (await ident.look(photo(photos / "obama2.jpg"))).customer_id == old
    # obama's template was enrolled 31 days ago; a day has passed since the last check
    async with db.transaction() as tx:
        await tx.execute("UPDATE face_embedding SET created_at = ? WHERE user_id = ?",
                         ((dt.datetime.now(dt.UTC) - dt.timedelta(days=31)).strftime("%Y-%m-%dT%H:%M:%S.000Z"), old))
    ident.retention_checked_at -= 86_400
    d = await ident.look(photo(photos / "obama2.jpg"))
    assert d.outcome is FaceOutcome.UNKNOWN and d.customer_id is None
    assert [r[0] for r in await db.fetchall("SELECT user_id FROM face_embedding")] == [new]
    assert (await ident.look(photo(photos / "biden.jpg"))).customer_id == new
