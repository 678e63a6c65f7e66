"""Staff verification: who the staff member is (their face, or their staff number typed
on the keypad), plus their PIN.

Staff numbers such as ``H001`` hold letters, and the kiosk has a 12-key pad: a number
is typed as on a telephone keypad (ITU E.161), each letter by the digit key printed
with it (``H001`` is typed 4001, ``B001`` 2001); digits are typed as they are. Two
active staff numbers that type the same (``G001`` and ``H001``) identify nobody.

Three failed attempts lock staff functions at this kiosk for a while; every
attempt, good or bad, is written to the hash-chained audit log (never the PIN). The
count and the lock are kept in that log, not in memory, so they hold for the kiosk
window and the command line alike, and across a restart.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from assistant import audit
from assistant.errors import KioskError
from assistant.seed import check_pin
from assistant.storage import Database

log = logging.getLogger(__name__)

KEYPAD_LETTERS = {
    **dict.fromkeys("ABC", "2"),
    **dict.fromkeys("DEF", "3"),
    **dict.fromkeys("GHI", "4"),
    **dict.fromkeys("JKL", "5"),
    **dict.fromkeys("MNO", "6"),
    **dict.fromkeys("PQRS", "7"),
    **dict.fromkeys("TUV", "8"),
    **dict.fromkeys("WXYZ", "9"),
}
"""Letter -> the telephone-keypad digit printed with it (ITU E.161)."""


def keypad_code(staff_no: str) -> str:
    """How ``staff_no`` is typed on the 12-key pad: letters as their keypad digit, digits
    as they are, anything else (a dash) left out. ``keypad_code("H001") == "4001"``."""
    out = []
    for ch in staff_no.upper():
        if ch.isascii() and ch.isdigit():
            out.append(ch)
        elif ch in KEYPAD_LETTERS:
            out.append(KEYPAD_LETTERS[ch])
    return "".join(out)


def _finite(value: object) -> float | None:
    """``value`` as a finite number, or None when it is missing or not one."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _audit_time(at: object) -> float | None:
    """An audit entry's ``at`` (UTC, ``2026-12-04T18:00:00.000Z``) in seconds since the epoch."""
    if not isinstance(at, str):
        return None
    try:
        return datetime.fromisoformat(at.replace("Z", "+00:00")).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def _member(row) -> StaffMember:
    return StaffMember(row["id"], row["staff_no"], row["name"], row["role"])


def _only(rows: list, alike: str) -> StaffMember | None:
    """The one staff member in ``rows``; None when there is none, or more than one (which
    one is meant cannot be known, so neither is: logged as staff numbers that ``alike``)."""
    if len(rows) > 1:
        log.warning("staff numbers %s %s", ", ".join(r["staff_no"] for r in rows), alike)
        return None
    return _member(rows[0]) if rows else None


class StaffVerificationFailed(KioskError):
    """The face or PIN did not verify a staff member."""

    prompt_id = "staff_refused"


class StaffLocked(KioskError):
    """Too many failed attempts: staff functions are locked for a while."""

    prompt_id = "staff_locked"


@dataclass(frozen=True)
class StaffMember:
    """A verified staff member."""

    id: int
    staff_no: str
    name: str
    role: str
    """hall, bank or admin."""


class StaffDirectory:
    """Looks up and verifies staff.

    Args:
        db: the kiosk database.
        max_failures: failed attempts before locking.
        lock_s: how long the lock lasts.
        clock: wall-clock time in seconds since the epoch (tests pass their own); the
            lock's end is stored in the audit log, so it must mean the same after a restart.
    """

    def __init__(self, db: Database, max_failures: int = 3, lock_s: float = 300.0, clock=time.time) -> None:
        self.db = db
        self.max_failures = max_failures
        self.lock_s = lock_s
        self.clock = clock

    async def _locked_until(self, now: float) -> float:
        """When the latest lock ends (0 when there never was one, or it is over).

        A lock whose end is missing (written by an older version) or unreadable lasts the
        lock time from when it was written. A lock that would still last longer than its
        own length means the clock was set back since it was written: its end can no
        longer be known, so it is taken as over (a PIN is still needed, and three more
        failures lock again) rather than lasting as long as the clock went back.
        """
        row = await self.db.fetchone(
            "SELECT at, detail FROM audit_log WHERE action = 'staff_locked' ORDER BY id DESC LIMIT 1"
        )
        if row is None:
            return 0.0
        try:
            detail = json.loads(row["detail"])
        except ValueError:
            detail = {}
        if not isinstance(detail, dict):
            detail = {}
        seconds = _finite(detail.get("seconds"))
        if seconds is None or seconds <= 0:
            seconds = self.lock_s
        until = _finite(detail.get("until"))
        if until is None:
            start = _audit_time(row["at"])
            if start is None:
                # No time at all to go by: the lock holds for its length from now on, as
                # if just written (a fresh lock entry is recorded so it ends).
                await audit.record(self.db, "staff_locked", None, purpose="unreadable_lock",
                                   seconds=seconds, until=round(now + seconds, 3))
                return now + seconds
            until = start + seconds
        if until - now > max(seconds, self.lock_s) + 1.0:
            log.warning("the staff lock ends %.0f s from now, longer than it lasts: the clock was set back; "
                        "the lock is taken as over", until - now)
            return 0.0
        return until

    async def _failures(self) -> int:
        """Failed attempts since the last success or lock."""
        row = await self.db.fetchone(
            "SELECT COUNT(*) AS n FROM audit_log WHERE action = 'staff_verify_failed' AND id > "
            "(SELECT COALESCE(MAX(id), 0) FROM audit_log WHERE action IN ('staff_verified', 'staff_locked'))"
        )
        return int(row["n"]) if row else 0

    async def by_user(self, user_id: int) -> StaffMember | None:
        """The active staff member whose face enrolment is this login user, if any."""
        row = await self.db.fetchone(
            "SELECT id, staff_no, name, role FROM staff WHERE user_id = ? AND active = 1", (user_id,)
        )
        return _member(row) if row else None

    async def by_number(self, staff_no: str) -> StaffMember | None:
        """The active staff member with this staff number (any letter case), if any; None when
        two active numbers differ only in letter case (which one is meant cannot be known)."""
        rows = await self.db.fetchall(
            "SELECT id, staff_no, name, role FROM staff WHERE UPPER(staff_no) = UPPER(?) AND active = 1",
            (staff_no.strip(),),
        )
        return _only(rows, "differ only in letter case")

    async def by_keypad(self, code: str) -> StaffMember | None:
        """The active staff member whose staff number is typed ``code`` on the keypad
        (see :func:`keypad_code`); None when nobody, or more than one, types that way."""
        if not code:
            return None
        rows = await self.db.fetchall("SELECT id, staff_no, name, role FROM staff WHERE active = 1")
        return _only([r for r in rows if keypad_code(r["staff_no"]) == code], f"are typed alike ({code}) on the keypad")

    async def verify(
        self, member: StaffMember | None, pin: str, purpose: str, role: str | None = None, by: str = "face"
    ) -> StaffMember:
        """Check the PIN of the staff member recognised by face or typed staff number; raises on failure.

        Args:
            member: who the face watcher recognised, or whose staff number was typed
                (None: no staff face, or no such staff number).
            pin: the PIN typed on the keypad.
            purpose: what the verification is for (recorded in the audit log).
            role: the role required (None: any).
            by: how the member was identified, ``face``, ``keypad`` or ``cli`` (recorded).
        """
        now = self.clock()
        if now < await self._locked_until(now):
            await audit.record(self.db, "staff_verify_locked", None, purpose=purpose)
            raise StaffLocked("staff functions are locked after repeated failures")
        ok = False
        if member is not None:
            row = await self.db.fetchone("SELECT pin_hash FROM staff WHERE id = ?", (member.id,))
            ok = bool(row) and check_pin(pin, row["pin_hash"]) and (role is None or member.role == role)
        if ok:
            assert member is not None
            await audit.record(self.db, "staff_verified", member.id, purpose=purpose, role=member.role, by=by)
            return member
        attempt = await self._failures() + 1
        await audit.record(
            self.db,
            "staff_verify_failed",
            member.id if member else None,
            purpose=purpose,
            attempt=attempt,
            by=by,
            reason=("no_staff_face" if by == "face" else "unknown_staff_no") if member is None else "pin_or_role",
        )
        # Counted again after recording: failures typed at the same moment (the kiosk and
        # the command line) each see the others, so the third one locks however they interleave.
        failures = max(attempt, await self._failures())
        if failures >= self.max_failures:
            await audit.record(self.db, "staff_locked", None, purpose=purpose, seconds=self.lock_s,
                               until=round(now + self.lock_s, 3))
            raise StaffLocked("staff functions are locked after repeated failures")
        raise StaffVerificationFailed("staff verification failed")
