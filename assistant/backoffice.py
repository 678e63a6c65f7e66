"""Back-office settings and helpers shared by cash planning, reconciliation and alerts.

Business days: every date in the back office is the kiosk's **business day in local
time** (``[backoffice] timezone``, default ``Asia/Shanghai``): a payment opened at
23:59 local time belongs to that day even though the database stores UTC
timestamps (``...Z``). That is how a service hall closes its day and how Chinese
banks cut their settlement files (Beijing time), so the kiosk's day, the billing
day and the bank's day line up. :func:`day_window` turns a business day into the
UTC interval the database is queried with.

Reports are written all-or-nothing (:class:`OutputSet`): files are rendered in
memory, written to temporary names beside their targets and only renamed into
place once every one of them was written, so a bad input never leaves a partial
report behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from assistant.config import Config
from assistant.errors import ConfigError, KioskError

NOTE_VALUES = (100, 500, 1000, 2000, 5000, 10000)
"""RMB notes the recycler takes and pays (fen): 1, 5, 10, 20, 50, 100 元."""
COIN_VALUES = (10, 50, 100)
"""RMB coins the hopper takes and pays (fen): 1 角, 5 角, 1 元."""

_NOTE_CAPACITY = MappingProxyType({str(v): 100 for v in NOTE_VALUES})
_COIN_CAPACITY = MappingProxyType({str(v): 1000 for v in COIN_VALUES})
_CYCLES = (1, 2, 3, 4, 5, 6, 7, 10, 14, 21, 28)


class BackofficeError(KioskError):
    """Bad input to a back-office command (the message names the file, row or field)."""


@dataclass(frozen=True)
class BackofficeSection:
    """The ``[backoffice]`` section: costs and limits for cash planning and reports."""

    timezone: str = "Asia/Shanghai"
    """The kiosk's local time zone; business days run from local midnight to midnight."""
    escort_cost_fen: int = 30_000
    """Cost of one cash-escort visit (collection and refill), in fen."""
    holding_cost_per_yuan_day: float = 0.0002
    """Daily cost of holding one yuan in the kiosk (cost of money plus insurance), as a rate."""
    note_capacity: dict[str, int] = field(default_factory=lambda: dict(_NOTE_CAPACITY))
    """Recycler payout store: notes of each denomination (fen -> pieces) it holds."""
    cashbox_capacity: int = 1000
    """Recycler cashbox: notes it holds in all (notes the store has no room for go here)."""
    coin_capacity: dict[str, int] = field(default_factory=lambda: dict(_COIN_CAPACITY))
    """Coin hopper: coins of each denomination (fen -> pieces) it holds."""
    insured_limit_fen: int = 5_000_000
    """Most cash one kiosk may hold under its insurance, in fen."""
    service_level: float = 0.95
    """Share of remittance cycles that must pass without change running out (and within limits)."""
    cycles_days: tuple[int, ...] = _CYCLES
    """Remittance cycles (days between collections) the planner compares."""
    simulations: int = 2000
    """Monte Carlo cycles per float evaluation."""
    seed: int = 20240601
    """Seed of the Monte Carlo and of the demo history (same seed, same plan)."""
    lookback_days: int = 365
    """How much of the kiosk's own history the planner reads (days before the last one)."""
    min_history_days: int = 28
    """Less history than this (days, first to last payment) makes a plan unreliable, and the
    plan says so: four weeks show each weekday four times, and the float is resampled from
    the days there are, so a few days give a float fitted to those few days."""
    min_cash_payments: int = 100
    """Fewer cash payments than this make a plan unreliable (and it says so), however many days."""
    reports_dir: str = "reports"
    """Where plans and reconciliation reports go (relative to the kiosk data folder)."""
    demo_payments_per_day: float = 137.0
    """Demo history: average payments per day (about 50 000 a year)."""
    demo_cash_share: float = 0.75
    """Demo history: share of payments made in cash."""

    def __post_init__(self) -> None:
        where = "[backoffice]"
        if self.escort_cost_fen < 0 or self.insured_limit_fen <= 0 or self.cashbox_capacity <= 0:
            raise ConfigError(f"{where} escort_cost_fen, insured_limit_fen and cashbox_capacity must be positive")
        if not 0 <= self.holding_cost_per_yuan_day < 1:
            raise ConfigError(f"{where} holding_cost_per_yuan_day must be a daily rate in [0, 1)")
        if not 0.5 <= self.service_level < 1:
            raise ConfigError(f"{where} service_level must be in [0.5, 1), got {self.service_level}")
        if not self.cycles_days or any(c < 1 for c in self.cycles_days):
            raise ConfigError(f"{where} cycles_days must list whole days >= 1")
        if self.simulations < 10:
            raise ConfigError(f"{where} simulations must be at least 10")
        if self.min_history_days < 1 or self.min_cash_payments < 1:
            raise ConfigError(f"{where} min_history_days and min_cash_payments must be at least 1")
        for name, table, values in (("note_capacity", self.note_capacity, NOTE_VALUES),
                                    ("coin_capacity", self.coin_capacity, COIN_VALUES)):
            for key, n in table.items():
                if not key.isdigit() or int(key) not in values or n < 0:
                    raise ConfigError(f"{where} {name}: '{key}' = {n} is not a denomination in fen = pieces")
        tz(self)

    @property
    def holding_rate(self) -> Decimal:
        """The holding rate as an exact decimal (the float from TOML, read as written)."""
        return Decimal(repr(self.holding_cost_per_yuan_day))

    def store_capacity(self) -> dict[int, int]:
        """Recycler store capacity, fen -> pieces (denominations not listed hold 0)."""
        return {int(k): int(v) for k, v in self.note_capacity.items()}

    def hopper_capacity(self) -> dict[int, int]:
        """Hopper capacity, fen -> pieces."""
        return {int(k): int(v) for k, v in self.coin_capacity.items()}


def backoffice_section(config: Config) -> BackofficeSection:
    """The ``[backoffice]`` section of ``config``."""
    return config.section("backoffice", BackofficeSection)


def hall_zone(config: Config) -> ZoneInfo:
    """The hall's time zone (``[backoffice] timezone``): business days and printed times."""
    return tz(backoffice_section(config))


def tz(section: BackofficeSection) -> ZoneInfo:
    """The kiosk's time zone."""
    try:
        return ZoneInfo(section.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"[backoffice] timezone {section.timezone!r} is not a known time zone") from None


def parse_day(text: str, what: str = "--date") -> date:
    """A business day given as ``YYYY-MM-DD`` (a clear error otherwise)."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BackofficeError(f"{what}: {text!r} is not a date (YYYY-MM-DD)") from None


def day_window(day: date, zone: ZoneInfo) -> tuple[str, str]:
    """The UTC interval ``[start, end)`` of one local business day, as database timestamps."""
    start = datetime.combine(day, time(0), zone)
    end = datetime.combine(day + timedelta(days=1), time(0), zone)
    return utc_stamp(start), utc_stamp(end)


def utc_stamp(moment: datetime) -> str:
    """A timezone-aware moment as the database writes timestamps (``YYYY-MM-DDTHH:MM:SS.fffZ``)."""
    u = moment.astimezone(UTC)
    return u.strftime("%Y-%m-%dT%H:%M:%S.") + f"{u.microsecond // 1000:03d}Z"


def parse_stamp(text: str) -> datetime:
    """A database timestamp (UTC, ``Z``) or an ISO time with offset, as an aware datetime."""
    t = text.strip()
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    moment = datetime.fromisoformat(t)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment


def business_day(stamp: str, zone: ZoneInfo) -> date:
    """The local business day a database timestamp falls on."""
    return parse_stamp(stamp).astimezone(zone).date()


def yuan(fen: int) -> str:
    """Fen as yuan with two decimals (``12345`` -> ``123.45``); the one place reports format money."""
    sign = "-" if fen < 0 else ""
    fen = abs(int(fen))
    return f"{sign}{fen // 100}.{fen % 100:02d}"


def denomination(fen: int) -> str:
    """A denomination for tables: ``100`` for 100 元, ``0.5`` for 5 角."""
    return str(fen // 100) if fen % 100 == 0 else f"{fen / 100:g}"


def reports_dir(config: Config) -> Path:
    """The reports folder (not created here: :class:`OutputSet` creates it on commit)."""
    p = Path(backoffice_section(config).reports_dir)
    return p if p.is_absolute() else config.data_dir / p


class OutputSet:
    """Files of one report, written all together or not at all."""

    def __init__(self) -> None:
        self._files: dict[Path, bytes] = {}

    def add(self, path: Path, data: bytes | str) -> Path:
        """Stage a file (text is written as UTF-8)."""
        self._files[Path(path)] = data.encode("utf-8") if isinstance(data, str) else data
        return Path(path)

    @property
    def paths(self) -> tuple[Path, ...]:
        """The staged files."""
        return tuple(self._files)

    def commit(self) -> tuple[Path, ...]:
        """Write every staged file: temporary names first, then rename them all into place.

        Nothing is left behind when a write fails (a full disk, a folder in the way): not
        the temporary files, not some of the reports without the others. The error names
        the report file that could not be written.
        """
        temps: list[tuple[Path, Path]] = []
        try:
            for path, data in self._files.items():
                if path.is_dir():
                    # checked before anything is written: a rename onto it would fail only
                    # after the files before it were already in place
                    raise IsADirectoryError(errno.EISDIR, "a folder is in the way of the report", str(path))
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
                temps.append((tmp, path))  # before writing: a write cut short leaves a file too
                try:
                    tmp.write_bytes(data)
                except OSError as exc:
                    raise type(exc)(exc.errno, exc.strerror, str(path)) from None
        except BaseException:
            for tmp, _ in temps:
                with contextlib.suppress(OSError):
                    tmp.unlink(missing_ok=True)
            raise
        for tmp, path in temps:
            os.replace(tmp, path)
        return tuple(path for _, path in temps)


def fen_table(raw: Mapping[str, int]) -> dict[int, int]:
    """A TOML/JSON ``{"fen": count}`` table as ``{fen: count}``."""
    return {int(k): int(v) for k, v in raw.items()}
