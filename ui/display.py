"""The Kivy window as the kiosk's :class:`~assistant.kiosk.Display`.

The window shows whatever ScreenModel the runtime last gave it and reports every
touch and key back as events; it never decides anything itself. The frame is the
same on every screen: the title bar (with *repeat* and one button per language, each
always in the same place, the one in use marked as chosen), the screen's own view, the caption (what the kiosk is saying), and the
action bar (the primary button first and widest).

Two promises to an elderly customer are kept here:

- nothing moves under a finger: while a touch is down, a new screen waits until
  it is lifted (at most ``hold_limit_s``), and an update to the same screen changes
  texts in place without rebuilding the buttons;
- any touch or key stops the speech at once.

Import this module only after :func:`ui.boot.prepare`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from assistant.kiosk import Display, Kiosk
from assistant.messages import ActionChosen, Event, Key, StopSpeaking
from assistant.screens import Action, Button, Screen, ScreenModel
from ui.keypad import Focus, KeypadNavigator, Nav, Post, key_for

log = logging.getLogger(__name__)

UTILITY_ACTIONS = frozenset({Action.REPEAT, Action.LANGUAGE})
PRIMARY_WEIGHT = 1.6
"""The primary button is this much wider than the others in a row."""
TILE_PRIMARY_WEIGHT = 1.3
"""Tiles are big already; the primary one is only a little wider."""


def _run(result: Awaitable[Any] | None) -> None:
    """Run a hook's coroutine on the loop without waiting for it (input must not block)."""
    if not asyncio.iscoroutine(result):
        return
    try:
        task = asyncio.get_running_loop().create_task(result)
    except RuntimeError:  # no running loop (the synchronous audit): nothing to run it on
        result.close()
        return
    task.add_done_callback(_log_failure)


def _log_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("input hook failed", exc_info=task.exception())


def _host_class() -> type:
    """The ScreenHost widget class (defined lazily: Kivy must be configured first)."""
    global _HOST
    if _HOST is None:
        _HOST = _define_host()
    return _HOST


_HOST: type | None = None


def _define_host() -> type:
    from ui.views import VIEWS, ScreenView, load_screens
    from ui.widgets import BigButton, Panel, load_kv

    load_kv()
    load_screens()

    class ScreenHost(Panel):
        """The root widget: the frame, and the current screen's view inside it."""

        def __init__(self, choose: Callable[[str, str], None], touched: Callable[[], None], **kw: Any):
            super().__init__(**kw)
            self.choose = choose
            self.touched = touched
            self.view: ScreenView | None = None
            self.model: ScreenModel | None = None
            self.touches: set[Any] = set()
            self.on_released: Callable[[], None] | None = None
            self._views: dict[Screen, ScreenView] = {}
            self._buttons: list[BigButton] = []
            self._button_key: tuple[Any, ...] = ()

        # -------------------------------------------------------------- drawing
        def apply(self, model: ScreenModel, fresh: bool = False) -> None:
            """Show ``model``: swap the view if the screen changed, then fill it in.

            ``fresh`` draws it as if arriving from another screen (the audit and the
            screen renderer draw unrelated screens one after the other).
            """
            from ui.widgets import STYLE

            STYLE.scale = model.text_scale
            view = self._views.get(model.screen)
            if view is None:
                view = VIEWS[model.screen]()
                self._wire_keys(view)
                self._views[model.screen] = view
            changed = view is not self.view or fresh
            view.update(model)
            if changed:
                if self.view is not None:
                    self.view.on_hidden()
                self.ids.content.clear_widgets()
                self.ids.content.add_widget(view)
                self.view = view
            self.ids.title.text = model.title
            # The caption says what the kiosk is saying; when the customer types on the same
            # screen nothing new is said, and the instruction stays rather than vanish.
            if model.caption or changed:
                self.ids.caption.text = model.caption
            self._place_buttons(model, view, rebuild=changed)
            if changed:
                view.on_shown()
            self.model = model

        def _wire_keys(self, view: ScreenView) -> None:
            for widget in view.walk(restrict=True):
                if isinstance(widget, BigButton) and widget.action:
                    widget.report = self.choose

        def _kind(self, button: Button) -> str:
            if button.primary:
                return "primary"
            if button.action == Action.CANCEL:
                return "cancel"
            if button.action in UTILITY_ACTIONS:
                return "utility"
            return "secondary"

        def _place_buttons(self, model: ScreenModel, view: ScreenView, rebuild: bool) -> None:
            key = tuple((b.action, b.value, b.primary) for b in model.buttons)
            badge = model.labels.get("key_confirm", "")
            if key == self._button_key and not rebuild:
                # Same buttons: only their words may change (a language switch).
                for widget, button in zip(self._buttons, model.buttons, strict=True):
                    widget.text = button.label
                    widget.current = button.current
                    widget.badge = badge if button.primary and not widget.compact else ""
                return
            for widget in self._buttons:
                if widget.parent is not None:
                    widget.parent.remove_widget(widget)
            self._buttons = []
            self._button_key = key
            for button in model.buttons:
                kind = self._kind(button)
                widget = BigButton(
                    action=button.action,
                    value=button.value,
                    text=button.label,
                    current=button.current,
                    kind=kind,
                    badge=badge if button.primary else "",
                    report=self.choose,
                )
                slot = view.slot_for(button)
                if slot is None:
                    slot = self.ids.utility if kind == "utility" else self.ids.actions
                weight = PRIMARY_WEIGHT
                if slot is view.ids.get("tiles"):
                    widget.big = view.big_tiles
                    weight = TILE_PRIMARY_WEIGHT
                if getattr(slot, "in_pad", False):
                    widget.compact = True
                    widget.badge = ""
                if kind != "utility":
                    widget.size_hint_x = weight if button.primary else 1.0
                slot.add_widget(widget)
                self._buttons.append(widget)

        def set_focus(self, index: int | None) -> None:
            """Put the keypad focus ring on button ``index`` (None: no ring)."""
            for i, widget in enumerate(self._buttons):
                widget.focused = i == index

        @property
        def buttons(self) -> list[Any]:
            """The button widgets, in the model's order."""
            return list(self._buttons)

        # -------------------------------------------------------------- touches
        def on_touch_down(self, touch: Any) -> bool:
            if self.collide_point(*touch.pos):
                self.touches.add(touch.uid)
                self.touched()
            return super().on_touch_down(touch)

        def on_touch_up(self, touch: Any) -> bool:
            handled = super().on_touch_up(touch)
            if touch.uid in self.touches:
                self.touches.discard(touch.uid)
                if not self.touches and self.on_released is not None:
                    # After this touch is fully dispatched: the button under the finger
                    # gets its release (Kivy sends it to the grabbing widget afterwards)
                    # before any held screen replaces it.
                    from kivy.clock import Clock

                    Clock.schedule_once(lambda _dt: self.on_released() if not self.touches else None, 0)
            return handled

    return ScreenHost


class KivyDisplay(Display):
    """Draws ScreenModels in the Kivy window and turns touches and keys into events.

    Args:
        post: where events go (``Kiosk.post``); set by :meth:`attach`.
        interrupt: stops the speech (a touch anywhere); set by :meth:`attach`.
        speak: speaks a focused button's caption; set by :meth:`attach`.
        hold_limit_s: the longest a new screen waits for a finger to lift.
        nav_hold_s: while the customer moves the focus with the keys, another screen
            waits this long after the last move (a timer or a device, never the
            customer, changed it; updates to the same screen are drawn at once).
    """

    def __init__(
        self,
        post: Callable[[Event], None] | None = None,
        interrupt: Callable[[], Awaitable[None] | None] | None = None,
        speak: Callable[[str], Awaitable[None] | None] | None = None,
        hold_limit_s: float = 8.0,
        nav_hold_s: float = 3.0,
    ) -> None:
        self.post = post or (lambda event: None)
        self.interrupt = interrupt or (lambda: None)
        self.speak = speak or (lambda text: None)
        self.hold_limit_s = hold_limit_s
        self.nav_hold_s = nav_hold_s
        self._navigating_until = 0.0
        self.navigator = KeypadNavigator()
        self.host: Any = None
        self.latest: ScreenModel | None = None
        self.pending: ScreenModel | None = None
        self.applied = 0
        """How many models have been drawn (tests and the benchmark wait on it)."""
        self.first_drawn: asyncio.Event | None = None
        self._flip_waiters: list[asyncio.Future[float]] = []
        self._apply_waiters: list[asyncio.Future[ScreenModel]] = []
        self._undrawn = False
        self.drawn_at = 0.0
        """``perf_counter`` time of the first frame flipped after the latest model was applied."""

    # ------------------------------------------------------------------ wiring
    def attach(self, kiosk: Kiosk) -> None:
        """Send input to ``kiosk``: events, speech interruption, focused-button speech."""
        self.post = kiosk.post

        async def interrupt() -> None:
            await kiosk.execute(StopSpeaking())

        async def speak(text: str) -> None:
            await kiosk.execute(StopSpeaking())
            await kiosk.voice.say(text, kiosk.packs.get(kiosk.pack_id).voice)

        self.interrupt = interrupt
        self.speak = speak

    def build(self) -> Any:
        """Create the root widget (call from ``App.build``); shows the latest model at once."""
        from kivy.core.window import Window

        host_cls = _host_class()
        self.host = host_cls(choose=self._choose, touched=self._touched)
        self.host.on_released = self._released
        Window.bind(on_key_down=self._on_key_down, on_flip=self._on_flip)
        if self.latest is not None:
            self._apply(self.latest)
        return self.host

    # ------------------------------------------------------------------ Display
    async def show(self, model: ScreenModel) -> None:
        """Draw ``model`` now, or as soon as no finger is on the screen."""
        self.latest = model
        if self.host is None:
            return
        if self.host.touches:
            self._hold(model, self.hold_limit_s)
            return
        current = self.host.model
        navigating = self._navigating_until - time.monotonic()
        if navigating > 0 and current is not None and current.screen != model.screen:
            self._hold(model, navigating)
            return
        # Whatever was held is older than this model: it must not come back later.
        self.pending = None
        self._apply(model)

    def _hold(self, model: ScreenModel, seconds: float) -> None:
        from kivy.clock import Clock

        self.pending = model
        Clock.unschedule(self._release_hold)
        Clock.schedule_once(self._release_hold, seconds)

    def _release_hold(self, *_: Any) -> None:
        if self.pending is not None:
            model, self.pending = self.pending, None
            self._apply(model)

    def _released(self) -> None:
        if time.monotonic() >= self._navigating_until:
            self._release_hold()

    def _apply(self, model: ScreenModel, fresh: bool = False) -> None:
        self.host.apply(model, fresh=fresh)
        self.navigator.show(model)
        self.host.set_focus(self.navigator.focus)
        self.applied += 1
        self._undrawn = True
        waiters, self._apply_waiters = self._apply_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(model)

    # ------------------------------------------------------------------ drawn
    def _on_flip(self, *_: Any) -> None:
        now = time.perf_counter()
        if self._undrawn:
            self._undrawn = False
            self.drawn_at = now
        waiters, self._flip_waiters = self._flip_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(now)
        if self.first_drawn is not None and self.applied and not self.first_drawn.is_set():
            self.first_drawn.set()

    async def next_applied(self) -> ScreenModel:
        """Wait until the next model has been put on screen (drawn at the next flip)."""
        fut: asyncio.Future[ScreenModel] = asyncio.get_running_loop().create_future()
        self._apply_waiters.append(fut)
        return await fut

    async def drawn(self) -> float:
        """When the latest model reached the screen: the ``perf_counter`` time of its frame."""
        if not self._undrawn:
            return self.drawn_at
        await self.next_flip()
        return self.drawn_at

    async def next_flip(self) -> float:
        """Wait until the next frame has been drawn; returns its ``perf_counter`` time."""
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._flip_waiters.append(fut)
        return await fut

    # ------------------------------------------------------------------ input
    def _choose(self, action: str, value: str) -> None:
        self._navigating_until = 0.0
        self.navigator.focus = None
        if self.host is not None:
            self.host.set_focus(None)
        self.post(ActionChosen(action, value))

    def _touched(self) -> None:
        _run(self.interrupt())

    def _on_key_down(self, _window: Any, keycode: int, _scancode: int, codepoint: str | None, modifiers: list[str]) -> bool:
        key = key_for(keycode, codepoint, tuple(modifiers or ()))
        if key is None:
            return False
        self.press(key)
        return True

    def press(self, key: Key | Nav) -> None:
        """Handle one kiosk key (from the keyboard, the keypad driver or a test)."""
        for outcome in self.navigator.press(key):
            if isinstance(outcome, Post):
                # The customer acted: what comes next is the answer, drawn at once.
                self._navigating_until = 0.0
                self.post(outcome.event)
            elif isinstance(outcome, Focus):
                self._navigating_until = time.monotonic() + self.nav_hold_s
                if self.host is not None:
                    self.host.set_focus(outcome.index)
                _run(self.speak(outcome.button.label))
                # The customer is acting: the dialog restarts its idle timer.
                self.post(ActionChosen(Action.FOCUS))
