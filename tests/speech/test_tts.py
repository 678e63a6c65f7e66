"""espeak-ng through pyttsx3: voice self-test, watchdog, rates, real rendered audio."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from speech.tts import (
    EspeakSynthesizer,
    TtsSection,
    VoiceError,
    create_synthesizer,
    language_switches,
)
from tests.speech.conftest import need_espeak

PINYIN = "sit/cmn-latn-pinyin"
ARREARS = "您好，您的电费是一百二十三元五角。"


async def test_pinyin_voice_passes_the_self_test(synth):
    report = await synth.check_voice(PINYIN, ARREARS)
    assert report.applied == PINYIN
    assert report.switches == ()
    assert "p'ai214" in report.phonemes  # 百 read as bai3, not as English


async def test_plain_cmn_voice_is_rejected_for_reading_hanzi_as_english(synth):
    with pytest.raises(VoiceError, match=r"partly as en"):
        await synth.check_voice("sit/cmn", ARREARS)


async def test_short_or_unknown_voice_ids_are_rejected(synth):
    with pytest.raises(VoiceError, match="not available"):
        await synth.check_voice("no-such-voice", ARREARS)
    await synth.check_voice(PINYIN, ARREARS)
    with pytest.raises(VoiceError, match="full id 'sit/cmn-latn-pinyin'"):
        await synth.check_voice("cmn-latn-pinyin", ARREARS)


async def test_cantonese_voice_reads_hanzi_natively(synth):
    report = await synth.check_voice("sit/yue", ARREARS)
    assert report.switches == ()


def test_language_switch_markers_are_parsed():
    assert language_switches("(en)jIw'0n_| beITr'i:(cmn)_|") == ("en", "cmn")
    assert language_switches("j'i55_| p'ai214_|") == ()


async def test_rendered_prompt_has_plausible_duration_and_loudness(synth):
    clip = await synth.synthesize(ARREARS, PINYIN, 150)
    assert clip.rate == 22050 and clip.channels == 1
    assert 3.5 < clip.duration < 7.0  # 17 syllables and two pauses at 150 wpm
    assert clip.level_dbfs() > -30
    assert clip.peak_dbfs() <= 0
    # Speech, not a buzz: a good share of 20 ms frames are near-silent gaps.
    frames = clip.samples[: clip.frames // 441 * 441, 0].reshape(-1, 441).astype(np.float64)
    rms = np.sqrt((frames**2).mean(axis=1))
    assert 0.05 < (rms < 100).mean() < 0.6


async def test_twenty_utterances_in_a_row_all_complete(synth):
    durations = []
    for i in range(20):
        text = f"第{'一二三四五六七八九十'[i % 10]}位客户，请交费。"
        clip = await synth.synthesize(text, PINYIN, 150)
        assert clip.duration > 1.0, f"utterance {i} was cut short"
        assert clip.level_dbfs() > -30, f"utterance {i} is silent"
        durations.append(clip.duration)
    # The same sentence shape renders to the same length every time: nothing truncated.
    assert max(durations) - min(durations) < 0.15


async def test_rate_steps_change_duration_measurably(synth):
    rates = TtsSection().rates
    durations = [(await synth.synthesize(ARREARS, PINYIN, r)).duration for r in rates]
    # Back and forth, so a rate that "sticks" from the previous request would show.
    again = [(await synth.synthesize(ARREARS, PINYIN, r)).duration for r in reversed(rates)]
    assert again[::-1] == pytest.approx(durations, abs=0.1)
    for slower, faster in zip(durations, durations[1:], strict=False):
        assert slower > faster * 1.1


async def test_watchdog_replaces_a_hung_engine():
    need_espeak()
    synth = EspeakSynthesizer(timeout=2.0)
    try:
        first = await synth.synthesize("您好", PINYIN, 150)
        pid = synth.worker_pid
        os.kill(pid, signal.SIGSTOP)  # the engine hangs
        clip = await synth.synthesize("您好", PINYIN, 150)
        assert synth.restarts == 1
        assert synth.worker_pid != pid
        assert clip.frames == first.frames
    finally:
        await synth.close()


async def test_watchdog_replaces_a_dead_engine():
    need_espeak()
    synth = EspeakSynthesizer(timeout=5.0)
    try:
        await synth.synthesize("您好", PINYIN, 150)
        os.kill(synth.worker_pid, signal.SIGKILL)
        clip = await synth.synthesize("再见", PINYIN, 150)
        assert clip.duration > 0.3
        assert synth.restarts == 1
    finally:
        await synth.close()


def test_factory_names_the_backend():
    need_espeak()
    assert create_synthesizer(TtsSection()).name == "espeak"
    with pytest.raises(Exception, match="unknown"):
        create_synthesizer(TtsSection(backend="piper"))
