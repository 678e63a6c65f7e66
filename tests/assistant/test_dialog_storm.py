"""Random storms of events against the real dialog, real packs, real matcher and a real ledger.

Keys pressed at random, buttons of other screens, odd phrases (approximate, huge, zero,
Traditional, Arabic digits, 14-digit account numbers), timers firing in any state, cash
events of this payment, of another one or of none, faces during payment, payment results
twice: whatever comes, the dialog must not raise, every prompt it says must render in the
pack with no ASCII digit for the speech engine, and every screen it shows must present.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

import pytest

from assistant.billing import LedgerBilling
from assistant.customers import CustomerDirectory
from assistant.dialog import CashPayments, Dialog, DialogServices
from assistant.messages import (
    ActionChosen,
    CashEvent,
    CashEventKind,
    FaceOutcome,
    FaceSeen,
    Key,
    KeyPressed,
    PaymentDone,
    Say,
    Show,
    Timeout,
    Utterance,
)
from assistant.presenter import Presenter
from assistant.screens import Action
from assistant.seed import seed
from assistant.staff import StaffDirectory
from tests.dialog_script import Spawner

PHRASES = [
    "交", "交费", "确认", "取消", "再说一遍", "慢一点", "大声点", "说粤语", "说普通话", "交一百块", "交两三块",
    "交一百万", "交零元", "交123.5元", "户号三一零零零一二三四五", "户号31000123456789", "户号12", "存进账户",
    "需要", "不对", "找工作人员", "开始注册", "用银行卡交", "用电子钱包", "繳費", "啊啊啊", "",
]


@dataclass
class _Result:
    ok: bool
    inserted_fen: int
    change_fen: int
    credited_fen: int
    posted_fen: int


class StormCash(CashPayments):
    """A cash side whose cancels are sometimes too late and whose results vary."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    async def begin(self, payment_id, account_no, due_fen, user_id):
        return None

    async def accept_excess_as_credit(self, payment_id):
        return None

    async def cancel(self, payment_id):
        return self.rng.random() < 0.7

    def change_available(self):
        return {5000: 2, 100: 3}

    async def wait_finished(self, payment_id, timeout):
        r = self.rng
        return _Result(r.random() < 0.5, 20000, 7650, r.choice([0, 5]), r.choice([0, 5000, 12345]))


def _event(rng: random.Random, dialog: Dialog, users: list[int]):
    c = rng.random()
    if c < 0.2:
        return KeyPressed(rng.choice([Key.CONFIRM, Key.CANCEL, Key.REPEAT, Key.HELP, Key.ENTER, Key.CLEAR, Key.D1]))
    if c < 0.35:
        return ActionChosen(rng.choice(list(Action)).value, rng.choice(["", "yue", "zh-CN", "3"]))
    if c < 0.5:
        return Utterance(rng.choice(PHRASES), confidence=rng.choice([0.3, 0.95]))
    if c < 0.58:
        return Timeout(rng.choice(["idle", "grace", "result", "no_speech"]))
    if c < 0.75:
        return CashEvent(
            rng.choice(list(CashEventKind)), value_fen=rng.choice([0, 5000, 10000]),
            inserted_fen=rng.choice([0, 5000, 15000]), detail=rng.choice(["", "notes:note_jam", "smaller_note_fen=2000"]),
            payment_id=rng.choice(["", dialog.session.payment_id, "another"]),
        )
    if c < 0.88:
        return FaceSeen(rng.choice(list(FaceOutcome)), customer_id=rng.choice([*users, None, 999]))
    return PaymentDone(rng.choice([dialog.session.payment_id, "another"]), ok=rng.random() < 0.5,
                       paid_fen=rng.choice([0, 5000, 12345]), credited_fen=rng.choice([0, 5]),
                       problem=rng.choice(["", "payment_declined", "payment_timeout", "cash_fault"]))


@pytest.mark.parametrize("seed_no", range(6))
async def test_random_event_storm(db, tmp_path, packs, understanding, seed_no: int) -> None:
    await seed(db, tmp_path)
    rng = random.Random(seed_no)
    spawner = Spawner()
    services = DialogServices(
        billing=LedgerBilling(db), customers=CustomerDirectory(db), understanding=understanding,
        staff=StaffDirectory(db), cash=StormCash(rng), spawn=spawner, packs=tuple(packs.ids()), hall_phone="95598",
    )
    dialog = Dialog(services)
    presenter = Presenter(packs.get)
    users = [r[0] for r in await db.fetchall("SELECT id FROM login_user")]
    await dialog.start()
    for step in range(250):
        if dialog.state == "idle" and rng.random() < 0.7:
            # most storms happen to a customer who got as far as paying
            events = [FaceSeen(FaceOutcome.IDENTIFIED, customer_id=users[0]), KeyPressed(Key.CONFIRM)]
        elif spawner.pending and rng.random() < 0.3:
            events = await spawner.run()
        else:
            events = [_event(rng, dialog, users)]
        for event in events:
            where = f"seed {seed_no} step {step} in {dialog.state}: {event!r}"
            commands = await dialog.handle(event)
            pack = packs.get(dialog.session.pack)
            for cmd in commands:
                if isinstance(cmd, Say):
                    speech = pack.render(cmd.prompt_id, cmd.slots).speech
                    assert not re.search(r"[0-9]", speech), f"{where}: digits for the speech engine: {speech}"
                elif isinstance(cmd, Show):
                    presenter.present(cmd, pack, caption="", text_scale=1.0, packs=services.packs)
    for job in spawner.pending:
        job.close()  # never awaited: the storm is over


class TrackingCash(StormCash):
    """The storm's cash side, remembering which payments were begun and which were closed
    (handed back by a cancel that took effect)."""

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self.begun: set[str] = set()
        self.closed: set[str] = set()

    async def begin(self, payment_id, account_no, due_fen, user_id):
        self.begun.add(payment_id)

    async def cancel(self, payment_id):
        taken_back = await super().cancel(payment_id)
        if taken_back is not False:
            self.closed.add(payment_id)
        return taken_back


def _customer_event(rng: random.Random, dialog: Dialog):
    """What a confused or impatient customer does: any key, any button, a phrase, a timer
    running out, or the cash unit reporting on this payment."""
    c = rng.random()
    if c < 0.35:
        return KeyPressed(rng.choice(list(Key)))
    if c < 0.55:
        return ActionChosen(rng.choice(list(Action)).value, rng.choice(["", "yue", "zh-CN"]))
    if c < 0.7:
        return Utterance(rng.choice(PHRASES), confidence=0.95)
    if c < 0.85:
        return Timeout(rng.choice(["idle", "grace", "result", "no_speech"]))
    kind = rng.choice([CashEventKind.CREDITED, CashEventKind.NOTE_IN_ESCROW, CashEventKind.PAID_IN_FULL,
                       CashEventKind.FAULT, CashEventKind.FAULT_CLEARED, CashEventKind.CHANGE_IMPOSSIBLE])
    return CashEvent(kind, value_fen=5000, inserted_fen=5000, payment_id=dialog.session.payment_id)


@pytest.mark.parametrize("seed_no", range(12))
async def test_no_cash_payment_is_left_open_behind_a_new_session(db, tmp_path, packs, understanding, seed_no) -> None:
    """Whatever the customer does on the cash screen or over it (help, settings, the "still
    there?" warning, in any order), the session never moves on from a cash payment it began
    without either handing the money back or waiting for the payment's result."""
    await seed(db, tmp_path)
    rng = random.Random(1000 + seed_no)
    spawner = Spawner()
    cash = TrackingCash(rng)
    services = DialogServices(
        billing=LedgerBilling(db), customers=CustomerDirectory(db), understanding=understanding,
        staff=StaffDirectory(db), cash=cash, spawn=spawner, packs=tuple(packs.ids()), hall_phone="95598",
    )
    dialog = Dialog(services)
    users = [r[0] for r in await db.fetchall("SELECT id FROM login_user")]
    await dialog.start()
    recent: list[str] = []
    for _ in range(300):
        if dialog.state == "idle" and rng.random() < 0.8:
            events = [FaceSeen(FaceOutcome.IDENTIFIED, customer_id=users[0]), KeyPressed(Key.CONFIRM)]
        elif spawner.pending and rng.random() < 0.2:
            events = await spawner.run()
        else:
            events = [_customer_event(rng, dialog)]
        for event in events:
            before, state = dialog.session.payment_id, dialog.state
            await dialog.handle(event)
            recent = [*recent[-11:], f"{state} {event!r} -> {dialog.state}"]
            if dialog.session.cash_waiting:
                cash.closed.add(dialog.session.cash_waiting)
            if before in cash.begun and dialog.session.payment_id != before:
                assert before in cash.closed, "payment left open:\n" + "\n".join(recent)
    assert cash.begun, "the storm never reached the cash screen"
    for job in spawner.pending:
        job.close()
