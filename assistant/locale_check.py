"""The maintainers' check of locale packs: ``python main.py locales check [PACK]``.

Every rule reports :class:`~assistant.locale.Problem` values that name the file,
the line and what to do. Rules (the ``rule`` field of each problem):

``syntax`` ``schema`` ``identity`` ``extends``
    found while loading (see :func:`assistant.locale.load_packs`).
``intent-unknown`` ``intent-missing`` ``template`` ``traditional``
    every intent the dialog listens for has sentences; no unknown intents; every
    template parses, uses known lists and rules, and is written in Simplified
    characters (transcripts are folded to Simplified before matching).
``test-missing`` ``template-untested`` ``test-failed`` ``known-failure``
    every intent has tests, every template is matched by at least one test
    sentence, the tests pass (sentence -> intent and slots), known failures are real.
``prompt-missing`` ``prompt-unused`` ``prompt-section`` ``placeholders``
    every prompt and label id the dialog uses exists (after inheritance), none is
    unused, and each has the same ``{placeholders}`` as the base pack (the reference
    pack is compared with the slots documented in ``assistant/prompts.py``).
``font``
    every character of every prompt and label can be drawn by the UI font.
``vocabulary``
    with a speech model's vocabulary, every grammar word is known to it.
``voice``
    the pack's voice is one espeak-ng has (when espeak-ng is installed).
``numbers`` ``list-values``
    the pack's number words read back what they say; ``pack`` list values name packs.
``own-words``
    a pack that extends another says in its own words what it is: its ``name``, its
    ``pack_name`` (its language button) and its ``language_switched`` prompt differ
    from the base pack's (and from the pack id), so a new dialect never announces that
    it speaks the base language. ``locales new`` leaves them for the maintainer to
    write; a running kiosk does not refuse a draft pack for them (drafts are never
    offered to customers).
"""

from __future__ import annotations

import ast
import enum
import inspect
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant import errors as errors_module
from assistant import prompts as prompts_module
from assistant.locale import (
    INTENTS_DIR,
    KNOWN_FAILURES_FILE,
    PACK_FILE,
    RESPONSES_FILE,
    TESTS_DIR,
    LocalePack,
    PackTest,
    Problem,
    line_of,
    load_packs,
    placeholders,
)
from assistant.prompts import Intent, Label, Prompt

# Template and placeholder syntax as a Chinese input method types it, and what was meant.
FULLWIDTH_SYNTAX = {"（": "(", "）": ")", "［": "[", "］": "]", "｛": "{", "｝": "}", "｜": "|", "【": "[", "】": "]"}
FULLWIDTH_PLACEHOLDER = re.compile(r"｛\s*([A-Za-z_]\w*)\s*[｝}]|\{\s*([A-Za-z_]\w*)\s*｝")

# On screen, slot values are shown as ¥123.45, digits and masks.
DISPLAY_CHARACTERS = "¥0123456789.*-"

_MONEY_PROBES = (0, 5, 20, 850, 1250, 12345, 100005, 222500, 10_000_000, 99_999_999)


# ===================================================================== what the dialog uses


@dataclass(frozen=True)
class UsedIds:
    """Every id the dialog may ask a pack for."""

    prompts: frozenset[str]
    """Ids that belong under ``prompts:``."""
    labels: frozenset[str]
    """Ids that belong under ``labels:``."""
    either: frozenset[str]
    """Ids from other registered enums (either section)."""
    intents: frozenset[str]
    documented_slots: Mapping[str, frozenset[str]]
    """id -> the {placeholders} named in its docstring in ``assistant/prompts.py``."""

    @property
    def all(self) -> frozenset[str]:
        return self.prompts | self.labels | self.either


def used_ids() -> UsedIds:
    """Collect the ids from ``assistant.prompts`` (enums) and ``assistant.errors`` (prompt_id)."""
    prompts = {m.value for m in Prompt}
    labels = {m.value for m in Label}
    either: set[str] = set()
    for _name, obj in inspect.getmembers(prompts_module, inspect.isclass):
        if issubclass(obj, enum.Enum) and obj.__module__ == prompts_module.__name__ and obj not in (Prompt, Label, Intent):
            either |= {str(m.value) for m in obj}
    for _name, obj in inspect.getmembers(errors_module, inspect.isclass):
        if issubclass(obj, errors_module.KioskError) and obj.__module__ == errors_module.__name__:
            pid = getattr(obj, "prompt_id", None)
            if pid and pid not in labels:
                prompts.add(str(pid))
    return UsedIds(
        prompts=frozenset(prompts),
        labels=frozenset(labels),
        either=frozenset(either - prompts - labels),
        intents=frozenset(m.value for m in Intent),
        documented_slots=_documented_slots(),
    )


def _documented_slots() -> dict[str, frozenset[str]]:
    """Parse ``assistant/prompts.py``: each member's docstring names its slots in braces."""
    source = Path(prompts_module.__file__).read_text(encoding="utf-8")
    tree = ast.parse(source)
    out: dict[str, frozenset[str]] = {}
    for cls in tree.body:
        if not isinstance(cls, ast.ClassDef) or cls.name not in ("Prompt", "Label"):
            continue
        body = cls.body
        for i, node in enumerate(body):
            if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)):
                continue
            doc = ""
            if i + 1 < len(body) and isinstance(body[i + 1], ast.Expr):
                value = body[i + 1].value  # type: ignore[attr-defined]
                if isinstance(value, ast.Constant) and isinstance(value.value, str):
                    doc = value.value
            out[str(node.value.value)] = frozenset(re.findall(r"\{(\w+)\}", doc))
    return out


# ===================================================================== test evaluation


def evaluate_test(pack: LocalePack, test: PackTest) -> str | None:
    """Run one test sentence; None when it passes, else what went wrong."""
    from assistant.nlu import understand

    expected = list(test.listen) if test.listen else None
    match = understand(pack, test.sentence, expected)
    if test.intent is None:
        if match is None:
            return None
        return f"'{test.sentence}' should not be understood, but it matched {match.intent} (template {match.template!r} at {match.source})"
    if match is None:
        return f"'{test.sentence}' was not understood (expected {test.intent})"
    if match.intent != test.intent:
        return f"'{test.sentence}' was understood as {match.intent} (template {match.template!r} at {match.source}), expected {test.intent}"
    for key, want in test.slots.items():
        got = match.slots.get(key, "<missing>")
        if _slot_value(got) != _slot_value(want):
            return f"'{test.sentence}': slot {key} is {got!r}, expected {want!r}"
    if (test.problem or "") != (match.problem or ""):
        return f"'{test.sentence}': problem is {match.problem or 'none'!r}, expected {test.problem or 'none'!r}"
    return None


def _slot_value(v: Any) -> Any:
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, int):
        return str(v)
    return str(v)


# ===================================================================== the check


def check(
    locales_dir: Path,
    pack_id: str | None = None,
    *,
    font: Path | None = None,
    vocabulary: Any = None,
    default: str = "zh-CN",
    default_at: tuple[Path, int] | None = None,
) -> list[Problem]:
    """Load the packs under ``locales_dir`` and check them (only ``pack_id`` when given).

    Args:
        locales_dir: the folder with the packs.
        pack_id: check this pack only (its base packs are loaded, not reported on).
        font: the UI font file; None skips the glyph rule.
        vocabulary: a speech model's vocabulary (``__contains__(word)``); None skips
            the vocabulary rule.
        default: the reference pack, whose placeholders root packs must match.
        default_at: where ``default`` is set (config file and line), named when
            there is no such pack.
    """
    problems: list[Problem] = []
    packs = load_packs(locales_dir, problems)
    if pack_id is None and default not in packs and locales_dir.is_dir() and not (locales_dir / default).is_dir():
        # a kiosk started with it would refuse every pack; 'zh-cn' for 'zh-CN' is the usual slip
        file, line = default_at or (locales_dir / default, 0)
        problems.append(Problem(
            file, line, f"the kiosk's default pack '{default}' ([kiosk] locale) is not a pack in {locales_dir}",
            f"set [kiosk] locale to one of: {', '.join(sorted(packs))} (letter case matters)", "schema"))
    if pack_id is not None:
        if pack_id not in packs and not any(p.file.parent.name == pack_id or pack_id in p.file.parts for p in problems):
            problems.append(Problem(locales_dir / pack_id, 0, f"there is no pack '{pack_id}'", f"use one of: {', '.join(sorted(packs))}", "schema"))
        # a base pack's loading problems are this pack's too: it is built from those files
        keep = {f.id for f in packs[pack_id].files_chain} if pack_id in packs else {pack_id}
        problems = [p for p in problems if pack_folder(p, locales_dir) in keep or pack_id in p.file.parts]
    unreadable = _unreadable(packs, problems, locales_dir)
    problems += check_packs(packs, locales_dir, font=font, vocabulary=vocabulary, default=default, only=pack_id, skip=unreadable)
    return problems


def pack_folder(problem: Problem, locales_dir: Path) -> str | None:
    """The pack folder a problem's file is in (None: outside every pack)."""
    try:
        return problem.file.resolve().relative_to(locales_dir.resolve()).parts[0]
    except (ValueError, IndexError):
        return None


def _unreadable(packs: Mapping[str, LocalePack], problems: list[Problem], locales_dir: Path) -> frozenset[str]:
    """Packs with a file that could not be read, and every pack built on one.

    Their cross-file rules are not run: a file that did not parse looks empty, so one
    tab in ``responses.yaml`` would otherwise add a 'missing' problem for each of its
    hundreds of ids and bury the one line that names the real fault.
    """
    broken = {pack_folder(p, locales_dir) for p in problems if p.rule == "syntax"}
    return frozenset(pid for pid, pack in packs.items() if any(f.id in broken for f in pack.files_chain))


def check_packs(
    packs: Mapping[str, LocalePack],
    locales_dir: Path,
    *,
    font: Path | None = None,
    vocabulary: Any = None,
    default: str = "zh-CN",
    only: str | None = None,
    skip: frozenset[str] = frozenset(),
    drafts_may_be_unfinished: bool = False,
) -> list[Problem]:
    """Cross-file rules over loaded packs (see the module docstring); packs in ``skip`` are left out.

    With ``drafts_may_be_unfinished`` (the running kiosk's own check) a draft pack whose
    self-description is not written yet is not a problem: customers never see a draft
    (unless it is the ``default`` pack, which every customer hears).
    """
    used = used_ids()
    glyphs = font_characters(font) if font else None
    problems: list[Problem] = []
    if font and glyphs is None:
        problems.append(Problem(Path(font), 0, "the UI font file cannot be read", "check [ui] font in the config", "font"))
    for pack_id, pack in sorted(packs.items()):
        if (only is not None and pack_id != only) or pack_id in skip:
            continue
        parent = packs.get(pack.extends) if pack.extends else None
        reference = parent if parent is not None else (packs.get(default) if pack_id != default else None)
        intent_problems = _check_intents(pack, used)
        problems += intent_problems
        if not any(p.rule == "template" for p in intent_problems) and not _broken_base(pack, packs, used):
            problems += _check_tests(pack, used, packs)
        problems += _check_prompts(pack, used, parent, reference)
        if parent is not None and not (drafts_may_be_unfinished and pack.draft and pack_id != default):
            problems += _check_own_words(pack, parent)
        problems += _check_numbers(pack)
        problems += _check_voice(pack)
        if glyphs is not None and font is not None:
            problems += _check_font(pack, glyphs, font)
        if vocabulary is not None:
            problems += _check_vocabulary(pack, vocabulary)
    return problems


def _broken_base(pack: LocalePack, packs: Mapping[str, LocalePack], used: UsedIds) -> bool:
    """True when a base pack's templates cannot be read (its own check reports them)."""
    base = packs.get(pack.extends) if pack.extends else None
    while base is not None:
        if any(p.rule == "template" for p in _check_intents(base, used)):
            return True
        base = packs.get(base.extends) if base.extends else None
    return False


def _own(pack: LocalePack) -> Any:
    return pack.files_chain[-1]


def _is_root(pack: LocalePack) -> bool:
    return pack.extends is None


def _check_intents(pack: LocalePack, used: UsedIds) -> list[Problem]:
    from hassil import parse_sentence, sample_expression

    from assistant.nlu import to_simplified

    out: list[Problem] = []
    own = _own(pack)
    for name, path in own.intent_files.items():
        if name not in used.intents:
            out.append(
                Problem(path, 1, f"unknown intent '{name}': the kiosk never listens for it", f"rename the file to one of the known intents or delete it (known: {', '.join(sorted(used.intents))})", "intent-unknown")
            )
    if _is_root(pack):
        for name in sorted(used.intents - set(pack.intent_data)):
            out.append(
                Problem(own.path / INTENTS_DIR / f"{name}.yaml", 0, f"the intent {name} has no sentences in pack '{pack.id}'", f"create {INTENTS_DIR}/{name}.yaml with sentences customers say for it", "intent-missing")
            )
    hi = None
    try:
        hi = pack.intents
    except Exception as exc:  # a template hassil cannot parse: find which one below
        hi_error = str(exc)
    else:
        hi_error = ""
    lists = pack.common.get("lists", {})
    for (intent, template), src in pack.template_sources.items():
        if src.pack != pack.id:
            continue
        try:
            sentence = parse_sentence(template, keep_text=True)
        except Exception as exc:
            out.append(Problem(src.file, src.line, f"the sentence template {template!r} cannot be read: {exc}", "check that every ( ) [ ] { } < > is closed and | separates choices", "template"))
            continue
        if hi is not None:
            block_lists: dict[str, Any] = {}
            block_rules: dict[str, Any] = {}
            for data in hi.intents[intent].data:
                if template in data.sentence_texts:
                    block_lists, block_rules = data.slot_lists, data.expansion_rules
            try:
                for _ in zip(range(1), sample_expression(sentence.expression, {**hi.slot_lists, **block_lists}, {**hi.expansion_rules, **block_rules}, expand_ranges=False), strict=False):
                    pass
            except Exception as exc:
                out.append(Problem(src.file, src.line, f"the sentence template {template!r} uses something undefined: {exc}", f"define it under 'lists:' or 'expansion_rules:' in _common.yaml (lists: {', '.join(sorted(lists))})", "template"))
        wide = sorted({c for c in template if c in FULLWIDTH_SYNTAX})
        if wide:
            # （确认|确定） is not a choice to hassil but literal text no transcript contains
            fixed = template.translate(str.maketrans(FULLWIDTH_SYNTAX))
            out.append(Problem(src.file, src.line, f"the template {template!r} uses full-width {' '.join(wide)}, which are read as text, not as template syntax", f"write {fixed!r} (switch the input method to English for brackets)", "template"))
            continue
        simplified = to_simplified(template)
        if simplified != template:
            diff = "".join(sorted({a for a, b in zip(template, simplified, strict=False) if a != b}))
            out.append(Problem(src.file, src.line, f"the template uses Traditional characters ({diff}); transcripts are turned into Simplified before matching, so it can never match", f"write it in Simplified characters: {simplified}", "traditional"))
    if hi_error and not any(p.rule == "template" for p in out):
        out.append(Problem(own.path / INTENTS_DIR, 0, f"the sentences cannot be loaded: {hi_error}", "check the templates and lists named in the message", "template"))
    for lname, body in lists.items():
        if str(lname) == "pack" and isinstance(body, Mapping):
            for value in body.get("values", []):
                out_value = value.get("out") if isinstance(value, Mapping) else value
                if out_value is not None and not (own.path.parent / str(out_value) / PACK_FILE).is_file():
                    owner = getattr(value, "file", own.path / "_common.yaml")
                    if Path(owner).parent == own.path:
                        out.append(Problem(Path(owner), line_of(value, "out", getattr(value, "line", 0)), f"the pack list names '{out_value}', which is not a pack", "use the folder name of an installed pack", "list-values"))
    return out


def _check_tests(pack: LocalePack, used: UsedIds, packs: Mapping[str, LocalePack]) -> list[Problem]:
    from hassil import recognize_all

    from assistant.nlu import normalise_transcript

    out: list[Problem] = []
    own = _own(pack)
    tested_intents = {t.intent for t in pack.tests if t.intent}
    if _is_root(pack):
        for name in sorted(used.intents - tested_intents):
            out.append(
                Problem(own.path / TESTS_DIR / f"{name}.yaml", 0, f"the intent {name} has no tests in pack '{pack.id}'", f"create {TESTS_DIR}/{name}.yaml with sentences and the expected intent (see locales/README.md)", "test-missing")
            )
    for test in pack.tests:
        if test.pack != pack.id:
            continue
        if test.intent is not None and test.intent not in used.intents:
            out.append(Problem(test.file, test.line, f"the test expects the unknown intent '{test.intent}'", f"use one of: {', '.join(sorted(used.intents))}", "test-failed"))
        for name in test.listen:
            if name not in used.intents:
                out.append(Problem(test.file, test.line, f"'listen' names the unknown intent '{name}'", "use intent names from the intents/ folder", "test-failed"))

    # which templates the tests exercise
    covered: set[tuple[str, str]] = set()
    try:
        hi = pack.intents
    except Exception:
        hi = None
    if hi is not None:
        for test in pack.tests:
            if not test.intent:
                continue
            text = normalise_transcript(test.sentence)
            try:
                for result in zip(range(64), recognize_all(text, hi), strict=False):
                    r = result[1]
                    if r.intent_sentence is not None:
                        covered.add((r.intent.name, r.intent_sentence.text))
            except Exception:
                continue
    # a sentence matched only through the pinyin fallback also covers its template
    outcomes: dict[int, str | None] = {}
    for i, test in enumerate(pack.tests):
        if test.intent is not None and test.intent in used.intents and all(n in used.intents for n in test.listen):
            outcomes[i] = evaluate_test(pack, test)
    from assistant.nlu import understand

    for i, test in enumerate(pack.tests):
        if test.intent and outcomes.get(i) is None:
            m = understand(pack, test.sentence, list(test.listen) or None)
            if m is not None and m.template:
                covered.add((m.intent, m.template))
        elif test.intent is None:
            outcomes[i] = evaluate_test(pack, test)
    for (intent, template), src in pack.template_sources.items():
        if src.pack == pack.id and (intent, template) not in covered:
            out.append(
                Problem(src.file, src.line, f"no test sentence matches the template {template!r} of {intent}", f"add a sentence it should match to {TESTS_DIR}/{intent}.yaml", "template-untested")
            )
    known = pack.known_failures
    all_sentences = {t.sentence for t in pack.tests}
    for i, test in enumerate(pack.tests):
        if i not in outcomes:
            continue
        failure = outcomes[i]
        kf = known.get(test.sentence)
        if failure and kf is None and test.pack == pack.id:
            out.append(Problem(test.file, test.line, f"test failed: {failure}", "fix the sentences in intents/ (or the test), or list the sentence in known_failures.yaml with a reason", "test-failed"))
        elif failure and kf is None:
            out.append(Problem(own.path / KNOWN_FAILURES_FILE, 0, f"inherited test ({test.file}:{test.line}) fails in pack '{pack.id}': {failure}", f"fix the pack, or list the sentence in {pack.id}/{KNOWN_FAILURES_FILE}", "test-failed"))
        elif not failure and kf is not None and kf.file.parent == own.path:
            out.append(Problem(kf.file, kf.line, f"'{test.sentence}' is listed as a known failure but it works now", "remove it from known_failures.yaml", "known-failure"))
    for sentence, kf in known.items():
        if kf.file.parent == own.path and sentence not in all_sentences:
            out.append(Problem(kf.file, kf.line, f"the known failure '{sentence}' is not a sentence of any test", "remove it, or add the sentence to a test file", "known-failure"))
    return out


def _check_prompts(pack: LocalePack, used: UsedIds, parent: LocalePack | None, reference: LocalePack | None) -> list[Problem]:
    out: list[Problem] = []
    own = _own(pack)
    resp = own.path / RESPONSES_FILE
    have_prompts = set(pack.prompts)
    have_labels = set(pack.labels)
    if _is_root(pack):
        # a pack that extends another inherits everything; what it lacks, its base lacks
        for pid in sorted(used.prompts - have_prompts - have_labels):
            out.append(Problem(resp, 0, f"the prompt '{pid}' is used by the kiosk but missing from pack '{pack.id}'", f"add '  {pid}: <text>' under 'prompts:' ({_meaning(pid)})", "prompt-missing"))
        for lid in sorted(used.labels - have_labels - have_prompts):
            out.append(Problem(resp, 0, f"the label '{lid}' is used by the kiosk but missing from pack '{pack.id}'", f"add '  {lid}: <text>' under 'labels:' ({_meaning(lid)})", "prompt-missing"))
    own_prompts, own_labels = own.prompts, own.labels
    for section, table, wrong in (("prompts", own_prompts, used.labels), ("labels", own_labels, used.prompts)):
        for key, text in table.items():
            if key not in used.all:
                out.append(Problem(resp, text.line, f"the {section[:-1]} '{key}' is not used by the kiosk", "delete it, or check the spelling of the id (ids are listed in assistant/prompts.py)", "prompt-unused"))
            elif key in wrong:
                other = "labels" if section == "prompts" else "prompts"
                out.append(Problem(resp, text.line, f"'{key}' is under '{section}:' but it is a {other[:-1]}", f"move the line under '{other}:'", "prompt-section"))
    for key, text in {**own_prompts, **own_labels}.items():
        wide = FULLWIDTH_PLACEHOLDER.search(text)
        if wide:
            # typed with a Chinese input method: never filled in, read out as it stands
            ascii_form = "{" + (wide.group(1) or wide.group(2)) + "}"
            out.append(Problem(resp, text.line, f"'{key}' writes the placeholder {wide.group(0)} with full-width braces", f"write it as {ascii_form} (switch the input method to English for braces)", "placeholders"))
            continue
        if text.count("{") != text.count("}"):
            out.append(Problem(resp, text.line, f"the braces in '{key}' do not match", "every { needs a } around a placeholder name", "placeholders"))
            continue
        mine = placeholders(text)
        if reference is not None and key in (set(reference.prompts) | set(reference.labels)):
            theirs = placeholders(reference.text(key))
            against = f"pack '{reference.id}'"
        elif key in used.documented_slots and reference is None:
            theirs = set(used.documented_slots[key])
            against = "assistant/prompts.py"
        else:
            continue
        if mine != theirs:
            missing = ", ".join("{" + p + "}" for p in sorted(theirs - mine))
            extra = ", ".join("{" + p + "}" for p in sorted(mine - theirs))
            detail = "; ".join(x for x in (f"missing {missing}" if missing else "", f"unknown {extra}" if extra else "") if x)
            out.append(Problem(resp, text.line, f"the placeholders of '{key}' differ from {against}: {detail}", f"use exactly {', '.join('{' + p + '}' for p in sorted(theirs)) or 'no placeholders'} (the names cannot be translated)", "placeholders"))
    return out


def _check_own_words(pack: LocalePack, base: LocalePack) -> list[Problem]:
    """A pack built on another must say what it is in its own words, not the base's."""
    own = _own(pack)
    resp = own.path / RESPONSES_FILE
    meta_path = own.path / PACK_FILE
    out: list[Problem] = []
    name = pack.name
    if name == base.name or name == pack.id:
        what = f"the base pack's ('{base.id}')" if name == base.name else "the pack id"
        out.append(Problem(meta_path, line_of(own.meta, "name", 1),
                           f"'name: {name}' is {what}, not the name of this pack's own language",
                           "write the name customers know it by, in the dialect itself (e.g. 东北话)", "own-words"))
    checks = (
        ("labels", Label.PACK_NAME, "the language button of this pack would read", "write the pack's own name, as on its language button (e.g. 东北话)"),
        ("prompts", Prompt.LANGUAGE_SWITCHED, "customers who choose this pack would hear", "write, in this dialect, that you will speak it from now on (e.g. 好嘞，我跟你说东北话。)"),
    )
    for section, key, effect, fix in checks:
        table = own.labels if section == "labels" else own.prompts
        text = pack.text(key)
        inherited = str(key) not in table
        if text != base.text(key) and text != pack.id:
            continue
        line = getattr(table.get(str(key)), "line", 0) or 1
        said = f"'{key}' is inherited from '{base.id}'" if inherited else f"'{key}' is the same as in '{base.id}'" if text == base.text(key) else f"'{key}' is the pack id"
        out.append(Problem(resp, line, f"{said}: {effect} “{text}”",
                           f"{fix}{' under ' + repr(section + ':') if inherited else ''}", "own-words"))
    return out


def _meaning(pid: str) -> str:
    for enum_cls in (Prompt, Label):
        for m in enum_cls:
            if m.value == pid:
                return f"meaning: see {enum_cls.__name__}.{m.name} in assistant/prompts.py"
    return "see assistant/errors.py"


def _check_numbers(pack: LocalePack) -> list[Problem]:
    from speech.numbers import money_words, parse_money

    own = _own(pack)
    meta_line = line_of(own.meta, "numbers", 1)
    bad = []
    for fen in _MONEY_PROBES:
        try:
            words = money_words(fen, pack.number_style)
            back = parse_money(words, pack.number_style)
        except Exception as exc:
            bad.append(f"{fen} fen ({exc})")
            continue
        if back != fen:
            bad.append(f"{fen} fen is said '{words}' but read back as {back}")
    if bad:
        return [Problem(own.path / PACK_FILE, meta_line, "the number words do not read back: " + "; ".join(bad[:3]), "check that unit words, digits and filler words do not overlap", "numbers")]
    return []


def espeak_voices() -> set[str] | None:
    """Voice ids espeak-ng offers (``sit/yue``...), lower-cased; None without espeak-ng."""
    import shutil
    import subprocess

    exe = shutil.which("espeak-ng")
    if exe is None:
        return None
    try:
        listing = subprocess.run([exe, "--voices"], capture_output=True, text=True, timeout=20, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return None
    voices = set()
    for line in listing.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 5:
            voices.add(parts[4].lower())
            voices.add(parts[1].lower())
    return voices


_VOICES: list[set[str] | None] = []


def _check_voice(pack: LocalePack) -> list[Problem]:
    if not _VOICES:
        _VOICES.append(espeak_voices())
    voices = _VOICES[0]
    if voices is None or pack.voice.lower() in voices:
        return []
    owner = next((f for f in reversed(pack.files_chain) if f.meta.get("voice")), _own(pack))
    return [
        Problem(owner.path / PACK_FILE, line_of(owner.meta, "voice", 1), f"espeak-ng has no voice '{pack.voice}'", "use a voice id from 'espeak-ng --voices' (e.g. sit/cmn-latn-pinyin for Mandarin, sit/yue for Cantonese)", "voice")
    ]


# ===================================================================== font


def font_characters(path: Path) -> set[int] | None:
    """Code points the font can draw (first face of a collection, as the UI uses)."""
    from fontTools.ttLib import TTCollection, TTFont

    try:
        if str(path).lower().endswith((".ttc", ".otc")):
            font = TTCollection(str(path), lazy=True).fonts[0]
        else:
            font = TTFont(str(path), lazy=True)
        cmap = font.getBestCmap() or {}
        return set(cmap)
    except Exception:
        return None


def _check_font(pack: LocalePack, glyphs: set[int], font: Path) -> list[Problem]:
    out: list[Problem] = []
    own = _own(pack)
    resp = own.path / RESPONSES_FILE
    texts: list[tuple[Path, int, str, str]] = [(resp, t.line, k, str(t)) for k, t in {**own.prompts, **own.labels}.items()]
    name = own.meta.get("name")
    if isinstance(name, str):
        texts.append((own.path / PACK_FILE, line_of(own.meta, "name"), "name", name))
    if _is_root(pack):
        texts.append((own.path / PACK_FILE, 1, "amounts and numbers on screen", DISPLAY_CHARACTERS))
    for path, line, key, text in texts:
        shown = re.sub(r"\{\w+\}", "", text)
        missing = sorted({c for c in shown if not c.isspace() and ord(c) not in glyphs})
        if missing:
            out.append(
                Problem(path, line, f"the UI font {font.name} cannot draw {' '.join(missing)} in '{key}'", "use other characters, or set [ui] font to a font that has them (e.g. a CJK font)", "font")
            )
    return out


# ===================================================================== vocabulary


def _check_vocabulary(pack: LocalePack, vocabulary: Any) -> list[Problem]:
    from assistant.nlu import grammar_sentences, missing_words

    out: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for sentence, source in grammar_sentences(pack):
        file, _, line = source.rpartition(":")
        if not file or pack.path.resolve() not in Path(file).resolve().parents:
            continue  # a base pack's sentence: reported when that pack is checked
        for word in missing_words(sentence, vocabulary):
            if (source, word) in seen:
                continue
            seen.add((source, word))
            out.append(
                Problem(Path(file) if file else pack.path, int(line) if line.isdigit() else 0, f"'{word}' (in '{sentence}') is not in the speech model's vocabulary, so it can never be recognised", "use a more common word for it, or remove it from the sentence", "vocabulary")
            )
    return out


def format_problems(problems: Iterable[Problem], root: Path | None = None) -> str:
    """All problems, one per line."""
    return "\n".join(p.format(root) for p in problems)
