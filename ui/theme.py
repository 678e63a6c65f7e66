"""The look of every screen, and the accessibility bar it is held to.

Sizes are in dp (text in sp, which equals dp at the default font scale), so they
hold at any screen density. Colours are chosen so that every text/background pair
used on a screen has a WCAG contrast ratio of at least 7:1; :func:`contrast_ratio`
is what the audit measures with. This module imports nothing from Kivy, so the
audit's arithmetic and the keypad logic can be tested without a display.
"""

from __future__ import annotations

from dataclasses import dataclass

RGBA = tuple[float, float, float, float]

# ----------------------------------------------------------------------------- the bar (DESIGN §10)
MIN_TARGET_DP = 60.0
"""Smallest touch target, both sides."""
MIN_TEXT_DP = 18.0
"""Smallest text size."""
MIN_CONTRAST = 7.0
"""Smallest contrast ratio between a text and its background (WCAG AAA)."""
MIN_HEADER_GAP_DP = 20.0
"""Least space between the title bar and the first text or button below it (a heading
pressed against the bar reads as part of it)."""
TEXT_SCALES = (1.0, 1.25, 1.5)
"""The customer's text size settings; the audit checks the largest."""
MAX_TEXT_SCALE = TEXT_SCALES[-1]


def hex_rgba(code: str, alpha: float = 1.0) -> RGBA:
    """``#RRGGBB`` as an RGBA tuple in 0..1 (the form Kivy colour properties take)."""
    code = code.lstrip("#")
    r, g, b = (int(code[i : i + 2], 16) / 255.0 for i in (0, 2, 4))
    return (r, g, b, alpha)


def relative_luminance(colour: RGBA | tuple[float, float, float]) -> float:
    """WCAG 2 relative luminance of an sRGB colour given in 0..1."""

    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(float(c)) for c in colour[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def blend(fg: RGBA, bg: RGBA) -> RGBA:
    """``fg`` drawn over an opaque ``bg`` (a translucent text colour is judged as seen)."""
    a = float(fg[3]) if len(fg) > 3 else 1.0
    return (
        fg[0] * a + bg[0] * (1 - a),
        fg[1] * a + bg[1] * (1 - a),
        fg[2] * a + bg[2] * (1 - a),
        1.0,
    )


def contrast_ratio(fg: RGBA, bg: RGBA) -> float:
    """WCAG contrast ratio (1..21) of text colour ``fg`` on opaque background ``bg``."""
    l1 = relative_luminance(blend(fg, bg))
    l2 = relative_luminance(bg)
    hi, lo = max(l1, l2), min(l1, l2)
    return (hi + 0.05) / (lo + 0.05)


# ----------------------------------------------------------------------------- colours


@dataclass(frozen=True)
class Palette:
    """Named colours; every text colour is used only on the backgrounds listed beside it."""

    page: RGBA = hex_rgba("#FFFFFF")
    ink: RGBA = hex_rgba("#111111")
    """Body text on ``page``, ``caption_bg``, ``secondary_bg``, ``tile_bg``."""
    muted: RGBA = hex_rgba("#3A3A3A")
    """Secondary text on ``page`` (11:1)."""
    bar: RGBA = hex_rgba("#0B2545")
    bar_ink: RGBA = hex_rgba("#FFFFFF")
    primary_bg: RGBA = hex_rgba("#003D7A")
    primary_pressed: RGBA = hex_rgba("#00264D")
    primary_ink: RGBA = hex_rgba("#FFFFFF")
    secondary_bg: RGBA = hex_rgba("#E8EEF5")
    secondary_pressed: RGBA = hex_rgba("#C9D6E3")
    secondary_ink: RGBA = hex_rgba("#111111")
    cancel_bg: RGBA = hex_rgba("#FFFFFF")
    cancel_pressed: RGBA = hex_rgba("#E8EEF5")
    cancel_ink: RGBA = hex_rgba("#8B0000")
    """Cancel is also worded, never signalled by colour alone."""
    caption_bg: RGBA = hex_rgba("#FFF3C4")
    caption_ink: RGBA = hex_rgba("#111111")
    alert: RGBA = hex_rgba("#8B0000")
    """Warnings on ``page`` (10:1)."""
    good: RGBA = hex_rgba("#1B5E20")
    """Success marks on ``page`` (7.9:1)."""
    amount: RGBA = hex_rgba("#0B2545")
    """Money on ``page`` (15:1)."""
    tile_bg: RGBA = hex_rgba("#E8EEF5")
    line: RGBA = hex_rgba("#111111")
    focus: RGBA = hex_rgba("#FFB300")
    """The keypad focus ring (drawn with a black inner line so it shows on any fill)."""


PALETTE = Palette()

# ----------------------------------------------------------------------------- sizes (dp / sp)


@dataclass(frozen=True)
class Sizes:
    """Base sizes at text scale 1.0; text sizes are multiplied by the customer's scale."""

    title: float = 40.0
    body: float = 28.0
    caption: float = 26.0
    heading: float = 26.0
    value: float = 36.0
    amount: float = 112.0
    """The arrears and the sum still due: readable from a metre away."""
    big_value: float = 64.0
    button: float = 32.0
    utility_button: float = 26.0
    badge: float = 20.0
    small: float = 22.0
    keypad_key: float = 36.0
    target: float = 88.0
    """Height of an ordinary button (the bar is 60)."""
    primary_target: float = 112.0
    utility_target: float = 72.0
    keypad_target: float = 76.0
    tile_target: float = 150.0
    """A welcome or payment-method tile: the biggest targets of all."""
    padding: float = 20.0
    content_top: float = 24.0
    """Space between the title bar and a screen's content (at least MIN_HEADER_GAP_DP)."""
    spacing: float = 16.0
    focus_ring: float = 6.0


SIZES = Sizes()

# Text roles -> base size (sp); a text widget names its role, never a number.
TEXT_ROLES: dict[str, float] = {
    "title": SIZES.title,
    "body": SIZES.body,
    "caption": SIZES.caption,
    "heading": SIZES.heading,
    "value": SIZES.value,
    "amount": SIZES.amount,
    "big_value": SIZES.big_value,
    "button": SIZES.button,
    "utility": SIZES.utility_button,
    "badge": SIZES.badge,
    "small": SIZES.small,
    "key": SIZES.keypad_key,
}

# Growing text must not shrink targets, and the largest amounts must stay on one line
# at the largest text setting: amounts grow more slowly than body text.
AMOUNT_SCALE_DAMPING = 0.5


def text_size(role: str, scale: float) -> float:
    """The size in sp of text of ``role`` at the customer's text ``scale``."""
    base = TEXT_ROLES[role]
    if role in ("amount", "big_value", "key"):
        return base * (1.0 + (scale - 1.0) * AMOUNT_SCALE_DAMPING)
    return base * scale
