"""Cassette exchange under dual control: bank staff swap or refill a unit, hall staff witness.

Starting an exchange needs a bank staff member and a hall staff member, both verified
by PIN and distinct. It locks the unit (no payment can use it; the lock is the open
``cash_exchange`` row, so it holds across restarts), takes it out of service, and
records the counts going out: what the books expected, what was found (the unit's
own count, or the staff's hand count for the cashbox), and the difference. Ending
it records what the bank staff loaded and what the unit then reports, and the
difference between the two, and puts the unit back in service. Staff are verified
through :class:`~assistant.staff.StaffDirectory` (failed attempts count towards its
lock-out) and both ends of the exchange go to the hash-chained audit log.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from assistant import audit, cash_journal
from assistant.errors import CassetteError
from assistant.staff import StaffDirectory, StaffMember, StaffVerificationFailed
from assistant.storage import Database
from devices.cash import CashDevice, Unit

PURPOSE = "cassette_exchange"

@dataclass(frozen=True)
class ExchangeReport:
    """The counts of one exchange and how they differ."""

    exchange_id: int
    unit: str
    state: str
    expected_out: Mapping[int, int]
    """What the books said the unit held (fen -> count)."""
    counted_out: Mapping[int, int]
    """What was found when it was opened."""
    counts_in: Mapping[int, int] | None = None
    """What the bank staff loaded."""
    device_in: Mapping[int, int] | None = None
    """What the unit reports after loading (None for the cashbox: it cannot count)."""

    @property
    def difference_out(self) -> dict[int, int]:
        """Found minus expected, per denomination (only non-zero)."""
        return _diff(self.counted_out, self.expected_out)

    @property
    def difference_in(self) -> dict[int, int]:
        """Unit's count minus what was declared loaded, per denomination (only non-zero)."""
        if self.counts_in is None or self.device_in is None:
            return {}
        return _diff(self.device_in, self.counts_in)

    @property
    def difference_out_fen(self) -> int:
        """Value of the difference found when opening (negative = short)."""
        return sum(v * n for v, n in self.difference_out.items())


def _yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def _diff(a: Mapping[int, int], b: Mapping[int, int]) -> dict[int, int]:
    return {v: a.get(v, 0) - b.get(v, 0) for v in sorted(set(a) | set(b)) if a.get(v, 0) != b.get(v, 0)}


def _js(m: Mapping[int, int] | None) -> str | None:
    return None if m is None else json.dumps({str(k): int(v) for k, v in sorted(m.items())})


def _unjs(text: str | None) -> dict[int, int] | None:
    return None if text is None else {int(k): int(v) for k, v in json.loads(text).items()}


class CassetteExchange:
    """Start and end cassette exchanges for the kiosk's units.

    Args:
        db: the kiosk database.
        units: the open cash units (``Unit.NOTES`` / ``Unit.COINS``); the cashbox is
            counted by hand and needs no device.
        staff: staff verification (one is made on ``db`` when None).
        by: how the staff numbers reach the kiosk, for the audit log: ``keypad`` (the
            kiosk's pad) or ``cli`` (the command line).
    """

    def __init__(self, db: Database, units: Mapping[Unit, CashDevice],
                 staff: StaffDirectory | None = None, by: str = "keypad") -> None:
        self.db = db
        self.units = dict(units)
        self.staff = staff or StaffDirectory(db)
        self.by = by

    async def _verify(self, who: tuple[str, str], roles: tuple[str, ...]) -> StaffMember:
        member = await self.staff.by_number(who[0])
        verified = await self.staff.verify(member, who[1], PURPOSE, by=self.by)
        if verified.role not in roles:
            raise StaffVerificationFailed(
                f"staff {verified.staff_no} is {verified.role} staff, not {' or '.join(roles)}"
            )
        return verified

    async def _dual(self, bank: tuple[str, str], hall: tuple[str, str]) -> tuple[StaffMember, StaffMember]:
        """Verify both people (staff number, PIN); raises the staff errors or :class:`CassetteError`."""
        b = await self._verify(bank, ("bank",))
        h = await self._verify(hall, ("hall", "admin"))
        if b.id == h.id:
            raise CassetteError("dual control needs two different people")
        return b, h

    def _check_counts(self, unit: Unit, counts: Mapping[int, int]) -> None:
        """Refuse counts that cannot be right: a negative count, or a value the unit never holds.

        A typing slip in a hand count would otherwise go into the books and the exchange
        record as it is, and show up days later as a cash difference nobody can explain.
        """
        negative = sorted(v for v, n in counts.items() if n < 0)
        if negative:
            raise CassetteError("counts cannot be negative: " + ", ".join(f"{_yuan(v)}={counts[v]}" for v in negative))
        # the cashbox holds the notes the recycler took in
        device = self.units.get(Unit.NOTES if unit == Unit.CASHBOX else unit)
        known = set(getattr(device, "denominations", ()) or ())
        strange = sorted(v for v in counts if known and v not in known)
        if strange:
            raise CassetteError(
                f"{unit} holds no {', '.join(_yuan(v) for v in strange)} yuan (it holds "
                f"{', '.join(_yuan(v) for v in sorted(known, reverse=True))}); check the counts"
            )

    async def _books(self, unit: Unit) -> dict[int, int]:
        rows = await self.db.fetchall(
            "SELECT denomination_fen, count FROM cash_unit WHERE unit = ?", (str(unit),)
        )
        return {int(r[0]): int(r[1]) for r in rows}

    async def open_exchange(self, unit: Unit) -> ExchangeReport | None:
        """The open exchange of ``unit``, if any."""
        row = await self.db.fetchone(
            "SELECT * FROM cash_exchange WHERE unit = ? AND state = 'open'", (str(unit),)
        )
        return report_from_row(row) if row else None

    async def start(self, unit: Unit, bank: tuple[str, str], hall: tuple[str, str],
                    counted: Mapping[int, int] | None = None) -> ExchangeReport:
        """Lock ``unit`` and record the counts out.

        Args:
            unit: notes, coins or cashbox.
            bank, hall: (staff number, PIN) of each person.
            counted: a hand count; required for the cashbox, optional otherwise (then
                the unit's own count is what was found).
        """
        b, h = await self._dual(bank, hall)
        if counted is not None:
            self._check_counts(unit, counted)
        if await cash_journal.open_payment_ids(self.db):
            raise CassetteError("a cash payment is still open; finish or recover it first")
        if await self.open_exchange(unit) is not None:
            raise CassetteError(f"an exchange of {unit} is already open")
        device = self.units.get(unit)
        levels = {u: await d.levels() for u, d in self.units.items()}
        # units the books have never seen are opened with their own count first
        notes = self.units.get(Unit.NOTES)
        await cash_journal.sync_books(self.db, levels, notes.denominations if notes else (), correct=False)
        if counted is None:
            if device is None:
                raise CassetteError(f"{unit} cannot count itself: give the hand count (--counted FEN=COUNT,... on the command line)")
            counted = await device.levels()
        if device is not None:
            await device.set_accepting(frozenset())
            await device.disable()
        expected = await self._books(unit)
        async with self.db.transaction() as tx:
            cur = await tx.execute(
                "INSERT INTO cash_exchange(unit, state, bank_staff_id, hall_staff_id, expected_out, counted_out) "
                "VALUES (?, 'open', ?, ?, ?, ?)",
                (str(unit), b.id, h.id, _js(expected), _js(counted)),
            )
            exchange_id = int(cur.lastrowid or 0)
            for value, n in expected.items():
                if n:
                    await cash_journal.record_movement(tx, unit, value, -n, "exchange_out")
        report = ExchangeReport(exchange_id, str(unit), "open", expected, dict(counted))
        await audit.record(self.db, "cassette_exchange_start", b.id, exchange=exchange_id, unit=str(unit),
                           hall_staff=h.id, expected=_js(expected), counted=_js(counted),
                           difference=_js(report.difference_out))
        return report

    async def end(self, unit: Unit, bank: tuple[str, str], hall: tuple[str, str],
                  counts_in: Mapping[int, int], loaded: Callable[[], None] | None = None) -> ExchangeReport:
        """Record what was loaded, compare with the unit's own count, unlock.

        ``loaded`` is called once both people are verified and the counts accepted, just
        before the unit is asked for its count (a rehearsal on the simulator loads the
        cassette there); a refused exchange never reaches it.
        """
        b, h = await self._dual(bank, hall)
        current = await self.open_exchange(unit)
        if current is None:
            raise CassetteError(f"no open exchange of {unit}")
        self._check_counts(unit, counts_in)
        if loaded is not None:
            loaded()
        device = self.units.get(unit)
        device_in = None
        if device is not None:
            await device.enable()
            device_in = await device.levels()
        books_in = device_in if device_in is not None else dict(counts_in)
        async with self.db.transaction() as tx:
            await tx.execute(
                "UPDATE cash_exchange SET state = 'closed', counts_in = ?, device_in = ?, "
                "end_bank_staff_id = ?, end_hall_staff_id = ?, "
                "ended_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?",
                (_js(counts_in), _js(device_in), b.id, h.id, current.exchange_id),
            )
            for value, n in books_in.items():
                if n:
                    await cash_journal.record_movement(tx, unit, value, n, "exchange_in")
        report = ExchangeReport(current.exchange_id, str(unit), "closed", current.expected_out,
                                current.counted_out, dict(counts_in), device_in)
        await audit.record(self.db, "cassette_exchange_end", b.id, exchange=current.exchange_id,
                           unit=str(unit), hall_staff=h.id, counts_in=_js(counts_in),
                           device_in=_js(device_in), difference=_js(report.difference_in))
        return report


def report_from_row(row: Any) -> ExchangeReport:
    """An :class:`ExchangeReport` from a ``cash_exchange`` row."""
    return ExchangeReport(
        exchange_id=int(row["id"]), unit=row["unit"], state=row["state"],
        expected_out=_unjs(row["expected_out"]) or {}, counted_out=_unjs(row["counted_out"]) or {},
        counts_in=_unjs(row["counts_in"]), device_in=_unjs(row["device_in"]),
    )
