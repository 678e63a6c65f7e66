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
    """Inserted so far, still due, what change can be given."""
    RESULT = "result"
    """Paid, change, credited remainder, receipt reference."""
    CARD_SCAN = "card_scan"
    """Bank card scan with live guidance, then digit read-back.

    Fields: ``guidance`` (a ``Label`` id, shown large and changed live as the
    scanner sees the card: ``card_place``, ``card_hold``, ``card_glare``,
    ``card_reading``, ``card_check``); ``amount`` (``Amount``, when paying);
    ``card`` (``Masked``, e.g. ``**** **** **** 1234``: present only once a number
    passed its checks, which switches the buttons to the read-back: confirm /
    rescan); ``issuer`` (str from the BIN table). Extra: ``stage`` (``place``,
    ``hold``, ``read``; highlights the card outline).
    """
    ENROL_STAFF = "enrol_staff"
    """Staff view of an enrolment step.

    Fields: ``staff`` (``Masked`` staff name), ``customer`` (``Masked`` name),
    ``phone`` / ``account`` / ``card`` (``Masked``, each once collected),
    ``consent`` (``Label`` id ``consent_given`` or ``consent_pending``),
    ``frames`` (``Count`` face frames captured). Extra: ``steps`` (tuple of step
    ids: ``consent``, ``face``, ``phone``, ``account``, ``card``, ``done``; each
    shown with its ``step_<id>`` label), ``step`` (the current step id),
    ``frames_needed`` (int).
    """
    ENROL_CUSTOMER = "enrol_customer"
    """Customer view of an enrolment step.

    Extra ``step`` picks the buttons: ``consent`` (同意 / 不同意; field
    ``consent_text`` = ``Label`` id ``consent_text``), ``face`` (field ``guidance``,
    a ``Label`` or ``Prompt`` id; ``frames`` ``Count`` and extra ``frames_needed``),
    ``phone`` and ``account`` (field ``digits``, ``Digits`` typed so far; extra
    ``length``; the on-screen keypad), ``done`` (fields ``name``, ``account``).
    """
    HELP = "help"
    """Waiting for staff; hall phone number."""
    FAULT = "fault"
    """Device fault with the exact state for staff."""
    STILL_THERE = "still_there"
    """Timeout warning: need more time?"""
    SETTINGS = "settings"
    """Text size, speech speed, volume, repeat.

    Fields: ``text_size``, ``speech_rate``, ``volume`` (``Count`` levels from 1).
    Extra: ``levels`` (int, the highest level; default 5). Buttons: done (primary),
    text smaller/bigger, slower/faster, softer/louder, repeat.
    """
    CASSETTE = "cassette"
    """Bank staff: cassette exchange counts under dual control.

    Fields: ``unit`` (``Label`` id ``unit_recycler`` or ``unit_hopper``),
    ``bank_staff`` and ``hall_staff`` (``Masked`` names of the two people present),
    ``digits`` (``Digits``: the count being typed). Extra: ``rows``: one mapping per
    denomination with ``denomination`` (``Amount``), ``expected`` (``Count`` the
    kiosk's records say), ``counted`` (``Count`` or ``""`` until typed),
    ``difference`` (``Count``, counted minus expected, computed by the dialog),
    ``loaded`` (``Count`` put in); ``active_row`` (int: the row being counted).
    """


class Action(StrEnum):
    """Button action ids reported by the UI (``ActionChosen.action``)."""

    PAY_BILL = "pay_bill"
    SERVICES = "services"
    CALL_STAFF = "call_staff"
    LANGUAGE = "language"
    REPEAT = "repeat"
    SLOWER = "slower"
    LOUDER = "louder"
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
    FASTER = "faster"
    SOFTER = "softer"
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
    (badge on the primary button: the big key presses it), ``status_*`` (step states)."""
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
