"""SSP wire format, byte for byte: CRC, framing, 0x7F stuffing, payloads, poll events."""

from __future__ import annotations

import pytest

from devices import ssp
from devices.ssp import Command, Event, PollEvent


def test_crc_of_known_frames() -> None:
    # RESET with sequence bit set, and an OK reply: the published example values
    assert ssp.crc_bytes(bytes([0x80, 0x01, 0x01])) == bytes([0x06, 0x02])
    assert ssp.crc_bytes(bytes([0x80, 0x01, 0xF0])) == bytes([0x23, 0x80])
    assert ssp.crc16(b"") == 0xFFFF


def test_encode_sync_frame() -> None:
    assert ssp.encode_frame(0, 1, bytes([0x11])) == bytes([0x7F, 0x80, 0x01, 0x11, 0x65, 0x82])
    assert ssp.encode_frame(0, 1, bytes([0x01])) == bytes([0x7F, 0x80, 0x01, 0x01, 0x06, 0x02])
    # sequence bit clear, hopper address 0x10: SEQ/ID byte is 0x10
    frame = ssp.encode_frame(0x10, 0, bytes([0x07]))
    assert frame[:4] == bytes([0x7F, 0x10, 0x01, 0x07])
    assert frame[4:] == ssp.crc_bytes(bytes([0x10, 0x01, 0x07]))


def test_0x7f_is_doubled_after_the_start_byte_and_undone() -> None:
    data = bytes([0xF0, 0x7F, 0x01])
    frame = ssp.encode_frame(0, 0, data)
    body = bytes([0x00, 0x03]) + data
    crc = ssp.crc_bytes(body)
    expected = bytes([0x7F]) + body.replace(b"\x7f", b"\x7f\x7f") + crc.replace(b"\x7f", b"\x7f\x7f")
    assert frame == expected
    assert frame.count(0x7F) == 1 + 2  # start byte + the doubled data byte
    assert ssp.decode_frame(frame) == ssp.Frame(address=0, seq=0, data=data)
    assert ssp.stuff(b"\x7f\x00\x7f") == b"\x7f\x7f\x00\x7f\x7f"
    assert ssp.unstuff(b"\x7f\x7f\x00\x7f\x7f") == b"\x7f\x00\x7f"
    with pytest.raises(ssp.SspError):
        ssp.unstuff(b"\x00\x7f\x01")


def test_crc_that_contains_0x7f_is_stuffed_too() -> None:
    # search a payload whose CRC has a 0x7F byte, and check it survives a round trip
    for b in range(256):
        body = bytes([0x80, 0x02, 0xF0, b])
        if 0x7F in ssp.crc_bytes(body):
            frame = ssp.encode_frame(0, 1, bytes([0xF0, b]))
            assert ssp.decode_frame(frame).data == bytes([0xF0, b])
            break
    else:  # pragma: no cover - there is always one in 256
        pytest.fail("no CRC with 0x7F found")


def test_decoder_handles_noise_split_input_and_bad_crc() -> None:
    good = ssp.encode_frame(0, 1, bytes([0xF0, 0x7F, 0x7F]))
    dec = ssp.FrameDecoder()
    out = []
    for b in b"\x00\x13" + good:  # noise first, then one byte at a time
        out += dec.feed(bytes([b]))
    assert out == [ssp.Frame(0, 1, bytes([0xF0, 0x7F, 0x7F]))]
    assert dec.skipped == 2
    bad = bytearray(good)
    bad[-1] ^= 0x01
    assert isinstance(dec.feed(bytes(bad))[0], ssp.CrcError)


def test_decoder_resyncs_on_a_lone_start_byte() -> None:
    truncated = ssp.encode_frame(0, 0, bytes([0xF0, 0x01, 0x02]))[:-3]
    good = ssp.encode_frame(0x10, 1, bytes([0xF0]))
    frames = ssp.FrameDecoder().feed(truncated + good)
    assert frames == [ssp.Frame(0x10, 1, bytes([0xF0]))]


def test_command_payloads_byte_for_byte() -> None:
    assert ssp.cmd_set_inhibits([1, 2, 6]) == bytes([0x02, 0b00100011, 0x00])
    assert ssp.parse_set_inhibits(bytes([0b00100011, 0x00])) == {1, 2, 6}
    assert ssp.cmd_payout_amount(7650, "CNY", test=True) == (
        bytes([0x33, 0xE2, 0x1D, 0x00, 0x00]) + b"CNY" + bytes([0x19])
    )
    assert ssp.parse_payout_amount(ssp.cmd_payout_amount(7650, "CNY", False)[1:]) == (7650, "CNY", False)
    by_denom = ssp.cmd_payout_by_denomination([(3, 2000)], "CNY", test=False)
    assert by_denom == bytes([0x46, 0x01, 0x03, 0x00, 0xD0, 0x07, 0x00, 0x00]) + b"CNY" + bytes([0x58])
    assert ssp.parse_payout_by_denomination(by_denom[1:]) == ([(3, 2000)], "CNY", False)
    assert ssp.cmd_coin_mech_inhibit(50, "CNY", accept=True) == bytes([0x40, 0x01, 0x32, 0, 0, 0]) + b"CNY"
    assert ssp.cmd_coin_mech_global(True) == bytes([0x49, 0x01])
    assert ssp.cmd(Command.HOLD) == bytes([0x18])
    with pytest.raises(ssp.SspError):
        ssp.cmd_payout_amount(1, "RMB1", True)


def test_levels_setup_and_counters_round_trip() -> None:
    levels = ssp.encode_levels([(3, 2000), (1, 5000)], "CNY")
    assert levels == bytes([2, 3, 0, 0xD0, 7, 0, 0]) + b"CNY" + bytes([1, 0, 0x88, 0x13, 0, 0]) + b"CNY"
    assert ssp.decode_levels(levels) == [(3, 2000, "CNY"), (1, 5000, "CNY")]
    setup = ssp.decode_setup(ssp.encode_setup_validator("0420", "CNY", (100, 500, 10000)))
    assert setup.values == (100, 500, 10000)
    assert setup.country == "CNY" and setup.protocol_version == 6
    assert setup.unit_type == ssp.UnitType.SMART_PAYOUT
    hopper = ssp.decode_setup(ssp.encode_setup_hopper("0312", "CNY", (10, 50, 100)))
    assert hopper.values == (10, 50, 100) and hopper.unit_type == ssp.UnitType.SMART_HOPPER
    c = ssp.Counters(stacked=5, stored=7, dispensed=2, transferred=0, rejected=1)
    assert ssp.decode_counters(ssp.encode_counters(c)) == c
    assert c.accepted == 12


def test_poll_events_round_trip_and_layout() -> None:
    events = [
        PollEvent(Event.READ_NOTE, channel=6),
        PollEvent(Event.CREDIT_NOTE, channel=6),
        PollEvent(Event.STACKING),
        PollEvent(Event.STACKED),
        PollEvent(Event.DISPENSED, values=(7650,)),
        PollEvent(Event.INCOMPLETE_PAYOUT, values=(500,), requested=(750,)),
        PollEvent(Event.COIN_CREDIT, values=(50,)),
    ]
    data = ssp.encode_poll_events(events, "CNY")
    assert data[:6] == bytes([0xEF, 6, 0xEE, 6, 0xCC, 0xEB])
    assert data[6:15] == bytes([0xD2, 1, 0xE2, 0x1D, 0, 0]) + b"CNY"
    assert ssp.decode_poll_events(data) == events
    assert ssp.decode_poll_events(b"") == []
    with pytest.raises(ssp.SspError):
        ssp.decode_poll_events(bytes([0xD2, 1, 0xE2]))


def test_reply_parsing() -> None:
    r = ssp.parse_reply(bytes([0xF5, 0x01]))
    assert not r.ok and r.name == "CANNOT_PROCESS" and r.data == bytes([0x01])
    assert ssp.parse_reply(bytes([0xF0])).ok
