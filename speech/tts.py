"""Speech synthesis: the ``Synthesizer`` role over pyttsx3 and espeak-ng.

Text is rendered to PCM (never played by the engine itself) so that the speaker can play
it in chunks, stop it mid-sentence, repeat it and change its volume.

pyttsx3's espeak run loop is fragile on Linux: ``runAndWait`` can return before the
audio is written (typically the first utterance after properties change) or hang. So the
engine lives in a **worker process** (``python -m speech.tts --worker``) that checks each
rendered file and retries, and :class:`EspeakSynthesizer` guards it with a **watchdog**:
a request that does not answer in time kills the worker and a fresh one takes over. A
process (not a thread) is used because a hung thread cannot be killed, and because
libespeak-ng can only be initialised once per process.

The Mandarin voice must be chosen by its full id ``sit/cmn-latn-pinyin``; the plain
``cmn`` voice reads Hanzi as English letters. :meth:`Synthesizer.check_voice` is the
start-up self-test: it rejects a voice that was not applied, or that switches language
(espeak-ng marks such switches as ``(en)`` in its phoneme output) on a sample sentence.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import importlib.util
import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from assistant.errors import ConfigError, MissingPackageError, SpeechError
from speech.audio import AudioClip

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class TtsSection:
    """The ``[tts]`` config section."""

    backend: str = "espeak"
    """Synthesizer backend (``espeak``: pyttsx3 over espeak-ng)."""
    voice: str = "sit/cmn-latn-pinyin"
    """Default voice id (a locale pack may name its own)."""
    rates: tuple[int, ...] = (100, 125, 150, 175)
    """Speaking rates in words per minute, slowest first; "slower"/"faster" step through them."""
    default_rate: int = 2
    """Index into ``rates`` for a new customer."""
    volumes_db: tuple[float, ...] = (-9.0, -6.0, -3.0, 0.0)
    """Loudness steps relative to a full-scale prompt, softest first."""
    default_volume: int = 1
    """Index into ``volumes_db`` for a new customer."""
    render_timeout_s: float = 10.0
    """Watchdog: a render that takes longer restarts the engine."""
    max_restarts: int = 3
    """Engine restarts tried for one request before it fails."""
    cache_size: int = 64
    """Rendered prompts kept in memory (repeat is instant)."""

    def __post_init__(self) -> None:
        # checked here, not on first use: an index past the list only failed when the
        # kiosk first spoke, and then on every prompt
        if not self.rates or any(r <= 0 for r in self.rates):
            raise ConfigError(f"[tts] rates must list words per minute > 0, got {list(self.rates)}")
        if not self.volumes_db:
            raise ConfigError("[tts] volumes_db must list at least one loudness step")
        if not 0 <= self.default_rate < len(self.rates):
            raise ConfigError(f"[tts] default_rate = {self.default_rate} is not an index into rates (0 .. {len(self.rates) - 1})")
        if not 0 <= self.default_volume < len(self.volumes_db):
            raise ConfigError(
                f"[tts] default_volume = {self.default_volume} is not an index into volumes_db (0 .. {len(self.volumes_db) - 1})"
            )
        if self.render_timeout_s <= 0 or self.max_restarts < 0 or self.cache_size < 0:
            raise ConfigError("[tts] render_timeout_s must be > 0, max_restarts and cache_size >= 0")


# --------------------------------------------------------------------------- role


class VoiceError(SpeechError):
    """The configured voice is missing or reads the kiosk's language wrongly."""


@dataclass(frozen=True)
class VoiceReport:
    """The result of a voice self-test."""

    voice: str
    """Voice id that was asked for."""
    applied: str
    """Voice id the engine reports after applying it."""
    phonemes: str
    """espeak-ng phonemes of the sample text."""
    switches: tuple[str, ...]
    """Languages the engine switched to while reading the sample (must be empty)."""


class Synthesizer(ABC):
    """The speech-synthesis role."""

    name: str = ""
    """Backend name as written in ``[tts] backend``."""

    @abstractmethod
    async def synthesize(self, text: str, voice: str, rate: int) -> AudioClip:
        """Render ``text`` with ``voice`` at ``rate`` words per minute to mono PCM."""

    @abstractmethod
    async def check_voice(self, voice: str, sample_text: str) -> VoiceReport:
        """Start-up self-test of a voice on a sample sentence in the kiosk's language.

        Raises:
            VoiceError: the voice is missing, was not applied, or switches language.
        """

    @abstractmethod
    async def voices(self) -> list[str]:
        """Voice ids the engine offers."""

    async def close(self) -> None:  # noqa: B027 -- optional hook
        """Release the engine."""


_SWITCH = re.compile(r"\(([a-z]{2,3}(?:-[a-z0-9-]+)?)\)")


def language_switches(phonemes: str) -> tuple[str, ...]:
    """Languages espeak-ng switched to, from the ``(xx)`` markers in its phoneme output."""
    return tuple(dict.fromkeys(_SWITCH.findall(phonemes)))


# --------------------------------------------------------------------------- worker side


def _worker_main() -> int:  # pragma: no cover - runs in the child process
    """The engine process: JSON requests on stdin, JSON header plus PCM bytes on stdout."""
    proto = os.fdopen(os.dup(1), "wb", buffering=0)
    # pyttsx3 prints ("Audio saved to ...") on stdout: point fd 1 at stderr so only the
    # protocol travels on the pipe.
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def send(header: dict[str, Any], payload: bytes = b"") -> None:
        header["nbytes"] = len(payload)
        proto.write(json.dumps(header).encode() + b"\n" + payload)

    try:
        import pyttsx3
        from pyttsx3.drivers import _espeak

        engine = pyttsx3.init("espeak")
    except Exception as exc:  # report any start failure to the parent, then stop
        send({"ready": False, "error": f"{type(exc).__name__}: {exc}"})
        return 1
    to_phonemes = _espeak.dll.espeak_TextToPhonemes
    to_phonemes.restype = ctypes.c_char_p
    to_phonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
    voices = sorted(v.id for v in engine.getProperty("voices"))
    send({"ready": True, "pid": os.getpid(), "voices": voices})
    tmp = tempfile.mkdtemp(prefix="kiosk-tts-")
    out = os.path.join(tmp, "out.wav")

    current = {"voice": ""}

    def synth_once(text: str, rate: int) -> AudioClip | None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(out)
        # The rate travels inside the text as an espeak-ng embedded command (Ctrl-A,
        # value, "S"): rate changes made with setProperty are applied late or lost when
        # utterances follow each other quickly.
        engine.save_to_file(f"\x01{int(rate)}S {text}", out)
        engine.runAndWait()
        for _ in range(400):
            # runAndWait returns as soon as synthesis *starts*; espeak's callback thread
            # writes the file and then marks the engine idle. Wait for both, or the next
            # request's settings race with this one.
            if os.path.exists(out) and not engine.isBusy() and not _espeak.IsPlaying():
                clip = AudioClip.from_wav(out)
                return clip if clip.frames else None
            time.sleep(0.005)
        return None

    def render(text: str, voice: str, rate: int) -> AudioClip:
        # Control characters would be read as embedded commands: never pass them through.
        clean = "".join(c if c >= " " else " " for c in text)
        if current["voice"] != voice:
            engine.setProperty("voice", voice)
            # setProperty is queued; one utterance applies it (and absorbs the engine's
            # habit of losing the first utterance after a change).
            synth_once(clean, rate)
            applied = engine.getProperty("voice") or ""
            current["voice"] = voice if applied.lower() == voice.lower() else ""
        for attempt in range(3):
            clip = synth_once(clean, rate)
            if clip is not None:
                return clip
            print(f"tts worker: no audio on attempt {attempt + 1}", file=sys.stderr)
        raise RuntimeError("pyttsx3 returned without writing audio three times")

    def phonemes(text: str) -> str:
        buf = ctypes.create_string_buffer(text.encode("utf-8"))
        ptr = ctypes.c_void_p(ctypes.addressof(buf))
        parts = []
        while ptr.value:
            res = to_phonemes(ctypes.byref(ptr), 1, 0)  # 1 = UTF-8 text, 0 = ASCII phonemes
            parts.append((res or b"").decode("utf-8", "replace"))
        return " ".join(parts)

    for line in sys.stdin:
        try:
            req = json.loads(line)
            op = req.get("op")
            if op == "quit":
                send({"ok": True})
                break
            if op == "render":
                clip = render(req["text"], req["voice"], req["rate"])
                applied = engine.getProperty("voice") or ""
                send({"ok": True, "rate": clip.rate, "voice": applied}, clip.pcm16())
            elif op == "check_voice":
                render(req["text"], req["voice"], req.get("rate", 150))
                applied = engine.getProperty("voice") or ""
                send({"ok": True, "voice": applied, "phonemes": phonemes(req["text"])})
            elif op == "ping":
                send({"ok": True, "pid": os.getpid()})
            else:
                send({"ok": False, "error": f"unknown op {op!r}"})
        except Exception as exc:  # one bad request must not kill the engine
            send({"ok": False, "error": f"{type(exc).__name__}: {exc}"})
    return 0


# --------------------------------------------------------------------------- parent side


class _WorkerDied(Exception):
    pass


class _Worker:
    """One engine process and its pipes (used from one thread at a time)."""

    def __init__(self, start_timeout: float) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "speech.tts", "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL if not log.isEnabledFor(logging.DEBUG) else None,
            cwd=str(ROOT),
            env=env,
        )
        self.finalizer = weakref.finalize(self, _kill, self.proc)
        self.hello: dict[str, Any] = {}
        self.start_timeout = start_timeout

    def handshake(self) -> dict[str, Any]:
        """Read the worker's ready message (blocking)."""
        self.hello, _ = self.read()
        return self.hello

    def read(self) -> tuple[dict[str, Any], bytes]:
        """One response: a JSON header line and its payload (blocking)."""
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise _WorkerDied("speech engine process ended")
        header = json.loads(line)
        n = int(header.get("nbytes", 0))
        payload = b""
        while len(payload) < n:
            more = self.proc.stdout.read(n - len(payload))
            if not more:
                raise _WorkerDied("speech engine process ended mid-answer")
            payload += more
        return header, payload

    def exchange(self, request: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        """Send one request and read its answer (blocking)."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(request, ensure_ascii=False).encode() + b"\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            raise _WorkerDied("speech engine process is gone") from None
        return self.read()

    @property
    def pid(self) -> int:
        """The process id."""
        return self.proc.pid

    def kill(self) -> None:
        """End the process now."""
        self.finalizer()


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    with contextlib.suppress(Exception):
        proc.wait(timeout=5)
    for f in (proc.stdin, proc.stdout):
        with contextlib.suppress(Exception):
            if f is not None:
                f.close()


class EspeakSynthesizer(Synthesizer):
    """pyttsx3 over espeak-ng, in a watched worker process.

    Args:
        timeout: watchdog limit for one request (seconds); longer texts get more.
        max_restarts: how many fresh engines one request may try.
        start_timeout: how long a new engine may take to start.
    """

    name = "espeak"

    def __init__(self, timeout: float = 10.0, max_restarts: int = 3, start_timeout: float = 20.0) -> None:
        if importlib.util.find_spec("pyttsx3") is None:
            raise MissingPackageError("pyttsx3", "tts")
        self.timeout = timeout
        self.max_restarts = max_restarts
        self.start_timeout = start_timeout
        self.restarts = 0
        """How many times the watchdog replaced the engine process."""
        self._worker: _Worker | None = None
        self._lock = asyncio.Lock()
        self._thread_lock = threading.Lock()

    @property
    def worker_pid(self) -> int | None:
        """The current engine process id (None before the first request)."""
        return self._worker.pid if self._worker else None

    async def start(self) -> None:
        """Start the engine process now rather than on the first request."""
        async with self._lock:
            await self._ensure_worker()

    async def _ensure_worker(self) -> _Worker:
        if self._worker is not None and self._worker.proc.poll() is None:
            return self._worker
        if self._worker is not None:
            # The engine died between requests: the watchdog replaces it here.
            log.warning("speech engine (pid %d) is gone; restarting", self._worker.pid)
            self._worker.kill()
            self._worker = None
            self.restarts += 1
        worker = _Worker(self.start_timeout)
        try:
            hello = await asyncio.wait_for(asyncio.to_thread(worker.handshake), self.start_timeout)
        except (TimeoutError, _WorkerDied, ValueError) as exc:
            worker.kill()
            raise SpeechError(f"speech engine did not start: {exc or 'timeout'}") from None
        if not hello.get("ready"):
            worker.kill()
            raise SpeechError(f"speech engine cannot start: {hello.get('error')}")
        self._worker = worker
        return worker

    async def _request(self, request: dict[str, Any], limit: float) -> tuple[dict[str, Any], bytes]:
        async with self._lock:
            last = ""
            for attempt in range(self.max_restarts + 1):
                worker = await self._ensure_worker()
                try:
                    header, payload = await asyncio.wait_for(
                        asyncio.to_thread(worker.exchange, request), limit
                    )
                except (TimeoutError, _WorkerDied, ValueError) as exc:
                    # The watchdog: a stuck or dead engine is replaced, the request retried.
                    last = str(exc) or f"no answer within {limit:.1f} s"
                    log.warning("speech engine (pid %d) failed: %s; restarting", worker.pid, last)
                    worker.kill()
                    self._worker = None
                    self.restarts += 1
                    continue
                if not header.get("ok"):
                    last = str(header.get("error"))
                    if attempt < self.max_restarts:
                        log.warning("speech engine error: %s; restarting", last)
                        worker.kill()
                        self._worker = None
                        self.restarts += 1
                        continue
                    raise SpeechError(f"speech synthesis failed: {last}")
                return header, payload
            raise SpeechError(f"speech synthesis failed after {self.max_restarts} restarts: {last}")

    def _timeout_for(self, text: str) -> float:
        # Rendering is ~100x real time; long receipts still need more than short prompts.
        return self.timeout + 0.05 * len(text)

    async def synthesize(self, text: str, voice: str, rate: int) -> AudioClip:
        """Render ``text`` to 22.05 kHz mono PCM."""
        if not text.strip():
            return AudioClip.silence(0.0, 22050)
        header, payload = await self._request(
            {"op": "render", "text": text, "voice": voice, "rate": int(rate)}, self._timeout_for(text)
        )
        if str(header.get("voice", "")).lower() != voice.lower():
            raise VoiceError(f"voice {voice!r} was not applied (engine uses {header.get('voice')!r})")
        samples = np.frombuffer(payload, dtype="<i2").copy()
        return AudioClip(samples, int(header["rate"]))

    async def check_voice(self, voice: str, sample_text: str) -> VoiceReport:
        """Render the sample, confirm the voice stuck, and reject language switches."""
        header, _ = await self._request(
            {"op": "check_voice", "text": sample_text, "voice": voice}, self._timeout_for(sample_text)
        )
        applied = str(header.get("voice", ""))
        phon = str(header.get("phonemes", ""))
        report = VoiceReport(voice, applied, phon, language_switches(phon))
        if applied.lower() != voice.lower():
            if applied.lower().endswith("/" + voice.lower()):
                raise VoiceError(f"voice {voice!r} must be given by its full id {applied!r}")
            raise VoiceError(
                f"voice {voice!r} is not available (the engine kept {applied!r}); "
                "use a full id such as sit/cmn-latn-pinyin"
            )
        if report.switches:
            raise VoiceError(
                f"voice {voice!r} reads the sample {sample_text!r} partly as "
                f"{', '.join(report.switches)}: {phon}"
            )
        if not phon.strip():
            raise VoiceError(f"voice {voice!r} produced no phonemes for {sample_text!r}")
        return report

    async def voices(self) -> list[str]:
        """Voice ids espeak-ng offers."""
        async with self._lock:
            worker = await self._ensure_worker()
        return list(worker.hello.get("voices", []))

    async def close(self) -> None:
        """Stop the engine process."""
        async with self._lock:
            if self._worker is not None:
                worker, self._worker = self._worker, None
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.to_thread(worker.exchange, {"op": "quit"}), 2.0)
                worker.kill()


def create_synthesizer(section: TtsSection) -> Synthesizer:
    """The synthesizer ``[tts] backend`` names.

    Raises:
        MissingPackageError: pyttsx3 is not installed.
        SpeechError: unknown backend.
    """
    if section.backend == "espeak":
        return EspeakSynthesizer(section.render_timeout_s, section.max_restarts)
    raise SpeechError(f"unknown [tts] backend {section.backend!r} (known: espeak)")


if __name__ == "__main__":  # pragma: no cover
    if "--worker" in sys.argv:
        sys.exit(_worker_main())
    print("usage: python -m speech.tts --worker", file=sys.stderr)
    sys.exit(2)
