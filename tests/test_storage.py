"""Storage: WAL, migrations, BEGIN IMMEDIATE, append-only journal, corrupt files."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from assistant.errors import StorageError
from assistant.storage import SCHEMA_VERSION, Database


async def test_new_database_is_wal_and_migrated(db: Database) -> None:
    assert await db.version() == SCHEMA_VERSION
    row = await db.fetchone("PRAGMA journal_mode")
    assert row[0] == "wal"
    tables = {r[0] for r in await db.fetchall("SELECT name FROM sqlite_master WHERE type='table'")}
    for t in ("login_user", "person", "ewallet_account", "quickpay_account", "electricity_account",
              "billing_bill", "journal", "cash_unit", "staff", "consent"):
        assert t in tables


async def test_reopen_keeps_version_and_data(tmp_path) -> None:
    path = tmp_path / "k.db"
    async with Database(path) as d, d.transaction() as tx:
        await tx.execute("INSERT INTO login_user(uid, phone) VALUES ('u1', '13800138000')")
    async with Database(path) as d:
        assert await d.version() == SCHEMA_VERSION
        row = await d.fetchone("SELECT phone FROM login_user WHERE uid='u1'")
        assert row["phone"] == "13800138000"


async def test_journal_is_append_only(db: Database) -> None:
    async with db.transaction() as tx:
        await tx.execute("INSERT INTO payment(id, account_no, method, due_fen, kiosk_id) "
                         "VALUES ('p1', '1001', 'cash', 100, 'K1')")
        await tx.execute("INSERT INTO journal(payment_id, step, state) VALUES ('p1', 'open', 'done')")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        async with db.transaction() as tx:
            await tx.execute("UPDATE journal SET step = 'x'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        async with db.transaction() as tx:
            await tx.execute("DELETE FROM journal")
    rows = await db.fetchall("SELECT step FROM journal")
    assert [r[0] for r in rows] == ["open"]


async def test_failed_transaction_rolls_back(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO login_user(uid, phone) VALUES ('u2', '1')")
            raise RuntimeError("boom")
    assert await db.fetchone("SELECT 1 FROM login_user WHERE uid='u2'") is None


async def test_concurrent_writers_both_commit(tmp_path) -> None:
    """Two connections doing read-then-write at once: neither sees 'database is locked'."""
    path = tmp_path / "c.db"
    a, b = Database(path), Database(path)
    await a.open()
    await b.open()
    try:
        async def bump(d: Database, n: int) -> None:
            for i in range(20):
                async with d.transaction() as tx:
                    cur = await tx.execute("SELECT count(*) FROM login_user")
                    (count,) = await cur.fetchone()
                    await asyncio.sleep(0)
                    await tx.execute("INSERT INTO login_user(uid, phone) VALUES (?, ?)",
                                     (f"u{n}-{i}", f"p{n}-{i}-{count}"))
        await asyncio.gather(bump(a, 1), bump(b, 2))
        row = await a.fetchone("SELECT count(*) FROM login_user")
        assert row[0] == 40
    finally:
        await a.close()
        await b.close()


async def test_corrupt_file_is_a_clear_error(tmp_path) -> None:
    path = tmp_path / "bad.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StorageError, match="bad.db") as err:
        await Database(path).open()
    assert "backup" in str(err.value)


async def test_newer_schema_is_refused(tmp_path) -> None:
    path = tmp_path / "new.db"
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    con.close()
    with pytest.raises(StorageError, match="newer than this software"):
        await Database(path).open()


async def test_a_full_disk_is_not_called_a_corrupt_database(tiny_disk) -> None:
    """A full disk makes SQLite fail with an I/O error. Staff must be told to free space - not to
    restore a backup or move the database aside, which would lose the open payments' journal."""
    from tests.conftest import fill

    path = tiny_disk / "kiosk.db"
    async with Database(path) as d, d.transaction() as tx:
        await tx.execute("INSERT INTO login_user(uid, phone) VALUES ('u1', '13800138000')")
    filler = fill(tiny_disk)
    with pytest.raises(StorageError) as err:
        await Database(path).open()
    message = str(err.value)
    assert "space" in message and str(path) in message
    assert "backup" not in message and "aside" not in message
    filler.unlink()
    async with Database(path) as d:  # nothing was lost
        assert (await d.fetchone("SELECT phone FROM login_user WHERE uid='u1'"))[0] == "13800138000"


async def test_a_read_only_data_folder_is_named_as_such(tiny_disk) -> None:
    from tests.conftest import remount

    path = tiny_disk / "kiosk.db"
    async with Database(path):
        pass
    remount(tiny_disk, "ro")
    try:
        with pytest.raises(StorageError) as err:
            await Database(path).open()
        assert "read-only" in str(err.value) and "backup" not in str(err.value)
    finally:
        remount(tiny_disk, "rw")


async def test_the_disk_filling_up_while_running_is_a_storage_error(tiny_disk) -> None:
    """A write that fails for lack of space is a StorageError (the kiosk then says it is out of
    service) and leaves the connection usable once there is room again."""
    from tests.conftest import fill

    async with Database(tiny_disk / "kiosk.db") as d:
        filler = fill(tiny_disk)
        with pytest.raises(StorageError, match="full"):
            async with d.transaction() as tx:
                await tx.execute("INSERT INTO login_user(uid, phone) VALUES ('u3', '13700137000')")
                await tx.execute("CREATE TABLE big AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL "
                                 "SELECT i + 1 FROM n WHERE i < 20000) SELECT i, hex(randomblob(64)) FROM n")
        filler.unlink()
        async with d.transaction() as tx:
            await tx.execute("INSERT INTO login_user(uid, phone) VALUES ('u4', '13600136000')")
        assert (await d.fetchone("SELECT count(*) FROM login_user"))[0] == 1
