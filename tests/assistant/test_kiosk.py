"""The runtime loop: real dialog, real packs, rendered speech text, screens, timers, receipts."""

from __future__ import annotations

import asyncio
import re

import pytest

from assistant.adapters import ReceiptDevice, SilentVoice
from assistant.billing import LedgerBilling
from assistant.customers import CustomerDirectory
from assistant.dialog import Dialog, DialogConfig, DialogServices
from assistant.kiosk import HeadlessDisplay, Kiosk
from assistant.messages import (
    ActionChosen,
    CashEvent,
    CashEventKind,
    FaceOutcome,
    FaceSeen,
    Key,
    KeyPressed,
)
from assistant.seed import seed
from devices.printer import EscposPrinter, PrinterConfig, decode_text
from tests.assistant.test_dialog import FakeCash, Result


async def until(display: HeadlessDisplay, screen: str, timeout: float = 5.0):
    return await display.wait_for(screen, timeout)


@pytest.fixture
async def running(db, tmp_path, packs, understanding):
    await seed(db, tmp_path)
    cash = FakeCash()
    services = DialogServices(
        billing=LedgerBilling(db), customers=CustomerDirectory(db), understanding=understanding,
        cash=cash, packs=tuple(packs.ids()), hall_phone="95598",
    )
    dialog = Dialog(services, DialogConfig(idle_timeout_s=0.3, grace_timeout_s=0.3))
    display, voice = HeadlessDisplay(), SilentVoice()
    printer = ReceiptDevice(EscposPrinter(PrinterConfig()), lambda: kiosk.pack, "K001", tmp_path / "receipts")
    kiosk = Kiosk(dialog, packs, display, voice, devices={"printer": printer})
    services.spawn = kiosk.spawn
    stop = asyncio.Event()
    task = asyncio.create_task(kiosk.run(stop))
    await until(display, "welcome")
    yield kiosk, display, voice, cash, printer, db
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_a_whole_payment_through_the_runtime(running) -> None:
    kiosk, display, voice, cash, printer, db = running
    uid = (await db.fetchone("SELECT id FROM login_user WHERE phone='13800138000'"))[0]
    kiosk.post(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=uid))
    model = await until(display, "identified")
    assert model.fields["arrears"] == "¥123.45"
    assert model.fields["account"] == "******2345" and model.fields["name"] == "张**"
    assert model.buttons[0].primary and "现金" in model.buttons[0].label
    await kiosk.quiet()
    spoken = " ".join(t for t, _ in voice.said)
    assert "一百二十三元四角五分" in spoken
    assert not re.search(r"[0-9]", spoken)
    assert all(v == "sit/cmn-latn-pinyin" for _, v in voice.said)
    kiosk.post(KeyPressed(Key.CONFIRM))
    model = await until(display, "cash")
    assert model.fields["due"] == "¥123.45"
    cash.result = Result(True, 20000, 7650, 5, 12345)
    kiosk.post(CashEvent(CashEventKind.CREDITED, value_fen=20000, inserted_fen=20000))
    kiosk.post(CashEvent(CashEventKind.PAID_IN_FULL, inserted_fen=20000))
    kiosk.post(CashEvent(CashEventKind.DISPENSING, value_fen=7650, inserted_fen=20000))
    model = await until(display, "result")
    assert model.fields["change"] == "¥76.50" and model.fields["credited"] == "¥0.05"
    await kiosk.quiet()
    text = decode_text(printer.printed[-1][0])
    assert "¥76.50" in text and "******2345" in text and "¥0.05" in text
    spoken = " ".join(t for t, _ in voice.said)
    assert "七十六元五角" in spoken and "五分" in spoken
    kiosk.post(ActionChosen("done"))
    await until(display, "welcome")


async def test_language_switch_redraws_and_speaks_cantonese_then_resets(running) -> None:
    kiosk, display, voice, *_ , db = running
    uid = (await db.fetchone("SELECT id FROM login_user WHERE phone='13800138000'"))[0]
    kiosk.post(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=uid))
    await until(display, "identified")
    await kiosk.quiet()
    kiosk.post(ActionChosen("language", "yue"))
    await asyncio.sleep(0.2)
    await kiosk.quiet()
    assert display.current.pack == "yue"
    assert voice.said[-1][1] == "sit/yue"
    assert "蚊" in " ".join(t for t, _ in voice.said[-3:])
    kiosk.post(ActionChosen("cancel"))
    model = await until(display, "welcome")
    assert model.pack == "zh-CN"


async def test_real_timers_warn_then_return_to_welcome(running) -> None:
    kiosk, display, voice, *_ , db = running
    uid = (await db.fetchone("SELECT id FROM login_user WHERE phone='13800138000'"))[0]
    kiosk.post(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=uid))
    await until(display, "identified")
    await until(display, "still_there", timeout=3)
    await until(display, "welcome", timeout=3)


async def test_face_of_a_customer_whose_account_billing_no_longer_knows(running) -> None:
    """The face is recognised but billing has no such account (closed, or moved to another
    office): the customer must hear that the account was not found and get the welcome screen
    back - the error prompt's slots were missing, so nothing was said or shown."""
    from assistant.customers import CustomerDirectory

    kiosk, display, voice, *_, db = running
    uid = await CustomerDirectory(db).link("13500135000", "赵四", ["3199999999"])
    shown = len(display.shown)
    kiosk.post(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=uid))
    await display.wait_for_change(5)
    await kiosk.quiet()
    assert len(display.shown) > shown
    said = [ln.text for ln in kiosk.transcript.lines if ln.kind == "say"]
    assert any(t.startswith("[account_not_found]") for t in said), said
    assert "九九九九" in " ".join(t for t, _ in voice.said)  # the account's tail, in words
    assert not [ln for ln in kiosk.transcript.lines if ln.kind == "error"]
    assert display.current.screen == "welcome"


async def test_transcript_of_a_walk_up_is_in_the_order_things_happen(running) -> None:
    """The camera recognises a customer at walk-up: the transcript shows the face, then what
    the kiosk does about it - no "look at the screen" after she was recognised, no second
    look by the camera - and "请看着屏幕" is said at most once in any session start."""
    kiosk, display, voice, *_, db = running
    uid = (await db.fetchone("SELECT id FROM login_user WHERE phone='13800138000'"))[0]
    start = len(kiosk.transcript.lines)
    kiosk.post(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=uid))
    await until(display, "identified")
    await kiosk.quiet()
    lines = [(ln.kind, ln.text) for ln in kiosk.transcript.lines[start:]]
    kinds = [f"{k} {t.split(' ', 1)[0]}" for k, t in lines]
    assert kinds[0] == "event face"
    assert kinds[1:] == ["device camera.stop", "say [greeting_named]", "say [arrears]", "show identified"], lines
    kiosk.post(ActionChosen("cancel"))
    await until(display, "welcome")
    await kiosk.quiet()
    # pressing the big key instead: the welcome asks her to look, and that is said once
    start = len(voice.said)
    kiosk.post(KeyPressed(Key.CONFIRM))
    model = await until(display, "identify")
    await kiosk.quiet()
    spoken = " ".join(t for t, _ in voice.said[start:])
    assert spoken.count("请看着屏幕") == 1, spoken
    assert model.fields["guidance"]  # the screen shows what to do
    said = [ln.text for ln in kiosk.transcript.lines if ln.kind == "say"]
    assert not any(t.startswith("[looking]") for t in said)
