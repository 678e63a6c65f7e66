"""``locales check``: one broken pack per rule, each asserting the file and line reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.config import ROOT
from assistant.locale import Problem, load_packs
from assistant.locale_check import check
from assistant.nlu import WordList, grammar_sentences
from tests.conftest import SHIPPED_PACKS, copy_shipped_locales

LOCALES = ROOT / "locales"
CJK_FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")


def _latin_font() -> Path:
    import matplotlib

    for candidate in (
        Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
        Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans.ttf",
    ):
        if candidate.is_file():
            return candidate
    pytest.skip("no Latin-only font file found")


@pytest.fixture
def locales(tmp_path: Path) -> Path:
    return copy_shipped_locales(tmp_path / "locales")


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def line_with(path: Path, needle: str) -> int:
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(f"{needle!r} not in {path}")


def only(problems: list[Problem], rule: str) -> Problem:
    found = [p for p in problems if p.rule == rule]
    assert len(found) == 1, "\n".join(map(str, problems))
    return found[0]


def test_shipped_packs_pass() -> None:
    for pack in SHIPPED_PACKS:
        assert check(LOCALES, pack, font=CJK_FONT) == [], pack


def test_unknown_key(locales: Path) -> None:
    f = locales / "zh-CN" / "pack.yaml"
    edit(f, "rate: 150\n", "rate: 150\ncolour: red\n")
    p = only(check(locales, "zh-CN"), "schema")
    assert (p.file, p.line) == (f, line_with(f, "colour"))
    assert "unknown key 'colour'" in p.message and "extends" in p.fix


def test_wrong_type(locales: Path) -> None:
    f = locales / "yue" / "pack.yaml"
    edit(f, "rate: 150", "rate: fast")
    p = only(check(locales, "yue"), "schema")
    assert (p.file, p.line) == (f, line_with(f, "rate:"))


def test_yaml_syntax_error(locales: Path) -> None:
    f = locales / "zh-CN" / "intents" / "Deny.yaml"
    edit(f, "    data:", "    data: [")
    p = only(check(locales, "zh-CN"), "syntax")
    assert p.file == f and p.line >= line_with(f, "data: [")


def test_a_tab_in_responses_is_the_one_problem_reported(locales: Path) -> None:
    # it used to come with 255 'prompt missing' lines, the last ones on the screen
    f = locales / "zh-CN" / "responses.yaml"
    edit(f, "  goodbye:", "\tgoodbye:")
    problems = check(locales)
    assert [(p.file, p.line, p.rule) for p in problems] == [(f, line_with(f, "\tgoodbye:"), "syntax")]
    assert "tab" in problems[0].fix


def test_a_broken_intent_file_is_the_one_problem_reported(locales: Path) -> None:
    # not also every Confirm test of zh-CN and of the Sichuanese pack built on it
    f = locales / "zh-CN" / "intents" / "Confirm.yaml"
    edit(f, "    - sentences:", "    - sentences: [")
    assert [(p.file, p.rule) for p in check(locales)] == [(f, "syntax")]


def test_checking_a_dialect_reports_a_broken_base_pack(locales: Path) -> None:
    # 'locales check zh-CN-sichuan' said all was fine while zh-CN, which it extends, did not parse
    f = locales / "zh-CN" / "responses.yaml"
    edit(f, "  goodbye:", "\tgoodbye:")
    assert [(p.file, p.rule) for p in check(locales, "zh-CN-sichuan")] == [(f, "syntax")]
    assert check(locales, "yue") == []  # yue does not build on zh-CN


def test_a_dialect_whose_base_cannot_load_points_at_the_base(locales: Path) -> None:
    f = locales / "zh-CN-sichuan" / "pack.yaml"
    edit(locales / "zh-CN" / "pack.yaml", "rate: 150", "rate: 150\n  oops: 1")
    p = only(check(locales, "zh-CN-sichuan"), "extends")
    assert (p.file, p.line) == (f, line_with(f, "extends:"))
    assert "'zh-CN' could not be loaded" in p.message and "locales check zh-CN" in p.fix


def test_a_full_width_space_as_indentation_is_named_on_its_own_line(locales: Path) -> None:
    # the parser blamed the next line, with a message about mapping values
    f = locales / "zh-CN" / "responses.yaml"
    edit(f, "  goodbye:", "\u3000goodbye:")
    p = only(check(locales), "syntax")
    assert (p.file, p.line) == (f, line_with(f, "\u3000goodbye:"))
    assert "full-width space" in p.message and p.fix == "indent with ordinary spaces"


def test_full_width_brackets_in_a_template_are_named_at_the_template(locales: Path) -> None:
    # reported only as failing tests: the template itself looked fine
    f = locales / "zh-CN" / "intents" / "Confirm.yaml"
    edit(f, "(确认|确定)(交费", "（确认|确定）(交费")
    p = only(check(locales), "template")
    assert (p.file, p.line) == (f, line_with(f, "（确认|确定）"))
    assert "'(确认|确定)(交费|缴费|付款|支付)'" in p.fix


def test_a_placeholder_in_full_width_braces_is_named(locales: Path) -> None:
    f = locales / "zh-CN" / "responses.yaml"
    edit(f, "{seconds}秒后", "｛seconds｝秒后")
    p = next(p for p in check(locales, "zh-CN") if p.rule == "placeholders")
    assert (p.file, p.line) == (f, line_with(f, "｛seconds｝"))
    assert "full-width braces" in p.message and "{seconds}" in p.fix


def test_duplicate_key(locales: Path) -> None:
    f = locales / "yue" / "responses.yaml"
    edit(f, "  goodbye: 多谢晒，慢慢行。\n", "  goodbye: 多谢晒，慢慢行。\n  goodbye: 拜拜。\n")
    p = only(check(locales, "yue"), "schema")
    assert (p.file, p.line) == (f, line_with(f, "拜拜"))


def test_id_must_match_folder(locales: Path) -> None:
    (locales / "zh-CN-sichuan").rename(locales / "zh-CN-chengdu")
    problems = check(locales, "zh-CN-chengdu")
    f = locales / "zh-CN-chengdu" / "pack.yaml"
    ids = [p for p in problems if p.file == f and p.rule == "identity"]
    assert [(p.line, "'zh-CN-chengdu'" in p.fix or "zh-CN-chengdu" in p.fix) for p in ids] == [(line_with(f, "id:"), True)]
    # every other file says which folder it belongs to, too
    common = locales / "zh-CN-chengdu" / "_common.yaml"
    assert any(p.file == common and p.line == line_with(common, "language:") for p in problems)


def test_extends_unknown_pack(locales: Path) -> None:
    f = locales / "zh-CN-sichuan" / "pack.yaml"
    edit(f, "extends: zh-CN", "extends: zh-TW")
    p = only(check(locales, "zh-CN-sichuan"), "extends")
    assert (p.file, p.line) == (f, line_with(f, "extends:"))


def test_prompt_missing(locales: Path) -> None:
    f = locales / "yue" / "responses.yaml"
    edit(f, "  goodbye: 多谢晒，慢慢行。\n", "")
    p = only(check(locales, "yue"), "prompt-missing")
    assert (p.file, p.line) == (f, 0)
    assert "'goodbye'" in p.message and "Prompt.GOODBYE" in p.fix


def test_prompt_unused(locales: Path) -> None:
    f = locales / "zh-CN-sichuan" / "responses.yaml"
    edit(f, "prompts:\n", "prompts:\n  goodby: 再见了哈。\n")
    p = only(check(locales, "zh-CN-sichuan"), "prompt-unused")
    assert (p.file, p.line) == (f, line_with(f, "goodby:"))


def test_placeholders_must_match_the_base_pack(locales: Path) -> None:
    f = locales / "yue" / "responses.yaml"
    edit(f, "依家欠费{amount}", "依家欠费{amont}")
    p = only(check(locales, "yue"), "placeholders")
    assert (p.file, p.line) == (f, line_with(f, "arrears:"))
    assert "missing {amount}" in p.message and "unknown {amont}" in p.message and "pack 'zh-CN'" in p.message


def test_reference_pack_placeholders_match_the_dialog(locales: Path) -> None:
    f = locales / "zh-CN" / "responses.yaml"
    edit(f, "您的户号是{account}，对吗？", "您的户号是{户号}，对吗？")
    problems = check(locales, "zh-CN")
    p = [x for x in problems if x.rule == "placeholders" and x.file == f][0]
    assert p.line == line_with(f, "account_readback:") and "assistant/prompts.py" in p.message


def test_unknown_intent(locales: Path) -> None:
    f = locales / "zh-CN" / "intents" / "Dance.yaml"
    f.write_text("language: zh-CN\nintents:\n  Dance:\n    data:\n      - sentences: [跳舞]\n", encoding="utf-8")
    p = only(check(locales, "zh-CN"), "intent-unknown")
    assert (p.file, p.line) == (f, 1)


def test_intent_without_tests(locales: Path) -> None:
    (locales / "yue" / "tests" / "Skip.yaml").unlink()
    problems = check(locales, "yue")
    p = only(problems, "test-missing")
    assert (p.file, p.line) == (locales / "yue" / "tests" / "Skip.yaml", 0)
    untested = [x for x in problems if x.rule == "template-untested"]
    assert [x.file.name for x in untested] == ["Skip.yaml"]


def test_template_without_a_test(locales: Path) -> None:
    f = locales / "zh-CN" / "intents" / "Skip.yaml"
    edit(f, '      - "(跳过|下一步|以后再说|先不用)"\n', '      - "(跳过|下一步|以后再说|先不用)"\n      - 这步不做了\n')
    p = only(check(locales, "zh-CN"), "template-untested")
    assert (p.file, p.line) == (f, line_with(f, "这步不做了"))


def test_failing_test_sentence(locales: Path) -> None:
    f = locales / "zh-CN-sichuan" / "tests" / "Deny.yaml"
    edit(f, "[不对头, 莫得]", "[不对头, 莫得, 要得]")
    p = only(check(locales, "zh-CN-sichuan"), "test-failed")
    assert (p.file, p.line) == (f, line_with(f, "sentences:"))
    assert "'要得' was understood as Confirm" in p.message


def test_known_failure_that_now_works(locales: Path) -> None:
    intents = locales / "zh-CN-sichuan" / "intents" / "Confirm.yaml"
    edit(intents, "没得问题|可以得", "没得问题|可以得|要得要得")
    f = locales / "zh-CN-sichuan" / "known_failures.yaml"
    p = only(check(locales, "zh-CN-sichuan"), "known-failure")
    assert (p.file, p.line) == (f, line_with(f, "sentence: 要得要得"))
    assert "remove it" in p.fix


def test_traditional_characters_in_a_template(locales: Path) -> None:
    f = locales / "yue" / "intents" / "Help.yaml"
    edit(f, "(揾|叫)", "(搵|叫)")
    p = only(check(locales, "yue"), "traditional")
    assert (p.file, p.line) == (f, line_with(f, "搵"))
    assert "揾" in p.fix


def test_broken_template(locales: Path) -> None:
    f = locales / "zh-CN" / "intents" / "Settings.yaml"
    edit(f, "[打开|进入]设置", "[打开|进入设置")
    problems = check(locales, "zh-CN")
    p = [x for x in problems if x.rule == "template"][0]
    assert (p.file, p.line) == (f, line_with(f, "设置"))


def test_latin_only_font_fails_and_lists_missing_characters(locales: Path) -> None:
    font = _latin_font()
    problems = [p for p in check(locales, "zh-CN-sichuan", font=font) if p.rule == "font"]
    f = locales / "zh-CN-sichuan" / "responses.yaml"
    by_line = {p.line: p for p in problems if p.file == f}
    goodbye = by_line[line_with(f, "goodbye:")]
    assert "谢" in goodbye.message and "慢" in goodbye.message and font.name in goodbye.message
    assert len(problems) == 11  # 8 prompts + 2 labels + the pack name


def test_number_words_must_read_back(locales: Path) -> None:
    f = locales / "yue" / "pack.yaml"
    edit(f, "jiao: [毫, 角, 毛]", "jiao: [蚊, 毫, 角, 毛]")
    p = only(check(locales, "yue"), "numbers")
    assert (p.file, p.line) == (f, line_with(f, "numbers:"))


def test_pack_list_must_name_real_packs(locales: Path) -> None:
    f = locales / "zh-CN" / "_common.yaml"
    edit(f, "out: zh-CN-sichuan", "out: zh-CN-sichuang")
    p = only(check(locales, "zh-CN"), "list-values")
    assert (p.file, p.line) == (f, line_with(f, "zh-CN-sichuang"))


def test_grammar_words_outside_the_vocabulary() -> None:
    pack = load_packs(LOCALES)["zh-CN-sichuan"]
    words = set()
    for sentence, _ in grammar_sentences(pack):
        words.update(sentence)  # every single character is a word...
    words.discard("晓")  # ...except one the model does not know
    problems = check(LOCALES, "zh-CN-sichuan", vocabulary=WordList(words))
    f = LOCALES / "zh-CN-sichuan" / "intents" / "Help.yaml"
    assert {(p.file, p.line, p.rule) for p in problems} == {(f, line_with(f, "不晓得"), "vocabulary")}
    assert "'晓'" in problems[0].message


def test_voice_must_exist(locales: Path) -> None:
    import shutil as sh

    if sh.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    f = locales / "yue" / "pack.yaml"
    edit(f, "voice: sit/yue", "voice: sit/cantonese")
    p = only(check(locales, "yue"), "voice")
    assert (p.file, p.line) == (f, line_with(f, "voice:"))
