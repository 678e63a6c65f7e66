"""``run_dialog(script)``: drive the real dialog with events and assert what it said, showed and did.

A script is a list of steps. Each step is an event (or :data:`SPAWNED`, which runs the
background waits the dialog started and feeds their results back) plus what must
happen in response: prompt ids said (in order), the screen shown, device actions
done, and the state reached. Anything not listed is not checked for that step, so
a step can be as strict as the test needs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any

from assistant.dialog import Dialog
from assistant.messages import Command, DeviceAction, Event, Say, Show

SPAWNED = object()
"""Script marker: run the dialog's background waits and feed their events back."""


@dataclass
class Step:
    """One event and what it must cause."""

    event: Any
    say: Sequence[str] | None = None
    """Exact prompt ids said, in order (None: not checked)."""
    show: str | None = None
    """The last screen shown (None: not checked)."""
    do: Sequence[tuple[str, str]] = ()
    """Device actions that must be among the commands."""
    state: str | None = None
    """Dialog state after the step."""
    not_say: Sequence[str] = ()
    """Prompt ids that must not be said."""


@dataclass
class Transcript:
    """Everything the dialog emitted, step by step."""

    steps: list[list[Command]] = field(default_factory=list)

    def said(self, step: int | None = None) -> list[str]:
        """Prompt ids said (in one step, or all; with ``start`` step 0 is the welcome)."""
        cmds = self.steps[step] if step is not None else [c for s in self.steps for c in s]
        return [c.prompt_id for c in cmds if isinstance(c, Say)]

    def says(self, step: int | None = None) -> list[Say]:
        """Say commands (with slots)."""
        cmds = self.steps[step] if step is not None else [c for s in self.steps for c in s]
        return [c for c in cmds if isinstance(c, Say)]


class Spawner:
    """Collects the dialog's background waits so a script can run them when it wants."""

    def __init__(self) -> None:
        self.pending: list[Awaitable[Event | None]] = []

    def __call__(self, coro: Awaitable[Event | None]) -> None:
        self.pending.append(coro)

    async def run(self) -> list[Event]:
        jobs, self.pending = self.pending, []
        results = await asyncio.gather(*jobs)
        return [r for r in results if r is not None]


async def run_dialog(
    dialog: Dialog, script: Sequence[Step], spawner: Spawner | None = None, start: bool = True
) -> Transcript:
    """Play ``script`` through ``dialog``, asserting each step; returns the transcript.

    With ``start`` the dialog is first put on its welcome screen (a new kiosk);
    without it the script continues where the dialog is.
    """
    transcript = Transcript()
    if start:
        transcript.steps.append(await dialog.start())
    for i, step in enumerate(script):
        if step.event is SPAWNED:
            assert spawner is not None, "SPAWNED needs a Spawner"
            cmds: list[Command] = []
            for ev in await spawner.run():
                cmds.extend(await dialog.handle(ev))
        else:
            cmds = await dialog.handle(step.event)
        transcript.steps.append(cmds)
        said = [c.prompt_id for c in cmds if isinstance(c, Say)]
        where = f"step {i} ({step.event!r})"
        if step.say is not None:
            assert said == list(step.say), f"{where}: said {said}, expected {list(step.say)}"
        for p in step.not_say:
            assert p not in said, f"{where}: must not say {p}, said {said}"
        if step.show is not None:
            shows = [c.screen for c in cmds if isinstance(c, Show)]
            assert shows and shows[-1] == step.show, f"{where}: showed {shows}, expected {step.show}"
        done = [(c.device, c.action) for c in cmds if isinstance(c, DeviceAction)]
        for d in step.do:
            assert d in done, f"{where}: expected device action {d}, got {done}"
        if step.state is not None:
            assert dialog.state == step.state, f"{where}: state {dialog.state}, expected {step.state}"
    return transcript
