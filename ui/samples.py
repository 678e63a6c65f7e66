"""Sample screens for the audit, the tests and the benchmark: every screen, every variant.

Each :class:`Sample` is what the dialog would emit (a ``Show`` with realistic fields,
and the prompts said with it), so it goes through the real presenter with whatever
pack source is passed in: the stand-in test packs today, the real locale packs once
they are on main. Names, accounts and amounts come from the demo customers file;
nothing user-facing is written here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from assistant.config import Config
from assistant.customers import mask_account, mask_name
from assistant.kiosk import PackSource
from assistant.messages import Amount, Count, Digits, Say, Seconds, SecretDigits, Show, frozen_map
from assistant.presenter import Presenter
from assistant.prompts import Label, Prompt
from assistant.screens import Screen, ScreenModel
from assistant.seed import load_demo

SAMPLE_VALUES = Path(__file__).resolve().parent / "samples.yaml"


def default_packs(config: Config) -> tuple[PackSource, tuple[str, ...]]:
    """The locale packs the window and the audit render with, and the ids a customer can choose."""
    from assistant.locale import LocaleRegistry

    registry = LocaleRegistry.from_config(config).load()
    ids = tuple(registry.offered())
    # The default first, the others in their order: the same buttons as the running kiosk
    # (a draft pack gets no button there, so none here).
    return registry, (registry.default_id, *(i for i in ids if i != registry.default_id))


@dataclass(frozen=True)
class Sample:
    """One screen as the dialog would show it."""

    name: str
    """Unique name (also the screenshot's file name)."""
    show: Show
    says: tuple[Say, ...] = ()
    """Prompts said with it (they become the caption)."""
    pack: str = ""
    """Pack to render in ('' = the default pack)."""


def _show(screen: Screen, **fields: Any) -> Show:
    return Show(screen, frozen_map(fields))


def _without(fields: dict[str, Any], *keys: str) -> dict[str, Any]:
    """``fields`` less ``keys`` (what the dialog leaves off a screen)."""
    return {k: v for k, v in fields.items() if k not in keys}


def _say(prompt: Prompt, **slots: Any) -> Say:
    return Say(prompt, frozen_map(slots))


def build_samples(hall_phone: str = "95598", pack_ids: tuple[str, ...] = ("zh-CN",)) -> list[Sample]:
    """Every screen and variant with realistic data."""
    demo = load_demo()
    values = yaml.safe_load(SAMPLE_VALUES.read_text(encoding="utf-8"))
    people = demo["customers"]
    staff = {s["role"]: s for s in demo["staff"]}
    first, second, paid_up = people[0], people[3], people[2]
    name, account = mask_name(first["name"]), mask_account(first["account_no"])
    due = sum(b["amount_fen"] for b in first["bills"])
    big_due = 999_999  # the widest amount the kiosk accepts in one payment
    phone = Digits(hall_phone)
    change = (5000, 1000, 500, 100, 50, 10)
    card = SecretDigits(values["card_digits"])
    issuer = values["card_issuer"]
    hall = mask_name(staff["hall"]["name"])
    receipt = {
        "payment": "20261203101500123456",
        "account": account,
        "paid": Amount(due),
        "inserted": Amount(20000),
        "change": Amount(20000 - due - 5),
        "credited": Amount(5),
        "reference": Digits("123456"),
    }
    notes = tuple(
        {"denomination": Amount(d), "count_out": Count(n_out), "count_in": Count(n_in) if n_in is not None else ""}
        for d, n_out, n_in in ((10000, 38, 40), (5000, 52, 60), (2000, 17, None), (1000, 64, None), (500, 23, None))
    )
    coins = tuple(
        {"denomination": Amount(d), "count_out": Count(n_out), "count_in": ""}
        for d, n_out in ((100, 212), (50, 140), (10, 388))
    )
    cash = {"due": Amount(due), "change_available": change}
    identified = {"name": name, "account": account, "arrears": Amount(due), "prepaid": Amount(0)}
    samples = [
        Sample("welcome", _show(Screen.WELCOME, hall_phone=phone, staff_present=True, packs=pack_ids)),
        Sample(
            "welcome_goodbye",
            _show(Screen.WELCOME, hall_phone=phone, staff_present=True, packs=pack_ids),
            (_say(Prompt.GOODBYE),),
        ),
        Sample(
            "identify",
            _show(Screen.IDENTIFY, guidance=Prompt.LOOKING),
            (_say(Prompt.WELCOME), _say(Prompt.LOOKING)),
        ),
        Sample(
            "identify_too_small",
            _show(Screen.IDENTIFY, guidance=Prompt.FACE_TOO_SMALL),
            (_say(Prompt.FACE_TOO_SMALL),),
        ),
        Sample(
            "identify_liveness",
            _show(Screen.IDENTIFY, guidance=Prompt.LIVENESS_CHALLENGE, direction=Prompt.LIVENESS_LEFT),
            (_say(Prompt.LIVENESS_CHALLENGE, direction=Prompt.LIVENESS_LEFT),),
        ),
        Sample(
            "account_entry",
            _show(Screen.ACCOUNT_ENTRY, digits=Digits(""), length=10),
            (_say(Prompt.FACE_UNKNOWN), _say(Prompt.ASK_ACCOUNT)),
        ),
        Sample("account_entry_typing", _show(Screen.ACCOUNT_ENTRY, digits=Digits("0300045"), length=10)),
        Sample(
            "confirm_account",
            _show(Screen.CONFIRM, question=Prompt.ACCOUNT_READBACK, account=Digits(second["account_no"])),
            (_say(Prompt.ACCOUNT_READBACK, account=Digits(second["account_no"])),),
        ),
        Sample(
            "confirm_face",
            _show(Screen.CONFIRM, question=Prompt.FACE_UNCERTAIN, account=account),
            (_say(Prompt.FACE_UNCERTAIN, account=account),),
        ),
        Sample(
            "confirm_payment",
            _show(
                Screen.CONFIRM,
                question=Prompt.CONFIRM_ACCOUNT_PAYMENT,
                amount=Amount(big_due),
                method=Prompt.METHOD_CARD,
                account=account,
            ),
            (_say(Prompt.CONFIRM_ACCOUNT_PAYMENT, amount=Amount(big_due), method=Prompt.METHOD_CARD, account=account),),
        ),
        Sample(
            "confirm_enrol_account",
            _show(
                Screen.CONFIRM,
                question=Prompt.ENROL_ACCOUNT_READBACK,
                account=Digits(second["account_no"]),
                name=mask_name(second["name"]),
            ),
            (
                _say(
                    Prompt.ENROL_ACCOUNT_READBACK,
                    account=Digits(second["account_no"]),
                    name=mask_name(second["name"]),
                ),
            ),
        ),
        Sample(
            "identified",
            _show(Screen.IDENTIFIED, **identified, method=Prompt.METHOD_CASH),
            (
                _say(Prompt.GREETING_NAMED, name=name),
                _say(Prompt.ARREARS, account=account, amount=Amount(due), method=Prompt.METHOD_CASH),
            ),
        ),
        Sample(
            "identified_large",
            _show(
                Screen.IDENTIFIED,
                name=mask_name(second["name"]),
                account=mask_account(second["account_no"]),
                arrears=Amount(big_due),
                prepaid=Amount(0),
                method=Prompt.METHOD_EWALLET,
            ),
            (
                _say(Prompt.GREETING_NAMED, name=mask_name(second["name"])),
                _say(
                    Prompt.ARREARS,
                    account=mask_account(second["account_no"]),
                    amount=Amount(big_due),
                    method=Prompt.METHOD_EWALLET,
                ),
            ),
        ),
        Sample(
            "identified_paid_up",
            _show(
                Screen.IDENTIFIED,
                name=mask_name(paid_up["name"]),
                account=mask_account(paid_up["account_no"]),
                arrears=Amount(0),
                prepaid=Amount(paid_up.get("prepaid_fen", 0)),
                method=Prompt.METHOD_CASH,
            ),
            (
                _say(Prompt.GREETING_NAMED, name=mask_name(paid_up["name"])),
                _say(
                    Prompt.NO_ARREARS,
                    account=mask_account(paid_up["account_no"]),
                    balance=Amount(paid_up.get("prepaid_fen", 0)),
                ),
            ),
        ),
        Sample("choose_method", _show(Screen.CHOOSE_METHOD, amount=Amount(due)), (_say(Prompt.CHOOSE_METHOD),)),
        Sample(
            "choose_method_enrol",
            _show(Screen.CHOOSE_METHOD, step=Prompt.ENROL_ASK_DEFAULT_METHOD, card=True),
            (_say(Prompt.ENROL_ASK_DEFAULT_METHOD),),
        ),
        Sample(
            "cash",
            _show(Screen.CASH, **cash, inserted=Amount(0), remaining=Amount(due)),
            (_say(Prompt.CASH_INSERT, due=Amount(due)),),
        ),
        Sample(
            "cash_partial",
            _show(Screen.CASH, **cash, inserted=Amount(10000), remaining=Amount(due - 10000)),
            (_say(Prompt.CASH_INSERTED, inserted=Amount(10000), due=Amount(due - 10000)),),
        ),
        Sample(
            "cash_no_change",
            _show(Screen.CASH, due=Amount(due), change_available=(), inserted=Amount(0), remaining=Amount(due)),
            (_say(Prompt.CASH_CHANGE_IMPOSSIBLE, note=Amount(10000)),),
        ),
        Sample(
            "result",
            _show(Screen.RESULT, **receipt),
            (
                _say(Prompt.PAYMENT_SUCCESS, amount=Amount(due), account=account),
                _say(Prompt.CASH_REMAINDER_CREDITED, remainder=Amount(5), account=account),
                _say(Prompt.RECEIPT_PRINTING),
            ),
        ),
        Sample(
            # Paid with a 200 note, all the change paid out: nothing credited, so no credited line.
            "result_no_credit",
            _show(Screen.RESULT, **{**_without(receipt, "credited"), "change": Amount(20000 - due)}),
            (
                _say(Prompt.PAYMENT_SUCCESS, amount=Amount(due), account=account),
                _say(Prompt.RECEIPT_PRINTING),
            ),
        ),
        Sample(
            # A card payment: no cash in or out, so no cash lines at all.
            "result_card",
            _show(Screen.RESULT, **_without(receipt, "inserted", "change", "credited")),
            (
                _say(Prompt.PAYMENT_SUCCESS, amount=Amount(due), account=account),
                _say(Prompt.RECEIPT_PRINTING),
            ),
        ),
        Sample(
            "result_not_paid",
            _show(
                Screen.RESULT,
                payment=receipt["payment"],
                account=account,
                paid=Amount(0),
                inserted=Amount(5000),
                change=Amount(0),
                credited=Amount(5000),
                reference=Digits("123457"),
            ),
            (
                _say(Prompt.PAYMENT_FAILED),
                _say(Prompt.CASH_REMAINDER_CREDITED, remainder=Amount(5000), account=account),
            ),
        ),
        Sample(
            "cash_returning",
            _show(Screen.CASH, returning=Amount(10000)),
            (_say(Prompt.CASH_RETURNING, amount=Amount(10000)),),
        ),
        Sample(
            "result_paying",
            _show(Screen.RESULT, paid=Amount(due), pending=True),
            (_say(Prompt.PAYING_NONCASH, amount=Amount(due), method=Prompt.METHOD_CARD),),
        ),
        Sample(
            "help",
            _show(Screen.HELP, hall_phone=phone, staff_present=True),
            (_say(Prompt.HELP_CALLED, phone=phone),),
        ),
        Sample(
            "help_no_staff",
            _show(Screen.HELP, hall_phone=phone, staff_present=False),
            (_say(Prompt.HELP_NO_STAFF, phone=phone),),
        ),
        Sample(
            "fault",
            _show(Screen.FAULT, detail=values["fault_detail"], inserted=Amount(5000)),
            (_say(Prompt.CASH_FAULT, inserted=Amount(5000)),),
        ),
        Sample(
            "still_there",
            _show(Screen.STILL_THERE, seconds=Seconds(20)),
            (_say(Prompt.STILL_THERE, seconds=Seconds(20)),),
        ),
        Sample(
            "settings",
            _show(Screen.SETTINGS, text_size=Count(125), rate=Count(-1), volume=Count(2)),
            (_say(Prompt.SETTINGS_INTRO),),
        ),
        Sample(
            "settings_default",
            _show(Screen.SETTINGS, text_size=Count(100), rate=Count(0), volume=Count(0)),
            (_say(Prompt.SETTINGS_INTRO),),
        ),
        Sample("card_scan", _show(Screen.CARD_SCAN, step=Prompt.ENROL_ASK_CARD), (_say(Prompt.ENROL_ASK_CARD),)),
        Sample("card_scan_cut_off", _show(Screen.CARD_SCAN, step=Prompt.CARD_CUT_OFF), (_say(Prompt.CARD_CUT_OFF),)),
        Sample(
            "card_scan_readback",
            _show(Screen.CARD_SCAN, step=Prompt.CARD_READBACK, digits=card, issuer=issuer),
            (_say(Prompt.CARD_READBACK, digits=card, issuer=issuer, last4=Digits(card.text[-4:])),),
        ),
        Sample(
            "enrol_staff",
            _show(Screen.ENROL_STAFF, step=Prompt.STAFF_VERIFY, digits=Digits("")),
            (_say(Prompt.STAFF_VERIFY),),
        ),
        Sample(
            "enrol_staff_pin",
            _show(Screen.ENROL_STAFF, step=Prompt.STAFF_PIN, digits=Digits("****"), secret=True),
            (_say(Prompt.STAFF_PIN, name=hall),),
        ),
        Sample(
            "enrol_staff_number",
            _show(Screen.ENROL_STAFF, step=Prompt.STAFF_ASK_NUMBER, digits=Digits("400"), entry=True),
            (_say(Prompt.STAFF_ASK_NUMBER),),
        ),
        Sample(
            "enrol_staff_pin_keypad",
            _show(Screen.ENROL_STAFF, step=Prompt.STAFF_PIN_KEYPAD, digits=Digits("***"), secret=True),
            (_say(Prompt.STAFF_PIN_KEYPAD),),
        ),
        Sample(
            "enrol_customer_consent",
            _show(Screen.ENROL_CUSTOMER, step=Prompt.CONSENT_SCRIPT),
            (_say(Prompt.CONSENT_SCRIPT),),
        ),
        Sample(
            "enrol_customer_phone",
            _show(Screen.ENROL_CUSTOMER, step=Prompt.ENROL_ASK_PHONE, digits=Digits(first["phone"][:7])),
            (_say(Prompt.ENROL_ASK_PHONE),),
        ),
        Sample(
            "enrol_customer_account",
            _show(Screen.ENROL_CUSTOMER, step=Prompt.ENROL_ASK_ACCOUNT, digits=Digits("")),
            (_say(Prompt.ENROL_ASK_ACCOUNT),),
        ),
        Sample(
            "enrol_customer_more",
            _show(Screen.ENROL_CUSTOMER, step=Prompt.ENROL_ASK_MORE_ACCOUNTS, accounts=Count(1)),
            (_say(Prompt.ENROL_ASK_MORE_ACCOUNTS),),
        ),
        Sample(
            "enrol_customer_face",
            _show(Screen.ENROL_CUSTOMER, step=Prompt.ENROL_FACE_CAPTURE, count=Count(2), total=Count(3)),
            (_say(Prompt.ENROL_FACE_PROGRESS, count=Count(2), total=Count(3)),),
        ),
        Sample("staff_menu", _show(Screen.STAFF_MENU, out_of_service=False), (_say(Prompt.STAFF_MENU),)),
        Sample(
            "staff_menu_out_of_service",
            _show(Screen.STAFF_MENU, out_of_service=True),
            (_say(Prompt.OUT_OF_SERVICE_SET), _say(Prompt.STAFF_MENU)),
        ),
        Sample(
            "staff_menu_choose_unit",
            _show(Screen.STAFF_MENU, step=Prompt.CASSETTE_CHOOSE_UNIT, choose_unit=True),
            (_say(Prompt.CASSETTE_CHOOSE_UNIT),),
        ),
        Sample(
            "cassette",
            _show(Screen.CASSETTE, unit=Label.DEVICE_NOTES, digits=Digits("17"), rows=notes, active_row=2),
            (_say(Prompt.CASSETTE_ENTER_COUNT, denomination=Amount(2000)),),
        ),
        Sample(
            "cassette_coins",
            _show(Screen.CASSETTE, unit=Label.DEVICE_COINS, digits=Digits(""), rows=coins, active_row=0),
            (_say(Prompt.CASSETTE_ENTER_COUNT, denomination=Amount(100)),),
        ),
    ]
    if len(pack_ids) > 1:
        other = pack_ids[1]
        samples.append(
            Sample(
                f"welcome_{other}",
                _show(Screen.WELCOME, hall_phone=phone, staff_present=True, packs=pack_ids),
                (_say(Prompt.WELCOME),),
                pack=other,
            )
        )
    return samples


def present(
    sample: Sample,
    packs: PackSource,
    pack_ids: tuple[str, ...],
    text_scale: float = 1.0,
    presenter: Presenter | None = None,
) -> ScreenModel:
    """The ScreenModel for ``sample``, rendered by the real presenter with ``packs``."""
    presenter = presenter or Presenter(packs.get)
    pack = packs.get(sample.pack or None)
    captions = [pack.render(s.prompt_id, s.slots).display for s in sample.says]
    return presenter.present(sample.show, pack, caption=" ".join(captions), text_scale=text_scale, packs=pack_ids)


def with_fields(sample: Sample, name: str, **fields: Any) -> Sample:
    """A copy of ``sample`` with some fields changed (tests use it for edge cases)."""
    merged: Mapping[str, Any] = frozen_map(sample.show.fields, **fields)
    return dataclasses.replace(sample, name=name, show=Show(sample.show.screen, merged))


