"""The presenter for every screen and variant, through the stand-in packs (no window needed)."""

from __future__ import annotations

import pytest

from assistant.messages import Amount, Show, frozen_map
from assistant.presenter import TITLES, Presenter
from assistant.screens import Action, Screen
from ui.samples import build_samples, present


@pytest.fixture(scope="module")
def models(packs):
    source, ids = packs
    return {s.name: present(s, source, ids) for s in build_samples(pack_ids=ids)}


def test_every_screen_has_a_title_and_a_sample(models) -> None:
    assert set(Screen) <= set(TITLES)
    assert {m.screen for m in models.values()} == set(Screen)


def test_buttons_are_worded_with_one_primary_first(models) -> None:
    for name, m in models.items():
        assert all(b.label.strip() for b in m.buttons), name
        primaries = [b for b in m.buttons if b.primary]
        assert len(primaries) <= 1, name
        if primaries:
            assert m.buttons[0].primary, name
            assert m.labels["key_confirm"] == "按确认键", name
        else:
            assert "key_confirm" not in m.labels, name
        assert any(b.action == Action.REPEAT for b in m.buttons), name


def test_each_language_button_is_labelled_in_its_own_language(models) -> None:
    zh = {b.label for b in models["welcome"].buttons if b.action == Action.LANGUAGE}
    yue = {b.label for b in models["welcome_yue"].buttons if b.action == Action.LANGUAGE}
    assert zh == {"粤语", "四川话"}
    assert yue == {"普通话", "四川话"}


def labels_of(model) -> list[tuple[str, str]]:
    return [(b.action, b.label) for b in model.buttons if b.action not in (Action.REPEAT, Action.LANGUAGE)]


def test_variants_choose_their_own_buttons(models) -> None:
    assert labels_of(models["card_scan"]) == [(Action.CANCEL, "取消"), (Action.CALL_STAFF, "找工作人员")]
    assert labels_of(models["card_scan_readback"]) == [
        (Action.CONFIRM, "确认"), (Action.DENY, "重新扫描"), (Action.CANCEL, "取消")]
    assert labels_of(models["enrol_customer_consent"]) == [(Action.CONFIRM, "同意"), (Action.DENY, "不同意")]
    assert labels_of(models["enrol_customer_phone"])[0] == (Action.ENTER, "确定")
    assert labels_of(models["identified"])[0] == (Action.ONE_KEY_PAY, "一键交费 · 现金")
    assert labels_of(models["identified_paid_up"]) == [(Action.DONE, "完成")]
    assert labels_of(models["settings"])[0] == (Action.DONE, "完成")


def test_titles_and_hints_follow_what_happened(models) -> None:
    assert models["result"].title == "交费成功"
    assert models["result_not_paid"].title == "未交费"
    assert models["help"].labels["hint"] == "工作人员马上就到，请稍候"
    assert models["help_no_staff"].labels["hint"] == "现在没有工作人员，请拨打服务电话"
    assert models["enrol_customer_phone"].labels["digits"] == "手机号"
    assert models["enrol_customer_account"].labels["digits"] == "户号"


def test_cash_shows_change_as_money_and_warns_when_there_is_none(models) -> None:
    cash = models["cash"]
    assert cash.extra["change_chips"] == ("¥50.00", "¥10.00", "¥5.00", "¥1.00", "¥0.50", "¥0.10")
    assert cash.labels["due"] == "应交金额" and cash.labels["remaining"] == "还需"
    assert "hint" not in cash.labels
    assert models["cash_no_change"].labels["hint"] == "现在不能找零，请放入正好的金额"


def test_structured_screens_render_their_rows_and_steps(models) -> None:
    cassette = models["cassette"]
    rows = cassette.extra["rows"]
    assert rows[0]["denomination"] == "¥100.00" and rows[1]["difference"] == "-1" and rows[2]["counted"] == ""
    assert cassette.labels["denomination"] == "面额" and cassette.labels["digits"] == "清点数量"
    staff = models["enrol_staff_card"]
    assert staff.extra["step_names"] == ("同意授权", "采集人脸", "手机号", "户号", "银行卡", "完成")
    assert staff.extra["step"] == "card"
    assert staff.fields["consent"] == "已同意"


def test_small_amounts_keep_their_fen(packs) -> None:
    source, ids = packs
    presenter = Presenter(source.get)
    model = presenter.present(
        Show(Screen.IDENTIFIED, frozen_map(arrears=Amount(10), account="1", name="x")), source.get("zh-CN")
    )
    assert model.fields["arrears"] == "¥0.10"
