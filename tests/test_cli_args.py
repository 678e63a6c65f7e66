"""``main.py`` with odd arguments: each ends with one clear line and a non-zero code, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.cli import main


def test_config_file_that_is_not_utf8_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "kiosk.toml"
    bad.write_bytes(b"[kiosk]\nid = \"K\xff01\"\n")
    assert main(["--config", str(bad), "db", "check"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"main.py db: {bad}: not UTF-8 text (invalid start byte at byte 15)"


def test_database_path_that_is_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "kiosk.db"
    folder.mkdir()
    assert main(["reconcile", "--date", "2025-01-01", "--db", str(folder)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"main.py reconcile: {folder}: is a folder, not a database file"
    assert list(folder.iterdir()) == []  # nothing made inside it


def test_vocabulary_file_that_is_not_utf8_text(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    words = tmp_path / "words.txt"
    words.write_bytes(b"\xff\xfe<eps> 0\n")
    assert main(["locales", "check", "--words", str(words)]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"main.py locales: {words}: not UTF-8 text (invalid start byte at byte 0)"


def test_an_unforeseen_failure_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a command trips over, the operator sees one line naming it and a non-zero code."""
    import assistant.storage_cli as storage_cli

    def broken(args, config):
        raise ValueError("a value nobody expected")

    monkeypatch.setattr(storage_cli, "run", broken)
    assert main(["db", "check"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == ("main.py db: unexpected ValueError: a value nobody expected "
                   "(run again with -v for the details)")


def test_db_check_reports_consent_records_without_a_staff_member(tmp_path: Path, config,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Consent decisions written before each one had to name its staff member are listed, so the
    hall can confirm them; the database itself is sound (exit 0)."""
    import asyncio

    from assistant.storage import Database, database_path

    async def old_row() -> None:
        async with Database(database_path(config)) as db, db.transaction() as tx:
            await tx.execute("INSERT INTO login_user(uid, phone) VALUES ('U1', '13800138000')")
            await tx.execute("DROP TRIGGER consent_needs_staff")  # as in a database of before
            await tx.execute("INSERT INTO consent(user_id, purpose, granted, at) "
                             "VALUES (1, 'face', 1, '2026-01-02T03:04:05Z')")

    asyncio.run(old_row())
    assert main(["db", "check"]) == 0
    err = capsys.readouterr().err
    assert "consent record 1 (customer 1, granted 2026-01-02T03:04:05Z) names no staff member" in err


def test_a_reader_that_goes_away_is_not_an_error(capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """``main.py cash levels | head -1``: the pipe closes under the command; no error line."""
    import assistant.storage_cli as storage_cli

    def reader_gone(args, config):
        raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(storage_cli, "run", reader_gone)
    monkeypatch.setattr("os.dup2", lambda fd, fd2: None)  # keep pytest's own stdout
    assert main(["db", "check"]) == 0
    assert capsys.readouterr().err == ""
