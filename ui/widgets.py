"""The few widgets every screen is built from; they draw, they hold no kiosk logic.

- :class:`KText` is every piece of text: its size comes from a *role* and the
  customer's text scale, never from a number on a screen.
- :class:`BigButton` is every touch target: at least 60 dp both ways, labelled
  with words (colour is never the only signal), a focus ring for the keypad.
- :class:`Panel` is anything with a background; the audit takes each text's
  background from the nearest Panel (or button) around it.

Import this module only after :func:`ui.boot.prepare`.
"""

from __future__ import annotations

from pathlib import Path

from kivy.event import EventDispatcher
from kivy.lang import Builder
from kivy.metrics import dp, sp
from kivy.properties import (
    BooleanProperty,
    ColorProperty,
    ListProperty,
    NumericProperty,
    ObjectProperty,
    OptionProperty,
    StringProperty,
)
from kivy.uix.behaviors import ButtonBehavior
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.gridlayout import GridLayout
from kivy.uix.label import Label
from kivy.uix.widget import Widget

from ui.linebreak import break_lines
from ui.theme import PALETTE, SIZES, text_size

KV_DIR = Path(__file__).resolve().parent


class Style(EventDispatcher):
    """Settings every widget follows: the customer's text scale."""

    scale = NumericProperty(1.0)


STYLE = Style()
"""The one style object; kv rules bind to ``style.scale``."""


def font_sp(role: str, scale: float) -> float:
    """Font size in pixels for a text role at ``scale`` (sp, so it follows the density)."""
    return sp(text_size(role, scale))


class Panel(BoxLayout):
    """A box with an opaque background colour (and optionally a border)."""

    bg_color = ColorProperty(PALETTE.page)
    border_color = ColorProperty([0, 0, 0, 0])
    border_width = NumericProperty(0)


class KText(Label):
    """Text in one of the theme's roles; wraps to its width and grows to fit.

    ``wrap`` False keeps the text on one line and sizes the widget to the text
    (amounts, digits); True wraps to the width given by the layout.
    """

    role = OptionProperty(
        "body",
        options=["title", "body", "caption", "heading", "value", "amount", "big_value", "button",
                 "utility", "badge", "small", "key"],
    )
    wrap = BooleanProperty(True)

    def on_wrap(self, *_: object) -> None:
        self._fit()

    def on_texture_size(self, *_: object) -> None:
        self._fit()

    def _fit(self) -> None:
        # One line of text: the widget is exactly as wide as the text (a wrapped text
        # takes the width its layout gives it, or a fixed width set by the screen).
        if not self.wrap:
            self.size_hint_x = None
            self.width = self.texture_size[0]

    def texture_update(self, *largs: object) -> None:
        """Break lines the Chinese way (never inside a number) before Kivy lays the text out."""
        if self.wrap and self.text and self.text_size[0]:
            pad = self.padding
            width = self.text_size[0] - (pad[0] + pad[2] if len(pad) == 4 else 2 * pad[0]) - 1
            measure = self._label.get_extents
            self._label.text = break_lines(self.text, width, lambda s: measure(s)[0])
        super().texture_update(*largs)


class Hideable(BoxLayout):
    """A box that takes no room and draws nothing while ``shown`` is False."""

    shown = BooleanProperty(True)
    full_height = NumericProperty(0)


class BigButton(ButtonBehavior, BoxLayout):
    """A touch target with a worded caption; reports (action, value) when released.

    The caption, colours and size follow ``kind``: ``primary`` (the one main action,
    with a badge saying the big key presses it), ``secondary``, ``cancel``,
    ``utility`` (repeat, language) or ``key`` (an on-screen keypad digit).
    """

    action = StringProperty("")
    value = StringProperty("")
    text = StringProperty("")
    badge = StringProperty("")
    kind = OptionProperty("secondary", options=["primary", "secondary", "cancel", "utility", "key", "tile"])
    focused = BooleanProperty(False)
    big = BooleanProperty(False)
    """A tile (welcome choices, payment methods): taller, with title-sized words."""
    compact = BooleanProperty(False)
    """A button placed on the keypad: keypad-sized words, no badge."""
    current = BooleanProperty(False)
    """The language button of the language in use: drawn filled and underlined (chosen)."""
    natural_height = NumericProperty(0)
    """The height its words need; the button is at least ``min_height``."""
    bg_color = ColorProperty(PALETTE.secondary_bg)
    ink = ColorProperty(PALETTE.secondary_ink)
    floor_height = NumericProperty(dp(SIZES.target))
    """The least height for this kind of button (set by the kv rule)."""
    min_height = NumericProperty(0)
    """Raised by a grid so that a row of buttons is equally tall."""
    report = ObjectProperty(None, allownone=True)
    """Called with (action, value) on release."""

    def on_kv_post(self, base_widget: Widget) -> None:
        if self.kind == "utility":
            # Repeat and language buttons are as wide as their words, on one line.
            caption = self.ids.caption
            caption.wrap = False
            caption.pos_hint = {"center_x": 0.5}
            self.size_hint_x = None
            caption.bind(texture_size=self._fit_width)
            self._fit_width()

    def _fit_width(self, *_: object) -> None:
        caption = self.ids.caption
        self.width = max(self.floor_height, caption.texture_size[0] + self.padding[0] + self.padding[2])

    def on_release(self) -> None:
        """Report the press (the screen host wires ``report``)."""
        if self.report is not None:
            self.report(self.action, self.value)


class DigitBoxes(BoxLayout):
    """One box per expected digit, filled as the customer types (never hides a digit).

    With ``length`` 0 (the number's length is not known) there is always one empty box
    after the digits, and at least :attr:`MIN_BOXES`.
    """

    MIN_BOXES = 6

    digits = StringProperty("")
    length = NumericProperty(10)
    cells = ListProperty([])

    def on_length(self, *_: object) -> None:
        self._rebuild()

    def on_digits(self, *_: object) -> None:
        if len(self.cells) != self._wanted():
            self._rebuild()
        else:
            self._fill()

    def on_kv_post(self, base_widget: Widget) -> None:
        self._rebuild()

    def _wanted(self) -> int:
        if self.length > 0:
            return max(int(self.length), len(self.digits))
        return max(self.MIN_BOXES, len(self.digits) + 1)

    def _rebuild(self) -> None:
        self.clear_widgets()
        self.cells = []
        for _ in range(self._wanted()):
            cell = DigitCell()
            self.add_widget(cell)
            self.cells.append(cell)
        self._fill()

    def _fill(self) -> None:
        for i, cell in enumerate(self.cells):
            cell.text = self.digits[i] if i < len(self.digits) else ""
            cell.current = i == len(self.digits)


class DigitCell(Panel):
    """One digit box."""

    text = StringProperty("")
    current = BooleanProperty(False)


class FitRow(BoxLayout):
    """A horizontal row as tall as its tallest child (buttons grow with the text size)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.bind(children=self._watch, padding=self._fit)

    def _watch(self, *_: object) -> None:
        for child in self.children:
            child.unbind(height=self._fit)
            child.bind(height=self._fit)
        self._fit()

    def _fit(self, *_: object) -> None:
        tallest = max((c.height for c in self.children), default=0)
        self.height = tallest + self.padding[1] + self.padding[3] if self.children else 0


class FitColumn(BoxLayout):
    """A vertical stack exactly as tall as its children (which set their own heights)."""

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("orientation", "vertical")
        super().__init__(**kwargs)
        self.size_hint_y = None
        self.bind(children=self._watch, padding=self._fit, spacing=self._fit)

    def _watch(self, *_: object) -> None:
        for child in self.children:
            child.unbind(height=self._fit)
            child.bind(height=self._fit)
        self._fit()

    def _fit(self, *_: object) -> None:
        n = len(self.children)
        total = sum(c.height for c in self.children) + self.spacing * max(0, n - 1)
        self.height = total + self.padding[1] + self.padding[3] if n else 0


class EqualGrid(GridLayout):
    """A grid of buttons that are all as tall as the tallest, so the rows line up."""

    base_height = NumericProperty(0)
    """The smallest height of every button (0: each button's own minimum)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.bind(children=self._watch)

    def keys(self) -> list[BigButton]:
        """Every button in the grid, including those inside slot boxes."""
        out = []
        for child in self.children:
            out.extend(c for c in ([child] if isinstance(child, BigButton) else child.children) if isinstance(c, BigButton))
        return out

    def _watch(self, *_: object) -> None:
        for child in self.children:
            for w in [child, *child.children]:
                if isinstance(w, BigButton):
                    w.unbind(natural_height=self._equalize)
                    w.bind(natural_height=self._equalize)
                elif isinstance(w, FitRow):
                    w.unbind(children=self._watch)
                    w.bind(children=self._watch)
        self._equalize()

    def _equalize(self, *_: object) -> None:
        keys = self.keys()
        if not keys:
            return
        tallest = max([self.base_height, *(max(k.natural_height, k.floor_height) for k in keys)])
        for key in keys:
            key.min_height = tallest


class DigitPad(EqualGrid):
    """An on-screen 12-key pad: 1-9, then clear, 0, enter (those two are the screen's
    own buttons, placed in ``slots`` by the screen host)."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.base_height = dp(SIZES.keypad_target)
        self.slots: dict[str, BoxLayout] = {}
        for label in ("1", "2", "3", "4", "5", "6", "7", "8", "9", "clear", "0", "enter"):
            if label.isdigit():
                self.add_widget(BigButton(action="digit", value=label, text=label, kind="key"))
            else:
                slot = FitRow()
                slot.in_pad = True
                self.slots[label] = slot
                self.add_widget(slot)


def load_kv() -> None:
    """Load the widget rules (once)."""
    path = str(KV_DIR / "kiosk.kv")
    if path not in Builder.files:
        Builder.load_file(path)


__all__ = [
    "STYLE",
    "BigButton",
    "DigitBoxes",
    "DigitCell",
    "DigitPad",
    "EqualGrid",
    "FitColumn",
    "FitRow",
    "Hideable",
    "KText",
    "Panel",
    "font_sp",
    "load_kv",
]
