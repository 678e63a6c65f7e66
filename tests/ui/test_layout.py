"""Layout of the customer's screens, measured in the real window: headings clear of the
title bar, the change as large as the arrears, no empty credited line, and the digit
entry hint pointing where the keypad is."""

from __future__ import annotations

import dataclasses

import pytest

from ui.samples import build_samples, present
from ui.theme import MAX_TEXT_SCALE, MIN_HEADER_GAP_DP

pytestmark = pytest.mark.ui


@pytest.fixture(scope="module")
def samples(packs):
    _source, ids = packs
    return {s.name: s for s in build_samples(pack_ids=ids)}


def draw(renderer, packs, sample, scale: float = 1.0):
    source, ids = packs
    renderer.render(present(sample, source, ids, text_scale=scale))
    return renderer.host


def visible_texts(root) -> dict[str, object]:
    """Visible text -> its widget (the first one met), for texts that take room on screen."""
    from kivy.uix.label import Label

    from ui.audit import _walk_visible

    out: dict[str, object] = {}
    for w in _walk_visible(root):
        if isinstance(w, Label) and w.text.strip():
            out.setdefault(w.text, w)
    return out


@pytest.mark.parametrize("scale", [1.0, MAX_TEXT_SCALE])
@pytest.mark.parametrize(("name", "heading"), [("identified", "户名"), ("cash", "还需"), ("result", "已交")])
def test_first_heading_keeps_clear_of_the_title_bar(renderer, packs, samples, name, heading, scale) -> None:
    from kivy.metrics import Metrics

    from ui.audit import ScreenAudit, check_header_gap

    host = draw(renderer, packs, samples[name], scale)
    audit = ScreenAudit(name, scale)
    gap = check_header_gap(host.ids.top, host.ids.content, audit)
    assert gap >= MIN_HEADER_GAP_DP, f"{name}: {heading} is {gap:.0f} dp below the title bar"
    assert audit.ok, audit.breaches
    label = visible_texts(host.ids.content)[heading]
    bar_bottom = host.ids.top.to_window(0, host.ids.top.y)[1]
    label_top = label.to_window(0, label.top)[1]
    assert (bar_bottom - label_top) / Metrics.density >= MIN_HEADER_GAP_DP


@pytest.mark.parametrize("scale", [1.0, MAX_TEXT_SCALE])
def test_change_is_as_large_as_the_arrears_and_credit_shown_only_when_made(renderer, packs, samples, scale) -> None:
    from ui.widgets import font_sp

    arrears = visible_texts(draw(renderer, packs, samples["identified"], scale))["¥123.45"]
    arrears_size = arrears.font_size

    with_credit = visible_texts(draw(renderer, packs, samples["result"], scale))
    assert with_credit["¥76.50"].font_size >= arrears_size  # the change
    assert with_credit["¥123.45"].font_size < arrears_size  # paid: large, but the change is the largest
    assert "存入账户" in with_credit
    assert with_credit["¥0.05"].font_size >= font_sp("big_value", scale)  # a credit is shown large

    no_credit = visible_texts(draw(renderer, packs, samples["result_no_credit"], scale))
    assert no_credit["¥76.55"].font_size >= arrears_size
    assert "存入账户" not in no_credit and "¥0.00" not in no_credit

    card = visible_texts(draw(renderer, packs, samples["result_card"], scale))
    assert "找零" not in card and "已收" not in card and "存入账户" not in card
    assert "¥123.45" in card


@pytest.mark.parametrize(("pack", "word"), [("zh-CN", "右"), ("yue", "右")])
def test_digit_hint_points_at_the_keypad_on_the_right(renderer, packs, samples, pack, word) -> None:
    sample = dataclasses.replace(samples["account_entry_typing"], pack=pack)
    host = draw(renderer, packs, sample)
    from ui.widgets import DigitBoxes, DigitPad

    view = host.ids.content.children[0]
    pad = next(w for w in view.walk() if isinstance(w, DigitPad))
    boxes = next(w for w in view.walk() if isinstance(w, DigitBoxes))
    pad_left = pad.to_window(pad.x, pad.y)[0]
    boxes_right = boxes.to_window(boxes.right, boxes.y)[0]
    assert pad_left > boxes_right  # the on-screen keypad is beside the digits, on the right
    pad_top = pad.to_window(pad.x, pad.top)[1]
    assert pad_top > boxes.to_window(boxes.x, boxes.y)[1]  # and not below them
    hint = packs[0].get(pack).label("hint_digits")
    assert hint in visible_texts(host)
    assert word in hint and "下" not in hint


def test_audit_catches_a_heading_pressed_against_the_bar(renderer) -> None:
    from kivy.core.window import Window
    from kivy.metrics import dp
    from kivy.uix.floatlayout import FloatLayout
    from kivy.uix.label import Label

    from ui.audit import ScreenAudit, check_header_gap

    root = FloatLayout(size_hint=(None, None), size=Window.size, pos=(0, 0))
    bar = FloatLayout(size_hint=(None, None), size=(Window.width, dp(96)), pos=(0, Window.height - dp(96)))
    content = FloatLayout(size_hint=(None, None), size=(Window.width, Window.height - dp(96)), pos=(0, 0))
    root.add_widget(bar)
    root.add_widget(content)
    heading = Label(text="已交", font_size=dp(26), size_hint=(None, None), size=(dp(80), dp(36)))
    heading.pos = (dp(32), bar.y - dp(5) - heading.height)
    content.add_widget(heading)
    audit = ScreenAudit("pressed", 1.0)
    assert round(check_header_gap(bar, content, audit)) == 5
    assert [(b.kind, b.detail) for b in audit.breaches] == [("spacing", "5 dp below the title bar")]
    heading.y = bar.y - dp(24) - heading.height
    clear = ScreenAudit("clear", 1.0)
    assert round(check_header_gap(bar, content, clear)) == 24 and clear.ok


LANGUAGE_SCREENS = ("welcome", "identify", "identified", "cash", "settings", "enrol_staff", "enrol_staff_number",
                    "staff_menu", "result", "account_entry")


@pytest.mark.parametrize("scale", [1.0, MAX_TEXT_SCALE])
def test_language_buttons_keep_their_place_on_every_screen_and_in_every_language(renderer, packs, samples, scale) -> None:
    """Each language's button is at the same spot whatever the screen and whatever language is
    in use (the one in use stays, marked as chosen), so a customer finds it where it was."""
    source, ids = packs
    assert len(ids) > 1
    places: dict[str, set[tuple[int, int]]] = {pid: set() for pid in ids}
    for name in LANGUAGE_SCREENS:
        for pack in ids:
            sample = dataclasses.replace(samples[name], pack=pack)
            host = draw(renderer, packs, sample, scale)
            buttons = [w for w in host.buttons if w.action == "language"]
            assert [w.value for w in buttons] == list(ids), (name, pack)
            assert [w.value for w in buttons if w.current] == [pack], (name, pack)
            for w in buttons:
                x, top = w.to_window(w.x, w.top)
                places[w.value].add((round(x), round(top)))
    moved = {pid: spots for pid, spots in places.items() if len(spots) != 1}
    assert not moved, f"language buttons moved between screens or languages: {moved}"
