"""Turns the dialog's ``Show`` commands into fully rendered :class:`ScreenModel` objects.

The UI draws a ScreenModel and nothing else: every string in it has come from the
active locale pack (labels, prompts) or from the customer's own data, already
masked. This module decides which buttons each screen has, so the widgets stay
free of logic and the headless kiosk shows exactly what the window would.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Protocol

from assistant.errors import LocaleError
from assistant.messages import Amount, Count, Show
from assistant.prompts import Label, Prompt, spoken_form
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

    def display(self, value: Any) -> str:
        """One slot value as screen text."""


def display_value(value: Any, pack: Pack) -> str:
    """One field value as a display string."""
    if isinstance(value, bool):
        return "1" if value else ""
    return pack.display(value)


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
    Screen.SETTINGS: Label.TITLE_SETTINGS,
    Screen.CARD_SCAN: Label.TITLE_CARD_SCAN,
    Screen.ENROL_STAFF: Label.TITLE_ENROL_STAFF,
    Screen.ENROL_CUSTOMER: Label.TITLE_ENROL_CUSTOMER,
    Screen.CASSETTE: Label.TITLE_CASSETTE,
    Screen.STAFF_MENU: Label.TITLE_STAFF_MENU,
}

# Field name -> the heading shown beside it.
FIELD_LABELS: dict[str, Label] = {
    "name": Label.HDR_NAME,
    "account": Label.HDR_ACCOUNT,
    "arrears": Label.HDR_ARREARS,
    "prepaid": Label.HDR_BALANCE,
    "due": Label.HDR_DUE,
    "remaining": Label.HDR_DUE,
    "inserted": Label.HDR_INSERTED,
    "change": Label.HDR_CHANGE,
    "credited": Label.HDR_CREDITED,
    "paid": Label.HDR_PAID,
    "reference": Label.HDR_REFERENCE,
    "hall_phone": Label.HDR_HALL_PHONE,
    "change_available": Label.HDR_CHANGE_AVAILABLE,
    "amount": Label.HDR_PAID,
    "text_size": Label.HDR_TEXT_SIZE,
    "rate": Label.HDR_SPEECH_RATE,
    "volume": Label.HDR_VOLUME,
    "phone": Label.HDR_PHONE,
    "digits": Label.HDR_ACCOUNT,
    "detail": Label.HDR_STATE,
    "unit": Label.HDR_DEVICE,
    "denomination": Label.HDR_DENOMINATION,
    "count_out": Label.HDR_COUNT_OUT,
    "count_in": Label.HDR_COUNT_IN,
    "seconds": Label.UNIT_SECONDS,
    "returning": Label.HDR_RETURNING,
}

# Headings that differ on one screen (or one step of it) from FIELD_LABELS.
SCREEN_FIELD_LABELS: dict[tuple[Screen, str], dict[str, Label | None]] = {
    (Screen.CASH, ""): {"due": Label.HDR_TOTAL},
    (Screen.CHOOSE_METHOD, ""): {"amount": Label.HDR_TOTAL},
    (Screen.CONFIRM, ""): {"amount": Label.HDR_TOTAL},
    (Screen.CARD_SCAN, Prompt.CARD_READBACK): {"digits": Label.HDR_CARD},
    (Screen.ENROL_CUSTOMER, Prompt.ENROL_ASK_PHONE): {"digits": Label.HDR_PHONE},
    (Screen.CASSETTE, ""): {"digits": Label.HDR_COUNT_IN},
    # A PIN has no heading: nothing on screen says what the digits are for.
    (Screen.ENROL_STAFF, Prompt.STAFF_VERIFY): {"digits": None},
    (Screen.ENROL_STAFF, Prompt.STAFF_PIN): {"digits": None},
    (Screen.ENROL_STAFF, Prompt.STAFF_PIN_KEYPAD): {"digits": None},
    (Screen.ENROL_STAFF, Prompt.STAFF_ASK_NUMBER): {"digits": Label.HDR_STAFF_NO},
}

# Settings shown in words, never as a bare step number: field -> (fewer, more) labels.
SETTING_WORDS: dict[str, tuple[Label, Label]] = {
    "rate": (Label.SETTING_SLOWER, Label.SETTING_FASTER),
    "volume": (Label.SETTING_SOFTER, Label.SETTING_LOUDER),
}


def setting_text(pack: Pack, steps: int, fewer: Label, more: Label) -> str:
    """A speech rate or volume step as words: 标准, 慢1档, 大声2档."""
    if steps == 0:
        return pack.label(Label.SETTING_STANDARD)
    return pack.label(fewer if steps < 0 else more, {"steps": Count(abs(steps))})  # type: ignore[call-arg]


# Fields that are structure for the screen rather than display strings (booleans too).
EXTRA_KEYS = frozenset({"packs", "staff_present", "camera", "length", "rows", "active_row"})

# Prompt-valued fields shown as text with the screen's other fields as their slots. A
# prompt whose slots the screen does not have is left to the caption (what is said).
RENDERED_KEYS = ("question", "step", "guidance")
_UNFILLED = re.compile(r"\{\w+\}")

# On-screen texts a screen shows besides its fields, by key.
SCREEN_TEXTS: dict[Screen, tuple[tuple[str, Label], ...]] = {
    Screen.WELCOME: (("hint", Label.HINT_WELCOME), ("keys", Label.HINT_KEYS)),
    Screen.ACCOUNT_ENTRY: (("hint", Label.HINT_DIGITS),),
    Screen.ENROL_CUSTOMER: (("hint", Label.HINT_DIGITS),),
    Screen.CASSETTE: (("hint", Label.HINT_DIGITS),),
}

# Buttons per screen: (action, label, primary). The repeat and language buttons are
# added to every screen so a customer can always hear it again or change language.
LAYOUT: dict[Screen, tuple[tuple[Action, Label, bool], ...]] = {
    Screen.WELCOME: (
        (Action.PAY_BILL, Label.BTN_PAY_BILL, True),
        (Action.SERVICES, Label.BTN_SERVICES, False),
        (Action.CALL_STAFF, Label.BTN_CALL_STAFF, False),
        (Action.SETTINGS, Label.BTN_SETTINGS, False),
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
        (Action.DENY, Label.BTN_NO, False),
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
    Screen.SETTINGS: (
        (Action.DONE, Label.BTN_DONE, True),
        (Action.TEXT_BIGGER, Label.BTN_TEXT_BIGGER, False),
        (Action.TEXT_SMALLER, Label.BTN_TEXT_SMALLER, False),
        (Action.SLOWER, Label.BTN_SLOWER, False),
        (Action.FASTER, Label.BTN_FASTER, False),
        (Action.LOUDER, Label.BTN_LOUDER, False),
        (Action.SOFTER, Label.BTN_SOFTER, False),
    ),
    Screen.HELP: ((Action.CANCEL, Label.BTN_BACK, True),),
    Screen.FAULT: ((Action.CALL_STAFF, Label.BTN_CALL_STAFF, True),),
    Screen.STILL_THERE: (
        (Action.MORE_TIME, Label.BTN_MORE_TIME, True),
        (Action.CANCEL, Label.BTN_CANCEL, False),
    ),
    Screen.CARD_SCAN: (
        (Action.SKIP, Label.BTN_SKIP, False),
        (Action.CANCEL, Label.BTN_CANCEL, False),
    ),
    # While the camera looks for a staff face: or type the staff number instead.
    Screen.ENROL_STAFF: (
        (Action.ENTER, Label.BTN_STAFF_NUMBER, True),
        (Action.CANCEL, Label.BTN_CANCEL, False),
    ),
    Screen.ENROL_CUSTOMER: ((Action.CANCEL, Label.BTN_CANCEL, False),),
    Screen.CASSETTE: (
        (Action.ENTER, Label.BTN_ENTER, True),
        (Action.CLEAR, Label.BTN_CLEAR, False),
        (Action.CANCEL, Label.BTN_CANCEL, False),
    ),
    Screen.STAFF_MENU: (
        (Action.START_ENROLMENT, Label.BTN_START_ENROLMENT, False),
        (Action.CLEAR_FAULT, Label.BTN_CLEAR_FAULT, False),
        (Action.CASH_EXCHANGE, Label.BTN_CASH_EXCHANGE, False),
        (Action.RELOAD_LOCALES, Label.BTN_RELOAD_LOCALES, False),
        (Action.OUT_OF_SERVICE, Label.BTN_OUT_OF_SERVICE, False),
        (Action.CANCEL, Label.BTN_CANCEL, False),
    ),
}

_DIGIT_ENTRY = (
    (Action.ENTER, Label.BTN_ENTER, True),
    (Action.CLEAR, Label.BTN_CLEAR, False),
    (Action.CANCEL, Label.BTN_CANCEL, False),
)

# Variants of a screen's buttons, chosen by what it shows (see ``layout_for``): the key is
# ``screen/variant`` where the variant is the ``step`` prompt or a named case.
VARIANT_LAYOUT: dict[str, tuple[tuple[Action, Label, bool], ...]] = {
    # Nothing owed: the one key finishes instead of offering to pay.
    "identified/paid_up": ((Action.DONE, Label.BTN_DONE, True),),
    # A card or e-wallet payment in progress: nothing to press but repeat.
    "result/pending": (),
    # The cash is being handed back: nothing to insert, nothing to press but repeat.
    "cash/returning": (),
    "card_scan/card_readback": (
        (Action.CONFIRM, Label.BTN_CONFIRM, True),
        (Action.DENY, Label.BTN_RESCAN, False),
        (Action.SKIP, Label.BTN_SKIP, False),
        (Action.CANCEL, Label.BTN_CANCEL, False),
    ),
    "enrol_staff/staff_pin": _DIGIT_ENTRY,
    "enrol_staff/staff_pin_keypad": _DIGIT_ENTRY,
    "enrol_staff/staff_ask_number": _DIGIT_ENTRY,
    "enrol_customer/consent_script": (
        (Action.CONFIRM, Label.BTN_AGREE, True),
        (Action.DENY, Label.BTN_DISAGREE, False),
        (Action.CANCEL, Label.BTN_CANCEL, False),
    ),
    "enrol_customer/enrol_ask_phone": _DIGIT_ENTRY,
    "enrol_customer/enrol_ask_account": _DIGIT_ENTRY,
    "enrol_customer/enrol_ask_more_accounts": (
        (Action.CONFIRM, Label.BTN_YES, True),
        (Action.DENY, Label.BTN_NO, False),
        (Action.CANCEL, Label.BTN_CANCEL, False),
    ),
    "enrol_customer/enrol_face_capture": (
        (Action.SKIP, Label.BTN_SKIP, False),
        (Action.CANCEL, Label.BTN_CANCEL, False),
    ),
    "staff_menu/cassette_choose_unit": (
        (Action.UNIT_NOTES, Label.BTN_NOTES_UNIT, False),
        (Action.UNIT_COINS, Label.BTN_COINS_UNIT, False),
        (Action.CANCEL, Label.BTN_CANCEL, False),
    ),
    # Out of service: the same button brings the kiosk back.
    "staff_menu/out_of_service": (
        (Action.START_ENROLMENT, Label.BTN_START_ENROLMENT, False),
        (Action.CLEAR_FAULT, Label.BTN_CLEAR_FAULT, False),
        (Action.CASH_EXCHANGE, Label.BTN_CASH_EXCHANGE, False),
        (Action.RELOAD_LOCALES, Label.BTN_RELOAD_LOCALES, False),
        (Action.OUT_OF_SERVICE, Label.BTN_BACK_IN_SERVICE, False),
        (Action.CANCEL, Label.BTN_CANCEL, False),
    ),
}


def variant_of(screen: Screen, fields: Mapping[str, Any]) -> str:
    """Which variant of ``screen`` the fields call for ('' for the plain screen)."""
    if screen is Screen.IDENTIFIED:
        arrears = fields.get("arrears")
        if isinstance(arrears, Amount) and arrears.fen <= 0:
            return "paid_up"
    if screen is Screen.RESULT and fields.get("pending"):
        return "pending"
    if screen is Screen.CASH and "returning" in fields:
        return "returning"
    if screen is Screen.STAFF_MENU and fields.get("out_of_service") and not fields.get("step"):
        return "out_of_service"
    step = fields.get("step")
    # A keypad-only instruction has the same buttons as the one it stands for.
    return spoken_form(str(step)) if step else ""


def layout_for(screen: Screen, fields: Mapping[str, Any]) -> tuple[tuple[Action, Label, bool], ...]:
    """The buttons for ``screen`` given its fields: its LAYOUT, or a variant of it."""
    key = f"{screen.value}/{variant_of(screen, fields)}"
    if key in VARIANT_LAYOUT:
        return VARIANT_LAYOUT[key]
    return LAYOUT.get(screen, ())


def title_for(screen: Screen, fields: Mapping[str, Any]) -> Label | None:
    """The heading: a result still in progress, or with nothing paid, does not say "paid"."""
    if screen is Screen.RESULT:
        paid = fields.get("paid")
        if fields.get("pending"):
            return Label.TITLE_PAYING
        if isinstance(paid, Amount) and paid.fen <= 0:
            return Label.TITLE_NOT_PAID
    if screen is Screen.CASH and "returning" in fields:
        return Label.TITLE_CASH_RETURNING
    return TITLES.get(screen)

METHOD_LABEL_PROMPTS = {
    Action.METHOD_CASH: Prompt.METHOD_CASH,
    Action.METHOD_CARD: Prompt.METHOD_CARD,
    Action.METHOD_EWALLET: Prompt.METHOD_EWALLET,
}


def _with_method(pack: Pack, label: Label, text: str, method: str) -> str:
    """一键交费 with the default method: the label's own {method} slot, or appended."""
    if "{method}" in text:
        try:
            return pack.label(label, {"method": method})  # type: ignore[call-arg]
        except TypeError:  # a pack whose labels take no slots
            return text.replace("{method}", method)
    return f"{text} · {method}"


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
        step = spoken_form(str(show.fields.get("step", "")))
        heading = {**FIELD_LABELS, **SCREEN_FIELD_LABELS.get((screen, step), {})}
        for key, value in show.fields.items():
            if key in EXTRA_KEYS or isinstance(value, bool):
                if key == "rows":
                    # A table: each cell as screen text, each column with its heading.
                    value = tuple(
                        MappingProxyType({k: display_value(v, pack) for k, v in row.items()}) for row in value
                    )
                    for column in {k for row in value for k in row}:
                        if heading.get(column) is not None:
                            labels[column] = pack.label(heading[column])
                extra[key] = value
                continue
            if key in RENDERED_KEYS and isinstance(value, str):
                try:
                    text = pack.render(value, show.fields).display
                except LocaleError:
                    continue  # its slots are not on the screen: the caption carries it
                if not _UNFILLED.search(text):
                    fields[key] = text
                continue
            if key == "change_available":
                # Denominations in fen: one chip of money each, and a warning when none.
                extra[key] = tuple(value)
                extra["change_chips"] = tuple(display_value(Amount(int(v)), pack) for v in value)
                if not value:
                    labels["hint"] = pack.label(Label.HINT_NO_CHANGE)
                fields[key] = " ".join(extra["change_chips"])
                labels[key] = pack.label(heading[key])
                continue
            fields[key] = display_value(value, pack)
            if heading.get(key) is not None:
                labels[key] = pack.label(heading[key])
        if screen is Screen.SETTINGS:
            for key, (fewer, more) in SETTING_WORDS.items():
                value = show.fields.get(key)
                if isinstance(value, Count):
                    fields[key] = setting_text(pack, value.value, fewer, more)
        for key, label_id in SCREEN_TEXTS.get(screen, ()):
            labels.setdefault(key, pack.label(label_id))
        if screen is Screen.STAFF_MENU and show.fields.get("out_of_service"):
            labels["hint"] = pack.render(Prompt.OUT_OF_SERVICE_SET, {}).display
        if screen is Screen.WELCOME and show.fields.get("camera") is False:
            labels["hint"] = pack.label(Label.HINT_WELCOME_KEYS)  # nothing sees who stands there
        if screen is Screen.CASH and "returning" in show.fields:
            # What is happening to the money, in large type (the same words that are spoken).
            labels["hint"] = pack.render(Prompt.CASH_RETURNING, {"amount": show.fields["returning"]}).display
        if screen is Screen.HELP:
            # Whether someone is coming, in large type (the same words that are spoken).
            called = Prompt.HELP_CALLED if show.fields.get("staff_present", True) else Prompt.HELP_NO_STAFF
            labels["hint"] = pack.render(called, {"phone": show.fields.get("hall_phone", "")}).display
        buttons: list[Button] = []
        for action, label, primary in layout_for(screen, show.fields):
            text = pack.label(label)
            if action in METHOD_LABEL_PROMPTS:
                text = pack.render(METHOD_LABEL_PROMPTS[action], {}).display
            if action is Action.ONE_KEY_PAY and "method" in show.fields:
                method = pack.render(show.fields["method"], {}).display
                text = _with_method(pack, label, text, method)
            buttons.append(Button(action, text, primary))
        buttons.append(Button(Action.REPEAT, pack.label(Label.BTN_REPEAT)))
        if len(packs) > 1:
            # One button per language, in the same order on every screen and in every
            # language (the one in use included, marked as chosen), so each stays in its
            # place; each is named in its own language.
            for pid in packs:
                other = self.pack_lookup(pid)
                buttons.append(Button(Action.LANGUAGE, other.label(Label.PACK_NAME), value=pid, current=pid == pack.id))
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
