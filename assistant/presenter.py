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

from assistant.messages import Show
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
}

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
        for key, value in show.fields.items():
            if key in ("packs", "staff_present", "length"):
                extra[key] = value
                continue
            if key == "question" and isinstance(value, str):
                fields[key] = pack.render(value, show.fields).display
                continue
            if key == "change_available":
                extra[key] = tuple(value)
            fields[key] = display_value(value, pack)
            if key in FIELD_LABELS:
                labels[key] = pack.label(FIELD_LABELS[key])
        buttons: list[Button] = []
        for action, label, primary in LAYOUT.get(screen, ()):
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
        title = pack.label(TITLES[screen]) if screen in TITLES else ""
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
