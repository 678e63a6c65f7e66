"""The runtime: one asyncio loop feeding events to the dialog and carrying out its commands.

Event sources (keys, screen touches, the listener, the face watcher, the cash
service, timers) all ``post`` into one queue. The loop hands each event to the
dialog and executes the commands it returns: speech is rendered from the active
locale pack and spoken by a worker that can be interrupted at once; screens are
rendered by the presenter and drawn by whichever display is attached (the Kivy
window or a headless recorder); timers, devices and notifications are driven here.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from assistant.dialog import Dialog
from assistant.messages import (
    CancelTimer,
    Command,
    DeviceAction,
    EndSession,
    Event,
    Listen,
    PacksReloaded,
    Say,
    SetTextSize,
    SetVoice,
    Show,
    SpeechFinished,
    StartTimer,
    StopSpeaking,
    Timeout,
)
from assistant.presenter import Pack, Presenter
from assistant.screens import ScreenModel

log = logging.getLogger(__name__)

ASCII_DIGIT = re.compile(r"[0-9]")


class Display(abc.ABC):
    """Where screens are drawn (the Kivy window, or a recorder when headless)."""

    @abc.abstractmethod
    async def show(self, model: ScreenModel) -> None:
        """Draw ``model`` (replacing what was on screen)."""


class HeadlessDisplay(Display):
    """Records every screen model; observers can react to them (the demo customer does)."""

    def __init__(self) -> None:
        self.shown: list[ScreenModel] = []
        self.observers: list[Callable[[ScreenModel], Awaitable[None] | None]] = []
        self._changed: asyncio.Condition | None = None

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def wait_for(self, screen: str, timeout: float = 10.0) -> ScreenModel:
        """Wait until ``screen`` is on display; returns its model."""
        cond = self._condition()
        async with asyncio.timeout(timeout), cond:
            await cond.wait_for(lambda: self.current is not None and self.current.screen == screen)
        assert self.current is not None
        return self.current

    async def wait_for_change(self, timeout: float = 10.0) -> ScreenModel | None:
        """Wait until the next screen (or update of the same screen) is drawn."""
        cond = self._condition()
        count = len(self.shown)
        async with asyncio.timeout(timeout), cond:
            await cond.wait_for(lambda: len(self.shown) > count)
        return self.current

    async def show(self, model: ScreenModel) -> None:
        self.shown.append(model)
        cond = self._condition()
        async with cond:
            cond.notify_all()
        for observer in list(self.observers):
            result = observer(model)
            if asyncio.iscoroutine(result):
                await result

    @property
    def current(self) -> ScreenModel | None:
        """The screen on display now."""
        return self.shown[-1] if self.shown else None


class Voice(abc.ABC):
    """Speaks rendered text; can be stopped at once; rate and volume adjustable."""

    @abc.abstractmethod
    async def say(self, text: str, voice: str) -> bool:
        """Speak ``text`` with the pack's ``voice``; True when it finished, False when stopped."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop speaking now (barge-in by a key or the customer's voice)."""

    @abc.abstractmethod
    def rate_step(self, delta: int) -> None:
        """Slower (-1) or faster (+1) for the current customer."""

    @abc.abstractmethod
    def volume_step(self, delta: int) -> None:
        """Louder (+1) or softer (-1) for the current customer."""

    @abc.abstractmethod
    def reset(self) -> None:
        """Default rate and volume (a new customer)."""


class Listener(abc.ABC):
    """Turns microphone audio into ``Utterance`` events for the expected intents."""

    @abc.abstractmethod
    def expect(self, pack: Pack, intents: tuple[str, ...]) -> None:
        """Listen for ``intents`` of ``pack`` from now on (sets the ASR grammar)."""


class Notifier(abc.ABC):
    """Tells staff that they are needed (staff call, device fault)."""

    @abc.abstractmethod
    async def notify(self, kind: str, detail: dict[str, Any]) -> None:
        """Send one notification."""


class LogNotifier(Notifier):
    """Writes notifications to the log (the default; alerts add more channels)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def notify(self, kind: str, detail: dict[str, Any]) -> None:
        self.sent.append((kind, detail))
        log.warning("staff needed: %s %s", kind, detail)


@dataclass
class TranscriptLine:
    """One line of the session transcript."""

    kind: str
    """event, say, show, device, info."""
    text: str


@dataclass
class Transcript:
    """What happened, in order: events, spoken lines, screens and device commands."""

    lines: list[TranscriptLine] = field(default_factory=list)
    echo: Callable[[str], None] | None = None

    def add(self, kind: str, text: str) -> None:
        """Record a line (and echo it if a printer is attached)."""
        self.lines.append(TranscriptLine(kind, text))
        if self.echo:
            self.echo(f"{kind.upper():<6} {text}")

    def spoken(self) -> list[str]:
        """Every spoken line's text."""
        return [ln.text.split("  ", 1)[-1] for ln in self.lines if ln.kind == "say"]


class PackSource(Protocol):
    """The locale packs as the runtime uses them (``assistant.locale.LocaleRegistry``)."""

    default_id: str

    def get(self, pack_id: str | None = None) -> Any:
        """A pack by id (the default when None)."""


class Kiosk:
    """The event loop around the dialog.

    Args:
        dialog: the state machine.
        packs: the locale packs.
        display: where screens go.
        voice: how prompts are spoken.
        transcript: the session record.
        listener: microphone input (None: keypad only).
        devices: handlers for ``DeviceAction`` by device name.
        notifier: where staff calls go.
    """

    def __init__(
        self,
        dialog: Dialog,
        packs: PackSource,
        display: Display,
        voice: Voice,
        transcript: Transcript | None = None,
        listener: Listener | None = None,
        devices: dict[str, Callable[[DeviceAction], Awaitable[None]]] | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.dialog = dialog
        self.packs = packs
        self.display = display
        self.voice = voice
        self.transcript = transcript or Transcript()
        self.listener = listener
        self.devices = devices or {}
        self.notifier = notifier or LogNotifier()
        self.presenter = Presenter(packs.get)
        self.pack_id = packs.default_id
        self.text_scale = 1.0
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._speech: asyncio.Queue[tuple[Say, str]] = asyncio.Queue()
        self._speech_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_show: Show | None = None
        self._last_caption: tuple[tuple[Say, str], ...] = ()
        """The prompts the screen on display is captioned with (drawn again after a reload)."""
        self.speaking = asyncio.Event()
        self._silent = asyncio.Event()
        self._silent.set()

    # ------------------------------------------------------------------ event input
    def post(self, event: Event) -> None:
        """Queue an event for the dialog (safe from any coroutine on the loop)."""
        self.queue.put_nowait(event)

    def spawn(self, coro: Awaitable[Event | None]) -> None:
        """Run a background wait; the event it returns is posted to the dialog."""

        async def runner() -> None:
            event = await coro
            if event is not None:
                self.post(event)

        task = asyncio.ensure_future(runner())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def pack(self) -> Pack:
        """The active locale pack."""
        return self.packs.get(self.pack_id)

    # ------------------------------------------------------------------ main loop
    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set."""
        self._speech_task = asyncio.create_task(self._speech_worker())
        try:
            await self.execute_all(await self.dialog.start())
            while not stop.is_set():
                get = asyncio.ensure_future(self.queue.get())
                stopped = asyncio.ensure_future(stop.wait())
                done, _ = await asyncio.wait({get, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if get not in done:
                    get.cancel()
                    break
                stopped.cancel()
                await self.step(get.result())
        finally:
            await self.close()

    async def step(self, event: Event) -> None:
        """Give one event to the dialog and carry out its commands.

        A failure here is logged and the loop goes on: one bad prompt or device must
        not take the kiosk down in front of a customer.
        """
        if not isinstance(event, SpeechFinished):
            self.transcript.add("event", _describe(event))
        if isinstance(event, PacksReloaded):
            # Words and language buttons changed under the screen on display: draw it again
            # now, not only when the customer next presses something.
            try:
                await self.redraw()
            except Exception as exc:
                log.exception("runtime: redrawing after a pack reload failed")
                self.transcript.add("error", f"{type(exc).__name__}: {exc}")
            return
        try:
            await self.execute_all(await self.dialog.handle(event))
        except Exception as exc:
            log.exception("runtime: %s while handling %s", exc, event)
            self.transcript.add("error", f"{type(exc).__name__}: {exc}")

    async def close(self) -> None:
        """Stop timers, speech and background tasks."""
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        self.voice.stop()
        for task in [self._speech_task, *self._tasks]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    # ------------------------------------------------------------------ commands
    async def execute_all(self, commands: list[Command]) -> None:
        """Execute a batch; the screen drawn at its end is captioned with what was said for it.

        Only the prompts said since the batch's previous screen belong to the last
        screen, so a greeting said on the way (while looking for the face, say) does not
        pile up under the arrears.
        """
        said: list[tuple[Say, str]] = []
        pending_show: Show | None = None
        caption: list[tuple[Say, str]] = []
        for cmd in commands:
            if isinstance(cmd, Say):
                said.append((cmd, self._say(cmd)))
            elif isinstance(cmd, Show):
                pending_show, caption, said = cmd, said, []
            elif isinstance(cmd, SetTextSize):
                self.text_scale = cmd.scale
                if pending_show is None:
                    pending_show = self._last_show
            elif isinstance(cmd, SetVoice):
                await self._set_voice(cmd)
                # A language switch redraws the screen in the new language.
                if cmd.pack and self._last_show is not None and pending_show is None:
                    pending_show = self._last_show
            else:
                await self.execute(cmd)
        if pending_show is None and said and self._last_show is not None:
            pending_show = self._last_show
        if pending_show is not None:
            await self._show(pending_show, (*caption, *said))

    async def redraw(self) -> None:
        """Draw the screen on display again, with the packs as they are now (after a reload:
        new words, a language button added or removed); its caption is rendered anew."""
        if self._last_show is not None:
            pack = self.pack
            caption = tuple((s, pack.render(s.prompt_id, s.slots).display) for s, _ in self._last_caption)
            await self._show(self._last_show, caption)

    async def execute(self, cmd: Command) -> None:
        """Execute one non-speech, non-screen command."""
        if isinstance(cmd, StopSpeaking):
            self._stop_speaking()
        elif isinstance(cmd, Listen):
            if self.listener is not None:
                self.listener.expect(self.pack, cmd.intents)
        elif isinstance(cmd, StartTimer):
            self._start_timer(cmd.timer, cmd.seconds)
        elif isinstance(cmd, CancelTimer):
            handle = self._timers.pop(cmd.timer, None)
            if handle is not None:
                handle.cancel()
        elif isinstance(cmd, DeviceAction):
            args = {k: self.pack.display(v) if not isinstance(v, str | int | float) else v for k, v in cmd.args.items()}
            self.transcript.add("device", f"{cmd.device}.{cmd.action} {args or ''}".rstrip())
            if cmd.device == "staff":
                await self.notifier.notify(cmd.action, dict(cmd.args))
            handler = self.devices.get(cmd.device)
            if handler is not None:
                await handler(cmd)
        elif isinstance(cmd, EndSession):
            self.pack_id = self.packs.default_id
            self.text_scale = 1.0

    def _say(self, cmd: Say) -> str:
        rendered = self.pack.render(cmd.prompt_id, cmd.slots)
        if ASCII_DIGIT.search(rendered.speech):
            # The normaliser must have turned every number into words; never let
            # espeak-ng guess (it drops decimal points and misreads years).
            raise AssertionError(f"prompt {cmd.prompt_id}: digits reached TTS: {rendered.speech!r}")
        self.transcript.add("say", f"[{cmd.prompt_id}]  {rendered.speech}")
        self._speech.put_nowait((cmd, rendered.speech))
        return rendered.display

    async def _show(self, show: Show, said: tuple[tuple[Say, str], ...]) -> None:
        """Draw ``show`` captioned with ``said``: the prompts said for it, each with its text."""
        self._last_show = show
        self._last_caption = said
        caption = " ".join(text for _, text in said)
        model = self.presenter.present(
            show, self.pack, caption=caption, text_scale=self.text_scale, packs=self.dialog.services.packs
        )
        self.transcript.add("show", f"{model.screen} {dict(model.fields)}")
        await self.display.show(model)

    async def _set_voice(self, cmd: SetVoice) -> None:
        if cmd.reset:
            self.voice.reset()
        if cmd.pack:
            self.pack_id = cmd.pack
        if cmd.rate_step:
            self.voice.rate_step(cmd.rate_step)
        if cmd.volume_step:
            self.voice.volume_step(cmd.volume_step)

    def _start_timer(self, name: str, seconds: float) -> None:
        old = self._timers.pop(name, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._timers[name] = loop.call_later(seconds, self._fire, name)

    def _fire(self, name: str) -> None:
        self._timers.pop(name, None)
        self.post(Timeout(name))

    # ------------------------------------------------------------------ speech
    def _stop_speaking(self) -> None:
        while not self._speech.empty():
            self._speech.get_nowait()
        self.voice.stop()

    async def _speech_worker(self) -> None:
        while True:
            cmd, text = await self._speech.get()
            voice_id = self.packs.get(self.pack_id).voice
            self.speaking.set()
            self._silent.clear()
            try:
                completed = await self.voice.say(text, voice_id)
            except Exception:  # a broken voice must not stop the kiosk; the screen still shows it
                log.exception("speech failed for %s", cmd.prompt_id)
                completed = False
            finally:
                if self._speech.empty():
                    self.speaking.clear()
                    self._silent.set()
            self.post(SpeechFinished(cmd.prompt_id, interrupted=not completed))

    async def quiet(self) -> None:
        """Wait until everything queued has been spoken."""
        if not self._speech.empty():
            self._silent.clear()
        await self._silent.wait()


def _describe(event: Event) -> str:
    fields = {
        k: (v.value if hasattr(v, "value") else v)
        for k, v in vars(event).items()
        if k != "kind" and v not in (None, "", 0, 0.0)
    }
    return f"{event.kind} {fields}" if fields else str(event.kind)
