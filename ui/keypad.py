"""The physical keys: the one big confirm key, the 12-key pad and its function keys.

A customer who cannot see the screen must be able to finish every flow with the
keys alone (ADA 707 style). The rules, the same on every screen:

- the big **confirm** key presses the screen's primary button (every screen has at
  most one); on a screen without one it is passed to the dialog as a key;
- **digits**, **clear**, **cancel**, **repeat** and **help** go to the dialog unchanged;
- **\\*** and **#** move a focus ring back and forward over the screen's buttons, and
  the focused button's caption is spoken; the **confirm** key then presses it (the
  screen's hint names that key: one key does what is chosen), and so does **enter**.
  Without a focus, enter goes to the dialog (submit the typed digits, confirm);
- a keyboard works the same way (digits, Enter, Backspace, Esc, space bar for the
  big key, arrows or Tab to move the focus, F1 repeat, F2 help).

This module has no Kivy import: the window and a headless keypad driver share it,
so a flow run by keys behaves the same with and without a screen.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from assistant.messages import ActionChosen, Event, Key, KeyPressed
from assistant.screens import Button, ScreenModel


class Nav(StrEnum):
    """Focus movement (the pad's \\* and # keys, or arrows and Tab on a keyboard)."""

    PREVIOUS = "previous"
    NEXT = "next"


@dataclass(frozen=True)
class Post:
    """Give this event to the dialog."""

    event: Event


@dataclass(frozen=True)
class Focus:
    """Put the focus ring on a button and speak its caption."""

    index: int
    """Index into the screen's buttons."""
    button: Button


Outcome = Post | Focus

# Kivy key codes (SDL key symbols as Kivy reports them).
_NUMPAD_DIGITS = {256 + d: Key(str(d)) for d in range(10)}
_KEYCODES: dict[int, Key | Nav] = {
    13: Key.ENTER,  # enter
    271: Key.ENTER,  # numpad enter
    8: Key.CLEAR,  # backspace
    127: Key.CLEAR,  # delete
    27: Key.CANCEL,  # escape
    32: Key.CONFIRM,  # space bar: the big key on a keyboard
    270: Key.CONFIRM,  # numpad +: the big key on a USB pad
    268: Key.STAR,  # numpad *
    267: Key.HASH,  # numpad / (a numeric pad has no # key)
    282: Key.REPEAT,  # F1
    283: Key.HELP,  # F2
    275: Nav.NEXT,  # right
    274: Nav.NEXT,  # down
    276: Nav.PREVIOUS,  # left
    273: Nav.PREVIOUS,  # up
}
_TAB = 9


def key_for(keycode: int, codepoint: str | None = None, modifiers: tuple[str, ...] = ()) -> Key | Nav | None:
    """The kiosk key for a keyboard key, or None when the key means nothing here."""
    if keycode in _NUMPAD_DIGITS:
        return _NUMPAD_DIGITS[keycode]
    if keycode == _TAB:
        return Nav.PREVIOUS if "shift" in modifiers else Nav.NEXT
    if codepoint and codepoint.isascii() and codepoint.isdigit():
        return Key(codepoint)
    if codepoint == "*":
        return Key.STAR
    if codepoint == "#":
        return Key.HASH
    return _KEYCODES.get(keycode)


class KeypadNavigator:
    """Turns keys into dialog events and focus moves for the screen on show."""

    def __init__(self) -> None:
        self.model: ScreenModel | None = None
        self.focus: int | None = None
        """Index of the focused button, or None (no one has used \\* or # yet)."""

    def show(self, model: ScreenModel) -> None:
        """A new screen model is on display; the focus stays only if its buttons are unchanged."""
        same = (
            self.model is not None
            and self.model.screen == model.screen
            and [(b.action, b.value) for b in self.model.buttons] == [(b.action, b.value) for b in model.buttons]
        )
        self.model = model
        if not same:
            self.focus = None

    @property
    def primary(self) -> Button | None:
        """The screen's primary button, if it has one."""
        if self.model is None:
            return None
        return next((b for b in self.model.buttons if b.primary), None)

    def press(self, key: Key | Nav) -> list[Outcome]:
        """What ``key`` does on the current screen."""
        buttons = self.model.buttons if self.model is not None else ()
        if key in (Nav.NEXT, Nav.PREVIOUS, Key.HASH, Key.STAR):
            if not buttons:
                return []
            step = 1 if key in (Nav.NEXT, Key.HASH) else -1
            if self.focus is None:
                self.focus = 0 if step > 0 else len(buttons) - 1
            else:
                self.focus = (self.focus + step) % len(buttons)
            return [Focus(self.focus, buttons[self.focus])]
        if key is Key.ENTER and self.focus is not None and self.focus < len(buttons):
            # The focus stays on the button: pressing enter again presses it again (a
            # blind customer making the text bigger twice); a new screen clears it.
            button = buttons[self.focus]
            return [Post(ActionChosen(button.action, button.value))]
        if key is Key.CONFIRM and self.focus is not None and self.focus < len(buttons):
            # The customer chose a button with * or #: the confirm key presses that one.
            button = buttons[self.focus]
            return [Post(ActionChosen(button.action, button.value))]
        if key is Key.CONFIRM:
            self.focus = None
            primary = self.primary
            if primary is not None:
                return [Post(ActionChosen(primary.action, primary.value))]
            return [Post(KeyPressed(Key.CONFIRM))]
        # Typing again means the customer left the buttons: enter submits, not the focus.
        self.focus = None
        return [Post(KeyPressed(Key(key)))]
