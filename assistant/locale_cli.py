"""``python main.py locales ...``: the locale-pack maintainer's tool.

``check [PACK]``   validate packs; every problem names the file, the line and the fix.
``new PACK``       create a skeleton pack that extends a base pack.
``say PACK ID``    speak one prompt with the pack's voice (and write it to a WAV file).
``reload``         check the packs on disk, then tell the running kiosk to use them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys
from pathlib import Path
from typing import Any

from assistant.config import Config
from assistant.errors import SpokenNumberError
from assistant.locale import (
    PACK_FILE,
    LocalePack,
    Problem,
    load_packs,
    pid_file,
    process_start,
    read_pid_record,
)
from assistant.messages import Amount, Count, Digits, Seconds
from assistant.prompts import Label, Prompt


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``locales`` sub-commands."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    p = sub.add_parser("check", help="validate locale packs (all, or one)")
    p.add_argument("pack", nargs="?", help="pack id (folder name); default: every pack")
    p.add_argument("--font", help="UI font file to check glyphs against (default: [ui] font)")
    p.add_argument("--no-font", action="store_true", help="skip the glyph rule")
    p.add_argument("--words", help="speech model vocabulary (words.txt, one word per line) to check grammar words against")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("new", help="create a skeleton pack that extends another")
    p.add_argument("pack", help="new pack id, e.g. zh-CN-dongbei or yue-HK")
    p.add_argument("--extends", default="zh-CN", help="base pack (default: zh-CN)")
    p.add_argument("--name", help="display name in the dialect itself (default: the id)")
    p.add_argument("--language", help="language code (default: the base pack's)")
    p.set_defaults(func=cmd_new)

    p = sub.add_parser("say", help="speak a prompt with the pack's voice")
    p.add_argument("pack", help="pack id")
    p.add_argument("prompt", help="prompt or label id, e.g. arrears")
    p.add_argument("--slot", action="append", default=[], metavar="NAME=VALUE", help="slot value: an amount (with the currency sign or a money word), a digit string, or text")
    p.add_argument("--out", help="WAV file to write (default: var/say/<pack>-<prompt>.wav)")
    p.add_argument("--no-play", action="store_true", help="only write the WAV file")
    p.set_defaults(func=cmd_say)

    p = sub.add_parser("reload", help="check the packs on disk, then make the running kiosk use them")
    p.set_defaults(func=cmd_reload)


# ===================================================================== check


def cmd_check(args: argparse.Namespace, config: Config) -> int:
    """Run the check and print every problem; exit code 1 if there are any."""
    from assistant.locale_check import check, pack_folder

    font = None if args.no_font else config.resolve(args.font or config.ui.font)
    vocabulary = None
    if args.words:
        from assistant.nlu import WordList

        vocabulary = WordList.from_file(Path(args.words))
    root = config.locales_dir
    problems = check(root, args.pack, font=font, vocabulary=vocabulary, default=config.kiosk.locale, default_at=_locale_line(config))
    # A draft's own words (its name, button, "I speak ...") are its to-do list, not a failure:
    # customers never see a draft. They become errors once 'draft: true' is removed, or while
    # the draft is the kiosk's default pack (every customer hears that one).
    drafts = _draft_ids(root) - {config.kiosk.locale}
    to_do = [p for p in problems if p.rule == "own-words" and pack_folder(p, root) in drafts]
    problems = [p for p in problems if p not in to_do]
    report(problems, root, args.pack)
    for pack_id in sorted({pack_folder(p, root) for p in to_do}):
        print(f"draft pack {pack_id}: still to write before 'draft: true' is removed from its pack.yaml:")
        for p in to_do:
            if pack_folder(p, root) == pack_id:
                print("  " + p.format(root.parent))
    return 1 if problems else 0


def _draft_ids(root: Path) -> set[str]:
    """The packs under ``root`` marked ``draft: true``."""
    from assistant.locale import load_packs

    return {pid for pid, pack in load_packs(root, []).items() if pack.draft}


def _locale_line(config: Config) -> tuple[Path, int] | None:
    """The config file and line that set ``[kiosk] locale`` (None: the built-in default)."""
    if config.path is None or not config.path.is_file():
        return None
    section = ""
    for n, line in enumerate(config.path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        text = line.strip()
        if text.startswith("["):
            section = text.strip("[] ")
        elif section == "kiosk" and text.split("=", 1)[0].strip() == "locale":
            return config.path, n
    return config.path, 0


def report(problems: list[Problem], root: Path, pack_id: str | None = None) -> None:
    """Print problems for a maintainer, or a one-line all-clear (naming the one pack checked)."""
    base = root.parent
    if not problems:
        print(f"locales check: pack {pack_id} in {root} is fine" if pack_id else f"locales check: all packs in {root} are fine")
        return
    for p in problems:
        print(p.format(base))
    print(f"locales check: {len(problems)} problem(s)", file=sys.stderr)


# ===================================================================== new

_SKELETON_PACK = """\
# {name}: extends {base}; write here only what differs from {base}.
id: {pack}
language: {language}
name: {name}
extends: {base}
draft: true   # customers are not offered the pack until this line is removed
# voice: sit/cmn-latn-pinyin   # espeak-ng voice id (default: the base pack's)
# rate: 150                    # words per minute (default: the base pack's)
# numbers:                     # number words that differ, e.g. money units
#   yuan: [块, 元]
"""

_SKELETON_COMMON = """\
# Lists and filler words added to those of {base}.
language: {pack}
# skip_words: []
"""

_SKELETON_RESPONSES = """\
# Prompts (spoken and shown) and labels (on buttons) that differ from {base}.
# Copy a line from locales/{base}/responses.yaml and change the words; keep the {{placeholders}}.
language: {pack}
prompts:
  # What a customer hears on choosing this pack: say, in this dialect, that you speak it
  # now. Still {base}'s words below: 'locales check' reports them until you write your own.
  language_switched: {switched}
labels:
  # The language button: the pack's own name ('locales check' reports it while it is the
  # base pack's name or the pack id).
  pack_name: {name}
"""

_SKELETON_README = """\
# One file per intent: intents/<Intent>.yaml (sentences added to {base}'s),
# and a test for every sentence in tests/<Intent>.yaml. See locales/README.md.
"""


def cmd_new(args: argparse.Namespace, config: Config) -> int:
    """Create ``locales/<pack>/`` with a skeleton (a draft) that passes the check except for
    what only the maintainer can write: the pack's name, its language button and its
    ``language_switched`` prompt (still the base pack's words until rewritten)."""
    root = config.locales_dir
    pack_id = args.pack
    if not re.fullmatch(r"[A-Za-z]{2,3}(-[A-Za-z0-9]+)*", pack_id):
        print(f"locales new: '{pack_id}' is not a pack id (letters, digits and dashes, e.g. zh-CN-dongbei)", file=sys.stderr)
        return 2
    folder = root / pack_id
    if folder.exists():
        print(f"locales new: {folder} already exists", file=sys.stderr)
        return 1
    packs = load_packs(root, [])
    base = packs.get(args.extends)
    if base is None:
        print(f"locales new: no base pack '{args.extends}' (have: {', '.join(sorted(packs))})", file=sys.stderr)
        return 1
    language = args.language or base.language
    if not (pack_id == language or pack_id.startswith(language + "-")):
        language = pack_id.split("-")[0]
    name = args.name or pack_id
    switched = base.text("language_switched")
    values = {"pack": pack_id, "base": base.id, "name": name, "language": language, "switched": switched}
    (folder / "intents").mkdir(parents=True)
    (folder / "tests").mkdir()
    (folder / PACK_FILE).write_text(_SKELETON_PACK.format(**values), encoding="utf-8")
    (folder / "_common.yaml").write_text(_SKELETON_COMMON.format(**values), encoding="utf-8")
    (folder / "responses.yaml").write_text(_SKELETON_RESPONSES.format(**values), encoding="utf-8")
    (folder / "intents" / "README").write_text(_SKELETON_README.format(**values), encoding="utf-8")
    print(f"created {folder}")
    own = "language_switched" if args.name else "name, pack_name and language_switched"
    print(f"next: 1) write {own} in the dialect's own words ('locales check {pack_id}' lists what is left);")
    print(f"      2) add '{pack_id}' to the 'pack' list in locales/{base.id}/_common.yaml so customers can ask for it;")
    print(f"      3) run: python main.py locales check {pack_id}")
    print(f"      4) when it is ready, remove 'draft: true' from {folder.name}/{PACK_FILE} and run: python main.py locales reload")
    return 0


# ===================================================================== say

# Example values for placeholders, by name, so any prompt can be heard without typing slots.
_AMOUNT_SLOTS = {
    "amount", "due", "inserted", "change", "remainder", "credited", "balance", "note",
    "denomination", "amount_in", "amount_out", "counted", "expected", "difference",
}  # fmt: skip
_EXAMPLES: dict[str, Any] = {
    "account": Digits("****1234"),
    "phone": Digits("13800138000"),
    "last4": Digits("1234"),
    "reference": Digits("202401010001"),
    "seconds": Seconds(30),
    "length": Count(10),
    "count": Count(2),
    "total": Count(5),
    "step": Count(3),
    "method": Prompt.METHOD_CASH,
    "issuer": Prompt.METHOD_CARD,
    "unit": Label.DEVICE_NOTES,
    "device": Label.DEVICE_NOTES,
    "state": Digits("0005"),
}


def example_slots(pack: LocalePack, prompt_id: str) -> dict[str, Any]:
    """Plausible values for every placeholder of a prompt."""
    from assistant.locale import placeholders

    slots: dict[str, Any] = {}
    for name in placeholders(pack.text(prompt_id)):
        if name in _AMOUNT_SLOTS:
            slots[name] = Amount(12345)
        elif name == "name":
            # a masked name: the first character of the pack's own name stands in for a surname
            slots[name] = pack.name[:1] + "**"
        else:
            slots[name] = _EXAMPLES.get(name, Count(1))
    return slots


_DIGIT_SLOTS = {"account", "phone", "last4", "reference", "state"}


def parse_slot(text: str, pack: LocalePack, prompt_id: str = "") -> tuple[str, Any]:
    """``NAME=VALUE`` for one placeholder of the prompt, typed by what the placeholder holds.

    Amounts are yuan (``12.5``, ``¥12.50``, ``12.5元``) or the pack's money words; account,
    phone and reference numbers are digits (``*`` for masked ones); counts are whole
    numbers; anything else is text. A value that does not fit is an error naming the slot.
    """
    from assistant.locale import placeholders
    from speech.numbers import parse_money

    name, sep, value = text.partition("=")
    if not sep or not name:
        raise SystemExit(f"locales say: --slot needs NAME=VALUE, got {text!r}")
    if prompt_id:
        names = placeholders(pack.text(prompt_id))
        if name not in names:
            have = ", ".join(sorted(names)) or "none"
            raise SystemExit(f"locales say: prompt '{prompt_id}' has no slot '{name}' (its slots: {have})")
    if name in _AMOUNT_SLOTS:
        try:
            return name, Amount(parse_money(value, pack.number_style))
        except SpokenNumberError:
            raise SystemExit(f"locales say: {name}={value!r} is not an amount: write yuan (12.5 or ¥12.50) "
                             "or the pack's money words") from None
    if name in _DIGIT_SLOTS:
        if not re.fullmatch(r"[\d*]+", value):
            raise SystemExit(f"locales say: {name}={value!r} must be digits (use * for masked ones)")
        return name, Digits(value)
    example = _EXAMPLES.get(name)
    if isinstance(example, Count | Seconds) or (name not in _EXAMPLES and name != "name" and value.isdigit()):
        if not value.isdigit():
            raise SystemExit(f"locales say: {name}={value!r} must be a whole number")
        return name, type(example)(int(value)) if isinstance(example, Seconds) else Count(int(value))
    if not value:
        raise SystemExit(f"locales say: {name}= has no value")
    return name, value


def cmd_say(args: argparse.Namespace, config: Config) -> int:
    """Render a prompt with example (or given) slots, synthesise it, play it."""
    packs = load_packs(config.locales_dir, [])
    if args.pack not in packs:
        print(f"locales say: no pack '{args.pack}' (have: {', '.join(sorted(packs))})", file=sys.stderr)
        return 1
    pack = packs[args.pack]
    if args.prompt not in pack.prompts and args.prompt not in pack.labels:
        import difflib

        near = difflib.get_close_matches(args.prompt, [*pack.prompts, *pack.labels], n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else " (the ids are the words before the colon in responses.yaml)"
        print(f"locales say: pack '{pack.id}' has no prompt or label '{args.prompt}'{hint}", file=sys.stderr)
        return 1
    slots = example_slots(pack, args.prompt)
    slots.update(dict(parse_slot(s, pack, args.prompt) for s in args.slot))
    rendered = pack.render(args.prompt, slots)
    out = Path(args.out) if args.out else config.data_dir / "say" / f"{pack.id}-{args.prompt}.wav"
    out.parent.mkdir(parents=True, exist_ok=True)
    print(f"shown:  {rendered.display}")
    print(f"spoken: {rendered.speech}")
    synthesise_to_wav(rendered.speech, pack.voice, pack.rate, out, config)
    print(f"wrote {out} (voice {pack.voice}, {pack.rate} words per minute)")
    if not args.no_play:
        play_wav(out)
    return 0


def synthesise_to_wav(text: str, voice: str, rate: int, path: Path, config: Config | None = None) -> Path:
    """Speak ``text`` into a WAV file with the kiosk's own synthesizer (``[tts]``)."""
    from speech.tts import TtsSection, create_synthesizer

    section = config.section("tts", TtsSection) if config is not None else TtsSection()

    async def render() -> None:
        synth = create_synthesizer(section)
        try:
            clip = await synth.synthesize(text, voice, rate)
        finally:
            await synth.close()
        clip.to_wav(path)

    asyncio.run(render())
    return path


def play_wav(path: Path) -> bool:
    """Play a WAV file on the default output; False (with a note) if there is none."""
    import wave

    try:
        import numpy as np
        import sounddevice

        with wave.open(str(path), "rb") as w:
            rate = w.getframerate()
            data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        sounddevice.play(data, rate)
        sounddevice.wait()
        return True
    except Exception as exc:  # no sound card on a build machine: the WAV file is still there
        print(f"(not played: {exc}; open the WAV file to listen)")
        return False


# ===================================================================== reload


def cmd_reload(args: argparse.Namespace, config: Config) -> int:
    """Check the packs on disk; if they pass, send SIGHUP to the running kiosk."""
    from assistant.locale import LocaleRegistry

    registry = LocaleRegistry.from_config(config)
    _packs, problems = registry.validate()
    if problems:
        report(problems, config.locales_dir)
        print("locales reload: refused; the kiosk keeps the packs it has", file=sys.stderr)
        return 1
    pid_path = pid_file(config)
    try:
        pid, started = read_pid_record(pid_path)
    except (FileNotFoundError, ValueError):
        print(f"locales reload: packs are fine, but no kiosk is running ({pid_path} missing)", file=sys.stderr)
        return 1
    if started is not None and process_start(pid) not in (None, started):
        # the kiosk that wrote the file was killed; its number now belongs to another program
        print(f"locales reload: packs are fine, but no kiosk is running (process {pid} from {pid_path} is another program)", file=sys.stderr)
        return 1
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        print(f"locales reload: packs are fine, but process {pid} from {pid_path} is not running", file=sys.stderr)
        return 1
    print(f"locales reload: packs are fine; asked the kiosk (process {pid}) to reload them")
    return 0
