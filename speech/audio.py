"""Audio clips and audio devices: microphones in, loudspeakers out.

Everything inside the kiosk is 16-bit PCM held in numpy arrays. Real devices often only
offer 44.1 or 48 kHz and two channels, so inputs deliver chunks at the device's own rate
with its own channel count; :meth:`AudioChunk.mono` downmixes, and the true rate travels
with every chunk (Vosk is given that rate; segment-based engines resample whole segments
with :func:`resample`).

Backends (chosen by name in ``[audio]``):

* ``sounddevice`` -- real PortAudio devices (``SoundDeviceInput``/``SoundDeviceOutput``);
* ``wav`` -- a WAV file streamed in real-time-sized chunks as if it were a microphone, and
  a WAV-recording loudspeaker (used by the headless demo and the tests);
* ``null`` -- silence in, nothing out.

:class:`LoopbackInput` is a microphone that also hears whatever a paired output plays,
which is how the tests prove that the kiosk never hears itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import time
import wave
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from assistant.errors import DeviceError, MissingPackageError

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class AudioSection:
    """The ``[audio]`` config section: which microphone and loudspeaker to use."""

    input: str = "sounddevice"
    """Microphone backend: ``sounddevice``, ``wav`` (a file as microphone) or ``null``."""
    output: str = "sounddevice"
    """Loudspeaker backend: ``sounddevice``, ``wav`` (record to a file) or ``null``."""
    input_device: str = ""
    """PortAudio input device name or index; empty for the system default."""
    output_device: str = ""
    """PortAudio output device name or index; empty for the system default."""
    input_rate: int = 0
    """Capture rate in Hz; 0 uses the device's own default rate (often 44100 or 48000)."""
    input_channels: int = 0
    """Capture channels; 0 uses the device's own (at most 2; downmixed to mono)."""
    output_rate: int = 0
    """Playback rate in Hz; 0 uses the device's default rate."""
    block_ms: int = 50
    """Microphone chunk length; also the playback chunk, so a stop takes effect within it."""
    input_wav: str = ""
    """For ``input = "wav"``: the file played as the customer's voice."""
    output_wav: str = ""
    """For ``output = "wav"``: where everything the kiosk says is recorded (empty: memory only)."""
    gate_tail_ms: int = 400
    """The microphone stays closed this long after the kiosk stops speaking (room echo)."""
    barge_in: bool = True
    """Let a customer who speaks over a prompt stop it."""
    barge_in_margin_db: float = 10.0
    """How far the microphone must rise above the expected echo to count as the customer."""
    echo_coupling_db: float = 0.0
    """Expected level of the kiosk's own voice at the microphone relative to what it plays."""
    barge_in_min_ms: int = 150
    """The customer must be louder than the echo for this long before speech is stopped."""


class AudioDeviceError(DeviceError):
    """A microphone or loudspeaker cannot be opened or stopped working."""

    prompt_id = "error_speech"


# --------------------------------------------------------------------------- clips


def _as_frames(samples: np.ndarray) -> np.ndarray:
    """Samples as a 2-D ``(frames, channels)`` int16 array."""
    a = np.asarray(samples)
    if a.ndim == 1:
        a = a[:, None]
    if a.dtype != np.int16:
        if np.issubdtype(a.dtype, np.floating):
            a = np.clip(np.round(a * 32767.0), -32768, 32767)
        a = a.astype(np.int16)
    return a


@dataclass(frozen=True, eq=False)
class AudioClip:
    """A piece of 16-bit PCM audio with its true sample rate."""

    samples: np.ndarray
    """int16 array of shape ``(frames, channels)``."""
    rate: int
    """Sample rate in Hz."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "samples", _as_frames(self.samples))
        if self.rate <= 0:
            raise ValueError(f"sample rate must be positive, got {self.rate}")

    @property
    def channels(self) -> int:
        """Number of channels."""
        return int(self.samples.shape[1])

    @property
    def frames(self) -> int:
        """Number of sample frames."""
        return int(self.samples.shape[0])

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.rate

    @classmethod
    def from_wav(cls, path: str | Path) -> AudioClip:
        """Read a 16-bit PCM WAV file (any rate, any channel count).

        Raises:
            ValueError: the file is not a 16-bit PCM WAV (or is cut off); the message names it.
        """
        try:
            with wave.open(str(path), "rb") as w:
                if w.getsampwidth() != 2:
                    raise ValueError(f"{path}: only 16-bit PCM WAV is supported")
                channels = w.getnchannels()
                raw = w.readframes(w.getnframes())
                rate = w.getframerate()
        except (wave.Error, EOFError) as exc:
            raise ValueError(f"{path}: not a WAV file ({exc})") from None
        # a file cut off mid-frame keeps only its whole frames
        whole = len(raw) - len(raw) % (2 * channels)
        data = np.frombuffer(raw[:whole], dtype="<i2")
        return cls(data.reshape(-1, channels).copy(), rate)

    @classmethod
    def silence(cls, seconds: float, rate: int = 16000, channels: int = 1) -> AudioClip:
        """A clip of digital silence."""
        return cls(np.zeros((round(seconds * rate), channels), np.int16), rate)

    @classmethod
    def concat(cls, clips: list[AudioClip]) -> AudioClip:
        """Clips one after another (all must share rate and channel count)."""
        if not clips:
            raise ValueError("nothing to concatenate")
        rate, ch = clips[0].rate, clips[0].channels
        for c in clips:
            if c.rate != rate or c.channels != ch:
                raise ValueError("clips differ in rate or channels")
        return cls(np.concatenate([c.samples for c in clips]), rate)

    def to_wav(self, path: str | Path) -> Path:
        """Write the clip as a 16-bit PCM WAV file."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        with wave.open(str(p), "wb") as w:
            w.setnchannels(self.channels)
            w.setsampwidth(2)
            w.setframerate(self.rate)
            w.writeframes(self.samples.astype("<i2").tobytes())
        return p

    def mono(self) -> AudioClip:
        """The clip downmixed to one channel."""
        return self if self.channels == 1 else AudioClip(downmix(self.samples), self.rate)

    def resampled(self, rate: int) -> AudioClip:
        """The clip at another sample rate (band-limited)."""
        if rate == self.rate:
            return self
        return AudioClip(resample(self.samples, self.rate, rate), rate)

    def to_float(self) -> np.ndarray:
        """Mono float32 samples in -1..1 (what Whisper wants)."""
        return self.mono().samples[:, 0].astype(np.float32) / 32768.0

    def pcm16(self) -> bytes:
        """Raw little-endian 16-bit bytes (interleaved)."""
        return self.samples.astype("<i2").tobytes()

    def level_dbfs(self) -> float:
        """RMS level in dB relative to full scale (-inf for digital silence)."""
        return level_dbfs(self.samples)

    def peak_dbfs(self) -> float:
        """Peak level in dB relative to full scale."""
        peak = int(np.max(np.abs(self.samples.astype(np.int32)))) if self.frames else 0
        return 20 * math.log10(peak / 32768.0) if peak else -math.inf

    def gain(self, db: float) -> AudioClip:
        """The clip made louder (or softer) by ``db`` decibels, clipped at full scale."""
        f = self.samples.astype(np.float32) * (10 ** (db / 20))
        return AudioClip(np.clip(np.round(f), -32768, 32767).astype(np.int16), self.rate)

    def normalised(self, peak_db: float = -1.0) -> AudioClip:
        """The clip scaled so its peak sits at ``peak_db`` dBFS (silence stays silence)."""
        peak = self.peak_dbfs()
        return self if peak == -math.inf else self.gain(peak_db - peak)

    def chunks(self, frames: int) -> list[np.ndarray]:
        """The samples split into consecutive pieces of ``frames`` (the last may be short)."""
        return [self.samples[i : i + frames] for i in range(0, self.frames, frames)]


def level_dbfs(samples: np.ndarray) -> float:
    """RMS level of int16 samples in dBFS (-inf for silence or no samples)."""
    if samples.size == 0:
        return -math.inf
    rms = float(np.sqrt(np.mean(np.square(samples.astype(np.float64)))))
    return 20 * math.log10(rms / 32768.0) if rms > 0 else -math.inf


def downmix(samples: np.ndarray) -> np.ndarray:
    """Average all channels into one (int16 ``(frames, 1)``)."""
    a = _as_frames(samples)
    if a.shape[1] == 1:
        return a
    # Averaging (not summing) keeps full-scale input from clipping.
    return np.round(a.astype(np.int32).mean(axis=1)).astype(np.int16)[:, None]


def resample(samples: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Band-limited resampling of a whole segment (FFT method), any channel count.

    Used for whole utterances and prompts only, never per chunk: a streaming path passes
    the device's true rate to the recogniser instead, so no filter state is needed.
    """
    a = _as_frames(samples)
    if src_rate == dst_rate or a.shape[0] == 0:
        return a
    n_in = a.shape[0]
    n_out = max(1, round(n_in * dst_rate / src_rate))
    # Pad to an even, slightly longer length and taper the pad so the FFT's circular
    # wrap-around does not ring at the segment's edges.
    pad = min(n_in, max(64, src_rate // 100))
    x = a.astype(np.float64)
    padded = np.concatenate(
        [x[:pad][::-1] * np.linspace(0, 1, pad)[:, None], x, x[-pad:][::-1] * np.linspace(1, 0, pad)[:, None]]
    )
    spec = np.fft.rfft(padded, axis=0)
    n_pad_in = padded.shape[0]
    n_pad_out = round(n_pad_in * dst_rate / src_rate)
    keep = min(spec.shape[0], n_pad_out // 2 + 1)
    out_spec = np.zeros((n_pad_out // 2 + 1, a.shape[1]), dtype=complex)
    out_spec[:keep] = spec[:keep]
    y = np.fft.irfft(out_spec, n=n_pad_out, axis=0) * (n_pad_out / n_pad_in)
    start = round(pad * dst_rate / src_rate)
    y = y[start : start + n_out]
    if y.shape[0] < n_out:
        y = np.concatenate([y, np.zeros((n_out - y.shape[0], a.shape[1]))])
    return np.clip(np.round(y), -32768, 32767).astype(np.int16)


# --------------------------------------------------------------------------- chunks


@dataclass(frozen=True, eq=False)
class AudioChunk:
    """A block of captured audio, stamped with when it was captured."""

    samples: np.ndarray
    """int16 ``(frames, channels)`` at the device's own rate and channel count."""
    rate: int
    """The device's true sample rate."""
    time: float
    """``time.monotonic()`` of the chunk's first sample (the microphone gate uses it)."""

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.samples.shape[0] / self.rate

    @property
    def end(self) -> float:
        """Monotonic time of the chunk's last sample."""
        return self.time + self.duration

    def mono(self) -> AudioChunk:
        """The chunk downmixed to one channel."""
        if self.samples.shape[1] == 1:
            return self
        return dataclasses.replace(self, samples=downmix(self.samples))


class AudioInput(ABC):
    """A microphone: delivers :class:`AudioChunk`s at its own rate and channel count."""

    rate: int = 16000
    """Sample rate of the chunks (the device's true rate)."""
    channels: int = 1
    """Channels of the chunks."""

    @abstractmethod
    async def start(self) -> None:
        """Open the device and start capturing."""

    @abstractmethod
    async def read(self, wait: float) -> AudioChunk | None:
        """The next chunk; ``None`` at the end of a finite source.

        Raises:
            TimeoutError: no chunk arrived within ``wait`` seconds (a dead device).
        """

    @abstractmethod
    def flush(self, before: float | None = None) -> int:
        """Drop chunks captured but not yet read (only those captured before ``before``).

        Returns how many were dropped.
        """

    @abstractmethod
    async def stop(self) -> None:
        """Stop capturing and release the device."""


class AudioOutput(ABC):
    """A loudspeaker that plays mono int16 chunks at :attr:`rate`."""

    rate: int = 22050
    """Sample rate the caller must deliver."""

    @abstractmethod
    async def start(self) -> None:
        """Open the device."""

    @abstractmethod
    async def play(self, samples: np.ndarray) -> None:
        """Play one chunk; returns once the device has taken it (about real time)."""

    @abstractmethod
    def abort(self) -> None:
        """Drop whatever the device still has queued, at once (barge-in)."""

    @abstractmethod
    async def drain(self) -> None:
        """Wait until everything handed to :meth:`play` has left the loudspeaker."""

    @abstractmethod
    async def stop(self) -> None:
        """Close the device."""


class _QueueInput(AudioInput):
    """Shared queue logic: a producer pushes chunks, :meth:`read` awaits them."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[AudioChunk | None] = asyncio.Queue()

    async def read(self, wait: float) -> AudioChunk | None:
        """The next chunk, ``None`` when the source has ended."""
        return await asyncio.wait_for(self._queue.get(), wait)

    def flush(self, before: float | None = None) -> int:
        """Drop queued chunks captured before ``before`` (all when None); an end marker stays."""
        kept: list[AudioChunk | None] = []
        dropped = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                break
            if item is not None and (before is None or item.time < before):
                dropped += 1
            else:
                kept.append(item)
        for item in kept:
            self._queue.put_nowait(item)
        return dropped


# --------------------------------------------------------------------------- file/null


class ClipInput(_QueueInput):
    """A recording played as if it came from a microphone, in real-time-sized chunks.

    Args:
        clip: what the "customer" says (any rate and channel count).
        block_ms: chunk length.
        realtime: pace chunks at the clip's real speed (False: as fast as they are read).
        lead_silence: seconds of silence before the clip.
        trail_silence: seconds of silence after it, before the source ends.
        endless: keep producing silence after the clip instead of ending.
    """

    def __init__(
        self,
        clip: AudioClip,
        block_ms: int = 50,
        realtime: bool = True,
        lead_silence: float = 0.0,
        trail_silence: float = 1.0,
        endless: bool = False,
    ) -> None:
        super().__init__()
        parts = []
        if lead_silence > 0:
            parts.append(AudioClip.silence(lead_silence, clip.rate, clip.channels))
        parts.append(clip)
        if trail_silence > 0:
            parts.append(AudioClip.silence(trail_silence, clip.rate, clip.channels))
        self.clip = AudioClip.concat(parts)
        self.rate = clip.rate
        self.channels = clip.channels
        self.block = max(1, clip.rate * block_ms // 1000)
        self.realtime = realtime
        self.endless = endless
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start producing chunks."""
        if self._task is None:
            self._task = asyncio.create_task(self._produce())

    def _next_samples(self, pos: int) -> np.ndarray | None:
        if pos < self.clip.frames:
            return self.clip.samples[pos : pos + self.block]
        if self.endless:
            return np.zeros((self.block, self.channels), np.int16)
        return None

    async def _produce(self) -> None:
        t0 = time.monotonic()
        pos = 0
        while True:
            samples = self._next_samples(pos)
            if samples is None:
                break
            captured = t0 + pos / self.rate
            if self.realtime:
                # A chunk becomes available only once it has been fully "spoken".
                delay = captured + samples.shape[0] / self.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)
                captured = time.monotonic()
            self._queue.put_nowait(AudioChunk(samples, self.rate, captured))
            pos += samples.shape[0]
        self._queue.put_nowait(None)

    async def stop(self) -> None:
        """Stop producing."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


class WavFileInput(ClipInput):
    """A WAV file as microphone (the headless demo's customer)."""

    def __init__(self, path: str | Path, **kwargs: object) -> None:
        super().__init__(AudioClip.from_wav(path), **kwargs)  # type: ignore[arg-type]
        self.path = Path(path)


class NullInput(ClipInput):
    """A microphone that hears only silence, forever."""

    def __init__(self, rate: int = 16000, block_ms: int = 50) -> None:
        super().__init__(AudioClip.silence(0.0, rate), block_ms, trail_silence=0.0, endless=True)


class RecordingOutput(AudioOutput):
    """A loudspeaker that records what it plays (to memory and optionally a WAV file).

    It paces playback in real time, so stopping mid-sentence and the microphone gate
    behave as with a real device.

    Args:
        rate: sample rate to accept.
        path: WAV file written on :meth:`stop` (None: memory only).
        realtime: wait a chunk's duration per chunk (False: return at once).
    """

    def __init__(self, rate: int = 22050, path: str | Path | None = None, realtime: bool = True) -> None:
        self.rate = rate
        self.path = Path(path) if path else None
        self.realtime = realtime
        self._played: list[np.ndarray] = []
        self._clock: float | None = None
        self.aborts = 0
        """How many times playback was aborted (barge-in or a key)."""

    async def start(self) -> None:
        """Nothing to open."""

    async def play(self, samples: np.ndarray) -> None:
        """Record a chunk and wait until it would have finished playing."""
        a = _as_frames(samples)
        now = time.monotonic()
        if self._clock is None or self._clock < now:
            self._clock = now
        start = self._clock
        self._clock += a.shape[0] / self.rate
        self._played.append(a[:, :1])
        self._heard(a, start)
        if self.realtime:
            # Hand over the next chunk slightly before this one ends, like a device buffer.
            delay = self._clock - time.monotonic() - 0.5 * a.shape[0] / self.rate
            if delay > 0:
                await asyncio.sleep(delay)

    def _heard(self, samples: np.ndarray, start: float) -> None:
        """Hook for loopback: ``samples`` leave the speaker at monotonic time ``start``."""

    def abort(self) -> None:
        """Forget the rest of the current device buffer."""
        self.aborts += 1
        self._clock = None

    async def drain(self) -> None:
        """Wait until the last chunk would have finished playing."""
        if self.realtime and self._clock is not None:
            delay = self._clock - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    @property
    def recorded(self) -> AudioClip:
        """Everything played so far."""
        if not self._played:
            return AudioClip.silence(0.0, self.rate)
        return AudioClip(np.concatenate(self._played), self.rate)

    def clear(self) -> None:
        """Forget what was recorded."""
        self._played.clear()

    async def stop(self) -> None:
        """Write the WAV file if one was asked for."""
        if self.path is not None:
            self.recorded.to_wav(self.path)


class NullOutput(RecordingOutput):
    """A loudspeaker that plays nowhere (keeps real-time pacing, records nothing)."""

    async def play(self, samples: np.ndarray) -> None:
        """Wait as long as the chunk would take to play."""
        await super().play(samples)
        self._played.clear()


# --------------------------------------------------------------------------- loopback


class LoopbackInput(ClipInput):
    """A microphone that hears a customer recording *and* the paired loudspeaker.

    Whatever :class:`LoopbackOutput` plays reaches this microphone ``latency`` seconds
    later at ``coupling_db`` relative level, the way a kiosk's own loudspeaker leaks into
    its microphone. Runs in real time.
    """

    def __init__(
        self,
        customer: AudioClip | None = None,
        rate: int = 16000,
        channels: int = 1,
        block_ms: int = 50,
        coupling_db: float = -6.0,
        latency: float = 0.03,
        lead_silence: float = 0.0,
    ) -> None:
        base = customer if customer is not None else AudioClip.silence(0.0, rate, channels)
        base = base.resampled(rate)
        if base.channels != channels:
            base = AudioClip(np.repeat(base.mono().samples, channels, axis=1), rate)
        super().__init__(base, block_ms, True, lead_silence, trail_silence=0.0, endless=True)
        self.coupling = 10 ** (coupling_db / 20)
        self.latency = latency
        self._air: deque[tuple[float, np.ndarray]] = deque()

    def hear(self, samples: np.ndarray, rate: int, start: float) -> None:
        """Sound from the loudspeaker that started at monotonic time ``start``."""
        mono = downmix(samples)
        if rate != self.rate:
            mono = resample(mono, rate, self.rate)
        self._air.append((start + self.latency, mono[:, 0].astype(np.float32) * self.coupling))

    def _echo_for(self, t0: float, n: int) -> np.ndarray:
        out = np.zeros(n, np.float32)
        t1 = t0 + n / self.rate
        keep: deque[tuple[float, np.ndarray]] = deque()
        for start, sig in self._air:
            end = start + len(sig) / self.rate
            if end <= t0:
                continue
            keep.append((start, sig))
            if start >= t1:
                continue
            # Place the overlapping part of this sound into the chunk window.
            off = round((start - t0) * self.rate)
            a, b = max(0, off), min(n, off + len(sig))
            if b > a:
                out[a:b] += sig[a - off : b - off]
        self._air = keep
        return out

    async def _produce(self) -> None:
        t0 = time.monotonic()
        pos = 0
        while True:
            samples = self._next_samples(pos)
            assert samples is not None  # endless
            captured = t0 + pos / self.rate
            delay = captured + samples.shape[0] / self.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            echo = self._echo_for(captured, samples.shape[0])
            mixed = samples.astype(np.float32) + echo[:, None]
            chunk = np.clip(np.round(mixed), -32768, 32767).astype(np.int16)
            self._queue.put_nowait(AudioChunk(chunk, self.rate, captured))
            pos += samples.shape[0]


class LoopbackOutput(RecordingOutput):
    """A recording loudspeaker whose sound also reaches a :class:`LoopbackInput`."""

    def __init__(self, mic: LoopbackInput, rate: int = 22050, path: str | Path | None = None) -> None:
        super().__init__(rate, path, realtime=True)
        self.mic = mic

    def _heard(self, samples: np.ndarray, start: float) -> None:
        self.mic.hear(samples, self.rate, start)


# --------------------------------------------------------------------------- sounddevice


def _sounddevice():
    try:
        import sounddevice
    except ImportError:
        raise MissingPackageError("sounddevice", "tts") from None
    except OSError as exc:  # the PortAudio library itself is missing
        raise AudioDeviceError(f"PortAudio is not available: {exc}") from None
    return sounddevice


def _device(spec: str) -> int | str | None:
    if not spec:
        return None
    return int(spec) if spec.isdigit() else spec


class SoundDeviceInput(_QueueInput):
    """A real microphone through PortAudio, at the device's own rate and channels."""

    def __init__(self, device: str = "", rate: int = 0, channels: int = 0, block_ms: int = 50) -> None:
        super().__init__()
        sd = _sounddevice()
        try:
            info = sd.query_devices(_device(device), "input")
        except (ValueError, sd.PortAudioError) as exc:
            raise AudioDeviceError(f"no microphone {device or '(default)'}: {exc}") from None
        self.device = _device(device)
        self.rate = rate or int(info["default_samplerate"])
        self.channels = channels or max(1, min(2, int(info["max_input_channels"])))
        self.block = max(1, self.rate * block_ms // 1000)
        self._stream = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        """Open the PortAudio input stream."""
        sd = _sounddevice()
        self._loop = asyncio.get_running_loop()

        def callback(indata, frames, _time, status) -> None:  # PortAudio thread
            if status:
                log.debug("microphone status: %s", status)
            captured = time.monotonic() - frames / self.rate
            chunk = AudioChunk(indata.copy(), self.rate, captured)
            self._loop.call_soon_threadsafe(self._queue.put_nowait, chunk)  # type: ignore[union-attr]

        try:
            self._stream = sd.InputStream(
                device=self.device,
                samplerate=self.rate,
                channels=self.channels,
                dtype="int16",
                blocksize=self.block,
                callback=callback,
            )
            self._stream.start()
        except sd.PortAudioError as exc:
            raise AudioDeviceError(f"cannot open microphone at {self.rate} Hz: {exc}") from None

    async def stop(self) -> None:
        """Close the stream."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None


class SoundDeviceOutput(AudioOutput):
    """A real loudspeaker through PortAudio (mono, device default rate)."""

    def __init__(self, device: str = "", rate: int = 0, timeout: float = 2.0) -> None:
        sd = _sounddevice()
        try:
            info = sd.query_devices(_device(device), "output")
        except (ValueError, sd.PortAudioError) as exc:
            raise AudioDeviceError(f"no loudspeaker {device or '(default)'}: {exc}") from None
        self.device = _device(device)
        self.rate = rate or int(info["default_samplerate"])
        self.timeout = timeout
        self._stream = None

    async def start(self) -> None:
        """Open the PortAudio output stream."""
        sd = _sounddevice()
        try:
            self._stream = sd.OutputStream(
                device=self.device, samplerate=self.rate, channels=1, dtype="int16", latency="low"
            )
            self._stream.start()
        except sd.PortAudioError as exc:
            raise AudioDeviceError(f"cannot open loudspeaker at {self.rate} Hz: {exc}") from None

    async def play(self, samples: np.ndarray) -> None:
        """Write one chunk (blocking write in a thread, with a timeout)."""
        if self._stream is None:
            await self.start()
        stream = self._stream
        a = np.ascontiguousarray(_as_frames(samples)[:, :1])
        await asyncio.wait_for(asyncio.to_thread(stream.write, a), self.timeout + len(a) / self.rate)

    def abort(self) -> None:
        """Drop the device buffer at once and reopen for the next prompt."""
        if self._stream is not None:
            self._stream.abort()
            self._stream.start()

    async def drain(self) -> None:
        """Wait for the device's own buffer (its reported output latency) to play out."""
        if self._stream is not None:
            await asyncio.sleep(float(self._stream.latency))

    async def stop(self) -> None:
        """Close the stream."""
        if self._stream is not None:
            self._stream.close()
            self._stream = None


# --------------------------------------------------------------------------- factory


def open_input(section: AudioSection, resolve=Path) -> AudioInput:
    """The microphone ``[audio] input`` names.

    Raises:
        AudioDeviceError: the device is missing (the caller goes keypad-only).
        MissingPackageError: sounddevice is not installed.
    """
    if section.input == "sounddevice":
        return SoundDeviceInput(section.input_device, section.input_rate, section.input_channels, section.block_ms)
    if section.input == "wav":
        if not section.input_wav:
            raise AudioDeviceError("[audio] input = 'wav' needs input_wav")
        try:
            return WavFileInput(resolve(section.input_wav), block_ms=section.block_ms, trail_silence=2.0)
        except (OSError, ValueError) as exc:
            # a missing or foreign file is a missing microphone: keypad only, not a dead kiosk
            raise AudioDeviceError(f"[audio] input_wav: {exc}") from None
    if section.input == "null":
        return NullInput(section.input_rate or 16000, section.block_ms)
    raise AudioDeviceError(f"unknown [audio] input backend {section.input!r} (sounddevice, wav, null)")


def open_output(section: AudioSection, resolve=Path) -> AudioOutput:
    """The loudspeaker ``[audio] output`` names.

    Raises:
        AudioDeviceError: the device is missing.
        MissingPackageError: sounddevice is not installed.
    """
    if section.output == "sounddevice":
        return SoundDeviceOutput(section.output_device, section.output_rate)
    if section.output == "wav":
        path = resolve(section.output_wav) if section.output_wav else None
        return RecordingOutput(section.output_rate or 22050, path)
    if section.output == "null":
        return NullOutput(section.output_rate or 22050)
    raise AudioDeviceError(f"unknown [audio] output backend {section.output!r} (sounddevice, wav, null)")
