"""The screen audit: every screen passes at every text size, and each kind of breach is caught."""

from __future__ import annotations

import pytest

from assistant.config import Config
from ui.samples import build_samples
from ui.theme import MAX_TEXT_SCALE, PALETTE, hex_rgba

pytestmark = pytest.mark.ui


def test_every_screen_meets_the_bar_at_normal_and_largest_text(renderer, packs, tmp_path) -> None:
    from ui.audit import audit_all, table

    source, ids = packs
    samples = build_samples(pack_ids=ids)
    results = audit_all(Config.load(), samples, source, ids, (1.0, MAX_TEXT_SCALE), tmp_path, renderer)
    assert len(results) == 2 * len(samples)
    assert all(r.ok for r in results), table(results)
    for r in results:
        # Real measurements, not defaults: every screen has targets and text, all of it big.
        assert r.targets >= 1 and r.min_target_dp >= 60
        assert r.texts >= 2 and r.min_text_dp >= 18
        assert r.min_contrast >= 7
        assert r.screenshot is not None and r.screenshot.stat().st_size > 5_000
    by_name = {(r.name, r.scale): r for r in results}
    # The largest setting really is larger.
    assert by_name[("identified", MAX_TEXT_SCALE)].min_text_dp > by_name[("identified", 1.0)].min_text_dp


def test_each_kind_of_breach_is_caught(renderer, tmp_path) -> None:
    from kivy.core.window import Window
    from kivy.graphics import Color, Rectangle
    from kivy.uix.floatlayout import FloatLayout
    from kivy.uix.label import Label

    from ui.audit import ScreenAudit, check_backgrounds, font_cmap, measure
    from ui.widgets import BigButton

    root = FloatLayout(size_hint=(None, None), size=Window.size, pos=(0, 0))
    root.bg_color = PALETTE.page

    def add(widget, x, y):
        widget.size_hint = (None, None)
        widget.pos = (x, y)
        root.add_widget(widget)
        if isinstance(widget, Label):
            widget.texture_update()
        return widget

    small = add(BigButton(action="cancel", text="取消", kind="cancel"), 20, 20)
    small.size = (40, 40)
    add(Label(text="小字", font_size=12, color=PALETTE.ink, size=(100, 40)), 200, 20)
    add(Label(text="浅色", font_size=30, color=hex_rgba("#999999"), size=(100, 40)), 400, 20)
    add(Label(text="喇叭🔊", font_size=30, color=PALETTE.ink, size=(200, 40)), 600, 20)
    add(Label(text="重叠甲", font_size=30, color=PALETTE.ink, size=(120, 40)), 200, 300)
    add(Label(text="重叠乙", font_size=30, color=PALETTE.ink, size=(120, 40)), 260, 310)
    add(Label(text="太长了放不下的一行字", font_size=30, color=PALETTE.ink, size=(60, 40)), 200, 500)
    add(Label(text="窗外", font_size=30, color=PALETTE.ink, size=(100, 40)), Window.width - 50, 700)
    audit = ScreenAudit("bad", 1.0)
    measure(root, Window.size, font_cmap(Config.load().ui.font), audit)
    kinds = {(b.kind, b.where.split("(")[1][1:3]) for b in audit.breaches}
    assert ("target", "取消") in kinds  # a 40 dp button
    assert ("text", "小字") in kinds
    assert ("contrast", "浅色") in kinds
    assert ("glyph", "喇叭") in kinds and audit.glyphs_missing == {"🔊"}
    assert ("overlap", "重叠") in kinds
    assert ("clipped", "太长") in kinds
    assert ("clipped", "窗外") in kinds
    assert not any(b.kind == "contrast" and "小字" in b.where for b in audit.breaches)

    # A background that is drawn differently from what the tree declares is caught too.
    with root.canvas.before:
        Color(1, 0, 0, 1)
        Rectangle(pos=(0, 0), size=Window.size)
    png = tmp_path / "bad.png"
    root.export_to_png(str(png))
    texts = [w for w in root.children if isinstance(w, Label) and w.text == "浅色"]
    check_backgrounds(png, texts, root.height, audit)
    assert any(b.kind == "background" and "#FF0000" in b.detail for b in audit.breaches)


def test_a_very_long_caption_leaves_the_keypad_on_the_screen(renderer, packs, tmp_path) -> None:
    # a maintainer's very long prompt (or several said at once) grew the caption band
    # until the keypad and its confirm key were pushed out of the window
    import dataclasses

    from ui.audit import table
    from ui.samples import present

    source, ids = packs
    sample = next(s for s in build_samples(pack_ids=ids) if s.name == "account_entry")
    model = present(sample, source, ids, text_scale=MAX_TEXT_SCALE)
    long = model.caption + "如果您需要帮助，请说“找工作人员”，或者按屏幕上的帮助按钮，工作人员会马上过来帮您办理。" * 5
    result = renderer.audit("account_entry_long_caption", dataclasses.replace(model, caption=long), tmp_path)
    assert result.ok, table([result])
    assert result.targets >= 12  # the ten digits, clear and confirm are all there
