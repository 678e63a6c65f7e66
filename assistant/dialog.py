"""The kiosk's dialog: a state machine from events to commands.

The dialog never touches a device or an engine directly. It receives typed events
(a key, an utterance, a face, a cash event, a timeout), consults the domain
services (billing, customers, payments), and returns commands: say a prompt id with
slots, show a screen, listen for some intents, start a timer, act on a device. The
same dialog runs behind the Kivy window and headless, with identical behaviour.

Rules it keeps for elderly customers:
- one keypress or one word pays the arrears by the default method; anything unusual
  (another amount, a low-confidence recognition) is read back and confirmed, and so is a
  spoken word that would charge a card or an e-wallet (noise can be heard as a word);
- every prompt can be repeated; speech can be slowed and made louder; the customer
  can always cancel or call staff;
- every wait warns first and offers more time before giving up;
- the face is never the only way in: the account number always works;
- a dialect is switched only on the customer's explicit request.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from assistant.billing import AccountInfo, Billing
from assistant.customers import Customer, CustomerDirectory, mask_account, mask_name
from assistant.dialog_enrol import EnrolmentSteps
from assistant.dialog_staff import StaffSteps
from assistant.enrolment import Enrolments
from assistant.errors import (
    BillingError,
    CashDeviceError,
    ConfigError,
    KioskError,
    PaymentError,
    UnknownAccount,
)
from assistant.messages import (
    ActionChosen,
    Amount,
    CancelTimer,
    CardRead,
    CashEvent,
    CashEventKind,
    Command,
    Count,
    DeviceAction,
    Digits,
    EndSession,
    Event,
    FaceCaptured,
    FaceOutcome,
    FaceSeen,
    Key,
    KeyPressed,
    Listen,
    LivenessResult,
    PaymentDone,
    Say,
    Seconds,
    SessionStart,
    SetTextSize,
    SetVoice,
    Show,
    SpeechFinished,
    StaffCommand,
    StartTimer,
    StopSpeaking,
    Timeout,
    Utterance,
    frozen_map,
)
from assistant.nlu import Understanding
from assistant.noncash import NonCashPayments
from assistant.prompts import Intent, Prompt, keypad_only
from assistant.screens import Action, Screen
from assistant.staff import StaffDirectory, StaffMember

log = logging.getLogger(__name__)


class State(StrEnum):
    """Where the conversation is."""

    IDLE = "idle"
    IDENTIFYING = "identifying"
    ACCOUNT_ENTRY = "account_entry"
    CONFIRM_ACCOUNT = "confirm_account"
    CONFIRM_FACE = "confirm_face"
    ARREARS = "arrears"
    CHOOSE_METHOD = "choose_method"
    CONFIRM_PAYMENT = "confirm_payment"
    CASH = "cash"
    SETTLING = "settling"
    LIVENESS = "liveness"
    PAYING = "paying"
    RESULT = "result"
    HELP = "help"
    STILL_THERE = "still_there"
    SETTINGS = "settings"
    FAULT = "fault"
    ENROL_STAFF = "enrol_staff"
    ENROL_STAFF_NO = "enrol_staff_no"
    ENROL_PIN = "enrol_pin"
    ENROL_CONSENT = "enrol_consent"
    ENROL_PHONE = "enrol_phone"
    ENROL_PHONE_CONFIRM = "enrol_phone_confirm"
    ENROL_ACCOUNT = "enrol_account"
    ENROL_ACCOUNT_CONFIRM = "enrol_account_confirm"
    ENROL_MORE = "enrol_more"
    ENROL_FACE = "enrol_face"
    ENROL_CARD_SCAN = "enrol_card_scan"
    ENROL_CARD_CONFIRM = "enrol_card_confirm"
    ENROL_METHOD = "enrol_method"
    STAFF_MENU = "staff_menu"
    CASSETTE_UNIT = "cassette_unit"
    CASSETTE_COUNT = "cassette_count"


ENROL_STATES = frozenset(s for s in State if s.value.startswith("enrol_"))
STAFF_STATES = frozenset({State.STAFF_MENU, State.CASSETTE_UNIT, State.CASSETTE_COUNT})
OVERLAY_STATES = frozenset({State.HELP, State.SETTINGS, State.STILL_THERE})
"""Screens put over a step (help, settings, the "still there?" warning); the step stays underneath."""


# States in which the customer is expected to act, so the idle timer runs.
WAITING_STATES = frozenset(
    {
        State.IDENTIFYING,
        State.ACCOUNT_ENTRY,
        State.CONFIRM_ACCOUNT,
        State.CONFIRM_FACE,
        State.ARREARS,
        State.CHOOSE_METHOD,
        State.CONFIRM_PAYMENT,
        State.CASH,
        State.HELP,
        State.RESULT,
        State.LIVENESS,
        State.SETTINGS,
        State.STAFF_MENU,
        State.CASSETTE_UNIT,
        State.CASSETTE_COUNT,
        *ENROL_STATES,
    }
)

METHOD_PROMPTS = {"cash": Prompt.METHOD_CASH, "card": Prompt.METHOD_CARD, "ewallet": Prompt.METHOD_EWALLET}
METHOD_ACTIONS = {Action.METHOD_CASH: "cash", Action.METHOD_CARD: "card", Action.METHOD_EWALLET: "ewallet"}

# Intents every listening state also accepts.
COMMON_INTENTS = (
    Intent.REPEAT,
    Intent.SLOWER,
    Intent.FASTER,
    Intent.LOUDER,
    Intent.SOFTER,
    Intent.BIGGER_TEXT,
    Intent.SMALLER_TEXT,
    Intent.SETTINGS,
    Intent.HELP,
    Intent.CHOOSE_LANGUAGE,
)

DECIDED = frozenset({FaceOutcome.IDENTIFIED, FaceOutcome.UNCERTAIN, FaceOutcome.UNKNOWN})
"""Face outcomes that decide who is there (the others are guidance: too small, blurry...)."""

FACE_GUIDANCE = {
    FaceOutcome.NO_FACE: Prompt.FACE_NO_FACE,
    FaceOutcome.SEVERAL_FACES: Prompt.FACE_SEVERAL,
    FaceOutcome.TOO_SMALL: Prompt.FACE_TOO_SMALL,
    FaceOutcome.NOT_FRONTAL: Prompt.FACE_NOT_FRONTAL,
    FaceOutcome.BLURRY: Prompt.FACE_BLURRY,
}

# The opening words fit what the kiosk can do right now: (camera, voice input) -> prompt.
# Without a camera the customer is asked for the account number instead of to look at
# the screen; without a recogniser they are told to use the keys, never to speak.
WELCOME_PROMPTS: dict[tuple[bool, bool], Prompt] = {
    (True, True): Prompt.WELCOME,
    (True, False): Prompt.WELCOME_KEYS,
    (False, True): Prompt.WELCOME_NO_CAMERA,
    (False, False): Prompt.WELCOME_KEYS_NO_CAMERA,
}


def welcome_prompt(face: bool, voice: bool) -> Prompt:
    """The welcome prompt for a kiosk with (``face``) or without a camera and face model,
    and with (``voice``) or without speech recognition."""
    return WELCOME_PROMPTS[(bool(face), bool(voice))]


# Voice and text adjustments: intent -> (setting, step, acknowledgement).
ADJUSTMENTS: dict[str, tuple[str, int, str]] = {
    Intent.SLOWER: ("rate", -1, Prompt.SLOWER_ACK),
    Intent.FASTER: ("rate", +1, Prompt.FASTER_ACK),
    Intent.LOUDER: ("volume", +1, Prompt.LOUDER_ACK),
    Intent.SOFTER: ("volume", -1, Prompt.SOFTER_ACK),
    Intent.BIGGER_TEXT: ("text", +1, Prompt.TEXT_BIGGER_ACK),
    Intent.SMALLER_TEXT: ("text", -1, Prompt.TEXT_SMALLER_ACK),
}

IDLE_TIMER = "idle"
NO_SPEECH_TIMER = "no_speech"
"""Posted by the listener after a long silence (see ``speech.listener``)."""
GRACE_TIMER = "grace"
RESULT_TIMER = "result"
EARLIER_CHECK_S = 3.0
"""How long a cash payment waits for the bank's word on an undecided card payment of the
same account (rare) before counting it as undecided and taking no cash."""


@dataclass(frozen=True)
class DialogConfig:
    """The ``[dialog]`` config section: timing and confirmation rules."""

    idle_timeout_s: float = 40.0
    """How long a waiting state waits for the customer before warning."""
    grace_timeout_s: float = 20.0
    """After the "need more time?" warning, how long before returning to the start."""
    more_time_factor: float = 1.5
    """Each "more time" multiplies this customer's timeouts by this factor."""
    result_timeout_s: float = 15.0
    """How long the result screen stays before the goodbye."""
    account_digits: int = 10
    """Length of an electricity account number (户号)."""
    confirm_confidence: float = 0.6
    """Below this recognition confidence, an action is read back before it is taken."""
    face_attempts: int = 6
    """Face frames with problems before falling back to the account number."""
    max_pay_fen: int = 1_000_000
    """Largest amount accepted at the kiosk in one payment (10 000 元)."""
    slowest_step: int = -2
    """How many steps slower than the pack's rate a customer can ask for."""
    fastest_step: int = 1
    """How many steps faster."""
    loudest_step: int = 3
    """How many steps louder than the default volume."""
    softest_step: int = -1
    """How many steps softer."""
    text_scales: tuple[float, ...] = (1.0, 1.25, 1.5)
    """Text sizes a customer can choose, default first."""
    face_only_limit_fen: int = 20_000
    """Above this, a non-cash payment needs liveness and a read-back of the masked account."""

    def __post_init__(self) -> None:
        # a zero or negative timer fires at once and loops the customer back to the start;
        # an empty text_scales fails on the first screen
        timers = ("idle_timeout_s", "grace_timeout_s", "result_timeout_s", "more_time_factor")
        for name in timers:
            if getattr(self, name) <= 0:
                raise ConfigError(f"[dialog] {name} must be > 0, got {getattr(self, name)}")
        if self.account_digits < 1 or self.face_attempts < 1 or self.max_pay_fen < 1:
            raise ConfigError("[dialog] account_digits, face_attempts and max_pay_fen must be >= 1")
        if not self.text_scales or any(x <= 0 for x in self.text_scales):
            raise ConfigError(f"[dialog] text_scales must list sizes > 0, default first, got {list(self.text_scales)}")


class CashPayments(abc.ABC):
    """The cash payment service as the dialog uses it (see ``assistant.cash_payment``)."""

    @abc.abstractmethod
    async def begin(self, payment_id: str, account_no: str, due_fen: int, user_id: int | None) -> None:
        """Open a cash payment and enable the acceptors."""

    @abc.abstractmethod
    async def accept_excess_as_credit(self, payment_id: str) -> None:
        """The customer agreed that any excess is credited to the account."""

    @abc.abstractmethod
    async def cancel(self, payment_id: str) -> bool | None:
        """Stop accepting and give back what was inserted (or credit it if impossible).

        Returns False when it is too late to cancel (the payment is already being settled
        or was resolved otherwise): nothing is handed back then, and the payment's result
        says how it ended.
        """

    @abc.abstractmethod
    def change_available(self) -> dict[int, int]:
        """Denomination (fen) -> count that can be paid out as change now."""

    @abc.abstractmethod
    async def wait_finished(self, payment_id: str, timeout: float) -> Any:
        """Wait for the payment to end; returns an object with ``inserted_fen``,
        ``change_fen``, ``credited_fen``, ``posted_fen`` and ``ok``."""


@dataclass
class DialogServices:
    """Everything the dialog consults. Fakes in tests subclass the real classes."""

    billing: Billing
    customers: CustomerDirectory
    understanding: Understanding | None
    staff: StaffDirectory | None = None
    """Staff verification (None: no staff functions)."""
    enrolments: Enrolments | None = None
    """Enrolment data side (None: enrolment unavailable)."""
    cassettes: Any = None
    """``assistant.cassette.CassetteExchange`` (None: no cassette exchange here)."""
    reload_locales: Callable[[], list[Any]] | None = None
    """Reload the locale packs; returns the problems (empty: applied)."""
    out_of_service: bool = False
    """Staff took the kiosk out of service: customers are told to go to the counter."""
    alerts: Any = None
    """``assistant.alerts.AlertService`` (pending alerts for the staff menu), or None."""
    customer_notice: Any = None
    """(prompt id, slots) shown on the welcome screen while no staff are in the hall, or None."""
    cash: CashPayments | None = None
    noncash: NonCashPayments | None = None
    """Quick-pay and e-wallet (None: cash only)."""
    packs: tuple[str, ...] = ("zh-CN",)
    """Locale packs a customer can switch to."""
    hall_phone: str = ""
    staff_present: bool = True
    voice_available: bool = True
    """False when the customer cannot be heard (no recogniser or microphone): keypad only."""
    face_available: bool = True
    """False when there is no camera or no face model: the account number is asked at once."""
    spawn: Callable[[Awaitable[Event | None]], None] | None = None
    """Run a background wait whose result (an event) is fed back to the dialog."""


@dataclass
class Session:
    """What the kiosk knows about the customer in front of it (reset for each customer)."""

    customer: Customer | None = None
    account: AccountInfo | None = None
    digits: str = ""
    method: str = "cash"
    amount_fen: int = 0
    payment_id: str = ""
    inserted_fen: int = 0
    face_problems: int = 0
    last_face_outcome: FaceOutcome | None = None
    candidate_user: int | None = None
    time_factor: float = 1.0
    warned: bool = False
    reprompted: bool = False
    resume_state: State | None = None
    pending_method: str = ""
    excess_ok: bool = False
    cash_waiting: str = ""
    """The cash payment whose end is being waited for (one wait per payment)."""
    cash_cancelled: bool = False
    """The customer's cash is being handed back (cancel or timeout)."""
    reported: str = ""
    """The payment whose result was told (a result is told and printed once)."""
    staff_member: StaffMember | None = None
    """The verified staff member (staff menu, enrolment)."""
    pin_member: StaffMember | None = None
    """The staff member whose face was seen (or staff number typed) and whose PIN is being asked."""
    staff_by_keypad: bool = False
    """The staff member is identified by a typed staff number, not by face."""
    staff_purpose: str = ""
    staff_pin: str = ""
    second_member: StaffMember | None = None
    second_pin: str = ""
    consent_spoken: bool = False
    """A spoken yes to face consent waits for the confirm key (cancel then means no)."""
    cassette_unit: str = ""
    cassette_label: str = ""
    cassette_rows: list[dict[str, Any]] = field(default_factory=list)
    cassette_in: dict[int, int] = field(default_factory=dict)
    cassette_row: int = 0
    cassette_out_fen: int = 0
    pending_digits: str = ""
    card_scans: int = 0
    resume_said: list[Say] = field(default_factory=list)
    resume_show: Show | None = None
    resume_listen: tuple[str, ...] = ()
    pack: str | None = None
    """Locale pack this customer chose (None: the kiosk's default)."""
    rate_step: int = 0
    volume_step: int = 0
    text_index: int = 0
    by_face: bool = False
    """Identified by face (non-cash payments need it)."""
    live: bool = False
    """Passed the liveness challenge in this session."""
    readback_done: bool = False


class Dialog(EnrolmentSteps, StaffSteps):
    """The state machine.

    Args:
        services: billing, customers, understanding and payment services.
        config: timing and confirmation rules.
    """

    def __init__(self, services: DialogServices, config: DialogConfig | None = None) -> None:
        self.services = services
        self.config = config or DialogConfig()
        self.state = State.IDLE
        self.session = Session()
        self.last_said: list[Say] = []
        self.last_show: Show | None = None
        self.listening: tuple[str, ...] = ()
        self._out: list[Command] = []

    # ------------------------------------------------------------------ entry point
    async def handle(self, event: Event) -> list[Command]:
        """Process one event and return the commands it causes, in order."""
        self._out = []
        try:
            await self._dispatch(event)
        except KioskError as exc:
            log.warning("dialog: %s in state %s: %s", type(exc).__name__, self.state, exc)
            await self._on_error(exc)
        out, self._out = self._out, []
        return out

    async def start(self) -> list[Command]:
        """The commands that put the kiosk on its welcome screen."""
        self._out = []
        self._to_idle(greet=False)
        out, self._out = self._out, []
        return out

    # ------------------------------------------------------------------ helpers for output
    def _say(self, prompt: str, remember: bool = True, **slots: Any) -> None:
        if not self.services.voice_available:
            # The customer cannot be heard: never invite them to speak.
            prompt = keypad_only(prompt)
        cmd = Say(prompt, frozen_map(slots))
        self._out.append(cmd)
        if remember:
            self.last_said.append(cmd)

    def _new_turn(self) -> None:
        """Forget what was said, so "repeat" repeats only the new turn."""
        self.last_said = []

    def _show(self, screen: Screen, **fields: Any) -> None:
        if not self.services.voice_available:
            # Instructions shown on the screen are the keypad-only words too.
            for key in ("question", "step", "guidance"):
                if isinstance(fields.get(key), str):
                    fields[key] = keypad_only(fields[key])
        cmd = Show(screen, frozen_map(fields))
        self.last_show = cmd
        self._out.append(cmd)

    def _listen(self, *intents: str) -> None:
        merged = tuple(dict.fromkeys([*intents, *COMMON_INTENTS]))
        self.listening = merged
        self._out.append(Listen(merged))

    def _timer(self, name: str, seconds: float) -> None:
        self._out.append(StartTimer(name, seconds))

    def _cancel_timer(self, name: str) -> None:
        self._out.append(CancelTimer(name))

    def _enter(self, state: State) -> None:
        """Move to ``state``; restart the idle timer where the customer must act."""
        self.state = state
        self.session.warned = False
        self.session.reprompted = False
        self._cancel_timer(GRACE_TIMER)
        if state in WAITING_STATES and state is not State.RESULT:
            self._timer(IDLE_TIMER, self.config.idle_timeout_s * self.session.time_factor)
        else:
            self._cancel_timer(IDLE_TIMER)

    def _suspend(self) -> None:
        """Remember where the customer is, to come back after a warning or a staff call.

        An overlay put over another overlay (the "still there?" warning over help, settings
        opened from the warning) keeps the step underneath: remembering the overlay instead
        lost an open cash payment behind it, so the warning's end did not hand the money
        back and leaving help ended the session with the customer's notes inside.
        """
        s = self.session
        if self.state in OVERLAY_STATES and s.resume_state is not None:
            return
        s.resume_state = self.state
        s.resume_said = list(self.last_said)
        s.resume_show = self.last_show
        s.resume_listen = self.listening

    def _touch(self) -> None:
        """The customer acted: restart the idle timer without changing the screen."""
        if self.state in WAITING_STATES and self.state is not State.RESULT:
            self._timer(IDLE_TIMER, self.config.idle_timeout_s * self.session.time_factor)

    # ------------------------------------------------------------------ dispatch
    async def _dispatch(self, event: Event) -> None:
        if isinstance(event, SpeechFinished):
            return
        if isinstance(event, Timeout):
            await self._on_timeout(event)
            return
        if isinstance(event, StaffCommand):
            if event.command == "start_enrolment" and self.state is State.IDLE:
                await self._start_enrolment()
            elif event.command == "staff_menu" and self.state is State.IDLE:
                await self._start_enrolment(purpose="menu")
            return
        if isinstance(event, CardRead):
            await self._on_card_read(event)
            return
        if isinstance(event, FaceCaptured) or (isinstance(event, FaceSeen) and self.state in ENROL_STATES):
            await self._enrol_face_event(event)
            return
        if isinstance(event, PaymentDone):
            await self._on_payment_done(event)
            return
        if isinstance(event, LivenessResult):
            await self._on_liveness(event)
            return
        if isinstance(event, CashEvent):
            await self._on_cash(event)
            return
        if isinstance(event, FaceSeen):
            await self._on_face(event)
            return
        if isinstance(event, SessionStart):
            if self.state is State.IDLE and not self.services.out_of_service:
                await self._begin_session()
            return

        # A key, a touch or a phrase: the customer is acting.
        intent, slots, confidence = self._interpret(event)
        if intent == "activity":
            # Moving the keypad focus: the customer is acting, so the wait starts again;
            # the focused button's caption is spoken by the window itself.
            self._touch()
            return
        if isinstance(event, (KeyPressed, ActionChosen, Utterance)):
            self._out.append(StopSpeaking())
        if intent is None:
            if isinstance(event, Utterance) and self.state is not State.IDLE:
                self._touch()
                self._new_turn()
                self._say(Prompt.NOT_UNDERSTOOD)
            return
        if await self._common(intent, slots, event):
            return
        handler = getattr(self, f"_in_{self.state.value}", None)
        if handler is not None:
            await handler(intent, slots, confidence, event)

    def _interpret(self, event: Event) -> tuple[str | None, dict[str, Any], float]:
        """Map keys, buttons and phrases onto one vocabulary of intents (+ digits)."""
        if isinstance(event, KeyPressed):
            key = event.key
            if key.digit is not None:
                return "digit", {"digit": key.digit}, 1.0
            return {
                Key.CONFIRM: Intent.CONFIRM,
                Key.ENTER: "enter",
                Key.CLEAR: "clear",
                Key.CANCEL: Intent.CANCEL,
                Key.REPEAT: Intent.REPEAT,
                Key.HELP: Intent.HELP,
                Key.STAR: "clear",
                Key.HASH: "enter",
            }.get(key), {}, 1.0
        if isinstance(event, ActionChosen):
            try:
                action = Action(event.action)
            except ValueError:
                return None, {}, 1.0
            if action in METHOD_ACTIONS:
                return Intent.PAY, {"method": METHOD_ACTIONS[action]}, 1.0
            mapping: dict[Action, tuple[str, dict[str, Any]]] = {
                Action.PAY_BILL: ("start", {}),
                Action.SERVICES: ("services", {}),
                Action.CALL_STAFF: (Intent.HELP, {}),
                Action.LANGUAGE: (Intent.CHOOSE_LANGUAGE, {"pack": event.value}),
                Action.REPEAT: (Intent.REPEAT, {}),
                Action.SLOWER: (Intent.SLOWER, {}),
                Action.FASTER: (Intent.FASTER, {}),
                Action.LOUDER: (Intent.LOUDER, {}),
                Action.SOFTER: (Intent.SOFTER, {}),
                Action.TEXT_BIGGER: (Intent.BIGGER_TEXT, {}),
                Action.TEXT_SMALLER: (Intent.SMALLER_TEXT, {}),
                Action.SETTINGS: (Intent.SETTINGS, {}),
                Action.FOCUS: ("activity", {}),
                Action.STAFF_MENU: (Intent.STAFF_MENU, {}),
                Action.START_ENROLMENT: (Intent.START_ENROLMENT, {}),
                Action.CLEAR_FAULT: (Intent.CLEAR_FAULT, {}),
                Action.CASH_EXCHANGE: (Intent.CASH_EXCHANGE, {}),
                Action.RELOAD_LOCALES: ("reload_locales", {}),
                Action.OUT_OF_SERVICE: ("out_of_service", {}),
                Action.UNIT_NOTES: ("unit_notes", {}),
                Action.UNIT_COINS: ("unit_coins", {}),
                Action.CANCEL: (Intent.CANCEL, {}),
                Action.ONE_KEY_PAY: (Intent.CONFIRM, {}),
                Action.CONFIRM: (Intent.CONFIRM, {}),
                Action.DENY: (Intent.DENY, {}),
                Action.OTHER_METHODS: ("other_methods", {}),
                Action.CREDIT_EXCESS: (Intent.CREDIT_EXCESS, {}),
                Action.MORE_TIME: (Intent.MORE_TIME, {}),
                Action.DONE: (Intent.CONFIRM, {}),
                Action.SKIP: (Intent.SKIP, {}),
                Action.DIGIT: ("digit", {"digit": event.value}),
                Action.CLEAR: ("clear", {}),
                Action.ENTER: ("enter", {}),
            }
            intent, slots = mapping.get(action, (None, {}))
            return intent, slots, 1.0
        if isinstance(event, Utterance):
            nlu = self.services.understanding
            if nlu is None or not event.text.strip():
                return None, {}, 0.0
            expected = self.listening or COMMON_INTENTS
            result = nlu.match(event.text, expected, self.session.pack)
            if result is None:
                return None, {}, event.confidence
            return str(result.intent), dict(result.slots), min(event.confidence, result.score)
        return None, {}, 1.0

    # ------------------------------------------------------------------ what works everywhere
    async def _common(self, intent: str, slots: dict[str, Any], event: Event) -> bool:
        if intent == Intent.REPEAT:
            self._touch()
            if self.last_show is not None:
                self._out.append(self.last_show)
            self._out.extend(self.last_said)
            return True
        if intent in ADJUSTMENTS:
            self._touch()
            self._adjust(intent)
            if self.state is not State.SETTINGS:
                # Say the current step again, now slower / louder.
                self._out.extend(self.last_said)
            else:
                self._show_settings()
            return True
        if intent == Intent.SETTINGS and self.state is not State.SETTINGS:
            if self.state is not State.IDLE:
                self._suspend()
            self._show_settings(intro=True)
            return True
        if intent == Intent.CHOOSE_LANGUAGE:
            pack = str(slots.get("pack", ""))
            if pack and pack in self.services.packs:
                self._touch()
                self.session.pack = pack
                self._out.append(SetVoice(pack=pack))
                self._say(Prompt.LANGUAGE_SWITCHED, remember=False)
                # Show and say the current step again, now in the chosen language.
                if self.last_show is not None:
                    self._out.append(self.last_show)
                self._out.extend(self.last_said)
            return True
        if intent == Intent.HELP and self.state not in (State.HELP, State.IDLE):
            if self.state is not State.STILL_THERE:
                self._suspend()
            self._call_staff()
            return True
        if intent == Intent.HELP and self.state is State.IDLE:
            self._begin_help_from_idle()
            return True
        if self.state is State.STILL_THERE:
            await self._still_there_answer(intent)
            return True
        if intent == Intent.CANCEL and self.state is State.ENROL_CONSENT and self.session.consent_spoken:
            # After a spoken yes the customer was told cancel means "I do not agree": the
            # face is not kept, the enrolment goes on.
            return False
        if intent == Intent.CANCEL and self.state in ENROL_STATES:
            self._cancel_enrolment()
            return True
        if intent == Intent.CANCEL and self.state in STAFF_STATES:
            self.session.staff_pin = self.session.second_pin = ""
            self._new_turn()
            self._end_session()
            return True
        if intent == Intent.CANCEL and self.state in (
            State.IDENTIFYING,
            State.ACCOUNT_ENTRY,
            State.CONFIRM_ACCOUNT,
            State.CONFIRM_FACE,
            State.ARREARS,
            State.CHOOSE_METHOD,
            State.CONFIRM_PAYMENT,
            State.RESULT,
        ):
            self._new_turn()
            if self.state is not State.RESULT:
                self._say(Prompt.CANCELLED)
            self._end_session()
            return True
        return False

    # ------------------------------------------------------------------ settings
    def _adjust(self, intent: str) -> None:
        """One step of speech rate, volume or text size, within the configured limits."""
        s, c = self.session, self.config
        setting, step, ack = ADJUSTMENTS[intent]
        if setting == "rate":
            new = s.rate_step + step
            ok = c.slowest_step <= new <= c.fastest_step
            if ok:
                s.rate_step = new
                self._out.append(SetVoice(rate_step=step))
        elif setting == "volume":
            new = s.volume_step + step
            ok = c.softest_step <= new <= c.loudest_step
            if ok:
                s.volume_step = new
                self._out.append(SetVoice(volume_step=step))
        else:
            new = s.text_index + step
            ok = 0 <= new < len(c.text_scales)
            if ok:
                s.text_index = new
                self._out.append(SetTextSize(c.text_scales[new]))
        self._say(ack if ok else Prompt.SETTING_LIMIT, remember=False)

    def _show_settings(self, intro: bool = False) -> None:
        s = self.session
        if intro:
            self._new_turn()
            self._say(Prompt.SETTINGS_INTRO)
        self._show(
            Screen.SETTINGS,
            text_size=Count(round(self.config.text_scales[s.text_index] * 100)),
            rate=Count(s.rate_step),
            volume=Count(s.volume_step),
        )
        if self.state is not State.SETTINGS:
            self._enter(State.SETTINGS)
            self._listen(Intent.SLOWER, Intent.LOUDER, Intent.CONFIRM, Intent.CANCEL)

    async def _in_settings(self, intent: str, slots: dict[str, Any], conf: float, event: Event) -> None:
        if intent in (Intent.CONFIRM, Intent.CANCEL, "enter"):
            resume = self.session.resume_state
            self._new_turn()
            if resume is None:
                self._to_idle()
            else:
                await self._resume(resume)

    # ------------------------------------------------------------------ session start / end
    def _to_idle(self, greet: bool = True) -> None:
        self.session = Session()
        self._new_turn()
        self.listening = ()
        self._enter(State.IDLE)
        self._out.append(DeviceAction("camera", "presence"))
        notice = self.services.customer_notice
        extra: dict[str, Any] = {}
        if notice is not None:
            # No staff in the hall: the hall's phone number stays on the welcome screen.
            prompt, slots = notice
            extra = {"guidance": prompt, **dict(slots)}
        self._show(
            Screen.WELCOME,
            hall_phone=Digits(self.services.hall_phone),
            staff_present=self.services.staff_present,
            camera=self.services.face_available,
            packs=self.services.packs,
            **extra,
        )
        self._listen(Intent.PAY, Intent.CONFIRM, Intent.START_ENROLMENT, Intent.STAFF_MENU)

    def _end_session(self) -> None:
        """Say goodbye, reset per-customer settings, go back to the welcome screen."""
        self._say(Prompt.GOODBYE, remember=False)
        self._out.append(EndSession())
        self._out.append(SetVoice(reset=True))
        self._out.append(DeviceAction("camera", "stop"))
        self._to_idle()

    async def _begin_session(self, seen: FaceOutcome | None = None) -> None:
        """A customer is there: welcome them and start looking (or ask for the account number).

        ``seen`` is what the camera already decided at walk-up, when a face started the
        session: a decision (known, nearly known, unknown) is acted on at once, without
        asking the customer to look at the screen or the camera to look again.
        """
        self.session = Session()
        self._new_turn()
        if seen in DECIDED and self.services.face_available:
            self._enter(State.IDENTIFYING)
            self._listen(Intent.ACCOUNT_NUMBER, Intent.CANCEL)
            return
        self._say(welcome_prompt(face=self.services.face_available, voice=self.services.voice_available))
        if not self.services.face_available:
            # No camera or face model: go straight to the account number, no waiting (the
            # welcome has already asked for it).
            self.session.digits = ""
            self._show_account_entry()
            self._enter(State.ACCOUNT_ENTRY)
            self._listen(Intent.ACCOUNT_NUMBER, Intent.CANCEL)
            return
        # The welcome has just asked the customer to look at the screen: shown, not said again.
        self._show(Screen.IDENTIFY, guidance=Prompt.LOOKING)
        self._out.append(DeviceAction("camera", "identify"))
        self._enter(State.IDENTIFYING)
        self._listen(Intent.ACCOUNT_NUMBER, Intent.CANCEL)

    def _begin_help_from_idle(self) -> None:
        self.session = Session()
        self.session.resume_state = None
        self._call_staff()

    def _call_staff(self) -> None:
        self._new_turn()
        phone = Digits(self.services.hall_phone)
        if self.services.staff_present:
            self._say(Prompt.HELP_CALLED, phone=phone)
        else:
            self._say(Prompt.HELP_NO_STAFF, phone=phone)
        self._out.append(DeviceAction("staff", "call", frozen_map(state=str(self.state))))
        self._show(Screen.HELP, hall_phone=phone, staff_present=self.services.staff_present)
        self._enter(State.HELP)
        self._listen(Intent.CANCEL, Intent.CONFIRM)

    # ------------------------------------------------------------------ face
    async def _on_face(self, event: FaceSeen) -> None:
        if self.state is State.IDLE and event.outcome is not FaceOutcome.NO_FACE:
            if self.services.out_of_service:
                return
            await self._begin_session(seen=event.outcome)
        if self.state is not State.IDENTIFYING:
            return
        s = self.session
        if event.outcome is FaceOutcome.IDENTIFIED and event.customer_id is not None:
            customer = await self.services.customers.by_user(event.customer_id)
            if customer is None or not customer.accounts:
                self._ask_account(Prompt.FACE_UNKNOWN)
                return
            self._out.append(DeviceAction("camera", "stop"))
            s.customer = customer
            s.by_face = True
            await self._load_account(customer.accounts[0])
            return
        if event.outcome is FaceOutcome.UNCERTAIN and event.customer_id is not None:
            customer = await self.services.customers.by_user(event.customer_id)
            if customer is None or not customer.accounts:
                self._ask_account(Prompt.FACE_UNKNOWN)
                return
            self._out.append(DeviceAction("camera", "stop"))
            s.candidate_user = customer.user_id
            self._new_turn()
            tail = mask_account(customer.accounts[0])
            self._say(Prompt.FACE_UNCERTAIN, account=tail)
            self._show(Screen.CONFIRM, question=Prompt.FACE_UNCERTAIN, account=tail)
            self._enter(State.CONFIRM_FACE)
            self._listen(Intent.CONFIRM, Intent.DENY, Intent.CANCEL)
            return
        if event.outcome is FaceOutcome.UNKNOWN:
            self._out.append(DeviceAction("camera", "stop"))
            self._ask_account(Prompt.FACE_UNKNOWN)
            return
        # A quality problem: guide the customer, but do not nag with the same words.
        s.face_problems += 1
        if s.face_problems >= self.config.face_attempts:
            self._out.append(DeviceAction("camera", "stop"))
            self._ask_account(Prompt.FACE_FAILED)
            return
        if event.outcome != s.last_face_outcome:
            s.last_face_outcome = event.outcome
            prompt = FACE_GUIDANCE.get(event.outcome, Prompt.LOOKING)
            self._new_turn()
            self._say(prompt)
            self._show(Screen.IDENTIFY, guidance=prompt)

    async def _in_confirm_face(self, intent: str, slots: dict[str, Any], conf: float, event: Event) -> None:
        s = self.session
        if intent == Intent.CONFIRM and s.candidate_user is not None:
            customer = await self.services.customers.by_user(s.candidate_user)
            if customer is not None:
                s.customer = customer
                await self._load_account(customer.accounts[0])
                return
        if intent in (Intent.DENY, Intent.CONFIRM):
            s.candidate_user = None
            self._ask_account()

    # ------------------------------------------------------------------ account number
    def _account_prompt(self) -> str:
        """How to give the account number: spoken or typed, or typed only when the
        customer cannot be heard."""
        return Prompt.ASK_ACCOUNT if self.services.voice_available else keypad_only(Prompt.ASK_ACCOUNT)

    def _ask_account(self, first: str | None = None) -> None:
        s = self.session
        s.digits = ""
        self._new_turn()
        if first is not None:
            self._say(first)
        self._say(self._account_prompt())
        self._show_account_entry()
        self._enter(State.ACCOUNT_ENTRY)
        self._listen(Intent.ACCOUNT_NUMBER, Intent.CANCEL)

    def _show_account_entry(self) -> None:
        self._show(
            Screen.ACCOUNT_ENTRY,
            digits=Digits(self.session.digits),
            length=self.config.account_digits,
        )

    async def _in_identifying(self, intent: str, slots: dict[str, Any], conf: float, event: Event) -> None:
        if intent == "digit" or intent == Intent.ACCOUNT_NUMBER:
            self._out.append(DeviceAction("camera", "stop"))
            self.state = State.ACCOUNT_ENTRY
            await self._in_account_entry(intent, slots, conf, event)
            return
        if intent in ("enter", Intent.CONFIRM):
            self._out.append(DeviceAction("camera", "stop"))
            self._ask_account()

    async def _in_account_entry(self, intent: str, slots: dict[str, Any], conf: float, event: Event) -> None:
        s = self.session
        if intent == "digit":
            if len(s.digits) < self.config.account_digits:
                s.digits += str(slots["digit"])
            self._touch()
            self._show_account_entry()
            if self.state is not State.ACCOUNT_ENTRY:
                self.state = State.ACCOUNT_ENTRY
                self._listen(Intent.ACCOUNT_NUMBER, Intent.CANCEL)
            return
        if intent == "clear":
            s.digits = s.digits[:-1]
            self._touch()
            self._show_account_entry()
            return
        if intent == Intent.ACCOUNT_NUMBER:
            s.digits = str(slots.get("digits", ""))
            await self._submit_account()
            return
        if intent in ("enter", Intent.CONFIRM):
            await self._submit_account()

    async def _submit_account(self) -> None:
        s = self.session
        self._new_turn()
        if len(s.digits) != self.config.account_digits or not s.digits.isdigit():
            self._say(Prompt.ACCOUNT_DIGITS_WRONG, length=Count(self.config.account_digits))
            self._say(self._account_prompt())
            s.digits = ""
            self._show_account_entry()
            self._enter(State.ACCOUNT_ENTRY)
            self._listen(Intent.ACCOUNT_NUMBER, Intent.CANCEL)
            return
        self._say(Prompt.ACCOUNT_READBACK, account=Digits(s.digits))
        self._show(Screen.CONFIRM, question=Prompt.ACCOUNT_READBACK, account=Digits(s.digits))
        self._enter(State.CONFIRM_ACCOUNT)
        self._listen(Intent.CONFIRM, Intent.DENY, Intent.CANCEL, Intent.ACCOUNT_NUMBER)

    async def _in_confirm_account(self, intent: str, slots: dict[str, Any], conf: float, event: Event) -> None:
        s = self.session
        if intent == Intent.CONFIRM or intent == "enter":
            try:
                info = await self.services.billing.account(s.digits)
            except UnknownAccount:
                self._new_turn()
                self._say(Prompt.ACCOUNT_NOT_FOUND, account=Digits(s.digits))
                self._say(self._account_prompt())
                s.digits = ""
                self._show_account_entry()
                self._enter(State.ACCOUNT_ENTRY)
                self._listen(Intent.ACCOUNT_NUMBER, Intent.CANCEL)
                return
            s.customer = await self.services.customers.by_account(info.account_no)
            await self._load_account(info.account_no, info)
            return
        if intent == Intent.DENY or intent == "clear":
            self._ask_account()
            return
        if intent == Intent.ACCOUNT_NUMBER or intent == "digit":
            s.digits = ""
            self.state = State.ACCOUNT_ENTRY
            await self._in_account_entry(intent, slots, conf, event)

    # ------------------------------------------------------------------ arrears
    async def _load_account(self, account_no: str, info: AccountInfo | None = None) -> None:
        s = self.session
        s.account = info or await self.services.billing.account(account_no)
        s.method = s.customer.default_method if s.customer else "cash"
        self._present_arrears()

    def _name_slot(self) -> Any:
        s = self.session
        assert s.account is not None
        name = s.customer.name if s.customer else s.account.holder_name
        return mask_name(name)

    def _present_arrears(self) -> None:
        s = self.session
        assert s.account is not None
        self._new_turn()
        account = mask_account(s.account.account_no)
        name = self._name_slot()
        if s.account.arrears_fen <= 0:
            self._say(Prompt.GREETING_NAMED, name=name)
            self._say(Prompt.NO_ARREARS, account=account, balance=Amount(s.account.prepaid_fen))
            self._show(
                Screen.IDENTIFIED,
                name=name,
                account=account,
                arrears=Amount(0),
                prepaid=Amount(s.account.prepaid_fen),
                method=METHOD_PROMPTS[s.method],
            )
            self._enter(State.RESULT)
            self._timer(RESULT_TIMER, self.config.result_timeout_s)
            self._listen(Intent.CONFIRM, Intent.CANCEL)
            return
        s.amount_fen = s.account.arrears_fen
        self._say(Prompt.GREETING_NAMED, name=name)
        self._say(
            Prompt.ARREARS,
            account=account,
            amount=Amount(s.account.arrears_fen),
            method=METHOD_PROMPTS[s.method],
        )
        self._show(
            Screen.IDENTIFIED,
            name=name,
            account=account,
            arrears=Amount(s.account.arrears_fen),
            prepaid=Amount(s.account.prepaid_fen),
            method=METHOD_PROMPTS[s.method],
        )
        self._enter(State.ARREARS)
        self._listen(Intent.CONFIRM, Intent.PAY, Intent.AMOUNT, Intent.CANCEL)

    async def _in_arrears(self, intent: str, slots: dict[str, Any], conf: float, event: Event) -> None:
        s = self.session
        assert s.account is not None
        if intent == "other_methods":
            self._choose_method()
            return
        if intent == Intent.AMOUNT:
            amount = slots.get("amount")
            if isinstance(amount, int) and amount > self.config.max_pay_fen:
                # An exact amount, just too much for one payment: say the limit, not "be exact".
                self._new_turn()
                self._say(Prompt.AMOUNT_TOO_LARGE, limit=Amount(self.config.max_pay_fen))
                self._touch()
                return
            if not isinstance(amount, int) or amount <= 0:
                self._new_turn()
                self._say(Prompt.AMOUNT_AMBIGUOUS)
                self._touch()
                return
            self._confirm_payment(s.method, amount)
            return
        if intent in (Intent.CONFIRM, Intent.PAY, "enter"):
            method = str(slots.get("method") or s.method)
            if conf < self.config.confirm_confidence or method != s.method or _spoken_charge(event, method):
                # Unusual or unsure: read it back before taking any money.
                self._confirm_payment(method, s.account.arrears_fen)
                return
            await self._start_payment(method, s.account.arrears_fen)

    def _choose_method(self) -> None:
        self._new_turn()
        self._say(Prompt.CHOOSE_METHOD)
        self._show(Screen.CHOOSE_METHOD, amount=Amount(self.session.amount_fen))
        self._enter(State.CHOOSE_METHOD)
        self._listen(Intent.PAY, Intent.CANCEL)

    async def _in_choose_method(self, intent: str, slots: dict[str, Any], conf: float, event: Event) -> None:
        if intent in (Intent.CONFIRM, "enter"):
            # The big key presses the screen's primary button: cash, as in the window.
            await self._start_payment("cash", self.session.amount_fen)
            return
        method = slots.get("method")
        if intent == Intent.PAY and method:
            if conf < self.config.confirm_confidence or _spoken_charge(event, str(method)):
                self._confirm_payment(str(method), self.session.amount_fen)
                return
            await self._start_payment(str(method), self.session.amount_fen)
        elif intent == Intent.PAY:
            # "pay" without saying how: ask again rather than stay silent
            self._touch()
            self._new_turn()
            self._say(Prompt.CHOOSE_METHOD)

    def _confirm_payment(self, method: str, amount_fen: int, note: str = "") -> None:
        s = self.session
        s.pending_method = method
        s.amount_fen = amount_fen
        self._new_turn()
        if note:
            self._say(note, limit=Amount(amount_fen))
        self._say(Prompt.CONFIRM_METHOD, amount=Amount(amount_fen), method=METHOD_PROMPTS[method])
        self._show(
            Screen.CONFIRM,
            question=Prompt.CONFIRM_METHOD,
            amount=Amount(amount_fen),
            method=METHOD_PROMPTS[method],
        )
        self._enter(State.CONFIRM_PAYMENT)
        self._listen(Intent.CONFIRM, Intent.DENY, Intent.CANCEL, Intent.AMOUNT)

    async def _in_confirm_payment(self, intent: str, slots: dict[str, Any], conf: float, event: Event) -> None:
        s = self.session
        if intent in (Intent.CONFIRM, "enter"):
            if s.readback_done and s.payment_id:
                await self._start_noncash(s.pending_method or s.method, s.amount_fen)
            else:
                await self._start_payment(s.pending_method or s.method, s.amount_fen)
        elif intent == Intent.DENY:
            self._present_arrears()
        elif intent == Intent.AMOUNT:
            await self._in_arrears(intent, slots, conf, event)

    # ------------------------------------------------------------------ paying
    async def _start_payment(self, method: str, amount_fen: int) -> None:
        s = self.session
        assert s.account is not None
        if amount_fen > self.config.max_pay_fen:
            # Arrears above what one payment may take (the big key pays the whole arrears):
            # offer the most one payment takes, and say so, before any money moves.
            self._confirm_payment(method, self.config.max_pay_fen, note=Prompt.PAY_LIMIT_PART)
            return
        s.method = method
        s.amount_fen = amount_fen
        s.payment_id = new_payment_id()
        s.inserted_fen = 0
        self._new_turn()
        if method == "cash":
            cash = self.services.cash
            if cash is None:
                # No working cash unit: say so plainly and offer the other ways to pay.
                self._say(Prompt.CASH_UNAVAILABLE)
                self._choose_method()
                return
            noncash = self.services.noncash
            try:
                # Bounded short: the customer stands at a screen that says nothing meanwhile.
                earlier = (await noncash.earlier_problem(s.account.account_no, EARLIER_CHECK_S)
                           if noncash is not None else None)
            except Exception:
                # Asking the bank failed in a way nobody foresaw: an earlier card charge may
                # still have happened, so it counts as undecided (no cash taken, the customer told).
                log.exception("payment %s: asking about earlier payments failed", s.payment_id)
                earlier = Prompt.PAYMENT_UNDECIDED
            if earlier is not None:
                # A card or e-wallet payment of this account is undecided or was just
                # confirmed: taking cash now could pay the bill twice.
                self._say(earlier)
                self._end_session()
                return
            try:
                await cash.begin(
                    s.payment_id, s.account.account_no, amount_fen, s.customer.user_id if s.customer else None
                )
            except CashDeviceError as exc:
                # Nothing was taken yet: say why and offer the other ways to pay.
                self._say(exc.prompt_id)
                self._out.append(DeviceAction("staff", "call", frozen_map(fault=str(exc))))
                self._choose_method()
                return
            self._out.append(
                DeviceAction("cash", "accept", frozen_map(payment=s.payment_id, due_fen=amount_fen))
            )
            self._say(Prompt.CASH_INSERT, due=Amount(amount_fen))
            self._show_cash()
            self._enter(State.CASH)
            self._listen(Intent.CANCEL, Intent.CREDIT_EXCESS)
            return
        await self._start_noncash(method, amount_fen)

    async def _start_noncash(self, method: str, amount_fen: int) -> None:
        """Quick-pay or e-wallet: face identity, liveness where needed, read-back if large."""
        s = self.session
        assert s.account is not None
        noncash = self.services.noncash
        if noncash is None or not noncash.available(method):
            self._say(Prompt.METHOD_UNAVAILABLE, method=METHOD_PROMPTS[method])
            s.method = "cash"
            self._choose_method()
            return
        if not s.by_face or s.customer is None:
            self._say(Prompt.NONCASH_NEEDS_FACE)
            s.method = "cash"
            self._choose_method()
            return
        if method == "card" and not s.customer.card_token:
            self._say(Prompt.NO_CARD_BOUND)
            s.method = "cash"
            self._choose_method()
            return
        large = amount_fen > self.config.face_only_limit_fen
        if (method == "card" or large) and not s.live:
            direction = secrets.choice(("left", "right"))
            word = Prompt.LIVENESS_LEFT if direction == "left" else Prompt.LIVENESS_RIGHT
            self._say(Prompt.LIVENESS_CHALLENGE, direction=word)
            self._show(Screen.IDENTIFY, guidance=Prompt.LIVENESS_CHALLENGE, direction=word)
            self._out.append(DeviceAction("camera", "liveness", frozen_map(direction=direction)))
            self._enter(State.LIVENESS)
            self._listen(Intent.CANCEL)
            return
        if large and not s.readback_done:
            s.readback_done = True
            s.pending_method = method
            self._say(
                Prompt.CONFIRM_ACCOUNT_PAYMENT,
                amount=Amount(amount_fen),
                method=METHOD_PROMPTS[method],
                account=mask_account(s.account.account_no),
            )
            self._show(
                Screen.CONFIRM,
                question=Prompt.CONFIRM_ACCOUNT_PAYMENT,
                amount=Amount(amount_fen),
                method=METHOD_PROMPTS[method],
                account=mask_account(s.account.account_no),
            )
            self._enter(State.CONFIRM_PAYMENT)
            self._listen(Intent.CONFIRM, Intent.DENY, Intent.CANCEL)
            return
        payer = s.customer.card_token if method == "card" else (s.customer.wallet_no or s.customer.phone)
        self._say(Prompt.PAYING_NONCASH, amount=Amount(amount_fen), method=METHOD_PROMPTS[method])
        self._show(Screen.RESULT, paid=Amount(amount_fen), pending=True)
        self._enter(State.PAYING)
        spawn = self.services.spawn
        payment_id, account_no = s.payment_id, s.account.account_no
        user_id = s.customer.user_id
        if spawn is not None:
            # Whatever goes wrong below the gateway, the charge may have happened: undecided.
            spawn(_never_stuck(noncash.pay(payment_id, account_no, user_id, method, str(payer), amount_fen),
                               PaymentDone(payment_id, ok=False, problem=Prompt.PAYMENT_TIMEOUT)))

    async def _on_liveness(self, event: LivenessResult) -> None:
        s = self.session
        if self.state is not State.LIVENESS:
            return
        self._new_turn()
        if not event.passed:
            self._say(Prompt.LIVENESS_FAILED)
            s.method = "cash"
            self._choose_method()
            return
        s.live = True
        await self._start_noncash(s.method, s.amount_fen)

    def _show_cash(self) -> None:
        s = self.session
        if s.cash_cancelled:
            # Being handed back: what is returned, nothing to insert or press.
            self._show(Screen.CASH, returning=Amount(s.inserted_fen))
            return
        cash = self.services.cash
        available = cash.change_available() if cash else {}
        self._show(
            Screen.CASH,
            due=Amount(s.amount_fen),
            inserted=Amount(s.inserted_fen),
            remaining=Amount(max(0, s.amount_fen - s.inserted_fen)),
            change_available=tuple(sorted((d for d, n in available.items() if n > 0), reverse=True)),
        )

    async def _in_cash(self, intent: str, slots: dict[str, Any], conf: float, event: Event) -> None:
        s = self.session
        cash = self.services.cash
        if intent == Intent.CANCEL and cash is not None:
            self._new_turn()
            await self._give_back_cash()
            return
        if intent == Intent.CREDIT_EXCESS and cash is not None:
            s.excess_ok = True
            await cash.accept_excess_as_credit(s.payment_id)
            self._touch()
            self._new_turn()
            self._say(Prompt.CASH_INSERT, due=Amount(max(0, s.amount_fen - s.inserted_fen)))

    def _paying_cash(self) -> bool:
        """A cash payment of this customer is open (on the cash screens or behind an overlay)."""
        s = self.session
        if not s.payment_id or s.reported == s.payment_id:
            return False
        if self.state in (State.CASH, State.SETTLING):
            return True
        return self.state in (State.STILL_THERE, State.HELP, State.SETTINGS) and s.resume_state in (
            State.CASH,
            State.SETTLING,
        )

    async def _on_cash(self, event: CashEvent) -> None:
        s = self.session
        if not self._paying_cash() or (event.payment_id and event.payment_id != s.payment_id):
            return
        if event.inserted_fen:
            s.inserted_fen = event.inserted_fen
        kind = event.event
        if self.state in (State.HELP, State.SETTINGS):
            # The customer is on the help or settings screen: keep the payment's story
            # (amounts, its end) so that coming back, or its result, tells the truth.
            if kind in (CashEventKind.PAID_IN_FULL, CashEventKind.FINISHED):
                s.resume_state = State.SETTLING
                self._wait_for_cash()
            return
        if (
            self.state is State.STILL_THERE
            and s.resume_state is State.CASH
            and kind in (CashEventKind.NOTE_IN_ESCROW, CashEventKind.CREDITED)
        ):
            # Money going in is an answer to "do you need more time?".
            s.resume_state = None
            self._enter(State.CASH)
            self._listen(Intent.CANCEL, Intent.CREDIT_EXCESS)
            if kind is CashEventKind.NOTE_IN_ESCROW:
                self._show_cash()
        if kind is CashEventKind.FINISHED:
            # The payment ended without "paid in full" first (resolved after a unit stopped
            # answering, or a refund): wait for its result, which tells what happened.
            if self.state is not State.SETTLING:
                self._enter(State.SETTLING)
            self._wait_for_cash()
            return
        if kind is CashEventKind.CREDITED:
            self._new_turn()
            remaining = max(0, s.amount_fen - s.inserted_fen)
            if s.cash_cancelled:
                # A note stacked just as the customer cancelled: it is handed back too.
                self._say(Prompt.CASH_RETURNING, amount=Amount(s.inserted_fen))
            elif remaining > 0:
                self._say(Prompt.CASH_INSERTED, inserted=Amount(s.inserted_fen), due=Amount(remaining))
                if self.state is State.CASH:
                    self._touch()
            self._show_cash()
        elif kind is CashEventKind.CHANGE_IMPOSSIBLE:
            self._new_turn()
            smaller = _detail_int(event.detail, "smaller_note_fen")
            if smaller:
                self._say(Prompt.CASH_CHANGE_SMALLER, note=Amount(event.value_fen), smaller=Amount(smaller))
            else:
                self._say(Prompt.CASH_CHANGE_IMPOSSIBLE, note=Amount(event.value_fen))
            self._touch()
        elif kind is CashEventKind.PAID_IN_FULL:
            self._new_turn()
            self._say(Prompt.CASH_RECEIVED_IN_FULL, inserted=Amount(s.inserted_fen))
            self._show_cash()
            self._enter(State.SETTLING)
            self._wait_for_cash()
        elif (
            kind is CashEventKind.DISPENSING
            and event.value_fen > 0
            and self.state is State.SETTLING
            and not s.cash_cancelled
        ):
            self._say(Prompt.CASH_DISPENSING, change=Amount(event.value_fen))
        elif kind is CashEventKind.FAULT:
            self._new_turn()
            self._say(Prompt.CASH_FAULT, inserted=Amount(s.inserted_fen))
            self._show(Screen.FAULT, detail=event.detail, inserted=Amount(s.inserted_fen))
            self._out.append(
                DeviceAction("staff", "call", frozen_map(fault=event.detail, payment=s.payment_id))
            )
        elif kind is CashEventKind.FAULT_CLEARED and self.state is State.CASH:
            self._new_turn()
            self._say(Prompt.CASH_FAULT_CLEARED)
            self._show_cash()
            self._touch()
        elif (
            kind is CashEventKind.RETURNED and s.cash_cancelled and event.detail == "notes" and event.value_fen > 0
        ):
            # A note still being checked when the customer cancelled: the unit hands it
            # back uncounted, so nothing said so far covered it. Tell them to take it.
            self._say(Prompt.CASH_RETURNING, amount=Amount(event.value_fen))
        # RETURNED (refunds), CHANGE_PAID, REMAINDER_CREDITED and FINISHED are reported to the
        # customer once, from the payment's result (see _on_payment_done).

    def _wait_for_cash(self) -> None:
        cash, spawn = self.services.cash, self.services.spawn
        if cash is None or spawn is None:
            return
        payment_id = self.session.payment_id
        if self.session.cash_waiting == payment_id:
            return  # already waiting: one result, one receipt
        self.session.cash_waiting = payment_id

        async def waiter() -> Event:
            try:
                result = await cash.wait_finished(payment_id, timeout=600.0)
            except (PaymentError, CashDeviceError) as exc:
                return PaymentDone(payment_id, ok=False, problem=exc.prompt_id)
            return PaymentDone(
                payment_id,
                ok=bool(result.ok),
                paid_fen=int(result.posted_fen),
                inserted_fen=int(result.inserted_fen),
                change_fen=int(result.change_fen),
                credited_fen=int(result.credited_fen),
            )

        # An unforeseen failure while waiting: the money inserted is in the journal; staff come.
        spawn(_never_stuck(waiter(), PaymentDone(payment_id, ok=False, problem=Prompt.CASH_FAULT)))

    async def _on_payment_done(self, event: PaymentDone) -> None:
        s = self.session
        if event.payment_id != s.payment_id or s.account is None or s.reported == event.payment_id:
            return
        s.reported = event.payment_id
        account = mask_account(s.account.account_no)
        self._new_turn()
        paid_fen = event.paid_fen
        if not event.ok and event.problem == Prompt.PAYMENT_PENDING:
            # The bank took the money; only the bill's update waits (recovery posts it).
            # The customer is told to keep the receipt, so the receipt shows what was taken.
            paid_fen = s.amount_fen
            self._say(Prompt.PAYMENT_PENDING, account=account)
        elif not event.ok and event.paid_fen > 0:
            # Part of the bill was paid (a payment finished after a fault): say what was paid
            # and what is still owed - never "cancelled, nothing charged".
            self._say(
                Prompt.PAYMENT_PARTIAL,
                amount=Amount(event.paid_fen),
                account=account,
                remaining=Amount(max(0, s.amount_fen - event.paid_fen)),
            )
        elif not event.ok:
            if event.problem == Prompt.PAYMENT_DECLINED:
                # Nothing was charged: say so plainly and offer the other ways, cash first.
                self._say(Prompt.PAYMENT_DECLINED)
                s.method = "cash"
                self._choose_method()
                return
            if event.problem == Prompt.CASH_FAULT:
                self._out.append(DeviceAction("staff", "call", frozen_map(fault="payment", payment=event.payment_id)))
            # Cancelled or failed: whatever was inserted has been given back, or credited.
            self._say(event.problem or Prompt.CANCELLED, inserted=Amount(event.inserted_fen or s.inserted_fen),
                      phone=Digits(self.services.hall_phone), account=account)
            if not event.credited_fen:
                self._end_session()
                return
        else:
            self._say(Prompt.PAYMENT_SUCCESS, amount=Amount(event.paid_fen), account=account)
        if event.credited_fen:
            self._say(
                Prompt.CASH_REMAINDER_CREDITED, remainder=Amount(event.credited_fen), account=account
            )
        receipt = frozen_map(
            payment=event.payment_id,
            account=account,
            amount=Amount(paid_fen),
            paid=Amount(paid_fen),
            inserted=Amount(event.inserted_fen),
            change=Amount(event.change_fen),
            credited=Amount(event.credited_fen),
            reference=Digits(event.payment_id[-6:]),
        )
        self._say(Prompt.RECEIPT_SPOKEN, **receipt)
        self._out.append(DeviceAction("printer", "print", receipt))
        self._say(Prompt.RECEIPT_PRINTING)
        # The screen shows only what happened: no "credited ¥0.00", and no cash lines for a
        # payment that took no cash (card, e-wallet).
        shown = dict(receipt)
        if not event.credited_fen:
            del shown["credited"]
        if not event.inserted_fen:
            del shown["inserted"], shown["change"]
        self._show(Screen.RESULT, **shown)
        self._enter(State.RESULT)
        self._timer(RESULT_TIMER, self.config.result_timeout_s)
        self._listen(Intent.CONFIRM, Intent.CANCEL)

    async def _in_result(self, intent: str, slots: dict[str, Any], conf: float, event: Event) -> None:
        if intent in (Intent.CONFIRM, "enter"):
            self._new_turn()
            self._end_session()

    async def _in_help(self, intent: str, slots: dict[str, Any], conf: float, event: Event) -> None:
        if intent in (Intent.CANCEL, Intent.CONFIRM, "enter"):
            resume = self.session.resume_state
            self.session.resume_state = None
            if resume is None or self.session.account is None and resume not in (
                State.IDENTIFYING,
                State.ACCOUNT_ENTRY,
            ):
                self._new_turn()
                self._end_session()
                return
            await self._resume(resume)

    async def _in_idle(self, intent: str, slots: dict[str, Any], conf: float, event: Event) -> None:
        if intent == Intent.START_ENROLMENT:
            await self._start_enrolment()
            return
        if intent in (Intent.STAFF_MENU, "services"):
            await self._start_enrolment(purpose="menu")
            return
        if self.services.out_of_service:
            self._new_turn()
            self._say(Prompt.ERROR_OUT_OF_SERVICE, phone=Digits(self.services.hall_phone))
            return
        if intent in ("start", Intent.PAY, Intent.CONFIRM, "enter"):
            await self._begin_session()
        elif intent == "digit":
            await self._begin_session()
            self._out.append(DeviceAction("camera", "stop"))
            self.state = State.ACCOUNT_ENTRY
            await self._in_account_entry(intent, slots, conf, event)

    # ------------------------------------------------------------------ timeouts
    async def _on_timeout(self, event: Timeout) -> None:
        s = self.session
        if event.timer == NO_SPEECH_TIMER:
            # A long silence while listening: one gentle word per step, never an abort.
            if self.state in WAITING_STATES and self.state is not State.RESULT and not s.reprompted:
                s.reprompted = True
                self._say(Prompt.LISTEN_REPROMPT, remember=False)
            return
        if event.timer == RESULT_TIMER and self.state in (State.RESULT, State.FAULT):
            self._new_turn()
            self._end_session()
            return
        if event.timer == IDLE_TIMER and self.state in WAITING_STATES:
            if self.state in OVERLAY_STATES and s.resume_state is State.SETTLING:
                # Help or settings over a payment that is settling: its result comes by
                # itself and is told then; the customer is not asked to hurry.
                return
            self._suspend()
            s.warned = True
            self.state = State.STILL_THERE
            self._new_turn()
            grace = self.config.grace_timeout_s * s.time_factor
            self._say(Prompt.STILL_THERE, seconds=Seconds(int(grace)))
            self._show(Screen.STILL_THERE, seconds=Seconds(int(grace)))
            self._timer(GRACE_TIMER, grace)
            self._listen(Intent.MORE_TIME, Intent.CONFIRM, Intent.CANCEL)
            return
        if event.timer == GRACE_TIMER and self.state is State.STILL_THERE:
            self._new_turn()
            if s.resume_state is State.CASH and self.services.cash is not None:
                await self._give_back_cash(before=Prompt.TIMED_OUT)
                return
            self._say(Prompt.TIMED_OUT)
            if s.resume_state in ENROL_STATES:
                self._cancel_enrolment()
                return
            s.staff_pin = s.second_pin = ""
            self._end_session()

    async def _give_back_cash(self, before: str = "") -> None:
        """Cancel the cash payment; ``before`` (a prompt) is said only if the cancel took effect."""
        s = self.session
        assert self.services.cash is not None
        taken_back = await self.services.cash.cancel(s.payment_id)
        if taken_back is not False:
            # Too late otherwise: the payment is settling and its result will be told.
            s.cash_cancelled = True
            if before:
                self._say(before)
            if s.inserted_fen > 0:
                self._say(Prompt.CASH_RETURNING, amount=Amount(s.inserted_fen))
                # The screen says so too, with the amount: no longer "insert ¥23.45 more".
                self._show_cash()
            self._out.append(DeviceAction("cash", "cancel", frozen_map(payment=s.payment_id)))
        self._enter(State.SETTLING)
        self._wait_for_cash()

    async def _still_there_answer(self, intent: str) -> None:
        s = self.session
        if intent in (Intent.MORE_TIME, Intent.CONFIRM, "enter", "digit"):
            s.time_factor *= self.config.more_time_factor
            resume = s.resume_state or State.IDLE
            self._new_turn()
            self._say(Prompt.MORE_TIME_GRANTED, remember=False)
            await self._resume(resume)
        elif intent == Intent.CANCEL:
            if s.resume_state in ENROL_STATES:
                self._cancel_enrolment()
                return
            self._new_turn()
            if s.resume_state is State.CASH and self.services.cash is not None:
                await self._give_back_cash(before=Prompt.CANCELLED)
                return
            self._say(Prompt.CANCELLED)
            self._end_session()

    async def _resume(self, state: State) -> None:
        """Go back to where the customer was: the same screen, prompt and expectations."""
        s = self.session
        s.resume_state = None
        if state is State.CASH:
            # The amounts may have changed while the warning was up.
            self._say(Prompt.CASH_INSERT, due=Amount(max(0, s.amount_fen - s.inserted_fen)))
            self._show_cash()
            self._enter(State.CASH)
            self._listen(Intent.CANCEL, Intent.CREDIT_EXCESS)
            return
        if state is State.IDLE or s.resume_show is None:
            self._end_session()
            return
        self._out.append(s.resume_show)
        self.last_show = s.resume_show
        for said in s.resume_said:
            self._out.append(said)
            self.last_said.append(said)
        self._enter(state)
        self.listening = s.resume_listen
        self._out.append(Listen(s.resume_listen))

    # ------------------------------------------------------------------ errors
    async def _on_error(self, exc: KioskError) -> None:
        self._new_turn()
        if isinstance(exc, CashDeviceError):
            s = self.session
            self._say(exc.prompt_id, inserted=Amount(s.inserted_fen))
            self._show(Screen.FAULT, detail=type(exc).__name__, inserted=Amount(s.inserted_fen))
            self._out.append(DeviceAction("staff", "call", frozen_map(fault=str(exc))))
            if s.payment_id and s.method == "cash" and self.services.cash is not None:
                # The payment's own result (once staff clear the fault, or recovery decides)
                # ends the session and tells the customer: the kiosk never stays on this screen.
                self._enter(State.SETTLING)
                self._wait_for_cash()
            else:
                self._enter(State.FAULT)
                self._timer(RESULT_TIMER, self.config.result_timeout_s)
            return
        # Every error prompt gets every slot an error prompt may name, so none fails to render.
        s = self.session
        account = s.account.account_no if s.account is not None else s.digits
        if not account and s.customer is not None and s.customer.accounts:
            account = s.customer.accounts[0]
        slots = {
            "phone": Digits(self.services.hall_phone),
            "inserted": Amount(s.inserted_fen),
            "account": mask_account(account) if account else Digits(""),
        }
        if isinstance(exc, BillingError) and self.state in (State.CONFIRM_ACCOUNT, State.IDENTIFYING):
            self._say(exc.prompt_id, **slots)
            self._end_session()
            return
        self._say(exc.prompt_id, **slots)
        if self.state not in (State.CASH, State.SETTLING):
            self._end_session()


def _spoken_charge(event: Event, method: str) -> bool:
    """True when one spoken word would take money from a card or an e-wallet.

    A recogniser held to a grammar forces noise and other people's words onto the
    grammar's words, often with full confidence (a beep heard as "对" at 1.0), so
    confidence alone cannot guard a charge: it is read back and confirmed first. Cash is
    not (nothing is taken until the customer puts money in), and keys are not (a press is
    the customer's own act).
    """
    return isinstance(event, Utterance) and method != "cash"


def _detail_int(detail: str, key: str) -> int:
    """An integer ``key=value`` from a cash event's detail (0 when absent)."""
    for part in detail.split(","):
        name, _, value = part.partition("=")
        if name.strip() == key and value.strip().isdigit():
            return int(value)
    return 0


def new_payment_id() -> str:
    """A payment id made of digits only (time + random), so its tail can be read aloud."""
    return time.strftime("%Y%m%d%H%M%S") + f"{secrets.randbelow(10**6):06d}"


def replace_config(config: DialogConfig, **changes: Any) -> DialogConfig:
    """A copy of ``config`` with some fields changed (tests lengthen or shorten timeouts)."""
    return dataclasses.replace(config, **changes)


async def _never_stuck(wait: Awaitable[Event | None], fallback: Event) -> Event | None:
    """Run a background wait; an unexpected failure becomes ``fallback`` (logged), so the
    customer is never left on a "please wait" screen by an error nobody foresaw."""
    try:
        return await wait
    except Exception:  # (a cancellation is not an Exception: it goes through)
        log.exception("background wait failed; reporting %s", fallback)
        return fallback
