"""The SSP (Smiley Secure Protocol) wire format as pure functions: no I/O here.

A frame is ``0x7F | SEQ/ID | LEN | DATA | CRCL | CRCH``. SEQ/ID holds the sequence bit
(0x80) and the 7-bit unit address; the CRC-16 (poly 0x8005, seed 0xFFFF) covers
SEQ/ID, LEN and DATA. Any 0x7F after the start byte is sent twice, so a single 0x7F
always means "a new frame starts here" and a receiver can resynchronise after noise.

The host toggles the sequence bit for every new command. A unit that receives the
same sequence bit again treats the packet as a retransmission and sends its last
reply again without executing anything twice; that is what makes a retry after a
lost or corrupt reply safe. SYNC resets the bit.

This module holds the byte-level encoders and decoders used by both the serial
driver (``devices.ssp_serial``) and the simulator (``devices.cash_sim``), so the
two can never disagree about a byte. Money values on the wire are 32-bit
little-endian integers in the currency's minor unit (fen for CNY).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from devices.cash import NoteCounters

STX = 0x7F
"""Start of every frame; doubled when it appears anywhere after the start byte."""
SEQ_BIT = 0x80
"""The sequence flag in the SEQ/ID byte."""
CRC_SEED = 0xFFFF
CRC_POLY = 0x8005
PROTOCOL_VERSION = 6
"""Protocol version the host asks for (values and country codes in events)."""

TEST_OPTION = 0x19
"""Payout option byte: only check that the payout could be made."""
REAL_OPTION = 0x58
"""Payout option byte: really pay out."""


class Command(IntEnum):
    """Command bytes the kiosk sends (the first data byte of a host frame)."""

    RESET = 0x01
    SET_INHIBITS = 0x02
    SETUP_REQUEST = 0x05
    HOST_PROTOCOL_VERSION = 0x06
    POLL = 0x07
    REJECT = 0x08
    DISABLE = 0x09
    ENABLE = 0x0A
    SYNC = 0x11
    HOLD = 0x18
    GET_ALL_LEVELS = 0x22
    PAYOUT_AMOUNT = 0x33
    HALT_PAYOUT = 0x38
    SET_COIN_MECH_INHIBITS = 0x40
    PAYOUT_BY_DENOMINATION = 0x46
    COIN_MECH_GLOBAL_INHIBIT = 0x49
    GET_COUNTERS = 0x58


class Response(IntEnum):
    """Generic response codes (the first data byte of a unit's reply)."""

    OK = 0xF0
    UNKNOWN_COMMAND = 0xF2
    WRONG_PARAMETERS = 0xF3
    OUT_OF_RANGE = 0xF4
    CANNOT_PROCESS = 0xF5
    SOFTWARE_ERROR = 0xF6
    FAIL = 0xF8
    KEY_NOT_SET = 0xFA


class PayoutRefusal(IntEnum):
    """Second byte of a CANNOT_PROCESS reply to a payout command."""

    NOT_ENOUGH_VALUE = 0x00
    CANNOT_PAY_EXACT = 0x01
    BUSY = 0x03
    DISABLED = 0x04


class UnitType(IntEnum):
    """SETUP_REQUEST unit type byte."""

    VALIDATOR = 0x00
    SMART_HOPPER = 0x03
    SMART_PAYOUT = 0x06


class Event(IntEnum):
    """Poll event codes (reply to POLL after the OK byte)."""

    SLAVE_RESET = 0xF1
    READ_NOTE = 0xEF
    CREDIT_NOTE = 0xEE
    REJECTING = 0xED
    REJECTED = 0xEC
    STACKING = 0xCC
    STACKED = 0xEB
    SAFE_JAM = 0xEA
    UNSAFE_JAM = 0xE9
    DISABLED = 0xE8
    STACKER_FULL = 0xE7
    FRAUD_ATTEMPT = 0xE6
    NOTE_CLEARED_FROM_FRONT = 0xE1
    NOTE_CLEARED_TO_CASHBOX = 0xE2
    CASHBOX_REMOVED = 0xE3
    CASHBOX_REPLACED = 0xE4
    NOTE_PATH_OPEN = 0xE0
    COIN_CREDIT = 0xDF
    INCOMPLETE_PAYOUT = 0xDC
    NOTE_STORED_IN_PAYOUT = 0xDB
    DISPENSING = 0xDA
    TIME_OUT = 0xD9
    HALTED = 0xD6
    JAMMED = 0xD5
    DISPENSED = 0xD2
    DEVICE_FULL = 0xCF
    PAYOUT_OUT_OF_SERVICE = 0xC6
    COIN_MECH_JAMMED = 0xC4


# events followed by one channel byte
_CHANNEL_EVENTS = {
    Event.READ_NOTE,
    Event.CREDIT_NOTE,
    Event.NOTE_CLEARED_FROM_FRONT,
    Event.NOTE_CLEARED_TO_CASHBOX,
}
# events followed by ``n`` then n x (value u32, country 3 bytes)
_VALUE_EVENTS = {
    Event.COIN_CREDIT,
    Event.DISPENSING,
    Event.DISPENSED,
    Event.JAMMED,
    Event.HALTED,
    Event.TIME_OUT,
    Event.FRAUD_ATTEMPT,
}
# events followed by ``n`` then n x (dispensed u32, requested u32, country)
_PAID_REQUESTED_EVENTS = {Event.INCOMPLETE_PAYOUT}


class SspError(ValueError):
    """Bytes that do not form a valid SSP frame or reply."""


class CrcError(SspError):
    """A frame whose CRC does not match its contents."""


# ----------------------------------------------------------------------------- CRC + framing


def crc16(data: bytes | bytearray | Iterable[int]) -> int:
    """CRC-16 as SSP computes it: poly 0x8005, seed 0xFFFF, MSB first, no reflection.

    Returns the 16-bit value; on the wire the low byte goes first.
    """
    crc = CRC_SEED
    for byte in data:
        crc ^= (byte & 0xFF) << 8
        for _ in range(8):
            crc = ((crc << 1) & 0xFFFF) ^ CRC_POLY if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc


def crc_bytes(data: bytes) -> bytes:
    """The two CRC bytes (CRCL, CRCH) that follow ``data`` in a frame."""
    crc = crc16(data)
    return bytes((crc & 0xFF, crc >> 8))


def stuff(data: bytes) -> bytes:
    """Double every 0x7F (applied to everything after the start byte)."""
    return data.replace(b"\x7f", b"\x7f\x7f")


def unstuff(data: bytes) -> bytes:
    """Undo :func:`stuff`; a single 0x7F inside is an error (it would start a new frame)."""
    out = bytearray()
    i = 0
    while i < len(data):
        b = data[i]
        if b == STX:
            if i + 1 >= len(data) or data[i + 1] != STX:
                raise SspError(f"lone 0x7F at offset {i} inside stuffed data")
            i += 2
        else:
            i += 1
        out.append(b)
    return bytes(out)


def seq_id(address: int, seq: int) -> int:
    """The SEQ/ID byte for a unit address (0..0x7D) and a sequence bit (0 or 1)."""
    if not 0 <= address <= 0x7D:
        raise SspError(f"SSP address {address} out of range 0..125")
    return (SEQ_BIT if seq else 0) | address


@dataclass(frozen=True)
class Frame:
    """One decoded frame."""

    address: int
    """Unit address (7 bits)."""
    seq: int
    """Sequence bit, 0 or 1."""
    data: bytes
    """Command or reply bytes (command/response code first)."""


def encode_frame(address: int, seq: int, data: bytes) -> bytes:
    """A complete, stuffed frame ready to write to the port."""
    if not 1 <= len(data) <= 255:
        raise SspError(f"SSP data length {len(data)} out of range 1..255")
    body = bytes((seq_id(address, seq), len(data))) + bytes(data)
    return bytes((STX,)) + stuff(body + crc_bytes(body))


def decode_frame(raw: bytes) -> Frame:
    """Decode exactly one complete frame (start byte included); raises on any error."""
    dec = FrameDecoder()
    results = dec.feed(raw)
    if len(results) != 1 or dec.pending:
        raise SspError(f"expected one frame, got {len(results)} (+{dec.pending} pending bytes)")
    result = results[0]
    if isinstance(result, SspError):
        raise result
    return result


class FrameDecoder:
    """Incremental frame decoder: feed bytes as they arrive, get frames (or errors).

    Noise before a start byte is skipped. A single 0x7F in the middle of a frame
    abandons that frame and starts a new one, which is how a receiver recovers from
    a truncated frame. A complete frame with a bad CRC yields a :class:`CrcError`
    in the result list instead of a frame, so the caller can count it and retry.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._in_frame = False
        self._escape = False
        self.skipped = 0
        """Bytes thrown away while looking for a start byte (for diagnostics)."""

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held so far."""
        return len(self._buf)

    def reset(self) -> None:
        """Forget any partial frame (after a port reopen)."""
        self._buf.clear()
        self._in_frame = False
        self._escape = False

    def feed(self, chunk: bytes) -> list[Frame | SspError]:
        """Consume ``chunk``; return every frame (or framing error) it completed."""
        out: list[Frame | SspError] = []
        for b in chunk:
            if not self._in_frame:
                if b == STX:
                    self._in_frame = True
                    self._buf.clear()
                    self._escape = False
                else:
                    self.skipped += 1
                continue
            if self._escape:
                self._escape = False
                if b != STX:
                    # a lone 0x7F: the previous frame was cut short; this byte begins a new one
                    self._buf.clear()
                    self._buf.append(b)
                    continue
                self._buf.append(STX)
            elif b == STX:
                self._escape = True
                continue
            else:
                self._buf.append(b)
            done = self._complete()
            if done is not None:
                out.append(done)
        return out

    def _complete(self) -> Frame | SspError | None:
        buf = self._buf
        if len(buf) < 2 or len(buf) < 2 + buf[1] + 2:
            return None
        length = buf[1]
        body = bytes(buf[: 2 + length])
        crc = bytes(buf[2 + length : 4 + length])
        self._buf = bytearray()
        self._in_frame = False
        if length == 0:
            return SspError("frame with zero-length data")
        if crc_bytes(body) != crc:
            return CrcError(f"CRC mismatch: got {crc.hex()}, computed {crc_bytes(body).hex()}")
        return Frame(address=body[0] & 0x7F, seq=1 if body[0] & SEQ_BIT else 0, data=body[2:])


# ----------------------------------------------------------------------------- command payloads


def _country(code: str) -> bytes:
    raw = code.encode("ascii")
    if len(raw) != 3:
        raise SspError(f"country code must be 3 ASCII letters, got {code!r}")
    return raw


def cmd(command: Command, payload: bytes = b"") -> bytes:
    """Command data: the command byte followed by its parameters."""
    return bytes((int(command),)) + payload


def cmd_host_protocol(version: int = PROTOCOL_VERSION) -> bytes:
    """HOST_PROTOCOL_VERSION: ask the unit to speak ``version``."""
    return cmd(Command.HOST_PROTOCOL_VERSION, bytes((version,)))


def cmd_set_inhibits(enabled_channels: Iterable[int]) -> bytes:
    """SET_INHIBITS: a 16-bit mask, bit ``n-1`` set = channel ``n`` may accept notes."""
    mask = 0
    for ch in enabled_channels:
        if not 1 <= ch <= 16:
            raise SspError(f"channel {ch} out of range 1..16")
        mask |= 1 << (ch - 1)
    return cmd(Command.SET_INHIBITS, struct.pack("<H", mask))


def parse_set_inhibits(payload: bytes) -> set[int]:
    """Channels enabled by a SET_INHIBITS payload (unit side)."""
    if len(payload) < 1:
        raise SspError("SET_INHIBITS needs at least one mask byte")
    mask = int.from_bytes(payload[:2], "little")
    return {i + 1 for i in range(16) if mask & (1 << i)}


def cmd_payout_amount(amount: int, country: str, test: bool) -> bytes:
    """PAYOUT_AMOUNT: pay ``amount`` minor units; ``test`` only checks that it could."""
    return cmd(
        Command.PAYOUT_AMOUNT,
        struct.pack("<I", amount) + _country(country) + bytes((TEST_OPTION if test else REAL_OPTION,)),
    )


def parse_payout_amount(payload: bytes) -> tuple[int, str, bool]:
    """(amount, country, test) from a PAYOUT_AMOUNT payload (unit side)."""
    if len(payload) != 8:
        raise SspError(f"PAYOUT_AMOUNT needs 8 parameter bytes, got {len(payload)}")
    (amount,) = struct.unpack_from("<I", payload)
    option = payload[7]
    if option not in (TEST_OPTION, REAL_OPTION):
        raise SspError(f"unknown payout option 0x{option:02X}")
    return amount, payload[4:7].decode("ascii", "replace"), option == TEST_OPTION


def cmd_payout_by_denomination(counts: Sequence[tuple[int, int]], country: str, test: bool) -> bytes:
    """PAYOUT_BY_DENOMINATION: ``counts`` is a list of (number, value) pairs."""
    if not 1 <= len(counts) <= 20:
        raise SspError(f"payout by denomination takes 1..20 requests, got {len(counts)}")
    payload = bytes((len(counts),))
    for number, value in counts:
        payload += struct.pack("<HI", number, value) + _country(country)
    return cmd(
        Command.PAYOUT_BY_DENOMINATION,
        payload + bytes((TEST_OPTION if test else REAL_OPTION,)),
    )


def parse_payout_by_denomination(payload: bytes) -> tuple[list[tuple[int, int]], str, bool]:
    """(counts, country, test) from a PAYOUT_BY_DENOMINATION payload (unit side)."""
    if not payload:
        raise SspError("PAYOUT_BY_DENOMINATION without parameters")
    n = payload[0]
    if len(payload) != 1 + 9 * n + 1:
        raise SspError(f"PAYOUT_BY_DENOMINATION: {n} requests need {2 + 9 * n} bytes")
    counts = []
    country = ""
    for i in range(n):
        number, value = struct.unpack_from("<HI", payload, 1 + 9 * i)
        country = payload[1 + 9 * i + 6 : 1 + 9 * i + 9].decode("ascii", "replace")
        counts.append((number, value))
    option = payload[-1]
    if option not in (TEST_OPTION, REAL_OPTION):
        raise SspError(f"unknown payout option 0x{option:02X}")
    return counts, country, option == TEST_OPTION


def cmd_coin_mech_inhibit(value: int, country: str, accept: bool) -> bytes:
    """SET_COIN_MECH_INHIBITS: allow (``accept``) or refuse one coin value."""
    return cmd(
        Command.SET_COIN_MECH_INHIBITS,
        bytes((1 if accept else 0,)) + struct.pack("<I", value) + _country(country),
    )


def parse_coin_mech_inhibit(payload: bytes) -> tuple[int, str, bool]:
    """(value, country, accept) from a SET_COIN_MECH_INHIBITS payload (unit side)."""
    if len(payload) != 8:
        raise SspError(f"SET_COIN_MECH_INHIBITS needs 8 parameter bytes, got {len(payload)}")
    (value,) = struct.unpack_from("<I", payload, 1)
    return value, payload[5:8].decode("ascii", "replace"), payload[0] == 1


def cmd_coin_mech_global(accept: bool) -> bytes:
    """COIN_MECH_GLOBAL_INHIBIT: 1 lets the attached coin mechanism take coins."""
    return cmd(Command.COIN_MECH_GLOBAL_INHIBIT, bytes((1 if accept else 0,)))


# ----------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class Reply:
    """A unit's reply split into its generic code and the rest."""

    code: int
    """The generic response byte (see :class:`Response`)."""
    data: bytes
    """What follows the code."""

    @property
    def ok(self) -> bool:
        """True for 0xF0."""
        return self.code == Response.OK

    @property
    def name(self) -> str:
        """The response's name, or its hex value when unknown."""
        try:
            return Response(self.code).name
        except ValueError:
            return f"0x{self.code:02X}"


def parse_reply(data: bytes) -> Reply:
    """Split reply data into (code, rest)."""
    if not data:
        raise SspError("empty reply")
    return Reply(code=data[0], data=bytes(data[1:]))


@dataclass(frozen=True)
class SetupInfo:
    """What SETUP_REQUEST tells about a unit."""

    unit_type: int
    firmware: str
    country: str
    protocol_version: int
    values: tuple[int, ...]
    """Channel values (validator, channel n = values[n-1]) or coin values (hopper), minor units."""


def encode_setup_validator(
    firmware: str, country: str, values: Sequence[int], protocol: int = PROTOCOL_VERSION,
    unit_type: int = UnitType.SMART_PAYOUT,
) -> bytes:
    """SETUP_REQUEST reply data (after OK) for a note validator / recycler."""
    n = len(values)
    real_multiplier = 100  # channel values are whole units; x100 gives minor units
    body = bytes((unit_type,)) + firmware.encode("ascii")[:4].rjust(4, b"0") + _country(country)
    body += (1).to_bytes(3, "big") + bytes((n,))
    body += bytes(min(255, v // real_multiplier) for v in values)
    body += bytes((2,)) * n  # security: standard
    body += real_multiplier.to_bytes(3, "big") + bytes((protocol,))
    if protocol >= 6:
        body += _country(country) * n
        body += b"".join(struct.pack("<I", v) for v in values)
    return body


def encode_setup_hopper(
    firmware: str, country: str, values: Sequence[int], protocol: int = PROTOCOL_VERSION
) -> bytes:
    """SETUP_REQUEST reply data (after OK) for a coin hopper."""
    body = bytes((UnitType.SMART_HOPPER,)) + firmware.encode("ascii")[:4].rjust(4, b"0")
    body += _country(country) + bytes((protocol, len(values)))
    body += b"".join(struct.pack("<H", v) for v in values)
    if protocol >= 6:
        body += _country(country) * len(values)
    return body


def decode_setup(data: bytes) -> SetupInfo:
    """Decode SETUP_REQUEST reply data (after the OK byte)."""
    try:
        unit_type = data[0]
        firmware = data[1:5].decode("ascii", "replace")
        country = data[5:8].decode("ascii", "replace")
        if unit_type == UnitType.SMART_HOPPER:
            protocol = data[8]
            n = data[9]
            values = struct.unpack_from(f"<{n}H", data, 10)
            return SetupInfo(unit_type, firmware, country, protocol, tuple(values))
        n = data[11]
        channel_values = data[12 : 12 + n]
        real_multiplier = int.from_bytes(data[12 + 2 * n : 15 + 2 * n], "big")
        protocol = data[15 + 2 * n]
        if protocol >= 6:
            start = 16 + 2 * n + 3 * n
            values = struct.unpack_from(f"<{n}I", data, start)
        else:
            values = tuple(v * real_multiplier for v in channel_values)
        return SetupInfo(unit_type, firmware, country, protocol, tuple(values))
    except (IndexError, struct.error) as exc:
        raise SspError(f"short SETUP_REQUEST reply ({len(data)} bytes): {exc}") from None


def encode_levels(levels: Sequence[tuple[int, int]], country: str) -> bytes:
    """GET_ALL_LEVELS reply data: n, then (count u16, value u32, country) each."""
    body = bytes((len(levels),))
    for count, value in levels:
        body += struct.pack("<HI", count, value) + _country(country)
    return body


def decode_levels(data: bytes) -> list[tuple[int, int, str]]:
    """(count, value, country) per denomination from GET_ALL_LEVELS reply data."""
    if not data:
        raise SspError("empty GET_ALL_LEVELS reply")
    n = data[0]
    if len(data) < 1 + 9 * n:
        raise SspError(f"GET_ALL_LEVELS: {n} levels need {1 + 9 * n} bytes, got {len(data)}")
    out = []
    for i in range(n):
        count, value = struct.unpack_from("<HI", data, 1 + 9 * i)
        country = data[1 + 9 * i + 6 : 1 + 9 * i + 9].decode("ascii", "replace")
        out.append((count, value, country))
    return out


# GET_COUNTERS answers with the unit's lifetime note counters, the same record the
# device layer reports (one definition, used by the driver and the simulator).
Counters = NoteCounters


def encode_counters(c: Counters) -> bytes:
    """GET_COUNTERS reply data."""
    return bytes((5,)) + struct.pack(
        "<5I", c.stacked, c.stored, c.dispensed, c.transferred, c.rejected
    )


def decode_counters(data: bytes) -> Counters:
    """Decode GET_COUNTERS reply data."""
    if len(data) < 21:
        raise SspError(f"GET_COUNTERS reply too short ({len(data)} bytes)")
    return Counters(*struct.unpack_from("<5I", data, 1))


@dataclass(frozen=True)
class PollEvent:
    """One event from a POLL reply, still in protocol terms."""

    code: int
    """Event code (see :class:`Event`; unknown codes are kept as numbers)."""
    channel: int = 0
    """Channel byte for note events (0 = still reading)."""
    values: tuple[int, ...] = field(default_factory=tuple)
    """Value(s) in minor units for value events (one per country)."""
    requested: tuple[int, ...] = field(default_factory=tuple)
    """Requested value(s) for INCOMPLETE_PAYOUT."""

    @property
    def name(self) -> str:
        """The event's name or its hex value."""
        try:
            return Event(self.code).name
        except ValueError:
            return f"0x{self.code:02X}"

    @property
    def value(self) -> int:
        """Total value over all countries (the kiosk uses one currency)."""
        return sum(self.values)


def encode_poll_events(events: Iterable[PollEvent], country: str) -> bytes:
    """POLL reply data after OK (unit side)."""
    out = bytearray()
    for ev in events:
        out.append(ev.code)
        if ev.code in _CHANNEL_EVENTS:
            out.append(ev.channel)
        elif ev.code in _VALUE_EVENTS:
            out.append(len(ev.values))
            for v in ev.values:
                out += struct.pack("<I", v) + _country(country)
        elif ev.code in _PAID_REQUESTED_EVENTS:
            out.append(len(ev.values))
            for v, r in zip(ev.values, ev.requested, strict=True):
                out += struct.pack("<II", v, r) + _country(country)
    return bytes(out)


def decode_poll_events(data: bytes) -> list[PollEvent]:
    """Events from POLL reply data after OK (protocol version 6 layouts)."""
    out: list[PollEvent] = []
    i = 0
    try:
        while i < len(data):
            code = data[i]
            i += 1
            if code in _CHANNEL_EVENTS:
                out.append(PollEvent(code, channel=data[i]))
                i += 1
            elif code in _VALUE_EVENTS:
                n = data[i]
                i += 1
                vals = []
                for _ in range(n):
                    (v,) = struct.unpack_from("<I", data, i)
                    vals.append(v)
                    i += 7
                out.append(PollEvent(code, values=tuple(vals)))
            elif code in _PAID_REQUESTED_EVENTS:
                n = data[i]
                i += 1
                vals, reqs = [], []
                for _ in range(n):
                    v, r = struct.unpack_from("<II", data, i)
                    vals.append(v)
                    reqs.append(r)
                    i += 11
                out.append(PollEvent(code, values=tuple(vals), requested=tuple(reqs)))
            else:
                out.append(PollEvent(code))
    except (IndexError, struct.error):
        raise SspError(f"truncated POLL reply at byte {i}: {data.hex()}") from None
    if i > len(data):
        raise SspError(f"truncated POLL reply: {data.hex()}")
    return out
