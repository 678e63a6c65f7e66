"""Shared fixtures: a fresh database per test, the project root, the default config."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from assistant.config import ROOT, Config
from assistant.storage import Database


@pytest.fixture
def root() -> Path:
    """The project root."""
    return ROOT


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    """The default config with its data folder in a temporary directory."""
    monkeypatch.setenv("KIOSK_DATA_DIR", str(tmp_path / "var"))
    return Config.load()


@pytest.fixture
async def db(tmp_path: Path):
    """An open, migrated database in a temporary file."""
    database = await Database(tmp_path / "kiosk.db").open()
    try:
        yield database
    finally:
        await database.close()


# ----------------------------------------------------------------------------- locale packs
# Every pack's tests/*.yaml sentence becomes one test (sentence -> intent and slots).
# ``pytest --pack yue`` runs only that pack's sentences; known failures
# (locales/<pack>/known_failures.yaml) run as strict expected failures, so one that
# starts working fails the run until it is removed from the file.


@pytest.fixture(scope="session")
def packs():
    """The shipped locale packs, loaded once."""
    from assistant.locale import LocaleRegistry

    return LocaleRegistry.from_config(Config.load()).load()


@pytest.fixture(scope="session")
def understanding(packs):
    """The real intent matcher over the shipped packs."""
    from assistant.nlu import PackUnderstanding

    return PackUnderstanding(packs)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--pack",
        action="append",
        default=[],
        metavar="PACK",
        help="run only the sentence tests of this locale pack (repeatable)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "pack_case" not in metafunc.fixturenames:
        return
    from assistant.locale import load_packs

    wanted = set(metafunc.config.getoption("--pack") or [])
    packs = load_packs(Config.load().locales_dir, [])
    unknown = sorted(wanted - set(packs))
    if unknown:
        # a mistyped pack would otherwise run nothing and pass
        raise pytest.UsageError(f"--pack {', '.join(unknown)}: no such pack (packs: {', '.join(sorted(packs))})")
    params = []
    for pack_id, pack in sorted(packs.items()):
        if wanted and pack_id not in wanted:
            continue
        for test in pack.tests:
            marks = []
            known = pack.known_failures.get(test.sentence)
            if known is not None:
                marks.append(pytest.mark.xfail(reason=known.reason, strict=True))
            case_id = f"{pack_id}:{test.file.name}:{test.line}:{test.sentence}"
            params.append(pytest.param((pack, test), id=case_id, marks=marks))
    metafunc.parametrize("pack_case", params)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--pack"):
        return
    keep = [item for item in items if "pack_case" in getattr(item, "fixturenames", ())]
    dropped = [item for item in items if item not in keep]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = keep


MODEL_SKIP = ("not provisioned", "not installed", "models install")
"""Skip reasons that mean something ``make test`` installs is missing (optional extras say "optional")."""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    """Under ``KIOSK_REQUIRE_MODELS=1`` (set by ``make test``) a test skipped for a missing
    model fails instead: the test command installs every model, so such a skip means the
    set-up is broken and a real-engine test silently did not run."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("KIOSK_REQUIRE_MODELS") == "1":
        reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if any(m in reason for m in MODEL_SKIP) and "optional" not in reason:
            report.outcome = "failed"
            report.longrepr = f"model required by make test is missing: {reason}"


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """A small tmpfs to fill up (a full disk) or remount read-only; skips where mounting is not allowed.

    Yields the mount point; ``fill(mount)`` and ``remount(mount, "ro")`` below act on it.
    """
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({proc.stderr.strip() or 'mount failed'})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(mount: Path) -> Path:
    """Fill the disk at ``mount`` completely; returns the filler file (delete it to free the space)."""
    filler = mount / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass  # no space left: that is the point
    finally:
        os.close(fd)
    return filler


def remount(mount: Path, mode: str) -> None:
    """Remount the test disk ``ro`` or ``rw``."""
    import subprocess

    subprocess.run(["mount", "-o", f"remount,{mode}", str(mount)], check=True, capture_output=True)


SHIPPED_PACKS = ("zh-CN", "yue", "zh-CN-sichuan")
"""The locale packs the kiosk ships (and its tests are about)."""


def copy_shipped_locales(dest: Path) -> Path:
    """Copy the shipped packs to ``dest`` and return it. A pack a maintainer is writing
    beside them in ``locales/`` is left out, so their work in progress cannot change what
    these tests see (nor clash with the example packs the tests create)."""
    import shutil

    for pack in SHIPPED_PACKS:
        shutil.copytree(ROOT / "locales" / pack, dest / pack)
    return dest
