"""Staff functions (part of :class:`assistant.dialog.Dialog`): the verified staff menu.

Staff say "工作人员菜单" or touch 办理业务 on the welcome screen; the kiosk verifies
them (face of an enrolled staff member, or the staff number typed on the keypad, plus
PIN, as for enrolment) and offers: start
an enrolment, clear a device fault, exchange a cash cassette under dual control
(a bank staff member and a hall staff member, both verified, counts out and in
recorded), reload the locale packs, and take the kiosk out of service (or back).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from assistant.customers import mask_name
from assistant.errors import KioskError
from assistant.messages import Amount, Count, DeviceAction, Digits, Event, frozen_map
from assistant.prompts import Intent, Label, Prompt
from assistant.screens import Screen

if TYPE_CHECKING:
    from assistant.dialog import Dialog

MAX_COUNT_DIGITS = 5


class StaffSteps:
    """Mixin with the staff menu and cassette exchange handlers; ``self`` is the Dialog."""

    # ------------------------------------------------------------------ the menu
    def _after_staff_verified(self: Dialog, member: Any, pin: str) -> None:
        """Staff verification succeeded: continue with what it was for."""
        s = self.session
        purpose = s.staff_purpose
        if purpose == "cassette_second":
            self._second_staff_verified(member, pin)
            return
        s.staff_member = member
        s.staff_pin = pin
        if purpose == "menu":
            self._new_turn()
            self._say(Prompt.STAFF_VERIFIED, name=mask_name(member.name), remember=False)
            self._show_staff_menu()
            return
        assert self.services.enrolments is not None
        self.services.enrolments.start(member.id)
        self._new_turn()
        self._say(Prompt.STAFF_VERIFIED, name=mask_name(member.name), remember=False)
        self._ask_consent()

    def _show_staff_menu(self: Dialog) -> None:
        from assistant.dialog import State

        alerts = self.services.alerts
        if alerts is not None:
            # What needs doing comes first: change running out, cashbox full, faults.
            pending = alerts.pending()
            for alert in pending:
                self._say(alert.prompt_id, remember=False, **dict(alert.slots))
            if not pending:
                self._say(Prompt.ALERTS_NONE, remember=False)
        self._say(Prompt.STAFF_MENU)
        self._show(Screen.STAFF_MENU, out_of_service=self.services.out_of_service)
        self._enter(State.STAFF_MENU)
        self._listen(Intent.START_ENROLMENT, Intent.CLEAR_FAULT, Intent.CASH_EXCHANGE, Intent.CANCEL)

    async def _in_staff_menu(self: Dialog, intent: str, slots: dict[str, Any], conf: float, event: Event) -> None:
        s = self.session
        if intent == Intent.START_ENROLMENT:
            assert self.services.enrolments is not None and s.staff_member is not None
            self.services.enrolments.start(s.staff_member.id)
            self._new_turn()
            self._ask_consent()
        elif intent == Intent.CLEAR_FAULT:
            self._new_turn()
            if self.services.cash is not None:
                await self.services.cash.refresh()
            self.services.out_of_service = False
            self._say(Prompt.FAULT_CLEARED, remember=False)
            self._out.append(DeviceAction("staff", "fault_cleared", frozen_map(staff=s.staff_member.staff_no)))
            self._show_staff_menu()
        elif intent == "reload_locales":
            self._new_turn()
            problems = self.services.reload_locales() if self.services.reload_locales else ["no locale registry"]
            if problems:
                self._say(Prompt.LOCALES_RELOAD_FAILED, count=Count(len(problems)), remember=False)
            else:
                self._say(Prompt.LOCALES_RELOADED, remember=False)
            self._show_staff_menu()
        elif intent == "out_of_service":
            self._new_turn()
            self.services.out_of_service = not self.services.out_of_service
            self._say(Prompt.OUT_OF_SERVICE_SET if self.services.out_of_service else Prompt.FAULT_CLEARED,
                      remember=False)
            self._show_staff_menu()
        elif intent == Intent.CASH_EXCHANGE:
            self._start_cassette()

    # ------------------------------------------------------------------ cassette exchange
    def _start_cassette(self: Dialog) -> None:
        """Dual control: the other role must verify too (face or staff number, + PIN)."""
        s = self.session
        first = s.staff_member
        assert first is not None
        self._new_turn()
        if self.services.cassettes is None:
            self._say(Prompt.CASH_UNAVAILABLE)
            self._show_staff_menu()
            return
        s.staff_purpose = "cassette_second"
        s.second_member = None
        self._identify_staff(Prompt.CASSETTE_HALL_VERIFY if first.role == "bank" else Prompt.CASSETTE_BANK_VERIFY)

    def _second_staff_verified(self: Dialog, member: Any, pin: str) -> None:
        from assistant.dialog import State

        s = self.session
        first = s.staff_member
        assert first is not None
        self._new_turn()
        roles = {first.role, member.role}
        if member.id == first.id:
            self._say(Prompt.CASSETTE_SAME_PERSON)
            self._start_cassette()
            return
        if roles != {"bank", "hall"} and not ({"bank"} <= roles and "admin" in roles):
            self._say(Prompt.CASSETTE_REFUSED)
            self._show_staff_menu()
            return
        s.second_member, s.second_pin = member, pin
        s.staff_purpose = "menu"
        self._say(Prompt.CASSETTE_CHOOSE_UNIT)
        self._show(Screen.STAFF_MENU, step=Prompt.CASSETTE_CHOOSE_UNIT, choose_unit=True)
        self._enter(State.CASSETTE_UNIT)
        self._listen(Intent.CANCEL)

    def _credentials(self: Dialog) -> tuple[tuple[str, str], tuple[str, str]]:
        """(bank, hall) as (staff number, PIN) for the exchange's own verification."""
        s = self.session
        a, b = (s.staff_member, s.staff_pin), (s.second_member, s.second_pin)
        bank, hall = (a, b) if a[0].role == "bank" else (b, a)
        return (bank[0].staff_no, bank[1]), (hall[0].staff_no, hall[1])

    async def _in_cassette_unit(self: Dialog, intent: str, slots: dict[str, Any], conf: float, event: Event) -> None:
        from assistant.dialog import State
        from devices.cash import Unit

        s = self.session
        unit = {"unit_notes": Unit.NOTES, "unit_coins": Unit.COINS}.get(intent)
        if unit is None:
            return
        assert self.services.cassettes is not None
        bank, hall = self._credentials()
        self._new_turn()
        try:
            report = await self.services.cassettes.start(unit, bank, hall)
        except KioskError as exc:
            self._say(exc.prompt_id)
            self._show_staff_menu()
            return
        s.cassette_unit = str(unit)
        s.cassette_rows = [
            {"denomination": Amount(d), "count_out": Count(n), "count_in": ""}
            for d, n in sorted(report.counted_out.items(), reverse=True)
        ]
        s.cassette_in = {}
        s.cassette_row = 0
        s.cassette_out_fen = sum(d * n for d, n in report.counted_out.items())
        label = Label.DEVICE_NOTES if unit is Unit.NOTES else Label.DEVICE_COINS
        s.cassette_label = label
        self._say(Prompt.CASSETTE_REMOVE, unit=label)
        if report.difference_out:
            counted = sum(d * n for d, n in report.counted_out.items())
            expected = sum(d * n for d, n in report.expected_out.items())
            self._say(
                Prompt.CASSETTE_MISMATCH,
                counted=Amount(counted),
                expected=Amount(expected),
                difference=Amount(counted - expected),
            )
        self._enter(State.CASSETTE_COUNT)
        self._ask_count()

    def _ask_count(self: Dialog) -> None:
        s = self.session
        s.digits = ""
        row = s.cassette_rows[s.cassette_row]
        self._say(Prompt.CASSETTE_ENTER_COUNT, denomination=row["denomination"])
        self._show_cassette()
        self._listen(Intent.CANCEL)

    def _show_cassette(self: Dialog) -> None:
        s = self.session
        self._show(
            Screen.CASSETTE,
            unit=s.cassette_label,
            digits=Digits(s.digits),
            rows=tuple(frozen_map(r) for r in s.cassette_rows),
            active_row=s.cassette_row,
        )

    async def _in_cassette_count(self: Dialog, intent: str, slots: dict[str, Any], conf: float, event: Event) -> None:
        s = self.session
        if intent == "digit":
            if len(s.digits) < MAX_COUNT_DIGITS:
                s.digits += str(slots["digit"])
            self._touch()
            self._show_cassette()
            return
        if intent == "clear":
            s.digits = s.digits[:-1]
            self._show_cassette()
            return
        if intent not in ("enter", Intent.CONFIRM) or not s.digits:
            return
        row = s.cassette_rows[s.cassette_row]
        count = int(s.digits)
        row["count_in"] = Count(count)
        s.cassette_in[row["denomination"].fen] = count
        self._new_turn()
        self._say(
            Prompt.CASSETTE_COUNT_READBACK,
            denomination=row["denomination"],
            count=Count(count),
            amount=Amount(row["denomination"].fen * count),
            remember=False,
        )
        s.cassette_row += 1
        if s.cassette_row < len(s.cassette_rows):
            self._ask_count()
            return
        await self._end_cassette()

    async def _end_cassette(self: Dialog) -> None:
        from devices.cash import Unit

        s = self.session
        assert self.services.cassettes is not None
        bank, hall = self._credentials()
        try:
            report = await self.services.cassettes.end(Unit(s.cassette_unit), bank, hall, dict(s.cassette_in))
        except KioskError as exc:
            self._say(exc.prompt_id)
            self._show_staff_menu()
            return
        amount_in = sum(d * n for d, n in s.cassette_in.items())
        self._say(Prompt.CASSETTE_DONE, amount_out=Amount(s.cassette_out_fen), amount_in=Amount(amount_in))
        if report.difference_in and report.device_in is not None:
            device = sum(d * n for d, n in report.device_in.items())
            self._say(
                Prompt.CASSETTE_MISMATCH,
                counted=Amount(device),
                expected=Amount(amount_in),
                difference=Amount(device - amount_in),
            )
        if self.services.cash is not None:
            await self.services.cash.refresh()
        s.second_pin = s.staff_pin = ""
        self._show_staff_menu()
