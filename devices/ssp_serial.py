"""The SSP driver over pyserial: a note recycler and a coin hopper on their own addresses.

Three layers, each replaceable on its own:

* :class:`SerialPort` - one port (possibly a multi-drop bus shared by both units):
  writes a frame, reads until the matching reply frame or a timeout. One
  transaction at a time on the wire.
* :class:`SspLink` - one unit address: sequence bit, retransmission with the same
  bit after a missing or corrupt reply (the unit answers a repeat from its cache,
  so nothing runs twice), and a :class:`Wrapper` for the payload. The plain
  wrapper passes data through; an eSSP wrapper (``0x7E`` + AES-128 + count + CRC)
  would slot in here without touching the layers above or below.
* :class:`SspNoteRecycler` / :class:`SspCoinHopper` - the :class:`~devices.cash.CashDevice`
  API: commands, typed events, escrow HOLD, levels, payouts, halt.

All serial I/O is blocking and runs in worker threads via ``asyncio.to_thread``,
and every await carries a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.errors import (
    CashDeviceError,
    CashDeviceNotResponding,
    CashPayoutRefused,
    CashPortLost,
    MissingPackageError,
)
from devices import ssp
from devices.cash import (
    CashConfig,
    CashDevice,
    DeviceEvent,
    DeviceEventKind,
    NoteCounters,
    Unit,
    UnitInfo,
    resolve,
)
from devices.ssp import Command, Event, PayoutRefusal, PollEvent

try:
    import serial
except ImportError:  # pragma: no cover - pyserial is a core dependency
    serial = None
try:
    from termios import error as TermiosError  # noqa: N812 - a vanished pty raises this, not OSError
except ImportError:  # pragma: no cover - not POSIX
    TermiosError = OSError  # noqa: N816

log = logging.getLogger(__name__)


class SerialPort:
    """A serial port carrying SSP frames; shared by every unit on it.

    Args:
        path: device path (or a symlink to it, e.g. the simulator's link).
        baudrate: 9600 for SSP units.
    """

    def __init__(self, path: str | Path, baudrate: int = 9600) -> None:
        if serial is None:
            raise MissingPackageError("serial", "all")
        self.path = str(path)
        self.baudrate = baudrate
        self._ser: Any = None
        self._lock = threading.Lock()
        self._decoder = ssp.FrameDecoder()
        self.crc_errors = 0
        """Replies thrown away because their CRC did not match."""

    @property
    def is_open(self) -> bool:
        """True while the port is open."""
        return self._ser is not None

    def open(self) -> None:
        """Open the port (8N2 as SSP wants); raises :class:`CashDeviceNotResponding`."""
        with self._lock:
            if self._ser is not None:
                return
            try:
                # Exclusive: a second program on the same cash units (a command-line tool
                # beside the running kiosk) would take replies meant for the other one.
                self._ser = serial.Serial(
                    self.path, self.baudrate, bytesize=8, parity="N", stopbits=2,
                    timeout=0.01, write_timeout=1.0, exclusive=True,
                )
            except (serial.SerialException, OSError, TermiosError) as exc:
                if "exclusively lock" in str(exc):
                    raise CashDeviceNotResponding(
                        f"cash port {self.path} is in use by another program (the running kiosk?); "
                        "use the kiosk's staff menu, or stop the kiosk first"
                    ) from None
                raise CashDeviceNotResponding(f"cash port {self.path} cannot be opened: {exc}") from None
            self._decoder.reset()

    def close(self) -> None:
        """Close the port (safe to call twice)."""
        with self._lock:
            if self._ser is not None:
                with contextlib.suppress(serial.SerialException, OSError, TermiosError):
                    self._ser.close()
                self._ser = None

    def transact(self, frame: bytes, address: int, seq: int, timeout: float) -> ssp.Frame | None:
        """Write ``frame``; the reply from ``address`` with ``seq``, or None after ``timeout``.

        A reply with a bad CRC counts in :attr:`crc_errors` and is treated like no reply
        (the caller retransmits). Stale replies (other address or sequence bit) are skipped.
        Raises :class:`CashPortLost` if the port fails.
        """
        with self._lock:
            ser = self._ser
            if ser is None:
                raise CashPortLost(f"cash port {self.path} is closed")
            try:
                ser.reset_input_buffer()
                self._decoder.reset()
                ser.write(frame)
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    chunk = ser.read(max(1, ser.in_waiting))
                    if not chunk:
                        continue
                    for item in self._decoder.feed(chunk):
                        if isinstance(item, ssp.CrcError):
                            self.crc_errors += 1
                            return None
                        if isinstance(item, ssp.SspError):
                            continue
                        if item.address == address and item.seq == seq:
                            return item
                return None
            except (serial.SerialException, OSError, TermiosError) as exc:
                raise CashPortLost(f"cash port {self.path} failed: {exc}") from None


class Wrapper:
    """Payload transform between the link and the units (identity for plain SSP).

    eSSP would implement this: ``wrap`` prefixes 0x7E and encrypts
    (length, count, data, padding, CRC) with the negotiated AES key; ``unwrap``
    reverses it and checks the count. Everything else stays as it is.
    """

    def wrap(self, data: bytes) -> bytes:
        """Data to put in the frame for command ``data``."""
        return data

    def unwrap(self, data: bytes) -> bytes:
        """Reply data from the frame's data."""
        return data


class SspLink:
    """One unit address on a port: sequence bit, retries, wrapping.

    Args:
        port: the shared port.
        address: the unit's SSP address.
        reply_timeout: seconds to wait for each reply.
        retries: retransmissions before giving up.
        wrapper: payload transform (plain SSP by default).
    """

    def __init__(self, port: SerialPort, address: int, reply_timeout: float = 0.5,
                 retries: int = 3, wrapper: Wrapper | None = None) -> None:
        self.port = port
        self.address = address
        self.reply_timeout = reply_timeout
        self.retries = retries
        self.wrapper = wrapper or Wrapper()
        self.seq = 1
        self.retransmissions = 0
        """Commands sent again because a reply was missing or corrupt."""

    def command(self, data: bytes) -> ssp.Reply:
        """Send one command and return the unit's reply (blocking).

        Raises :class:`CashDeviceNotResponding` when no valid reply comes after all retries.
        """
        frame = ssp.encode_frame(self.address, self.seq, self.wrapper.wrap(data))
        for attempt in range(self.retries + 1):
            if attempt:
                self.retransmissions += 1
                log.info("SSP unit 0x%02X: no valid reply to 0x%02X, retransmitting (%d)",
                         self.address, data[0], attempt)
            reply = self.port.transact(frame, self.address, self.seq, self.reply_timeout)
            if reply is not None:
                self.seq ^= 1
                return ssp.parse_reply(self.wrapper.unwrap(reply.data))
        raise CashDeviceNotResponding(
            f"cash unit at address {self.address} on {self.port.path} does not answer "
            f"(command 0x{data[0]:02X}, {self.retries + 1} tries)"
        )

    def sync(self) -> None:
        """SYNC: reset the sequence bit at both ends."""
        self.seq = 1
        reply = self.command(ssp.cmd(Command.SYNC))
        if not reply.ok:
            raise CashDeviceError(f"cash unit {self.address}: SYNC refused ({reply.name})")


@dataclass
class _Timing:
    reply_timeout: float
    retries: int
    hold_interval: float
    max_hold: float

    @property
    def call_timeout(self) -> float:
        # the whole retry budget plus slack: an await never outlives the link's own timeouts
        return self.reply_timeout * (self.retries + 1) + 2.0


class SspUnit(CashDevice):
    """Common SSP behaviour for both units."""

    unit: Unit

    def __init__(self, port: SerialPort, address: int, *, currency: str = "CNY",
                 reply_timeout: float = 0.5, retries: int = 3, hold_interval: float = 2.0,
                 max_hold: float = 30.0, wrapper: Wrapper | None = None,
                 owns_port: bool = True) -> None:
        self.port = port
        self.link = SspLink(port, address, reply_timeout, retries, wrapper)
        self.currency = currency
        self.timing = _Timing(reply_timeout, retries, hold_interval, max_hold)
        self.info: UnitInfo | None = None
        self._values: tuple[int, ...] = ()
        self._pending: list[DeviceEvent] = []
        self._lock = asyncio.Lock()
        self.owns_port = owns_port
        self.listener = None

    # -- plumbing ---------------------------------------------------------------------
    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        async with self._lock:
            return await asyncio.wait_for(asyncio.to_thread(fn, *args), self.timing.call_timeout)

    async def _cmd(self, data: bytes, *, expect_ok: bool = True) -> ssp.Reply:
        try:
            reply: ssp.Reply = await self._run(self.link.command, data)
        except TimeoutError:
            raise CashDeviceNotResponding(
                f"cash unit {self.unit} on {self.port.path} did not answer in time"
            ) from None
        if expect_ok and not reply.ok:
            raise CashDeviceError(
                f"cash unit {self.unit}: command 0x{data[0]:02X} refused ({reply.name})"
            )
        return reply

    def _note(self, command: str, **args: Any) -> None:
        if self.listener is not None:
            self.listener(str(self.unit), command, args)

    @property
    def denominations(self) -> tuple[int, ...]:
        return tuple(sorted(self._values))

    def link_stats(self) -> dict[str, int]:
        return {"retransmissions": self.link.retransmissions, "crc_errors": self.port.crc_errors}

    # -- lifecycle --------------------------------------------------------------------
    async def open(self) -> UnitInfo:
        await self._run(self.port.open)
        try:
            await self._run(self.link.sync)
        except TimeoutError:
            raise CashDeviceNotResponding(f"cash unit {self.unit} on {self.port.path} does not answer") from None
        await self._cmd(ssp.cmd_host_protocol(ssp.PROTOCOL_VERSION))
        reply = await self._cmd(ssp.cmd(Command.SETUP_REQUEST))
        setup = ssp.decode_setup(reply.data)
        if setup.country != self.currency:
            raise CashDeviceError(f"cash unit {self.unit} is set up for {setup.country}, not {self.currency}")
        self._values = tuple(setup.values)
        # a note left in escrow by a previous run must go back before anything can POLL it in
        await self._cmd(ssp.cmd(Command.DISABLE))
        self._pending.clear()
        await self._close_acceptance()
        try:
            model = ssp.UnitType(setup.unit_type).name
        except ValueError:
            model = f"type {setup.unit_type}"
        self.info = UnitInfo(self.unit, model, setup.firmware, setup.country,
                             setup.protocol_version, self.denominations)
        self._note("open", model=model, denominations=list(self.denominations))
        return self.info

    async def close(self) -> None:
        if self.owns_port:
            await asyncio.to_thread(self.port.close)

    async def reopen(self) -> UnitInfo:
        await asyncio.to_thread(self.port.close)
        return await self.open()

    async def enable(self) -> None:
        await self._cmd(ssp.cmd(Command.ENABLE))
        self._note("enable")

    async def disable(self) -> None:
        await self._cmd(ssp.cmd(Command.DISABLE))
        self._note("disable")

    async def _close_acceptance(self) -> None:
        await self.set_accepting(frozenset())

    # -- queries ----------------------------------------------------------------------
    async def levels(self) -> dict[int, int]:
        reply = await self._cmd(ssp.cmd(Command.GET_ALL_LEVELS))
        return {value: count for count, value, _country in ssp.decode_levels(reply.data)}

    async def counters(self) -> NoteCounters:
        return NoteCounters()

    # -- events -----------------------------------------------------------------------
    async def poll(self) -> list[DeviceEvent]:
        reply = await self._cmd(ssp.cmd(Command.POLL))
        events = self._pending + self._map(ssp.decode_poll_events(reply.data))
        self._pending = []
        return events

    def _map(self, raw: list[PollEvent]) -> list[DeviceEvent]:
        return [self._event(ev) for ev in raw]

    def _event(self, ev: PollEvent) -> DeviceEvent:
        kind = _EVENT_KINDS.get(ev.code, DeviceEventKind.OTHER)
        req = sum(ev.requested)
        return DeviceEvent(kind=kind, unit=self.unit, value_fen=ev.value, requested_fen=req, code=ev.code)

    # -- escrow (only the recycler has one) -------------------------------------------
    @property
    def escrow_fen(self) -> int:
        return 0

    async def accept_escrow(self) -> None:
        raise CashDeviceError(f"{self.unit} has no escrow")

    async def reject_escrow(self) -> None:
        raise CashDeviceError(f"{self.unit} has no escrow")

    async def hold_escrow(self) -> None:
        raise CashDeviceError(f"{self.unit} has no escrow")

    # -- payouts ----------------------------------------------------------------------
    async def payout(self, counts: Mapping[int, int], test: bool) -> None:
        wanted = [(n, v) for v, n in sorted(counts.items(), reverse=True) if n > 0]
        if not wanted:
            return
        for _n, v in wanted:
            if v not in self._values:
                raise CashPayoutRefused(f"{self.unit} cannot pay {v} fen pieces", "OUT_OF_RANGE")
        reply = await self._cmd(
            ssp.cmd_payout_by_denomination(wanted, self.currency, test), expect_ok=False
        )
        self._check_payout(reply, f"payout {dict(counts)}", test)
        self._note("payout_test" if test else "payout", counts={str(v): n for n, v in wanted})

    async def payout_amount(self, amount_fen: int, test: bool) -> None:
        reply = await self._cmd(ssp.cmd_payout_amount(amount_fen, self.currency, test), expect_ok=False)
        self._check_payout(reply, f"payout of {amount_fen} fen", test)
        self._note("payout_amount_test" if test else "payout_amount", amount_fen=amount_fen)

    def _check_payout(self, reply: ssp.Reply, what: str, test: bool) -> None:
        if reply.ok:
            return
        reason = reply.name
        if reply.code == ssp.Response.CANNOT_PROCESS and reply.data:
            try:
                reason = PayoutRefusal(reply.data[0]).name
            except ValueError:
                reason = f"code {reply.data[0]}"
        raise CashPayoutRefused(
            f"{self.unit} refused {'test ' if test else ''}{what}: {reason}", reason
        )

    async def halt(self) -> None:
        await self._cmd(ssp.cmd(Command.HALT_PAYOUT))
        self._note("halt")


_EVENT_KINDS: dict[int, DeviceEventKind] = {
    Event.SLAVE_RESET: DeviceEventKind.RESET,
    Event.CREDIT_NOTE: DeviceEventKind.NOTE_CREDIT,
    Event.REJECTING: DeviceEventKind.REJECTING,
    Event.REJECTED: DeviceEventKind.REJECTED,
    Event.STACKING: DeviceEventKind.STACKING,
    Event.STACKED: DeviceEventKind.STACKED,
    Event.NOTE_STORED_IN_PAYOUT: DeviceEventKind.STORED,
    Event.SAFE_JAM: DeviceEventKind.NOTE_JAM,
    Event.UNSAFE_JAM: DeviceEventKind.NOTE_JAM,
    Event.DISABLED: DeviceEventKind.DISABLED,
    Event.STACKER_FULL: DeviceEventKind.STACKER_FULL,
    Event.FRAUD_ATTEMPT: DeviceEventKind.FRAUD,
    Event.NOTE_CLEARED_FROM_FRONT: DeviceEventKind.CLEARED_FROM_FRONT,
    Event.NOTE_CLEARED_TO_CASHBOX: DeviceEventKind.CLEARED_TO_CASHBOX,
    Event.CASHBOX_REMOVED: DeviceEventKind.CASHBOX_REMOVED,
    Event.CASHBOX_REPLACED: DeviceEventKind.CASHBOX_REPLACED,
    Event.COIN_CREDIT: DeviceEventKind.COIN_CREDIT,
    Event.INCOMPLETE_PAYOUT: DeviceEventKind.INCOMPLETE_PAYOUT,
    Event.DISPENSING: DeviceEventKind.DISPENSING,
    Event.TIME_OUT: DeviceEventKind.TIMEOUT,
    Event.HALTED: DeviceEventKind.HALTED,
    Event.JAMMED: DeviceEventKind.PAYOUT_JAM,
    Event.DISPENSED: DeviceEventKind.DISPENSED,
    Event.DEVICE_FULL: DeviceEventKind.DEVICE_FULL,
    Event.PAYOUT_OUT_OF_SERVICE: DeviceEventKind.OUT_OF_SERVICE,
    Event.COIN_MECH_JAMMED: DeviceEventKind.COIN_JAM,
}


class SspNoteRecycler(SspUnit):
    """A note validator with a recycling payout store (e.g. NV200 + SMART Payout)."""

    unit = Unit.NOTES

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._escrow = 0
        self._escrow_since = 0.0
        self._last_hold = 0.0
        self._moving = 0  # value of the note between escrow and stacked

    @property
    def escrow_fen(self) -> int:
        return self._escrow

    async def set_accepting(self, denominations: frozenset[int]) -> None:
        channels = [i + 1 for i, v in enumerate(self._values) if v in denominations]
        await self._cmd(ssp.cmd_set_inhibits(channels))
        self._note("set_inhibits", accept=sorted(denominations))

    async def counters(self) -> NoteCounters:
        reply = await self._cmd(ssp.cmd(Command.GET_COUNTERS))
        c = ssp.decode_counters(reply.data)
        return c

    async def poll(self) -> list[DeviceEvent]:
        if self._escrow:
            # a POLL would stack the note: hold it (and give up safely if undecided too long)
            now = time.monotonic()
            if now - self._escrow_since > self.timing.max_hold:
                log.warning("note of %d fen undecided for %.0f s: handing it back",
                            self._escrow, now - self._escrow_since)
                await self.reject_escrow()
            elif now - self._last_hold >= self.timing.hold_interval:
                await self.hold_escrow()
            out, self._pending = self._pending, []
            return out
        return await super().poll()

    def _value_of(self, channel: int) -> int:
        if 1 <= channel <= len(self._values):
            return self._values[channel - 1]
        return 0

    def _map(self, raw: list[PollEvent]) -> list[DeviceEvent]:
        out = []
        for ev in raw:
            if ev.code == Event.READ_NOTE:
                if ev.channel:
                    value = self._value_of(ev.channel)
                    self._escrow = value
                    self._escrow_since = self._last_hold = time.monotonic()
                    out.append(DeviceEvent(DeviceEventKind.ESCROW, self.unit, value, code=ev.code))
                else:
                    out.append(DeviceEvent(DeviceEventKind.READING, self.unit, code=ev.code))
                continue
            mapped = self._event(ev)
            if ev.code in (Event.CREDIT_NOTE, Event.NOTE_CLEARED_FROM_FRONT, Event.NOTE_CLEARED_TO_CASHBOX):
                mapped = DeviceEvent(mapped.kind, self.unit, self._value_of(ev.channel), code=ev.code)
                if ev.code == Event.CREDIT_NOTE:
                    self._moving = mapped.value_fen
            elif ev.code in (Event.STACKED, Event.NOTE_STORED_IN_PAYOUT, Event.STACKING,
                             Event.SAFE_JAM, Event.UNSAFE_JAM):
                mapped = DeviceEvent(mapped.kind, self.unit, self._moving, code=ev.code)
                if ev.code in (Event.STACKED, Event.NOTE_STORED_IN_PAYOUT):
                    self._moving = 0
            elif ev.code in (Event.REJECTING, Event.REJECTED):
                # the note in escrow (if any) is on its way back
                self._escrow = 0
            out.append(mapped)
        return out

    async def accept_escrow(self) -> None:
        if not self._escrow:
            raise CashDeviceError("no note in escrow to accept")
        value = self._escrow
        # the next POLL after the escrow report is what tells the unit to stack the note
        reply = await self._cmd(ssp.cmd(Command.POLL))
        self._escrow = 0
        self._moving = value
        self._note("accept", value_fen=value)
        self._pending.extend(self._map(ssp.decode_poll_events(reply.data)))

    async def reject_escrow(self) -> None:
        value = self._escrow
        self._escrow = 0
        reply = await self._cmd(ssp.cmd(Command.REJECT), expect_ok=False)
        self._note("reject", value_fen=value, answer=reply.name)

    async def hold_escrow(self) -> None:
        reply = await self._cmd(ssp.cmd(Command.HOLD), expect_ok=False)
        self._last_hold = time.monotonic()
        if not reply.ok:
            # the unit no longer holds a note (it went back): stop holding
            self._escrow = 0


class SspCoinHopper(SspUnit):
    """A coin hopper with an attached coin mechanism (e.g. SMART Hopper)."""

    unit = Unit.COINS

    async def set_accepting(self, denominations: frozenset[int]) -> None:
        if denominations:
            for v in self._values:
                await self._cmd(ssp.cmd_coin_mech_inhibit(v, self.currency, v in denominations))
        await self._cmd(ssp.cmd_coin_mech_global(bool(denominations)))
        self._note("coin_inhibits", accept=sorted(denominations))


def units_from_config(cfg: CashConfig, root: Path) -> tuple[SspNoteRecycler, SspCoinHopper]:
    """The two units for ``[cash]``; units configured on the same port share it."""
    ports: dict[str, SerialPort] = {}

    def port_for(unit: Unit) -> SerialPort:
        path = str(resolve(root, cfg.port_of(unit)))
        if path not in ports:
            ports[path] = SerialPort(path, cfg.baudrate)
        return ports[path]

    kw = dict(currency=cfg.currency, reply_timeout=cfg.reply_timeout_s, retries=cfg.retries,
              hold_interval=cfg.hold_interval_s, max_hold=cfg.max_hold_s)
    notes_port = port_for(Unit.NOTES)
    coins_port = port_for(Unit.COINS)
    notes = SspNoteRecycler(notes_port, cfg.notes_address, **kw)
    # a shared port is closed once, by the hopper (closed last)
    notes.owns_port = notes_port is not coins_port
    coins = SspCoinHopper(coins_port, cfg.coins_address, **kw)
    return notes, coins
