"""One view per screen: the content between the title bar and the action bar.

Each view's layout is its own ``ui/screens/<screen>.kv``; the Python class only
holds the model's fields, labels and extra data as Kivy properties (so the kv
rules redraw when they change) and says where some of the screen's buttons sit
(``slot_<action>`` ids in the kv, or the ``tiles`` row). Nothing here decides
anything about money or the flow: every string comes from the ScreenModel.

Import this module only after :func:`ui.boot.prepare`.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from kivy.clock import Clock
from kivy.lang import Builder
from kivy.properties import (
    BooleanProperty,
    ColorProperty,
    DictProperty,
    NumericProperty,
    StringProperty,
)
from kivy.uix.boxlayout import BoxLayout
from kivy.uix.widget import Widget

from assistant.screens import Action, Button, Screen, ScreenModel
from ui.theme import PALETTE
from ui.widgets import Hideable, KText, Panel

SCREENS_DIR = Path(__file__).resolve().parent / "screens"


class FieldRow(Hideable):
    """A heading and its value on one line; takes no room when the value is empty."""

    heading = StringProperty("")
    value = StringProperty("")
    value_role = StringProperty("value")


class Pair(BoxLayout):
    """A heading and its value side by side, as wide as their words (a compact FieldRow)."""

    heading = StringProperty("")
    value = StringProperty("")


class Chip(Panel):
    """A short framed value (a change denomination)."""

    text = StringProperty("")


class TableCell(KText):
    """One cell of the cassette table; the row being counted is shaded, framed and bold."""

    active = BooleanProperty(False)
    bg_color = ColorProperty(PALETTE.page)


def _shown(widget: Widget) -> bool:
    """False when ``widget`` sits in a hidden part of the view."""
    w = widget
    while w is not None and w.parent is not w:
        if isinstance(w, Hideable) and not w.shown:
            return False
        w = w.parent
    return True


class ScreenView(BoxLayout):
    """Base of every screen's content."""

    screen: ClassVar[Screen]
    tile_actions: ClassVar[frozenset[str]] = frozenset()
    """Actions whose buttons sit in the view's ``tiles`` row instead of the action bar."""
    big_tiles: ClassVar[bool] = True
    """Tiles are the biggest targets with title-sized words (customer choices)."""

    title = StringProperty("")
    caption = StringProperty("")
    fields = DictProperty({})
    labels = DictProperty({})
    extra = DictProperty({})

    def update(self, model: ScreenModel) -> None:
        """Show ``model`` (only assignments: the kv rules do the drawing)."""
        self.title = model.title
        self.fields = dict(model.fields)
        self.labels = dict(model.labels)
        self.extra = dict(model.extra)

    def slot_for(self, button: Button) -> Widget | None:
        """Where this view wants ``button`` (None: the frame's action bar)."""
        slot = self.ids.get(f"slot_{button.action}")
        if slot is not None:
            return slot
        pad = self.ids.get("pad")
        if pad is not None and button.action in pad.slots and _shown(pad):
            return pad.slots[button.action]
        if button.action in self.tile_actions:
            return self.ids.get("tiles")
        return None

    def on_shown(self) -> None:
        """Called when the view comes on screen (after ``update``)."""

    def on_hidden(self) -> None:
        """Called when another screen replaces this one."""


class WelcomeView(ScreenView):
    screen = Screen.WELCOME
    tile_actions = frozenset({Action.PAY_BILL, Action.SERVICES, Action.CALL_STAFF})


class IdentifyView(ScreenView):
    screen = Screen.IDENTIFY


class AccountEntryView(ScreenView):
    screen = Screen.ACCOUNT_ENTRY


class ConfirmView(ScreenView):
    screen = Screen.CONFIRM


class IdentifiedView(ScreenView):
    screen = Screen.IDENTIFIED


class ChooseMethodView(ScreenView):
    screen = Screen.CHOOSE_METHOD
    tile_actions = frozenset({Action.METHOD_CASH, Action.METHOD_CARD, Action.METHOD_EWALLET})


class CashView(ScreenView):
    screen = Screen.CASH

    def update(self, model: ScreenModel) -> None:
        super().update(model)
        chips = self.ids.chips
        texts = tuple(model.extra.get("change_chips", ()))
        if tuple(c.text for c in reversed(chips.children)) != texts:
            chips.clear_widgets()
            for text in texts:
                chips.add_widget(Chip(text=text))


class ResultView(ScreenView):
    screen = Screen.RESULT


class HelpView(ScreenView):
    screen = Screen.HELP


class FaultView(ScreenView):
    screen = Screen.FAULT


class StillThereView(ScreenView):
    """The timeout warning; the seconds left count down on screen as they are spoken."""

    screen = Screen.STILL_THERE
    remaining = NumericProperty(0)

    def update(self, model: ScreenModel) -> None:
        super().update(model)
        text = model.fields.get("seconds", "")
        self.remaining = int(text) if text.isdigit() else 0

    def on_shown(self) -> None:
        Clock.unschedule(self._tick)
        Clock.schedule_interval(self._tick, 1.0)

    def on_hidden(self) -> None:
        Clock.unschedule(self._tick)

    def _tick(self, _dt: float) -> None:
        if self.remaining > 0:
            self.remaining -= 1


class CardScanView(ScreenView):
    screen = Screen.CARD_SCAN


class EnrolStaffView(ScreenView):
    screen = Screen.ENROL_STAFF


class EnrolCustomerView(ScreenView):
    screen = Screen.ENROL_CUSTOMER


class SettingsView(ScreenView):
    screen = Screen.SETTINGS


class StaffMenuView(ScreenView):
    screen = Screen.STAFF_MENU
    big_tiles = False
    tile_actions = frozenset(
        {
            Action.START_ENROLMENT,
            Action.CLEAR_FAULT,
            Action.CASH_EXCHANGE,
            Action.RELOAD_LOCALES,
            Action.OUT_OF_SERVICE,
            Action.UNIT_NOTES,
            Action.UNIT_COINS,
        }
    )


class CassetteView(ScreenView):
    screen = Screen.CASSETTE
    COLUMNS: ClassVar[tuple[str, ...]] = ("denomination", "count_out", "count_in")

    def update(self, model: ScreenModel) -> None:
        super().update(model)
        table = self.ids.table
        table.clear_widgets()
        active = model.extra.get("active_row", -1)
        for column in self.COLUMNS:
            table.add_widget(TableCell(text=model.labels.get(column, ""), role="small", bold=True))
        for i, row in enumerate(model.extra.get("rows", ())):
            for column in self.COLUMNS:
                table.add_widget(TableCell(text=row.get(column, ""), role="small", bold=i == active, active=i == active))


VIEWS: dict[Screen, type[ScreenView]] = {
    cls.screen: cls
    for cls in (
        WelcomeView,
        IdentifyView,
        AccountEntryView,
        ConfirmView,
        IdentifiedView,
        ChooseMethodView,
        CashView,
        ResultView,
        HelpView,
        FaultView,
        StillThereView,
        CardScanView,
        EnrolStaffView,
        EnrolCustomerView,
        SettingsView,
        StaffMenuView,
        CassetteView,
    )
}


def load_screens() -> None:
    """Load every screen's kv file (once); a screen without one is an error."""
    missing = [s for s in Screen if s not in VIEWS or not (SCREENS_DIR / f"{s.value}.kv").is_file()]
    if missing:
        raise FileNotFoundError(f"no view or kv file for screens: {', '.join(missing)}")
    for screen in VIEWS:
        path = str(SCREENS_DIR / f"{screen.value}.kv")
        if path not in Builder.files:
            Builder.load_file(path)
