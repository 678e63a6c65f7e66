"""What the customer is told while real cash moves: the runtime, the real dialog and packs, the
real cash service on the simulator (real pty, real pyserial driver, real journal and ledger).

Each test plays a customer at an awkward moment (asks for help or settings while paying, a
unit that stops answering, a note during the "still there?" warning, a cancel just as the
last note goes in) and checks both ends: every fen reconciles, and what was spoken and
printed is true.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from assistant.adapters import ReceiptDevice, SilentVoice
from assistant.billing import LedgerBilling
from assistant.cash_payment import CashPaymentService
from assistant.cash_reconcile import reconcile_cash
from assistant.customers import CustomerDirectory
from assistant.dialog import Dialog, DialogConfig, DialogServices
from assistant.kiosk import HeadlessDisplay, Kiosk
from assistant.messages import ActionChosen, Amount, CashEvent, DeviceAction, Key, KeyPressed, Say
from assistant.receipts import receipt_for
from assistant.seed import seed
from assistant.storage import Database
from devices.printer import EscposPrinter, PrinterConfig, decode_text
from tests.cashkit import books, fast_config, make_sim, open_units, sim_inventory
from tests.dialog_script import Spawner

ACCOUNT = "3100012345"  # the demo customer 张建国, 123.45 元 in arrears


class Live:
    """A whole kiosk around the real cash service, driven through its event queue."""

    def __init__(self, db: Database, tmp: Path, packs, understanding, dialog_config: DialogConfig) -> None:
        self.db = db
        self.sim = make_sim(tmp)
        self.billing = LedgerBilling(db)
        self.services = DialogServices(
            billing=self.billing, customers=CustomerDirectory(db), understanding=understanding,
            packs=tuple(packs.ids()), hall_phone="95598",
        )
        self.dialog = Dialog(self.services, dialog_config)
        self.display, self.voice = HeadlessDisplay(), SilentVoice()
        self.printer = ReceiptDevice(EscposPrinter(PrinterConfig()), lambda: self.kiosk.pack, "K001")
        self.kiosk = Kiosk(self.dialog, packs, self.display, self.voice, devices={"printer": self.printer})
        self.services.spawn = self.kiosk.spawn
        notes, coins = open_units(self.sim, fast_config())
        self.cash = CashPaymentService(db, self.billing, notes, coins, "K001", self.kiosk.post,
                                       config=fast_config())
        self.services.cash = self.cash
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> Live:
        await self.cash.start()
        await self.cash.recover()
        self.task = asyncio.create_task(self.kiosk.run(self.stop))
        await self.display.wait_for("welcome")
        return self

    async def close(self) -> None:
        self.stop.set()
        if self.task is not None:
            await asyncio.wait_for(self.task, 5)
        await self.cash.stop()
        self.sim.stop()

    def said(self) -> list[str]:
        """Prompt ids spoken so far, in order."""
        return [ln.text.split("]", 1)[0].lstrip("[") for ln in self.kiosk.transcript.lines if ln.kind == "say"]

    async def to_cash(self, account: str = ACCOUNT) -> None:
        """Pay button, account number on the keypad, confirm, the big key: the cash screen."""
        self.pid = ""
        post = self.kiosk.post
        post(KeyPressed(Key.CONFIRM))
        await self.display.wait_for("identify")
        for d in account:
            post(KeyPressed(Key(d)))
        post(KeyPressed(Key.ENTER))
        await self.display.wait_for("confirm")
        post(KeyPressed(Key.CONFIRM))
        await self.display.wait_for("identified")
        post(KeyPressed(Key.CONFIRM))
        await self.display.wait_for("cash")
        self.pid = self.dialog.session.payment_id

    async def insert_note(self, value: int) -> None:
        assert await asyncio.to_thread(self.sim.insert_note, value), f"note {value} refused at the slot"

    async def until_counted(self, fen: int) -> None:
        """Wait (up to 5 s) until the dialog has counted ``fen`` inserted."""
        for _ in range(50):
            if self.dialog.session.inserted_fen == fen:
                return
            await asyncio.sleep(0.1)

    async def payment(self) -> object:
        """The finished payment of this customer (from the journal)."""
        return await self.cash.wait_finished(self.pid, 20)

    async def reconciles(self) -> None:
        rec = await reconcile_cash(self.db, self.billing)
        assert rec.discrepancies == ()
        assert await books(self.db) == sim_inventory(self.sim.snapshot())


@pytest.fixture
async def live(db: Database, tmp_path: Path, packs, understanding):
    await seed(db, tmp_path)
    kiosks: list[Live] = []

    async def make(**dialog: object) -> Live:
        k = await Live(db, tmp_path, packs, understanding, DialogConfig(**dialog)).start()
        kiosks.append(k)
        return k

    yield make
    for k in kiosks:
        await k.close()


async def test_help_asked_while_paying_cash_still_reports_the_payment(live) -> None:
    """The customer asks for help with the cash screen up and finishes paying while staff come:
    the kiosk must not go back to "insert 123.45, inserted 0" (and later "returning your money")."""
    k = await live()
    await k.to_cash()
    k.kiosk.post(KeyPressed(Key.HELP))
    await k.display.wait_for("help")
    await k.insert_note(10000)
    await asyncio.sleep(0.5)
    await k.insert_note(5000)
    result = await k.payment()
    assert result.posted_fen == 12345 and result.change_paid_fen == 2650
    model = await k.display.wait_for("result", 10)
    assert model.fields["change"] == "¥26.50"
    assert "payment_success" in k.said()
    assert "cash_returning" not in k.said() and "timed_out" not in k.said()
    assert len(k.printer.printed) == 1
    await k.reconciles()


async def test_settings_opened_while_paying_cash_still_reports_the_payment(live) -> None:
    k = await live()
    await k.to_cash()
    k.kiosk.post(ActionChosen("settings"))
    await k.display.wait_for("settings")
    await k.insert_note(10000)
    await asyncio.sleep(0.5)
    await k.insert_note(5000)
    await k.display.wait_for("result", 10)
    assert "payment_success" in k.said()
    await k.reconciles()


async def test_unit_lost_mid_payment_the_customer_hears_what_was_posted(live) -> None:
    """The note unit stops answering after 50 元 went in; when it answers again the payment is
    resolved by recovery (the 50 元 posted to the bill). The customer must hear that, get a
    receipt, and must not be told to insert more, that the money is being returned, or that
    nothing was charged."""
    k = await live()
    await k.to_cash()
    await k.insert_note(5000)
    await asyncio.sleep(0.5)
    k.sim.fault("mute", unit="notes")
    await asyncio.sleep(0.8)
    k.sim.fault("unmute", unit="notes")
    result = await k.payment()
    assert result.outcome == "recovered" and result.posted_fen == 5000
    model = await k.display.wait_for("result", 10)
    assert model.fields["paid"] == "¥50.00"
    said = k.said()
    assert "cash_fault" in said
    assert "payment_partial" in said
    for untrue in ("cancelled", "cash_returning", "timed_out", "cash_fault_cleared", "payment_success"):
        assert untrue not in said, f"told {untrue} after 50 元 was posted: {said}"
    await k.kiosk.quiet()
    spoken = " ".join(t for t, _ in k.voice.said)
    assert "五十元" in spoken and "七十三元四角五分" in spoken  # paid, and what is still owed
    text = decode_text(k.printer.printed[-1][0])
    assert "¥50.00" in text
    assert (await receipt_for(k.db, result.payment_id)).posted_fen == 5000
    await k.reconciles()


async def test_a_note_during_the_still_there_warning_counts_as_the_customer_acting(live) -> None:
    """The customer puts a note in while the kiosk asks "do you need more time?": the kiosk
    must not then time out and hand the money back."""
    k = await live(idle_timeout_s=0.6, grace_timeout_s=1.2)
    await k.to_cash()
    await k.display.wait_for("still_there", 5)
    await k.insert_note(5000)
    await k.display.wait_for("cash", 5)
    await asyncio.sleep(1.1)  # past the end of the first warning's grace time
    assert "timed_out" not in k.said() and "cash_returning" not in k.said()
    await k.insert_note(10000)
    result = await k.payment()
    assert result.posted_fen == 12345 and result.outcome == "paid"
    await k.display.wait_for("result", 10)
    await k.reconciles()


async def test_money_handed_back_after_a_timeout_is_not_called_change(live) -> None:
    k = await live(idle_timeout_s=0.6, grace_timeout_s=0.6)
    await k.to_cash()
    await k.insert_note(5000)
    await asyncio.sleep(0.3)
    await k.display.wait_for("welcome", 10)
    result = await k.payment()
    assert result.outcome == "cancelled" and result.refunded_fen == 5000
    said = k.said()
    assert "timed_out" in said and "cash_returning" in said
    assert "cash_dispensing" not in said  # "找零" (change) is the wrong word for a refund
    await k.reconciles()


async def test_cancel_just_as_the_last_note_goes_in(db: Database, tmp_path: Path, understanding, packs) -> None:
    """The customer presses cancel after the note that pays in full was stacked but before the
    kiosk said so: it is too late to cancel. The kiosk must not say it is handing the money
    back, and must report the payment (and print its receipt) exactly once."""
    await seed(db, tmp_path)
    sim = make_sim(tmp_path)
    spawner = Spawner()
    services = DialogServices(billing=LedgerBilling(db), customers=CustomerDirectory(db),
                              understanding=understanding, spawn=spawner, packs=tuple(packs.ids()))
    dialog = Dialog(services)
    events: list[CashEvent] = []
    said: list[str] = []
    printed = 0

    async def run(cmds) -> None:
        nonlocal printed
        said.extend(c.prompt_id for c in cmds if isinstance(c, Say))
        printed += sum(1 for c in cmds if isinstance(c, DeviceAction) and c.action == "print")

    async def at_step(step: str) -> None:
        # the dialog sees what the service reported so far, then the customer's cancel key
        if step == "accept_off":
            while events:
                await run(await dialog.handle(events.pop(0)))
            await run(await dialog.handle(KeyPressed(Key.CANCEL)))

    notes, coins = open_units(sim, fast_config())
    cash = CashPaymentService(db, services.billing, notes, coins, "K001", events.append,
                              config=fast_config(), checkpoint=at_step)
    try:
        await cash.start()
        await cash.recover()
        services.cash = cash
        await dialog.start()
        for ev in [KeyPressed(Key.CONFIRM), *[KeyPressed(Key(d)) for d in "3100056789"],
                   KeyPressed(Key.ENTER), KeyPressed(Key.CONFIRM), KeyPressed(Key.CONFIRM)]:
            await dialog.handle(ev)
        assert dialog.state == "cash"
        assert await asyncio.to_thread(sim.insert_note, 5000)
        result = await cash.wait_finished(dialog.session.payment_id, 20)
        assert result.outcome == "paid" and result.posted_fen == 4580
        while events:
            await run(await dialog.handle(events.pop(0)))
        for ev in await spawner.run():
            await run(await dialog.handle(ev))
        assert "cash_returning" not in said
        assert said.count("payment_success") == 1
        assert printed == 1
        assert dialog.state == "result"
    finally:
        await cash.stop()
        sim.stop()


async def test_a_full_disk_when_paying_is_said_not_silent(tiny_disk: Path, tmp_path: Path, packs, understanding) -> None:
    """The disk is full when the customer presses the big key to pay: nothing can be recorded,
    so no cash may be taken - and the customer must hear that the kiosk cannot serve them
    (go to the counter), not face a screen that no longer answers."""
    from tests.conftest import fill

    db = await Database(tiny_disk / "kiosk.db").open()
    await seed(db, tmp_path)
    k = await Live(db, tmp_path, packs, understanding, DialogConfig()).start()
    try:
        post = k.kiosk.post
        post(KeyPressed(Key.CONFIRM))
        await k.display.wait_for("identify")
        for d in ACCOUNT:
            post(KeyPressed(Key(d)))
        post(KeyPressed(Key.ENTER))
        await k.display.wait_for("confirm")
        post(KeyPressed(Key.CONFIRM))
        await k.display.wait_for("identified")
        filler = fill(tiny_disk)
        post(KeyPressed(Key.CONFIRM))
        await k.display.wait_for("welcome", 10)
        assert "error_out_of_service" in k.said()
        assert not await asyncio.to_thread(k.sim.insert_note, 5000)  # no cash is taken
        filler.unlink()
    finally:
        await k.close()
        await db.close()


async def test_cancel_with_money_in_shows_that_it_is_being_returned(live, packs) -> None:
    """The customer cancels after putting 100 元 in: the kiosk says and shows that the 100 元
    is being handed back (not "insert 23.45 more" with a cancel button), then says goodbye."""
    from assistant.prompts import Label, Prompt
    from assistant.screens import Action

    k = await live()
    await k.to_cash()
    await k.insert_note(10000)

    async def credited() -> None:
        while k.display.current.fields.get("inserted") != "¥100.00":
            await k.display.wait_for_change(10)

    await asyncio.wait_for(credited(), 10)
    before = len(k.display.shown)
    k.kiosk.post(ActionChosen("cancel"))
    await k.display.wait_for("welcome", 10)
    zh = packs.get()
    words = zh.render(Prompt.CASH_RETURNING, {"amount": Amount(10000)}).display
    returning = [m for m in k.display.shown[before:] if m.screen == "cash"]
    assert returning, [m.screen for m in k.display.shown[before:]]
    model = returning[-1]
    assert model.title == zh.label(Label.TITLE_CASH_RETURNING)
    assert model.fields["returning"] == "¥100.00" and model.labels["returning"] == zh.label(Label.HDR_RETURNING)
    assert model.labels["hint"] == words and words in model.caption
    assert "remaining" not in model.fields  # nothing is asked for any more
    assert {b.action for b in model.buttons} <= {Action.REPEAT, Action.LANGUAGE}  # nothing to cancel again
    assert "cash_returning" in k.said()
    result = await k.payment()
    assert result.outcome == "cancelled" and result.refunded_fen == 10000
    await k.reconciles()


@pytest.mark.parametrize("overlay", ["help", "settings"])
async def test_a_customer_who_walks_away_from_help_or_settings_mid_payment_gets_the_money_back(
    live, overlay: str
) -> None:
    """The customer opens help (or settings) on the cash screen after a note went in, then
    walks away. The "still there?" warning over that screen must not forget the payment
    behind it: at the end of the grace time the note is handed back, as on the cash screen,
    and the payment is closed - not left open, acceptors on, with the customer's 50 元."""
    k = await live(idle_timeout_s=0.8, grace_timeout_s=0.8)
    await k.to_cash()
    await k.insert_note(5000)
    await k.display.wait_for("cash", 5)
    await k.until_counted(5000)
    k.kiosk.post(KeyPressed(Key.HELP) if overlay == "help" else ActionChosen("settings"))
    await k.display.wait_for(overlay, 5)
    await k.display.wait_for("still_there", 5)
    await k.display.wait_for("welcome", 10)
    result = await k.payment()
    assert result.outcome == "cancelled" and result.refunded_fen == 5000
    said = k.said()
    assert "timed_out" in said and "cash_returning" in said
    await k.reconciles()


async def test_more_time_over_help_mid_payment_still_leads_back_to_the_cash_screen(live) -> None:
    """"More time" asked over the help screen of an open cash payment goes back to the
    payment's screen (staff are already called), not to a help screen whose way out ended
    the session with the customer's money inside."""
    k = await live(idle_timeout_s=0.8, grace_timeout_s=5.0)
    await k.to_cash()
    await k.insert_note(5000)
    await k.until_counted(5000)
    k.kiosk.post(KeyPressed(Key.HELP))
    await k.display.wait_for("help", 5)
    await k.display.wait_for("still_there", 5)
    k.kiosk.post(KeyPressed(Key.CONFIRM))  # more time
    model = await k.display.wait_for("cash", 5)
    assert model.fields["inserted"] == "¥50.00"
    await k.insert_note(10000)
    result = await k.payment()
    assert result.posted_fen == 12345 and result.outcome == "paid"
    await k.display.wait_for("result", 10)
    assert "payment_success" in k.said() and "cash_returning" not in k.said()
    await k.reconciles()


async def test_settings_opened_from_the_still_there_warning_mid_payment(live) -> None:
    """Settings opened from the "still there?" warning of a cash payment: closing them goes back
    to the payment (it used to go back to a warning with no timer left, which stayed up for good
    and whose "more time" ended the session with the money inside); walking away then still
    hands the note back."""
    k = await live(idle_timeout_s=0.8, grace_timeout_s=3.0)
    await k.to_cash()
    await k.insert_note(5000)
    await k.until_counted(5000)
    await k.display.wait_for("still_there", 5)
    k.kiosk.post(ActionChosen("settings"))
    await k.display.wait_for("settings", 5)
    k.kiosk.post(KeyPressed(Key.CONFIRM))  # done with the settings
    model = await k.display.wait_for("cash", 5)
    assert model.fields["inserted"] == "¥50.00"
    await k.display.wait_for("welcome", 15)  # walked away: warned, then timed out
    result = await k.payment()
    assert result.outcome == "cancelled" and result.refunded_fen == 5000
    await k.reconciles()
