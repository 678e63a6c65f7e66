"""Audio clips, downmix, resampling and the file/loopback devices."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from speech.audio import (
    AudioClip,
    AudioDeviceError,
    AudioSection,
    ClipInput,
    LoopbackInput,
    LoopbackOutput,
    RecordingOutput,
    downmix,
    open_input,
    open_output,
)
from tests.speech.conftest import CLIPS


def tone(freq: float, seconds: float, rate: int, amp: float = 0.5) -> np.ndarray:
    """A sine tone as float samples."""
    t = np.arange(round(seconds * rate)) / rate
    return amp * np.sin(2 * np.pi * freq * t)


def peak_freq(samples: np.ndarray, rate: int) -> float:
    """Frequency of the strongest FFT bin."""
    spec = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.argmax(spec) * rate / len(samples))


def test_wav_round_trip_keeps_rate_channels_and_samples(tmp_path):
    stereo = np.stack([tone(440, 0.2, 48000), tone(660, 0.2, 48000)], axis=1)
    clip = AudioClip(stereo, 48000)
    back = AudioClip.from_wav(clip.to_wav(tmp_path / "s.wav"))
    assert (back.rate, back.channels, back.frames) == (48000, 2, 9600)
    assert np.array_equal(back.samples, clip.samples)


def test_downmix_averages_channels_without_clipping():
    full = np.full((100, 2), 32767, np.int16)
    opposite = np.stack([np.full(100, 1000, np.int16), np.full(100, -1000, np.int16)], axis=1)
    assert downmix(full)[:, 0].tolist() == [32767] * 100
    assert downmix(opposite)[:, 0].tolist() == [0] * 100


@pytest.mark.parametrize("src", [48000, 44100, 22050])
def test_resample_keeps_pitch_length_and_level(src):
    clip = AudioClip(tone(1000, 1.0, src), src)
    out = clip.resampled(16000)
    assert out.rate == 16000
    assert abs(out.frames - 16000) <= 1
    assert abs(peak_freq(out.samples[:, 0], 16000) - 1000) < 3
    assert abs(out.level_dbfs() - clip.level_dbfs()) < 0.3


def test_resample_removes_content_above_the_new_nyquist():
    # 7 kHz survives 48 -> 16 kHz; 12 kHz must not alias down to 4 kHz.
    mixed = AudioClip(tone(7000, 0.5, 48000, 0.3) + tone(12000, 0.5, 48000, 0.3), 48000)
    out = mixed.resampled(16000).samples[:, 0].astype(np.float64)
    spec = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    at = lambda f: spec[round(f * len(out) / 16000)]  # noqa: E731
    assert at(7000) > 100 * at(4000)


def test_resample_of_a_real_recording_round_trips():
    speech = AudioClip.from_wav(CLIPS / "aishell1_BAC009S0764W0121.wav")
    back = speech.resampled(48000).resampled(16000)
    diff = back.samples.astype(np.int32) - speech.samples.astype(np.int32)
    # Round-trip error at least 40 dB below the speech itself.
    err_db = 20 * math.log10(np.sqrt(np.mean(diff.astype(np.float64) ** 2)) / 32768)
    assert err_db < speech.level_dbfs() - 40


def test_gain_and_normalise():
    clip = AudioClip(tone(300, 0.5, 16000, 0.1), 16000)
    assert abs(clip.gain(6.0).level_dbfs() - clip.level_dbfs() - 6.0) < 0.05
    assert abs(clip.normalised(-1.0).peak_dbfs() + 1.0) < 0.05
    assert AudioClip.silence(0.1).normalised().peak_dbfs() == -math.inf


async def test_clip_input_streams_real_time_sized_chunks():
    clip = AudioClip(tone(300, 0.5, 48000), 48000)
    mic = ClipInput(clip, block_ms=50, realtime=True, trail_silence=0.0)
    await mic.start()
    chunks = []
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    while (c := await mic.read(2.0)) is not None:
        chunks.append(c)
    elapsed = loop.time() - t0
    await mic.stop()
    assert [c.samples.shape[0] for c in chunks] == [2400] * 10
    assert all(b.time > a.time for a, b in zip(chunks, chunks[1:], strict=False))
    assert elapsed >= 0.45  # paced like a microphone, not read at once


async def test_flush_drops_only_chunks_captured_before_the_given_time():
    mic = ClipInput(AudioClip(tone(300, 1.0, 16000), 16000), block_ms=100, trail_silence=0.0)
    await mic.start()
    await asyncio.sleep(0.55)  # about five chunks captured, none read yet
    queued = list(mic._queue._queue)  # a snapshot, in capture order
    assert len(queued) >= 4
    cut = queued[2].time
    assert mic.flush(before=cut) == 2
    left = await mic.read(1.0)
    assert left is queued[2]
    assert mic.flush() >= 1
    await mic.stop()


async def test_recording_output_records_and_paces():
    out = RecordingOutput(rate=16000)
    samples = (tone(500, 0.3, 16000) * 32767).astype(np.int16)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    for i in range(0, len(samples), 800):
        await out.play(samples[i : i + 800])
    await out.drain()
    assert loop.time() - t0 >= 0.28
    assert np.array_equal(out.recorded.samples[:, 0], samples)


async def test_loopback_microphone_hears_the_loudspeaker_at_the_coupling_level():
    mic = LoopbackInput(rate=16000, block_ms=50, coupling_db=-6.0, latency=0.02)
    speaker = LoopbackOutput(mic, rate=16000)
    await mic.start()
    played = (tone(400, 0.4, 16000, 0.5) * 32767).astype(np.int16)
    for i in range(0, len(played), 800):
        await speaker.play(played[i : i + 800])
    await speaker.drain()
    await asyncio.sleep(0.15)
    heard = []
    while mic._queue.qsize():
        heard.append((await mic.read(1.0)).samples)
    await mic.stop()
    loud = [level for level in (AudioClip(h, 16000).level_dbfs() for h in heard) if level > -60]
    expected = AudioClip(played, 16000).level_dbfs() - 6.0
    assert len(loud) >= 6
    assert abs(np.median(loud) - expected) < 1.0


def test_factories_build_file_and_null_devices(tmp_path):
    clip_path = AudioClip(tone(300, 0.2, 44100), 44100).to_wav(tmp_path / "c.wav")
    mic = open_input(AudioSection(input="wav", input_wav=str(clip_path)))
    assert (mic.rate, mic.channels) == (44100, 1)
    assert open_output(AudioSection(output="wav", output_rate=16000)).rate == 16000
    with pytest.raises(AudioDeviceError, match="input_wav"):
        open_input(AudioSection(input="wav"))
    with pytest.raises(AudioDeviceError, match="unknown"):
        open_output(AudioSection(output="alsa"))


def test_sounddevice_backend_reports_a_missing_microphone_clearly():
    pytest.importorskip("sounddevice")
    import sounddevice as sd

    if any(d["max_input_channels"] > 0 for d in sd.query_devices()):
        pytest.skip("this machine has a microphone; the no-device path cannot be shown")
    with pytest.raises(AudioDeviceError, match="no microphone"):
        open_input(AudioSection(input="sounddevice"))


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("missing.wav", None),
        ("not-a-wav.wav", b"this is not a wav file at all" * 10),
        ("8bit.wav", "8bit"),
    ],
)
def test_a_bad_wav_as_microphone_is_a_device_error_not_a_crash(tmp_path, name, content) -> None:
    """``[audio] input = "wav"`` naming a missing, foreign or 8-bit file: the kiosk must go
    keypad-only with a clear problem (AudioDeviceError), not fail to start."""
    import wave

    path = tmp_path / name
    if content == "8bit":
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(1)
            w.setframerate(16000)
            w.writeframes(b"\x80" * 1600)
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(AudioDeviceError) as err:
        open_input(AudioSection(input="wav", input_wav=str(path)))
    assert name in str(err.value)


def test_a_wav_cut_off_mid_sample_keeps_its_whole_frames(tmp_path) -> None:
    """A recording cut off at an odd byte (a copy interrupted) is read up to its last whole sample."""
    path = tmp_path / "cut.wav"
    path.write_bytes((CLIPS / "aishell1_BAC009S0724W0121.wav").read_bytes()[:1001])
    clip = AudioClip.from_wav(path)
    assert (clip.rate, clip.channels, clip.frames) == (16000, 1, (1001 - 44) // 2)
    assert open_input(AudioSection(input="wav", input_wav=str(path))).rate == 16000
