"""Messages between the dialog and the world: events in, commands out.

Everything here is a frozen dataclass; kinds are ``StrEnum`` so transcripts and logs
read as plain words. Slot values that need special speaking (money, digit strings,
masked identifiers) are wrapped so the renderer knows how to say and show them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

# ----------------------------------------------------------------------------- slots


@dataclass(frozen=True)
class Amount:
    """A sum of money in integer fen; spoken in money words, shown as ¥x.xx."""

    fen: int
    """Amount in fen (1 元 = 100 fen). Never a float."""

    def __post_init__(self) -> None:
        if not isinstance(self.fen, int) or isinstance(self.fen, bool):
            raise TypeError(f"Amount needs integer fen, got {self.fen!r}")


@dataclass(frozen=True)
class Digits:
    """A string of digits (account, phone, card tail), spoken one digit at a time."""

    text: str
    """Only ASCII digits, '*' (masked) allowed; leading zeros are kept."""


@dataclass(frozen=True)
class Masked:
    """A masked personal value: how it is shown and how it is spoken."""

    display: str
    """Shown on screen, e.g. 张** or ****1234."""
    spoken: str
    """Spoken form without mask characters, e.g. the surname only."""


@dataclass(frozen=True)
class SecretDigits:
    """Digits the customer must hear and see in full (a card number read-back) but that
    are never written to a log or transcript: those show only the last four."""

    text: str

    def __repr__(self) -> str:
        return f"SecretDigits(****{self.text[-4:]})"


@dataclass(frozen=True)
class Count:
    """A plain integer count (e.g. number of notes), spoken as a number."""

    value: int


@dataclass(frozen=True)
class Seconds:
    """A duration in whole seconds, spoken as a number."""

    value: int


def frozen_map(data: Mapping[str, Any] | None = None, **kw: Any) -> Mapping[str, Any]:
    """An immutable mapping for slots and screen fields."""
    merged = dict(data or {})
    merged.update(kw)
    return MappingProxyType(merged)


# ----------------------------------------------------------------------------- events


class EventKind(StrEnum):
    """What happened."""

    SESSION_START = "session_start"
    KEY = "key"
    ACTION = "action"
    UTTERANCE = "utterance"
    FACE = "face"
    CASH = "cash"
    CARD = "card"
    TIMEOUT = "timeout"
    SPEECH_FINISHED = "speech_finished"
    STAFF = "staff"
    PAYMENT = "payment"
    LIVENESS = "liveness"
    PACKS_RELOADED = "packs_reloaded"


class Key(StrEnum):
    """Physical keys: the one big confirm key and the 12-key pad with its function keys."""

    CONFIRM = "confirm"
    ENTER = "enter"
    CLEAR = "clear"
    CANCEL = "cancel"
    REPEAT = "repeat"
    HELP = "help"
    STAR = "*"
    HASH = "#"
    D0 = "0"
    D1 = "1"
    D2 = "2"
    D3 = "3"
    D4 = "4"
    D5 = "5"
    D6 = "6"
    D7 = "7"
    D8 = "8"
    D9 = "9"

    @property
    def digit(self) -> str | None:
        """The digit this key types, or None for function keys."""
        return self.value if self.value.isdigit() else None


@dataclass(frozen=True)
class Event:
    """Base of every event."""

    kind: EventKind = field(init=False)


@dataclass(frozen=True)
class SessionStart(Event):
    """A customer walked up (presence detected or the screen was touched)."""

    kind: EventKind = field(default=EventKind.SESSION_START, init=False)


@dataclass(frozen=True)
class KeyPressed(Event):
    """A physical key (or its keyboard equivalent) was pressed."""

    key: Key
    """Which key."""
    kind: EventKind = field(default=EventKind.KEY, init=False)


@dataclass(frozen=True)
class ActionChosen(Event):
    """An on-screen button was touched."""

    action: str
    """The button's action id (see ``assistant.dialog.Action``)."""
    value: str = ""
    """Extra value, e.g. the pack id for a dialect button."""
    kind: EventKind = field(default=EventKind.ACTION, init=False)


@dataclass(frozen=True)
class Utterance(Event):
    """The customer said something (a final recognition result)."""

    text: str
    """Transcript as the recogniser produced it (spaces between words allowed)."""
    confidence: float = 1.0
    """Recogniser confidence in 0..1."""
    kind: EventKind = field(default=EventKind.UTTERANCE, init=False)


class FaceOutcome(StrEnum):
    """Result of looking at the person in front of the kiosk."""

    IDENTIFIED = "identified"
    UNKNOWN = "unknown"
    UNCERTAIN = "uncertain"
    NO_FACE = "no_face"
    SEVERAL_FACES = "several_faces"
    TOO_SMALL = "too_small"
    NOT_FRONTAL = "not_frontal"
    BLURRY = "blurry"


@dataclass(frozen=True)
class FaceSeen(Event):
    """The face watcher looked at a camera frame."""

    outcome: FaceOutcome
    """What was found."""
    customer_id: int | None = None
    """The identified customer (only when ``outcome`` is IDENTIFIED or UNCERTAIN)."""
    score: float = 0.0
    """Cosine similarity of the best match."""
    margin: float = 0.0
    """Best score minus the second-best candidate's score."""
    kind: EventKind = field(default=EventKind.FACE, init=False)


class CashEventKind(StrEnum):
    """What the cash service reports to the dialog."""

    NOTE_IN_ESCROW = "note_in_escrow"
    CREDITED = "credited"
    RETURNED = "returned"
    CHANGE_IMPOSSIBLE = "change_impossible"
    CHANGE_PAID = "change_paid"
    PAID_IN_FULL = "paid_in_full"
    FAULT = "fault"
    DISPENSING = "dispensing"
    """Change (or a refund) is being paid out; ``value_fen`` is the amount."""
    REMAINDER_CREDITED = "remainder_credited"
    """What could not be paid out was credited to the account; ``value_fen`` is the amount."""
    FAULT_CLEARED = "fault_cleared"
    """A unit is back in service (``detail`` names it)."""
    FINISHED = "finished"
    """The payment is closed and its receipt can be printed; ``value_fen`` is what was posted."""


@dataclass(frozen=True)
class CashEvent(Event):
    """A cash unit or the cash payment service reports progress."""

    event: CashEventKind
    """What happened."""
    value_fen: int = 0
    """The note/coin value or amount concerned."""
    inserted_fen: int = 0
    """Total credited so far in this payment."""
    detail: str = ""
    """Machine-readable detail (fault code, unit name)."""
    payment_id: str = ""
    """The payment it is about ("" for a unit's own news between payments); the end of an
    earlier customer's payment resolved later must not be taken for the current one's."""
    kind: EventKind = field(default=EventKind.CASH, init=False)


@dataclass(frozen=True)
class CardRead(Event):
    """The card reader produced a result."""

    ok: bool
    """True when a number passed all checks."""
    last4: str = ""
    """Last four digits (never the whole number)."""
    issuer: str = ""
    """Issuer name from the BIN table."""
    problem: str = ""
    """Why it failed (prompt id), when not ok."""
    kind: EventKind = field(default=EventKind.CARD, init=False)


@dataclass(frozen=True)
class Timeout(Event):
    """A timer started by the dialog ran out."""

    timer: str
    """The timer's name."""
    kind: EventKind = field(default=EventKind.TIMEOUT, init=False)


@dataclass(frozen=True)
class SpeechFinished(Event):
    """The kiosk finished (or was stopped while) speaking a prompt."""

    prompt_id: str
    interrupted: bool = False
    kind: EventKind = field(default=EventKind.SPEECH_FINISHED, init=False)


@dataclass(frozen=True)
class FaceCaptured(Event):
    """During enrolment, one more good frame of the customer's face was kept."""

    frames: int
    """How many good frames are kept so far."""
    kind: EventKind = field(default=EventKind.FACE, init=False)


@dataclass(frozen=True)
class LivenessResult(Event):
    """The head-turn liveness challenge finished."""

    passed: bool
    """True when a real, turning head was seen."""
    reason: str = ""
    """Why it failed (no movement, wrong direction, face changed...)."""
    kind: EventKind = field(default=EventKind.LIVENESS, init=False)


@dataclass(frozen=True)
class PaymentDone(Event):
    """A payment (any method) reached its end: posted, or failed with nothing charged."""

    payment_id: str
    """The payment's id (also its idempotency key)."""
    ok: bool
    """True when the bill was posted."""
    paid_fen: int = 0
    """Amount posted against the bill."""
    inserted_fen: int = 0
    """Cash received (cash payments)."""
    change_fen: int = 0
    """Change paid out."""
    credited_fen: int = 0
    """Amount credited to the account as prepayment (undispensable change, excess)."""
    problem: str = ""
    """Prompt id explaining a failure."""
    kind: EventKind = field(default=EventKind.PAYMENT, init=False)


@dataclass(frozen=True)
class StaffCommand(Event):
    """A staff function was requested (voice phrase, staff menu or CLI)."""

    command: str
    """What: start_enrolment, reload_locales, cassette_exchange..."""
    staff_id: int | None = None
    """Verified staff member, when known."""
    kind: EventKind = field(default=EventKind.STAFF, init=False)


@dataclass(frozen=True)
class PacksReloaded(Event):
    """The locale packs were reloaded on the running kiosk (``locales reload``): the screen
    on display is drawn again with the new words and language buttons."""

    kind: EventKind = field(default=EventKind.PACKS_RELOADED, init=False)


# ----------------------------------------------------------------------------- commands


class CommandKind(StrEnum):
    """What the dialog asks the world to do."""

    SAY = "say"
    SHOW = "show"
    LISTEN = "listen"
    STOP_SPEAKING = "stop_speaking"
    START_TIMER = "start_timer"
    CANCEL_TIMER = "cancel_timer"
    DEVICE = "device"
    SET_VOICE = "set_voice"
    SET_TEXT_SIZE = "set_text_size"
    END_SESSION = "end_session"


@dataclass(frozen=True)
class Command:
    """Base of every command."""

    kind: CommandKind = field(init=False)


@dataclass(frozen=True)
class Say(Command):
    """Speak a prompt from the active locale pack (and caption it on screen)."""

    prompt_id: str
    """Prompt id in ``responses.yaml``."""
    slots: Mapping[str, Any] = field(default_factory=frozen_map)
    """Values for the prompt's ``{placeholders}``."""
    kind: CommandKind = field(default=CommandKind.SAY, init=False)


@dataclass(frozen=True)
class Show(Command):
    """Show a screen with its fields."""

    screen: str
    """Screen id (one ``.kv`` file per screen)."""
    fields: Mapping[str, Any] = field(default_factory=frozen_map)
    """Data the screen displays (already masked)."""
    kind: CommandKind = field(default=CommandKind.SHOW, init=False)


@dataclass(frozen=True)
class Listen(Command):
    """Open the microphone for the given intents (they define the ASR grammar)."""

    intents: tuple[str, ...]
    """Intent names expected in this state."""
    kind: CommandKind = field(default=CommandKind.LISTEN, init=False)


@dataclass(frozen=True)
class StopSpeaking(Command):
    """Stop the current prompt at once (barge-in)."""

    kind: CommandKind = field(default=CommandKind.STOP_SPEAKING, init=False)


@dataclass(frozen=True)
class StartTimer(Command):
    """Start (or restart) a named timer."""

    timer: str
    seconds: float
    kind: CommandKind = field(default=CommandKind.START_TIMER, init=False)


@dataclass(frozen=True)
class CancelTimer(Command):
    """Cancel a named timer if running."""

    timer: str
    kind: CommandKind = field(default=CommandKind.CANCEL_TIMER, init=False)


@dataclass(frozen=True)
class DeviceAction(Command):
    """Ask a device to act (recorded in the transcript)."""

    device: str
    """Device name: ``cash``, ``printer``, ``camera``..."""
    action: str
    """What to do."""
    args: Mapping[str, Any] = field(default_factory=frozen_map)
    kind: CommandKind = field(default=CommandKind.DEVICE, init=False)


@dataclass(frozen=True)
class SetVoice(Command):
    """Change speech settings for the current customer."""

    pack: str = ""
    """Switch the locale pack (explicit customer choice only)."""
    rate_step: int = 0
    """-1 slower, +1 faster, 0 unchanged."""
    volume_step: int = 0
    """+1 louder, -1 softer, 0 unchanged."""
    reset: bool = False
    """Back to the defaults (a new customer)."""
    kind: CommandKind = field(default=CommandKind.SET_VOICE, init=False)


@dataclass(frozen=True)
class SetTextSize(Command):
    """Change the text size for the current customer."""

    scale: float
    """1.0 is the default; the largest is 1.5."""
    kind: CommandKind = field(default=CommandKind.SET_TEXT_SIZE, init=False)


@dataclass(frozen=True)
class EndSession(Command):
    """The customer is done; reset per-customer settings and return to welcome."""

    kind: CommandKind = field(default=CommandKind.END_SESSION, init=False)
