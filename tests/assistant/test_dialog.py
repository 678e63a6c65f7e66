"""The dialog state machine, driven by scripts of real events against a real ledger."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from assistant.billing import LedgerBilling
from assistant.customers import CustomerDirectory
from assistant.dialog import CashPayments, Dialog, DialogConfig, DialogServices
from assistant.messages import (
    ActionChosen,
    Amount,
    CashEvent,
    CashEventKind,
    Digits,
    FaceOutcome,
    FaceSeen,
    Key,
    KeyPressed,
    Say,
    SetVoice,
    Show,
    Timeout,
    Utterance,
)
from assistant.seed import seed
from tests.dialog_script import SPAWNED, Spawner, Step, run_dialog


@dataclass
class Result:
    ok: bool
    inserted_fen: int
    change_fen: int
    credited_fen: int
    posted_fen: int


@dataclass
class FakeCash(CashPayments):
    """Records what the dialog asked; the script injects the cash events."""

    begun: list[tuple[str, str, int]] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    result: Result | None = None

    async def begin(self, payment_id, account_no, due_fen, user_id):
        self.begun.append((payment_id, account_no, due_fen))

    async def accept_excess_as_credit(self, payment_id):
        pass

    async def cancel(self, payment_id):
        self.cancelled.append(payment_id)
        self.result = Result(False, 0, 0, 0, 0)

    def change_available(self):
        return {5000: 2, 1000: 5, 100: 20, 10: 50}

    async def wait_finished(self, payment_id, timeout):
        assert self.result is not None
        return self.result


@pytest.fixture
async def services(db, tmp_path, understanding):
    await seed(db, tmp_path)
    spawner = Spawner()
    svc = DialogServices(
        billing=LedgerBilling(db),
        customers=CustomerDirectory(db),
        understanding=understanding,
        cash=FakeCash(),
        packs=("zh-CN", "yue", "zh-CN-sichuan"),
        hall_phone="95598",
        spawn=spawner,
    )
    svc.spawner = spawner  # type: ignore[attr-defined]
    return svc


async def user_id_for(db, phone: str) -> int:
    row = await db.fetchone("SELECT id FROM login_user WHERE phone = ?", (phone,))
    return int(row[0])


async def test_face_to_cash_payment_with_change_and_credit(services, db) -> None:
    dialog = Dialog(services)
    uid = await user_id_for(db, "13800138000")
    cash: FakeCash = services.cash
    t = await run_dialog(
        dialog,
        [
            Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=uid, score=0.7, margin=0.5),
                 say=["greeting_named", "arrears"], show="identified",
                 state="arrears"),
            Step(KeyPressed(Key.CONFIRM), say=["cash_insert"], show="cash", do=[("cash", "accept")],
                 state="cash"),
            Step(CashEvent(CashEventKind.CREDITED, value_fen=20000, inserted_fen=20000),
                 show="cash"),
            Step(CashEvent(CashEventKind.PAID_IN_FULL, inserted_fen=20000),
                 say=["cash_received_in_full"], state="settling"),
            Step(CashEvent(CashEventKind.DISPENSING, value_fen=7650), say=["cash_dispensing"]),
        ],
        services.spawner,
    )
    # The arrears were spoken with the real amount and a masked name and account.
    arrears = [s for s in t.says() if s.prompt_id == "arrears"][0]
    assert arrears.slots["amount"] == Amount(12345)
    assert arrears.slots["account"].display == "******2345"
    greeting = [s for s in t.says() if s.prompt_id == "greeting_named"][0]
    assert greeting.slots["name"].display.endswith("**") and "*" not in greeting.slots["name"].spoken
    assert cash.begun == [(dialog.session.payment_id, "3100012345", 12345)]
    cash.result = Result(True, 20000, 7650, 5, 12345)
    t2 = await run_dialog(
        dialog,
        [Step(SPAWNED, say=["payment_success", "cash_remainder_credited", "receipt_spoken",
                            "receipt_printing"], show="result", do=[("printer", "print")],
              state="result"),
         Step(KeyPressed(Key.CONFIRM), say=["goodbye"], show="welcome", state="idle")],
        services.spawner,
        start=False,
    )
    credited = [s for s in t2.says() if s.prompt_id == "cash_remainder_credited"][0]
    assert credited.slots["remainder"] == Amount(5)


async def test_unknown_face_goes_to_account_number_by_keypad(services) -> None:
    dialog = Dialog(services)
    digits = [KeyPressed(Key(d)) for d in "0300045678"]
    await run_dialog(
        dialog,
        [
            Step(FaceSeen(FaceOutcome.UNKNOWN), say=["face_unknown", "ask_account"],
                 show="account_entry", state="account_entry"),
            *[Step(k, say=[], show="account_entry") for k in digits],
            Step(KeyPressed(Key.ENTER), say=["account_readback"], show="confirm", state="confirm_account"),
            Step(KeyPressed(Key.CONFIRM), say=["greeting_named", "arrears"], show="identified"),
        ],
    )
    assert dialog.session.account is not None
    assert dialog.session.account.account_no == "0300045678"  # leading zero kept
    assert dialog.session.account.arrears_fen == 22250


async def test_wrong_account_number_is_said_and_asked_again(services) -> None:
    dialog = Dialog(services)
    t = await run_dialog(
        dialog,
        [
            Step(FaceSeen(FaceOutcome.UNKNOWN), state="account_entry"),
            *[Step(KeyPressed(Key(d))) for d in "9999999999"],
            Step(KeyPressed(Key.ENTER), say=["account_readback"]),
            Step(KeyPressed(Key.CONFIRM), say=["account_not_found", "ask_account"], state="account_entry"),
            *[Step(KeyPressed(Key(d))) for d in "123"],
            Step(KeyPressed(Key.ENTER), say=["account_digits_wrong", "ask_account"], state="account_entry"),
        ],
    )
    nf = [s for s in t.says() if s.prompt_id == "account_not_found"][0]
    assert nf.slots["account"] == Digits("9999999999")


async def test_face_quality_guidance_then_fallback(services) -> None:
    dialog = Dialog(services, DialogConfig(face_attempts=3))
    await run_dialog(
        dialog,
        [
            Step(FaceSeen(FaceOutcome.TOO_SMALL), say=["welcome", "face_too_small"]),
            # The same problem again is not repeated aloud.
            Step(FaceSeen(FaceOutcome.TOO_SMALL), say=[]),
            Step(FaceSeen(FaceOutcome.SEVERAL_FACES), say=["face_failed", "ask_account"],
                 state="account_entry"),
        ],
    )


async def test_repeat_slower_and_language_switch(services, db) -> None:
    dialog = Dialog(services)
    uid = await user_id_for(db, "13800138000")
    t = await run_dialog(
        dialog,
        [
            Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=uid), say=["greeting_named", "arrears"]),
            Step(Utterance("再 说 一遍"), say=["greeting_named", "arrears"], show="identified"),
            Step(KeyPressed(Key.REPEAT), say=["greeting_named", "arrears"]),
            Step(Utterance("慢一点"), say=["slower_ack", "greeting_named", "arrears"]),
            Step(Utterance("说粤语"), say=["language_switched", "greeting_named", "arrears"]),
            Step(Utterance("今天天气不错"), say=["not_understood"], state="arrears"),
        ],
    )
    voice = [c for s in t.steps for c in s if isinstance(c, SetVoice)]
    assert SetVoice(rate_step=-1) in voice and SetVoice(pack="yue") in voice


async def test_unusual_method_is_read_back_before_paying(services, db) -> None:
    dialog = Dialog(services)
    uid = await user_id_for(db, "13800138000")
    await run_dialog(
        dialog,
        [
            Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=uid), state="arrears"),
            Step(Utterance("交一百块"), say=["confirm_method"], show="confirm", state="confirm_payment"),
            Step(Utterance("不对"), say=["greeting_named", "arrears"], state="arrears"),
            Step(Utterance("用银行卡"), say=["confirm_method"], state="confirm_payment"),
        ],
    )
    assert dialog.session.pending_method == "card"


async def test_low_confidence_confirm_is_read_back(services, db) -> None:
    dialog = Dialog(services)
    uid = await user_id_for(db, "13800138000")
    await run_dialog(
        dialog,
        [
            Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=uid), state="arrears"),
            Step(Utterance("交", confidence=0.3), say=["confirm_method"], state="confirm_payment"),
            Step(KeyPressed(Key.CONFIRM), say=["cash_insert"], state="cash"),
        ],
    )


async def test_timeout_warns_then_more_time_then_gives_up(services, db) -> None:
    dialog = Dialog(services)
    uid = await user_id_for(db, "13800138000")
    t = await run_dialog(
        dialog,
        [
            Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=uid), state="arrears"),
            Step(Timeout("idle"), say=["still_there"], show="still_there", state="still_there"),
            Step(Utterance("还需要"), say=["more_time_granted", "greeting_named", "arrears"],
                 show="identified", state="arrears"),
            Step(Timeout("idle"), say=["still_there"], state="still_there"),
            Step(Timeout("grace"), say=["timed_out", "goodbye"], show="welcome", state="idle"),
        ],
    )
    # More time lengthens this customer's timeouts.
    timers = [c for s in t.steps for c in s if getattr(c, "timer", None) == "idle" and hasattr(c, "seconds")]
    assert timers[-1].seconds > timers[0].seconds or dialog.state == "idle"


async def test_timeout_during_cash_returns_the_money(services, db) -> None:
    dialog = Dialog(services)
    uid = await user_id_for(db, "13800138000")
    cash: FakeCash = services.cash
    t = await run_dialog(
        dialog,
        [
            Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=uid)),
            Step(KeyPressed(Key.CONFIRM), state="cash"),
            Step(CashEvent(CashEventKind.CREDITED, value_fen=5000, inserted_fen=5000),
                 say=["cash_inserted"]),
            Step(Timeout("idle"), say=["still_there"]),
            Step(Timeout("grace"), say=["timed_out", "cash_returning"], state="settling"),
        ],
        services.spawner,
    )
    assert cash.cancelled == [dialog.session.payment_id]
    await run_dialog(dialog, [Step(SPAWNED, say=["cancelled", "goodbye"], state="idle")],
                     services.spawner, start=False)
    returning = [s for s in t.says() if s.prompt_id == "cash_returning"][0]
    assert returning.slots["amount"] == Amount(5000)
    # shown as well: the amount being handed back, instead of what is still due
    shown = [c for c in t.steps[-1] if isinstance(c, Show)][-1]
    assert shown.screen == "cash" and shown.fields["returning"] == Amount(5000) and "remaining" not in shown.fields


async def test_help_from_anywhere_and_back(services, db) -> None:
    dialog = Dialog(services)
    uid = await user_id_for(db, "13800138000")
    await run_dialog(
        dialog,
        [
            Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=uid), state="arrears"),
            Step(Utterance("找工作人员"), say=["help_called"], show="help", do=[("staff", "call")],
                 state="help"),
            Step(KeyPressed(Key.CANCEL), say=["greeting_named", "arrears"], state="arrears"),
        ],
    )


async def test_cancel_with_no_money_ends_session(services, db) -> None:
    dialog = Dialog(services)
    uid = await user_id_for(db, "13800138000")
    await run_dialog(
        dialog,
        [
            Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=uid)),
            Step(ActionChosen("cancel"), say=["cancelled", "goodbye"], show="welcome", state="idle"),
        ],
    )


async def test_customer_with_no_arrears(services, db) -> None:
    dialog = Dialog(services)
    uid = await user_id_for(db, "13700137000")
    t = await run_dialog(
        dialog,
        [Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=uid),
              say=["greeting_named", "no_arrears"], state="result")],
    )
    assert t.says()[-1].slots["balance"] == Amount(2000)


async def test_card_without_gateway_is_said_plainly(services, db) -> None:
    dialog = Dialog(services)
    uid = await user_id_for(db, "13800138000")
    await run_dialog(
        dialog,
        [
            Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=uid)),
            Step(ActionChosen("other_methods"), say=["choose_method"], show="choose_method"),
            Step(ActionChosen("method_card"), say=["method_unavailable", "choose_method"],
                 state="choose_method"),
        ],
    )


async def test_change_impossible_is_said_before_stacking(services, db) -> None:
    dialog = Dialog(services)
    uid = await user_id_for(db, "13800138000")
    t = await run_dialog(
        dialog,
        [
            Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=uid)),
            Step(KeyPressed(Key.CONFIRM), state="cash"),
            Step(CashEvent(CashEventKind.CHANGE_IMPOSSIBLE, value_fen=10000), say=["cash_change_impossible"],
                 state="cash"),
        ],
    )
    assert t.says()[-1].slots["note"] == Amount(10000)
    assert all(isinstance(c, Say) or True for c in t.steps[-1])


@pytest.fixture
async def card_customer(services, db):
    """张建国 with a bound quick-pay card as his default method, and the sandbox bank."""
    from assistant.noncash import NonCashPayments
    from assistant.payments import SandboxConfig, SandboxGateway, SandboxTokenizer

    bank = SandboxGateway(db, "card", SandboxConfig(latency_s=0.0))
    await bank.ensure_schema()
    token = await SandboxTokenizer(db).tokenize("6222021234567897", "工商银行")
    uid = await services.customers.link(
        phone="13800138000", name="张建国", accounts=["3100012345"], default_method="card",
        card_token=token.token, card_last4=token.last4, issuer=token.issuer,
    )
    services.noncash = NonCashPayments(db, services.billing, {"card": bank}, "K001")
    return uid


async def test_quick_pay_needs_liveness_then_pays(services, card_customer) -> None:
    from assistant.messages import LivenessResult

    dialog = Dialog(services)
    t = await run_dialog(
        dialog,
        [
            Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=card_customer), state="arrears"),
            Step(KeyPressed(Key.CONFIRM), say=["liveness_challenge"], do=[("camera", "liveness")],
                 state="liveness"),
            Step(LivenessResult(passed=True), say=["paying_noncash"], state="paying"),
            Step(SPAWNED, say=["payment_success", "receipt_spoken", "receipt_printing"], state="result",
                 do=[("printer", "print")]),
        ],
        services.spawner,
    )
    assert (await services.billing.account("3100012345")).arrears_fen == 0
    # No cash went in or out: the result screen has no cash lines (no big "change ¥0.00").
    result = dialog.last_show.fields
    assert result["paid"] == Amount(12345) and not {"inserted", "change", "credited"} & set(result)
    challenge = [s for s in t.says() if s.prompt_id == "liveness_challenge"][0]
    assert challenge.slots["direction"] in ("liveness_left", "liveness_right")


async def test_a_note_handed_back_from_escrow_after_cancel_is_announced(services, db) -> None:
    """The customer cancels while the first note is still being checked: nothing was counted,
    but the unit hands the note back, and the customer is told to take it."""
    dialog = Dialog(services)
    uid = await user_id_for(db, "13800138000")
    await run_dialog(
        dialog,
        [
            Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=uid), state="arrears"),
            Step(KeyPressed(Key.CONFIRM), state="cash"),
            Step(CashEvent(CashEventKind.NOTE_IN_ESCROW, value_fen=10000)),
            Step(KeyPressed(Key.CANCEL), not_say=["cash_returning"]),
        ],
        services.spawner,
    )
    returned = CashEvent(CashEventKind.RETURNED, value_fen=10000, detail="notes",
                         payment_id=dialog.session.payment_id)
    t = await run_dialog(dialog, [Step(returned, say=["cash_returning"]), Step(SPAWNED, say=["cancelled", "goodbye"])],
                         services.spawner, start=False)
    assert t.says(0)[0].slots["amount"] == Amount(10000)


async def test_a_cash_unit_failing_at_cancel_does_not_leave_the_fault_screen_up_for_good(services, db) -> None:
    """The note unit fails as the customer cancels: staff are called, and the payment's own
    result (when staff have cleared it) ends the session, instead of a fault screen that
    nothing could leave."""
    from assistant.errors import CashDeviceError

    class FailsAtCancel(FakeCash):
        async def cancel(self, payment_id):
            raise CashDeviceError("note unit: jammed while returning")

    services.cash = cash = FailsAtCancel()
    dialog = Dialog(services)
    uid = await user_id_for(db, "13800138000")
    await run_dialog(
        dialog,
        [
            Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=uid), state="arrears"),
            Step(KeyPressed(Key.CONFIRM), state="cash"),
            Step(CashEvent(CashEventKind.CREDITED, value_fen=10000, inserted_fen=10000)),
            Step(KeyPressed(Key.CANCEL), say=["cash_fault"], show="fault", do=[("staff", "call")],
                 state="settling"),
        ],
        services.spawner,
    )
    cash.result = Result(False, 10000, 10000, 0, 0)  # staff cleared the jam: the 100 元 went back
    await run_dialog(dialog, [Step(SPAWNED, not_say=["payment_success"])], services.spawner, start=False)
    assert dialog.state not in ("fault", "settling")


async def test_an_unforeseen_failure_while_settling_cash_calls_staff(services, db) -> None:
    """The cash payment's result cannot be had (here the database fails): the customer hears
    that the money inserted is on record and staff are coming; the screen does not hang."""
    import sqlite3

    class BrokenWait(FakeCash):
        async def wait_finished(self, payment_id, timeout):
            raise sqlite3.OperationalError("database disk image is malformed")

    services.cash = BrokenWait()
    dialog = Dialog(services)
    uid = await user_id_for(db, "13800138000")
    t = await run_dialog(
        dialog,
        [
            Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=uid), state="arrears"),
            Step(KeyPressed(Key.CONFIRM), state="cash"),
            Step(CashEvent(CashEventKind.CREDITED, value_fen=20000, inserted_fen=20000)),
            Step(CashEvent(CashEventKind.PAID_IN_FULL, inserted_fen=20000), state="settling"),
            Step(SPAWNED, do=[("staff", "call")], not_say=["payment_success"]),
        ],
        services.spawner,
    )
    fault = t.says(-1)[0]
    assert fault.prompt_id == "cash_fault" and fault.slots["inserted"] == Amount(20000)
    assert dialog.state != "settling"


async def test_an_unforeseen_failure_while_paying_never_leaves_the_customer_waiting(services, card_customer) -> None:
    """Something nobody foresaw breaks inside the card payment (here the database): the
    customer is told the bank's answer is not known, not left on "paying, please wait"."""
    import sqlite3

    from assistant.messages import LivenessResult
    from assistant.noncash import NonCashPayments

    class Broken(NonCashPayments):
        async def pay(self, *args, **kwargs):
            raise sqlite3.OperationalError("disk I/O error")

    old = services.noncash
    services.noncash = Broken(old.db, old.billing, old.gateways, "K001")
    dialog = Dialog(services)
    t = await run_dialog(
        dialog,
        [
            Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=card_customer), state="arrears"),
            Step(KeyPressed(Key.CONFIRM), state="liveness"),
            Step(LivenessResult(passed=True), say=["paying_noncash"], state="paying"),
            Step(SPAWNED, not_say=["payment_success"]),
        ],
        services.spawner,
    )
    assert t.said(-1)[0] == "payment_timeout" and dialog.state != "paying"


async def test_quick_pay_with_a_photo_fails_liveness_and_offers_cash(services, card_customer) -> None:
    from assistant.messages import LivenessResult

    dialog = Dialog(services)
    await run_dialog(
        dialog,
        [
            Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=card_customer)),
            Step(KeyPressed(Key.CONFIRM), state="liveness"),
            Step(LivenessResult(passed=False, reason="no_motion"), say=["liveness_failed", "choose_method"],
                 state="choose_method"),
        ],
    )
    assert (await services.billing.account("3100012345")).arrears_fen == 12345


async def test_card_needs_face_not_just_account_number(services, card_customer) -> None:
    dialog = Dialog(services)
    await run_dialog(
        dialog,
        [
            Step(FaceSeen(FaceOutcome.UNKNOWN), state="account_entry"),
            *[Step(KeyPressed(Key(d))) for d in "3100012345"],
            Step(KeyPressed(Key.ENTER)),
            Step(KeyPressed(Key.CONFIRM), say=["greeting_named", "arrears"]),
            # default method card, but the customer only typed the account number
            Step(KeyPressed(Key.CONFIRM), say=["noncash_needs_face", "choose_method"], state="choose_method"),
        ],
    )


async def _undecided_card_payment(services, db, bank, payment_id: str, timeout_s: float) -> int:
    """张建国 (3100012345) with a card payment through ``bank`` whose answer never came: the
    journal holds its charge intent only. Returns his user id."""
    from assistant import journal
    from assistant.noncash import NonCashPayments

    await bank.ensure_schema()
    services.noncash = NonCashPayments(db, services.billing, {"card": bank}, "K001", timeout_s=timeout_s)
    uid = await user_id_for(db, "13800138000")
    await journal.open_payment(db, payment_id, "3100012345", uid, "card", 12345, "K001")
    await journal.append(db, payment_id, "charge", "intent", 12345, channel="card")
    return uid


async def test_cash_waits_for_an_undecided_card_payment_of_the_same_account(services, db) -> None:
    """A card payment whose answer was lost may have been charged: paying the same bill in
    cash now could pay it twice. The kiosk asks the bank first; no cash is taken while
    the bank cannot say, and when the bank confirms the card charge the bill is paid."""
    from assistant import journal
    from assistant.payments import SandboxConfig, SandboxGateway, SandboxTokenizer

    class LineDown(SandboxGateway):
        """The sandbox bank, its line down for status queries while ``down`` is set."""

        down = True

        async def status(self, reference):
            if self.down:
                raise ConnectionRefusedError(111, "Connection refused")
            return await super().status(reference)

    bank = LineDown(db, "card", SandboxConfig(latency_s=0.0, timeout_s=0.2))
    uid = await _undecided_card_payment(services, db, bank, "P900", timeout_s=0.2)
    token = await SandboxTokenizer(db).tokenize("6222021234567897", "工商银行")
    await bank.charge("P900", token.token, 12345)  # the bank did charge; its answer was lost
    script = [Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=uid), state="arrears"),
              Step(KeyPressed(Key.CONFIRM), not_say=["cash_insert"])]
    dialog = Dialog(services)
    t = await run_dialog(dialog, script)
    assert t.said(-1)[0] == "payment_undecided" and dialog.state != "cash"
    assert (await services.billing.account("3100012345")).arrears_fen == 12345
    bank.down = False  # the bank answers again
    dialog = Dialog(services)
    t = await run_dialog(dialog, script)
    assert t.said(-1)[0] == "payment_earlier_posted" and dialog.state != "cash"
    assert (await services.billing.account("3100012345")).arrears_fen == 0
    assert await journal.unfinished(db, "card") == []


async def test_a_silent_bank_holds_the_cash_screen_only_briefly(services, db) -> None:
    """With an undecided card payment of the account and a bank that does not answer, the
    cash press waits a few seconds (not the whole payment timeout) and then takes no cash."""
    import asyncio

    from assistant.payments import SandboxConfig, SandboxGateway

    class Silent(SandboxGateway):
        async def status(self, reference):
            await asyncio.sleep(120)

    uid = await _undecided_card_payment(services, db, Silent(db, "card", SandboxConfig(latency_s=0.0)), "P901",
                                        timeout_s=60.0)
    dialog = Dialog(services)
    await run_dialog(dialog, [Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=uid), state="arrears")])
    cmds = await asyncio.wait_for(dialog.handle(KeyPressed(Key.CONFIRM)), 20)  # not the 60 s timeout
    said = [c.prompt_id for c in cmds if isinstance(c, Say)]
    assert said[0] == "payment_undecided" and "cash_insert" not in said


async def test_settings_from_the_arrears_screen_and_back(services, db) -> None:
    from assistant.messages import SetTextSize

    dialog = Dialog(services, DialogConfig(slowest_step=-1))
    uid = await user_id_for(db, "13800138000")
    t = await run_dialog(
        dialog,
        [
            Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=uid), state="arrears"),
            Step(ActionChosen("settings"), say=["settings_intro"], show="settings", state="settings"),
            Step(ActionChosen("text_bigger"), say=["text_bigger_ack"], show="settings"),
            Step(ActionChosen("slower"), say=["slower_ack"]),
            Step(ActionChosen("slower"), say=["setting_limit"]),  # limited to one step here
            Step(ActionChosen("louder"), say=["louder_ack"]),
            Step(ActionChosen("done"), say=["greeting_named", "arrears"], show="identified", state="arrears"),
        ],
    )
    cmds = [c for s in t.steps for c in s]
    assert SetTextSize(1.25) in cmds
    assert [c for c in cmds if isinstance(c, SetVoice) and c.rate_step] == [SetVoice(rate_step=-1)]
    # A new customer starts from the defaults again.
    await run_dialog(dialog, [Step(ActionChosen("cancel"), state="idle")], start=False)
    assert dialog.session.rate_step == 0 and dialog.session.text_index == 0


async def test_approximate_amount_is_asked_again_never_guessed(services, db) -> None:
    dialog = Dialog(services)
    uid = await user_id_for(db, "13800138000")
    await run_dialog(
        dialog,
        [
            Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=uid), state="arrears"),
            Step(Utterance("交两三块"), say=["amount_ambiguous"], state="arrears"),
            Step(Utterance("交 一百二十 块 五"), say=["confirm_method"], state="confirm_payment"),
        ],
    )
    assert dialog.session.amount_fen == 12050


async def test_homophone_transcript_still_pays(services, db) -> None:
    """ASR writes 角费 for 缴费: the pinyin fallback still understands "pay"."""
    dialog = Dialog(services)
    uid = await user_id_for(db, "13800138000")
    await run_dialog(
        dialog,
        [
            Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=uid), state="arrears"),
            Step(Utterance("我要角费", confidence=0.9), say=["cash_insert"], state="cash"),
        ],
    )


async def test_long_silence_gets_one_gentle_reprompt(services, db) -> None:
    dialog = Dialog(services)
    uid = await user_id_for(db, "13800138000")
    await run_dialog(
        dialog,
        [
            Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=uid), state="arrears"),
            Step(Timeout("no_speech"), say=["listen_reprompt"], state="arrears"),
            Step(Timeout("no_speech"), say=[], state="arrears"),
            Step(KeyPressed(Key.REPEAT), say=["greeting_named", "arrears"]),
        ],
    )


@pytest.mark.parametrize(
    ("said", "prompt"),
    [
        ("交两三块", "amount_ambiguous"),  # an approximation: re-asked, never guessed
        ("交零元", "amount_ambiguous"),
        ("交负五十元", "not_understood"),
        ("交一百万", "amount_too_large"),  # exact, but more than one payment may be
        ("交123.5元", "confirm_method"),  # Whisper's digits: read back before paying
    ],
)
async def test_odd_amounts_said_at_the_arrears_screen(services, db, said: str, prompt: str) -> None:
    dialog = Dialog(services)
    uid = await user_id_for(db, "13800138000")
    t = await run_dialog(
        dialog,
        [
            Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=uid), state="arrears"),
            Step(Utterance(said, confidence=0.95), say=[prompt]),
        ],
    )
    assert services.cash.begun == []  # nothing was started
    if prompt == "amount_too_large":
        limit = t.says(2)[0].slots["limit"]
        assert limit == Amount(DialogConfig().max_pay_fen)


@pytest.mark.parametrize(
    ("said", "prompts"),
    [
        ("户号三一零零", ["account_digits_wrong", "ask_account"]),  # too short
        ("户号31000123456789", ["account_digits_wrong", "ask_account"]),  # too long, as Whisper writes it
        ("户号abc", ["not_understood"]),  # letters
        ("户号三一零零零一二三四五", ["account_readback"]),
    ],
)
async def test_account_numbers_said_wrong(services, said: str, prompts: list[str]) -> None:
    dialog = Dialog(services)
    await run_dialog(
        dialog,
        [
            Step(FaceSeen(FaceOutcome.UNKNOWN), state="account_entry"),
            Step(Utterance(said, confidence=0.95), say=prompts),
        ],
    )


async def test_saying_just_pay_on_the_method_screen_is_answered(services, db) -> None:
    """On "cash, card or e-wallet?" the customer says only 交费: the kiosk must answer (ask again),
    not stay silent."""
    dialog = Dialog(services)
    uid = await user_id_for(db, "13800138000")
    await run_dialog(
        dialog,
        [
            Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=uid), state="arrears"),
            Step(ActionChosen("other_methods"), say=["choose_method"], state="choose_method"),
            Step(Utterance("交费", confidence=0.95), say=["choose_method"], state="choose_method"),
        ],
    )
    assert services.cash.begun == []


@pytest.mark.parametrize(
    ("face", "voice", "said", "state"),
    [
        (True, True, ["welcome"], "identifying"),
        (True, False, ["welcome_keys"], "identifying"),
        (False, True, ["welcome_no_camera"], "account_entry"),
        (False, False, ["welcome_keys_no_camera"], "account_entry"),
    ],
)
async def test_welcome_fits_camera_and_voice(services, packs, face, voice, said, state) -> None:
    """The opening words promise only what works now: no camera, no "look at the screen"
    (the account number is asked for at once); no recogniser, no "just say" (the keys are)."""
    services.face_available = face
    services.voice_available = voice
    dialog = Dialog(services)
    await run_dialog(dialog, [Step(ActionChosen("pay_bill"), say=said, state=state)])
    for pid in packs.ids():
        text = packs.get(pid).render(said[0], {}).display
        assert ("屏幕" in text) is face, (pid, text)
        assert any(w in text for w in ("说", "讲")) is voice, (pid, text)
        assert "户号" in text, (pid, text)
        assert ("语音" in text) is not voice, (pid, text)  # keys only: it says why


@pytest.mark.parametrize(("voice", "ask"), [(True, "ask_account"), (False, "ask_account_keys")])
async def test_account_number_is_asked_the_way_it_can_be_given(services, packs, voice, ask) -> None:
    """After the welcome, every request for the account number (unknown face, a wrong
    number) asks for speech only when the kiosk can hear."""
    services.voice_available = voice
    dialog = Dialog(services)
    await run_dialog(
        dialog,
        [
            Step(FaceSeen(FaceOutcome.UNKNOWN), say=["face_unknown", ask], state="account_entry"),
            *[Step(KeyPressed(Key(d))) for d in "123"],
            Step(KeyPressed(Key.ENTER), say=["account_digits_wrong", ask], state="account_entry"),
        ],
    )
    for pid in packs.ids():
        text = packs.get(pid).render(ask, {}).display
        assert any(w in text for w in ("说", "讲")) is voice, (pid, text)
        assert "键盘" in text, (pid, text)


async def test_account_number_said_while_the_camera_looks(services) -> None:
    """The welcome invites saying the account number while the camera looks: it is heard."""
    dialog = Dialog(services)
    await run_dialog(
        dialog,
        [
            Step(ActionChosen("pay_bill"), say=["welcome"], state="identifying"),
            Step(Utterance("户号三一零零零一二三四五", confidence=0.95), say=["account_readback"],
                 state="confirm_account", do=[("camera", "stop")]),
        ],
    )
    assert dialog.session.digits == "3100012345"


@pytest.mark.parametrize(
    ("result", "shown"),
    [
        (Result(True, 20000, 7655, 0, 12345), {"inserted": 20000, "change": 7655}),  # all change paid out
        (Result(True, 20000, 7650, 5, 12345), {"inserted": 20000, "change": 7650, "credited": 5}),
        (Result(True, 15000, 0, 2655, 12345), {"inserted": 15000, "change": 0, "credited": 2655}),
    ],
)
async def test_result_screen_shows_a_credit_only_when_one_was_made(services, db, result, shown) -> None:
    dialog = Dialog(services)
    uid = await user_id_for(db, "13800138000")
    await run_dialog(
        dialog,
        [
            Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=uid), state="arrears"),
            Step(KeyPressed(Key.CONFIRM), state="cash"),
            Step(CashEvent(CashEventKind.PAID_IN_FULL, inserted_fen=result.inserted_fen), state="settling"),
        ],
        services.spawner,
    )
    services.cash.result = result
    await run_dialog(dialog, [Step(SPAWNED, show="result", state="result")], services.spawner, start=False)
    fields = dialog.last_show.fields
    money = {k: fields[k].fen for k in ("inserted", "change", "credited") if k in fields}
    assert money == shown
    assert fields["paid"] == Amount(12345)


async def test_card_charged_but_billing_down_prints_the_receipt_it_promises(services, card_customer, db) -> None:
    """The bank took the money but billing did not answer: the customer is told to keep the
    receipt, so one must be printed (with the amount taken), not the session simply ended."""
    from assistant.errors import BillingError
    from assistant.messages import LivenessResult
    from assistant.noncash import NonCashPayments

    class BillingDown(LedgerBilling):
        async def post(self, *args, **kwargs):
            raise BillingError("billing host unreachable")

    services.noncash = NonCashPayments(db, BillingDown(db), services.noncash.gateways, "K001")
    dialog = Dialog(services)
    await run_dialog(
        dialog,
        [
            Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=card_customer), state="arrears"),
            Step(KeyPressed(Key.CONFIRM), state="liveness"),
            Step(LivenessResult(passed=True), say=["paying_noncash"], state="paying"),
            Step(SPAWNED, say=["payment_pending", "receipt_spoken", "receipt_printing"], state="result",
                 do=[("printer", "print")]),
        ],
        services.spawner,
    )
    assert dialog.last_show.fields["paid"] == Amount(12345)


async def test_arrears_above_the_kiosk_limit_are_not_taken_in_one_keypress(services, db) -> None:
    """A shop owing 15 000 元 presses the big key: the kiosk takes at most [dialog] max_pay_fen
    (10 000 元) in one payment, says so and asks before starting, instead of asking for it all."""
    from tests.cashkit import seed_account

    await seed_account(db, "3999999999", {"2024-04": 900_000, "2024-05": 600_000})
    dialog = Dialog(services)
    await run_dialog(
        dialog,
        [
            Step(FaceSeen(FaceOutcome.UNKNOWN), state="account_entry"),
            *[Step(KeyPressed(Key(d))) for d in "3999999999"],
            Step(KeyPressed(Key.ENTER)),
            Step(KeyPressed(Key.CONFIRM), say=["greeting_named", "arrears"], state="arrears"),
            Step(KeyPressed(Key.CONFIRM), say=["pay_limit_part", "confirm_method"], state="confirm_payment"),
            Step(KeyPressed(Key.CONFIRM), say=["cash_insert"], state="cash"),
        ],
    )
    note = [s for s in dialog.last_said if s.prompt_id == "cash_insert"][0]
    assert note.slots["due"] == Amount(1_000_000)
    assert [due for _, _, due in services.cash.begun] == [1_000_000]


SPEAK_WORDS = ("说", "讲")
"""What an invitation to speak says, in every pack (a keypad-only prompt has none)."""


async def test_keypad_only_prompts_never_invite_speaking(services, db, packs) -> None:
    """Without a recogniser the arrears, the "need more time?" warning and the change
    problem name the keys and buttons, never "或者说“交”"."""
    services.voice_available = False
    dialog = Dialog(services)
    uid = await user_id_for(db, "13800138000")
    t = await run_dialog(
        dialog,
        [
            Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=uid), state="arrears"),
            Step(Timeout("idle"), say=["still_there_keys"], state="still_there"),
            Step(KeyPressed(Key.CONFIRM), say=["more_time_granted", "greeting_named", "arrears_keys"],
                 state="arrears"),
            Step(KeyPressed(Key.CONFIRM), say=["cash_insert"], state="cash"),
            Step(CashEvent(CashEventKind.CHANGE_IMPOSSIBLE, value_fen=10000), say=["cash_change_impossible_keys"]),
            Step(CashEvent(CashEventKind.CHANGE_IMPOSSIBLE, value_fen=10000, detail="smaller_note_fen=5000"),
                 say=["cash_change_smaller_keys"]),
        ],
    )
    for pid in packs.ids():
        pack = packs.get(pid)
        for said in t.says():
            text = pack.render(said.prompt_id, said.slots).display
            assert not any(w in text for w in SPEAK_WORDS), (pid, said.prompt_id, text)
    # with a recogniser the same step still says it can be spoken
    services.voice_available = True
    t = await run_dialog(Dialog(services), [Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=uid), state="arrears")])
    assert "arrears" in t.said() and "arrears_keys" not in t.said()


def test_every_keypad_only_wording_names_keys_not_speech(packs) -> None:
    """Each prompt that invites speaking has a keypad-only form, in every pack, that does not."""
    from assistant.locale_cli import example_slots
    from assistant.prompts import KEYPAD_ONLY, keypad_only, spoken_form

    for spoken, keys in KEYPAD_ONLY.items():
        assert keypad_only(spoken) == keys and spoken_form(keys) == spoken
        for pid in packs.ids():
            pack = packs.get(pid)
            said = pack.render(spoken, example_slots(pack, spoken)).display
            typed = pack.render(keys, example_slots(pack, keys)).display
            assert any(w in said for w in SPEAK_WORDS), (pid, spoken, said)
            assert not any(w in typed for w in SPEAK_WORDS), (pid, keys, typed)


@pytest.fixture
async def wallet_customer(services, db):
    """张建国 with the e-wallet as his default method (123.45 元: no liveness needed)."""
    from assistant.noncash import NonCashPayments
    from assistant.payments import SandboxConfig, SandboxGateway

    wallet = SandboxGateway(db, "ewallet", SandboxConfig(latency_s=0.0))
    await wallet.ensure_schema()
    uid = await services.customers.link(
        phone="13800138000", name="张建国", accounts=["3100012345"], default_method="ewallet",
    )
    services.noncash = NonCashPayments(db, services.billing, {"ewallet": wallet}, "K001")
    return uid


async def test_a_spoken_word_never_charges_an_ewallet_without_a_read_back(services, wallet_customer) -> None:
    """A recogniser held to a grammar forces noise onto its words with full confidence (a
    beep, the hall's chatter heard as "对" at 1.0): one such word charged the customer's
    e-wallet at once. Money leaves a wallet or card on one spoken word only after the kiosk
    has said what it is about to take and heard it confirmed."""
    dialog = Dialog(services)
    await run_dialog(
        dialog,
        [
            Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=wallet_customer), state="arrears"),
            Step(Utterance("对", confidence=1.0), say=["confirm_method"], show="confirm", state="confirm_payment"),
            Step(Utterance("对", confidence=1.0), say=["paying_noncash"], state="paying"),
            Step(SPAWNED, say=["payment_success", "receipt_spoken", "receipt_printing"], state="result"),
        ],
        services.spawner,
    )
    assert (await services.billing.account("3100012345")).arrears_fen == 0


async def test_one_keypress_still_pays_by_ewallet(services, wallet_customer) -> None:
    dialog = Dialog(services)
    await run_dialog(
        dialog,
        [
            Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=wallet_customer), state="arrears"),
            Step(KeyPressed(Key.CONFIRM), say=["paying_noncash"], state="paying"),
        ],
        services.spawner,
    )
    for job in services.spawner.pending:
        job.close()


async def test_a_spoken_method_on_the_method_screen_is_read_back_before_a_wallet_is_charged(
    services, wallet_customer
) -> None:
    dialog = Dialog(services)
    await run_dialog(
        dialog,
        [
            Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=wallet_customer), state="arrears"),
            Step(ActionChosen("other_methods"), say=["choose_method"], state="choose_method"),
            Step(Utterance("用电子钱包", confidence=1.0), say=["confirm_method"], state="confirm_payment"),
            Step(Utterance("取消"), state="idle"),
        ],
    )


async def test_cash_after_a_garbled_bank_answer_is_refused_with_a_message(services, db) -> None:
    """Asking the bank about an undecided card payment can fail in a way nobody foresaw (a
    garbled answer): the customer must still hear why no cash is taken, not be left on
    the bill with nothing said."""
    from assistant import journal
    from assistant.noncash import NonCashPayments
    from assistant.payments import SandboxConfig, SandboxGateway

    class Garbled(SandboxGateway):
        """The sandbox bank answering status queries with something unreadable."""

        async def status(self, reference):
            raise ValueError("unreadable answer")

    bank = Garbled(db, "card", SandboxConfig(latency_s=0.0, timeout_s=0.2))
    await bank.ensure_schema()
    services.noncash = NonCashPayments(db, services.billing, {"card": bank}, "K001", timeout_s=0.2)
    uid = await user_id_for(db, "13800138000")
    await journal.open_payment(db, "P901", "3100012345", uid, "card", 12345, "K001")
    await journal.append(db, "P901", "charge", "intent", 12345, channel="card")
    script = [Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=uid), state="arrears"),
              Step(KeyPressed(Key.CONFIRM), not_say=["cash_insert"])]
    dialog = Dialog(services)
    t = await run_dialog(dialog, script)
    assert t.said(-1)[0] == "payment_undecided" and dialog.state != "cash"
    assert await journal.unfinished(db, "card") == ["P901"]
