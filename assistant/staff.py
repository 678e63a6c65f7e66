"""Staff verification: the face of an enrolled staff member plus their PIN.

Three failed attempts lock staff functions at this kiosk for a while; every
attempt, good or bad, is written to the hash-chained audit log (never the PIN).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from assistant import audit
from assistant.errors import KioskError
from assistant.seed import check_pin
from assistant.storage import Database


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
        clock: time source (tests pass their own).
    """

    def __init__(self, db: Database, max_failures: int = 3, lock_s: float = 300.0, clock=time.monotonic) -> None:
        self.db = db
        self.max_failures = max_failures
        self.lock_s = lock_s
        self.clock = clock
        self.failures = 0
        self.locked_until = 0.0

    async def by_user(self, user_id: int) -> StaffMember | None:
        """The active staff member whose face enrolment is this login user, if any."""
        row = await self.db.fetchone(
            "SELECT id, staff_no, name, role FROM staff WHERE user_id = ? AND active = 1", (user_id,)
        )
        return StaffMember(row["id"], row["staff_no"], row["name"], row["role"]) if row else None

    async def by_number(self, staff_no: str) -> StaffMember | None:
        """The active staff member with this staff number, if any."""
        row = await self.db.fetchone(
            "SELECT id, staff_no, name, role FROM staff WHERE staff_no = ? AND active = 1", (staff_no,)
        )
        return StaffMember(row["id"], row["staff_no"], row["name"], row["role"]) if row else None

    async def verify(self, member: StaffMember | None, pin: str, purpose: str, role: str | None = None) -> StaffMember:
        """Check the PIN of the staff member recognised by face; raises on failure.

        Args:
            member: who the face watcher recognised (None: no staff face).
            pin: the PIN typed on the keypad.
            purpose: what the verification is for (recorded in the audit log).
            role: the role required (None: any).
        """
        now = self.clock()
        if now < self.locked_until:
            await audit.record(self.db, "staff_verify_locked", None, purpose=purpose)
            raise StaffLocked("staff functions are locked after repeated failures")
        ok = False
        if member is not None:
            row = await self.db.fetchone("SELECT pin_hash FROM staff WHERE id = ?", (member.id,))
            ok = bool(row) and check_pin(pin, row["pin_hash"]) and (role is None or member.role == role)
        if ok:
            assert member is not None
            self.failures = 0
            await audit.record(self.db, "staff_verified", member.id, purpose=purpose, role=member.role)
            return member
        self.failures += 1
        await audit.record(
            self.db,
            "staff_verify_failed",
            member.id if member else None,
            purpose=purpose,
            attempt=self.failures,
            reason="no_staff_face" if member is None else "pin_or_role",
        )
        if self.failures >= self.max_failures:
            self.locked_until = now + self.lock_s
            self.failures = 0
            await audit.record(self.db, "staff_locked", None, purpose=purpose, seconds=self.lock_s)
            raise StaffLocked("staff functions are locked after repeated failures")
        raise StaffVerificationFailed("staff verification failed")
