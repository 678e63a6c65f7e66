"""The presenter for every screen and variant, with the real locale packs (no window needed)."""

from __future__ import annotations

import pytest

from assistant.messages import Amount, Count, Show, frozen_map
from assistant.presenter import TITLES, Presenter
from assistant.prompts import Label, Prompt
from assistant.screens import Action, Screen
from ui.samples import build_samples, present


@pytest.fixture(scope="module")
def models(packs):
    source, ids = packs
    return {s.name: present(s, source, ids) for s in build_samples(pack_ids=ids)}


@pytest.fixture(scope="module")
def zh(packs):
    return packs[0].get("zh-CN")


def test_every_screen_has_a_title_and_a_sample(models) -> None:
    assert set(Screen) <= set(TITLES)
    assert {m.screen for m in models.values()} == set(Screen)
    assert all(m.title for m in models.values())


def test_buttons_are_worded_with_one_primary_first(models, packs) -> None:
    for name, m in models.items():
        pack = packs[0].get(m.pack)
        assert all(b.label.strip() and "{" not in b.label for b in m.buttons), name
        primaries = [b for b in m.buttons if b.primary]
        assert len(primaries) <= 1, name
        if primaries:
            assert m.buttons[0].primary, name
            assert m.labels["key_confirm"] == pack.label(Label.KEY_CONFIRM), name
        else:
            assert "key_confirm" not in m.labels, name
        assert any(b.action == Action.REPEAT for b in m.buttons), name


def test_each_language_button_is_labelled_in_its_own_language(models, packs) -> None:
    source, _ = packs
    zh = [(b.label, b.current) for b in models["welcome"].buttons if b.action == Action.LANGUAGE]
    yue = [(b.label, b.current) for b in models["welcome_yue"].buttons if b.action == Action.LANGUAGE]
    name = {pid: source.get(pid).label(Label.PACK_NAME) for pid in ("zh-CN", "yue", "zh-CN-sichuan")}
    # every language, in the same order, the one in use marked as chosen
    assert zh == [(name["zh-CN"], True), (name["yue"], False), (name["zh-CN-sichuan"], False)]
    assert yue == [(name["zh-CN"], False), (name["yue"], True), (name["zh-CN-sichuan"], False)]


def actions_of(model) -> list[str]:
    return [b.action for b in model.buttons if b.action not in (Action.REPEAT, Action.LANGUAGE)]


def test_variants_choose_their_own_buttons(models, zh) -> None:
    assert actions_of(models["card_scan"]) == [Action.SKIP, Action.CANCEL]
    assert actions_of(models["card_scan_readback"]) == [Action.CONFIRM, Action.DENY, Action.SKIP, Action.CANCEL]
    assert models["card_scan_readback"].buttons[1].label == zh.label(Label.BTN_RESCAN)
    # while the camera looks, staff can type their number instead (the big key too)
    assert actions_of(models["enrol_staff"]) == [Action.ENTER, Action.CANCEL]
    assert models["enrol_staff"].buttons[0].label == zh.label(Label.BTN_STAFF_NUMBER)
    assert actions_of(models["enrol_staff_pin"]) == [Action.ENTER, Action.CLEAR, Action.CANCEL]
    assert actions_of(models["enrol_staff_number"]) == [Action.ENTER, Action.CLEAR, Action.CANCEL]
    assert actions_of(models["enrol_staff_pin_keypad"]) == [Action.ENTER, Action.CLEAR, Action.CANCEL]
    consent = models["enrol_customer_consent"]
    assert [b.label for b in consent.buttons[:2]] == [zh.label(Label.BTN_AGREE), zh.label(Label.BTN_DISAGREE)]
    assert actions_of(models["enrol_customer_phone"]) == [Action.ENTER, Action.CLEAR, Action.CANCEL]
    assert actions_of(models["enrol_customer_more"]) == [Action.CONFIRM, Action.DENY, Action.CANCEL]
    assert actions_of(models["enrol_customer_face"]) == [Action.SKIP, Action.CANCEL]
    assert actions_of(models["identified_paid_up"]) == [Action.DONE]
    assert actions_of(models["result_paying"]) == []
    assert actions_of(models["settings"])[0] == Action.DONE
    assert actions_of(models["cassette"]) == [Action.ENTER, Action.CLEAR, Action.CANCEL]


def test_the_one_key_pay_button_names_the_method_once(models) -> None:
    label = models["identified"].buttons[0].label
    assert "现金" in label and label.count("现金") == 1 and "{" not in label


def test_titles_and_hints_follow_what_happened(models, zh) -> None:
    assert models["result"].title == zh.label(Label.TITLE_RESULT)
    assert models["result_not_paid"].title == zh.label(Label.TITLE_NOT_PAID)
    assert models["result_paying"].title == zh.label(Label.TITLE_PAYING)
    assert models["help"].labels["hint"] == zh.render(Prompt.HELP_CALLED, {"phone": "95598"}).display
    assert "95598" in models["help_no_staff"].labels["hint"]
    assert models["enrol_customer_phone"].labels["digits"] == zh.label(Label.HDR_PHONE)
    assert models["enrol_customer_account"].labels["digits"] == zh.label(Label.HDR_ACCOUNT)
    assert "digits" not in models["enrol_staff_pin"].labels  # a PIN has no heading
    assert "digits" not in models["enrol_staff_pin_keypad"].labels
    assert models["enrol_staff_number"].labels["digits"] == zh.label(Label.HDR_STAFF_NO)
    assert models["enrol_staff_number"].fields["digits"] == "400"  # a staff number is not secret


def test_steps_are_shown_with_their_slots_or_left_to_the_caption(models, zh) -> None:
    assert models["enrol_customer_consent"].fields["step"] == zh.render(Prompt.CONSENT_SCRIPT, {}).display
    assert "左" in models["identify_liveness"].fields["guidance"]  # the direction slot is filled
    # The PIN prompt needs the staff member's name, which the screen does not carry.
    assert "step" not in models["enrol_staff_pin"].fields
    assert models["enrol_staff_pin"].caption and "{" not in models["enrol_staff_pin"].caption
    assert models["card_scan_readback"].fields["digits"] == "6222 0212 3456 7890 128"
    # After a typed staff number the PIN prompt has no name: it is shown as it is said.
    assert models["enrol_staff_pin_keypad"].fields["step"] == zh.render(Prompt.STAFF_PIN_KEYPAD, {}).display


def test_cash_shows_change_as_money_and_warns_when_there_is_none(models, zh) -> None:
    cash = models["cash"]
    assert cash.extra["change_chips"] == ("¥50.00", "¥10.00", "¥5.00", "¥1.00", "¥0.50", "¥0.10")
    assert cash.labels["remaining"] == zh.label(Label.HDR_DUE)
    assert cash.labels["due"] != cash.labels["remaining"]
    assert "hint" not in cash.labels
    assert models["cash_no_change"].labels["hint"] == zh.label(Label.HINT_NO_CHANGE)


def test_a_table_is_rendered_cell_by_cell(models, zh) -> None:
    cassette = models["cassette"]
    rows = cassette.extra["rows"]
    assert rows[0]["denomination"] == "¥100.00" and rows[0]["count_in"] == "40" and rows[2]["count_in"] == ""
    assert cassette.labels["count_out"] == zh.label(Label.HDR_COUNT_OUT)
    assert cassette.fields["unit"] == zh.label(Label.DEVICE_NOTES)


def test_booleans_are_structure_not_text(models) -> None:
    assert models["result_paying"].extra["pending"] is True and "pending" not in models["result_paying"].fields
    assert models["choose_method_enrol"].extra["card"] is True


def test_small_amounts_keep_their_fen(packs) -> None:
    source, _ = packs
    model = Presenter(source.get).present(
        Show(Screen.IDENTIFIED, frozen_map(arrears=Amount(10), account="1", name="x")), source.get("zh-CN")
    )
    assert model.fields["arrears"] == "¥0.10"


def test_welcome_without_a_camera_asks_for_the_key_not_to_stand_in_front(packs) -> None:
    source, ids = packs
    zh = source.get("zh-CN")
    shown = {cam: Presenter(source.get).present(
        Show(Screen.WELCOME, frozen_map(hall_phone="95598", camera=cam)), zh, packs=ids) for cam in (True, False)}
    assert shown[True].labels["hint"] == zh.label(Label.HINT_WELCOME) == "请站到屏幕前，或按确认键开始"
    assert shown[False].labels["hint"] == zh.label(Label.HINT_WELCOME_KEYS) == "请按确认键开始"
    assert "camera" not in shown[False].fields


def test_settings_show_speech_rate_and_volume_in_words_never_a_bare_number(models, zh, packs) -> None:
    """At the default the settings screen showed "说话快慢 0" and "声音大小 0"."""
    default = models["settings_default"]
    assert default.fields["rate"] == default.fields["volume"] == zh.label(Label.SETTING_STANDARD)
    assert default.fields["text_size"] == "100"  # drawn with its % sign
    changed = models["settings"]  # one step slower, two steps louder
    assert changed.fields["rate"] == zh.label(Label.SETTING_SLOWER, {"steps": "1"})
    assert changed.fields["volume"] == zh.label(Label.SETTING_LOUDER, {"steps": "2"})
    source, ids = packs
    presenter = Presenter(source.get)
    for pid in ids:
        pack = source.get(pid)
        for rate, volume in ((0, 0), (-2, -1), (1, 3)):
            show = Show(Screen.SETTINGS, frozen_map(text_size=Count(100), rate=Count(rate), volume=Count(volume)))
            m = presenter.present(show, pack)
            for key in ("rate", "volume"):
                assert not m.fields[key].lstrip("-").isdigit(), (pid, key, m.fields[key])
                assert "{" not in m.fields[key]
