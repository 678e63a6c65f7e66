"""Turns the dialog's ``Show`` commands into fully rendered :class:`ScreenModel` objects.

The UI draws a ScreenModel and nothing else: every string in it has come from the
active locale pack (labels, prompts) or from the customer's own data, already
masked. This module decides which buttons each screen has, so the widgets stay
free of logic and the headless kiosk shows exactly what the window would.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Protocol

from assistant.messages import Amount, Count, Digits, Masked, Seconds, Show
from assistant.prompts import Label, Prompt
from assistant.screens import Action, Button, Screen, ScreenModel


class Rendered(Protocol):
    """A prompt rendered for both channels."""

    speech: str
    display: str


class Pack(Protocol):
    """What the presenter needs from a locale pack (see ``assistant.locale``)."""

    id: str

    def label(self, label_id: str) -> str:
        """A short on-screen text."""

    def render(self, prompt_id: str, slots: Mapping[str, Any]) -> Rendered:
        """A prompt with its slots filled, for speech and for display."""


def format_amount(fen: int) -> str:
    """Money for the screen: ¥123.45 (never a float on the way)."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}¥{fen // 100}.{fen % 100:02d}"


def display_value(value: Any, pack: Pack) -> str:
    """One field value as a display string."""
    if isinstance(value, Amount):
        return format_amount(value.fen)
    if isinstance(value, Masked):
        return value.display
    if isinstance(value, Digits):
        return value.text
    if isinstance(value, (Count, Seconds)):
        return str(value.value)
    if isinstance(value, Prompt):
        return pack.render(value, {}).display
    if isinstance(value, Label):
        return pack.label(value)
    if isinstance(value, bool):
        return "1" if value else ""
    if isinstance(value, (tuple, list)):
        return " ".join(display_value(v, pack) for v in value)
    return str(value)


TITLES: dict[Screen, Label] = {
    Screen.WELCOME: Label.TITLE_WELCOME,
    Screen.IDENTIFY: Label.TITLE_IDENTIFY,
    Screen.ACCOUNT_ENTRY: Label.TITLE_ACCOUNT_ENTRY,
    Screen.CONFIRM: Label.TITLE_CONFIRM,
    Screen.IDENTIFIED: Label.TITLE_IDENTIFIED,
    Screen.CHOOSE_METHOD: Label.TITLE_CHOOSE_METHOD,
    Screen.CASH: Label.TITLE_CASH,
    Screen.RESULT: Label.TITLE_RESULT,
    Screen.HELP: Label.TITLE_HELP,
    Screen.FAULT: Label.TITLE_FAULT,
    Screen.STILL_THERE: Label.TITLE_STILL_THERE,
    Screen.CARD_SCAN: Label.TITLE_CARD_SCAN,
    Screen.ENROL_STAFF: Label.TITLE_ENROL_STAFF,
    Screen.ENROL_CUSTOMER: Label.TITLE_ENROL_CUSTOMER,
    Screen.SETTINGS: Label.TITLE_SETTINGS,
    Screen.CASSETTE: Label.TITLE_CASSETTE,
}

# Field name -> the heading shown beside it.
FIELD_LABELS: dict[str, Label] = {
    "name": Label.HDR_NAME,
    "account": Label.HDR_ACCOUNT,
    "arrears": Label.HDR_ARREARS,
    "prepaid": Label.HDR_PREPAID,
    "due": Label.HDR_TOTAL_DUE,
    "remaining": Label.HDR_DUE,
    "inserted": Label.HDR_INSERTED,
    "change": Label.HDR_CHANGE,
    "credited": Label.HDR_CREDITED,
    "paid": Label.HDR_PAID,
    "reference": Label.HDR_REFERENCE,
    "hall_phone": Label.HDR_HALL_PHONE,
    "change_available": Label.HDR_CHANGE_AVAILABLE,
    "amount": Label.HDR_PAID,
    "digits": Label.HDR_ACCOUNT,
    "card": Label.HDR_CARD,
    "issuer": Label.HDR_ISSUER,
    "phone": Label.HDR_PHONE,
    "staff": Label.HDR_STAFF,
    "customer": Label.HDR_NAME,
    "bank_staff": Label.HDR_BANK_STAFF,
    "hall_staff": Label.HDR_HALL_STAFF,
    "consent": Label.HDR_CONSENT,
    "frames": Label.HDR_FACE,
    "unit": Label.HDR_UNIT,
    "denomination": Label.HDR_DENOMINATION,
    "expected": Label.HDR_EXPECTED,
    "counted": Label.HDR_COUNTED,
    "difference": Label.HDR_DIFFERENCE,
    "loaded": Label.HDR_LOADED,
    "detail": Label.HDR_DETAIL,
    "text_size": Label.HDR_TEXT_SIZE,
    "speech_rate": Label.HDR_SPEECH_RATE,
    "volume": Label.HDR_VOLUME,
    "seconds": Label.UNIT_SECONDS,
}

# Headings that differ on one screen (or one step of it) from FIELD_LABELS.
SCREEN_FIELD_LABELS: dict[tuple[Screen, str], dict[str, Label]] = {
    (Screen.ENROL_CUSTOMER, "phone"): {"digits": Label.HDR_PHONE},
    (Screen.CASSETTE, ""): {"digits": Label.HDR_COUNTED},
}

# Show fields that are structure for the screen rather than display strings.
EXTRA_KEYS = frozenset(
    {"packs", "staff_present", "length", "levels", "stage", "step", "steps", "active_row", "frames_needed"}
)

# Buttons per screen: (action, label, primary). The repeat and language buttons are
# added to every screen so a customer can always hear it again or change language.
LAYOUT: dict[Screen, tuple[tuple[Action, Label, bool], ...]] = {
    Screen.WELCOME: (
        (Action.PAY_BILL, Label.BTN_PAY_BILL, True),
        (Action.SERVICES, Label.BTN_SERVICES, False),
        (Action.CALL_STAFF, Label.BTN_CALL_STAFF, False),
    ),
    Screen.IDENTIFY: (
        (Action.ENTER, Label.BTN_ACCOUNT, True),
        (Action.CALL_STAFF, Label.BTN_CALL_STAFF, False),
        (Action.CANCEL, Label.BTN_CANCEL, False),
    ),
    Screen.ACCOUNT_ENTRY: (
        (Action.ENTER, Label.BTN_ENTER, True),
        (Action.CLEAR, Label.BTN_CLEAR, False),
        (Action.CANCEL, Label.BTN_CANCEL, False),
    ),
    Screen.CONFIRM: (
        (Action.CONFIRM, Label.BTN_CONFIRM, True),
        (Action.DENY, Label.BTN_DENY, False),
        (Action.CANCEL, Label.BTN_CANCEL, False),
    ),
    Screen.IDENTIFIED: (
        (Action.ONE_KEY_PAY, Label.BTN_ONE_KEY_PAY, True),
        (Action.OTHER_METHODS, Label.BTN_OTHER_METHODS, False),
        (Action.CANCEL, Label.BTN_CANCEL, False),
    ),
    Screen.CHOOSE_METHOD: (
        (Action.METHOD_CASH, Label.BTN_CONFIRM, True),  # label replaced by the method name
        (Action.METHOD_CARD, Label.BTN_CONFIRM, False),
        (Action.METHOD_EWALLET, Label.BTN_CONFIRM, False),
        (Action.CANCEL, Label.BTN_CANCEL, False),
    ),
    Screen.CASH: (
        (Action.CREDIT_EXCESS, Label.BTN_CREDIT_EXCESS, False),
        (Action.CANCEL, Label.BTN_CANCEL, False),
    ),
    Screen.RESULT: ((Action.DONE, Label.BTN_DONE, True),),
    Screen.HELP: ((Action.CANCEL, Label.BTN_BACK, True),),
    Screen.FAULT: ((Action.CALL_STAFF, Label.BTN_CALL_STAFF, True),),
    Screen.STILL_THERE: (
        (Action.MORE_TIME, Label.BTN_MORE_TIME, True),
        (Action.CANCEL, Label.BTN_CANCEL, False),
    ),
    Screen.CARD_SCAN: (
        (Action.CANCEL, Label.BTN_CANCEL, False),
        (Action.CALL_STAFF, Label.BTN_CALL_STAFF, False),
    ),
    Screen.ENROL_STAFF: (
        (Action.CONFIRM, Label.BTN_NEXT, True),
        (Action.SKIP, Label.BTN_SKIP, False),
        (Action.CANCEL, Label.BTN_CANCEL, False),
    ),
    Screen.ENROL_CUSTOMER: (
        (Action.CANCEL, Label.BTN_CANCEL, False),
        (Action.CALL_STAFF, Label.BTN_CALL_STAFF, False),
    ),
    Screen.SETTINGS: (
        (Action.DONE, Label.BTN_DONE, True),
        (Action.TEXT_SMALLER, Label.BTN_TEXT_SMALLER, False),
        (Action.TEXT_BIGGER, Label.BTN_TEXT_BIGGER, False),
        (Action.SLOWER, Label.BTN_SLOWER, False),
        (Action.FASTER, Label.BTN_FASTER, False),
        (Action.SOFTER, Label.BTN_SOFTER, False),
        (Action.LOUDER, Label.BTN_LOUDER, False),
    ),
    Screen.CASSETTE: (
        (Action.ENTER, Label.BTN_ENTER, True),
        (Action.CLEAR, Label.BTN_CLEAR, False),
        (Action.CONFIRM, Label.BTN_DUAL_CONFIRM, False),
        (Action.CANCEL, Label.BTN_CANCEL, False),
    ),
}

# Variants of a screen's buttons, chosen by what the screen shows (see ``layout_for``).
VARIANT_LAYOUT: dict[str, tuple[tuple[Action, Label, bool], ...]] = {
    # Nothing owed: the one key finishes instead of offering to pay.
    "identified/paid_up": ((Action.DONE, Label.BTN_DONE, True),),
    # A card number passed its checks: read it back before binding or paying.
    "card_scan/readback": (
        (Action.CONFIRM, Label.BTN_CONFIRM, True),
        (Action.DENY, Label.BTN_RESCAN, False),
        (Action.CANCEL, Label.BTN_CANCEL, False),
    ),
    "enrol_customer/consent": (
        (Action.CONFIRM, Label.BTN_CONSENT_YES, True),
        (Action.DENY, Label.BTN_CONSENT_NO, False),
    ),
    "enrol_customer/phone": (
        (Action.ENTER, Label.BTN_ENTER, True),
        (Action.CLEAR, Label.BTN_CLEAR, False),
        (Action.CANCEL, Label.BTN_CANCEL, False),
    ),
    "enrol_customer/account": (
        (Action.ENTER, Label.BTN_ENTER, True),
        (Action.CLEAR, Label.BTN_CLEAR, False),
        (Action.CANCEL, Label.BTN_CANCEL, False),
    ),
    "enrol_customer/done": ((Action.DONE, Label.BTN_DONE, True),),
}

# On-screen texts a screen needs besides its fields (hints, status words), by key.
SCREEN_TEXTS: dict[Screen, tuple[tuple[str, Label], ...]] = {
    Screen.WELCOME: (("hint", Label.HINT_WELCOME), ("keys", Label.HINT_KEYS)),
    Screen.ACCOUNT_ENTRY: (("hint", Label.HINT_DIGITS),),
    Screen.FAULT: (("hint", Label.HINT_FAULT_SAFE),),
    Screen.ENROL_STAFF: (
        ("status_done", Label.STATUS_DONE),
        ("status_current", Label.STATUS_CURRENT),
        ("status_pending", Label.STATUS_PENDING),
    ),
    Screen.ENROL_CUSTOMER: (("hint", Label.HINT_DIGITS),),
    Screen.CASSETTE: (("hint", Label.HINT_DIGITS),),
}


def layout_for(screen: Screen, fields: Mapping[str, Any]) -> tuple[tuple[Action, Label, bool], ...]:
    """The buttons for ``screen`` given its fields: its LAYOUT, or a variant of it."""
    variant = ""
    if screen is Screen.IDENTIFIED:
        arrears = fields.get("arrears")
        if isinstance(arrears, Amount) and arrears.fen <= 0:
            variant = "paid_up"
    elif screen is Screen.CARD_SCAN and fields.get("card"):
        variant = "readback"
    elif screen is Screen.ENROL_CUSTOMER:
        variant = str(fields.get("step", ""))
    key = f"{screen.value}/{variant}"
    if variant and key in VARIANT_LAYOUT:
        return VARIANT_LAYOUT[key]
    return LAYOUT.get(screen, ())


def title_for(screen: Screen, fields: Mapping[str, Any]) -> Label | None:
    """The heading for ``screen``; a result with nothing paid does not say "paid"."""
    if screen is Screen.RESULT:
        paid = fields.get("paid")
        if isinstance(paid, Amount) and paid.fen <= 0:
            return Label.TITLE_NOT_PAID
    return TITLES.get(screen)

METHOD_LABEL_PROMPTS = {
    Action.METHOD_CASH: Prompt.METHOD_CASH,
    Action.METHOD_CARD: Prompt.METHOD_CARD,
    Action.METHOD_EWALLET: Prompt.METHOD_EWALLET,
}


class Presenter:
    """Renders ``Show`` commands with the active pack.

    Args:
        pack_lookup: pack id -> pack (for each dialect button's own-language name).
    """

    def __init__(self, pack_lookup: Callable[[str], Pack]) -> None:
        self.pack_lookup = pack_lookup

    def present(
        self,
        show: Show,
        pack: Pack,
        caption: str = "",
        text_scale: float = 1.0,
        packs: tuple[str, ...] = (),
    ) -> ScreenModel:
        """The ScreenModel for ``show`` in ``pack``."""
        screen = Screen(show.screen)
        fields: dict[str, str] = {}
        labels: dict[str, str] = {}
        extra: dict[str, Any] = {}
        step = str(show.fields.get("step", ""))
        heading = {**FIELD_LABELS, **SCREEN_FIELD_LABELS.get((screen, step), {})}
        for key, value in show.fields.items():
            if key == "steps":
                extra[key] = tuple(str(s) for s in value)
                extra["step_names"] = tuple(pack.label(f"step_{s}") for s in value)
                continue
            if key == "rows":
                extra[key] = tuple(
                    MappingProxyType({k: display_value(v, pack) for k, v in row.items()}) for row in value
                )
                for column in {k for row in value for k in row}:
                    if column in heading:
                        labels[column] = pack.label(heading[column])
                continue
            if key in EXTRA_KEYS:
                extra[key] = value
                continue
            if key == "question" and isinstance(value, str):
                fields[key] = pack.render(value, show.fields).display
                continue
            if key == "change_available":
                # Denominations in fen: shown as money, one chip each.
                extra[key] = tuple(value)
                extra["change_chips"] = tuple(format_amount(int(v)) for v in value)
                fields[key] = " ".join(extra["change_chips"])
                labels[key] = pack.label(heading[key])
                if not value:
                    labels["hint"] = pack.label(Label.HINT_NO_CHANGE)
                continue
            fields[key] = display_value(value, pack)
            if key in heading:
                labels[key] = pack.label(heading[key])
        for key, label_id in SCREEN_TEXTS.get(screen, ()):
            labels.setdefault(key, pack.label(label_id))
        if screen is Screen.HELP:
            hint = Label.HINT_HELP_WAIT if show.fields.get("staff_present", True) else Label.HINT_NO_STAFF
            labels["hint"] = pack.label(hint)
        buttons: list[Button] = []
        for action, label, primary in layout_for(screen, show.fields):
            text = pack.label(label)
            if action in METHOD_LABEL_PROMPTS:
                text = pack.render(METHOD_LABEL_PROMPTS[action], {}).display
            if action is Action.ONE_KEY_PAY and "method" in show.fields:
                method = pack.render(show.fields["method"], {}).display
                text = f"{text} · {method}"
            buttons.append(Button(action, text, primary))
        buttons.append(Button(Action.REPEAT, pack.label(Label.BTN_REPEAT)))
        for pid in packs:
            if pid != pack.id:
                other = self.pack_lookup(pid)
                buttons.append(Button(Action.LANGUAGE, other.label(Label.PACK_NAME), value=pid))
        if any(b.primary for b in buttons):
            labels["key_confirm"] = pack.label(Label.KEY_CONFIRM)
        title_id = title_for(screen, show.fields)
        title = pack.label(title_id) if title_id else ""
        return ScreenModel(
            screen=screen,
            title=title,
            fields=MappingProxyType(fields),
            labels=MappingProxyType(labels),
            buttons=tuple(buttons),
            caption=caption,
            pack=pack.id,
            text_scale=text_scale,
            extra=MappingProxyType(extra),
        )
