"""Who is in front of the kiosk: the encrypted face gallery, 1:N identification, enrolment.

The gallery keeps one template per enrolment (the normalised mean of several good
frames) in the ``face_embedding`` table, encrypted with AES-GCM under a key from the
config, a key file or the OS keyring. Each ciphertext is bound to its customer and
model id, so rows cannot be swapped between customers. At start-up the templates
of the configured model are decrypted into an in-memory :class:`EmbeddingIndex`.

Identification uses one metric everywhere: the cosine similarity of unit vectors.
A face is IDENTIFIED when its best score reaches the threshold stored for the model
id **and** beats the best other customer by the configured margin; near the
threshold, or with a small margin, it is UNCERTAIN and the dialog reads the account
back; below that it is UNKNOWN. Face is never the only way in.

Raw images are not stored unless ``[face] store_images`` is set (then encrypted
too). A customer's face data is deleted on request (:meth:`Gallery.forget`) and
after the retention period (:meth:`Gallery.purge`).
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import math
import os
import secrets
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assistant.config import Config
from assistant.enrolment import EnrolmentError, FaceEnroller
from assistant.errors import ConfigError, FaceError, MissingPackageError
from assistant.face_index import EmbeddingIndex, SearchResult
from assistant.liveness import LivenessSettings
from assistant.messages import FaceOutcome, FaceSeen
from assistant.storage import Database
from devices.face import FaceObservation, FaceRecognizer, QualityLimits, check_quality

log = logging.getLogger(__name__)

_BLOB_VERSION = 1
_NONCE = 12
_SQL_TIME = "%Y-%m-%dT%H:%M:%S.%f"
RETENTION_CHECK_S = 3600.0
"""How often a running kiosk deletes face templates past ``[face] retention_days``."""


@dataclass(frozen=True)
class FaceSection:
    """The ``[face]`` config section."""

    enabled: bool = True
    """Use face recognition at all (off: the account number is the only way in)."""
    backend: str = "insightface"
    """Face engine backend."""
    model: str = "face"
    """Models-manifest id of the detector + recogniser folder."""
    det_size: int = 640
    """Detector input size in pixels."""
    det_threshold: float = 0.5
    """Detector score threshold."""
    camera: str = "0"
    """Camera index, video file, folder of images or single image."""
    camera_width: int = 1280
    """Requested capture width."""
    camera_height: int = 720
    """Requested capture height."""
    mirrored: bool = False
    """The camera image is mirrored (swaps left and right for the liveness challenge)."""
    timeout_s: float = 5.0
    """Longest wait for the camera or the face engine on one frame."""
    presence_interval_s: float = 0.5
    """Pause between frames while waiting for someone to walk up."""
    frame_interval_s: float = 0.1
    """Pause between frames while identifying or capturing."""
    guidance_interval_s: float = 2.0
    """The same guidance ("please come closer") is posted at most this often."""
    unknown_frames: int = 2
    """Frames in a row that must find nobody enrolled before UNKNOWN is posted."""
    # -- quality gate ---------------------------------------------------------------------
    min_face_px: float = 80.0
    """Smallest face box width in pixels."""
    max_yaw_deg: float = 30.0
    """Largest head turn accepted for matching."""
    max_pitch_deg: float = 30.0
    """Largest nod accepted."""
    max_roll_deg: float = 30.0
    """Largest sideways tilt accepted."""
    min_sharpness: float = 80.0
    """Smallest Laplacian variance of the aligned face."""
    max_outside: float = 0.05
    """Largest fraction of the face box allowed outside the frame."""
    # -- matching --------------------------------------------------------------------------
    thresholds: dict[str, float] = field(default_factory=lambda: {"face": 0.55})
    """Cosine threshold per model id (calibrate with ``main.py face calibrate``)."""
    min_margin: float = 0.08
    """Best customer must beat the second-best by this much to be IDENTIFIED."""
    uncertain_band: float = 0.05
    """Scores this far below the threshold are UNCERTAIN rather than UNKNOWN."""
    # -- enrolment -------------------------------------------------------------------------
    enrol_frames: int = 3
    """Good frames needed for one enrolment."""
    enrol_max_yaw_deg: float = 15.0
    """Enrolment frames must be more frontal than matching frames."""
    enrol_agreement: float = 0.5
    """Every pair of enrolment frames must score at least this (the same person throughout)."""
    max_templates: int = 3
    """Templates kept per customer and model (the oldest goes first)."""
    # -- privacy ---------------------------------------------------------------------------
    key_source: str = "file"
    """Where the encryption key comes from: file, config or keyring."""
    key: str = ""
    """Base64 32-byte key when ``key_source = "config"``."""
    key_file: str = "secrets/face.key"
    """Key file when ``key_source = "file"`` (relative to the data folder; created if missing)."""
    keyring_service: str = "powerkiosk"
    """OS keyring service name when ``key_source = "keyring"``."""
    keyring_user: str = "face-embeddings"
    """OS keyring entry name."""
    store_images: bool = False
    """Keep the enrolment photos (encrypted); off by default."""
    images_dir: str = "faces"
    """Where kept photos go (relative to the data folder)."""
    retention_days: int = 730
    """Face data older than this is purged."""
    # -- search ----------------------------------------------------------------------------
    ivf_min_size: int = 20_000
    """Gallery size from which the inverted-file fast path is built."""
    search_confident: float = 0.6
    """Fast-path matches at or above this score are final; between the uncertain band's
    lower edge and this score the exact scan decides (see ``assistant.face_index``)."""
    liveness: LivenessSettings = field(default_factory=LivenessSettings)
    """The ``[face.liveness]`` sub-section."""

    def limits(self, enrolment: bool = False) -> QualityLimits:
        """The quality gate for matching (or the stricter one for enrolment)."""
        return QualityLimits(
            min_face_px=self.min_face_px,
            max_yaw_deg=self.enrol_max_yaw_deg if enrolment else self.max_yaw_deg,
            max_pitch_deg=self.max_pitch_deg,
            max_roll_deg=self.max_roll_deg,
            min_sharpness=self.min_sharpness,
            max_outside=self.max_outside,
            min_det_score=self.det_threshold,
        )

    def __post_init__(self) -> None:
        # the kiosk purges by this on its own: 0 or less would delete every customer's face
        if not isinstance(self.retention_days, int) or self.retention_days < 1:
            raise ConfigError(f"[face] retention_days must be at least 1, got {self.retention_days!r}")

    def threshold_for(self, model_id: str) -> float:
        """The calibrated threshold for ``model_id``.

        Raises:
            FaceError: no threshold is configured for this model (never guess one).
        """
        try:
            return float(self.thresholds[model_id])
        except KeyError:
            raise FaceError(
                f"[face] thresholds has no entry for model '{model_id}'; calibrate one with "
                "python main.py face calibrate FOLDER and add it to the config"
            ) from None


def face_section(config: Config) -> FaceSection:
    """Read ``[face]`` (with ``[face.liveness]``)."""
    return config.section("face", FaceSection)


# ----------------------------------------------------------------------------- keys


def load_face_key(config: Config, section: FaceSection, create: bool = True) -> bytes:
    """The 32-byte key that encrypts face data.

    ``file`` (default): read from ``key_file``, created with mode 0600 on first use.
    ``config``: base64 in ``[face] key``. ``keyring``: from the OS keyring, created
    there on first use. Losing the key makes the stored face data unreadable, which
    is also how all of it can be destroyed at once. With ``create`` false (face data is
    already stored) a missing key is an error rather than a new key.

    Raises:
        FaceError: the key is malformed or the source is unknown.
        MissingPackageError: ``keyring`` is chosen but not installed.
    """
    source = section.key_source
    if source == "config":
        return _decode_key(section.key, "[face] key")
    if source == "file":
        path = Path(section.key_file).expanduser()
        if not path.is_absolute():
            path = config.data_dir / path
        if not path.exists():
            if not create:
                raise FaceError(_missing_key(str(path)))
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            key = secrets.token_bytes(32)
            # O_EXCL: never overwrite a key another process created meanwhile.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(base64.urlsafe_b64encode(key).decode() + "\n")
            log.info("created a new face-data key in %s", path)
            return key
        if path.stat().st_mode & 0o077:
            log.warning("%s is readable by other users; chmod 600 it", path)
        return _decode_key(path.read_text().strip(), str(path))
    if source == "keyring":
        try:
            import keyring
        except ImportError:
            raise MissingPackageError("keyring", "keyring") from None
        stored = keyring.get_password(section.keyring_service, section.keyring_user)
        if stored is None:
            if not create:
                raise FaceError(_missing_key(f"keyring {section.keyring_service}/{section.keyring_user}"))
            key = secrets.token_bytes(32)
            keyring.set_password(
                section.keyring_service, section.keyring_user, base64.urlsafe_b64encode(key).decode()
            )
            return key
        return _decode_key(stored, f"keyring {section.keyring_service}/{section.keyring_user}")
    raise FaceError(f"[face] key_source must be file, config or keyring, got {source!r}")


def _missing_key(where: str) -> str:
    return (
        f"{where}: the face-data key is missing, but face templates encrypted with it are stored; "
        "restore the key from the kiosk's backup (a new key would make them unreadable). "
        "Face recognition is off until then; customers use their account number"
    )


def _decode_key(text: str, where: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip().encode())
    except (ValueError, TypeError):
        key = b""
    if len(key) != 32:
        raise FaceError(f"{where}: the face-data key must be 32 bytes in base64")
    return key


class EmbeddingCipher:
    """AES-256-GCM for embeddings and photos, bound to the customer and model id."""

    def __init__(self, key: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(key)

    def seal(self, vector: np.ndarray, user_id: int, model_id: str) -> bytes:
        """Encrypt a float32 vector."""
        data = np.asarray(vector, dtype="<f4").tobytes()
        return self.seal_bytes(data, f"face:{model_id}:{user_id}")

    def open(self, blob: bytes, user_id: int, model_id: str) -> np.ndarray:
        """Decrypt a vector sealed for this customer and model.

        Raises:
            FaceError: wrong key, tampered row, or a row moved to another customer.
        """
        data = self.open_bytes(blob, f"face:{model_id}:{user_id}")
        return np.frombuffer(data, dtype="<f4").astype(np.float32)

    def seal_bytes(self, data: bytes, context: str) -> bytes:
        """Encrypt bytes for a context string (authenticated, not secret)."""
        nonce = secrets.token_bytes(_NONCE)
        return bytes([_BLOB_VERSION]) + nonce + self._aead.encrypt(nonce, data, context.encode())

    def open_bytes(self, blob: bytes, context: str) -> bytes:
        """Decrypt bytes sealed for ``context``."""
        from cryptography.exceptions import InvalidTag

        if len(blob) < 1 + _NONCE + 16 or blob[0] != _BLOB_VERSION:
            raise FaceError("face data record has an unknown format")
        try:
            return self._aead.decrypt(blob[1:1 + _NONCE], blob[1 + _NONCE:], context.encode())
        except InvalidTag:
            raise FaceError("face data cannot be decrypted (wrong key or tampered record)") from None


# ----------------------------------------------------------------------------- decisions


@dataclass(frozen=True, eq=False)
class FaceDecision:
    """What looking at one frame concluded."""

    outcome: FaceOutcome
    customer_id: int | None = None
    """The best candidate (IDENTIFIED or UNCERTAIN only)."""
    score: float = 0.0
    """Cosine similarity of the best candidate."""
    margin: float = 0.0
    """Best score minus the second-best customer's score."""
    face: FaceObservation | None = None
    """The face the decision is about (with its embedding when one was computed)."""

    def event(self) -> FaceSeen:
        """The dialog event for this decision."""
        return FaceSeen(
            outcome=self.outcome,
            customer_id=self.customer_id,
            score=round(self.score, 4),
            margin=round(self.margin, 4),
        )


def decide(result: SearchResult, threshold: float, min_margin: float, band: float) -> tuple[FaceOutcome, int | None]:
    """Outcome of a search: IDENTIFIED, UNCERTAIN (read the account back) or UNKNOWN."""
    if result.best is None or result.best.score < threshold - band:
        return FaceOutcome.UNKNOWN, None
    if result.best.score >= threshold and result.margin >= min_margin:
        return FaceOutcome.IDENTIFIED, result.best.owner
    return FaceOutcome.UNCERTAIN, result.best.owner


# ----------------------------------------------------------------------------- gallery


class FaceEnrolmentError(FaceError, EnrolmentError):
    """An enrolment was refused (also an :class:`~assistant.enrolment.EnrolmentError`,
    so the enrolment conversation handles it like its own refusals).

    Attributes:
        reason: no_consent, too_few_frames, inconsistent or already_enrolled.
        other_user: for already_enrolled, the customer the face already belongs to.
    """

    prompt_id = "enrol_failed"

    def __init__(self, message: str, reason: str, other_user: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.other_user = other_user


class Gallery:
    """Encrypted templates of one model in the database, searchable in memory.

    Args:
        db: the open kiosk database.
        cipher: encrypts and decrypts the rows.
        model_id: only templates of this model are loaded and written.
        dim: embedding length.
        images_dir: where encrypted enrolment photos go (None: photos are never kept).
        max_templates: templates kept per customer.
        index: the search index (a default exact/IVF index when None).
    """

    def __init__(
        self,
        db: Database,
        cipher: EmbeddingCipher,
        model_id: str,
        dim: int = 512,
        images_dir: Path | None = None,
        max_templates: int = 3,
        index: EmbeddingIndex | None = None,
    ) -> None:
        self.db = db
        self.cipher = cipher
        self.model_id = model_id
        self.dim = dim
        self.images_dir = images_dir
        self.max_templates = max_templates
        self.index = index or EmbeddingIndex(dim)
        self._pending: list[tuple[int, int, np.ndarray, list[int]]] = []

    def __len__(self) -> int:
        return len(self.index)

    async def load(self) -> int:
        """Decrypt every template of this model into the index; returns how many.

        Raises:
            FaceError: no row can be decrypted (the key was replaced).
        """
        rows = await self.db.fetchall(
            "SELECT id, user_id, embedding FROM face_embedding WHERE model_id = ? ORDER BY id",
            (self.model_id,),
        )
        keys, owners, vecs, bad = [], [], [], 0
        for row in rows:
            try:
                vec = self.cipher.open(bytes(row["embedding"]), int(row["user_id"]), self.model_id)
            except FaceError:
                bad += 1
                continue
            if vec.shape != (self.dim,):
                bad += 1
                continue
            keys.append(int(row["id"]))
            owners.append(int(row["user_id"]))
            vecs.append(vec)
        if rows and bad == len(rows):
            raise FaceError(
                f"none of the {len(rows)} face templates can be decrypted with the configured key; "
                "face recognition is off until the right key is restored"
            )
        if bad:
            log.warning("%d face template(s) could not be decrypted and are ignored", bad)
        if vecs:
            self.index.add_many(np.asarray(keys), np.asarray(owners), np.vstack(vecs))
        return len(vecs)

    def match(self, embedding: np.ndarray) -> SearchResult:
        """The best two customers for an embedding."""
        return self.index.search(embedding)

    async def enrol(
        self,
        user_id: int,
        embeddings: Sequence[np.ndarray],
        images: Sequence[bytes] = (),
        agreement: float = 0.5,
        duplicate_threshold: float | None = None,
    ) -> int:
        """Store one template from several embeddings of the same face; returns its row id.

        Args:
            user_id: the login user (must have granted face consent).
            embeddings: unit embeddings from good frames.
            images: JPEG bytes to keep (only when the gallery has an images folder).
            agreement: every pair of embeddings must score at least this.
            duplicate_threshold: refuse when the face already matches another customer
                at this score (None: do not check).

        Raises:
            FaceEnrolmentError: no consent, no embeddings, frames of different people,
                or the face belongs to another customer.
        """
        if not await self.has_consent(user_id):
            raise FaceEnrolmentError(
                f"customer {user_id} has not consented to face processing (staff record it at enrolment; "
                "for demo photos: face enrol-photo --record-consent --staff S)", "no_consent"
            )
        template = self._template(user_id, embeddings, agreement, duplicate_threshold)
        async with self.db.transaction() as tx:
            row_id, old = await self._store(tx, user_id, template)
        self._apply(row_id, user_id, template, old)
        if images and self.images_dir is not None:
            folder = self.images_dir / str(user_id)
            folder.mkdir(parents=True, exist_ok=True)
            for i, data in enumerate(images):
                sealed = self.cipher.seal_bytes(data, f"image:{user_id}:{row_id}:{i}")
                (folder / f"{row_id}-{i}.jpg.enc").write_bytes(sealed)
        return row_id

    async def enrol_in(
        self,
        tx: Any,
        user_id: int,
        embeddings: Sequence[np.ndarray],
        agreement: float = 0.5,
        duplicate_threshold: float | None = None,
    ) -> int:
        """Like :meth:`enrol`, inside a transaction the caller commits (the enrolment's).

        The new template joins the search index only once the transaction is seen
        committed (:meth:`sync`), so a rolled-back enrolment never leaves a template
        in memory that could later point at a reused customer id.
        """
        cur = await tx.execute(
            "SELECT granted FROM consent WHERE user_id = ? AND purpose = 'face' ORDER BY id DESC LIMIT 1",
            (user_id,),
        )
        row = await cur.fetchone()
        if not (row and row[0]):
            raise FaceEnrolmentError(
                f"customer {user_id} has not consented to face processing (staff record it at enrolment; "
                "for demo photos: face enrol-photo --record-consent --staff S)", "no_consent"
            )
        template = self._template(user_id, embeddings, agreement, duplicate_threshold)
        row_id, old = await self._store(tx, user_id, template)
        self._pending.append((row_id, user_id, template, old))
        return row_id

    async def sync(self) -> int:
        """Bring templates stored by committed :meth:`enrol_in` calls into the index."""
        if not self._pending or self.db.conn.in_transaction:
            return 0
        pending, self._pending = self._pending, []
        ids = [p[0] for p in pending]
        marks = ",".join("?" * len(ids))
        rows = await self.db.fetchall(f"SELECT id FROM face_embedding WHERE id IN ({marks})", ids)
        present = {int(r[0]) for r in rows}
        added = 0
        for row_id, user_id, template, old in pending:
            if row_id in present:
                self._apply(row_id, user_id, template, old)
                added += 1
        return added

    def _template(
        self, user_id: int, embeddings: Sequence[np.ndarray], agreement: float, duplicate_threshold: float | None
    ) -> np.ndarray:
        if not embeddings:
            raise FaceEnrolmentError("no face frames to enrol", "too_few_frames")
        mat = np.vstack([np.asarray(e, dtype=np.float32).ravel() for e in embeddings])
        if mat.shape[1] != self.dim:
            raise FaceEnrolmentError(f"embeddings have {mat.shape[1]} values, expected {self.dim}", "inconsistent")
        mat /= np.linalg.norm(mat, axis=1, keepdims=True)
        template = mat.mean(axis=0)
        template /= np.linalg.norm(template)
        # Every pair of frames must look like the same person (against the mean, two
        # different people can still both score well).
        worst = float((mat @ mat.T).min())
        if worst < agreement:
            raise FaceEnrolmentError(
                f"the enrolment frames do not agree (lowest score {worst:.2f})", "inconsistent"
            )
        if duplicate_threshold is not None:
            found = self.index.search(template, exact=True)
            for cand in (found.best, found.second):
                if cand is not None and cand.owner != user_id and cand.score >= duplicate_threshold:
                    raise FaceEnrolmentError(
                        f"this face already matches customer {cand.owner} ({cand.score:.2f})",
                        "already_enrolled",
                        other_user=cand.owner,
                    )
        return template

    async def _store(self, tx: Any, user_id: int, template: np.ndarray) -> tuple[int, list[int]]:
        blob = self.cipher.seal(template, user_id, self.model_id)
        cur = await tx.execute(
            "INSERT INTO face_embedding(user_id, model_id, embedding) VALUES (?, ?, ?)",
            (user_id, self.model_id, blob),
        )
        row_id = int(cur.lastrowid)
        cur = await tx.execute(
            "SELECT id FROM face_embedding WHERE user_id = ? AND model_id = ? ORDER BY id DESC",
            (user_id, self.model_id),
        )
        old = [int(r[0]) for r in await cur.fetchall()][self.max_templates:]
        for rid in old:
            await tx.execute("DELETE FROM face_embedding WHERE id = ?", (rid,))
        return row_id, old

    def _apply(self, row_id: int, user_id: int, template: np.ndarray, old: list[int]) -> None:
        if old:
            self.index.remove_keys(set(old))
            self._delete_images(user_id, old)
        self.index.add(row_id, user_id, template)

    async def has_consent(self, user_id: int) -> bool:
        """True when the customer's latest face-consent record grants it."""
        row = await self.db.fetchone(
            "SELECT granted FROM consent WHERE user_id = ? AND purpose = 'face' ORDER BY id DESC LIMIT 1",
            (user_id,),
        )
        return bool(row and row["granted"])

    async def forget(self, user_id: int, staff_id: int) -> int:
        """Delete every face template and photo of a customer (all models).

        A consent withdrawal is recorded too, with ``staff_id`` (the staff member who
        took the request), so the face is not enrolled again without fresh consent.
        Returns the number of templates deleted.
        """
        async with self.db.transaction() as tx:
            cur = await tx.execute("DELETE FROM face_embedding WHERE user_id = ?", (user_id,))
            count = cur.rowcount
            await tx.execute(
                "INSERT INTO consent(user_id, purpose, granted, staff_id) VALUES (?, 'face', 0, ?)",
                (user_id, staff_id),
            )
        self.index.remove_owner(user_id)
        self._pending = [p for p in self._pending if p[1] != user_id]
        if self.images_dir is not None:
            shutil.rmtree(self.images_dir / str(user_id), ignore_errors=True)
        log.info("face data of customer %s deleted (%d templates)", user_id, count)
        return count

    async def purge(self, retention_days: int, now: dt.datetime | None = None) -> int:
        """Delete templates (and photos) enrolled more than ``retention_days`` ago."""
        now = now or dt.datetime.now(dt.UTC)
        try:
            cutoff = (now - dt.timedelta(days=retention_days)).strftime(_SQL_TIME)[:-3] + "Z"
        except OverflowError:
            return 0  # a retention reaching back before the calendar begins: nothing is that old
        rows = await self.db.fetchall(
            "SELECT id, user_id FROM face_embedding WHERE created_at < ?", (cutoff,)
        )
        if not rows:
            return 0
        ids = [int(r["id"]) for r in rows]
        async with self.db.transaction() as tx:
            await tx.executemany("DELETE FROM face_embedding WHERE id = ?", [(i,) for i in ids])
        self.index.remove_keys(set(ids))
        by_user: dict[int, list[int]] = {}
        for r in rows:
            by_user.setdefault(int(r["user_id"]), []).append(int(r["id"]))
        for user, rids in by_user.items():
            self._delete_images(user, rids)
        log.info("purged %d face template(s) older than %d days", len(ids), retention_days)
        return len(ids)

    def _delete_images(self, user_id: int, row_ids: Sequence[int]) -> None:
        if self.images_dir is None:
            return
        folder = self.images_dir / str(user_id)
        for rid in row_ids:
            for p in folder.glob(f"{rid}-*.jpg.enc"):
                p.unlink(missing_ok=True)


class GalleryEnroller(FaceEnroller):
    """The encrypted gallery behind the enrolment conversation's face port.

    Args:
        gallery: the loaded gallery.
        agreement: every pair of captured frames must score at least this (the
            conversation already checks its frames, so by default nothing more).
        duplicate_threshold: refuse a face that already matches another customer at
            this score (normally the model's match threshold).
    """

    def __init__(self, gallery: Gallery, agreement: float = -1.0, duplicate_threshold: float | None = None) -> None:
        self.gallery = gallery
        self.agreement = agreement
        self.duplicate_threshold = duplicate_threshold

    async def enrol_in(self, tx: Any, user_id: int, embeddings: list[np.ndarray]) -> int:
        """Store one encrypted template from the captured frames inside ``tx``; returns 1."""
        await self.gallery.enrol_in(tx, user_id, embeddings, self.agreement, self.duplicate_threshold)
        return 1


# ----------------------------------------------------------------------------- identifier


@dataclass(frozen=True)
class EnrolProgress:
    """Where an enrolment stands after one frame."""

    outcome: FaceOutcome | None
    """None when the frame was accepted; otherwise the guidance to give."""
    accepted: int
    """Good frames collected so far."""
    needed: int
    """Good frames needed."""

    @property
    def complete(self) -> bool:
        """True when enough frames were collected to :meth:`EnrolmentCapture.finish`."""
        return self.accepted >= self.needed


class FaceIdentifier:
    """Quality gate, then 1:N identification, for camera frames.

    Args:
        recognizer: the face engine.
        gallery: the loaded gallery of the engine's model.
        section: the ``[face]`` settings.
    """

    def __init__(self, recognizer: FaceRecognizer, gallery: Gallery, section: FaceSection) -> None:
        if gallery.model_id != recognizer.model_id:
            raise FaceError(
                f"gallery model '{gallery.model_id}' differs from engine model '{recognizer.model_id}'"
            )
        self.recognizer = recognizer
        self.gallery = gallery
        self.section = section
        self.threshold = section.threshold_for(recognizer.model_id)
        self.retention_checked_at = -math.inf
        """When (``time.monotonic``) templates past ``retention_days`` were last deleted."""

    async def look(self, frame: np.ndarray) -> FaceDecision:
        """Check one frame and identify the customer in it."""
        await self.gallery.sync()
        now = time.monotonic()
        if now - self.retention_checked_at >= RETENTION_CHECK_S:
            # The retention period is kept by the kiosk itself (it runs for months without
            # a restart); nobody has to remember to run `face purge`.
            self.retention_checked_at = now
            await self.gallery.purge(self.section.retention_days)
        t = self.section.timeout_s
        faces = await self.recognizer.detect_async(frame, t)
        verdict = check_quality(faces, self.section.limits())
        if not verdict.ok or verdict.face is None:
            return FaceDecision(verdict.outcome or FaceOutcome.NO_FACE, face=verdict.face)
        face = await self.recognizer.embed_async(frame, verdict.face, t)
        return self.identify(face)

    def identify(self, face: FaceObservation) -> FaceDecision:
        """Identify an embedded face that passed the quality gate."""
        if face.embedding is None:
            raise FaceError("identify needs an embedded face")
        result = self.gallery.match(face.embedding)
        outcome, customer = decide(
            result, self.threshold, self.section.min_margin, self.section.uncertain_band
        )
        score = result.best.score if result.best else 0.0
        return FaceDecision(outcome, customer, score, result.margin, face)

    def capture(self, user_id: int | None = None, frames_needed: int | None = None) -> EnrolmentCapture:
        """Start collecting enrolment frames (for ``user_id``, when :meth:`EnrolmentCapture.finish` is used)."""
        return EnrolmentCapture(self, user_id, frames_needed or self.section.enrol_frames)


class EnrolmentCapture:
    """Collects good frames of one customer, then stores one template.

    Feed camera frames; each answer says whether the frame was taken or what to tell
    the customer (the same guidance as identification, with a stricter pose limit).
    """

    def __init__(self, identifier: FaceIdentifier, user_id: int | None, needed: int) -> None:
        self.identifier = identifier
        self.user_id = user_id
        self.needed = needed
        self.embeddings: list[np.ndarray] = []
        self.images: list[bytes] = []

    @property
    def complete(self) -> bool:
        """True when enough good frames were collected."""
        return len(self.embeddings) >= self.needed

    async def feed(self, frame: np.ndarray) -> EnrolProgress:
        """Check one frame and keep it when good."""
        ident = self.identifier
        faces = await ident.recognizer.detect_async(frame, ident.section.timeout_s)
        verdict = check_quality(faces, ident.section.limits(enrolment=True))
        if not verdict.ok or verdict.face is None:
            return EnrolProgress(verdict.outcome, len(self.embeddings), self.needed)
        face = await ident.recognizer.embed_async(frame, verdict.face, ident.section.timeout_s)
        assert face.embedding is not None
        self.embeddings.append(face.embedding)
        if ident.section.store_images and ident.gallery.images_dir is not None:
            self.images.append(_jpeg(frame))
        return EnrolProgress(None, len(self.embeddings), self.needed)

    async def finish(self) -> int:
        """Store the template; returns its row id.

        Raises:
            FaceEnrolmentError: too few good frames, frames disagree, no consent, or the
                face already belongs to another customer.
        """
        if self.user_id is None:
            raise FaceError("this capture has no customer to enrol")
        if len(self.embeddings) < self.needed:
            raise FaceEnrolmentError(
                f"{len(self.embeddings)} good frame(s), {self.needed} needed", "too_few_frames"
            )
        ident = self.identifier
        return await ident.gallery.enrol(
            self.user_id,
            self.embeddings,
            self.images,
            agreement=ident.section.enrol_agreement,
            duplicate_threshold=ident.threshold,
        )


def _jpeg(frame: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise FaceError("cannot encode the enrolment photo")
    return buf.tobytes()


# ----------------------------------------------------------------------------- assembly


async def open_face_service(config: Config, db: Database, recognizer: FaceRecognizer | None = None) -> FaceIdentifier:
    """Everything identification needs, from the config: engine, key, loaded gallery.

    Raises:
        ModelError: the face model is not installed (message has the install command).
        FaceError: no threshold for the model, a bad key, or undecryptable face data.
        MissingPackageError: the face extra is not installed.
    """
    section = face_section(config)
    if recognizer is None:
        recognizer = create_face_engine(config, section)
    section.threshold_for(recognizer.model_id)  # fail early, before touching data
    stored = await db.fetchone("SELECT COUNT(*) AS n FROM face_embedding")
    gallery = open_gallery(config, db, section, recognizer.model_id, recognizer.dim,
                           create_key=not (stored and stored["n"]))
    await gallery.load()
    return FaceIdentifier(recognizer, gallery, section)


def create_face_engine(config: Config, section: FaceSection | None = None) -> FaceRecognizer:
    """The configured face engine on the provisioned model folder."""
    from assistant.models import model_path
    from devices.face import create_recognizer

    section = section or face_section(config)
    folder = model_path(config, section.model)
    return create_recognizer(section.backend, folder, section.model, section.det_size, section.det_threshold)


def open_gallery(
    config: Config, db: Database, section: FaceSection, model_id: str, dim: int = 512, create_key: bool = True
) -> Gallery:
    """A gallery (not yet loaded) with the configured key, photo folder and index.

    ``create_key`` false: a missing key is an error (face data is already stored).
    """
    cipher = EmbeddingCipher(load_face_key(config, section, create_key))
    images = config.data_dir / section.images_dir if section.store_images else None
    threshold = section.threshold_for(model_id)
    index = EmbeddingIndex(
        dim,
        ivf_min_size=section.ivf_min_size,
        confident=max(section.search_confident, threshold),
        floor=threshold - section.uncertain_band,
    )
    return Gallery(db, cipher, model_id, dim, images, section.max_templates, index)


def describe(decision: FaceDecision) -> dict[str, Any]:
    """A log-safe summary of a decision (no embedding, no image)."""
    return {
        "outcome": str(decision.outcome),
        "customer_id": decision.customer_id,
        "score": round(decision.score, 3),
        "margin": round(decision.margin, 3),
    }
