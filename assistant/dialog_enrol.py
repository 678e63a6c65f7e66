"""The staff-guided enrolment conversation (part of :class:`assistant.dialog.Dialog`).

Staff say the start phrase (or touch 办理业务); the kiosk verifies them (an enrolled
staff member's face, or without a camera their staff number typed on the keypad, plus
a PIN), then guides the customer step by step: separate
consent for face data, phone number, electricity account number(s), face capture,
bank-card binding (optional), default payment method. Every step can be repeated
or skipped where it is optional; cancelling anywhere keeps nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from assistant.customers import mask_name
from assistant.enrolment import FACE_FRAMES_NEEDED, EnrolmentError
from assistant.errors import UnknownAccount
from assistant.messages import (
    CardRead,
    Count,
    DeviceAction,
    Digits,
    Event,
    FaceCaptured,
    FaceOutcome,
    FaceSeen,
    SecretDigits,
)
from assistant.prompts import Intent, Prompt
from assistant.screens import Screen
from assistant.staff import StaffLocked, StaffVerificationFailed

if TYPE_CHECKING:
    from assistant.dialog import Dialog

PHONE_DIGITS = 11
MAX_STAFF_NO_DIGITS = 8
MAX_CARD_SCANS = 3


class EnrolmentSteps:
    """Mixin with the enrolment states' handlers; ``self`` is the Dialog."""

    # ------------------------------------------------------------------ start and staff
    async def _start_enrolment(self: Dialog, purpose: str = "enrolment") -> None:
        """Verify a staff member first (face or staff number, then PIN), then enrol or open the staff menu."""
        s = self.session
        s.staff_purpose = purpose
        if self.services.staff is None or (purpose == "enrolment" and self.services.enrolments is None):
            self._new_turn()
            self._say(Prompt.ERROR_OUT_OF_SERVICE, phone=Digits(self.services.hall_phone))
            return
        s.staff_member = None
        s.staff_purpose = purpose
        self._new_turn()
        self._identify_staff()

    def _identify_staff(self: Dialog, intro: str | None = None) -> None:
        """Find out which staff member is there: by face where a camera works, else by the
        staff number typed on the keypad. ``intro`` is said first (the cassette exchange
        names whose turn it is); without it the camera step says ``staff_verify``."""
        from assistant.dialog import State

        s = self.session
        s.digits = ""
        s.pin_member = None
        s.staff_by_keypad = False
        if not self.services.face_available:
            # No camera or face model: nobody can be "looked at"; the staff number it is.
            if intro is not None:
                self._say(intro)
            self._ask_staff_number()
            return
        self._say(intro or Prompt.STAFF_VERIFY)
        self._show(Screen.ENROL_STAFF, step=Prompt.STAFF_VERIFY, digits=Digits(""))
        self._out.append(DeviceAction("camera", "identify", _args(purpose="staff")))
        self._enter(State.ENROL_STAFF)
        self._listen(Intent.CANCEL)

    def _ask_staff_number(self: Dialog, first: str | None = None, say: bool = True) -> None:
        """Staff number on the keypad (letters by their keypad digit), then the PIN."""
        from assistant.dialog import State

        s = self.session
        s.digits = ""
        s.pin_member = None
        s.staff_by_keypad = True
        if first is not None:
            self._say(first)
        if say:
            self._say(Prompt.STAFF_ASK_NUMBER)
        self._show_staff_number()
        self._enter(State.ENROL_STAFF_NO)
        self._listen(Intent.CANCEL)

    def _show_staff_number(self: Dialog) -> None:
        self._show(Screen.ENROL_STAFF, step=Prompt.STAFF_ASK_NUMBER, digits=Digits(self.session.digits), entry=True)

    async def _enrol_face_event(self: Dialog, event: Event) -> bool:
        """Face events during enrolment; True when handled."""
        from assistant.dialog import FACE_GUIDANCE, State

        s = self.session
        if self.state is State.ENROL_STAFF and isinstance(event, FaceSeen):
            member = None
            if event.outcome is FaceOutcome.IDENTIFIED and event.customer_id is not None:
                assert self.services.staff is not None
                member = await self.services.staff.by_user(event.customer_id)
                if member is not None:
                    s.pin_member = member
                    self._out.append(DeviceAction("camera", "stop"))
                    self._ask_pin()
                    return True
            if event.outcome in (FaceOutcome.IDENTIFIED, FaceOutcome.UNCERTAIN, FaceOutcome.UNKNOWN):
                # Not a staff member's face (a customer's, or nobody the kiosk knows): the
                # staff number on the keypad is the other way in.
                self._out.append(DeviceAction("camera", "stop"))
                self._new_turn()
                self._ask_staff_number(first=Prompt.STAFF_FACE_UNKNOWN)
            return True
        if self.state is State.ENROL_FACE:
            if isinstance(event, FaceCaptured):
                await self._face_frame(event.frames)
                return True
            if isinstance(event, FaceSeen) and event.outcome in FACE_GUIDANCE:
                if event.outcome != s.last_face_outcome:
                    s.last_face_outcome = event.outcome
                    self._new_turn()
                    self._say(FACE_GUIDANCE[event.outcome])
                return True
        return isinstance(event, FaceCaptured)

    def _pin_prompt(self: Dialog) -> tuple[str, dict[str, Any]]:
        """The PIN request: by name after a staff face, without one after a typed number
        (whether that number exists is not told before the PIN is checked)."""
        s = self.session
        if s.pin_member is not None and not s.staff_by_keypad:
            return Prompt.STAFF_PIN, {"name": mask_name(s.pin_member.name)}
        return Prompt.STAFF_PIN_KEYPAD, {}

    def _ask_pin(self: Dialog) -> None:
        from assistant.dialog import State

        s = self.session
        s.digits = ""
        self._new_turn()
        prompt, slots = self._pin_prompt()
        self._say(prompt, **slots)
        self._show(Screen.ENROL_STAFF, step=prompt, digits=Digits(""), secret=True)
        self._enter(State.ENROL_PIN)
        self._listen(Intent.CANCEL)

    async def _in_enrol_staff(self: Dialog, intent: str, slots: dict[str, Any], conf: float, event: Event) -> None:
        if intent == "digit":
            # Typing while the camera looks: the staff number, starting with this digit.
            self._out.append(DeviceAction("camera", "stop"))
            self._ask_staff_number(say=False)
            await self._in_enrol_staff_no(intent, slots, conf, event)
        elif intent in ("enter", Intent.CONFIRM):
            # The "type the staff number" button (or the big key): stop looking.
            self._out.append(DeviceAction("camera", "stop"))
            self._new_turn()
            self._ask_staff_number()

    async def _in_enrol_staff_no(self: Dialog, intent: str, slots: dict[str, Any], conf: float, event: Event) -> None:
        s = self.session
        if intent == "digit":
            if len(s.digits) < MAX_STAFF_NO_DIGITS:
                s.digits += str(slots["digit"])
            self._touch()
            self._show_staff_number()
            return
        if intent == "clear":
            s.digits = s.digits[:-1]
            self._touch()
            self._show_staff_number()
            return
        if intent in ("enter", Intent.CONFIRM):
            if not s.digits:
                self._touch()
                self._new_turn()
                self._say(Prompt.STAFF_ASK_NUMBER)
                return
            assert self.services.staff is not None
            s.pin_member = await self.services.staff.by_keypad(s.digits)
            s.staff_by_keypad = True
            self._ask_pin()

    async def _in_enrol_pin(self: Dialog, intent: str, slots: dict[str, Any], conf: float, event: Event) -> None:
        s = self.session
        prompt, prompt_slots = self._pin_prompt()
        if intent == "digit":
            if len(s.digits) < 12:
                s.digits += str(slots["digit"])
            self._touch()
            self._show(Screen.ENROL_STAFF, step=prompt, digits=Digits("*" * len(s.digits)), secret=True)
            return
        if intent == "clear":
            s.digits = ""
            self._show(Screen.ENROL_STAFF, step=prompt, digits=Digits(""), secret=True)
            return
        if intent in ("enter", Intent.CONFIRM):
            assert self.services.staff is not None
            pin, s.digits = s.digits, ""
            role_ok = s.staff_purpose != "enrolment" or s.pin_member is None or s.pin_member.role != "bank"
            try:
                member = await self.services.staff.verify(
                    s.pin_member if role_ok else None,
                    pin,
                    purpose=s.staff_purpose or "enrolment",
                    by="keypad" if s.staff_by_keypad else "face",
                )
            except StaffLocked:
                self._new_turn()
                self._say(Prompt.STAFF_LOCKED)
                self._end_session()
                return
            except StaffVerificationFailed:
                self._new_turn()
                if s.staff_by_keypad:
                    # The number or the PIN was wrong (which is not told): both again.
                    self._ask_staff_number(first=Prompt.STAFF_REFUSED)
                    return
                self._say(Prompt.STAFF_REFUSED)
                self._say(prompt, **prompt_slots)
                self._show(Screen.ENROL_STAFF, step=prompt, digits=Digits(""), secret=True)
                self._touch()
                return
            self._after_staff_verified(member, pin)

    # ------------------------------------------------------------------ consent
    def _ask_consent(self: Dialog) -> None:
        from assistant.dialog import State

        self._new_turn()
        self._say(Prompt.CONSENT_SCRIPT)
        self._show(Screen.ENROL_CUSTOMER, step=Prompt.CONSENT_SCRIPT)
        self._enter(State.ENROL_CONSENT)
        self._listen(Intent.CONSENT_YES, Intent.CONSENT_NO, Intent.CONFIRM, Intent.DENY, Intent.CANCEL)

    async def _in_enrol_consent(self: Dialog, intent: str, slots: dict[str, Any], conf: float, event: Event) -> None:
        from assistant.messages import Utterance

        draft = self._draft()
        # Consent must be explicit: a clear yes, never a timeout or a guess. A recogniser held
        # to a grammar can hear noise as "同意" at full confidence, so a spoken yes is only
        # taken once the customer presses the confirm key (or touches 同意) as well.
        s = self.session
        if intent in (Intent.CONSENT_YES, Intent.CONFIRM) and isinstance(event, Utterance):
            s.consent_spoken = True
            self._new_turn()
            self._say(Prompt.CONSENT_CONFIRM_KEY)
        elif intent in (Intent.CONSENT_YES, Intent.CONFIRM) and conf >= self.config.confirm_confidence:
            s.consent_spoken = False
            draft.face_consent = True
            self._new_turn()
            self._say(Prompt.CONSENT_RECORDED, remember=False)
            self._ask_digits(Prompt.ENROL_ASK_PHONE, "enrol_phone")
        elif intent in (Intent.CONSENT_NO, Intent.DENY, "clear") or (intent == Intent.CANCEL and s.consent_spoken):
            s.consent_spoken = False
            draft.face_consent = False
            self._new_turn()
            self._say(Prompt.CONSENT_DECLINED, remember=False)
            self._ask_digits(Prompt.ENROL_ASK_PHONE, "enrol_phone")
        elif intent in (Intent.CONSENT_YES, Intent.CONFIRM):
            self._new_turn()
            self._say(Prompt.CONSENT_SCRIPT)

    # ------------------------------------------------------------------ phone and accounts
    def _ask_digits(self: Dialog, prompt: str, state: str) -> None:
        from assistant.dialog import State

        s = self.session
        s.digits = ""
        self._say(prompt)
        self._show(Screen.ENROL_CUSTOMER, step=prompt, digits=Digits(""), length=self._digits_length(prompt))
        self._enter(State(state))
        self._listen(Intent.ACCOUNT_NUMBER, Intent.PHONE_NUMBER, Intent.CANCEL, Intent.SKIP)

    def _digits_length(self: Dialog, prompt: str) -> int:
        """How many digits the number asked for has (the screen draws that many boxes)."""
        return PHONE_DIGITS if prompt == Prompt.ENROL_ASK_PHONE else self.config.account_digits

    async def _collect_digits(self: Dialog, intent: str, slots: dict[str, Any], step: str, limit: int) -> bool:
        """Keys and spoken digits for a number; True when the number was submitted."""
        s = self.session
        if intent == "digit":
            if len(s.digits) < limit:
                s.digits += str(slots["digit"])
            self._touch()
            self._show(Screen.ENROL_CUSTOMER, step=step, digits=Digits(s.digits), length=limit)
            return False
        if intent == "clear":
            s.digits = s.digits[:-1]
            self._show(Screen.ENROL_CUSTOMER, step=step, digits=Digits(s.digits), length=limit)
            return False
        if intent in (Intent.ACCOUNT_NUMBER, Intent.PHONE_NUMBER):
            s.digits = str(slots.get("digits", ""))[:limit]
            return True
        return intent in ("enter", Intent.CONFIRM)

    async def _in_enrol_phone(self: Dialog, intent: str, slots: dict[str, Any], conf: float, event: Event) -> None:
        from assistant.dialog import State

        s = self.session
        if not await self._collect_digits(intent, slots, Prompt.ENROL_ASK_PHONE, PHONE_DIGITS):
            return
        self._new_turn()
        if len(s.digits) != PHONE_DIGITS or not s.digits.startswith("1"):
            self._say(Prompt.ENROL_PHONE_INVALID)
            self._ask_digits(Prompt.ENROL_ASK_PHONE, "enrol_phone")
            return
        assert self.services.enrolments is not None
        try:
            await self.services.enrolments.check_phone(s.digits)
        except EnrolmentError as exc:
            self._say(exc.prompt_id)
            self._ask_digits(Prompt.ENROL_ASK_PHONE, "enrol_phone")
            return
        s.pending_digits = s.digits
        self._say(Prompt.ENROL_PHONE_READBACK, phone=Digits(s.digits))
        self._show(Screen.CONFIRM, question=Prompt.ENROL_PHONE_READBACK, phone=Digits(s.digits))
        self._enter(State.ENROL_PHONE_CONFIRM)
        self._listen(Intent.CONFIRM, Intent.DENY, Intent.CANCEL)

    async def _in_enrol_phone_confirm(self: Dialog, intent: str, slots: dict[str, Any], conf: float, event: Event) -> None:
        if intent in (Intent.CONFIRM, "enter"):
            self._draft().phone = self.session.pending_digits
            self._new_turn()
            self._ask_digits(Prompt.ENROL_ASK_ACCOUNT, "enrol_account")
        elif intent in (Intent.DENY, "clear"):
            self._new_turn()
            self._ask_digits(Prompt.ENROL_ASK_PHONE, "enrol_phone")

    async def _in_enrol_account(self: Dialog, intent: str, slots: dict[str, Any], conf: float, event: Event) -> None:
        from assistant.dialog import State

        s = self.session
        if intent == Intent.SKIP and self._draft().accounts:
            await self._after_accounts()
            return
        if not await self._collect_digits(intent, slots, Prompt.ENROL_ASK_ACCOUNT, self.config.account_digits):
            return
        self._new_turn()
        assert self.services.enrolments is not None
        if len(s.digits) != self.config.account_digits:
            self._say(Prompt.ACCOUNT_DIGITS_WRONG, length=Count(self.config.account_digits))
            self._ask_digits(Prompt.ENROL_ASK_ACCOUNT, "enrol_account")
            return
        try:
            info = await self.services.enrolments.check_account(s.digits, self._draft().phone)
        except UnknownAccount:
            self._say(Prompt.ACCOUNT_NOT_FOUND, account=Digits(s.digits))
            self._ask_digits(Prompt.ENROL_ASK_ACCOUNT, "enrol_account")
            return
        except EnrolmentError as exc:
            self._say(exc.prompt_id)
            self._ask_digits(Prompt.ENROL_ASK_ACCOUNT, "enrol_account")
            return
        s.pending_digits = s.digits
        name = mask_name(info.holder_name)
        self._say(Prompt.ENROL_ACCOUNT_READBACK, account=Digits(s.digits), name=name)
        self._show(Screen.CONFIRM, question=Prompt.ENROL_ACCOUNT_READBACK, account=Digits(s.digits), name=name)
        self._enter(State.ENROL_ACCOUNT_CONFIRM)
        self._listen(Intent.CONFIRM, Intent.DENY, Intent.CANCEL)

    async def _in_enrol_account_confirm(self: Dialog, intent: str, slots: dict[str, Any], conf: float, event: Event) -> None:
        from assistant.dialog import State

        if intent in (Intent.CONFIRM, "enter"):
            draft = self._draft()
            if self.session.pending_digits not in draft.accounts:
                draft.accounts.append(self.session.pending_digits)
            self._new_turn()
            self._say(Prompt.ENROL_ASK_MORE_ACCOUNTS)
            self._show(Screen.ENROL_CUSTOMER, step=Prompt.ENROL_ASK_MORE_ACCOUNTS, accounts=Count(len(draft.accounts)))
            self._enter(State.ENROL_MORE)
            self._listen(Intent.CONFIRM, Intent.DENY, Intent.SKIP, Intent.CANCEL)
        elif intent in (Intent.DENY, "clear"):
            self._new_turn()
            self._ask_digits(Prompt.ENROL_ASK_ACCOUNT, "enrol_account")

    async def _in_enrol_more(self: Dialog, intent: str, slots: dict[str, Any], conf: float, event: Event) -> None:
        if intent in (Intent.CONFIRM, "enter"):
            self._new_turn()
            self._ask_digits(Prompt.ENROL_ASK_ACCOUNT, "enrol_account")
        elif intent in (Intent.DENY, Intent.SKIP, "clear"):
            await self._after_accounts()

    async def _after_accounts(self: Dialog) -> None:
        from assistant.dialog import State

        self._new_turn()
        if self._draft().face_consent:
            self.session.last_face_outcome = None
            self._say(Prompt.ENROL_FACE_CAPTURE)
            self._show(Screen.ENROL_CUSTOMER, step=Prompt.ENROL_FACE_CAPTURE, count=Count(0), total=Count(FACE_FRAMES_NEEDED))
            self._out.append(DeviceAction("camera", "capture", _args(frames=FACE_FRAMES_NEEDED)))
            self._enter(State.ENROL_FACE)
            self._listen(Intent.SKIP, Intent.CANCEL)
        else:
            self._offer_card()

    # ------------------------------------------------------------------ face capture
    async def _face_frame(self: Dialog, frames: int) -> None:
        assert self.services.enrolments is not None
        self._touch()
        if frames < FACE_FRAMES_NEEDED:
            self._new_turn()
            self._say(Prompt.ENROL_FACE_PROGRESS, count=Count(frames), total=Count(FACE_FRAMES_NEEDED))
            self._show(Screen.ENROL_CUSTOMER, step=Prompt.ENROL_FACE_CAPTURE, count=Count(frames), total=Count(FACE_FRAMES_NEEDED))
            return
        self._out.append(DeviceAction("camera", "stop"))
        self._new_turn()
        try:
            self.services.enrolments.check_face_consistency()
        except EnrolmentError:
            self._say(Prompt.ENROL_FACE_RETRY)
            await self._after_accounts()
            return
        self._say(Prompt.ENROL_FACE_DONE, remember=False)
        self._offer_card()

    async def _in_enrol_face(self: Dialog, intent: str, slots: dict[str, Any], conf: float, event: Event) -> None:
        if intent == Intent.SKIP:
            self._out.append(DeviceAction("camera", "stop"))
            draft = self._draft()
            draft.embeddings.clear()
            self._new_turn()
            self._say(Prompt.ENROL_STEP_SKIPPED, remember=False)
            self._offer_card()

    # ------------------------------------------------------------------ bank card
    def _offer_card(self: Dialog) -> None:
        """Offer card binding: the card is scanned at once; "skip" moves on."""
        enrol = self.services.enrolments
        if enrol is None or enrol.tokenizer is None:
            self._ask_method()
            return
        self.session.card_scans = 0
        self._scan_card(Prompt.ENROL_ASK_CARD)

    def _scan_card(self: Dialog, prompt: str = Prompt.CARD_SCAN) -> None:
        from assistant.dialog import State

        self.session.card_scans += 1
        self._say(prompt)
        self._show(Screen.CARD_SCAN, step=prompt)
        self._out.append(DeviceAction("card", "scan"))
        self._enter(State.ENROL_CARD_SCAN)
        self._listen(Intent.SKIP, Intent.DENY, Intent.CANCEL)

    async def _on_card_read(self: Dialog, event: CardRead) -> None:
        from assistant.dialog import State

        if self.state is not State.ENROL_CARD_SCAN:
            return
        assert self.services.enrolments is not None
        self._new_turn()
        if not event.ok:
            self._say(event.problem or Prompt.CARD_UNREADABLE)
            if self.session.card_scans >= MAX_CARD_SCANS:
                self._ask_method()
                return
            self._scan_card()
            return
        digits = SecretDigits(self.services.enrolments.card_digits())
        self._say(Prompt.CARD_READBACK, digits=digits, issuer=event.issuer, last4=Digits(event.last4))
        self._show(Screen.CARD_SCAN, step=Prompt.CARD_READBACK, digits=digits, issuer=event.issuer)
        self._enter(State.ENROL_CARD_CONFIRM)
        self._listen(Intent.CONFIRM, Intent.DENY, Intent.SKIP, Intent.CANCEL)

    async def _in_enrol_card_scan(self: Dialog, intent: str, slots: dict[str, Any], conf: float, event: Event) -> None:
        if intent in (Intent.SKIP, Intent.DENY, "clear"):
            self._out.append(DeviceAction("card", "stop"))
            self._new_turn()
            self._ask_method()

    async def _in_enrol_card_confirm(self: Dialog, intent: str, slots: dict[str, Any], conf: float, event: Event) -> None:
        enrol = self.services.enrolments
        assert enrol is not None
        if intent in (Intent.CONFIRM, "enter"):
            token = await enrol.bind_card()
            self._new_turn()
            self._say(Prompt.CARD_BOUND, last4=Digits(token.last4), issuer=token.issuer, remember=False)
            self._ask_method()
        elif intent in (Intent.DENY, "clear"):
            self._new_turn()
            self._scan_card()
        elif intent == Intent.SKIP:
            self._new_turn()
            self._ask_method()

    # ------------------------------------------------------------------ default method and commit
    def _ask_method(self: Dialog) -> None:
        from assistant.dialog import State

        self._say(Prompt.ENROL_ASK_DEFAULT_METHOD)
        self._show(Screen.CHOOSE_METHOD, step=Prompt.ENROL_ASK_DEFAULT_METHOD, card=self._draft().card is not None)
        self._enter(State.ENROL_METHOD)
        self._listen(Intent.PAY, Intent.CANCEL)

    async def _in_enrol_method(self: Dialog, intent: str, slots: dict[str, Any], conf: float, event: Event) -> None:
        enrol = self.services.enrolments
        assert enrol is not None
        method = slots.get("method") if intent == Intent.PAY else ("cash" if intent in (Intent.CONFIRM, "enter") else None)
        if not method:
            return
        self._new_turn()
        try:
            enrol.set_default_method(str(method))
        except EnrolmentError:
            self._say(Prompt.NO_CARD_BOUND)
            self._ask_method()
            return
        try:
            await enrol.commit()
        except EnrolmentError as exc:
            # e.g. the face already belongs to another customer: say why, keep nothing.
            self._say(exc.prompt_id)
            self._cancel_enrolment()
            return
        self._say(Prompt.ENROL_DONE)
        self._end_session()

    # ------------------------------------------------------------------ helpers
    def _draft(self: Dialog):
        assert self.services.enrolments is not None and self.services.enrolments.draft is not None
        return self.services.enrolments.draft

    def _cancel_enrolment(self: Dialog) -> None:
        if self.services.enrolments is not None:
            self.services.enrolments.discard()
        self._out.append(DeviceAction("camera", "stop"))
        self._new_turn()
        self._say(Prompt.ENROL_CANCELLED)
        self._end_session()


def _args(**kw: Any) -> Any:
    from assistant.messages import frozen_map

    return frozen_map(kw)
