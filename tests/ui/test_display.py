"""The window as the kiosk's display: real dialog, real ledger, real keys and touches."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from assistant.billing import LedgerBilling
from assistant.customers import CustomerDirectory
from assistant.dialog import Dialog, DialogServices
from assistant.kiosk import Kiosk, Voice
from assistant.messages import CashEvent, CashEventKind, SpeechFinished
from assistant.screens import Action, Screen
from assistant.seed import seed
from tests.assistant.test_dialog import FakeCash
from ui.keypad import KeypadNavigator

pytestmark = pytest.mark.ui


class TimedVoice(Voice):
    """Takes ``seconds`` to say anything unless stopped; keeps what it said and what was cut off."""

    def __init__(self, seconds: float = 0.02) -> None:
        self.seconds = seconds
        self.said: list[str] = []
        self.cut: list[str] = []
        self._stop = asyncio.Event()

    async def say(self, text: str, voice: str) -> bool:
        self.said.append(text)
        self._stop.clear()
        try:
            await asyncio.wait_for(self._stop.wait(), self.seconds)
        except TimeoutError:
            return True
        self.cut.append(text)
        return False

    def stop(self) -> None:
        self._stop.set()

    def rate_step(self, delta: int) -> None:
        pass

    def volume_step(self, delta: int) -> None:
        pass

    def reset(self) -> None:
        pass


@pytest.fixture
def display(renderer):
    """The window's display, fresh input state for each test."""
    d = renderer.display
    d.navigator = KeypadNavigator()
    d.pending = None
    d.hold_limit_s = 8.0
    yield d
    d.post = lambda event: None
    d.interrupt = lambda: None
    d.speak = lambda text: None


@contextlib.asynccontextmanager
async def running_kiosk(db, tmp_path, display, packs, voice):
    await seed(db, tmp_path)
    source, ids = packs
    services = DialogServices(
        billing=LedgerBilling(db),
        customers=CustomerDirectory(db),
        understanding=None,
        cash=FakeCash(),
        packs=ids,
        hall_phone="95598",
    )
    kiosk = Kiosk(Dialog(services), source, display, voice)
    services.spawn = kiosk.spawn
    display.attach(kiosk)
    stop = asyncio.Event()
    task = asyncio.create_task(kiosk.run(stop))
    try:
        await on_screen(display, Screen.WELCOME)
        yield kiosk
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def on_screen(display, screen: Screen, timeout: float = 5.0) -> None:
    """Wait until ``screen`` is drawn and the kiosk has nothing left to process."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await asyncio.sleep(0.01)
        model = display.host.model
        if model is not None and model.screen == screen:
            await asyncio.sleep(0.05)
            return
    raise AssertionError(f"expected {screen}, on screen: {display.host.model and display.host.model.screen}")


async def until(predicate, timeout: float = 3.0) -> None:
    """Wait (on the loop) until ``predicate()`` holds."""
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached in time")


def key(keycode: int, codepoint: str | None = None, modifiers: tuple[str, ...] = ()) -> None:
    from kivy.core.window import Window

    Window.dispatch("on_key_down", keycode, 0, codepoint, list(modifiers))


def button(display, action: str):
    return next(w for w in display.host.buttons if w.action == action)


def texts(widget) -> list[str]:
    from kivy.uix.label import Label

    return [w.text for w in widget.walk(restrict=True) if isinstance(w, Label) and w.text]


async def test_a_customer_who_cannot_see_pays_with_the_keys_alone(db, tmp_path, display, packs, renderer) -> None:
    voice = TimedVoice()
    async with running_kiosk(db, tmp_path, display, packs, voice) as kiosk:
        key(32, " ")  # the big key: 交电费
        await on_screen(display, Screen.IDENTIFY)
        for digit in "0300045678":
            key(48 + int(digit), digit)
            await asyncio.sleep(0.02)
        await on_screen(display, Screen.ACCOUNT_ENTRY)
        from ui.widgets import DigitBoxes

        boxes = next(w for w in display.host.view.walk(restrict=True) if isinstance(w, DigitBoxes))
        assert [cell.text for cell in boxes.cells] == list("0300045678")
        key(13)  # enter
        await on_screen(display, Screen.CONFIRM)
        assert "0300045678" in display.host.view.fields["question"]
        key(32, " ")  # confirm the read-back
        await on_screen(display, Screen.IDENTIFIED)
        renderer.settle()
        assert "¥222.50" in texts(display.host.view)
        # Walk to 其他方式 with #; its name is spoken, the ring is drawn on it.
        other = packs[0].get("zh-CN").label("btn_other_methods")
        key(51, "#", ("shift",))
        key(51, "#", ("shift",))
        await asyncio.sleep(0.1)
        assert voice.said[-1] == other
        assert [w.text for w in display.host.buttons if w.focused] == [other]
        key(13)
        await on_screen(display, Screen.CHOOSE_METHOD)
        key(32, " ")  # the primary: cash
        await on_screen(display, Screen.CASH)
        assert display.host.view.fields["remaining"] == "¥222.50"
        before = list(display.host.buttons)
        kiosk.post(CashEvent(CashEventKind.CREDITED, value_fen=10000, inserted_fen=10000))
        await until(lambda: display.host.view.fields.get("inserted") == "¥100.00")
        assert display.host.view.fields["remaining"] == "¥122.50"
        # The same screen updated in place: the very same buttons, nothing moved.
        assert display.host.buttons == before


async def test_any_touch_stops_the_speech(db, tmp_path, display, packs, renderer) -> None:
    from kivy.base import EventLoop
    from kivy.tests.common import UnitTestTouch

    voice = TimedVoice(seconds=10.0)
    async with running_kiosk(db, tmp_path, display, packs, voice) as kiosk:
        heard: list[SpeechFinished] = []
        original = kiosk.step

        async def spy(event):
            if isinstance(event, SpeechFinished):
                heard.append(event)
            await original(event)

        kiosk.step = spy  # type: ignore[method-assign]
        key(32, " ")
        await on_screen(display, Screen.IDENTIFY)
        await asyncio.sleep(0.1)
        assert voice.said and not voice.cut  # it is speaking now
        renderer.settle()
        caption = display.host.ids.caption
        x, y = caption.to_window(*caption.center)  # not a button: just the screen
        touch = UnitTestTouch(x, y)
        touch.touch_down()
        EventLoop.idle()
        touch.touch_up()
        EventLoop.idle()
        for _ in range(50):
            await asyncio.sleep(0.02)
            if heard:
                break
        assert voice.cut == [voice.said[0]]
        assert heard and heard[0].interrupted


async def test_nothing_changes_under_a_finger(display, packs, renderer) -> None:
    from kivy.base import EventLoop
    from kivy.tests.common import UnitTestTouch

    from ui.samples import build_samples, present

    source, ids = packs
    samples = {s.name: s for s in build_samples(pack_ids=ids)}
    posted = []
    display.post = posted.append
    await display.show(present(samples["identified"], source, ids))
    renderer.settle()
    primary = button(display, Action.ONE_KEY_PAY)
    x, y = primary.to_window(*primary.center)
    touch = UnitTestTouch(x, y)
    touch.touch_down()
    EventLoop.idle()
    await display.show(present(samples["still_there"], source, ids))
    assert display.host.model.screen == Screen.IDENTIFIED  # held while the finger is down
    touch.touch_up()
    EventLoop.idle()
    assert display.host.model.screen == Screen.STILL_THERE
    assert [(e.action, e.value) for e in posted] == [(Action.ONE_KEY_PAY, "")]


async def test_a_held_screen_is_shown_after_the_hold_limit(display, packs, renderer) -> None:
    from kivy.base import EventLoop
    from kivy.tests.common import UnitTestTouch

    from ui.samples import build_samples, present

    source, ids = packs
    samples = {s.name: s for s in build_samples(pack_ids=ids)}
    await display.show(present(samples["cash"], source, ids))
    renderer.settle()
    display.hold_limit_s = 0.2
    touch = UnitTestTouch(30, 400)
    touch.touch_down()
    EventLoop.idle()
    await display.show(present(samples["fault"], source, ids))
    assert display.host.model.screen == Screen.CASH
    deadline = time.monotonic() + 3
    while display.host.model.screen != Screen.FAULT and time.monotonic() < deadline:
        EventLoop.idle()
    touch.touch_up()
    EventLoop.idle()
    assert display.host.model.screen == Screen.FAULT


async def test_touching_a_dialect_redraws_the_screen_in_it(db, tmp_path, display, packs, renderer) -> None:
    from kivy.base import EventLoop
    from kivy.tests.common import UnitTestTouch

    async with running_kiosk(db, tmp_path, display, packs, TimedVoice()):
        renderer.settle()
        yue = next(w for w in display.host.buttons if w.action == Action.LANGUAGE and w.value == "yue")
        x, y = yue.to_window(*yue.center)
        touch = UnitTestTouch(x, y)
        touch.touch_down()
        EventLoop.idle()
        touch.touch_up()
        EventLoop.idle()
        await until(lambda: display.host.model.pack == "yue")
        yue, zh = packs[0].get("yue"), packs[0].get("zh-CN")
        labels = {w.action: w.text for w in display.host.buttons if w.action != Action.LANGUAGE}
        assert labels[Action.REPEAT] == yue.label("btn_repeat") != zh.label("btn_repeat")
        assert display.host.ids.title.text == yue.label("title_welcome")
        languages = [(w.text, w.current) for w in display.host.buttons if w.action == Action.LANGUAGE]
        # the same buttons in the same order; now 粤语 is the one marked as chosen
        assert languages == [(zh.label("pack_name"), False), (yue.label("pack_name"), True),
                             (packs[0].get("zh-CN-sichuan").label("pack_name"), False)]


async def test_text_scale_reaches_every_text(display, packs, renderer) -> None:
    from kivy.metrics import sp

    from ui.samples import build_samples, present
    from ui.theme import text_size

    source, ids = packs
    sample = next(s for s in build_samples(pack_ids=ids) if s.name == "identified")
    await display.show(present(sample, source, ids, text_scale=1.5))
    renderer.settle()
    assert display.host.ids.title.font_size == pytest.approx(sp(text_size("title", 1.5)))
    assert button(display, Action.OTHER_METHODS).ids.caption.font_size == pytest.approx(sp(text_size("button", 1.5)))
    await display.show(present(sample, source, ids, text_scale=1.0))
    renderer.settle()
    assert display.host.ids.title.font_size == pytest.approx(sp(text_size("title", 1.0)))


async def test_the_on_screen_keypad_types_digits(display, packs, renderer) -> None:
    from kivy.base import EventLoop
    from kivy.tests.common import UnitTestTouch

    from ui.samples import build_samples, present
    from ui.widgets import BigButton

    source, ids = packs
    sample = next(s for s in build_samples(pack_ids=ids) if s.name == "account_entry")
    posted = []
    display.post = posted.append
    await display.show(present(sample, source, ids))
    renderer.settle()
    pad = display.host.view.ids["pad"]
    for digit in "50":
        key_widget = next(w for w in pad.walk(restrict=True) if isinstance(w, BigButton) and w.value == digit)
        touch = UnitTestTouch(*key_widget.to_window(*key_widget.center))
        touch.touch_down()
        EventLoop.idle()
        touch.touch_up()
        EventLoop.idle()
    enter = button(display, Action.ENTER)
    assert enter.parent in pad.slots.values()  # the screen's own enter key sits on the pad
    assert [(e.action, e.value) for e in posted] == [(Action.DIGIT, "5"), (Action.DIGIT, "0")]


async def test_a_screen_waits_while_the_customer_moves_the_focus(display, packs, renderer) -> None:
    from kivy.base import EventLoop

    from ui.samples import build_samples, present

    source, ids = packs
    samples = {s.name: s for s in build_samples(pack_ids=ids)}
    spoken = []
    display.speak = spoken.append
    display.nav_hold_s = 0.3

    def run_frames(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            EventLoop.idle()

    await display.show(present(samples["identified"], source, ids))
    renderer.settle()
    key(51, "#", ("shift",))
    assert spoken == [display.host.model.buttons[0].label] and "现金" in spoken[0]
    # A timer fires while the customer is choosing: the warning waits, then shows.
    await display.show(present(samples["still_there"], source, ids))
    assert display.host.model.screen == Screen.IDENTIFIED
    run_frames(0.6)
    assert display.host.model.screen == Screen.STILL_THERE

    await display.show(present(samples["identified"], source, ids))
    key(51, "#", ("shift",))
    await display.show(present(samples["still_there"], source, ids))
    # A newer update of the screen on show is drawn at once, and the older held one is dropped.
    await display.show(present(samples["identified_large"], source, ids))
    assert display.host.model.fields["arrears"] == "¥9999.99"
    assert display.host.buttons[0].focused
    run_frames(0.6)
    assert display.host.model.screen == Screen.IDENTIFIED
