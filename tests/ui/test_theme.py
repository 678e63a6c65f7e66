"""Contrast arithmetic and the palette: every text colour on every background it is used on."""

from __future__ import annotations

import pytest

from ui.theme import MIN_CONTRAST, PALETTE, contrast_ratio, hex_rgba, relative_luminance, text_size


def test_contrast_matches_wcag_reference_values() -> None:
    black, white = hex_rgba("#000000"), hex_rgba("#FFFFFF")
    assert contrast_ratio(black, white) == pytest.approx(21.0)
    assert contrast_ratio(white, white) == pytest.approx(1.0)
    # WCAG's own example: #777777 on white is just under the AA threshold of 4.5.
    assert contrast_ratio(hex_rgba("#777777"), white) == pytest.approx(4.48, abs=0.01)
    assert relative_luminance(hex_rgba("#808080")) == pytest.approx(0.2159, abs=1e-4)


def test_translucent_text_is_judged_as_drawn() -> None:
    half_black = (0.0, 0.0, 0.0, 0.5)
    white = hex_rgba("#FFFFFF")
    assert contrast_ratio(half_black, white) < contrast_ratio(hex_rgba("#000000"), white)
    assert contrast_ratio(half_black, white) == pytest.approx(contrast_ratio(hex_rgba("#808080"), white), rel=0.02)


PAIRS = [
    ("ink", "page"), ("ink", "caption_bg"), ("ink", "tile_bg"), ("muted", "page"), ("muted", "tile_bg"),
    ("bar_ink", "bar"), ("primary_ink", "primary_bg"), ("primary_ink", "primary_pressed"),
    ("secondary_ink", "secondary_bg"), ("secondary_ink", "secondary_pressed"), ("cancel_ink", "cancel_bg"),
    ("cancel_ink", "cancel_pressed"), ("caption_ink", "caption_bg"), ("alert", "page"), ("good", "page"),
    ("amount", "page"), ("bar", "page"),
]


@pytest.mark.parametrize(("fg", "bg"), PAIRS)
def test_every_palette_pair_meets_seven_to_one(fg: str, bg: str) -> None:
    assert contrast_ratio(getattr(PALETTE, fg), getattr(PALETTE, bg)) >= MIN_CONTRAST


def test_amounts_grow_less_than_body_text_at_the_largest_scale() -> None:
    assert text_size("body", 1.5) == pytest.approx(text_size("body", 1.0) * 1.5)
    assert text_size("amount", 1.0) < text_size("amount", 1.5) < text_size("amount", 1.0) * 1.5
