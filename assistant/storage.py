"""SQLite storage through aiosqlite: WAL, ``BEGIN IMMEDIATE`` writes, versioned migrations.

Why ``BEGIN IMMEDIATE``: a deferred transaction that reads and then writes fails at
once with "database is locked" when another connection wrote in between; taking
the write lock up front makes concurrent writers wait (up to ``busy_timeout``)
instead. Every write in the kiosk goes through :meth:`Database.transaction`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import sqlite3
import urllib.parse
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from assistant.config import Config
from assistant.errors import StorageError

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 10_000
ENVIRONMENT_ERRORS = ("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM")
"""SQLite errors caused by the disk or folder, not by the file's contents."""
LOW_SPACE_BYTES = 1 << 20
"""Less free space than this is reported as a full disk."""

# Each migration is a list of statements; the index + 1 is the schema version it
# produces. Never edit a migration that has shipped: add a new one.
MIGRATIONS: list[tuple[str, ...]] = [
    # 1: the four-account model, billing ledger, payment journal, cash units, staff, consent
    (
        # --- four-account model -----------------------------------------------------
        """CREATE TABLE login_user (
            id INTEGER PRIMARY KEY,
            uid TEXT NOT NULL UNIQUE,              -- unified user id
            phone TEXT NOT NULL UNIQUE,            -- login by phone number
            default_method TEXT NOT NULL DEFAULT 'cash'
                CHECK (default_method IN ('cash', 'card', 'ewallet')),
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        )""",
        """CREATE TABLE person (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL UNIQUE REFERENCES login_user(id),
            name TEXT NOT NULL,                     -- shown and spoken masked only
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        )""",
        """CREATE TABLE ewallet_account (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL UNIQUE REFERENCES login_user(id),
            wallet_no TEXT NOT NULL UNIQUE,
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        )""",
        """CREATE TABLE quickpay_account (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES login_user(id),
            card_token TEXT NOT NULL UNIQUE,        -- from the bank; never the card number
            card_last4 TEXT NOT NULL CHECK (length(card_last4) = 4),
            issuer TEXT NOT NULL DEFAULT '',
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        )""",
        """CREATE TABLE electricity_account (
            id INTEGER PRIMARY KEY,
            account_no TEXT NOT NULL UNIQUE,        -- 户号, digits, leading zeros kept
            user_id INTEGER REFERENCES login_user(id),
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        )""",
        """CREATE TABLE face_embedding (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES login_user(id),
            model_id TEXT NOT NULL,
            embedding BLOB NOT NULL,                -- encrypted unit vector
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        )""",
        "CREATE INDEX face_embedding_model ON face_embedding(model_id)",
        """CREATE TABLE consent (
            id INTEGER PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES login_user(id),
            purpose TEXT NOT NULL,                  -- 'face'
            granted INTEGER NOT NULL CHECK (granted IN (0, 1)),
            staff_id INTEGER REFERENCES staff(id),
            at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        )""",
        # --- staff and audit ----------------------------------------------------------
        """CREATE TABLE staff (
            id INTEGER PRIMARY KEY,
            staff_no TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('hall', 'bank', 'admin')),
            pin_hash TEXT NOT NULL,                 -- scrypt, salted
            user_id INTEGER REFERENCES login_user(id),  -- face enrolment for verification
            active INTEGER NOT NULL DEFAULT 1
        )""",
        """CREATE TABLE audit_log (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
            staff_id INTEGER,
            action TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '{}',
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL
        )""",
        # --- embedded billing ledger (the default Billing backend) --------------------
        """CREATE TABLE billing_customer (
            account_no TEXT PRIMARY KEY,
            holder_name TEXT NOT NULL,
            address TEXT NOT NULL DEFAULT '',
            prepaid_fen INTEGER NOT NULL DEFAULT 0 CHECK (prepaid_fen >= 0)
        )""",
        """CREATE TABLE billing_bill (
            id INTEGER PRIMARY KEY,
            account_no TEXT NOT NULL REFERENCES billing_customer(account_no),
            period TEXT NOT NULL,                   -- YYYY-MM
            amount_fen INTEGER NOT NULL CHECK (amount_fen > 0),
            paid_fen INTEGER NOT NULL DEFAULT 0 CHECK (paid_fen >= 0),
            UNIQUE (account_no, period)
        )""",
        """CREATE TABLE billing_posting (
            id INTEGER PRIMARY KEY,
            reference TEXT NOT NULL UNIQUE,         -- idempotency key from the kiosk
            account_no TEXT NOT NULL REFERENCES billing_customer(account_no),
            kind TEXT NOT NULL CHECK (kind IN ('payment', 'prepayment')),
            amount_fen INTEGER NOT NULL CHECK (amount_fen > 0),
            channel TEXT NOT NULL,
            kiosk_id TEXT NOT NULL,
            at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        )""",
        # --- payments: header + append-only journal ------------------------------------
        """CREATE TABLE payment (
            id TEXT PRIMARY KEY,                    -- uuid, also the idempotency key
            account_no TEXT NOT NULL,
            user_id INTEGER,
            method TEXT NOT NULL CHECK (method IN ('cash', 'card', 'ewallet')),
            due_fen INTEGER NOT NULL CHECK (due_fen >= 0),
            kiosk_id TEXT NOT NULL,
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        )""",
        """CREATE TABLE journal (
            id INTEGER PRIMARY KEY,
            payment_id TEXT NOT NULL REFERENCES payment(id),
            step TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('intent', 'done', 'failed', 'info')),
            amount_fen INTEGER NOT NULL DEFAULT 0,
            detail TEXT NOT NULL DEFAULT '{}',
            at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        )""",
        "CREATE INDEX journal_payment ON journal(payment_id, id)",
        # append-only: the journal is never updated or deleted
        """CREATE TRIGGER journal_no_update BEFORE UPDATE ON journal
           BEGIN SELECT RAISE(ABORT, 'journal is append-only'); END""",
        """CREATE TRIGGER journal_no_delete BEFORE DELETE ON journal
           BEGIN SELECT RAISE(ABORT, 'journal is append-only'); END""",
        # --- cash units ---------------------------------------------------------------
        """CREATE TABLE cash_unit (
            unit TEXT NOT NULL,                     -- 'notes' (recycler) or 'coins' (hopper)
            denomination_fen INTEGER NOT NULL CHECK (denomination_fen > 0),
            count INTEGER NOT NULL CHECK (count >= 0),
            capacity INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (unit, denomination_fen)
        )""",
        """CREATE TABLE cash_movement (
            id INTEGER PRIMARY KEY,
            unit TEXT NOT NULL,
            denomination_fen INTEGER NOT NULL,
            delta INTEGER NOT NULL,
            reason TEXT NOT NULL,                   -- stacked, dispensed, exchange_out, exchange_in
            payment_id TEXT,
            at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        )""",
        """CREATE TABLE receipt (
            payment_id TEXT PRIMARY KEY REFERENCES payment(id),
            body TEXT NOT NULL,                     -- JSON of the receipt fields
            at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        )""",
    ),
    # 2: cassette exchanges under dual control (counts out and in, both staff recorded)
    (
        """CREATE TABLE cash_exchange (
            id INTEGER PRIMARY KEY,
            unit TEXT NOT NULL,                     -- notes, coins or cashbox
            state TEXT NOT NULL CHECK (state IN ('open', 'closed')),
            bank_staff_id INTEGER NOT NULL REFERENCES staff(id),
            hall_staff_id INTEGER NOT NULL REFERENCES staff(id),
            expected_out TEXT NOT NULL,             -- JSON fen -> count the books expected
            counted_out TEXT NOT NULL,              -- JSON fen -> count found (unit / staff count)
            counts_in TEXT,                         -- JSON fen -> count the bank staff loaded
            device_in TEXT,                         -- JSON fen -> count the unit reports after loading
            end_bank_staff_id INTEGER REFERENCES staff(id),
            end_hall_staff_id INTEGER REFERENCES staff(id),
            started_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
            ended_at TEXT
        )""",
        # at most one open exchange per unit: that row is the unit's lock
        "CREATE UNIQUE INDEX cash_exchange_open ON cash_exchange(unit) WHERE state = 'open'",
        "CREATE INDEX cash_movement_payment ON cash_movement(payment_id)",
    ),
    # 3: back office: unit counts for reconciliation, cash plans, alerts; indexes for daily reads
    (
        """CREATE TABLE cash_count (
            id INTEGER PRIMARY KEY,
            unit TEXT NOT NULL,                     -- notes, coins or cashbox
            denomination_fen INTEGER NOT NULL CHECK (denomination_fen > 0),
            count INTEGER NOT NULL CHECK (count >= 0),
            source TEXT NOT NULL,                   -- device (the unit's own levels) or hand
            at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        )""",
        "CREATE INDEX cash_count_at ON cash_count(at)",
        """CREATE TABLE cash_plan (
            id INTEGER PRIMARY KEY,
            kiosk_id TEXT NOT NULL,
            hall TEXT NOT NULL,
            cycle_days INTEGER NOT NULL CHECK (cycle_days > 0),
            float TEXT NOT NULL,                    -- JSON unit -> fen -> pieces to load
            service_level REAL NOT NULL,
            made_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        )""",
        """CREATE TABLE alert (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,                     -- change_low, cashbox_full, hopper_full, insured_limit, fault
            subject TEXT NOT NULL,                  -- what it is about, e.g. notes:1000
            detail TEXT NOT NULL DEFAULT '{}',      -- JSON: the figures and the recommended action
            raised_at TEXT NOT NULL,
            notified_at TEXT,
            cleared_at TEXT,
            acknowledged_at TEXT,
            acknowledged_by INTEGER REFERENCES staff(id)
        )""",
        "CREATE INDEX alert_active ON alert(kind, subject) WHERE cleared_at IS NULL",
        "CREATE INDEX payment_created ON payment(created_at)",
        "CREATE INDEX billing_posting_at ON billing_posting(at)",
        "CREATE INDEX cash_movement_at ON cash_movement(at)",
    ),
    # 4: a face consent decision (granted or withdrawn) always names the staff member who
    # recorded it; a tool that forgot to say who is stopped here, not trusted
    (
        """CREATE TRIGGER consent_needs_staff BEFORE INSERT ON consent
            WHEN NEW.staff_id IS NULL
            BEGIN SELECT RAISE(ABORT, 'a consent record needs the staff member who recorded it'); END""",
        """CREATE TRIGGER consent_keeps_staff BEFORE UPDATE OF staff_id ON consent
            WHEN NEW.staff_id IS NULL
            BEGIN SELECT RAISE(ABORT, 'a consent record needs the staff member who recorded it'); END""",
    ),
]

SCHEMA_VERSION = len(MIGRATIONS)


@dataclass(frozen=True)
class StorageSection:
    """The ``[storage]`` config section."""

    path: str = "var/kiosk.db"
    """The SQLite database file (relative to the project root, or absolute)."""


def database_path(config: Config) -> Path:
    """Where the kiosk database lives; under ``KIOSK_DATA_DIR`` when that is set."""
    section = config.section("storage", StorageSection)
    if os.environ.get("KIOSK_DATA_DIR") and not Path(section.path).is_absolute():
        return config.data_dir / Path(section.path).name
    return config.resolve(section.path)


def schema_version_of(path: Path) -> int:
    """The schema version of an existing file, read without changing or creating anything.

    0 means an SQLite file (or an empty one) the kiosk never set up: not a kiosk database.

    Raises:
        StorageError: the file is not an SQLite database at all.
    """
    uri = "file:" + urllib.parse.quote(str(Path(path).resolve())) + "?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
        try:
            return int(conn.execute("PRAGMA user_version").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"{path}: not a database ({exc})") from None


class Database:
    """An aiosqlite connection with the kiosk's pragmas and write discipline.

    Args:
        path: the SQLite file (created if missing).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._conn: aiosqlite.Connection | None = None
        # one connection runs one transaction at a time: without this, two coroutines
        # sharing the connection fail with "cannot start a transaction within a transaction"
        self._tx_lock = asyncio.Lock()

    async def open(self) -> Database:
        """Open, check integrity, set pragmas and run pending migrations."""
        if self.path.is_dir():
            # SQLite says "unable to open database file", which reads like a disk problem
            raise StorageError(f"{self.path}: is a folder, not a database file")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._conn = await aiosqlite.connect(self.path, isolation_level=None)
            self._conn.row_factory = aiosqlite.Row
            await self._conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            mode = await self._scalar("PRAGMA journal_mode = WAL")
            if str(mode).lower() != "wal":
                log.warning("journal_mode is %s, not WAL", mode)
            await self._conn.execute("PRAGMA synchronous = FULL")
            await self._conn.execute("PRAGMA foreign_keys = ON")
            ok = await self._scalar("PRAGMA quick_check")
            if ok != "ok":
                raise StorageError(f"{self.path}: database failed its integrity check: {ok}")
            await self.migrate()
        except sqlite3.DatabaseError as exc:
            await self.close()
            problem = self._environment_problem(exc)
            if problem:
                raise StorageError(problem) from None
            raise StorageError(
                f"{self.path}: cannot use the database ({exc}); restore it from the last "
                "backup or move it aside to start a new one"
            ) from None
        except BaseException:
            await self.close()
            raise
        return self

    def _environment_problem(self, exc: BaseException) -> str:
        """What to tell staff when SQLite fails because of where the file lives ("" otherwise).

        A full disk or a read-only folder makes SQLite report I/O errors that look like a
        damaged file; the advice for a damaged file (restore a backup, move it aside) would
        throw away the journal of payments still open, so these are named for what they are.
        """
        name = str(getattr(exc, "sqlite_errorname", ""))
        if not name.startswith(ENVIRONMENT_ERRORS):
            return ""
        folder = self.path.parent
        if not os.access(folder, os.W_OK):
            cause = f"the folder {folder} is read-only"
        else:
            try:
                free = shutil.disk_usage(folder).free
            except OSError:
                free = -1
            cause = (f"the disk holding {folder} is full ({free} bytes free)" if 0 <= free < LOW_SPACE_BYTES
                     else f"check free space and write access of {folder}")
        return (f"{self.path}: cannot write the database ({exc}): {cause}. Free some space or make "
                "the folder writable; the database file itself is kept as it is (do not move it).")

    async def close(self) -> None:
        """Close the connection (safe to call twice)."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None

    async def __aenter__(self) -> Database:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def conn(self) -> aiosqlite.Connection:
        """The open connection."""
        if self._conn is None:
            raise StorageError(f"{self.path}: database is not open")
        return self._conn

    async def version(self) -> int:
        """The schema version recorded in the file."""
        return int(await self._scalar("PRAGMA user_version"))

    async def migrate(self) -> int:
        """Apply every migration newer than the file's version; returns the new version."""
        current = await self.version()
        if current > SCHEMA_VERSION:
            raise StorageError(
                f"{self.path}: schema version {current} is newer than this software "
                f"({SCHEMA_VERSION}); update the kiosk software"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            async with self.transaction() as tx:
                for stmt in MIGRATIONS[version - 1]:
                    await tx.execute(stmt)
                await tx.execute(f"PRAGMA user_version = {version}")
            log.info("database %s migrated to schema version %d", self.path, version)
        return SCHEMA_VERSION

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction taken with ``BEGIN IMMEDIATE``; commits or rolls back.

        Coroutines sharing this connection take turns; other connections wait for the
        write lock up to ``busy_timeout``.
        """
        async with self._tx_lock:
            conn = self.conn
            try:
                await conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                self._raise_environment(exc)
                raise
            try:
                yield conn
            except BaseException as exc:
                # SQLite may already have rolled back (a full disk does): rolling back again
                # would fail and hide the real error
                if conn.in_transaction:
                    await conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.OperationalError):
                    self._raise_environment(exc)
                raise
            else:
                try:
                    await conn.execute("COMMIT")
                except sqlite3.OperationalError as exc:
                    if conn.in_transaction:
                        await conn.execute("ROLLBACK")
                    self._raise_environment(exc)
                    raise

    def _raise_environment(self, exc: sqlite3.OperationalError) -> None:
        """Raise :class:`StorageError` if ``exc`` comes from a full disk or a read-only folder."""
        problem = self._environment_problem(exc)
        if problem:
            raise StorageError(problem) from exc

    async def fetchall(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[Any]:
        """Run a read query and return all rows (``sqlite3.Row``)."""
        async with self.conn.execute(sql, params) as cur:
            return list(await cur.fetchall())

    async def fetchone(self, sql: str, params: Sequence[Any] | dict[str, Any] = ()) -> Any:
        """Run a read query and return the first row or None."""
        async with self.conn.execute(sql, params) as cur:
            return await cur.fetchone()

    async def _scalar(self, sql: str, params: Iterable[Any] = ()) -> Any:
        async with self.conn.execute(sql, tuple(params)) as cur:
            row = await cur.fetchone()
        return row[0] if row else None


async def open_database(path: str | Path) -> Database:
    """Open (creating and migrating as needed) the kiosk database at ``path``."""
    return await Database(path).open()
