"""``python main.py`` as the docs write it: started by a Python outside the project's
environment, it runs under ``.venv``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def test_main_started_by_another_python_runs_in_the_project_environment(root: Path) -> None:
    venv = root / ".venv"
    if Path(sys.prefix).resolve() != venv.resolve():
        pytest.skip("the tests are not running in the project's .venv")
    base = Path(sys.base_prefix) / "bin" / "python3"
    probe = subprocess.run([str(base), "-c", "import aiosqlite"], capture_output=True, check=False)
    assert probe.returncode != 0, "the base Python already has the kiosk's packages"
    out = subprocess.run([str(base), str(root / "main.py"), "models", "path", "face"],
                         capture_output=True, text=True, cwd=root, check=False, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("face")
