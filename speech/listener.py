"""Listening: microphone -> voice activity -> endpoint -> transcriber -> dialog events.

The listener runs as one asyncio task. Each microphone chunk is downmixed to mono at the
device's true rate and then

1. dropped if it was captured while the kiosk was speaking (the :class:`MicGate`), where
   it is only checked for barge-in: the customer clearly louder than the kiosk's own echo;
2. after a gated stretch, buffered audio is flushed and the recogniser and endpointer are
   reset, so nothing the kiosk said can leak into the next utterance;
3. judged by the voice activity detector and the slow-speaker endpointer;
4. fed to the transcriber (every chunk for a streaming engine, the utterance with some
   pre-roll for a segment-based one).

The dialog receives :class:`~assistant.messages.Utterance` events (final results only)
and :class:`~assistant.messages.Timeout` events named :data:`NO_SPEECH_TIMER` when the
customer has not started speaking for a while -- a cue for a gentle re-prompt; listening
goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable, Iterable

from assistant.errors import KioskError
from assistant.messages import Event, Timeout, Utterance
from speech.asr import AsrSection, Grammar, Transcriber, TranscriberStream
from speech.audio import AudioChunk, AudioInput, AudioSection, level_dbfs
from speech.endpoint import Endpointer, EndpointKind, EndpointSettings
from speech.gate import MicGate
from speech.vad import EnergyVad, Vad

log = logging.getLogger(__name__)

NO_SPEECH_TIMER = "no_speech"
"""Timer name of the :class:`~assistant.messages.Timeout` sent when nobody speaks."""

MIC_REOPEN_DELAYS = (0.5, 2.0, 5.0, 15.0)
"""Waits before reopening a microphone that went dead (the last one repeats)."""


def endpoint_settings(section: AsrSection) -> EndpointSettings:
    """The endpointer's timing from the ``[asr]`` section."""
    return EndpointSettings(
        trailing_silence_ms=section.trailing_silence_ms,
        hesitation_silence_ms=section.hesitation_silence_ms,
        min_speech_ms=section.min_speech_ms,
        max_utterance_s=section.max_utterance_s,
        no_speech_reprompt_s=section.no_speech_reprompt_s,
    )


class Listener:
    """Turns microphone audio into dialog events.

    Args:
        mic: the microphone (any rate, any channel count).
        transcriber: the recogniser.
        on_event: receives :class:`Utterance` and no-speech :class:`Timeout` events.
        asr: the ``[asr]`` section (endpointing and VAD settings).
        audio: the ``[audio]`` section (barge-in settings).
        gate: the microphone gate shared with the speaker.
        vad: voice activity detector (default: :class:`EnergyVad` from ``asr``).
        on_partial: receives the words heard so far (streaming engines; for captions).
        read_timeout: a microphone silent this long is dead: it is closed and reopened.
        reopen_delays: seconds to wait before each attempt to reopen a dead microphone (the
            last one repeats for as long as it stays dead).

    ``on_mic`` (set after construction) is told ``False`` when the microphone goes dead and
    ``True`` when it works again, so the kiosk stops inviting customers to speak meanwhile.
    """

    def __init__(
        self,
        mic: AudioInput,
        transcriber: Transcriber,
        on_event: Callable[[Event], None],
        asr: AsrSection | None = None,
        audio: AudioSection | None = None,
        gate: MicGate | None = None,
        vad: Vad | None = None,
        on_partial: Callable[[str], None] | None = None,
        read_timeout: float = 5.0,
        reopen_delays: tuple[float, ...] = MIC_REOPEN_DELAYS,
    ) -> None:
        self.mic = mic
        self.transcriber = transcriber
        self.on_event = on_event
        self.on_partial = on_partial
        self.asr = asr or AsrSection()
        self.audio = audio or AudioSection()
        self.gate = gate
        self.vad = vad or EnergyVad(self.asr.vad_threshold_db, self.asr.vad_min_dbfs)
        self.endpointer = Endpointer(endpoint_settings(self.asr))
        self.read_timeout = read_timeout
        self.reopen_delays = reopen_delays or MIC_REOPEN_DELAYS
        self.on_mic: Callable[[bool], None] | None = None
        self._grammar: Grammar | None = None
        self._listening = False
        self._stream: TranscriberStream | None = None
        self._stream_key: tuple[int, Grammar | None] | None = None
        self._generation = gate.generation if gate else 0
        self._partial = ""
        self._stopped = asyncio.Event()
        self._loud_ms = 0.0
        self._barge_buffer: deque[AudioChunk] = deque(maxlen=40)
        self._replay: list[AudioChunk] = []
        self._barged_generation = -1
        self.dropped_chunks = 0
        """Chunks discarded because the kiosk was speaking (for tests and diagnostics)."""

    # -- control -------------------------------------------------------------------------
    def expect(
        self,
        grammar: Grammar | None,
        unfinished: Callable[[str], bool] | None = None,
    ) -> None:
        """Listen for the next utterance, constrained by ``grammar`` (None: free speech).

        Args:
            grammar: built with ``transcriber.build_grammar`` (ideally once, at start-up).
            unfinished: True for a partial transcript that should not end yet (e.g. it ends
                in a number word), which allows the longer hesitation silence.
        """
        self._grammar = grammar
        self.endpointer.unfinished = unfinished
        self._listening = True
        self._restart_turn()

    def expect_sentences(self, sentences: Iterable[tuple[str, str]]) -> Grammar:
        """Build (and check) a grammar from ``(sentence, "file:line")`` pairs and expect it."""
        grammar = self.transcriber.build_grammar(sentences)
        self.expect(grammar)
        return grammar

    def pause(self) -> None:
        """Stop producing events until the next :meth:`expect` (audio is still drained)."""
        self._listening = False
        self._restart_turn()

    def stop(self) -> None:
        """End :meth:`run`."""
        self._stopped.set()

    @property
    def listening(self) -> bool:
        """True between :meth:`expect` and :meth:`pause`."""
        return self._listening

    def _restart_turn(self) -> None:
        self.endpointer.reset()
        self._partial = ""
        if self._stream is not None:
            self._stream.reset()

    def _stream_for(self, rate: int) -> TranscriberStream:
        key = (rate, self._grammar)
        if self._stream is None or self._stream_key != key:
            self._stream = self.transcriber.open_stream(rate, self._grammar)
            self._stream_key = key
        return self._stream

    # -- the loop ------------------------------------------------------------------------
    async def run(self) -> None:
        """Consume the microphone until :meth:`stop` or the end of a finite source.

        A microphone that cannot be opened, or stops delivering audio, is closed and
        reopened until it works again (or :meth:`stop`): a read timeout used to end this
        task, and the kiosk went on inviting customers to speak without ever hearing them.
        """
        opened = await self._open_mic(first=True)
        try:
            while opened and not self._stopped.is_set():
                try:
                    chunk = await self.mic.read(self.read_timeout)
                except (TimeoutError, KioskError, OSError) as exc:
                    log.error("microphone stopped delivering audio (%s); reopening it", exc or type(exc).__name__)
                    await self._close_mic()
                    self._lost_audio()
                    self._tell_mic(False)
                    opened = await self._open_mic()
                    if opened:
                        self._tell_mic(True)
                    continue
                if chunk is None:
                    break
                await self._process(chunk.mono())
        finally:
            await self._close_mic()

    def _tell_mic(self, up: bool) -> None:
        if self.on_mic is not None:
            try:
                self.on_mic(up)
            except Exception:  # a broken listener of ours must not stop the microphone loop
                log.exception("microphone state listener failed")

    async def _open_mic(self, first: bool = False) -> bool:
        """Open the microphone, retrying after :attr:`reopen_delays`; False once stopped.

        The first open is tried at once; a reopen waits first (a device that just failed
        usually needs a moment).
        """
        failures = 0 if first else 1
        while not self._stopped.is_set():
            if failures:
                delay = self.reopen_delays[min(failures - 1, len(self.reopen_delays) - 1)]
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopped.wait(), delay)
                if self._stopped.is_set():
                    break
            try:
                await self.mic.start()
            except (KioskError, OSError) as exc:
                log.error("cannot open the microphone: %s", exc)
                await self._close_mic()
                failures += 1
                continue
            if failures:
                log.warning("microphone open again")
            return True
        return False

    async def _close_mic(self) -> None:
        """Release the microphone; a device that fails even to close is only logged."""
        try:
            await self.mic.stop()
        except Exception:
            log.exception("closing the microphone failed")

    def _lost_audio(self) -> None:
        """Audio went missing mid-turn: start a fresh turn; a customer who was speaking
        hears "not understood" (half an amount must never be taken as the whole)."""
        if self._abandon_turn() and self._listening:
            self.on_event(Utterance("", 0.0))

    def _abandon_turn(self) -> bool:
        """Drop the turn in progress and start a fresh one; True if the customer was speaking."""
        heard = self.endpointer.in_speech
        try:
            self._restart_turn()
        except Exception:
            # the engine cannot even start a turn: a new stream is opened for the next chunk
            log.exception("speech recogniser could not start a new turn")
            self.endpointer.reset()
            self._stream = None
        return heard

    async def _process(self, chunk: AudioChunk, replayed: bool = False) -> None:
        gate = self.gate
        if gate is not None and not replayed:
            if not gate.is_open(chunk.time, chunk.end):
                self.dropped_chunks += 1
                self._check_barge_in(chunk)
                return
            # (A chunk captured just before a prompt began is read while it plays: the
            # episode is only over once the gate has closed and opened again.)
            if gate.generation != self._generation and not gate.speaking:
                # The kiosk spoke since the last chunk we used: drop audio buffered from
                # that time and reset the recogniser, which may be mid-way through it.
                self._generation = gate.generation
                self.dropped_chunks += self.mic.flush(before=gate.opened_at)
                self._restart_turn()
                self._loud_ms = 0.0
                replay, self._replay = self._replay, []
                for early in replay:  # the customer's words that stopped the prompt
                    await self._process(early, replayed=True)
        if not self._listening:
            return
        samples = chunk.samples[:, 0]
        speech = self.vad.is_speech(samples, chunk.rate)
        stream = self._stream_for(chunk.rate)
        # Streaming engines decode everything; segment engines keep a pre-roll until the
        # endpointer marks the start of speech.
        try:
            partial = await stream.accept(samples)
        except Exception as exc:
            self._engine_failed(exc)
            return
        if partial != self._partial:
            self._partial = partial
            if self.on_partial is not None and partial:
                self.on_partial(partial)
        event = self.endpointer.process(speech, 1000.0 * chunk.duration, partial)
        if event is EndpointKind.SPEECH_START:
            stream.mark_start()
        elif event in (EndpointKind.SPEECH_END, EndpointKind.MAX_LENGTH):
            await self._finish(stream)
        elif event is EndpointKind.NO_SPEECH:
            self.on_event(Timeout(NO_SPEECH_TIMER))

    def _engine_failed(self, exc: Exception) -> None:
        """The recogniser failed (or overran its timeout on a busy machine) mid-turn.

        Listening goes on with a fresh turn; an error here used to end the listener task
        and the kiosk stopped hearing anyone without saying so. If the customer was
        speaking, the dialog hears "not understood" and asks again.
        """
        if isinstance(exc, KioskError):
            log.error("speech recogniser failed: %s", exc)
        else:
            log.exception("speech recogniser failed")
        if self._abandon_turn():
            self.on_event(Utterance("", 0.0))

    async def _finish(self, stream: TranscriberStream) -> None:
        try:
            transcript = await stream.finish()
        except Exception as exc:
            self._partial = ""
            self._engine_failed(exc)
            self.on_event(Utterance("", 0.0))  # the utterance was over: it was not understood
            return
        self._partial = ""
        if transcript.text:
            log.info("heard %r (%.2f)", transcript.text, transcript.confidence)
            self.on_event(Utterance(transcript.text, round(transcript.confidence, 3)))
        elif transcript.unknown:
            # Speech outside the grammar: the dialog says it did not understand.
            self.on_event(Utterance("", 0.0))

    def _check_barge_in(self, chunk: AudioChunk) -> None:
        """While gated: stop the prompt if the customer is clearly louder than the echo."""
        gate = self.gate
        if gate is None or not self.audio.barge_in or not self._listening:
            return
        if self._barged_generation == gate.generation:
            # Barge-in already fired: until the gate opens this is the customer talking.
            self._replay.append(chunk)
            return
        if not gate.speaking:
            self._loud_ms = 0.0
            self._barge_buffer.clear()
            return
        mic_db = level_dbfs(chunk.samples)
        echo_db = gate.echo_level(chunk.time, chunk.end) + self.audio.echo_coupling_db
        threshold = max(echo_db + self.audio.barge_in_margin_db, self.asr.vad_min_dbfs)
        if mic_db > threshold:
            self._loud_ms += 1000.0 * chunk.duration
            self._barge_buffer.append(chunk)
            if self._loud_ms >= self.audio.barge_in_min_ms:
                log.info("barge-in: microphone %.1f dBFS over echo %.1f dBFS", mic_db, echo_db)
                # Keep the customer's first words: they are replayed once the gate opens.
                self._replay = list(self._barge_buffer)
                self._barge_buffer.clear()
                self._loud_ms = 0.0
                self._barged_generation = gate.generation
                gate.barge_in()
        else:
            self._loud_ms = 0.0
            self._barge_buffer.clear()
