"""Kiosk entry point: ``python main.py --help`` lists the commands.

Started with any Python, it runs under the project's own environment (``.venv``, made by
``make setup``) when there is one, so ``python main.py ...`` works as the docs write it.
"""

import os
import sys
from pathlib import Path


def _project_python() -> None:
    venv = Path(__file__).resolve().parent / ".venv"
    python = venv / "bin" / "python"
    if python.is_file() and Path(sys.prefix).resolve() != venv.resolve():
        os.execv(python, [str(python), *sys.argv])


if __name__ == "__main__":
    _project_python()
    try:
        from assistant.cli import main
    except ModuleNotFoundError as exc:
        sys.exit(f"main.py: the kiosk's Python packages are not installed ({exc}); run `make setup` first")
    sys.exit(main())
