"""Staff verification (face + PIN, lockout) and the hash-chained audit log."""

from __future__ import annotations

import pytest

from assistant import audit
from assistant.customers import CustomerDirectory
from assistant.seed import seed
from assistant.staff import StaffDirectory, StaffLocked, StaffVerificationFailed


async def test_audit_chain_detects_tampering(db) -> None:
    for i in range(5):
        await audit.record(db, "test_action", None, n=i)
    assert await audit.verify(db) is None
    rows = await audit.entries(db, "test_action")
    assert [r.detail["n"] for r in rows] == [0, 1, 2, 3, 4]
    # Someone edits entry 3 directly in the file: the chain breaks exactly there.
    async with db.transaction() as tx:
        await tx.execute("UPDATE audit_log SET detail = '{\"n\": 99}' WHERE id = ?", (rows[2].id,))
    assert await audit.verify(db) == rows[2].id


async def test_audit_detects_deleted_entry(db) -> None:
    for i in range(4):
        await audit.record(db, "a", None, n=i)
    rows = await audit.entries(db)
    async with db.transaction() as tx:
        await tx.execute("DELETE FROM audit_log WHERE id = ?", (rows[1].id,))
    assert await audit.verify(db) == rows[2].id


@pytest.fixture
async def staff(db, tmp_path):
    await seed(db, tmp_path)
    uid = await CustomerDirectory(db).link(phone="13000000001", name="周敏", accounts=[])
    async with db.transaction() as tx:
        await tx.execute("UPDATE staff SET user_id = ? WHERE staff_no = 'H001'", (uid,))
    clock = [1000.0]
    directory = StaffDirectory(db, max_failures=3, lock_s=60, clock=lambda: clock[0])
    return directory, uid, clock


async def three_wrong_pins(directory: StaffDirectory, member) -> None:
    """Two wrong PINs are refused; the third locks staff functions."""
    for _ in range(2):
        with pytest.raises(StaffVerificationFailed):
            await directory.verify(member, "000000", purpose="enrolment")
    with pytest.raises(StaffLocked):
        await directory.verify(member, "000000", purpose="enrolment")


async def test_staff_face_plus_pin(staff, db) -> None:
    directory, uid, _ = staff
    member = await directory.by_user(uid)
    assert member is not None and member.staff_no == "H001" and member.role == "hall"
    ok = await directory.verify(member, "246810", purpose="enrolment")
    assert ok.id == member.id
    log = await audit.entries(db, "staff_verified")
    assert log[-1].staff_id == member.id and log[-1].detail["purpose"] == "enrolment"
    assert "246810" not in str([e.detail for e in await audit.entries(db)])


async def test_wrong_role_fails(staff) -> None:
    directory, uid, _ = staff
    member = await directory.by_user(uid)
    with pytest.raises(StaffVerificationFailed):
        await directory.verify(member, "246810", purpose="cassette", role="bank")


async def test_three_failures_lock_then_unlock(staff, db) -> None:
    directory, uid, clock = staff
    member = await directory.by_user(uid)
    await three_wrong_pins(directory, member)
    # Even the right PIN is refused while locked.
    with pytest.raises(StaffLocked):
        await directory.verify(member, "246810", purpose="enrolment")
    clock[0] += 61
    assert (await directory.verify(member, "246810", purpose="enrolment")).staff_no == "H001"
    failed = await audit.entries(db, "staff_verify_failed")
    assert [e.detail["attempt"] for e in failed] == [1, 2, 3]
    assert len(await audit.entries(db, "staff_locked")) == 1
    assert await audit.verify(db) is None


async def test_no_staff_face_counts_as_failure(staff, db) -> None:
    directory, _, _ = staff
    with pytest.raises(StaffVerificationFailed):
        await directory.verify(None, "246810", purpose="enrolment")
    assert (await audit.entries(db, "staff_verify_failed"))[-1].detail["reason"] == "no_staff_face"


def test_staff_numbers_are_typed_as_on_a_telephone_keypad() -> None:
    from assistant.staff import keypad_code

    assert keypad_code("H001") == "4001" and keypad_code("B001") == "2001"
    assert keypad_code("wxyz-90") == "999990"  # lower case too; the dash is not typed
    assert keypad_code("12345") == "12345"


async def test_staff_found_by_the_number_typed_on_the_keypad(staff, db) -> None:
    directory, _, _ = staff
    assert (await directory.by_keypad("4001")).staff_no == "H001"
    assert (await directory.by_keypad("2001")).staff_no == "B001"
    assert await directory.by_keypad("001") is None  # the digits alone are not a number
    assert await directory.by_keypad("") is None
    # G001 is typed like H001: neither can be meant by 4001
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO staff(staff_no, name, role, pin_hash) VALUES ('G001', 'x', 'hall', 'x')")
    assert await directory.by_keypad("4001") is None
    # someone no longer active does not count
    async with db.transaction() as tx:
        await tx.execute("UPDATE staff SET active = 0 WHERE staff_no = 'G001'")
    assert (await directory.by_keypad("4001")).staff_no == "H001"


async def test_the_lock_holds_for_another_directory_as_after_a_restart(staff, db) -> None:
    """The failure count and the lock live in the audit log: a kiosk restarted, or the command
    line next to it, starts from them instead of from zero."""
    directory, uid, clock = staff
    member = await directory.by_user(uid)
    with pytest.raises(StaffVerificationFailed):
        await directory.verify(member, "000000", purpose="enrolment")
    other = StaffDirectory(db, max_failures=3, lock_s=60, clock=lambda: clock[0])  # a new process
    with pytest.raises(StaffVerificationFailed):
        await other.verify(member, "000000", purpose="cassette_exchange", by="cli")
    with pytest.raises(StaffLocked):
        await directory.verify(member, "000000", purpose="enrolment")  # the third, wherever typed
    again = StaffDirectory(db, max_failures=3, lock_s=60, clock=lambda: clock[0])
    with pytest.raises(StaffLocked):
        await again.verify(member, "246810", purpose="cassette_exchange", by="cli")
    clock[0] += 61
    assert (await again.verify(member, "246810", purpose="enrolment")).staff_no == "H001"
    failed = await audit.entries(db, "staff_verify_failed")
    assert [(e.detail["attempt"], e.detail["by"]) for e in failed] == [(1, "face"), (2, "cli"), (3, "face")]


async def test_a_staff_number_is_found_in_any_letter_case(staff) -> None:
    directory, _, _ = staff
    assert (await directory.by_number(" h001 ")).staff_no == "H001"


async def test_a_clock_set_back_does_not_stretch_the_lock(staff, db) -> None:
    """The lock's end is wall-clock time: when the clock is set back (a wrong time fixed by
    NTP), the lock must not last the hours or days the clock went back, only its own length."""
    directory, uid, clock = staff
    clock[0] = 1_764_870_000.0
    member = await directory.by_user(uid)
    await three_wrong_pins(directory, member)
    clock[0] -= 86400  # the clock is set back a day
    assert (await directory.verify(member, "246810", purpose="enrolment")).staff_no == "H001"


@pytest.mark.parametrize("detail", [{"seconds": 60}, {"seconds": 60, "until": "soon"}, {"until": None}])
async def test_a_lock_without_a_readable_end_still_holds(staff, db, detail) -> None:
    """A lock written by an older version (no ``until``) or with an unreadable one still holds
    for the lock time from when it was written, not not at all."""
    import time

    directory, uid, clock = staff
    clock[0] = time.time()
    member = await directory.by_user(uid)
    await audit.record(db, "staff_locked", None, purpose="enrolment", **detail)
    with pytest.raises(StaffLocked):
        await directory.verify(member, "246810", purpose="enrolment")
    clock[0] += 61
    assert (await directory.verify(member, "246810", purpose="enrolment")).staff_no == "H001"


async def test_failures_at_the_same_time_still_lock(staff, db) -> None:
    """Wrong PINs typed at the kiosk and the command line at once each count: the third
    failure locks, however they interleave."""
    import asyncio

    directory, uid, clock = staff
    member = await directory.by_user(uid)
    other = StaffDirectory(db, max_failures=3, lock_s=60, clock=lambda: clock[0])
    results = await asyncio.gather(
        directory.verify(member, "000000", purpose="enrolment"),
        other.verify(member, "000000", purpose="cassette_exchange", by="cli"),
        directory.verify(member, "000000", purpose="enrolment"),
        return_exceptions=True,
    )
    assert any(isinstance(r, StaffLocked) for r in results), results
    with pytest.raises(StaffLocked):
        await directory.verify(member, "246810", purpose="enrolment")


async def test_staff_numbers_alike_but_for_letter_case_identify_nobody(staff, db) -> None:
    """``h001`` and ``H001`` both active: which one a typed ``H001`` means cannot be known, so
    neither is verified against the other's PIN and role (as with numbers typed alike on the pad)."""
    directory, _, _ = staff
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO staff(staff_no, name, role, pin_hash) VALUES ('h001', 'x', 'bank', 'x')")
    assert await directory.by_number("H001") is None
    assert await directory.by_number("h001") is None
    async with db.transaction() as tx:
        await tx.execute("UPDATE staff SET active = 0 WHERE staff_no = 'h001'")
    assert (await directory.by_number("h001")).staff_no == "H001"
