"""Grammars from pack sentences: segmentation, vocabulary checks, UTF-8 JSON."""

from __future__ import annotations

import json

import pytest

from speech.asr import GrammarError, Vocabulary, build_grammar, read_fst_symbols, sentence_tokens
from tests.speech.conftest import VOSK_KO, need_vosk_ko

# A Mandarin vocabulary laid out like vosk-model-small-cn's graph/words.txt.
WORDS = """<eps> 0
!SIL 1
[unk] 2
我 3
要 4
交 5
电费 6
交电 7
确认 8
一百 9
一 10
百 11
二十 12
三 13
块 14
五 15
毛 16
不 17
对 18
取消 19
#0 20
"""


@pytest.fixture
def mandarin(tmp_path) -> Vocabulary:
    """A small Mandarin vocabulary read from a real words.txt file."""
    graph = tmp_path / "model" / "graph"
    graph.mkdir(parents=True)
    (graph / "words.txt").write_text(WORDS, encoding="utf-8")
    return Vocabulary.from_model(tmp_path / "model")


def test_words_txt_is_read_without_special_symbols(mandarin):
    assert "电费" in mandarin and "[unk]" in mandarin
    assert "<eps>" not in mandarin and "#0" not in mandarin
    assert mandarin.has_unk
    assert mandarin.max_len == 2


def test_sentences_are_segmented_into_model_words(mandarin):
    g = build_grammar([("我要交电费", "intents/Pay.yaml:3"), ("一百二十三块五毛", "intents/Amount.yaml:7")], mandarin)
    assert g.phrases == ("我 要 交 电费", "一百 二十 三 块 五 毛")
    assert g.sources == ("intents/Pay.yaml:3", "intents/Amount.yaml:7")


def test_segmentation_finds_a_split_greedy_matching_misses(mandarin):
    # Forward maximum matching takes 交电 and is then stuck on 费; the search finds 交 + 电费.
    assert mandarin.segment("交电费") == ["交", "电费"]


def test_punctuation_and_repeats_are_dropped(mandarin):
    g = build_grammar([("确认！", "a:1"), ("确认。", "a:2"), ("不对，取消", "a:3")], mandarin)
    assert g.phrases == ("确认", "不 对 取消")


def test_a_word_the_model_lacks_is_an_error_naming_file_line_and_sentence(mandarin):
    with pytest.raises(GrammarError) as err:
        build_grammar(
            [("我要交电费", "locales/zh-CN/intents/Pay.yaml:3"), ("我要缴费", "locales/zh-CN/intents/Pay.yaml:4")],
            mandarin,
            "vosk-model-small-cn-0.22",
        )
    msg = str(err.value)
    assert "locales/zh-CN/intents/Pay.yaml:4" in msg
    assert "我要缴费" in msg
    assert "'缴'" in msg and "'费'" in msg
    assert "vosk-model-small-cn-0.22" in msg
    assert "Pay.yaml:3" not in msg  # the good sentence is not reported
    assert err.value.prompt_id == "error_generic"


def test_every_bad_sentence_is_reported_at_once(mandarin):
    with pytest.raises(GrammarError) as err:
        build_grammar([("缴费", "a.yaml:1"), ("确认", "a.yaml:2"), ("wifi", "a.yaml:3")], mandarin)
    assert [p.split(":")[0] + ":" + p.split(":")[1] for p in err.value.problems] == ["a.yaml:1", "a.yaml:3"]
    assert "'wifi'" in err.value.problems[1]  # a non-Chinese word is reported whole


def test_grammar_json_is_real_utf8_with_unk(mandarin):
    g = build_grammar([("确认", "a:1"), ("取消", "a:2")], mandarin)
    text = g.to_json()
    assert "\\u" not in text
    assert json.loads(text) == ["确认", "取消", "[unk]"]
    assert "确认" in text


def test_open_vocabulary_grammar_feeds_the_whisper_prompt():
    g = build_grammar([("我要交电费", "Pay.yaml:1"), ("确认", "Confirm.yaml:2"), ("取消", "Cancel.yaml:3"),
                       ("确认", "Confirm.yaml:4")])
    assert g.phrases == ("我要交电费", "确认", "取消")
    # one phrase of each intent first (the shortest), in pack order
    assert g.domain_prompt() == "我要交电费\u3001确认\u3001取消"
    assert g.domain_prompt(max_chars=8) == "我要交电费\u3001确认"
    assert not g.include_unk


def test_whisper_prompt_is_not_crowded_out_by_one_intents_samples():
    """Long sample sentences of one intent must not fill the prompt (Whisper then repeats them)."""
    amounts = [(f"我要交{n}", f"Amount.yaml:{i}") for i, n in enumerate(
        ["一百二十三块五", "八块五毛", "三块零五分", "两千两百二十五元", "一百二十三元四角五分", "九十六块钱"])]
    commands = [("确认", "Confirm.yaml:3"), ("对", "Confirm.yaml:4"), ("取消", "Cancel.yaml:3"), ("现金", "Pay.yaml:5")]
    prompt = build_grammar(amounts + commands).domain_prompt(max_chars=40)
    for word in ("对", "取消", "现金"):
        assert word in prompt.split("\u3001"), prompt
    assert sum(p.startswith("我要交") for p in prompt.split("\u3001")) <= 2, prompt


def test_tokens_split_at_script_edges():
    assert sentence_tokens("我要交WiFi费，好吗？") == ["我要交", "wifi", "费", "好吗"]


def test_korean_vocabulary_from_the_embedded_fst_symbol_table(vosk_ko):
    need_vosk_ko()
    vocab = Vocabulary.from_model(VOSK_KO)
    assert len(vocab) > 500_000
    assert not vocab.has_unk  # this model has no [unk]: grammars must not send it
    # The reader agrees with Vosk's own lookup, for words in and out of the model.
    for word in ["확인", "취소", "오만", "삼천", "원", "다시", "이백", "천원만원", "電費"]:
        assert (word in vocab) == vosk_ko.has_word(word), word
    assert Vocabulary.from_model(VOSK_KO) is vocab  # parsed once, then cached


def test_fst_symbols_start_with_epsilon():
    need_vosk_ko()
    words = read_fst_symbols(VOSK_KO / "graph" / "Gr.fst")
    assert words[0] == "<eps>"
    assert len(words) == len(set(words))


def test_korean_grammar_checks_words_against_the_model(vosk_ko):
    g = vosk_ko.build_grammar([("네, 확인!", "ko.yaml:1"), ("오만 원", "ko.yaml:2")])
    assert g.phrases == ("네 확인", "오만 원")
    assert not g.include_unk
    with pytest.raises(GrammarError, match=r"ko\.yaml:3.*'qzx'"):
        vosk_ko.build_grammar([("확인 qzx", "ko.yaml:3")])
