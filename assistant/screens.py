"""The screens the dialog can show, their fields and their buttons.

The dialog emits ``Show(screen, fields)``; the runtime turns it into a
:class:`ScreenModel` whose every string is already rendered from the locale pack
(amounts as ``¥123.45``, names and accounts masked). The UI only draws a
ScreenModel and reports which button or key was pressed, so the same flows run
headless with identical behaviour.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any


class Screen(StrEnum):
    """Screen ids; each has ``ui/screens/<id>.kv``."""

    WELCOME = "welcome"
    """Walk-up: 交电费, 办理业务, 找工作人员, dialect choice."""
    IDENTIFY = "identify"
    """Looking at the customer; guidance text (靠近一点, 正对屏幕)."""
    ACCOUNT_ENTRY = "account_entry"
    """Big keypad; digits typed or spoken so far."""
    CONFIRM = "confirm"
    """A yes/no read-back (account number, an unusual amount)."""
    IDENTIFIED = "identified"
    """Masked name and account, arrears in very large digits, 一键交费 and 其他方式."""
    CHOOSE_METHOD = "choose_method"
    """Cash, bank card, e-wallet."""
    CASH = "cash"
    """Inserted so far, still due, what change can be given.

    With ``returning`` (``Amount``: the customer cancelled, or timed out, and the money
    inserted is being handed back): titled as returning, that amount large with the
    words said for it, and no buttons but repeat.
    """
    RESULT = "result"
    """Paid, change, credited remainder, receipt reference.

    ``pending`` True (a card or e-wallet payment in progress, only ``paid`` known):
    titled as in progress, no buttons but repeat. ``paid`` zero (cancelled, money
    credited): titled as not paid.
    """
    CARD_SCAN = "card_scan"
    """Bank card scan with live guidance, then digit read-back.

    Fields: ``step`` (the ``Prompt`` being spoken: ``enrol_ask_card``, ``card_scan``,
    a guidance prompt such as ``card_cut_off``, or ``card_readback``; shown large);
    with ``card_readback`` also ``digits`` (``SecretDigits``, the number in groups of
    four for the customer to check) and ``issuer`` (str), which switch the buttons to
    confirm / rescan. Optional: ``amount`` (``Amount``) when paying by card.
    """
    ENROL_STAFF = "enrol_staff"
    """Staff view of an enrolment step: verifying the staff member.

    Fields: ``step`` (``Prompt`` ``staff_verify`` while the camera looks for the
    staff member's face, with a button to type the staff number instead;
    ``staff_ask_number`` for the staff number, ``staff_pin`` (after a face) or
    ``staff_pin_keypad`` (after a typed number) for the PIN), ``digits`` (``Digits``:
    the staff number as typed, or the PIN already masked as ``*``), ``secret`` (True:
    the PIN, never show the digits), ``entry`` (True: the staff number). With the
    number and the PIN the on-screen keypad, enter and clear are shown.
    """
    ENROL_CUSTOMER = "enrol_customer"
    """Customer view of an enrolment step; ``step`` (a ``Prompt``) is shown large and
    picks the buttons.

    ``consent_script``: agree / disagree. ``enrol_ask_phone`` and
    ``enrol_ask_account``: ``digits`` (``Digits`` typed so far) with the keypad, enter,
    clear (and skip for a further account). ``enrol_ask_more_accounts``: yes / no,
    ``accounts`` (``Count`` linked so far). ``enrol_face_capture``: ``count`` and
    ``total`` (``Count`` frames captured / needed), skip.
    """
    HELP = "help"
    """Waiting for staff; hall phone number."""
    FAULT = "fault"
    """Device fault with the exact state for staff."""
    STILL_THERE = "still_there"
    """Timeout warning: need more time?"""
    SETTINGS = "settings"
    """Text size, speech speed, volume, repeat.

    Fields: ``text_size`` (``Count``, percent: 100, 125, 150), ``rate`` and ``volume``
    (``Count``, steps from the default: -2..+2). Buttons: done (primary), bigger /
    smaller text, slower / faster, louder / softer, repeat.
    """
    STAFF_MENU = "staff_menu"
    """Verified staff: start enrolment, clear fault, cassette exchange, reload packs, out of service.

    Fields: ``out_of_service`` (bool). While choosing the cassette of an exchange:
    ``step`` (``Prompt`` ``cassette_choose_unit``) and ``choose_unit`` (True): the
    buttons are the note and coin units.
    """
    CASSETTE = "cassette"
    """Bank staff: cassette exchange counts under dual control.

    Fields: ``unit`` (``Label`` ``device_notes`` or ``device_coins``), ``digits``
    (``Digits``: the count being typed for the active row). Extra: ``rows``, one
    mapping per denomination with ``denomination`` (``Amount``), ``count_out``
    (``Count`` removed, from the kiosk's records) and ``count_in`` (``Count`` put
    in, or ``""`` until typed); ``active_row`` (int: the row being typed). The
    keypad, enter and clear are shown.
    """


class Action(StrEnum):
    """Button action ids reported by the UI (``ActionChosen.action``)."""

    PAY_BILL = "pay_bill"
    SERVICES = "services"
    CALL_STAFF = "call_staff"
    LANGUAGE = "language"
    REPEAT = "repeat"
    SLOWER = "slower"
    FASTER = "faster"
    LOUDER = "louder"
    SOFTER = "softer"
    CANCEL = "cancel"
    ONE_KEY_PAY = "one_key_pay"
    OTHER_METHODS = "other_methods"
    METHOD_CASH = "method_cash"
    METHOD_CARD = "method_card"
    METHOD_EWALLET = "method_ewallet"
    CONFIRM = "confirm"
    DENY = "deny"
    CREDIT_EXCESS = "credit_excess"
    MORE_TIME = "more_time"
    SETTINGS = "settings"
    TEXT_BIGGER = "text_bigger"
    TEXT_SMALLER = "text_smaller"
    DONE = "done"
    SKIP = "skip"
    STAFF_MENU = "staff_menu"
    START_ENROLMENT = "start_enrolment"
    CLEAR_FAULT = "clear_fault"
    CASH_EXCHANGE = "cash_exchange"
    RELOAD_LOCALES = "reload_locales"
    OUT_OF_SERVICE = "out_of_service"
    UNIT_NOTES = "unit_notes"
    UNIT_COINS = "unit_coins"
    FOCUS = "focus"
    """The keypad focus moved to another button (the customer is acting; nothing else)."""
    DIGIT = "digit"
    """An on-screen keypad digit; ``ActionChosen.value`` is the digit."""
    CLEAR = "clear"
    ENTER = "enter"


@dataclass(frozen=True)
class Button:
    """One button as the UI draws it."""

    action: Action
    """What pressing it reports."""
    label: str
    """Rendered caption."""
    primary: bool = False
    """The one primary action (also triggered by the physical confirm key)."""
    value: str = ""
    """Extra value reported with the action (e.g. a pack id)."""
    current: bool = False
    """A language button of the pack in use (drawn as chosen; it keeps its place)."""


@dataclass(frozen=True)
class ScreenModel:
    """Everything a screen shows, already rendered to display strings."""

    screen: Screen
    """Which screen."""
    title: str = ""
    """Heading."""
    fields: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Named display strings (``amount``, ``account``, ``name``...)."""
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Headings for the fields, same keys as ``fields``; plus the screen's other texts:
    ``hint`` (an instruction line), ``keys`` (how the keypad works), ``key_confirm``
    (badge on the primary button: the big key presses it), ``seconds`` (the unit)."""
    buttons: tuple[Button, ...] = ()
    """Buttons, primary first."""
    caption: str = ""
    """What the kiosk is saying (shown as text too)."""
    pack: str = "zh-CN"
    """Active locale pack."""
    text_scale: float = 1.0
    """Customer's text size setting (1.0 default, up to 1.5)."""
    extra: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """Structured data some screens need (e.g. change denominations available)."""
