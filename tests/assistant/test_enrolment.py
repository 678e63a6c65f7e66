"""Staff-guided enrolment: staff face + PIN, consent, phone, accounts, face, card, method, one commit."""

from __future__ import annotations

import numpy as np
import pytest

from assistant import audit
from assistant.billing import LedgerBilling
from assistant.customers import CustomerDirectory
from assistant.dialog import Dialog, DialogServices
from assistant.enrolment import Enrolments, FaceEnroller
from assistant.messages import (
    ActionChosen,
    CardRead,
    FaceCaptured,
    FaceOutcome,
    FaceSeen,
    Key,
    KeyPressed,
    SecretDigits,
    StaffCommand,
    Timeout,
)
from assistant.payments import SandboxGateway, SandboxTokenizer
from assistant.seed import seed
from assistant.staff import StaffDirectory
from tests.dialog_script import Step, run_dialog

CARD = "6222021234567897"


class PlainGallery(FaceEnroller):
    """Stores embeddings unencrypted (the encrypted gallery has its own tests)."""

    async def enrol_in(self, tx, user_id, embeddings):
        for e in embeddings:
            await tx.execute(
                "INSERT INTO face_embedding(user_id, model_id, embedding) VALUES (?, 'test', ?)",
                (user_id, np.asarray(e, dtype=np.float32).tobytes()),
            )
        return len(embeddings)


@pytest.fixture
async def kiosk(db, tmp_path, understanding):
    await seed(db, tmp_path)
    customers = CustomerDirectory(db)
    staff_uid = await customers.link(phone="13000000001", name="周敏", accounts=[])
    async with db.transaction() as tx:
        await tx.execute("UPDATE staff SET user_id = ? WHERE staff_no = 'H001'", (staff_uid,))
    await SandboxGateway(db, "card").ensure_schema()
    billing = LedgerBilling(db)
    enrol = Enrolments(db, billing, customers, PlainGallery(), SandboxTokenizer(db))
    svc = DialogServices(
        billing=billing, customers=customers, understanding=understanding,
        staff=StaffDirectory(db), enrolments=enrol, hall_phone="95598",
    )
    return Dialog(svc), enrol, staff_uid


def keys(text: str) -> list[Step]:
    return [Step(KeyPressed(Key(c))) for c in text]


def face_vec(seed_: int) -> np.ndarray:
    rng = np.random.default_rng(seed_)
    v = rng.normal(size=512).astype(np.float32)
    return v / np.linalg.norm(v)


async def test_whole_enrolment_links_four_accounts_in_one_commit(kiosk, db) -> None:
    dialog, enrol, staff_uid = kiosk
    person = face_vec(1)
    t = await run_dialog(dialog, [
        Step(StaffCommand("start_enrolment"), say=["staff_verify"], show="enrol_staff",
             do=[("camera", "identify")], state="enrol_staff"),
        Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=staff_uid), say=["staff_pin"], state="enrol_pin"),
        *keys("246810"),
        Step(KeyPressed(Key.ENTER), say=["staff_verified", "consent_script"],
             show="enrol_customer", state="enrol_consent"),
        Step(KeyPressed(Key.CONFIRM), say=["consent_recorded", "enrol_ask_phone"], state="enrol_phone"),
        *keys("13512345678"),
        Step(KeyPressed(Key.ENTER), say=["enrol_phone_readback"], state="enrol_phone_confirm"),
        Step(KeyPressed(Key.CONFIRM), say=["enrol_ask_account"], state="enrol_account"),
        *keys("0300045678"),
        Step(KeyPressed(Key.ENTER), say=["enrol_account_readback"], state="enrol_account_confirm"),
        Step(KeyPressed(Key.CONFIRM), say=["enrol_ask_more_accounts"], state="enrol_more"),
        Step(ActionChosen("deny"), say=["enrol_face_capture"], do=[("camera", "capture")], state="enrol_face"),
        Step(FaceSeen(FaceOutcome.TOO_SMALL), say=["face_too_small"]),
    ])
    for i in range(3):
        enrol.add_face_frame(person + np.float32(0.01) * face_vec(10 + i))
    await run_dialog(dialog, [
        Step(FaceCaptured(1), say=["enrol_face_progress"]),
        Step(FaceCaptured(3), say=["enrol_face_done", "enrol_ask_card"], do=[("card", "scan")],
             state="enrol_card_scan"),
        Step(CardRead(ok=False, problem="card_check_failed"), say=["card_check_failed", "card_scan"]),
    ], start=False)
    enrol.hold_card(CARD, "工商银行")
    t2 = await run_dialog(dialog, [
        Step(CardRead(ok=True, last4="7897", issuer="工商银行"), say=["card_readback"], show="card_scan",
             state="enrol_card_confirm"),
        Step(KeyPressed(Key.CONFIRM), say=["card_bound", "enrol_ask_default_method"], state="enrol_method"),
        Step(ActionChosen("method_card"), say=["enrol_done", "goodbye"], state="idle"),
    ], start=False)
    readback = [s for s in t2.says() if s.prompt_id == "card_readback"][0]
    assert readback.slots["digits"] == SecretDigits(CARD)
    assert CARD not in repr(readback)  # never in a log line

    c = await CustomerDirectory(db).by_phone("13512345678")
    assert c is not None
    assert c.accounts == ("0300045678",) and c.name == "刘桂兰"  # holder name from billing
    assert c.default_method == "card" and c.card_last4 == "7897" and c.card_token.startswith("tok_")
    consent = await db.fetchone("SELECT granted, staff_id FROM consent WHERE user_id = ?", (c.user_id,))
    assert consent["granted"] == 1 and consent["staff_id"] is not None
    n = await db.fetchone("SELECT count(*) FROM face_embedding WHERE user_id = ?", (c.user_id,))
    assert n[0] == 3
    rows = []
    for tbl in ("quickpay_account", "audit_log", "journal", "sandbox_card"):
        rows += [str(tuple(r)) for r in await db.fetchall(f"SELECT * FROM {tbl}")]
    dump = "\n".join(rows)
    assert CARD not in dump
    assert [e.action for e in await audit.entries(db)][-1] == "customer_enrolled"
    assert t.said()  # the script ran


async def test_consent_no_means_no_face_but_enrolment_continues(kiosk, db) -> None:
    dialog, enrol, staff_uid = kiosk
    await run_dialog(dialog, [
        Step(StaffCommand("start_enrolment")),
        Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=staff_uid)),
        *keys("246810"),
        Step(KeyPressed(Key.ENTER), state="enrol_consent"),
        Step(ActionChosen("deny"), say=["consent_declined", "enrol_ask_phone"]),
        *keys("13512345678"), Step(KeyPressed(Key.ENTER)), Step(KeyPressed(Key.CONFIRM)),
        *keys("0300045678"), Step(KeyPressed(Key.ENTER)), Step(KeyPressed(Key.CONFIRM)),
        # no face step without consent: straight to the card offer
        Step(ActionChosen("deny"), say=["enrol_ask_card"], state="enrol_card_scan"),
        Step(ActionChosen("deny"), say=["enrol_ask_default_method"]),
        Step(ActionChosen("method_cash"), say=["enrol_done", "goodbye"]),
    ])
    c = await CustomerDirectory(db).by_phone("13512345678")
    consent = await db.fetchone("SELECT granted FROM consent WHERE user_id = ?", (c.user_id,))
    assert consent["granted"] == 0
    assert (await db.fetchone("SELECT count(*) FROM face_embedding"))[0] == 0


async def test_leaving_midway_keeps_nothing(kiosk, db) -> None:
    dialog, enrol, staff_uid = kiosk
    before = (await db.fetchone("SELECT count(*) FROM login_user"))[0]
    await run_dialog(dialog, [
        Step(StaffCommand("start_enrolment")),
        Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=staff_uid)),
        *keys("246810"), Step(KeyPressed(Key.ENTER)),
        Step(KeyPressed(Key.CONFIRM)),
        *keys("13512345678"), Step(KeyPressed(Key.ENTER)), Step(KeyPressed(Key.CONFIRM)),
        *keys("0300045678"), Step(KeyPressed(Key.ENTER)), Step(KeyPressed(Key.CONFIRM)),
        Step(Timeout("idle"), say=["still_there"]),
        Step(Timeout("grace"), say=["timed_out", "enrol_cancelled", "goodbye"], state="idle"),
    ])
    assert enrol.draft is None
    assert (await db.fetchone("SELECT count(*) FROM login_user"))[0] == before
    assert (await db.fetchone("SELECT user_id FROM electricity_account WHERE account_no='0300045678'")) is None


async def test_staff_verification_fails_three_times_and_locks(kiosk, db) -> None:
    dialog, _, staff_uid = kiosk
    await run_dialog(dialog, [
        Step(StaffCommand("start_enrolment")),
        Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=staff_uid), state="enrol_pin"),
        *keys("111111"), Step(KeyPressed(Key.ENTER), say=["staff_refused", "staff_pin"]),
        *keys("222222"), Step(KeyPressed(Key.ENTER), say=["staff_refused", "staff_pin"]),
        *keys("333333"), Step(KeyPressed(Key.ENTER), say=["staff_locked", "goodbye"], state="idle"),
    ])
    fails = await audit.entries(db, "staff_verify_failed")
    assert len(fails) == 3 and await audit.verify(db) is None


async def test_customer_face_is_not_staff(kiosk, db) -> None:
    """A customer's face does not verify anyone: the staff number is asked instead, and a
    PIN typed for a number nobody has fails and is audited."""
    dialog, _, _ = kiosk
    cust = await CustomerDirectory(db).by_phone("13800138000")
    await run_dialog(dialog, [
        Step(StaffCommand("start_enrolment")),
        Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=cust.user_id),
             say=["staff_face_unknown", "staff_ask_number"], do=[("camera", "stop")], state="enrol_staff_no"),
        *keys("1234"),
        Step(KeyPressed(Key.ENTER), say=["staff_pin_keypad"], state="enrol_pin"),
        *keys("246810"),
        Step(KeyPressed(Key.ENTER), say=["staff_refused", "staff_ask_number"], state="enrol_staff_no"),
    ])
    failed = (await audit.entries(db, "staff_verify_failed"))[-1]
    assert failed.staff_id is None and failed.detail["reason"] == "unknown_staff_no"


async def test_account_of_another_customer_is_refused(kiosk) -> None:
    dialog, _, staff_uid = kiosk
    await run_dialog(dialog, [
        Step(StaffCommand("start_enrolment")),
        Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=staff_uid)),
        *keys("246810"), Step(KeyPressed(Key.ENTER)), Step(KeyPressed(Key.CONFIRM)),
        *keys("13512345678"), Step(KeyPressed(Key.ENTER)), Step(KeyPressed(Key.CONFIRM)),
        *keys("3100012345"),  # already 张建国's
        Step(KeyPressed(Key.ENTER), say=["enrol_account_taken", "enrol_ask_account"], state="enrol_account"),
        *keys("9999999999"),
        Step(KeyPressed(Key.ENTER), say=["account_not_found", "enrol_ask_account"]),
    ])


async def test_phone_number_can_be_spoken(kiosk) -> None:
    dialog, enrol, staff_uid = kiosk
    from assistant.messages import Utterance

    await run_dialog(dialog, [
        Step(StaffCommand("start_enrolment")),
        Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=staff_uid)),
        *keys("246810"), Step(KeyPressed(Key.ENTER)),
        # a spoken yes is confirmed by a key: noise can be heard as "同意"
        Step(Utterance("同意", confidence=1.0), say=["consent_confirm_key"], state="enrol_consent"),
        Step(KeyPressed(Key.CONFIRM), say=["consent_recorded", "enrol_ask_phone"], state="enrol_phone"),
        Step(Utterance("我的手机号是幺三五幺二三四五六七八"), say=["enrol_phone_readback"],
             state="enrol_phone_confirm"),
    ])
    assert dialog.session.pending_digits == "13512345678"


async def test_phone_of_another_customer_is_refused_and_nothing_merges(kiosk, db) -> None:
    """Typing a phone number already registered (张建国's) must not fold the new person's face,
    card and accounts into 张建国's record: the number is refused and asked for again."""
    dialog, enrol, staff_uid = kiosk
    before = await CustomerDirectory(db).by_phone("13800138000")
    assert before is not None
    await run_dialog(dialog, [
        Step(StaffCommand("start_enrolment")),
        Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=staff_uid)),
        *keys("246810"), Step(KeyPressed(Key.ENTER)), Step(KeyPressed(Key.CONFIRM)),
        *keys("13800138000"),
        Step(KeyPressed(Key.ENTER), say=["enrol_phone_taken", "enrol_ask_phone"], state="enrol_phone"),
        # the staff member's own login number is not free either
        *keys("13000000001"),
        Step(KeyPressed(Key.ENTER), say=["enrol_phone_taken", "enrol_ask_phone"], state="enrol_phone"),
        *keys("13512345678"),
        Step(KeyPressed(Key.ENTER), say=["enrol_phone_readback"], state="enrol_phone_confirm"),
    ])
    after = await CustomerDirectory(db).by_phone("13800138000")
    assert after == before


async def test_keypad_only_enrolment_asks_for_keys_not_words(kiosk, db, packs) -> None:
    """Without a recogniser the customer's steps (consent, phone, account, another account,
    the card) name the buttons and keys, on screen too, and keep their buttons."""
    from assistant.messages import Show
    from assistant.presenter import Presenter

    dialog, _, staff_uid = kiosk
    dialog.services.voice_available = False
    t = await run_dialog(dialog, [
        Step(StaffCommand("start_enrolment")),
        Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=staff_uid)),
        *keys("246810"),
        Step(KeyPressed(Key.ENTER), say=["staff_verified", "consent_script_keys"], state="enrol_consent"),
        Step(KeyPressed(Key.CONFIRM), say=["consent_recorded", "enrol_ask_phone_keys"], state="enrol_phone"),
        *keys("135"),
        Step(KeyPressed(Key.ENTER), say=["enrol_phone_invalid", "enrol_ask_phone_keys"]),
        *keys("13512345678"), Step(KeyPressed(Key.ENTER)),
        Step(KeyPressed(Key.CONFIRM), say=["enrol_ask_account_keys"], state="enrol_account"),
        *keys("0300045678"), Step(KeyPressed(Key.ENTER)),
        Step(KeyPressed(Key.CONFIRM), say=["enrol_ask_more_accounts_keys"], state="enrol_more"),
        Step(ActionChosen("deny"), say=["enrol_face_capture"], state="enrol_face"),
        Step(ActionChosen("skip"), say=["enrol_step_skipped", "enrol_ask_card_keys"], state="enrol_card_scan"),
    ])
    zh = packs.get()
    presenter = Presenter(packs.get)
    for step in t.steps:
        for c in step:
            if isinstance(c, Show) and "step" in c.fields:
                model = presenter.present(c, zh)
                assert not any(w in model.fields.get("step", "") for w in ("说", "讲")), model.fields
                if c.fields["step"] == "consent_script_keys":
                    assert [b.action for b in model.buttons[:2]] == ["confirm", "deny"]  # 同意 / 不同意
                if c.fields["step"] == "enrol_ask_phone_keys":
                    assert model.labels["digits"] == zh.label("hdr_phone")
    for said in t.says():
        text = zh.render(said.prompt_id, said.slots).display
        assert not any(w in text for w in ("说", "讲")), (said.prompt_id, text)


async def test_cancel_after_a_spoken_yes_declines_as_the_customer_was_told(kiosk) -> None:
    """After a spoken yes the kiosk says "press confirm to confirm; if you do not agree press
    cancel". Pressing cancel then must keep no face and go on with the enrolment, not throw
    away the whole enrolment the staff member started."""
    dialog, enrol, staff_uid = kiosk
    from assistant.messages import Utterance

    await run_dialog(dialog, [
        Step(StaffCommand("start_enrolment")),
        Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=staff_uid)),
        *keys("246810"), Step(KeyPressed(Key.ENTER)),
        Step(Utterance("同意", confidence=1.0), say=["consent_confirm_key"], state="enrol_consent"),
        Step(KeyPressed(Key.CANCEL), say=["consent_declined", "enrol_ask_phone"], state="enrol_phone"),
    ])
    assert dialog._draft().face_consent is False


async def test_cancel_before_any_answer_still_cancels_the_enrolment(kiosk) -> None:
    dialog, enrol, staff_uid = kiosk
    await run_dialog(dialog, [
        Step(StaffCommand("start_enrolment")),
        Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=staff_uid)),
        *keys("246810"), Step(KeyPressed(Key.ENTER), state="enrol_consent"),
        Step(KeyPressed(Key.CANCEL), say=["enrol_cancelled", "goodbye"]),
    ])
