"""``python main.py face ...``: calibrate the match threshold, forget and purge face data.

``calibrate FOLDER`` reads a folder of labelled photos (one sub-folder per person),
scores every pair of faces, and prints the false-accept and false-reject rates
across thresholds with the threshold recommended for a target false-accept rate.
``forget`` deletes one customer's face data on request, ``purge`` deletes what is
older than the retention period, ``enrol-photo`` enrols demo customers from photos
and ``identify`` shows what the kiosk would decide for a photo.

Every face-consent decision these tools record (granted or withdrawn) names the staff
member who took it (``--staff``). A customer who withdrew their consent is never
enrolled again by ``enrol-demo`` unless staff record that the customer consented anew
(``--renew-consent --staff STAFF_NO``).
"""

from __future__ import annotations

import argparse
import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assistant.config import Config
from assistant.errors import DeviceError, FaceError
from assistant.messages import FaceOutcome
from assistant.storage import Database, database_path
from devices.camera import IMAGE_SUFFIXES, load_image
from devices.face import FaceRecognizer, check_quality

# ----------------------------------------------------------------------------- calibration


@dataclass(frozen=True)
class RatePoint:
    """Error rates at one threshold."""

    threshold: float
    far: float
    """False-accept rate: impostor pairs scoring at or above the threshold."""
    frr: float
    """False-reject rate: genuine pairs scoring below it."""


@dataclass
class Calibration:
    """Pair scores from a labelled folder and the rates they imply."""

    genuine: np.ndarray
    impostor: np.ndarray
    persons: int
    faces: int
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    """Photos not used and why (no face, several faces, unreadable)."""

    def rates(self, thresholds: Sequence[float]) -> list[RatePoint]:
        """FAR and FRR at each threshold."""
        out = []
        for t in thresholds:
            far = float(np.mean(self.impostor >= t)) if self.impostor.size else float("nan")
            frr = float(np.mean(self.genuine < t)) if self.genuine.size else float("nan")
            out.append(RatePoint(round(float(t), 4), far, frr))
        return out

    def recommend(self, target_far: float) -> float:
        """The lowest threshold whose measured FAR is at most ``target_far``.

        The lowest such threshold keeps the false-reject rate as low as the target allows.
        """
        if not self.impostor.size:
            raise FaceError("calibration needs at least two persons (impostor pairs)")
        grid = np.round(np.arange(-1.0, 1.0001, 0.005), 4)
        for t in grid:
            if float(np.mean(self.impostor >= t)) <= target_far:
                return float(t)
        return 1.0

    @property
    def resolution(self) -> float:
        """Smallest FAR the impostor pairs can show (rule of three: 3/n at 95 %)."""
        return 3.0 / self.impostor.size if self.impostor.size else 1.0


def calibrate_folder(recognizer: FaceRecognizer, folder: Path) -> Calibration:
    """Embed the largest face of every photo under ``folder/<person>/`` and score all pairs.

    A photo with no face, or with two faces of similar size (which one is the person?),
    is skipped and listed.
    """
    folder = Path(folder)
    people = sorted(p for p in folder.iterdir() if p.is_dir())
    if len(people) < 2:
        raise FaceError(f"{folder}: needs one sub-folder per person, at least two persons")
    embeddings: list[np.ndarray] = []
    labels: list[int] = []
    skipped: list[tuple[Path, str]] = []
    for label, person in enumerate(people):
        for photo in sorted(person.iterdir()):
            if photo.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                image = load_image(photo)
            except DeviceError:
                # a truncated or empty file among the photos: list it, use the others
                skipped.append((photo, "not a readable image"))
                continue
            faces = recognizer.detect(image)
            verdict = check_quality(faces, _relaxed())
            if verdict.face is None or verdict.outcome in (FaceOutcome.NO_FACE, FaceOutcome.SEVERAL_FACES):
                skipped.append((photo, str(verdict.outcome or FaceOutcome.NO_FACE)))
                continue
            face = recognizer.embed(image, verdict.face)
            assert face.embedding is not None
            embeddings.append(face.embedding)
            labels.append(label)
    if len(embeddings) < 2:
        raise FaceError(f"{folder}: fewer than two usable faces")
    mat = np.vstack(embeddings)
    scores = mat @ mat.T
    lab = np.asarray(labels)
    iu = np.triu_indices(len(labels), 1)
    same = lab[iu[0]] == lab[iu[1]]
    pair_scores = scores[iu]
    return Calibration(
        genuine=pair_scores[same],
        impostor=pair_scores[~same],
        persons=len(set(labels)),
        faces=len(labels),
        skipped=skipped,
    )


def _relaxed():
    from devices.face import QualityLimits

    # Calibration photos are chosen by people: only "no face" and "which face?" exclude
    # a photo; size, pose and blur are part of what the threshold must cope with.
    return QualityLimits(min_face_px=0, max_yaw_deg=90, max_pitch_deg=90, max_roll_deg=180,
                         min_sharpness=0, max_outside=1.0)


def format_calibration(cal: Calibration, target_far: float, model_id: str) -> str:
    """The report ``face calibrate`` prints."""
    lines = [
        f"{cal.persons} persons, {cal.faces} faces: {cal.genuine.size} genuine pairs, "
        f"{cal.impostor.size} impostor pairs",
    ]
    if cal.genuine.size:
        lines.append(
            f"genuine scores:  min {cal.genuine.min():.3f}  median {np.median(cal.genuine):.3f}  max {cal.genuine.max():.3f}"
        )
    lines.append(
        f"impostor scores: min {cal.impostor.min():.3f}  median {np.median(cal.impostor):.3f}  max {cal.impostor.max():.3f}"
    )
    lines.append("")
    lines.append("threshold     FAR      FRR")
    for p in cal.rates(np.round(np.arange(0.20, 0.801, 0.05), 2)):
        frr = "   n/a" if math.isnan(p.frr) else f"{p.frr:7.2%}"
        lines.append(f"   {p.threshold:.2f}   {p.far:7.2%}  {frr}")
    rec = cal.recommend(target_far)
    frr_at = cal.rates([rec])[0].frr
    lines.append("")
    lines.append(
        f"recommended threshold for FAR <= {target_far:.2%}: {rec:.3f}"
        + ("" if math.isnan(frr_at) else f" (FRR there {frr_at:.2%})")
    )
    if target_far < cal.resolution:
        lines.append(
            f"warning: {cal.impostor.size} impostor pairs can only show a FAR down to about "
            f"{cal.resolution:.2%}; add more persons before trusting this threshold"
        )
    if cal.genuine.size < 30:
        lines.append(
            f"warning: only {cal.genuine.size} genuine pairs; the FRR is a rough estimate"
        )
    for photo, why in cal.skipped:
        lines.append(f"skipped {photo}: {why}")
    lines.append("")
    if not cal.genuine.size or frr_at >= 1.0:
        # A threshold that turns away every customer (or was never tried on one) is no advice.
        lines.append(
            f"no threshold to paste: at {rec:.3f} "
            + ("every genuine pair is rejected" if cal.genuine.size else "no genuine pair was scored")
            + "; add more persons, each with two or more photos, and run the calibration again"
        )
    else:
        lines.append(f'config: [face] thresholds = {{ "{model_id}" = {rec:.3f} }}')
    return "\n".join(lines)


# ----------------------------------------------------------------------------- CLI


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``face`` sub-commands."""
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("calibrate", help="FAR/FRR across thresholds from a folder of labelled photos")
    p.add_argument("folder", type=Path, help="one sub-folder per person, photos inside")
    p.add_argument("--target-far", type=float, default=0.001, help="false-accept rate to meet (default 0.001)")
    p.set_defaults(func=_cmd_calibrate)
    p = sub.add_parser("forget", help="delete one customer's face data (on request)")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--phone", help="the customer's login phone number")
    who.add_argument("--user", type=int, help="the customer's login user id")
    p.add_argument("--staff", required=True, help="staff number of who handled the request (recorded with the withdrawal)")
    p.set_defaults(func=_cmd_forget)
    p = sub.add_parser("purge", help="delete face data older than the retention period")
    p.add_argument("--days", type=int, help="retention in days (default: [face] retention_days)")
    p.set_defaults(func=_cmd_purge)
    p = sub.add_parser("enrol-photo", help="enrol a customer from photos (demo data)")
    p.add_argument("photos", nargs="+", type=Path)
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--phone")
    who.add_argument("--user", type=int)
    p.add_argument("--record-consent", action="store_true",
                   help="record the customer's face consent first (demo data only; needs --staff)")
    p.add_argument("--staff", help="staff number recorded with the consent")
    p.set_defaults(func=_cmd_enrol_photo)
    p = sub.add_parser("enrol-demo", help="enrol the demo customers' photos (after db seed)")
    p.add_argument("--staff", help="staff number recorded with each consent (default: the demo's first hall staff member)")
    p.add_argument("--renew-consent", action="store_true",
                   help="customers who withdrew their face consent have given it again, to --staff (needs --staff)")
    p.set_defaults(func=_cmd_enrol_demo)
    p = sub.add_parser("identify", help="what the kiosk decides for one photo")
    p.add_argument("photo", type=Path)
    p.set_defaults(func=_cmd_identify)


def _cmd_calibrate(args: argparse.Namespace, config: Config) -> int:
    from assistant.identity import create_face_engine, face_section

    if not 0.0 < args.target_far < 1.0:  # also refuses nan
        raise FaceError(f"--target-far must be a rate between 0 and 1 (e.g. 0.001), got {args.target_far}")
    section = face_section(config)
    engine = create_face_engine(config, section)
    cal = calibrate_folder(engine, args.folder)
    print(format_calibration(cal, args.target_far, engine.model_id))
    return 0


def _cmd_forget(args: argparse.Namespace, config: Config) -> int:
    return asyncio.run(_forget(args, config))


async def _forget(args: argparse.Namespace, config: Config) -> int:
    from assistant.identity import face_section, open_gallery

    section = face_section(config)
    async with Database(database_path(config)) as db:
        user_id = await _user_id(db, args.phone, args.user)
        staff_id = await _staff_id(db, args.staff)
        assert staff_id is not None  # --staff is required
        gallery = open_gallery(config, db, section, section.model)
        count = await gallery.forget(user_id, staff_id)
    print(f"customer {user_id}: {count} face template(s) deleted; consent withdrawal recorded")
    return 0


def _cmd_purge(args: argparse.Namespace, config: Config) -> int:
    return asyncio.run(_purge(args, config))


async def _purge(args: argparse.Namespace, config: Config) -> int:
    from assistant.identity import face_section, open_gallery

    section = face_section(config)
    days = args.days if args.days is not None else section.retention_days
    if days < 1:
        # A retention below one day would delete every customer's face at once.
        raise FaceError(f"--days must be at least 1 (got {days}); to delete one customer use: face forget")
    async with Database(database_path(config)) as db:
        gallery = open_gallery(config, db, section, section.model)
        count = await gallery.purge(days)
    print(f"{count} face template(s) older than {days} days deleted")
    return 0


def _cmd_enrol_photo(args: argparse.Namespace, config: Config) -> int:
    return asyncio.run(_enrol_photo(args, config))


async def _enrol_photo(args: argparse.Namespace, config: Config) -> int:
    from assistant.identity import open_face_service

    if args.record_consent and not args.staff:
        raise FaceError("--record-consent needs --staff STAFF_NO: the staff member who took the customer's consent")
    async with Database(database_path(config)) as db:
        user_id = await _user_id(db, args.phone, args.user)
        staff_id = await _staff_id(db, args.staff)
        if args.record_consent:
            assert staff_id is not None
            await record_consent(db, user_id, staff_id)
        ident = await open_face_service(config, db)
        row = await enrol_photos(ident, user_id, args.photos)
    print(f"customer {user_id}: enrolled from {len(args.photos)} photo(s) (template {row})")
    return 0


async def record_consent(db: Database, user_id: int, staff_id: int, granted: bool = True) -> None:
    """Record a face-processing consent decision, with the staff member who took it.

    Raises:
        FaceError: no staff member is named (a consent nobody took is not a consent).
    """
    if staff_id is None:
        raise FaceError(f"customer {user_id}: a consent decision needs the staff member who recorded it (--staff)")
    async with db.transaction() as tx:
        await tx.execute(
            "INSERT INTO consent(user_id, purpose, granted, staff_id) VALUES (?, 'face', ?, ?)",
            (user_id, int(granted), staff_id),
        )


async def enrol_photos(identifier: object, user_id: int, photos: Sequence[Path]) -> int:
    """Enrol a customer from photos (each must pass the enrolment quality gate).

    Demo customers have one photo each, so one good photo is enough here; the live
    enrolment conversation uses several camera frames.

    Raises:
        FaceEnrolmentError: a photo fails the quality gate (the reason is named).
    """
    from assistant.identity import FaceEnrolmentError, FaceIdentifier

    assert isinstance(identifier, FaceIdentifier)
    enroller = identifier.capture(user_id, frames_needed=len(photos))
    for photo in photos:
        progress = await enroller.feed(load_image(photo))
        if progress.outcome is not None:
            raise FaceEnrolmentError(f"{photo}: not usable for enrolment ({progress.outcome})", "too_few_frames")
    return await enroller.finish()


def _cmd_enrol_demo(args: argparse.Namespace, config: Config) -> int:
    return asyncio.run(enrol_demo(config, staff=args.staff, renew_consent=args.renew_consent))


def demo_consent_staff() -> str:
    """The staff number demo consents are recorded with: the demo file's first hall staff member."""
    from assistant.seed import load_demo

    staff = load_demo().get("staff", [])
    hall = [s for s in staff if s.get("role") == "hall"] or staff
    if not hall:
        raise FaceError("the demo data names no staff member to record the consents; use --staff")
    return str(hall[0]["staff_no"])


async def latest_consent(db: Database, user_id: int) -> Any:
    """The customer's latest face-consent record (``granted``, ``staff_id``, ``at``), or None."""
    return await db.fetchone(
        "SELECT granted, staff_id, at FROM consent WHERE user_id = ? AND purpose = 'face' ORDER BY id DESC LIMIT 1",
        (user_id,),
    )


async def enrol_demo(config: Config, out=None, err=None, staff: str | None = None, renew_consent: bool = False) -> int:
    """Enrol every demo customer that has a ``face_photo`` (consent recorded as demo data).

    Customers already enrolled are left as they are, so running it twice is harmless.
    A customer with no consent record gets one, taken by ``staff`` (default: the demo's
    hall staff member). A customer who **withdrew** consent (``face forget``) is refused,
    named on ``err``, unless ``renew_consent`` says they consented anew, to ``staff``
    (named explicitly). Returns 1 when a customer was refused, else 0.
    """
    import sys

    from assistant.identity import open_face_service
    from assistant.models import Layout
    from assistant.seed import load_demo

    out = out or sys.stdout
    err = err or sys.stderr
    if renew_consent and not staff:
        raise FaceError("--renew-consent needs --staff STAFF_NO: the staff member the customers gave their consent to")
    staff_no = staff or demo_consent_staff()
    data = Layout.from_config(config).data
    refused = 0
    async with Database(database_path(config)) as db:
        staff_id = await _staff_id(db, staff_no)
        assert staff_id is not None
        ident = await open_face_service(config, db)
        for c in load_demo().get("customers", []):
            if not c.get("face_photo") or not c.get("phone"):
                continue
            row = await db.fetchone("SELECT id FROM login_user WHERE phone = ?", (str(c["phone"]),))
            if row is None:
                raise FaceError(f"demo customer {c['phone']} is not in the database; run: python main.py db seed")
            user_id = int(row[0])
            if ident.gallery.index.owners() & {user_id}:
                print(f"customer {user_id}: already enrolled", file=out)
                continue
            consent = await latest_consent(db, user_id)
            if consent is not None and not consent["granted"] and not renew_consent:
                # Withdrawn: only the customer can give it again, and staff must record that.
                print(
                    f"customer {user_id}: not enrolled: the customer withdrew face consent on {consent['at']}; "
                    "only if they consent anew: face enrol-demo --renew-consent --staff STAFF_NO",
                    file=err,
                )
                refused += 1
                continue
            if consent is None or not consent["granted"]:
                await record_consent(db, user_id, staff_id)
                what = "consent renewed" if consent is not None else "consent recorded"
                print(f"customer {user_id}: {what} by staff {staff_no}", file=out)
            await enrol_photos(ident, user_id, [data / str(c["face_photo"])])
            print(f"customer {user_id}: enrolled from {c['face_photo']}", file=out)
    return 1 if refused else 0


def _cmd_identify(args: argparse.Namespace, config: Config) -> int:
    return asyncio.run(_identify(args, config))


async def _identify(args: argparse.Namespace, config: Config) -> int:
    from assistant.identity import describe, open_face_service

    async with Database(database_path(config)) as db:
        ident = await open_face_service(config, db)
        decision = await ident.look(load_image(args.photo))
    info = describe(decision)
    print(" ".join(f"{k}={v}" for k, v in info.items()))
    if not len(ident.gallery):
        print("(no face is enrolled yet, so nobody can be recognised: python main.py face enrol-demo "
              "enrols the demo customers)")
    return 0


async def _user_id(db: Database, phone: str | None, user: int | None) -> int:
    if user is not None:
        row = await db.fetchone("SELECT id FROM login_user WHERE id = ?", (user,))
    else:
        row = await db.fetchone("SELECT id FROM login_user WHERE phone = ?", (phone,))
    if row is None:
        raise FaceError(f"no customer with {'user id ' + str(user) if user is not None else 'that phone number'}")
    return int(row[0])


async def _staff_id(db: Database, staff_no: str | None) -> int | None:
    if not staff_no:
        return None
    row = await db.fetchone("SELECT id FROM staff WHERE staff_no = ?", (staff_no,))
    if row is None:
        raise FaceError(f"no staff member {staff_no} (the demo staff are added by: python main.py db seed)")
    return int(row[0])


__all__ = [
    "Calibration",
    "enrol_demo",
    "RatePoint",
    "calibrate_folder",
    "enrol_photos",
    "format_calibration",
    "record_consent",
]
