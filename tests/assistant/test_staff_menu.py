"""The staff menu through the dialog: verification, pack reload, out of service, and a
cassette exchange under dual control against the real simulator and serial driver."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant import audit
from assistant.billing import LedgerBilling
from assistant.cassette import CassetteExchange
from assistant.customers import CustomerDirectory
from assistant.dialog import Dialog, DialogServices
from assistant.messages import ActionChosen, FaceOutcome, FaceSeen, Key, KeyPressed, StaffCommand
from assistant.seed import seed
from assistant.staff import StaffDirectory
from tests.cashkit import Harness, make_sim
from tests.dialog_script import Step, run_dialog


def keys(text: str) -> list[Step]:
    return [Step(KeyPressed(Key(c))) for c in text]


async def staff_faces(db) -> dict[str, int]:
    """Give the seeded hall (H001) and bank (B001) staff a face enrolment (a login user)."""
    customers = CustomerDirectory(db)
    users = {}
    for no, phone in (("H001", "13000000001"), ("B001", "13000000002")):
        uid = await customers.link(phone=phone, name=f"staff {no}", accounts=[])
        async with db.transaction() as tx:
            await tx.execute("UPDATE staff SET user_id = ? WHERE staff_no = ?", (uid, no))
        users[no] = uid
    return users


@pytest.fixture
async def base(db, tmp_path, packs, understanding):
    await seed(db, tmp_path)
    users = await staff_faces(db)
    services = DialogServices(
        billing=LedgerBilling(db), customers=CustomerDirectory(db), understanding=understanding,
        staff=StaffDirectory(db), reload_locales=packs.reload, hall_phone="95598",
    )
    return services, users


async def test_staff_menu_reloads_the_packs_and_takes_the_kiosk_out_of_service(base, db) -> None:
    services, users = base
    dialog = Dialog(services)
    await run_dialog(dialog, [
        Step(ActionChosen("services"), say=["staff_verify"], state="enrol_staff"),
        Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=users["H001"]), say=["staff_pin"]),
        *keys("246810"),
        Step(KeyPressed(Key.ENTER), say=["staff_verified", "staff_menu"], show="staff_menu", state="staff_menu"),
        Step(ActionChosen("reload_locales"), say=["locales_reloaded", "staff_menu"]),
        Step(ActionChosen("out_of_service"), say=["out_of_service_set", "staff_menu"]),
        Step(ActionChosen("cancel"), say=["goodbye"], state="idle"),
        # a customer walks up: nothing starts while the kiosk is out of service
        Step(FaceSeen(FaceOutcome.UNKNOWN), say=[], state="idle"),
        Step(KeyPressed(Key.CONFIRM), say=["error_out_of_service"], state="idle"),
    ])
    assert services.out_of_service
    assert [e.detail["purpose"] for e in await audit.entries(db, "staff_verified")] == ["menu"]


async def test_bank_staff_cannot_enrol_customers(base, db) -> None:
    from assistant.enrolment import Enrolments

    services, users = base
    services.enrolments = Enrolments(db, services.billing, services.customers)
    dialog = Dialog(services)
    await run_dialog(dialog, [
        Step(StaffCommand("start_enrolment")),
        Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=users["B001"]), say=["staff_pin"]),
        *keys("135790"),
        Step(KeyPressed(Key.ENTER), say=["staff_refused", "staff_pin"], state="enrol_pin"),
    ])


async def test_cassette_exchange_under_dual_control(base, db, tmp_path: Path) -> None:
    services, users = base
    sim = make_sim(tmp_path, notes={2000: 30, 5000: 10}, coins={100: 20})
    try:
        async with Harness(db, sim) as h:
            services.cash = h.service
            services.cassettes = CassetteExchange(db, h.service.units, services.staff)
            dialog = Dialog(services)
            t = await run_dialog(dialog, [
                Step(StaffCommand("staff_menu")),
                Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=users["H001"])),
                *keys("246810"),
                Step(KeyPressed(Key.ENTER), state="staff_menu"),
                Step(ActionChosen("cash_exchange"), say=["cassette_bank_verify"], state="enrol_staff"),
                # the same hall person cannot be the second one
                Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=users["H001"]), say=["staff_pin"]),
                *keys("246810"),
                Step(KeyPressed(Key.ENTER), say=["cassette_same_person", "cassette_bank_verify"]),
                Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=users["B001"]), say=["staff_pin"]),
                *keys("135790"),
                Step(KeyPressed(Key.ENTER), say=["cassette_choose_unit"], state="cassette_unit"),
                Step(ActionChosen("unit_notes"), show="cassette", state="cassette_count"),
            ])
            said = t.said(len(t.steps) - 1)
            assert said[0] == "cassette_remove" and said[-1] == "cassette_enter_count"
            rows = dialog.session.cassette_rows
            assert [r["denomination"].fen for r in rows] == [10000, 5000, 2000, 1000, 500, 100]
            assert {r["denomination"].fen: r["count_out"].value for r in rows}[2000] == 30
            # the bank loads 40 x 20 and 12 x 50; staff type what they loaded, row by row
            sim.load_cassette("notes", {2000: 40, 5000: 12})
            typed = {10000: "0", 5000: "12", 2000: "40", 1000: "0", 500: "0", 100: "0"}
            steps = []
            for r in rows:
                steps += [*keys(typed[r["denomination"].fen]), Step(KeyPressed(Key.ENTER))]
            t2 = await run_dialog(dialog, steps, start=False)
            assert "cassette_done" in t2.said() and "cassette_mismatch" not in t2.said()
            assert dialog.state == "staff_menu"
            row = await db.fetchone("SELECT state, counts_in FROM cash_exchange")
            assert row["state"] == "closed"
            assert h.service.change_available()[2000] == 40
            actions = [e.action for e in await audit.entries(db)]
            assert "cassette_exchange_start" in actions and "cassette_exchange_end" in actions
            assert await audit.verify(db) is None
            assert not dialog.session.staff_pin  # PINs are not kept after the exchange
    finally:
        sim.stop()


async def test_staff_menu_reads_out_pending_alerts_first(base, db, packs) -> None:
    from datetime import UTC, datetime, timedelta

    from assistant.alerts import open_alerts
    from assistant.config import Config

    services, users = base
    alerts = open_alerts(db, Config.load(), packs)
    alerts.fault("notes:note_jam", True, at=datetime.now(UTC) - timedelta(hours=1))
    await alerts.check()
    services.alerts = alerts
    dialog = Dialog(services)
    t = await run_dialog(dialog, [
        Step(StaffCommand("staff_menu")),
        Step(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=users["H001"])),
        *keys("246810"),
        Step(KeyPressed(Key.ENTER), say=["staff_verified", "alert_fault", "staff_menu"], state="staff_menu"),
    ])
    fault = [s for s in t.says() if s.prompt_id == "alert_fault"][0]
    assert packs.get().render(fault.prompt_id, fault.slots).speech  # renders with its slots


async def test_welcome_screen_keeps_the_hall_phone_when_no_staff_are_present(base) -> None:
    from assistant.messages import Show
    from assistant.prompts import Prompt

    services, _ = base
    services.customer_notice = (Prompt.ALERT_NO_STAFF_NOTICE, {"phone": "95598"})
    dialog = Dialog(services)
    commands = await dialog.start()
    welcome = [c for c in commands if isinstance(c, Show)][-1]
    assert welcome.fields["guidance"] == Prompt.ALERT_NO_STAFF_NOTICE and welcome.fields["phone"] == "95598"


# ----------------------------------------------------------------------------- no camera: keypad


def names_said(t, packs) -> list[str]:
    """Every prompt of the transcript as shown on screen (the packs' own words)."""
    zh = packs.get()
    return [zh.render(s.prompt_id, s.slots).display for s in t.says()]


async def test_without_a_camera_staff_type_their_number_and_pin(base, db, packs) -> None:
    """No camera: 办理业务 asks for the staff number (H001 is typed 4001), then the PIN; the
    right PIN opens the staff menu; nothing asks anyone to look at a camera or names nobody."""
    services, _ = base
    services.face_available = False
    dialog = Dialog(services)
    t = await run_dialog(dialog, [
        Step(ActionChosen("services"), say=["staff_ask_number"], show="enrol_staff", state="enrol_staff_no"),
        *keys("4001"),
        Step(KeyPressed(Key.ENTER), say=["staff_pin_keypad"], state="enrol_pin"),
        *keys("246810"),
        Step(KeyPressed(Key.ENTER), say=["staff_verified", "staff_menu"], show="staff_menu", state="staff_menu"),
    ])
    said = [s.prompt_id for s in t.says()]
    assert "staff_verify" not in said and "staff_pin" not in said
    assert ("camera", "identify") not in [(c.device, c.action) for step in t.steps for c in step
                                          if hasattr(c, "device")]
    shown = names_said(t, packs)
    assert not any(text.startswith("，") for text in shown), shown  # never "，请输入密码"
    verified = await audit.entries(db, "staff_verified")
    assert [(e.detail["purpose"], e.detail["by"]) for e in verified] == [("menu", "keypad")]
    assert dialog.session.staff_member.staff_no == "H001"


async def test_keypad_staff_number_and_pin_fail_three_times_and_lock(base, db) -> None:
    services, _ = base
    services.face_available = False
    dialog = Dialog(services)
    await run_dialog(dialog, [
        Step(ActionChosen("services"), state="enrol_staff_no"),
        # a number nobody has, then the right number with a wrong PIN: refused alike,
        # and both asked again (which of the two was wrong is not told)
        *keys("9999"), Step(KeyPressed(Key.ENTER), say=["staff_pin_keypad"]),
        *keys("246810"), Step(KeyPressed(Key.ENTER), say=["staff_refused", "staff_ask_number"], state="enrol_staff_no"),
        *keys("4001"), Step(KeyPressed(Key.ENTER)),
        *keys("111111"), Step(KeyPressed(Key.ENTER), say=["staff_refused", "staff_ask_number"]),
        *keys("4001"), Step(KeyPressed(Key.ENTER)),
        *keys("222222"), Step(KeyPressed(Key.ENTER), say=["staff_locked", "goodbye"], state="idle"),
        # locked: even the right number and PIN are refused for a while
        Step(ActionChosen("services"), state="enrol_staff_no"),
        *keys("4001"), Step(KeyPressed(Key.ENTER)),
        *keys("246810"), Step(KeyPressed(Key.ENTER), say=["staff_locked", "goodbye"], state="idle"),
    ])
    failed = await audit.entries(db, "staff_verify_failed")
    assert [(e.detail["reason"], e.detail["by"]) for e in failed] == [
        ("unknown_staff_no", "keypad"), ("pin_or_role", "keypad"), ("pin_or_role", "keypad")]
    assert len(await audit.entries(db, "staff_locked")) == 1
    assert len(await audit.entries(db, "staff_verify_locked")) == 1
    assert await audit.verify(db) is None
    assert "246810" not in str([e.detail for e in await audit.entries(db)])


async def test_a_face_that_is_not_staff_falls_back_to_the_staff_number(base, db) -> None:
    services, _ = base
    dialog = Dialog(services)
    await run_dialog(dialog, [
        Step(ActionChosen("services"), say=["staff_verify"], do=[("camera", "identify")], state="enrol_staff"),
        Step(FaceSeen(FaceOutcome.UNKNOWN), say=["staff_face_unknown", "staff_ask_number"],
             do=[("camera", "stop")], state="enrol_staff_no"),
        *keys("4001"), Step(KeyPressed(Key.ENTER), say=["staff_pin_keypad"]),
        *keys("246810"), Step(KeyPressed(Key.ENTER), say=["staff_verified", "staff_menu"], state="staff_menu"),
    ])


async def test_staff_can_type_their_number_while_the_camera_looks(base) -> None:
    services, _ = base
    dialog = Dialog(services)
    await run_dialog(dialog, [
        Step(StaffCommand("staff_menu"), state="enrol_staff"),
        # the first digit typed stops the camera and is the number's first digit
        Step(KeyPressed(Key("4")), do=[("camera", "stop")], show="enrol_staff", state="enrol_staff_no"),
        *keys("001"), Step(KeyPressed(Key.ENTER), say=["staff_pin_keypad"]),
        *keys("246810"), Step(KeyPressed(Key.ENTER), state="staff_menu"),
        Step(ActionChosen("cancel"), state="idle"),
        # or the "type the staff number" button
        Step(StaffCommand("staff_menu"), state="enrol_staff"),
        Step(ActionChosen("enter"), say=["staff_ask_number"], do=[("camera", "stop")], state="enrol_staff_no"),
    ])
    assert dialog.session.digits == ""


async def test_cassette_exchange_without_a_camera(base, db, tmp_path: Path) -> None:
    """Dual control by keypad: the hall member by number and PIN, then the bank member."""
    services, _ = base
    services.face_available = False
    sim = make_sim(tmp_path, notes={2000: 30}, coins={100: 20})
    try:
        async with Harness(db, sim) as h:
            services.cash = h.service
            services.cassettes = CassetteExchange(db, h.service.units, services.staff)
            dialog = Dialog(services)
            await run_dialog(dialog, [
                Step(StaffCommand("staff_menu"), state="enrol_staff_no"),
                *keys("4001"), Step(KeyPressed(Key.ENTER)), *keys("246810"),
                Step(KeyPressed(Key.ENTER), state="staff_menu"),
                Step(ActionChosen("cash_exchange"), say=["cassette_bank_verify", "staff_ask_number"],
                     state="enrol_staff_no"),
                *keys("2001"), Step(KeyPressed(Key.ENTER), say=["staff_pin_keypad"]), *keys("135790"),
                Step(KeyPressed(Key.ENTER), say=["cassette_choose_unit"], state="cassette_unit"),
            ])
            assert {dialog.session.staff_member.staff_no, dialog.session.second_member.staff_no} == {"H001", "B001"}
    finally:
        sim.stop()
