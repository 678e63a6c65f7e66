"""``python main.py cash plan`` and ``python main.py cash simulate-history``.

``cash plan`` reads the kiosk's own journal (``--db``, default the kiosk database) or a
history CSV (``--csv``, columns in :mod:`assistant.cash_history`), plans the
remittance cycle and the float standard (:mod:`assistant.cash_plan`), prints the
tables and writes, all together or not at all, into the reports folder::

    cash-plan-<hall>-<date>-<hhmmss>-summary.txt   what the terminal shows
    cash-plan-<hall>-<date>-<hhmmss>-cycles.csv    the cost curve
    cash-plan-<hall>-<date>-<hhmmss>-float.csv     the float standard per kiosk (and the hall total)
    cash-plan-<hall>-<date>-<hhmmss>-chart.png     the cost curve and the float levels over a cycle

The date and time are when the plan was made, in the hall's time zone. A plan never
replaces an earlier one: finance compares plans over time, and a re-run the same day
(other costs, more history) is a new plan; if the names are taken all the same (two
runs in one second), ``-2``, ``-3`` ... is added.

A plan made from the kiosk's own database is also recorded there (``cash_plan``), so
the alerts know the cycle and the float.

``cash simulate-history`` makes a demo history (a CSV in the same format) so the planner
runs on a fresh install; ``--load DB`` also writes it into a fresh database the way
the kiosk's services would have, for reconciliation and the benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

from assistant.backoffice import (
    BackofficeError,
    OutputSet,
    backoffice_section,
    parse_day,
    reports_dir,
    tz,
    yuan,
)
from assistant.cash_history import Transaction, generate, read_csv, read_database, write_csv
from assistant.config import Config
from assistant.errors import StorageError
from assistant.storage import Database, database_path, schema_version_of
from devices.cash import CashConfig, Unit

EXIT_BAD_INPUT = 2
EXIT_NO_PLAN = 3
REPORT_PARTS = ("summary.txt", "cycles.csv", "float.csv", "chart.png")
"""The files of one plan: ``<stem>-<part>``."""


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"{n} is not positive")
    return n


# ============================================================================ cash plan


def register_plan(p: argparse.ArgumentParser) -> None:
    """Arguments of ``cash plan``."""
    src = p.add_mutually_exclusive_group()
    src.add_argument("--csv", help="history CSV (default: the kiosk database)")
    src.add_argument("--db", help="kiosk database to read the journal from (default: [storage] path)")
    p.add_argument("--kiosk", action="append", default=[], help="plan only this kiosk (repeatable)")
    p.add_argument("--hall", help="hall name in the reports (default: [kiosk] hall)")
    p.add_argument("--simulations", type=_positive, help="Monte Carlo cycles (default: [backoffice] simulations)")
    p.add_argument("--seed", type=int, help="Monte Carlo seed (default: [backoffice] seed)")
    p.add_argument("--workers", type=_positive, help="worker processes (default: the cores, at most 4)")
    p.add_argument("--out", help="report folder (default: <data>/<[backoffice] reports_dir>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run_plan)


def run_plan(args: argparse.Namespace, config: Config) -> int:
    """``cash plan``."""
    try:
        return _plan(args, config)
    except BackofficeError as exc:
        print(f"cash plan: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _plan(args: argparse.Namespace, config: Config) -> int:
    from dataclasses import replace

    from assistant.cash_montecarlo import default_workers, shutdown_pools
    from assistant.cash_plan import (
        chart,
        cycle_rows,
        float_rows,
        history_warnings,
        plan_hall,
        summary,
        to_csv,
    )

    section = backoffice_section(config)
    if args.seed is not None:
        section = replace(section, seed=args.seed)
    zone = tz(section)
    db_path: Path | None = None
    if args.csv:
        history = read_csv(Path(args.csv))
        source = args.csv
    else:
        db_path = Path(args.db) if args.db else database_path(config)
        _check_database(db_path, "--db" if args.db else "the kiosk database ([storage] path)")
        history = asyncio.run(_read_db(db_path))
        source = str(db_path)
    if args.kiosk:
        unknown = sorted(set(args.kiosk) - {t.kiosk_id for t in history})
        if unknown:
            raise BackofficeError(f"--kiosk: {', '.join(unknown)} not in {source}")
        history = [t for t in history if t.kiosk_id in args.kiosk]
    if not history:
        raise BackofficeError(f"{source}: no payments to plan from")
    history = _lookback(history, section.lookback_days, zone)
    cash_cfg = config.section("cash", CashConfig)
    hall = args.hall or config.kiosk.hall
    now = datetime.now(zone)
    plan = plan_hall(history, section, zone=zone, hall=hall, auto_credit_limit_fen=cash_cfg.auto_credit_limit_fen,
                     simulations=args.simulations, workers=args.workers or default_workers(),
                     progress=not args.no_progress and sys.stderr.isatty(), made_on=now.date())
    shutdown_pools()
    text = summary(plan)
    folder = Path(args.out) if args.out else reports_dir(config)
    stem = _free_stem(folder, f"cash-plan-{hall}-{now:%Y-%m-%d-%H%M%S}")
    out = OutputSet()
    out.add(folder / f"{stem}-summary.txt", text)
    out.add(folder / f"{stem}-cycles.csv", to_csv(cycle_rows(plan)))
    if plan.days is not None:
        out.add(folder / f"{stem}-float.csv", to_csv(float_rows(plan)))
    out.add(folder / f"{stem}-chart.png", chart(plan))
    written = out.commit()
    print(text, end="")
    print(f"reports (new files, made {now:%Y-%m-%d %H:%M:%S} {zone.key}; earlier plans are kept): "
          f"{', '.join(str(p) for p in written)}")
    for warning in history_warnings(plan):  # again at the end, where the eye lands
        print(f"cash plan: WARNING: {warning}", file=sys.stderr)
    if plan.days is not None and db_path is not None:
        asyncio.run(_save(db_path, plan))
        print(f"plan recorded in {db_path} for the alerts")
    return 0 if plan.days is not None else EXIT_NO_PLAN


def _free_stem(folder: Path, stem: str) -> str:
    """``stem``, or ``stem-2``, ``stem-3`` ... : the first whose report files are all still free."""
    candidate, n = stem, 1
    while any((folder / f"{candidate}-{part}").exists() or (folder / f"{candidate}-{part}").is_symlink()
              for part in REPORT_PARTS):
        n += 1
        candidate = f"{stem}-{n}"
    return candidate


def _check_database(path: Path, what: str) -> None:
    """Refuse a path that is not a kiosk database, before opening it (opening creates and migrates)."""
    hint = "give --csv, or make a demo history with 'cash simulate-history --load DB'"
    if not path.exists():
        raise BackofficeError(f"{what} {path} does not exist; nothing was created ({hint})")
    if path.is_dir():
        raise BackofficeError(f"{what} {path} is a folder, not a database file")
    if path.stat().st_size == 0:
        raise BackofficeError(f"{what} {path} is an empty file, not a kiosk database; it was left as it is ({hint})")
    try:
        version = schema_version_of(path)
    except StorageError as exc:
        raise BackofficeError(f"{what} {exc}; it was left as it is") from None
    if version == 0:
        raise BackofficeError(f"{what} {path} is not a kiosk database (it has no kiosk tables); it was left as "
                              f"it is ({hint})")


async def _read_db(path: Path) -> list[Transaction]:
    async with Database(path) as db:
        return await read_database(db)


def _lookback(history: list[Transaction], days: int, zone) -> list[Transaction]:
    last = max(t.day(zone) for t in history)
    first = last - timedelta(days=days - 1)
    return [t for t in history if t.day(zone) >= first]


async def _save(path: Path, plan) -> None:
    async with Database(path) as db, db.transaction() as tx:
        for k in plan.kiosks:
            std = k.float_standard
            if std is None:
                continue
            body: dict[str, dict[str, int]] = {}
            for line in std.lines:
                body.setdefault(line.unit, {})[str(line.value_fen)] = line.load
            await tx.execute("INSERT INTO cash_plan(kiosk_id, hall, cycle_days, float, service_level) "
                             "VALUES (?, ?, ?, ?, ?)", (k.kiosk_id, plan.hall, std.days,
                                                        json.dumps(body, sort_keys=True), std.service_level))


# ============================================================================ cash simulate-history


def register_simulate(p: argparse.ArgumentParser) -> None:
    """Arguments of ``cash simulate-history``."""
    p.add_argument("--days", type=_positive, default=365, help="days of history (default 365)")
    p.add_argument("--start", help="first day YYYY-MM-DD (default: the days up to yesterday)")
    p.add_argument("--kiosk", action="append", default=[], help="kiosk id (repeatable; default: [kiosk] id)")
    p.add_argument("--per-day", type=float, help="average payments per day per kiosk "
                                                 "(default: [backoffice] demo_payments_per_day)")
    p.add_argument("--seed", type=int, help="seed (default: [backoffice] seed)")
    p.add_argument("--out", help="CSV file to write (default: <reports>/history-<kiosks>-<start>-<days>d.csv)")
    p.add_argument("--load", metavar="DB", help="also write the history into this fresh database (one kiosk)")
    p.add_argument("--cycle-days", type=_positive, default=2,
                   help="with --load: days between collections (default 2)")
    p.add_argument("--float", dest="float_csv", metavar="CSV",
                   help="with --load: the float loaded at each collection, from a cash plan float CSV "
                        "(default: the simulator's [cash] sim_notes and sim_coins)")
    p.set_defaults(func=run_simulate)


def run_simulate(args: argparse.Namespace, config: Config) -> int:
    """``cash simulate-history``."""
    try:
        return _simulate(args, config)
    except BackofficeError as exc:
        print(f"cash simulate-history: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT


def _simulate(args: argparse.Namespace, config: Config) -> int:
    section = backoffice_section(config)
    zone = tz(section)
    start = parse_day(args.start, "--start") if args.start else date.today() - timedelta(days=args.days)
    kiosks = args.kiosk or [config.kiosk.id]
    seed = section.seed if args.seed is None else args.seed
    per_day = args.per_day if args.per_day is not None else section.demo_payments_per_day
    if per_day <= 0:
        raise BackofficeError(f"--per-day must be positive, got {per_day}")
    history: list[Transaction] = []
    for k in kiosks:
        history += generate(args.days, start=start, zone=zone, seed=seed, kiosk_id=k, per_day=per_day,
                            cash_share=section.demo_cash_share)
    history.sort(key=lambda t: t.at)
    path = Path(args.out) if args.out else reports_dir(config) / f"history-{'-'.join(kiosks)}-{start}-{args.days}d.csv"
    if args.load:
        if len(kiosks) != 1:
            raise BackofficeError("--load: a kiosk database holds one kiosk; give a single --kiosk")
        db_path = Path(args.load)
        if db_path.exists():
            raise BackofficeError(f"--load: {db_path} exists; load into a new database file")
    elif args.float_csv:
        raise BackofficeError("--float is the float loaded into the database: give --load DB too")
    floats, float_from = _load_float(args, config, kiosks[0])
    out = OutputSet()
    out.add(path, write_csv(history, zone))
    report = None
    if args.load:
        try:
            report = asyncio.run(_load(Path(args.load), history, config, args.cycle_days, floats))
        except BaseException:
            # nothing partial: a half-loaded database is removed (and the CSV is not written)
            for suffix in ("", "-wal", "-shm"):
                Path(args.load + suffix).unlink(missing_ok=True)
            raise
    out.commit()
    cash = sum(1 for t in history if t.method == "cash")
    print(f"{len(history)} payments ({cash} cash) over {args.days} days from {start} for "
          f"{', '.join(kiosks)}: {path}")
    if report is not None:
        value = sum(v * n for (_, v), n in floats.items())
        print(f"loaded into {args.load}: {report.payments} payments, {report.collections} collections every "
              f"{args.cycle_days} day(s), float {yuan(value)} yuan ({float_from}) loaded at each collection; "
              f"{report.shortfalls} of {cash} cash payments short of change")
        if not args.float_csv and report.shortfalls:
            print("  (the simulator's float is small; `cash plan` recommends one, and `--float` with its "
                  "float CSV replays the history with it)")
    return 0


def _load_float(args: argparse.Namespace, config: Config, kiosk_id: str) -> tuple[dict[tuple[str, int], int], str]:
    """The float loaded at each collection, and where it comes from."""
    from assistant.cash_model import COINS, KEYS, NOTES
    from assistant.cash_plan import read_float_csv

    if args.float_csv:
        floats = read_float_csv(args.float_csv, kiosk_id)
        return {k: floats.get(k, 0) for k in KEYS}, args.float_csv
    cash_cfg = config.section("cash", CashConfig)
    floats = {(NOTES, v): n for v, n in cash_cfg.float_of(Unit.NOTES).items()}
    floats.update({(COINS, v): n for v, n in cash_cfg.float_of(Unit.COINS).items()})
    return {k: floats.get(k, 0) for k in KEYS}, "[cash] sim_notes and sim_coins"


async def _load(path: Path, history: list[Transaction], config: Config, cycle_days: int,
                floats: dict[tuple[str, int], int]):
    from assistant.cash_ledger import load_history
    from assistant.cash_model import Capacities

    section = backoffice_section(config)
    cash_cfg = config.section("cash", CashConfig)
    caps = Capacities(section.store_capacity(), section.cashbox_capacity, section.hopper_capacity())
    async with Database(path) as db:
        return await load_history(db, history, zone=tz(section), float_counts=floats, capacities=caps,
                                  cycle_days=cycle_days, auto_credit_limit_fen=cash_cfg.auto_credit_limit_fen,
                                  progress=sys.stderr.isatty())
