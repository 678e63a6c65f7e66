"""Cash units as the kiosk sees them: one :class:`CashDevice` per unit, typed events, config.

A kiosk has two units: a **note recycler** (accepts notes into escrow, stacks them,
pays notes back out of its payout store) and a **coin hopper** (takes coins from an
attached coin mechanism and pays coins out). Each is a :class:`CashDevice`. The
real backend speaks SSP over a serial port (``devices.ssp_serial``); the simulator
(``devices.cash_sim``) speaks the same protocol over a pseudo-terminal, so the whole
kiosk, including the serial driver, runs without hardware.

Backends are chosen by name in ``[cash] backend`` and imported lazily.
"""

from __future__ import annotations

import abc
import asyncio
import importlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any

from assistant.errors import ConfigError

log = logging.getLogger(__name__)


class Unit(StrEnum):
    """The kiosk's cash units (also the ``unit`` column of ``cash_unit``)."""

    NOTES = "notes"
    """Note recycler: payout store, payable."""
    COINS = "coins"
    """Coin hopper: payable."""
    CASHBOX = "cashbox"
    """The recycler's cashbox: notes that cannot be paid out again."""


class DeviceEventKind(StrEnum):
    """What a unit reported in a poll (protocol events mapped to plain words)."""

    RESET = "reset"
    """The unit restarted (power cycle); follow-up events tell what it found."""
    READING = "reading"
    """A note is being read."""
    ESCROW = "escrow"
    """A valid note waits in escrow: the host must accept, reject or hold it."""
    NOTE_CREDIT = "note_credit"
    """The note passed the point of no return (not yet stacked)."""
    REJECTING = "rejecting"
    REJECTED = "rejected"
    """A note was handed back to the customer."""
    STACKING = "stacking"
    STACKED = "stacked"
    """A note is in the cashbox: credit it now."""
    STORED = "stored"
    """A note is in the payout store (recycled): credit it now."""
    COIN_CREDIT = "coin_credit"
    """A coin was accepted into the hopper: credit it now."""
    DISPENSING = "dispensing"
    """A payout is in progress; ``value_fen`` paid so far."""
    DISPENSED = "dispensed"
    """A payout finished; ``value_fen`` paid in total."""
    INCOMPLETE_PAYOUT = "incomplete_payout"
    """A payout stopped short (``value_fen`` paid of ``requested_fen``)."""
    TIMEOUT = "timeout"
    """A payout could not be completed (e.g. the hopper ran empty); ``value_fen`` paid."""
    HALTED = "halted"
    """The host halted a payout; ``value_fen`` paid."""
    PAYOUT_JAM = "payout_jam"
    """Coins or notes jammed while paying out; ``value_fen`` paid before the jam."""
    NOTE_JAM = "note_jam"
    """A note is stuck in the transport (safe or unsafe jam); staff must clear it."""
    CLEARED_TO_CASHBOX = "cleared_to_cashbox"
    """A stuck note ended up in the cashbox (credit it)."""
    CLEARED_FROM_FRONT = "cleared_from_front"
    """A stuck note was handed back at the front."""
    STACKER_FULL = "stacker_full"
    CASHBOX_REMOVED = "cashbox_removed"
    CASHBOX_REPLACED = "cashbox_replaced"
    DEVICE_FULL = "device_full"
    DISABLED = "disabled"
    FRAUD = "fraud"
    COIN_JAM = "coin_jam"
    OUT_OF_SERVICE = "out_of_service"
    OTHER = "other"
    """An event the kiosk does not act on (kept for the transcript)."""


FAULT_KINDS = frozenset(
    {
        DeviceEventKind.NOTE_JAM,
        DeviceEventKind.PAYOUT_JAM,
        DeviceEventKind.STACKER_FULL,
        DeviceEventKind.CASHBOX_REMOVED,
        DeviceEventKind.DEVICE_FULL,
        DeviceEventKind.FRAUD,
        DeviceEventKind.COIN_JAM,
        DeviceEventKind.OUT_OF_SERVICE,
        DeviceEventKind.TIMEOUT,
        DeviceEventKind.INCOMPLETE_PAYOUT,
    }
)
"""Events that mean something is wrong and staff may be needed."""

BUSY_KINDS = frozenset(
    {
        DeviceEventKind.READING,
        DeviceEventKind.STACKING,
        DeviceEventKind.REJECTING,
        DeviceEventKind.DISPENSING,
        DeviceEventKind.NOTE_CREDIT,
    }
)
"""Events that mean the unit is in the middle of moving cash."""


@dataclass(frozen=True)
class DeviceEvent:
    """One event from a cash unit."""

    kind: DeviceEventKind
    """What happened."""
    unit: Unit
    """Which unit reported it."""
    value_fen: int = 0
    """Note/coin value, or value paid out so far, in fen."""
    requested_fen: int = 0
    """For an incomplete payout: the value that was asked for."""
    code: int = 0
    """The raw protocol event code (for the transcript and the journal)."""


@dataclass(frozen=True)
class UnitInfo:
    """What a unit said about itself when opened."""

    unit: Unit
    model: str
    """Unit type name, e.g. ``SMART_PAYOUT``."""
    firmware: str
    country: str
    protocol_version: int
    denominations: tuple[int, ...]
    """Values it accepts and pays, in fen, ascending."""


@dataclass(frozen=True)
class NoteCounters:
    """Lifetime note counters (the recycler keeps them in non-volatile memory)."""

    stacked: int = 0
    """Notes put in the cashbox."""
    stored: int = 0
    """Notes put in the payout store (recycled)."""
    dispensed: int = 0
    """Notes paid out."""
    transferred: int = 0
    """Notes moved from the payout store to the cashbox."""
    rejected: int = 0
    """Notes handed back to the customer."""

    @property
    def accepted(self) -> int:
        """Every note the unit has taken in for good (cashbox + payout store)."""
        return self.stacked + self.stored


class CashDevice(abc.ABC):
    """One cash unit (note recycler or coin hopper) behind an async interface.

    Every method has its own timeout inside the backend and raises a
    :class:`~assistant.errors.CashDeviceError` subclass when the unit cannot be
    reached, so a caller never waits forever on a dead port.
    """

    unit: Unit
    """``Unit.NOTES`` or ``Unit.COINS``."""
    listener: Callable[[str, str, dict[str, Any]], None] | None = None
    """Called with (unit, command, args) for every command that changes something (transcript)."""

    def link_stats(self) -> dict[str, int]:
        """Counters of link trouble that was recovered from (retransmissions, corrupt replies)."""
        return {}

    @abc.abstractmethod
    async def open(self) -> UnitInfo:
        """Connect, synchronise, read the setup; leaves acceptance off."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the port (safe to call twice)."""

    @abc.abstractmethod
    async def reopen(self) -> UnitInfo:
        """Close and open again (after the port vanished or stopped answering)."""

    @property
    @abc.abstractmethod
    def denominations(self) -> tuple[int, ...]:
        """Accepted and payable values in fen (known after :meth:`open`)."""

    @abc.abstractmethod
    async def enable(self) -> None:
        """Put the unit in service (payouts possible)."""

    @abc.abstractmethod
    async def disable(self) -> None:
        """Take the unit out of service; a note in escrow is handed back."""

    @abc.abstractmethod
    async def set_accepting(self, denominations: frozenset[int]) -> None:
        """Accept only these denominations from the customer (empty = accept nothing)."""

    @abc.abstractmethod
    async def poll(self) -> list[DeviceEvent]:
        """Events since the last poll. With a note in escrow this holds it instead."""

    @property
    @abc.abstractmethod
    def escrow_fen(self) -> int:
        """Value of the note waiting in escrow for a decision (0 if none)."""

    @abc.abstractmethod
    async def accept_escrow(self) -> None:
        """Stack the note in escrow (its STACKED/STORED event follows in a poll)."""

    @abc.abstractmethod
    async def reject_escrow(self) -> None:
        """Hand the note in escrow back to the customer."""

    @abc.abstractmethod
    async def hold_escrow(self) -> None:
        """Keep the note in escrow a while longer (the unit returns it by itself otherwise)."""

    @abc.abstractmethod
    async def levels(self) -> dict[int, int]:
        """Payable count per denomination (fen -> count)."""

    @abc.abstractmethod
    async def counters(self) -> NoteCounters:
        """Lifetime note counters (hoppers return zeros)."""

    @abc.abstractmethod
    async def payout(self, counts: Mapping[int, int], test: bool) -> None:
        """Pay out exactly these counts (fen -> count); ``test`` only checks feasibility.

        Raises :class:`~assistant.errors.CashPayoutRefused` when the unit refuses.
        """

    @abc.abstractmethod
    async def payout_amount(self, amount_fen: int, test: bool) -> None:
        """Pay out a value and let the unit choose the pieces (fallback for old firmware)."""

    @abc.abstractmethod
    async def halt(self) -> None:
        """Stop a payout in progress (a HALTED event reports what was paid)."""

    async def settle_escrow(
        self, decide: Awaitable[bool], hold_interval: float, max_hold: float
    ) -> bool:
        """Keep the note in escrow with HOLD while ``decide`` runs, then stack or return it.

        The unit hands an escrowed note back by itself after about 10 s, so a decision
        that needs the database (the journal entry comes before the note is stacked)
        must not race that timer. If ``decide`` fails or takes longer than ``max_hold``
        the note goes back: returning a note is always safe, keeping one unrecorded is not.

        Returns:
            True if the note was accepted (it will be reported STACKED or STORED).
        """
        task = asyncio.ensure_future(decide)
        started = time.monotonic()
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=hold_interval)
                if task in done:
                    break
                if time.monotonic() - started > max_hold:
                    task.cancel()
                    await self.reject_escrow()
                    return False
                await self.hold_escrow()
        except BaseException:
            task.cancel()
            raise
        if task.exception() is not None or not task.result():
            await self.reject_escrow()
            if task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
            return False
        await self.accept_escrow()
        return True


# ----------------------------------------------------------------------------- config

CNY_NOTES_FEN = (10000, 5000, 2000, 1000, 500, 100)
"""Renminbi notes (100, 50, 20, 10, 5, 1 元) in fen."""
CNY_COINS_FEN = (100, 50, 10)
"""Renminbi coins (1 元, 5 角, 1 角) in fen."""

_DEFAULT_NOTES = MappingProxyType(
    {"10000": 10, "5000": 10, "2000": 20, "1000": 20, "500": 20, "100": 30}
)
_DEFAULT_COINS = MappingProxyType({"100": 50, "50": 50, "10": 100})


@dataclass(frozen=True)
class CashConfig:
    """The ``[cash]`` section of ``config/kiosk.toml``."""

    backend: str = "ssp"
    """Device backend by name: ``ssp`` (pyserial driver)."""
    simulate: bool = True
    """Start the SSP simulator on a pseudo-terminal inside the kiosk and drive it."""
    port: str = "cash/ssp.tty"
    """Serial port shared by both units (SSP is a multi-drop bus), e.g. ``/dev/ttyUSB0``;
    relative paths are in the kiosk data folder (the simulator makes it a link to its pty)."""
    notes_port: str = ""
    """Port of the note recycler if it has its own (empty = ``port``)."""
    coins_port: str = ""
    """Port of the coin hopper if it has its own (empty = ``port``)."""
    notes_address: int = 0
    """SSP address of the note recycler (SMART Payout default 0)."""
    coins_address: int = 16
    """SSP address of the coin hopper (SMART Hopper default 0x10)."""
    baudrate: int = 9600
    currency: str = "CNY"
    reply_timeout_s: float = 0.5
    """How long to wait for one reply before retransmitting."""
    retries: int = 3
    """Retransmissions (same sequence bit) before the unit counts as not answering."""
    poll_interval_s: float = 0.2
    """Time between polls of each unit."""
    hold_interval_s: float = 2.0
    """HOLD is re-sent this often while a note waits in escrow (units return it after ~10 s)."""
    max_hold_s: float = 30.0
    """A note undecided for this long is handed back."""
    payout_mode: str = "denomination"
    """``denomination`` (kiosk picks the pieces) or ``amount`` (unit picks them)."""
    auto_credit_limit_fen: int = 100
    """Change that cannot be paid out, below this, is credited without asking (分, empty hopper)."""
    finish_timeout_s: float = 60.0
    """Longest wait for a payout to finish before calling staff."""
    reconnect_interval_s: float = 2.0
    """How often to try a lost port again."""
    sim_control: str = "cash/sim.sock"
    """Control socket of the simulator the kiosk runs itself: ``main.py cash insert`` puts
    notes and coins in through it (relative to the data folder; empty: none)."""
    sim_state: str = "cash/sim.json"
    """Where the simulator keeps its cassette counts (survives a kiosk crash); relative to the data folder."""
    sim_notes: dict[str, int] = field(default_factory=lambda: dict(_DEFAULT_NOTES))
    """Simulator's initial note float: fen value -> count."""
    sim_coins: dict[str, int] = field(default_factory=lambda: dict(_DEFAULT_COINS))
    """Simulator's initial coin float: fen value -> count."""
    sim_escrow_timeout_s: float = 10.0
    """Simulator: an unheld note in escrow goes back to the customer after this."""
    sim_speed: float = 1.0
    """Simulator: mechanical timings divided by this (tests run it fast)."""

    def __post_init__(self) -> None:
        if self.payout_mode not in ("denomination", "amount"):
            raise ConfigError(f"[cash] payout_mode must be 'denomination' or 'amount', got {self.payout_mode!r}")
        for name in ("reply_timeout_s", "poll_interval_s", "hold_interval_s", "max_hold_s", "finish_timeout_s",
                     "reconnect_interval_s", "sim_escrow_timeout_s", "sim_speed"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"[cash] {name} = {getattr(self, name):g}: must be more than 0")
        if self.retries < 0:
            # a negative count sent no command at all, and the unit was reported as not answering
            raise ConfigError(f"[cash] retries = {self.retries}: must be 0 or more (retransmissions after the first try)")
        for name in ("notes_address", "coins_address"):
            if not 0 <= getattr(self, name) <= 0x7F:
                raise ConfigError(f"[cash] {name} must be an SSP address 0 .. 127, got {getattr(self, name)}")
        if self.notes_address == self.coins_address and (self.notes_port or self.port) == (self.coins_port or self.port):
            raise ConfigError(f"[cash] notes_address and coins_address are both {self.notes_address} on one port")
        if self.auto_credit_limit_fen < 0:
            raise ConfigError(f"[cash] auto_credit_limit_fen must be 0 or more, got {self.auto_credit_limit_fen}")
        for name, known in (("sim_notes", CNY_NOTES_FEN), ("sim_coins", CNY_COINS_FEN)):
            for key, count in getattr(self, name).items():
                if not key.isdigit() or int(key) <= 0 or count < 0:
                    raise ConfigError(f"[cash] {name}: '{key}' = {count} is not fen = count")
                if self.currency == "CNY" and int(key) not in known:
                    raise ConfigError(
                        f"[cash] {name}: there is no {int(key) / 100:g} yuan {name[4:-1]} "
                        f"(keys are fen: {', '.join(map(str, known))})"
                    )

    def float_of(self, unit: Unit) -> dict[int, int]:
        """The simulator's initial float for a unit as fen -> count."""
        raw = self.sim_notes if unit == Unit.NOTES else self.sim_coins
        return {int(k): int(v) for k, v in raw.items()}

    def port_of(self, unit: Unit) -> str:
        """The configured port path for a unit."""
        own = self.notes_port if unit == Unit.NOTES else self.coins_port
        return own or self.port

    def address_of(self, unit: Unit) -> int:
        """The SSP address of a unit."""
        return self.notes_address if unit == Unit.NOTES else self.coins_address


_BACKENDS = {"ssp": "devices.ssp_serial"}


@dataclass
class CashUnits:
    """The two opened units (and the simulator when the kiosk runs one itself)."""

    notes: CashDevice
    coins: CashDevice
    simulator: Any = None
    """The in-process :class:`devices.cash_sim.CashSimulator`, if ``simulate``."""

    async def aclose(self) -> None:
        """Close both units and stop the simulator."""
        await self.notes.close()
        await self.coins.close()
        if self.simulator is not None:
            self.simulator.stop()


def create_cash_units(cfg: CashConfig, root: Path, *, start_simulator: bool | None = None) -> CashUnits:
    """Build the two units from config (not yet opened).

    With ``simulate`` the simulator is started first on a pseudo-terminal and the
    port link in the config is pointed at it; the driver is the same either way.

    Args:
        cfg: the ``[cash]`` section.
        root: folder relative paths in the config are resolved against (the kiosk's
            data folder, ``Config.data_dir``).
        start_simulator: override ``cfg.simulate``.
    """
    module_name = _BACKENDS.get(cfg.backend)
    if module_name is None:
        raise ConfigError(f"[cash] backend {cfg.backend!r} unknown; known: {', '.join(_BACKENDS)}")
    backend = importlib.import_module(module_name)
    sim = None
    if cfg.simulate if start_simulator is None else start_simulator:
        from devices.cash_sim import CashSimulator

        sim = CashSimulator.from_config(cfg, root)
        sim.start()
        if cfg.sim_control:
            control = Path(cfg.sim_control)
            control = control if control.is_absolute() else root / control
            try:
                sim.serve_control(control)
            except OSError as exc:  # e.g. a socket path too long: the kiosk still runs
                log.warning("simulator control socket %s not opened: %s", control, exc)
    notes, coins = backend.units_from_config(cfg, root)
    return CashUnits(notes=notes, coins=coins, simulator=sim)


def resolve(root: Path, path: str) -> Path:
    """A config path relative to ``root`` unless absolute."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else root / p


def fen_map(raw: Mapping[Any, Any]) -> dict[int, int]:
    """A JSON/TOML mapping with string keys back to fen -> count."""
    return {int(k): int(v) for k, v in raw.items()}
