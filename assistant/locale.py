"""Locale packs: every word the kiosk says, shows or understands.

A pack is a folder ``locales/<id>/`` (see ``locales/README.md``)::

    pack.yaml            id, language, name, extends, voice, rate, numbers
    _common.yaml         hassil settings, lists, expansion rules, skip words
    intents/<Intent>.yaml  sentence templates of one intent
    responses.yaml       prompts: id -> text with {slots}; labels: id -> short text
    tests/<Intent>.yaml  sentences -> expected intent and slots
    known_failures.yaml  test sentences that do not work yet (run as expected failures)

A pack may ``extends`` another and then holds only what differs: prompts and labels
override by id, intent sentences and list values are added to the base pack's,
expansion rules override by name, tests and known failures are inherited.

YAML is read with a loader that remembers the file and line of every mapping, list
and string, so every problem found while loading (here) or checking
(:mod:`assistant.locale_check`) names the file, the line and what to do.
"""

from __future__ import annotations

import contextlib
import logging
import re
import string
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml

from assistant.errors import LocaleError
from assistant.messages import Amount, Count, Digits, Masked, Seconds, SecretDigits
from speech.numbers import (
    NumberStyle,
    digit_words,
    money_words,
    normalise_for_tts,
    number_words,
)

log = logging.getLogger(__name__)

PACK_FILE = "pack.yaml"
COMMON_FILE = "_common.yaml"
RESPONSES_FILE = "responses.yaml"
KNOWN_FAILURES_FILE = "known_failures.yaml"
INTENTS_DIR = "intents"
TESTS_DIR = "tests"


# ===================================================================== problems


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a pack: where, what, and what to do about it."""

    file: Path
    """The file at fault (it may not exist yet when the problem is that it is missing)."""
    line: int
    """1-based line in that file (0 when the whole file is meant)."""
    message: str
    """What is wrong, in plain words."""
    fix: str
    """What the maintainer should do."""
    rule: str = ""
    """Short rule name (``schema``, ``prompt-missing``, ``font``...), for tests and filters."""

    def where(self, root: Path | None = None) -> str:
        """``file:line``, relative to ``root`` when the file is inside it."""
        path = self.file
        if root is not None:
            with contextlib.suppress(ValueError):
                path = self.file.resolve().relative_to(root.resolve())
        return f"{path}:{self.line}" if self.line else str(path)

    def format(self, root: Path | None = None) -> str:
        """One line for a maintainer: ``file:line: message. Fix: what to do``."""
        return f"{self.where(root)}: {self.message}. Fix: {self.fix}"

    def __str__(self) -> str:
        return self.format()


class PackInvalid(LocaleError):
    """A pack (or the set of packs) failed to load or check; ``problems`` says why."""

    def __init__(self, problems: Iterable[Problem], root: Path | None = None) -> None:
        self.problems = list(problems)
        lines = [p.format(root) for p in self.problems[:20]]
        more = len(self.problems) - len(lines)
        if more > 0:
            lines.append(f"... and {more} more")
        super().__init__(f"{len(self.problems)} problem(s) in the locale packs:\n" + "\n".join(lines))


# ===================================================================== YAML with lines


class LStr(str):
    """A string from YAML that knows where it came from."""

    file: Path
    line: int


class LDict(dict):
    """A mapping from YAML; ``key_lines`` gives the line of each key."""

    file: Path
    line: int
    key_lines: dict[Any, int]


class LList(list):
    """A list from YAML; ``item_lines`` gives the line of each item."""

    file: Path
    line: int
    item_lines: list[int]


def _loader_for(path: Path, problems: list[Problem]) -> type[yaml.SafeLoader]:
    class LineLoader(yaml.SafeLoader):
        """SafeLoader that returns LDict/LList/LStr carrying file and line."""

    def construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> LDict:
        loader.flatten_mapping(node)
        result = LDict()
        result.file, result.line, result.key_lines = path, node.start_mark.line + 1, {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if key in result:
                problems.append(
                    Problem(
                        path,
                        key_node.start_mark.line + 1,
                        f"the key '{key}' appears twice in this mapping",
                        "keep one of them (the second would silently replace the first)",
                        "schema",
                    )
                )
            result[key] = loader.construct_object(value_node, deep=True)
            result.key_lines[key] = key_node.start_mark.line + 1
        return result

    def construct_sequence(loader: yaml.SafeLoader, node: yaml.SequenceNode) -> LList:
        result = LList(loader.construct_object(child, deep=True) for child in node.value)
        result.file, result.line = path, node.start_mark.line + 1
        result.item_lines = [child.start_mark.line + 1 for child in node.value]
        return result

    def construct_str(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> LStr:
        result = LStr(loader.construct_scalar(node))
        result.file, result.line = path, node.start_mark.line + 1
        return result

    LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, construct_sequence)
    LineLoader.add_constructor("tag:yaml.org,2002:str", construct_str)
    return LineLoader


def load_yaml(path: Path, problems: list[Problem]) -> Any:
    """Read a YAML file keeping lines; syntax errors become problems (returns None)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        problems.append(Problem(path, 0, f"the file is not UTF-8 text ({exc.reason})", "save it as UTF-8", "syntax"))
        return None
    try:
        return yaml.load(text, Loader=_loader_for(path, problems))  # noqa: S506 - SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        what = f"{exc.problem or exc}" + (f" ({exc.context})" if exc.context else "")
        fix = "check indentation, colons and quotes on this line"
        if "'\\t'" in what:
            fix = "indent with spaces: replace the tab on this line"
        wide = _fullwidth_layout(text, line)
        if wide is not None:
            # a Chinese input method's space or colon: the parser's own message names the
            # line after it and says nothing of the character
            line, what, fix = wide
        problems.append(Problem(path, line, f"YAML syntax error: {what}", fix, "syntax"))
        return None


_WIDE_INDENT = re.compile(r"^[ \t]*\u3000")
_WIDE_COLON = re.compile(r"^\s*-?\s*[A-Za-z_][\w-]*\s*：")


def _fullwidth_layout(text: str, error_line: int) -> tuple[int, str, str] | None:
    """The first line up to the parser's error that is indented or keyed the IME way."""
    for number, content in enumerate(text.splitlines()[: max(error_line, 1)], 1):
        if _WIDE_INDENT.match(content):
            return number, "the line is indented with a full-width space (\u3000)", "indent with ordinary spaces"
        if _WIDE_COLON.match(content):
            return number, "the key is followed by a full-width colon (：)", "write an ordinary colon and a space after the key ('id: text')"
    return None


def line_of(node: Any, key: Any = None, default: int = 0) -> int:
    """The line of ``node`` (or of ``node[key]`` / item ``key``) if known."""
    if key is not None:
        if isinstance(node, LDict) and key in node.key_lines:
            value = node.get(key)
            if isinstance(value, dict | list):
                return node.key_lines[key]  # a block: point at its key, not its first entry
            return getattr(value, "line", None) or node.key_lines[key]
        if isinstance(node, LList) and isinstance(key, int) and key < len(node.item_lines):
            return node.item_lines[key]
    return getattr(node, "line", default)


# ===================================================================== schema helpers


class _Schema:
    """Collects schema problems for one file."""

    def __init__(self, path: Path, problems: list[Problem]) -> None:
        self.path = path
        self.problems = problems

    def add(self, line: int, message: str, fix: str, rule: str = "schema") -> None:
        self.problems.append(Problem(self.path, line, message, fix, rule))

    def mapping(
        self, node: Any, where: str, allowed: Iterable[str], required: Iterable[str] = ()
    ) -> dict[str, Any]:
        """Check ``node`` is a mapping with known keys; returns it (empty on error)."""
        if not isinstance(node, dict):
            self.add(line_of(node, default=1), f"{where} must be a mapping (key: value lines)", f"write {where} as 'key: value' lines")
            return {}
        allowed = list(allowed)
        for key in node:
            if key not in allowed:
                self.add(
                    line_of(node, key),
                    f"unknown key '{key}' in {where}",
                    f"remove it or use one of: {', '.join(allowed)}",
                )
        for key in required:
            if key not in node:
                self.add(line_of(node, default=1), f"{where} is missing the key '{key}'", f"add '{key}:'")
        return node

    def string(self, node: Any, key: str, where: str, *, required: bool = False) -> str | None:
        value = node.get(key) if isinstance(node, dict) else None
        if value is None:
            if required and isinstance(node, dict) and key in node:
                self.add(line_of(node, key), f"'{key}' in {where} is empty", f"give '{key}' a value")
            return None
        if not isinstance(value, str):
            self.add(line_of(node, key), f"'{key}' in {where} must be text, not {type(value).__name__}", f"quote the value of '{key}'")
            return None
        return value

    def string_list(self, node: Any, key: str, where: str) -> list[str]:
        value = node.get(key) if isinstance(node, dict) else None
        if value is None:
            return []
        if not isinstance(value, list):
            self.add(line_of(node, key), f"'{key}' in {where} must be a list", f"write each entry of '{key}' on its own '- ' line")
            return []
        out = []
        for i, item in enumerate(value):
            if isinstance(item, str):
                out.append(item)
            else:
                self.add(line_of(value, i), f"entry {i + 1} of '{key}' in {where} must be text", "quote it")
        return out


# ===================================================================== raw pack files


@dataclass
class PackFiles:
    """One pack folder as written (no inheritance), after schema checks."""

    id: str
    path: Path
    meta: dict[str, Any] = field(default_factory=dict)
    common: dict[str, Any] = field(default_factory=dict)
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    """intent name -> its hassil intent mapping ({data: [...]})."""
    intent_files: dict[str, Path] = field(default_factory=dict)
    prompts: dict[str, LStr] = field(default_factory=dict)
    labels: dict[str, LStr] = field(default_factory=dict)
    tests: list[PackTest] = field(default_factory=list)
    test_files: dict[str, Path] = field(default_factory=dict)
    known_failures: dict[str, KnownFailure] = field(default_factory=dict)


@dataclass(frozen=True)
class PackTest:
    """One test sentence: what it must be understood as."""

    sentence: str
    intent: str | None
    """Expected intent, or None when the sentence must not be understood at all."""
    slots: Mapping[str, Any]
    """Expected slot values (amount in fen, digits as a string, method, pack)."""
    problem: str
    """Expected problem prompt id (e.g. ``amount_ambiguous``), or empty."""
    listen: tuple[str, ...]
    """Intents listened for (as in one dialog state); empty = all of the pack's."""
    file: Path
    line: int
    pack: str
    """The pack whose tests/ folder holds it."""


@dataclass(frozen=True)
class KnownFailure:
    """A test sentence that does not work yet."""

    sentence: str
    reason: str
    file: Path
    line: int


_PACK_KEYS = ("id", "language", "name", "extends", "voice", "rate", "numbers", "draft")
_NUMBER_KEYS = tuple(NumberStyle.__dataclass_fields__)


def read_pack_files(folder: Path, problems: list[Problem]) -> PackFiles | None:
    """Read one pack folder with schema checks; None if ``pack.yaml`` is unusable."""
    pack_id = folder.name
    meta_path = folder / PACK_FILE
    if not meta_path.is_file():
        problems.append(
            Problem(meta_path, 0, f"the pack folder '{pack_id}' has no {PACK_FILE}", f"create {PACK_FILE} (see locales/README.md) or remove the folder", "schema")
        )
        return None
    files = PackFiles(pack_id, folder)
    meta = load_yaml(meta_path, problems)
    if meta is None:
        return None
    s = _Schema(meta_path, problems)
    meta = s.mapping(meta, PACK_FILE, _PACK_KEYS, required=("id", "language", "name"))
    if not meta:
        return None
    pid = s.string(meta, "id", PACK_FILE, required=True)
    if pid is not None and pid != pack_id:
        s.add(line_of(meta, "id"), f"id '{pid}' does not match the folder name '{pack_id}'", f"write 'id: {pack_id}' or rename the folder to '{pid}'", "identity")
    lang = s.string(meta, "language", PACK_FILE, required=True)
    if lang is not None and not (pack_id == lang or pack_id.startswith(lang + "-")):
        s.add(
            line_of(meta, "language"),
            f"language '{lang}' does not fit the pack id '{pack_id}' (the id must be the language or start with it and a dash)",
            "correct the language code (e.g. zh-CN for zh-CN-sichuan)",
            "identity",
        )
    s.string(meta, "name", PACK_FILE, required=True)
    for key in ("extends", "voice"):
        s.string(meta, key, PACK_FILE)
    if "rate" in meta and (not isinstance(meta["rate"], int) or isinstance(meta["rate"], bool) or not 60 <= meta["rate"] <= 400):
        s.add(line_of(meta, "rate"), f"rate must be a whole number of words per minute between 60 and 400, not {meta['rate']!r}", "write e.g. 'rate: 150'")
        meta.pop("rate")  # reported; do not let it break building the pack
    if "draft" in meta and not isinstance(meta["draft"], bool):
        s.add(line_of(meta, "draft"), f"draft must be true or false, not {meta['draft']!r}", "write 'draft: true' while the pack is being written, remove the line when it is ready")
        meta.pop("draft")
    if "numbers" in meta:
        s.mapping(meta["numbers"], "numbers", _NUMBER_KEYS)
    if "extends" not in meta or meta.get("extends") is None:
        for key in ("voice", "numbers"):
            if key not in meta:
                s.add(line_of(meta, default=1), f"a pack that extends no other pack needs '{key}'", f"add '{key}:' (see locales/zh-CN/{PACK_FILE})")
    files.meta = meta

    expected_language = pack_id

    def check_language(node: Any, path: Path, sc: _Schema) -> None:
        lang_value = node.get("language") if isinstance(node, dict) else None
        if lang_value != expected_language:
            sc.add(
                line_of(node, "language", 1),
                f"'language: {lang_value}' does not match the pack folder '{pack_id}'",
                f"write 'language: {pack_id}' at the top of the file",
                "identity",
            )

    # -- _common.yaml -----------------------------------------------------------------
    common_path = folder / COMMON_FILE
    if common_path.is_file():
        node = load_yaml(common_path, problems)
        if node is not None:
            sc = _Schema(common_path, problems)
            node = sc.mapping(node, COMMON_FILE, ("language", "settings", "lists", "expansion_rules", "skip_words"), required=("language",))
            if node:
                check_language(node, common_path, sc)
                if "settings" in node:
                    settings = sc.mapping(node["settings"], "settings", ("ignore_whitespace",))
                    if "ignore_whitespace" in settings and not isinstance(settings["ignore_whitespace"], bool):
                        sc.add(line_of(settings, "ignore_whitespace"), "ignore_whitespace must be true or false", "write 'ignore_whitespace: true'")
                lists = node.get("lists", {}) or {}
                if isinstance(sc.mapping(lists, "lists", list(lists) if isinstance(lists, dict) else []), dict):
                    for name, body in lists.items():
                        _check_list(sc, name, body)
                rules = node.get("expansion_rules", {}) or {}
                for name in sc.mapping(rules, "expansion_rules", list(rules) if isinstance(rules, dict) else []):
                    sc.string(rules, name, f"expansion rule '{name}'", required=True)
                sc.string_list(node, "skip_words", COMMON_FILE)
                files.common = node

    # -- intents/ ---------------------------------------------------------------------
    for path in sorted((folder / INTENTS_DIR).glob("*.yaml")) if (folder / INTENTS_DIR).is_dir() else []:
        node = load_yaml(path, problems)
        if node is None:
            continue
        sc = _Schema(path, problems)
        node = sc.mapping(node, path.name, ("language", "intents"), required=("language", "intents"))
        if not node:
            continue
        check_language(node, path, sc)
        intents = sc.mapping(node.get("intents") or {}, "intents", [path.stem])
        for name, body in intents.items():
            if name != path.stem:
                continue  # reported above as an unknown key: one intent per file, named like the file
            body = sc.mapping(body, f"intent {name}", ("data",), required=("data",))
            data = body.get("data") if body else None
            if not isinstance(data, list) or not data:
                if body:
                    sc.add(line_of(body, "data", line_of(body)), f"intent {name} needs a non-empty 'data' list", "add '- sentences:' with at least one sentence")
                continue
            good = True
            for i, block in enumerate(data):
                block = sc.mapping(
                    block,
                    f"data block {i + 1} of {name}",
                    ("sentences", "slots", "lists", "expansion_rules", "requires_context", "excludes_context", "metadata"),
                    required=("sentences",),
                )
                if not block:
                    good = False
                    continue
                sentences = sc.string_list(block, "sentences", f"data block {i + 1} of {name}")
                if not sentences:
                    sc.add(line_of(block, "sentences", line_of(block)), f"data block {i + 1} of {name} has no sentences", "add at least one sentence under 'sentences:'")
                    good = False
                for lname, lbody in (block.get("lists") or {}).items() if isinstance(block.get("lists"), dict) else []:
                    _check_list(sc, lname, lbody)
            if good:
                files.intents[name] = body
                files.intent_files[name] = path

    # -- responses.yaml ---------------------------------------------------------------
    resp_path = folder / RESPONSES_FILE
    if resp_path.is_file():
        node = load_yaml(resp_path, problems)
        if node is not None:
            sc = _Schema(resp_path, problems)
            node = sc.mapping(node, RESPONSES_FILE, ("language", "prompts", "labels"), required=("language",))
            if node:
                check_language(node, resp_path, sc)
                for section, target in (("prompts", files.prompts), ("labels", files.labels)):
                    table = node.get(section) or {}
                    if not isinstance(table, dict):
                        sc.add(line_of(node, section), f"'{section}' must be a mapping of id: text", f"write one 'id: text' line per {section[:-1]}")
                        continue
                    for key, value in table.items():
                        if isinstance(value, str) and value.strip():
                            if not isinstance(value, LStr):
                                value = LStr(value)
                                value.file, value.line = resp_path, line_of(table, key)
                            target[str(key)] = value
                        else:
                            sc.add(line_of(table, key), f"{section[:-1]} '{key}' must be non-empty text", "write the text after the colon (quote it if it starts with { or [)")
    elif "extends" not in meta or meta.get("extends") is None:
        problems.append(Problem(resp_path, 0, f"the pack '{pack_id}' has no {RESPONSES_FILE}", f"create {RESPONSES_FILE} with 'prompts:' and 'labels:'", "schema"))

    # -- tests/ -----------------------------------------------------------------------
    for path in sorted((folder / TESTS_DIR).glob("*.yaml")) if (folder / TESTS_DIR).is_dir() else []:
        node = load_yaml(path, problems)
        if node is None:
            continue
        sc = _Schema(path, problems)
        node = sc.mapping(node, path.name, ("language", "tests"), required=("language", "tests"))
        if not node:
            continue
        check_language(node, path, sc)
        files.test_files[path.stem] = path
        blocks = node.get("tests")
        if not isinstance(blocks, list):
            sc.add(line_of(node, "tests", 1), "'tests' must be a list of '- sentences: ... intent: ...' blocks", "start each test block with '- sentences:'")
            continue
        for i, block in enumerate(blocks):
            where = f"test block {i + 1}"
            block = sc.mapping(block, where, ("sentences", "intent", "no_intent", "listen"), required=("sentences",))
            if not block:
                continue
            sentences = sc.string_list(block, "sentences", where)
            listen = tuple(sc.string_list(block, "listen", where))
            intent_name: str | None = None
            slots: dict[str, Any] = {}
            problem_id = ""
            if block.get("no_intent") is True:
                if "intent" in block:
                    sc.add(line_of(block, "intent"), f"{where} has both 'intent' and 'no_intent'", "keep one")
                    continue
            elif "intent" in block:
                spec = sc.mapping(block["intent"], f"'intent' of {where}", ("name", "slots", "problem"), required=("name",))
                intent_name = sc.string(spec, "name", f"'intent' of {where}", required=True)
                if intent_name is None:
                    continue
                if "slots" in spec:
                    if isinstance(spec["slots"], dict):
                        slots = {str(k): _plain(v) for k, v in spec["slots"].items()}
                    else:
                        sc.add(line_of(spec, "slots"), "'slots' must be a mapping of slot: value", "write one 'slot: value' line per slot")
                problem_id = sc.string(spec, "problem", f"'intent' of {where}") or ""
            else:
                sc.add(line_of(block), f"{where} says neither 'intent:' nor 'no_intent: true'", "add 'intent:' with 'name:' (or 'no_intent: true' for sentences that must not be understood)")
                continue
            for j, sentence in enumerate(sentences):
                files.tests.append(
                    PackTest(
                        sentence=str(sentence),
                        intent=intent_name,
                        slots=MappingProxyType(dict(slots)),
                        problem=problem_id,
                        listen=listen,
                        file=path,
                        line=line_of(block["sentences"], j) or line_of(block),
                        pack=pack_id,
                    )
                )

    # -- known_failures.yaml ------------------------------------------------------------
    kf_path = folder / KNOWN_FAILURES_FILE
    if kf_path.is_file():
        node = load_yaml(kf_path, problems)
        if node is not None:
            sc = _Schema(kf_path, problems)
            node = sc.mapping(node, KNOWN_FAILURES_FILE, ("language", "known_failures"), required=("language",))
            if node:
                check_language(node, kf_path, sc)
                entries = node.get("known_failures") or []
                if not isinstance(entries, list):
                    sc.add(line_of(node, "known_failures"), "'known_failures' must be a list", "write '- sentence: ...' with 'reason: ...' for each")
                    entries = []
                for i, entry in enumerate(entries):
                    entry = sc.mapping(entry, f"known failure {i + 1}", ("sentence", "reason"), required=("sentence", "reason"))
                    sentence = sc.string(entry, "sentence", f"known failure {i + 1}", required=True)
                    reason = sc.string(entry, "reason", f"known failure {i + 1}", required=True)
                    if sentence and reason:
                        files.known_failures[str(sentence)] = KnownFailure(str(sentence), str(reason), kf_path, line_of(entry, "sentence"))
    return files


def _check_list(sc: _Schema, name: str, body: Any) -> None:
    """A slot list: ``values`` (text in/out), ``range`` or ``wildcard`` with ``samples``."""
    where = f"list '{name}'"
    body = sc.mapping(body, where, ("values", "range", "wildcard", "samples"))
    if not body:
        return
    kinds = [k for k in ("values", "range", "wildcard") if k in body]
    if len(kinds) != 1:
        sc.add(line_of(body), f"{where} must have exactly one of 'values', 'range' or 'wildcard: true'", "keep one of them")
        return
    if "values" in body:
        values = body["values"]
        if not isinstance(values, list) or not values:
            sc.add(line_of(body, "values"), f"{where} needs a non-empty 'values' list", "add '- in: ... out: ...' entries")
            return
        for i, value in enumerate(values):
            if isinstance(value, str):
                continue
            entry = sc.mapping(value, f"value {i + 1} of {where}", ("in", "out", "context", "metadata"), required=("in",))
            if entry:
                sc.string(entry, "in", f"value {i + 1} of {where}", required=True)
    elif "wildcard" in body:
        if body["wildcard"] is not True:
            sc.add(line_of(body, "wildcard"), f"{where}: 'wildcard' must be true", "write 'wildcard: true'")
        if not sc.string_list(body, "samples", where):
            sc.add(line_of(body), f"wildcard {where} has no 'samples'", "add 'samples:' with a few typical values; they build the speech recogniser's grammar")


def _plain(value: Any) -> Any:
    """YAML node -> plain Python value (for slots compared in tests)."""
    if isinstance(value, LStr):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _merged(base: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``new`` over ``base`` without touching either: mappings merge, lists add up."""
    out = dict(base)
    for key, value in new.items():
        old = out.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            out[key] = _merged(old, value)
        elif isinstance(old, list) and isinstance(value, list):
            out[key] = [*old, *value]
        else:
            out[key] = value
    return out


# ===================================================================== packs


@dataclass(frozen=True)
class Rendered:
    """A prompt ready to speak and to show."""

    speech: str
    """Text for the speech engine: numbers in words, no ASCII digit, masks spoken sensibly."""
    display: str
    """Text for the screen: amounts as ¥123.45, digits as digits, masks as shown."""


@dataclass(frozen=True)
class Source:
    """Where a sentence template, prompt or test came from."""

    file: Path
    line: int
    pack: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class LocalePack:
    """A pack with its inheritance resolved: the words, the sentences and the tests.

    Build packs with :func:`load_packs` (or a :class:`LocaleRegistry`), not directly.
    """

    def __init__(self, chain: list[PackFiles]) -> None:
        own = chain[-1]
        self.files_chain = chain
        """This pack's files and its base packs', root first."""
        self.id: str = own.id
        self.path: Path = own.path
        meta: dict[str, Any] = {}
        for files in chain:
            meta = _merged(meta, {k: v for k, v in files.meta.items() if v is not None})
        self.name: str = str(meta.get("name", own.id))
        """Display name of the pack (普通话, 粤语...)."""
        self.language: str = str(meta.get("language", own.id))
        self.extends: str | None = str(own.meta["extends"]) if own.meta.get("extends") else None
        self.voice: str = str(meta.get("voice", ""))
        """TTS voice id (espeak-ng, e.g. ``sit/cmn-latn-pinyin``)."""
        self.rate: int = int(meta.get("rate", 150))
        """Default speech rate in words per minute."""
        self.number_style: NumberStyle = NumberStyle.from_dict(meta.get("numbers", {}))
        self.draft: bool = own.meta.get("draft") is True
        """Still being written: checked, tested and heard with ``locales say``, but not
        offered to customers (not inherited: a pack built on a draft is not a draft)."""

        self.prompts: dict[str, LStr] = {}
        self.labels: dict[str, LStr] = {}
        common: dict[str, Any] = {}
        intents: dict[str, Any] = {}
        self.template_sources: dict[tuple[str, str], Source] = {}
        """(intent, template text) -> where it is written."""
        self.tests: list[PackTest] = []
        self.known_failures: dict[str, KnownFailure] = {}
        for files in chain:
            self.prompts.update(files.prompts)
            self.labels.update(files.labels)
            common = _merged(common, {k: v for k, v in files.common.items() if k != "language"})
            for name, body in files.intents.items():
                intents = _merged(intents, {name: body})
                for block in body["data"]:
                    for sentence in block["sentences"]:
                        line = getattr(sentence, "line", 0)
                        self.template_sources[(name, str(sentence))] = Source(files.intent_files[name], line, files.id)
            self.tests.extend(files.tests)
            self.known_failures.update(files.known_failures)
        self.common = common
        self.intent_data: dict[str, Any] = intents
        self._hassil: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LocalePack({self.id!r})"

    # -- understanding ------------------------------------------------------------------
    def hassil_dict(self) -> dict[str, Any]:
        """The merged intents in hassil's input format."""
        return {
            "language": self.language,
            "settings": dict(self.common.get("settings", {})),
            "lists": dict(self.common.get("lists", {})),
            "expansion_rules": dict(self.common.get("expansion_rules", {})),
            "skip_words": list(self.common.get("skip_words", [])),
            "intents": self.intent_data,
        }

    @property
    def intents(self) -> Any:
        """hassil ``Intents`` for this pack (built once)."""
        with self._lock:
            if self._hassil is None:
                from hassil import Intents

                self._hassil = Intents.from_dict(self.hassil_dict())
            return self._hassil

    # -- words --------------------------------------------------------------------------
    def text(self, prompt_id: str) -> str:
        """The raw template of a prompt or label (placeholders unfilled)."""
        key = str(prompt_id)
        if key in self.prompts:
            return self.prompts[key]
        if key in self.labels:
            return self.labels[key]
        raise LocaleError(f"locale pack '{self.id}' has no prompt or label '{key}'")

    def render(self, prompt_id: str, slots: Mapping[str, Any] | None = None) -> Rendered:
        """Fill a prompt's placeholders for speech and for the screen.

        Slot values: :class:`Amount` (money words / ``¥123.45``), :class:`Digits`
        (digit by digit / as typed; masked ``****1234`` spoken as the tail),
        :class:`Count`, :class:`Seconds` and ``int`` (number words), a Prompt or
        Label id (its own text, e.g. the payment method), or text (masked names
        such as ``张**`` spoken through the pack's ``masked_name``).
        """
        template = self.text(prompt_id)
        slots = dict(slots or {})
        needed = placeholders(template)
        missing = needed - set(slots)
        if missing:
            raise LocaleError(f"prompt '{prompt_id}' needs slot(s) {', '.join(sorted(missing))}")
        speech = _fill(template, {k: self.speak(v) for k, v in slots.items() if k in needed})
        display = _fill(template, {k: self.display(v) for k, v in slots.items() if k in needed})
        return Rendered(speech=normalise_for_tts(speech, self.number_style), display=display)

    def label(self, label_id: str, slots: Mapping[str, Any] | None = None) -> str:
        """The on-screen text of a label (placeholders filled for display)."""
        template = self.text(label_id)
        slots = dict(slots or {})
        return _fill(template, {k: self.display(v) for k, v in slots.items()})

    def speak(self, value: Any) -> str:
        """One slot value as words for the TTS engine (never an ASCII digit)."""
        style = self.number_style
        if isinstance(value, Amount):
            return money_words(value.fen, style)
        if isinstance(value, Digits | SecretDigits):
            return digit_words(value.text, style)
        if isinstance(value, Masked):
            return self.speak(value.display)
        if isinstance(value, Count | Seconds):
            return number_words(value.value, style, measure=True)
        if isinstance(value, bool):
            return str(value)
        if isinstance(value, int):
            return number_words(value, style, measure=True)
        if isinstance(value, Enum) and str(value.value) in self.prompts.keys() | self.labels.keys():
            return self.text(str(value.value))
        text = str(value)
        if "*" in text:
            visible = text.replace("*", "")
            if visible and all(c.isascii() and c.isdigit() for c in visible):
                return digit_words(text, style)
            return style.masked_name.format(visible=visible)
        return text

    def display(self, value: Any) -> str:
        """One slot value as screen text (amounts as ¥x.xx, masked values as masked)."""
        if isinstance(value, Amount):
            return format_amount(value.fen)
        if isinstance(value, Digits):
            return value.text
        if isinstance(value, SecretDigits):
            # Large type for the customer to check: groups of four.
            return " ".join(value.text[i : i + 4] for i in range(0, len(value.text), 4))
        if isinstance(value, Masked):
            return value.display
        if isinstance(value, tuple | list):
            return " ".join(self.display(v) for v in value)
        if isinstance(value, Count | Seconds):
            return str(value.value)
        if isinstance(value, Enum) and str(value.value) in self.prompts.keys() | self.labels.keys():
            return self.text(str(value.value))
        return str(value)


def format_amount(fen: int) -> str:
    """How an amount is shown on screen: ``¥123.45``."""
    sign = "-" if fen < 0 else ""
    fen = abs(fen)
    return f"{sign}¥{fen // 100}.{fen % 100:02d}"


_FORMATTER = string.Formatter()


def placeholders(template: str) -> set[str]:
    """The ``{names}`` a prompt template uses."""
    try:
        return {name for _, name, _, _ in _FORMATTER.parse(template) if name}
    except ValueError:
        return set()


def _fill(template: str, values: Mapping[str, str]) -> str:
    """Fill placeholders; unknown ones are left as written (the check reports them)."""

    class Keep(dict):
        def __missing__(self, key: str) -> str:
            return "{" + key + "}"

    return template.format_map(Keep(values))


# ===================================================================== loading


def load_packs(locales_dir: Path, problems: list[Problem] | None = None) -> dict[str, LocalePack]:
    """Load every pack under ``locales_dir`` with inheritance resolved.

    Problems found while reading (syntax, schema, identity, inheritance) are appended
    to ``problems``; packs that cannot be built are left out.
    """
    problems = [] if problems is None else problems
    raw: dict[str, PackFiles] = {}
    if not locales_dir.is_dir():
        problems.append(Problem(locales_dir, 0, "the locales folder does not exist", "check [kiosk] locales_dir in the config", "schema"))
        return {}
    for folder in sorted(p for p in locales_dir.iterdir() if p.is_dir() and not p.name.startswith((".", "_"))):
        files = read_pack_files(folder, problems)
        if files is not None:
            raw[files.id] = files
    packs: dict[str, LocalePack] = {}
    for pack_id in raw:
        chain = _chain(pack_id, raw, problems)
        if chain is None:
            continue
        try:
            packs[pack_id] = LocalePack(chain)
        except (ValueError, TypeError) as exc:
            meta_path = raw[pack_id].path / PACK_FILE
            problems.append(
                Problem(meta_path, line_of(raw[pack_id].meta, "numbers", 1), f"the numbers section cannot be used: {exc}", "compare it with locales/zh-CN/pack.yaml", "schema")
            )
    return packs


def _chain(pack_id: str, raw: Mapping[str, PackFiles], problems: list[Problem]) -> list[PackFiles] | None:
    chain: list[PackFiles] = []
    seen: set[str] = set()
    current: str | None = pack_id
    while current is not None:
        files = raw.get(current)
        if files is None:
            child = chain[-1]
            if (child.path.parent / current / PACK_FILE).is_file():
                # the base is there but could not be read: point at it, not at a list of others
                what, fix = f"the base pack '{current}' could not be loaded", f"fix the problems of {current}/ first (locales check {current})"
            else:
                what, fix = f"'extends: {current}' names a pack that does not exist", f"use one of: {', '.join(sorted(raw))}"
            problems.append(Problem(child.path / PACK_FILE, line_of(child.meta, "extends", 1), what, fix, "extends"))
            return None
        if current in seen:
            problems.append(
                Problem(files.path / PACK_FILE, line_of(files.meta, "extends", 1), f"'extends' makes a loop: {' -> '.join([*[f.id for f in chain], current])}", "make the base pack extend nothing", "extends")
            )
            return None
        seen.add(current)
        chain.append(files)
        parent = files.meta.get("extends")
        current = str(parent) if parent else None
    chain.reverse()
    return chain


# ===================================================================== registry


class LocaleRegistry:
    """The packs the kiosk runs with, replaceable at run time.

    Args:
        locales_dir: folder holding the packs.
        default: the pack a new customer starts with.
        font: the UI font file the check verifies glyphs against (None skips that rule).
    """

    def __init__(self, locales_dir: Path, default: str = "zh-CN", font: Path | None = None) -> None:
        self.locales_dir = Path(locales_dir)
        self.default_id = default
        self.font = Path(font) if font else None
        self._packs: dict[str, LocalePack] = {}
        self._retired: set[str] = set()
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: Any) -> LocaleRegistry:
        """A registry for the config's ``[kiosk] locales_dir``/``locale`` and ``[ui] font``."""
        return cls(config.locales_dir, config.kiosk.locale, config.resolve(config.ui.font))

    def validate(self) -> tuple[dict[str, LocalePack], list[Problem]]:
        """Load and fully check the packs on disk (without applying them)."""
        from assistant.locale_check import check_packs

        problems: list[Problem] = []
        packs = load_packs(self.locales_dir, problems)
        if not problems:
            problems.extend(check_packs(packs, self.locales_dir, font=self.font, default=self.default_id,
                                        drafts_may_be_unfinished=True))
        if not problems and self.default_id not in packs:
            problems.append(Problem(self.locales_dir / self.default_id, 0, f"the default pack '{self.default_id}' is missing", "restore it or change [kiosk] locale", "schema"))
        return packs, problems

    def load(self) -> LocaleRegistry:
        """Load and check the packs; raises :class:`PackInvalid` listing every problem."""
        packs, problems = self.validate()
        if problems:
            raise PackInvalid(problems, self.locales_dir.parent)
        with self._lock:
            self._packs = packs
        return self

    def reload(self) -> list[Problem]:
        """Re-read the packs from disk; apply them only if they pass the check.

        Returns the problems found (empty when the new packs are active). When there
        are problems the packs already in use stay active.
        """
        packs, problems = self.validate()
        if problems:
            log.warning("locale packs not reloaded: %d problem(s); the old packs stay active", len(problems))
            return problems
        with self._lock:
            # a customer may be mid-session in a pack the maintainer just removed
            self._retired = (self._retired | set(self._packs)) - set(packs)
            self._packs = packs
        log.info("locale packs reloaded: %s", ", ".join(sorted(packs)))
        return []

    def get(self, pack_id: str | None = None) -> LocalePack:
        """A pack by id (the default pack when None).

        A pack that a reload removed answers with the default pack: the customer using
        it at that moment goes on in the default language instead of every screen and
        prompt failing until the session ends.
        """
        with self._lock:
            key = pack_id or self.default_id
            if key in self._retired and key not in self._packs:
                key = self.default_id
            try:
                return self._packs[key]
            except KeyError:
                raise LocaleError(f"no locale pack '{key}' (have: {', '.join(sorted(self._packs))})") from None

    @property
    def default(self) -> LocalePack:
        """The pack a new customer starts with."""
        return self.get(None)

    def ids(self) -> list[str]:
        """Ids of the active packs."""
        with self._lock:
            return sorted(self._packs)

    def offered(self) -> list[str]:
        """Ids of the packs a customer may choose: the active packs but drafts (the default always)."""
        with self._lock:
            return sorted(k for k, p in self._packs.items() if not p.draft or k == self.default_id)

    def __contains__(self, pack_id: object) -> bool:
        with self._lock:
            return pack_id in self._packs


def pid_file(config: Any) -> Path:
    """Where a running kiosk writes its process id (``var/run/kiosk.pid``)."""
    return config.data_dir / "run" / "kiosk.pid"


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from /proc), or None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: count after it
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


def pid_record(pid: int) -> str:
    """The pid file's line: the process id and its start time.

    A kiosk killed with SIGKILL leaves its pid file behind; the start time tells a later
    ``locales reload`` that the number now belongs to another program, which SIGHUP
    would terminate.
    """
    start = process_start(pid)
    return f"{pid} {start}" if start else str(pid)


def read_pid_record(path: Path) -> tuple[int, str | None]:
    """(pid, start time or None) from a pid file; raises ValueError when it is not one."""
    parts = path.read_text().split()
    if not parts:
        raise ValueError(f"{path} is empty")
    return int(parts[0]), (parts[1] if len(parts) > 1 else None)


def install_reload_signal(registry: LocaleRegistry, loop: Any = None, on_result: Any = None) -> None:
    """Make SIGHUP reload the packs (``python main.py locales reload`` sends it).

    Args:
        registry: the running kiosk's registry.
        loop: the asyncio loop (the running one when None).
        on_result: optional callback with the list of problems (empty = applied),
            e.g. for the staff screen.
    """
    import asyncio
    import signal

    loop = loop or asyncio.get_running_loop()

    def handler() -> None:
        async def run() -> None:
            problems = await asyncio.to_thread(registry.reload)
            for p in problems:
                log.warning("locale reload refused: %s", p)
            if on_result is not None:
                on_result(problems)

        loop.create_task(run())

    loop.add_signal_handler(signal.SIGHUP, handler)
