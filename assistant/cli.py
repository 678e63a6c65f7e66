"""Command-line entry: ``python main.py <command> ...``.

Each command lives in its own module exposing ``register(subparsers)``; the module
is imported only when its command runs, so ``--help`` is fast and a missing optional
package only affects the command that needs it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from assistant.config import Config
from assistant.errors import KioskError

# command name -> (module, one-line help). The module defines ``register(parser)``
# which adds its arguments (and sub-commands) and sets ``func(args, config) -> int``.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("assistant.demo", "run whole customer sessions headless on real input"),
    "run": ("ui.app", "open the kiosk window"),
    "models": ("assistant.models", "install, list and verify the models"),
    "db": ("assistant.storage_cli", "create, migrate and seed the database"),
    "locales": ("assistant.locale_cli", "check, create, reload and hear locale packs"),
    "face": ("assistant.face_cli", "face gallery tools: calibrate, identify, enrol, forget, purge"),
    "cash": ("assistant.cash_cli", "cash units, the simulator's slot, cassettes and planning"),
    "reconcile": ("assistant.reconcile", "daily reconciliation and clearing report"),
    "ui": ("ui.audit", "accessibility audit of every screen"),
}


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command listed (modules not yet imported)."""
    parser = argparse.ArgumentParser(
        prog="main.py",
        description="Voice-first self-service bill-payment kiosk.",
    )
    parser.add_argument("--config", help="config file (default: config/kiosk.toml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, load config and run the chosen command; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if not args.command:
        parser.print_help()
        return 0
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    module_name, help_text = COMMANDS[args.command]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        print(f"main.py {args.command}: not available: {exc}", file=sys.stderr)
        return 2
    sub = argparse.ArgumentParser(prog=f"main.py {args.command}", description=help_text)
    module.register(sub)
    sub_args = sub.parse_args(rest)
    try:
        config = Config.load(args.config)
        config.check()
        return int(sub_args.func(sub_args, config) or 0)
    except KioskError as exc:
        print(f"main.py {args.command}: {exc}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as exc:
        print(f"main.py {args.command}: needs the Python package {exc.name!r}, which is not installed; "
              "run `make setup`", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader went away (`... | head`): nothing more to say, and nobody to say it to
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        # a full disk, a read-only data folder, a missing device file: say which, no traceback
        print(f"main.py {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        # Last resort: an operator at a kiosk gets one line, not a traceback (-v shows it).
        if args.verbose:
            raise
        print(f"main.py {args.command}: unexpected {type(exc).__name__}: {exc} "
              "(run again with -v for the details)", file=sys.stderr)
        return 1
