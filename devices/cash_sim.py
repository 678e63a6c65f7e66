"""A note recycler and a coin hopper simulated behind a real pseudo-terminal, speaking SSP.

The simulator is the kiosk's hardware when there is none: it opens a pty with
``os.openpty``, points a stable link (e.g. ``var/cash/ssp.tty``) at the slave side
and answers SSP frames on the master side exactly as the units would: the same
bytes, sequence-bit retransmission, escrow that expires unless held, notes stacked
or stored for recycling, payouts that take time, lifetime counters.

It models what a customer and the bank do (insert a note or coin, load a cassette)
and what goes wrong (note jam, stacker full, cashbox removed, hopper empty during a
payout, partial payout, a reply with a bad CRC, a reply that never comes, a unit
that is mute, the port vanishing). Cassette counts are written to a state file on
every change, so the cash survives a crash of the kiosk (or of the simulator,
which then reports what it found at power-up, as a real unit does).

Run it in-process (``CashSimulator(...).start()``, a thread) or as its own process::

    python -m devices.cash_sim --link var/cash/ssp.tty --state var/cash/sim.json \\
        --control var/cash/sim.sock

The control socket takes one JSON object per line (``{"cmd": "insert_note",
"value": 10000}``) and answers one JSON line; :class:`SimControl` is its client.

A running simulator holds a lock on a file beside its state (``sim.json`` ->
``sim.pid``, holding its process id), so only one simulator at a time serves a state
file, its port link and its control socket: a second one (another kiosk, or a
``main.py cash`` command while the kiosk runs) refuses to start instead of replacing
the first one's pseudo-terminal and socket, and :func:`running_simulator` tells a
command that one is running, without creating or changing anything.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import math
import os
import select
import socket
import sys
import threading
import time
import tty
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.errors import CashSimulatorBusy
from devices import ssp
from devices.ssp import Command, Event, PayoutRefusal, PollEvent, Response

log = logging.getLogger(__name__)

NOTE_VALUES = (100, 500, 1000, 2000, 5000, 10000)
"""RMB notes in fen: 1, 5, 10, 20, 50, 100 元 (channels 1..6 in this order)."""
COIN_VALUES = (10, 50, 100)
"""RMB coins in fen: 1 角, 5 角, 1 元."""


@dataclass(frozen=True)
class SimTiming:
    """Mechanical timings of the simulated units, in seconds (before ``speed``)."""

    read_s: float = 0.4
    """Reading a note before it reaches escrow."""
    stack_s: float = 0.6
    """Moving a note from escrow into the store or cashbox."""
    reject_s: float = 0.5
    """Handing a note back."""
    dispense_s: float = 0.3
    """Paying out one note or coin."""
    escrow_timeout_s: float = 10.0
    """An unheld note in escrow is handed back after this."""
    host_timeout_s: float = 5.0
    """No command from the host for this long: the unit disables itself (watchdog)."""
    speed: float = 1.0
    """All mechanical timings (not the escrow timeout) are divided by this."""

    def t(self, seconds: float) -> float:
        """A mechanical time scaled by ``speed``."""
        return seconds / self.speed


# ----------------------------------------------------------------------------- units


@dataclass
class _Op:
    """What a unit is busy with (persisted so a restart can report it)."""

    kind: str  # reading, escrow, stacking, rejecting, jammed, dispensing, payout_jammed
    value: int = 0
    until: float = 0.0
    reported: bool = False
    route: str = ""
    pieces: list[int] = field(default_factory=list)
    paid: int = 0
    requested: int = 0
    done_pieces: int = 0


class SimUnit:
    """State and protocol handling shared by both simulated units."""

    unit_type: int = ssp.UnitType.SMART_PAYOUT
    name: str = "unit"

    def __init__(
        self,
        address: int,
        values: tuple[int, ...],
        levels: Mapping[int, int],
        timing: SimTiming,
        country: str = "CNY",
        capacity: int = 100,
    ) -> None:
        self.address = address
        self.values = values
        self.country = country
        self.timing = timing
        self.levels: dict[int, int] = {v: int(levels.get(v, 0)) for v in values}
        self.capacity: dict[int, int] = {v: max(capacity, self.levels[v]) for v in values}
        self.enabled = False
        self.protocol = ssp.PROTOCOL_VERSION
        self.queue: list[PollEvent] = []
        self.op: _Op | None = None
        self.last_seq: int | None = None
        self.last_reply: bytes | None = None
        self.last_host = time.monotonic()
        self.counters = ssp.Counters()
        # link faults (not persisted): how many replies to spoil, and whether to answer at all
        self.corrupt_replies = 0
        self.drop_replies = 0
        self.mute = False
        # payout faults
        self.jam_payout_after: int | None = None
        self.empty_after: int | None = None
        self.partial_after: int | None = None
        self.dirty = True
        self.tally: Callable[[str, int, int], None] = lambda what, value, n: None

    # -- protocol ---------------------------------------------------------------------
    def frame_in(self, frame: ssp.Frame, now: float) -> bytes | None:
        """Handle one frame addressed to this unit; the reply frame bytes or None."""
        if self.mute:
            return None
        self.last_host = now
        if frame.data and frame.data[0] == Command.SYNC:
            reply = bytes((Response.OK,))
        elif frame.seq == self.last_seq and self.last_reply is not None:
            reply = self.last_reply  # retransmission: same answer, nothing executed twice
        else:
            self.tick(now)
            reply = self.execute(frame.data[0], bytes(frame.data[1:]), now)
        self.last_seq = frame.seq
        self.last_reply = reply
        if self.drop_replies > 0:
            self.drop_replies -= 1
            return None
        out = ssp.encode_frame(self.address, frame.seq, reply)
        if self.corrupt_replies > 0:
            self.corrupt_replies -= 1
            # flip the last CRC byte (avoiding 0x7F, which would change the framing)
            last = out[-1] ^ 0x01
            if last == ssp.STX or out[-1] == ssp.STX:
                last = out[-1] ^ 0x02
            out = out[:-1] + bytes((last,))
        return out

    def execute(self, command: int, payload: bytes, now: float) -> bytes:
        """Run one command; the reply data."""
        ok = bytes((Response.OK,))
        if command == Command.HOST_PROTOCOL_VERSION:
            if not payload or payload[0] > 8:
                return bytes((Response.FAIL,))
            self.protocol = payload[0]
            return ok
        if command == Command.SETUP_REQUEST:
            return ok + self.setup()
        if command == Command.POLL:
            return ok + self.poll(now)
        if command == Command.ENABLE:
            self.enabled = True
            return ok
        if command == Command.DISABLE:
            self.enabled = False
            self.on_disable(now)
            return ok
        if command == Command.GET_ALL_LEVELS:
            return ok + ssp.encode_levels([(self.levels[v], v) for v in self.values], self.country)
        if command == Command.GET_COUNTERS:
            return ok + ssp.encode_counters(self.counters)
        if command == Command.HALT_PAYOUT:
            if self.op is not None and self.op.kind == "dispensing":
                self.queue.append(PollEvent(Event.HALTED, values=(self.op.paid,)))
                self.op = None
                self.dirty = True
            return ok
        if command in (Command.PAYOUT_AMOUNT, Command.PAYOUT_BY_DENOMINATION):
            return self.payout_command(command, payload, now)
        if command == Command.RESET:
            return ok
        return self.unit_command(command, payload, now)

    def unit_command(self, command: int, payload: bytes, now: float) -> bytes:
        """Commands only one kind of unit knows."""
        return bytes((Response.UNKNOWN_COMMAND,))

    def setup(self) -> bytes:
        """SETUP_REQUEST reply data."""
        raise NotImplementedError

    def on_disable(self, now: float) -> None:
        """A DISABLE arrived."""

    # -- payouts ----------------------------------------------------------------------
    def busy(self) -> bool:
        """True while moving cash."""
        return self.op is not None

    def payout_command(self, command: int, payload: bytes, now: float) -> bytes:
        """PAYOUT_AMOUNT / PAYOUT_BY_DENOMINATION, test or real."""
        try:
            if command == Command.PAYOUT_AMOUNT:
                amount, country, test = ssp.parse_payout_amount(payload)
                pieces = device_pieces(amount, self.levels)
                if sum(self.levels[v] * v for v in self.values) < amount:
                    return self._refuse(PayoutRefusal.NOT_ENOUGH_VALUE)
                if pieces is None:
                    return self._refuse(PayoutRefusal.CANNOT_PAY_EXACT)
            else:
                counts, country, test = ssp.parse_payout_by_denomination(payload)
                pieces = {}
                for number, value in counts:
                    if value not in self.levels:
                        return bytes((Response.OUT_OF_RANGE,))
                    pieces[value] = pieces.get(value, 0) + number
                for value, number in pieces.items():
                    if self.levels[value] < number:
                        return self._refuse(PayoutRefusal.NOT_ENOUGH_VALUE)
        except ssp.SspError:
            return bytes((Response.WRONG_PARAMETERS,))
        if country != self.country:
            return bytes((Response.OUT_OF_RANGE,))
        if not self.enabled:
            return self._refuse(PayoutRefusal.DISABLED)
        if self.busy():
            return self._refuse(PayoutRefusal.BUSY)
        if test:
            return bytes((Response.OK,))
        order = [v for v in sorted(pieces, reverse=True) for _ in range(pieces[v])]
        if not order:
            return bytes((Response.OK,))
        self.op = _Op(
            kind="dispensing", pieces=order, requested=sum(order),
            until=now + self.timing.t(self.timing.dispense_s),
        )
        self.dirty = True
        return bytes((Response.OK,))

    @staticmethod
    def _refuse(reason: PayoutRefusal) -> bytes:
        return bytes((Response.CANNOT_PROCESS, int(reason)))

    def advance_payout(self, now: float) -> None:
        """Pay out every piece whose time has come; report faults on the way."""
        op = self.op
        assert op is not None
        while self.op is op and op.until <= now:
            n = op.done_pieces
            if self.jam_payout_after is not None and n >= self.jam_payout_after:
                self.jam_payout_after = None
                self.queue.append(PollEvent(Event.JAMMED, values=(op.paid,)))
                self.op = _Op(kind="payout_jammed", paid=op.paid, requested=op.requested)
                self.dirty = True
                return
            if self.partial_after is not None and n >= self.partial_after:
                self.partial_after = None
                self.queue.append(PollEvent(Event.SLAVE_RESET))
                self.queue.append(
                    PollEvent(Event.INCOMPLETE_PAYOUT, values=(op.paid,), requested=(op.requested,))
                )
                self.enabled = False
                self.op = None
                self.dirty = True
                return
            if self.empty_after is not None and n >= self.empty_after:
                # the unit finds itself empty: the coins its level counter believed in are not there
                self.empty_after = None
                missing = 0
                for v in set(op.pieces[n:]):
                    missing += self.levels[v] * v
                    self.levels[v] = 0
                self.tally("missing", 1, missing)
                self.queue.append(PollEvent(Event.TIME_OUT, values=(op.paid,)))
                self.op = None
                self.dirty = True
                return
            value = op.pieces[n]
            self.levels[value] -= 1
            self.counters = _bump(self.counters, dispensed=1) if self.unit_type != ssp.UnitType.SMART_HOPPER else self.counters
            op.paid += value
            op.done_pieces += 1
            self.tally("paid", value, 1)
            self.dirty = True
            if op.done_pieces == len(op.pieces):
                self.queue.append(PollEvent(Event.DISPENSED, values=(op.paid,)))
                self.op = None
                return
            op.until += self.timing.t(self.timing.dispense_s)

    def poll(self, now: float) -> bytes:
        """POLL reply data after OK: queued events (as many as fit in one reply) plus progress."""
        events: list[PollEvent] = []
        size = 0
        while self.queue:
            # a reply carries at most 255 data bytes: the rest waits for the next poll
            n = len(ssp.encode_poll_events([self.queue[0]], self.country))
            if size + n > 200:
                break
            events.append(self.queue.pop(0))
            size += n
        if self.op is not None and self.op.kind == "dispensing":
            events.append(PollEvent(Event.DISPENSING, values=(self.op.paid,)))
        # moves in progress are reported on every poll until they finish, as the units do
        progress = {
            "jammed": PollEvent(Event.UNSAFE_JAM),
            "reading": PollEvent(Event.READ_NOTE, channel=0),
            "stacking": PollEvent(Event.STACKING),
            "rejecting": PollEvent(Event.REJECTING),
        }
        if self.op is not None and self.op.kind in progress:
            events.append(progress[self.op.kind])
        self.after_poll(events, now)
        if events:
            self.dirty = True
        return ssp.encode_poll_events(events, self.country)

    def after_poll(self, events: list[PollEvent], now: float) -> None:
        """Hook: a poll just delivered ``events``."""

    def tick(self, now: float) -> None:
        """Advance time: finish mechanical moves, expire escrow, watchdog."""
        if self.op is not None and self.op.kind == "dispensing":
            self.advance_payout(now)
        if (
            self.enabled
            and self.timing.host_timeout_s > 0
            and now - self.last_host > self.timing.host_timeout_s
            and (self.op is None or self.op.kind != "dispensing")
        ):
            self.enabled = False
            self.on_disable(now)
            self.on_watchdog()
            self.queue.append(PollEvent(Event.DISABLED))
            self.dirty = True

    def on_watchdog(self) -> None:
        """Hook: the host went quiet and the unit disabled itself."""

    # -- persistence ------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """Durable state as JSON-able data."""
        op = None
        if self.op is not None:
            op = {
                "kind": self.op.kind, "value": self.op.value, "route": self.op.route,
                "pieces": self.op.pieces, "paid": self.op.paid, "requested": self.op.requested,
                "done_pieces": self.op.done_pieces,
            }
        return {
            "levels": {str(k): v for k, v in self.levels.items()},
            "capacity": {str(k): v for k, v in self.capacity.items()},
            "counters": list(_counters_tuple(self.counters)),
            "op": op,
        }

    def from_state(self, state: Mapping[str, Any]) -> None:
        """Restore durable state; an interrupted move is resolved as at power-up."""
        self.levels = {v: int(state.get("levels", {}).get(str(v), 0)) for v in self.values}
        caps = state.get("capacity", {})
        self.capacity = {v: int(caps.get(str(v), self.capacity.get(v, 100))) for v in self.values}
        self.counters = ssp.Counters(*state.get("counters", [0, 0, 0, 0, 0]))
        self.queue.append(PollEvent(Event.SLAVE_RESET))
        op = state.get("op")
        if op:
            self.power_up(_Op(**op))

    def power_up(self, op: _Op) -> None:
        """Report a move that a power loss interrupted."""
        if op.kind in ("dispensing", "payout_jammed"):
            self.queue.append(
                PollEvent(Event.INCOMPLETE_PAYOUT, values=(op.paid,), requested=(op.requested,))
            )


def _counters_tuple(c: ssp.Counters) -> tuple[int, int, int, int, int]:
    return (c.stacked, c.stored, c.dispensed, c.transferred, c.rejected)


def _bump(c: ssp.Counters, **delta: int) -> ssp.Counters:
    values = dict(zip(("stacked", "stored", "dispensed", "transferred", "rejected"), _counters_tuple(c), strict=True))
    for k, d in delta.items():
        values[k] += d
    return ssp.Counters(**values)


def device_pieces(amount: int, levels: Mapping[int, int]) -> dict[int, int] | None:
    """How the unit's own firmware pays ``amount``: fewest pieces, exact, bounded by levels.

    Used for PAYOUT_AMOUNT, where the unit (not the kiosk) chooses the pieces. A plain
    0/1 knapsack over binary-split piece bundles; small enough for a unit's payouts.
    """
    if amount == 0:
        return {}
    values = sorted(v for v, c in levels.items() if c > 0)
    if not values:
        return None
    g = math.gcd(*values)
    if amount % g:
        return None
    target = amount // g
    bundles: list[tuple[int, int]] = []  # (value, how many pieces in this bundle)
    for v in values:
        left, size = levels[v], 1
        while left > 0:
            take = min(size, left)
            bundles.append((v, take))
            left -= take
            size *= 2
    inf = 1 << 30
    best = [inf] * (target + 1)
    best[0] = 0
    took: list[bytearray] = []
    for v, k in bundles:
        span = v // g * k
        row = bytearray(target + 1)
        for a in range(target, span - 1, -1):
            cand = best[a - span] + k
            if cand < best[a]:
                best[a] = cand
                row[a] = 1
        took.append(row)
    if best[target] >= inf:
        return None
    counts: dict[int, int] = {}
    a = target
    for (v, k), row in zip(reversed(bundles), reversed(took), strict=True):
        if row[a]:
            counts[v] = counts.get(v, 0) + k
            a -= v // g * k
    return counts


class SimNoteRecycler(SimUnit):
    """A note validator with a recycling payout store and a cashbox."""

    unit_type = ssp.UnitType.SMART_PAYOUT
    name = "notes"

    def __init__(self, address: int, levels: Mapping[int, int], timing: SimTiming, *,
                 country: str = "CNY", store_capacity: int = 100, cashbox_capacity: int = 1000,
                 cashbox: Mapping[int, int] | None = None) -> None:
        super().__init__(address, NOTE_VALUES, levels, timing, country, store_capacity)
        self.cashbox: dict[int, int] = {v: int((cashbox or {}).get(v, 0)) for v in NOTE_VALUES}
        self.cashbox_capacity = cashbox_capacity
        self.cashbox_present = True
        self.channels_enabled: set[int] = set()
        self.jam_next = False
        self.stacker_full_fault = False

    def setup(self) -> bytes:
        return ssp.encode_setup_validator("0420", self.country, self.values, self.protocol)

    def channel(self, value: int) -> int:
        """The channel number of a note value (1-based)."""
        return self.values.index(value) + 1

    def unit_command(self, command: int, payload: bytes, now: float) -> bytes:
        ok = bytes((Response.OK,))
        if command == Command.SET_INHIBITS:
            try:
                self.channels_enabled = ssp.parse_set_inhibits(payload)
            except ssp.SspError:
                return bytes((Response.WRONG_PARAMETERS,))
            return ok
        if command == Command.HOLD:
            if self.op is not None and self.op.kind == "escrow":
                self.op.until = now + self.timing.escrow_timeout_s
                return ok
            return bytes((Response.CANNOT_PROCESS,))
        if command == Command.REJECT:
            if self.op is not None and self.op.kind in ("escrow", "reading"):
                self._start_reject(now)
                return ok
            return bytes((Response.CANNOT_PROCESS,))
        return bytes((Response.UNKNOWN_COMMAND,))

    def busy(self) -> bool:
        return self.op is not None

    def cashbox_full(self) -> bool:
        """No room left in the cashbox."""
        return self.stacker_full_fault or sum(self.cashbox.values()) >= self.cashbox_capacity

    # -- customer ---------------------------------------------------------------------
    def insert(self, value: int, now: float) -> bool:
        """A customer pushes a note in; False if it is handed straight back."""
        ch = self.channel(value) if value in self.values else 0
        if (
            not self.enabled or ch not in self.channels_enabled or self.op is not None
            or not self.cashbox_present
        ):
            self.tally("back", value, 1)
            return False
        self.op = _Op(kind="reading", value=value, until=now + self.timing.t(self.timing.read_s))
        self.dirty = True
        return True

    # -- time -------------------------------------------------------------------------
    def tick(self, now: float) -> None:
        op = self.op
        if op is not None and op.kind != "dispensing" and op.until and op.until <= now:
            if op.kind == "reading":
                op.kind = "escrow"
                op.reported = False
                op.until = now + self.timing.escrow_timeout_s
                self.queue.append(PollEvent(Event.READ_NOTE, channel=self.channel(op.value)))
            elif op.kind == "escrow":
                self._start_reject(now)  # escrow expired: the note goes back by itself
            elif op.kind == "rejecting":
                self.queue.append(PollEvent(Event.REJECTED))
                self.counters = _bump(self.counters, rejected=1)
                self.tally("back", op.value, 1)
                self.op = None
            elif op.kind == "stacking":
                self._finish_stack(op)
            self.dirty = True
        super().tick(now)

    def after_poll(self, events: list[PollEvent], now: float) -> None:
        op = self.op
        if op is None or op.kind != "escrow":
            return
        if any(e.code == Event.READ_NOTE and e.channel for e in events):
            op.reported = True  # the host has now seen the escrow; its next POLL accepts
            return
        if op.reported:
            self._accept(op, now, events)

    def _accept(self, op: _Op, now: float, events: list[PollEvent]) -> None:
        ch = self.channel(op.value)
        if not self.cashbox_present or (self.cashbox_full() and (
                self.stacker_full_fault or self.levels[op.value] >= self.capacity[op.value])):
            # nowhere to put it: report and hand it back
            self.queue.append(PollEvent(Event.STACKER_FULL))
            self._start_reject(now)
            return
        route = "store" if (self.levels[op.value] < self.capacity[op.value]) else "cashbox"
        self.dirty = True
        events.append(PollEvent(Event.CREDIT_NOTE, channel=ch))
        if self.jam_next:
            self.jam_next = False
            self.op = _Op(kind="jammed", value=op.value, route=route)
            events.append(PollEvent(Event.UNSAFE_JAM))
            return
        self.op = _Op(kind="stacking", value=op.value, route=route,
                      until=now + self.timing.t(self.timing.stack_s))

    def _finish_stack(self, op: _Op) -> None:
        if op.route == "store":
            self.levels[op.value] += 1
            self.counters = _bump(self.counters, stored=1)
            self.queue.append(PollEvent(Event.NOTE_STORED_IN_PAYOUT))
        else:
            self.cashbox[op.value] += 1
            self.counters = _bump(self.counters, stacked=1)
            self.queue.append(PollEvent(Event.STACKED))
        self.op = None

    def _start_reject(self, now: float) -> None:
        op = self.op
        assert op is not None
        self.op = _Op(kind="rejecting", value=op.value, until=now + self.timing.t(self.timing.reject_s))
        self.dirty = True

    def on_disable(self, now: float) -> None:
        if self.op is not None and self.op.kind in ("escrow", "reading"):
            self._start_reject(now)

    # -- staff ------------------------------------------------------------------------
    def clear_jam(self, to: str) -> None:
        """Staff clear a stuck note: into the cashbox or back out of the front."""
        op = self.op
        if op is None or op.kind != "jammed":
            if op is not None and op.kind == "payout_jammed":
                self.op = None
            return
        ch = self.channel(op.value)
        if to == "cashbox":
            self.cashbox[op.value] += 1
            self.counters = _bump(self.counters, stacked=1)
            self.queue.append(PollEvent(Event.NOTE_CLEARED_TO_CASHBOX, channel=ch))
        else:
            self.counters = _bump(self.counters, rejected=1)
            self.tally("back", op.value, 1)
            self.queue.append(PollEvent(Event.NOTE_CLEARED_FROM_FRONT, channel=ch))
        self.op = None
        self.dirty = True

    def to_state(self) -> dict[str, Any]:
        state = super().to_state()
        state["cashbox"] = {str(k): v for k, v in self.cashbox.items()}
        state["cashbox_capacity"] = self.cashbox_capacity
        return state

    def from_state(self, state: Mapping[str, Any]) -> None:
        self.cashbox = {v: int(state.get("cashbox", {}).get(str(v), 0)) for v in NOTE_VALUES}
        self.cashbox_capacity = int(state.get("cashbox_capacity", self.cashbox_capacity))
        super().from_state(state)

    def power_up(self, op: _Op) -> None:
        ch = self.channel(op.value) if op.value in self.values else 0
        if op.kind in ("reading", "escrow", "rejecting"):
            self.counters = _bump(self.counters, rejected=1)
            self.tally("back", op.value, 1)
            self.queue.append(PollEvent(Event.NOTE_CLEARED_FROM_FRONT, channel=ch))
        elif op.kind in ("stacking", "jammed"):
            self.cashbox[op.value] += 1
            self.counters = _bump(self.counters, stacked=1)
            self.queue.append(PollEvent(Event.NOTE_CLEARED_TO_CASHBOX, channel=ch))
        else:
            super().power_up(op)


class SimCoinHopper(SimUnit):
    """A coin hopper with an attached coin mechanism."""

    unit_type = ssp.UnitType.SMART_HOPPER
    name = "coins"

    def __init__(self, address: int, levels: Mapping[int, int], timing: SimTiming, *,
                 country: str = "CNY", capacity: int = 1000) -> None:
        super().__init__(address, COIN_VALUES, levels, timing, country, capacity)
        self.mech_enabled = False
        self.coins_accepted: set[int] = set(COIN_VALUES)
        self.coin_jam = False

    def setup(self) -> bytes:
        return ssp.encode_setup_hopper("0312", self.country, self.values, self.protocol)

    def unit_command(self, command: int, payload: bytes, now: float) -> bytes:
        ok = bytes((Response.OK,))
        if command == Command.COIN_MECH_GLOBAL_INHIBIT:
            if len(payload) != 1:
                return bytes((Response.WRONG_PARAMETERS,))
            self.mech_enabled = payload[0] == 1
            return ok
        if command == Command.SET_COIN_MECH_INHIBITS:
            try:
                value, _country, accept = ssp.parse_coin_mech_inhibit(payload)
            except ssp.SspError:
                return bytes((Response.WRONG_PARAMETERS,))
            if value not in self.values:
                return bytes((Response.OUT_OF_RANGE,))
            (self.coins_accepted.add if accept else self.coins_accepted.discard)(value)
            return ok
        return bytes((Response.UNKNOWN_COMMAND,))

    def on_disable(self, now: float) -> None:
        self.mech_enabled = False

    def on_watchdog(self) -> None:
        self.mech_enabled = False

    def insert(self, value: int, now: float) -> bool:
        """A customer drops a coin in; False if it falls straight to the return cup."""
        if (
            not self.enabled or not self.mech_enabled or self.coin_jam
            or value not in self.coins_accepted or self.op is not None
        ):
            self.tally("back", value, 1)
            return False
        if self.levels[value] >= self.capacity[value]:
            self.queue.append(PollEvent(Event.DEVICE_FULL))
            self.tally("back", value, 1)
            return False
        self.levels[value] += 1
        self.queue.append(PollEvent(Event.COIN_CREDIT, values=(value,)))
        self.dirty = True
        return True


# ----------------------------------------------------------------------------- the bus


class _PtyPort:
    """One pseudo-terminal carrying a multi-drop SSP bus."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master = -1
        self.slave = -1
        self.decoder = ssp.FrameDecoder()
        self.open()

    def open(self) -> None:
        self.master, self.slave = os.openpty()
        # raw mode: no echo, no newline translation, binary-safe both ways
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.decoder.reset()
        target = os.ttyname(self.slave)
        self.link.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.link.with_name(self.link.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.symlink(target, tmp)
        os.replace(tmp, self.link)

    @property
    def alive(self) -> bool:
        return self.master >= 0

    def close(self, unlink: bool = True) -> None:
        for fd in (self.master, self.slave):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.master = self.slave = -1
        if unlink:
            with contextlib.suppress(FileNotFoundError):
                self.link.unlink()


def owner_path(state_path: Path) -> Path:
    """The file a running simulator keeps locked beside its state (``sim.json`` -> ``sim.pid``)."""
    return state_path.with_name(state_path.stem + ".pid")


def running_simulator(state_path: Path) -> int | None:
    """The process id of the simulator running on ``state_path``, or None when none runs.

    Nothing is created, changed or removed: the owner file is only opened for reading
    and its lock tested (the kernel drops the lock when the owner dies, even by SIGKILL,
    so a file left behind by a crash does not count). 0 means a simulator runs but its
    process id could not be read.
    """
    try:
        fd = os.open(owner_path(state_path), os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_pid(fd: int) -> int:
    os.lseek(fd, 0, os.SEEK_SET)
    words = os.read(fd, 64).decode("ascii", "replace").split()
    return int(words[0]) if words and words[0].isdigit() else 0


def _claim(state_path: Path) -> int:
    """Lock the owner file of ``state_path`` for this process; the open descriptor.

    Raises:
        CashSimulatorBusy: another simulator runs on this state file.
    """
    path = owner_path(state_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _read_pid(fd)
        os.close(fd)
        raise CashSimulatorBusy(
            f"a cash simulator is already running on {state_path} (process {pid or 'unknown'}); "
            "its port link and control socket are left alone"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode("ascii"))
    return fd


def _release(fd: int) -> None:
    # emptied, not removed: a removed file could be locked by two later simulators at once
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


class CashSimulator:
    """Both units on their pseudo-terminal(s), a control API, and the state file.

    Args:
        links: port link path -> the units on it (by SSP address).
        state_path: JSON file for cassette counts and counters (None = not kept).
        notes, coins: the units.
    """

    def __init__(
        self,
        notes: SimNoteRecycler,
        coins: SimCoinHopper,
        notes_link: Path,
        coins_link: Path | None = None,
        state_path: Path | None = None,
    ) -> None:
        self.notes = notes
        self.coins = coins
        self.units: dict[int, SimUnit] = {notes.address: notes, coins.address: coins}
        self.state_path = state_path
        links = {notes_link: [notes]}
        if coins_link is None or coins_link == notes_link:
            links[notes_link].append(coins)
        else:
            links[coins_link] = [coins]
        self._links = links
        self.ports: dict[Path, _PtyPort] = {}
        self.lock = threading.RLock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._control: socket.socket | None = None
        self._control_path: Path | None = None
        self._owner_fd = -1
        self.frames_in = 0
        self.tallies: dict[str, dict[int, int]] = {"in": {}, "back": {}, "paid": {}, "missing": {}}
        self._tallied = False
        for unit in (notes, coins):
            unit.tally = self._tally
        if state_path is not None and state_path.exists():
            self._load()

    # -- construction -----------------------------------------------------------------
    @classmethod
    def from_config(cls, cfg: Any, root: Path) -> CashSimulator:
        """Build from a :class:`devices.cash.CashConfig` (used when ``simulate = true``)."""
        from devices.cash import Unit, resolve

        timing = SimTiming(escrow_timeout_s=cfg.sim_escrow_timeout_s, speed=cfg.sim_speed)
        notes = SimNoteRecycler(cfg.notes_address, cfg.float_of(Unit.NOTES), timing, country=cfg.currency)
        coins = SimCoinHopper(cfg.coins_address, cfg.float_of(Unit.COINS), timing, country=cfg.currency)
        notes_link = resolve(root, cfg.port_of(Unit.NOTES))
        coins_link = resolve(root, cfg.port_of(Unit.COINS))
        return cls(notes, coins, notes_link, coins_link, resolve(root, cfg.sim_state))

    def port_path(self, unit: str = "notes") -> Path:
        """The link path the driver should open for a unit."""
        target = self.notes if unit == "notes" else self.coins
        for link, units in self._links.items():
            if target in units:
                return link
        raise KeyError(unit)

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> CashSimulator:
        """Create the pty(s) and serve in a background thread.

        Raises:
            CashSimulatorBusy: another simulator runs on the same state file; nothing
                was touched (its port link, control socket and state stay as they are).
        """
        self._own()
        with self.lock:
            for link in self._links:
                if link not in self.ports or not self.ports[link].alive:
                    self.ports[link] = _PtyPort(link)
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="cash-sim", daemon=True)
        self._thread.start()
        return self

    def _own(self) -> None:
        """Take the state file's owner lock before any shared path is touched."""
        if self.state_path is not None and self._owner_fd < 0:
            self._owner_fd = _claim(self.state_path)

    def stop(self) -> None:
        """Stop serving, save state, close the pty(s)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None
        with self.lock:
            self._save()
            for port in self.ports.values():
                port.close()
            self.ports.clear()
        if self._control is not None:
            with contextlib.suppress(OSError):
                self._control.close()
            self._control = None
            if self._control_path is not None:
                with contextlib.suppress(FileNotFoundError):
                    self._control_path.unlink()
        if self._owner_fd >= 0:  # last: until here a command must still see it running
            _release(self._owner_fd)
            self._owner_fd = -1

    def __enter__(self) -> CashSimulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _serve(self) -> None:
        while not self._stop.is_set():
            fds = {p.master: p for p in self.ports.values() if p.alive}
            extra = [self._control.fileno()] if self._control is not None else []
            try:
                readable, _, _ = select.select(list(fds) + extra, [], [], 0.005)
            except (OSError, ValueError):
                readable = []
            now = time.monotonic()
            with self.lock:
                for fd in readable:
                    if fd in fds:
                        self._read_port(fds[fd], now)
                for unit in self.units.values():
                    unit.tick(now)
                if self._tallied or any(u.dirty for u in self.units.values()):
                    self._save()
            if extra and extra[0] in readable:
                self._accept_control()

    def _read_port(self, port: _PtyPort, now: float) -> None:
        try:
            chunk = os.read(port.master, 4096)
        except BlockingIOError:
            return
        except OSError:
            return  # no reader on the slave side yet; nothing to do
        for frame in port.decoder.feed(chunk):
            if isinstance(frame, ssp.SspError):
                continue  # a corrupt command gets no reply; the host retries
            unit = self.units.get(frame.address)
            if unit is None or unit not in self._units_on(port):
                continue
            self.frames_in += 1
            try:
                reply = unit.frame_in(frame, now)
            except Exception:  # a simulator bug must not look like dead hardware
                log.exception("simulated unit %s failed on 0x%02X", unit.name, frame.data[0])
                continue
            if self._tallied or any(u.dirty for u in self.units.values()):
                # the state on disk is never behind what the host has been told
                self._save()
            if reply is not None:
                with contextlib.suppress(OSError):
                    os.write(port.master, reply)

    def _units_on(self, port: _PtyPort) -> list[SimUnit]:
        return self._links[port.link]

    # -- state file -------------------------------------------------------------------
    def _tally(self, what: str, value: int, n: int) -> None:
        book = self.tallies[what]
        book[value] = book.get(value, 0) + n
        self._tallied = True

    def _save(self) -> None:
        self._tallied = False
        for u in self.units.values():
            u.dirty = False
        if self.state_path is None:
            return
        data = {
            "notes": self.notes.to_state(),
            "coins": self.coins.to_state(),
            "tallies": {k: {str(v): n for v, n in book.items()} for k, book in self.tallies.items()},
        }
        self.state_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        tmp.write_text(json.dumps(data, sort_keys=True), encoding="utf-8")
        os.replace(tmp, self.state_path)

    def _load(self) -> None:
        assert self.state_path is not None
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("simulator state %s unreadable (%s); starting from the float", self.state_path, exc)
            return
        self.tallies = {
            k: {int(v): int(n) for v, n in data.get("tallies", {}).get(k, {}).items()}
            for k in ("in", "back", "paid", "missing")
        }
        self.notes.from_state(data.get("notes", {}))
        self.coins.from_state(data.get("coins", {}))

    # -- control API (thread-safe) ----------------------------------------------------
    def insert_note(self, value: int) -> bool:
        """A customer inserts a note; False if handed straight back."""
        with self.lock:
            self._tally("in", value, 1)
            return self.notes.insert(value, time.monotonic())

    def insert_coin(self, value: int) -> bool:
        """A customer drops a coin; False if it fell to the return cup."""
        with self.lock:
            self._tally("in", value, 1)
            return self.coins.insert(value, time.monotonic())

    def fault(self, name: str, unit: str = "notes", n: int = 1) -> None:
        """Arm a fault.

        Names: ``note_jam`` (next accepted note sticks), ``stacker_full``, ``cashbox_removed``,
        ``cashbox_replaced``, ``hopper_empty`` (unit runs dry after ``n`` pieces of the next
        payout), ``partial_payout`` (stops after ``n`` pieces), ``payout_jam`` (jams after ``n``),
        ``bad_crc`` (next ``n`` replies corrupt), ``no_reply`` (next ``n`` replies lost),
        ``mute`` / ``unmute`` (unit stops / resumes answering), ``coin_jam``, ``vanish``
        (the port disappears), ``restore`` (it comes back).
        """
        with self.lock:
            u = self.notes if unit == "notes" else self.coins
            if name == "note_jam":
                self.notes.jam_next = True
            elif name == "stacker_full":
                self.notes.stacker_full_fault = True
                self.notes.queue.append(PollEvent(Event.STACKER_FULL))
            elif name == "stacker_emptied":
                self.notes.stacker_full_fault = False
            elif name == "cashbox_removed":
                self.notes.cashbox_present = False
                self.notes.queue.append(PollEvent(Event.CASHBOX_REMOVED))
                if self.notes.op is not None and self.notes.op.kind in ("escrow", "reading"):
                    self.notes._start_reject(time.monotonic())
            elif name == "cashbox_replaced":
                self.notes.cashbox_present = True
                self.notes.queue.append(PollEvent(Event.CASHBOX_REPLACED))
            elif name == "hopper_empty":
                u.empty_after = n
            elif name == "partial_payout":
                u.partial_after = n
            elif name == "payout_jam":
                u.jam_payout_after = n
            elif name == "bad_crc":
                u.corrupt_replies = n
            elif name == "no_reply":
                u.drop_replies = n
            elif name == "mute":
                u.mute = True
            elif name == "unmute":
                u.mute = False
            elif name == "coin_jam":
                self.coins.coin_jam = True
                self.coins.queue.append(PollEvent(Event.COIN_MECH_JAMMED))
            elif name == "coin_jam_cleared":
                self.coins.coin_jam = False
            elif name == "vanish":
                for port in self.ports.values():
                    port.close()
            elif name == "restore":
                for link, port in list(self.ports.items()):
                    if not port.alive:
                        self.ports[link] = _PtyPort(link)
            else:
                raise ValueError(f"unknown fault {name!r}")

    def clear_jam(self, to: str = "cashbox") -> None:
        """Staff clear a stuck note (``cashbox`` or ``front``) or a payout jam."""
        with self.lock:
            self.notes.clear_jam(to)
            if self.coins.op is not None and self.coins.op.kind == "payout_jammed":
                self.coins.op = None
            self.notes.dirty = True

    def load_cassette(self, unit: str, counts: Mapping[int, int]) -> None:
        """Bank staff put in a cassette (or refill the hopper) with these counts."""
        with self.lock:
            u = self.notes if unit == "notes" else self.coins
            for v in u.values:
                u.levels[v] = int(counts.get(v, 0))
                u.capacity[v] = max(u.capacity[v], u.levels[v])
            u.dirty = True

    def empty_cashbox(self) -> dict[int, int]:
        """Bank staff take the cashbox away; returns what was in it."""
        with self.lock:
            taken = {v: c for v, c in self.notes.cashbox.items() if c}
            self.notes.cashbox = {v: 0 for v in NOTE_VALUES}
            self.notes.stacker_full_fault = False
            self.notes.dirty = True
            return taken

    def snapshot(self) -> dict[str, Any]:
        """Everything a test needs to check the cash: levels, cashbox, tallies, state."""
        with self.lock:
            return {
                "notes": dict(self.notes.levels),
                "cashbox": dict(self.notes.cashbox),
                "coins": dict(self.coins.levels),
                "tallies": {k: dict(v) for k, v in self.tallies.items()},
                "notes_busy": self.notes.op.kind if self.notes.op else "",
                "coins_busy": self.coins.op.kind if self.coins.op else "",
                "notes_enabled": self.notes.enabled,
                "coins_enabled": self.coins.enabled,
                "in_transit": self.notes.op.value if self.notes.op and self.notes.op.kind != "dispensing" else 0,
            }

    # -- control socket (for the simulator as its own process) ------------------------
    def serve_control(self, path: Path) -> None:
        """Listen for JSON-line control commands on a Unix socket (a stale socket file is replaced).

        Raises:
            CashSimulatorBusy: another simulator runs on the same state file (its socket stays).
        """
        self._own()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        path.parent.mkdir(parents=True, exist_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(str(path))
        sock.listen(8)
        sock.setblocking(False)
        self._control = sock
        self._control_path = path

    def _accept_control(self) -> None:
        assert self._control is not None
        try:
            conn, _ = self._control.accept()
        except (BlockingIOError, OSError):
            return
        threading.Thread(target=self._control_conn, args=(conn,), daemon=True).start()

    def _control_conn(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rwb") as f:
            for line in f:
                try:
                    req = json.loads(line)
                    result = self.control(req)
                    out = {"ok": True, "result": result}
                except Exception as exc:  # a bad control request must not kill the hardware
                    out = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
                f.write(json.dumps(out).encode() + b"\n")
                f.flush()

    def control(self, req: Mapping[str, Any]) -> Any:
        """Run one control request (``{"cmd": ..., ...}``); the JSON-able result."""
        cmd = req.get("cmd")
        if cmd == "insert_note":
            return self.insert_note(int(req["value"]))
        if cmd == "insert_coin":
            return self.insert_coin(int(req["value"]))
        if cmd == "fault":
            self.fault(str(req["name"]), str(req.get("unit", "notes")), int(req.get("n", 1)))
            return None
        if cmd == "clear_jam":
            self.clear_jam(str(req.get("to", "cashbox")))
            return None
        if cmd == "load_cassette":
            self.load_cassette(str(req["unit"]), {int(k): int(v) for k, v in req["counts"].items()})
            return None
        if cmd == "empty_cashbox":
            return {str(k): v for k, v in self.empty_cashbox().items()}
        if cmd == "snapshot":
            return _jsonable(self.snapshot())
        if cmd == "ping":
            return "pong"
        raise ValueError(f"unknown control command {cmd!r}")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    return obj


class SimControl:
    """Client for a simulator running as its own process (JSON lines over a Unix socket).

    Args:
        path: the control socket.
        timeout: seconds to wait for each answer.
    """

    def __init__(self, path: str | os.PathLike[str], timeout: float = 5.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.f = self.sock.makefile("rwb")

    def call(self, cmd: str, **args: Any) -> Any:
        """Send one request; the result (raises RuntimeError on a refused request)."""
        self.f.write(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
        self.f.flush()
        line = self.f.readline()
        if not line:
            raise ConnectionError("simulator control socket closed")
        out = json.loads(line)
        if not out.get("ok"):
            raise RuntimeError(out.get("error", "simulator refused the request"))
        return out.get("result")

    def insert_note(self, value: int) -> bool:
        """See :meth:`CashSimulator.insert_note`."""
        return bool(self.call("insert_note", value=value))

    def insert_coin(self, value: int) -> bool:
        """See :meth:`CashSimulator.insert_coin`."""
        return bool(self.call("insert_coin", value=value))

    def fault(self, name: str, unit: str = "notes", n: int = 1) -> None:
        """See :meth:`CashSimulator.fault`."""
        self.call("fault", name=name, unit=unit, n=n)

    def snapshot(self) -> dict[str, Any]:
        """See :meth:`CashSimulator.snapshot` (keys of inner maps are strings)."""
        return self.call("snapshot")

    def close(self) -> None:
        """Close the connection."""
        with contextlib.suppress(OSError):
            self.f.close()
            self.sock.close()


def read_levels(state_path: Path, control: Path | None = None) -> tuple[dict[str, dict[int, int]], str]:
    """What a running simulator holds, read without disturbing it.

    Asked through its control socket when it has one; otherwise read from its state file
    (written on every change, so never behind what the kiosk has been told).

    Returns:
        ``{"notes": {fen: count}, "coins": {...}, "cashbox": {...}}`` and where it was read.
    """
    if control is not None and control.exists():
        snap = None
        with contextlib.suppress(OSError, RuntimeError):  # no answer: the state file tells the same
            ctl = SimControl(control)
            try:
                snap = ctl.snapshot()
            finally:
                ctl.close()
        if snap is not None:
            levels = {k: {int(v): int(n) for v, n in snap[k].items()} for k in ("notes", "coins", "cashbox")}
            return levels, f"its control socket {control}"
    try:
        data = json.loads(state_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OSError(f"cannot read the simulator's state {state_path}: {exc}") from None
    notes, coins = data.get("notes", {}), data.get("coins", {})
    out = {"notes": notes.get("levels", {}), "coins": coins.get("levels", {}), "cashbox": notes.get("cashbox", {})}
    return {k: {int(v): int(n) for v, n in m.items()} for k, m in out.items()}, f"its state file {state_path}"


def _parse_counts(text: str, allowed: Iterable[int]) -> dict[int, int]:
    counts: dict[int, int] = {}
    allowed = set(allowed)
    for part in filter(None, text.split(",")):
        value, _, count = part.partition("=")
        v = int(value)
        if v not in allowed:
            raise SystemExit(f"{v} is not one of {sorted(allowed)}")
        counts[v] = int(count)
    return counts


def main(argv: list[str] | None = None) -> int:
    """Run the simulator as its own process until killed."""
    p = argparse.ArgumentParser(prog="python -m devices.cash_sim", description=__doc__.split("\n")[0])
    p.add_argument("--link", required=True, help="symlink to create for the (shared) port")
    p.add_argument("--coins-link", help="separate port link for the hopper")
    p.add_argument("--state", help="state file (cassette counts survive restarts)")
    p.add_argument("--control", help="Unix socket for control commands")
    p.add_argument("--notes", default="10000=10,5000=10,2000=20,1000=20,500=20,100=30",
                   help="initial note float, fen=count,...")
    p.add_argument("--coins", default="100=50,50=50,10=100", help="initial coin float")
    p.add_argument("--notes-address", type=int, default=0)
    p.add_argument("--coins-address", type=int, default=16)
    p.add_argument("--speed", type=float, default=1.0, help="mechanical timings divided by this")
    p.add_argument("--escrow-timeout", type=float, default=10.0)
    p.add_argument("--host-timeout", type=float, default=5.0)
    args = p.parse_args(argv)
    timing = SimTiming(escrow_timeout_s=args.escrow_timeout, host_timeout_s=args.host_timeout,
                       speed=args.speed)
    notes = SimNoteRecycler(args.notes_address, _parse_counts(args.notes, NOTE_VALUES), timing)
    coins = SimCoinHopper(args.coins_address, _parse_counts(args.coins, COIN_VALUES), timing)
    sim = CashSimulator(
        notes, coins, Path(args.link), Path(args.coins_link) if args.coins_link else None,
        Path(args.state) if args.state else None,
    )
    try:
        sim.start()
        if args.control:
            sim.serve_control(Path(args.control))
    except CashSimulatorBusy as exc:
        print(f"cash_sim: {exc}", file=sys.stderr)
        return 1
    print(f"READY {sim.port_path('notes')}", flush=True)
    stop = threading.Event()
    import signal

    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
