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
import time
from dataclasses import dataclass

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

    async def _locked_until(self) -> float:
        """When the latest lock ends (0 when there never was one)."""
        row = await self.db.fetchone(
            "SELECT detail FROM audit_log WHERE action = 'staff_locked' ORDER BY id DESC LIMIT 1"
        )
        if row is None:
            return 0.0
        try:
            return float(json.loads(row["detail"]).get("until", 0.0))
        except (ValueError, TypeError, AttributeError):
            return 0.0

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
        return StaffMember(row["id"], row["staff_no"], row["name"], row["role"]) if row else None

    async def by_number(self, staff_no: str) -> StaffMember | None:
        """The active staff member with this staff number (any letter case), if any."""
        row = await self.db.fetchone(
            "SELECT id, staff_no, name, role FROM staff WHERE UPPER(staff_no) = UPPER(?) AND active = 1",
            (staff_no.strip(),),
        )
        return StaffMember(row["id"], row["staff_no"], row["name"], row["role"]) if row else None

    async def by_keypad(self, code: str) -> StaffMember | None:
        """The active staff member whose staff number is typed ``code`` on the keypad
        (see :func:`keypad_code`); None when nobody, or more than one, types that way."""
        if not code:
            return None
        rows = await self.db.fetchall("SELECT id, staff_no, name, role FROM staff WHERE active = 1")
        found = [r for r in rows if keypad_code(r["staff_no"]) == code]
        if len(found) > 1:
            # Typed alike on the pad: which one is meant cannot be known, so neither is.
            log.warning("staff numbers %s are typed alike (%s) on the keypad", ", ".join(r["staff_no"] for r in found), code)
            return None
        return StaffMember(found[0]["id"], found[0]["staff_no"], found[0]["name"], found[0]["role"]) if found else None

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
        if now < await self._locked_until():
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
        failures = await self._failures() + 1
        await audit.record(
            self.db,
            "staff_verify_failed",
            member.id if member else None,
            purpose=purpose,
            attempt=failures,
            by=by,
            reason=("no_staff_face" if by == "face" else "unknown_staff_no") if member is None else "pin_or_role",
        )
        if failures >= self.max_failures:
            await audit.record(self.db, "staff_locked", None, purpose=purpose, seconds=self.lock_s,
                               until=round(now + self.lock_s, 3))
            raise StaffLocked("staff functions are locked after repeated failures")
        raise StaffVerificationFailed("staff verification failed")
