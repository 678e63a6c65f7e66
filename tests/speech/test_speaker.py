"""The speaker: chunked playback that stops mid-sentence, repeat, rate and volume steps."""

from __future__ import annotations

import asyncio
import time

import pytest

from speech.audio import RecordingOutput
from speech.gate import MicGate
from speech.speaker import Speaker, SpeechOutcome
from speech.tts import TtsSection

LONG = "您好，您的电费是一百二十三元五角，请按确认键交费，或者说交。"
SHORT = "请交费。"


@pytest.fixture
def output():
    return RecordingOutput(rate=16000)


async def test_prompt_plays_completely(synth, output):
    speaker = Speaker(synth, output)
    clip = await speaker.render(SHORT)
    outcome = await speaker.say(SHORT)
    assert outcome is SpeechOutcome.COMPLETED
    assert output.recorded.frames == clip.frames
    assert output.recorded.rate == 16000  # resampled from the engine's 22.05 kHz


async def test_stop_mid_sentence_takes_effect_within_one_chunk(synth, output):
    speaker = Speaker(synth, output, block_ms=50)
    full = await speaker.render(LONG)
    task = asyncio.create_task(speaker.say(LONG))
    await asyncio.sleep(1.0)
    stopped_at = time.monotonic()
    speaker.stop()
    outcome = await task
    ended = time.monotonic()
    assert outcome is SpeechOutcome.INTERRUPTED
    played = output.recorded.duration
    assert 0.8 < played < 1.3  # about what had been played when the key was pressed
    assert played < full.duration / 2
    assert ended - stopped_at < 0.1  # one 50 ms chunk, plus scheduling
    assert output.aborts == 1


async def test_repeat_says_the_last_prompt_again(synth, output):
    speaker = Speaker(synth, output)
    assert await speaker.repeat() is None
    await speaker.say(SHORT)
    once = output.recorded.frames
    assert await speaker.repeat() is SpeechOutcome.COMPLETED
    assert output.recorded.frames == 2 * once


async def test_slower_steps_make_prompts_longer_and_reset_restores(synth):
    speaker = Speaker(synth, RecordingOutput(rate=16000, realtime=False))
    normal = (await speaker.render(LONG)).duration
    assert speaker.step_rate(-1)
    slower = (await speaker.render(LONG)).duration
    assert speaker.step_rate(-1)
    slowest = (await speaker.render(LONG)).duration
    assert not speaker.step_rate(-1)  # already the slowest
    assert normal * 1.1 < slower and slower * 1.1 < slowest
    speaker.reset()
    assert speaker.rate == TtsSection().rates[TtsSection().default_rate]


async def test_louder_steps_raise_the_level_and_a_new_customer_gets_the_default(synth):
    output = RecordingOutput(rate=16000, realtime=False)
    speaker = Speaker(synth, output)
    await speaker.say(SHORT)
    default_db = output.recorded.level_dbfs()
    output.clear()
    assert speaker.step_volume(+1) and speaker.step_volume(+1)
    await speaker.say(SHORT)
    louder_db = output.recorded.level_dbfs()
    assert louder_db - default_db == pytest.approx(6.0, abs=0.5)
    assert not speaker.step_volume(+1)  # the loudest step
    speaker.reset()
    output.clear()
    await speaker.say(SHORT)
    assert output.recorded.level_dbfs() == pytest.approx(default_db, abs=0.1)


async def test_microphone_gate_is_closed_while_speaking_and_for_the_tail(synth, output):
    gate = MicGate(tail=0.3)
    speaker = Speaker(synth, output, gate=gate)
    await speaker.render(SHORT)  # so playback starts at once
    start = time.monotonic()
    await speaker.say(SHORT)
    end = time.monotonic()
    assert gate.generation == 1
    assert not gate.is_open(start + 0.1)
    assert not gate.is_open(end + 0.2)
    assert gate.is_open(end + 0.35)
    assert gate.is_open(start - 0.5)


async def test_a_new_prompt_stops_the_one_still_playing(synth, output):
    speaker = Speaker(synth, output)
    first = asyncio.create_task(speaker.say(LONG))
    await asyncio.sleep(0.5)
    second = await speaker.say(SHORT)
    assert await first is SpeechOutcome.INTERRUPTED
    assert second is SpeechOutcome.COMPLETED


async def test_wav_voice_writes_an_index_of_the_words_in_each_file(synth, tmp_path):
    """The headless demo's speech folder: numbered WAVs and an index saying what each holds."""
    import wave

    from assistant.adapters import WavVoice

    voice = WavVoice(Speaker(synth, RecordingOutput(rate=16000)), tmp_path / "speech")
    assert await voice.say(SHORT, "sit/cmn-latn-pinyin")
    assert await voice.say("请拿好零钱。", "sit/cmn-latn-pinyin")
    rows = [line.split("\t") for line in (tmp_path / "speech" / "index.tsv").read_text(encoding="utf-8").splitlines()]
    assert rows[0] == ["file", "seconds", "voice", "text"]
    assert [(r[0], r[3]) for r in rows[1:]] == [("001.wav", SHORT), ("002.wav", "请拿好零钱。")]
    with wave.open(str(tmp_path / "speech" / "001.wav")) as w:
        assert float(rows[1][1]) == pytest.approx(w.getnframes() / w.getframerate(), abs=0.01)
