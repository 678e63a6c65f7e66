"""``python main.py cash ...``: cash unit levels and cassette exchange.

Sub-commands live in :data:`SUBCOMMANDS` (name -> help, registrar); a registrar adds its
arguments and sets ``func(args, config) -> int``. Planning tools (``plan``,
``simulate-history``) plug in the same way.

With ``[cash] simulate = true`` the commands start the simulator (its state file keeps
the cassette counts between runs) and also perform the bank staff's physical part of
an exchange on it (taking the cassette out, loading the declared counts), so the whole
procedure can be rehearsed without hardware. While the kiosk runs its own simulator on
the same state file, no second one is started (it would take over the kiosk's port link
and control socket): ``levels`` reads the running one, ``exchange`` is refused.

A kiosk's data folder holds its database and its cash state together (``kiosk.db``
beside ``cash/sim.json``, ``cash/ssp.tty``, ``cash/sim.sock``). ``--db`` naming another
kiosk's database therefore takes the simulator files from that database's folder
(:func:`cash_home`); a database that does not own a cash state of its own (one beside
this kiosk's database, or under another name) is refused, so one kiosk's books are never
compared with, or booked against, another kiosk's cassettes.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import getpass
import sys
import termios
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from assistant import cash_journal
from assistant.cassette import CassetteExchange, ExchangeReport, report_from_row
from assistant.config import Config
from assistant.errors import CashStateMismatch, CassetteError
from assistant.staff import StaffLocked, StaffVerificationFailed
from assistant.storage import Database, database_path
from devices.cash import CashConfig, CashUnits, Unit, create_cash_units, resolve

Registrar = Callable[[argparse.ArgumentParser], None]

DB_HELP = ("kiosk database (default: [storage] path); the simulator's cash state is the one "
           "in the same folder (cash/sim.json beside kiosk.db)")


def _fen(v: int) -> str:
    sign = "-" if v < 0 else ""
    v = abs(v)
    return f"{sign}{v // 100}.{v % 100:02d}"


def _counts(text: str) -> dict[int, int]:
    """``10000=20,5000=10`` -> {10000: 20, 5000: 10}."""
    out: dict[int, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        value, sep, count = part.partition("=")
        if not sep or not value.isdigit() or not count.lstrip("-").isdigit():
            raise argparse.ArgumentTypeError(f"{part!r} is not FEN=COUNT")
        out[int(value)] = int(count)
    return out


def _db_path(args: argparse.Namespace, config: Config) -> Path:
    """``--db``, or the kiosk's own database (as the kiosk finds it, ``KIOSK_DATA_DIR`` included)."""
    return Path(args.db) if args.db else database_path(config)


@dataclass(frozen=True)
class CashHome:
    """A kiosk database and the cash units that belong with it."""

    db: Path
    """The kiosk database (books, staff, exchanges)."""
    cash: CashConfig
    """The ``[cash]`` section."""
    root: Path
    """The kiosk's data folder: relative ``[cash]`` paths (simulator state, port link, socket) are in it."""

    @property
    def state(self) -> Path:
        """The simulator's state file."""
        return resolve(self.root, self.cash.sim_state)

    @property
    def control(self) -> Path | None:
        """The simulator's control socket (None when the config has none)."""
        return resolve(self.root, self.cash.sim_control) if self.cash.sim_control else None


def _same_file(a: Path, b: Path) -> bool:
    return a.expanduser().resolve() == b.expanduser().resolve()


def cash_home(args: argparse.Namespace, config: Config) -> CashHome:
    """The database ``--db`` names (default: this kiosk's) and the cash state that goes with it.

    This kiosk's database goes with the configured units. Another kiosk's database goes with
    the simulator files in its own folder (a kiosk's data folder holds both), so nothing of
    this kiosk's cash is read or changed.

    Raises:
        CashStateMismatch: ``--db`` has no cash state of its own: it does not exist, lies in
            this kiosk's data folder without being its database, is not named like a kiosk
            database, the units are real hardware, or ``[cash]`` paths are absolute.
    """
    cfg = config.section("cash", CashConfig)
    own = database_path(config)
    if not getattr(args, "db", None) or _same_file(Path(args.db), own):
        return CashHome(own, cfg, config.data_dir)
    db = Path(args.db)
    if not db.is_file():
        raise CashStateMismatch(f"--db {db}: no such database file (nothing was created)")
    folder = db.expanduser().resolve().parent
    mine = resolve(config.data_dir, cfg.sim_state)
    if not cfg.simulate:
        raise CashStateMismatch(
            f"--db {db} is not this kiosk's database ({own}); the cash units on "
            f"{cfg.port_of(Unit.NOTES)} belong to that one")
    if folder == config.data_dir.resolve():
        raise CashStateMismatch(
            f"--db {db} is not this kiosk's database but lies in its data folder {folder}: the cash "
            f"state there ({mine}) belongs to {own}. Put the other database in a folder of its own")
    if db.name != own.name:
        raise CashStateMismatch(
            f"--db {db}: the cash state of the folder {folder} ({resolve(folder, cfg.sim_state)}) "
            f"belongs to the kiosk database {folder / own.name}, not to {db.name}")
    for key in ("sim_state", "sim_control", "port", "notes_port", "coins_port"):
        value = getattr(cfg, key)
        if value and Path(value).expanduser().is_absolute():
            raise CashStateMismatch(
                f"--db {db}: [cash] {key} = {value!r} is an absolute path, so it belongs to this "
                f"kiosk ({own}) and cannot be taken from the folder of {db}")
    return CashHome(db, cfg, folder)


def _running_simulator(home: CashHome) -> int | None:
    """The process id of the simulator running on ``home``'s state file, or None."""
    from devices.cash_sim import running_simulator

    return running_simulator(home.state) if home.cash.simulate else None


async def _with_units(home: CashHome, work: Callable[[Database, CashUnits], Awaitable[int]]) -> int:
    units = create_cash_units(home.cash, home.root)
    try:
        await units.notes.open()
        await units.coins.open()
        async with Database(home.db) as db:
            return await work(db, units)
    finally:
        await units.aclose()


# ----------------------------------------------------------------------------- levels


def _register_levels(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", help=DB_HELP)
    p.set_defaults(func=lambda args, config: asyncio.run(_levels(args, config)))


async def _levels(args: argparse.Namespace, config: Config) -> int:
    home = cash_home(args, config)
    pid = _running_simulator(home)
    if pid is not None:
        # the kiosk runs: a simulator of our own would take its port link and control socket
        from devices.cash_sim import read_levels

        levels, where = read_levels(home.state, home.control)
        print(f"the kiosk's cash simulator is running (process {pid or 'unknown'}): "
              f"read through {where}, nothing restarted")
        async with Database(home.db) as db:
            books = await cash_journal.read_books(db)
        return _print_levels(books, [(Unit.NOTES, str(Unit.NOTES), levels["notes"]),
                                     (Unit.COINS, str(Unit.COINS), levels["coins"])])

    async def work(db: Database, units: CashUnits) -> int:
        found = []
        for dev in (units.notes, units.coins):
            info = dev.info if hasattr(dev, "info") else None
            title = f"{dev.unit}" + (f" ({info.model}, firmware {info.firmware})" if info else "")
            found.append((dev.unit, title, await dev.levels()))
        return _print_levels(await cash_journal.read_books(db), found)

    return await _with_units(home, work)


def _print_levels(books: Mapping[str, Mapping[int, int]],
                  units: list[tuple[Unit, str, Mapping[int, int]]]) -> int:
    """Each unit's counts (unit, heading, fen -> count) next to the books, then the cashbox's
    books; 3 if they differ, else 0.

    The table has the same columns whether or not anything differs (a books column that
    appeared only on a difference made the output hard to read and to compare).
    """
    differ = 0
    for unit, title, levels in units:
        print(title)
        booked = books.get(str(unit), {})
        print(f"  {'value':>8} {'in unit':>8} {'books':>8} {'difference':>11}")
        total = total_books = 0
        for value in sorted(set(levels) | set(booked), reverse=True):
            n, b = levels.get(value, 0), booked.get(value)
            if b is None:  # a unit the books have not seen yet (booked at its first exchange)
                b_text = diff = "-"
            else:
                b_text, diff = str(b), f"{n - b:+d}" if n != b else "0"
                total_books += value * b
            flag = "  DIFFERENCE" if b is not None and n != b else ""
            differ += bool(flag)
            total += value * n
            print(f"  {_fen(value):>8} {n:>8} {b_text:>8} {diff:>11}{flag}")
        in_books = f"{_fen(total_books)} yuan in the books" if booked else "not in the books yet"
        print(f"  value: {_fen(total)} yuan in the unit, {in_books}")
    cashbox = {v: n for v, n in books.get(str(Unit.CASHBOX), {}).items() if n}
    print("cashbox (the recycler cannot count it: books only)")
    print(f"  {'value':>8} {'books':>8}")
    for value in sorted(cashbox, reverse=True):
        print(f"  {_fen(value):>8} {cashbox[value]:>8}")
    print(f"  value: {_fen(sum(v * n for v, n in cashbox.items()))} yuan in the books")
    return 3 if differ else 0


# ----------------------------------------------------------------------------- exchange


def _register_exchange(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="exchange_command", required=True)
    for name, help_text in (("start", "lock a unit and record the counts out"),
                            ("end", "record the counts in and unlock"),
                            ("status", "open and recent exchanges")):
        q = sub.add_parser(name, help=help_text)
        q.add_argument("--db", help=DB_HELP)
        if name == "status":
            q.set_defaults(func=lambda args, config: asyncio.run(_status(args, config)))
            continue
        q.add_argument("--unit", required=True, choices=[str(u) for u in Unit])
        q.add_argument("--bank", required=True, help="bank staff number")
        q.add_argument("--hall", required=True, help="hall staff number (witness)")
        q.add_argument("--bank-pin", help="bank staff PIN (asked for if missing)")
        q.add_argument("--hall-pin", help="hall staff PIN (asked for if missing)")
        if name == "start":
            q.add_argument("--counted", type=_counts, help="hand count FEN=COUNT,... with values in fen: 10000=5 is five 100 yuan notes, "
                                                           "50=20 twenty 5 jiao coins (required for the cashbox)")
        else:
            q.add_argument("--counts", type=_counts, required=True, help="what was loaded, FEN=COUNT,... with values in fen: 2000=100 is "
                                                                        "a hundred 20 yuan notes, 100=50 fifty 1 yuan coins")
        q.set_defaults(func=lambda args, config, _n=name: asyncio.run(_exchange(args, config, _n)))


def _ask_pin(prompt: str) -> str:
    """A PIN typed at the terminal (not echoed), or one line read from a pipe; "" when none comes.

    Input that ends (a closed or empty stdin, Ctrl-D) is no PIN, not an error to trace back.
    """
    stdin = sys.stdin
    if stdin is None or stdin.closed:
        return ""
    try:
        if stdin.isatty():
            return getpass.getpass(prompt)
        # a pipe: getpass would warn about echo and read the controlling terminal instead
        print(prompt, end="", file=sys.stderr, flush=True)
        line = stdin.readline()
        print(file=sys.stderr)
        return line.rstrip("\r\n")
    except (EOFError, OSError, ValueError, termios.error):
        return ""


def _pins(args: argparse.Namespace) -> tuple[tuple[str, str], tuple[str, str]] | None:
    """(bank staff, PIN) and (hall staff, PIN), asking for PINs not given; None if one was not entered."""
    bank_pin = args.bank_pin or _ask_pin(f"PIN of bank staff {args.bank}: ")
    if not bank_pin:
        print(f"cash exchange: no PIN entered for bank staff {args.bank}; nothing was recorded", file=sys.stderr)
        return None
    hall_pin = args.hall_pin or _ask_pin(f"PIN of hall staff {args.hall}: ")
    if not hall_pin:
        print(f"cash exchange: no PIN entered for hall staff {args.hall}; nothing was recorded", file=sys.stderr)
        return None
    return (args.bank, bank_pin), (args.hall, hall_pin)


def _print_counts(title: str, counts: Mapping[int, int] | None) -> None:
    if counts is None:
        return
    body = ", ".join(f"{_fen(v)} x {n}" for v, n in sorted(counts.items(), reverse=True) if n) or "nothing"
    print(f"  {title:<16} {body}")


def _print_report(r: ExchangeReport) -> int:
    print(f"exchange {r.exchange_id} of {r.unit}: {r.state}")
    _print_counts("books expected", r.expected_out)
    _print_counts("found", r.counted_out)
    if r.difference_out:
        _print_counts("DIFFERENCE out", r.difference_out)
        print(f"  {'value':<16} {_fen(r.difference_out_fen)}")
    _print_counts("loaded", r.counts_in)
    _print_counts("unit reports", r.device_in)
    if r.difference_in:
        _print_counts("DIFFERENCE in", r.difference_in)
    return 3 if (r.difference_out or r.difference_in) else 0


async def _exchange(args: argparse.Namespace, config: Config, what: str) -> int:
    home = cash_home(args, config)
    pid = _running_simulator(home)
    if pid is not None:
        # the running kiosk drives the units; a second driver (and simulator) would fight it
        print(f"cash exchange: the kiosk is running (its cash simulator, process {pid or 'unknown'}, "
              f"keeps {home.state}); exchange the cassette from the kiosk's staff menu, or stop the kiosk "
              "first. Nothing was recorded.", file=sys.stderr)
        return 2
    pins = _pins(args)
    if pins is None:
        return 2
    bank, hall = pins
    unit = Unit(args.unit)

    async def work(db: Database, units: CashUnits) -> int:
        devices: dict[Unit, Any] = {Unit.NOTES: units.notes, Unit.COINS: units.coins}
        exchange = CassetteExchange(db, devices, by="cli")
        sim = units.simulator
        try:
            if what == "start":
                report = await exchange.start(unit, bank, hall, args.counted)
                if sim is not None:  # rehearsal: the bank staff take the cassette away
                    if unit == Unit.CASHBOX:
                        sim.empty_cashbox()
                    else:
                        sim.load_cassette(str(unit), {})
            else:
                # rehearsal: they load it into the simulator, once both are verified
                load = (functools.partial(sim.load_cassette, str(unit), args.counts)
                        if sim is not None and unit != Unit.CASHBOX else None)
                report = await exchange.end(unit, bank, hall, args.counts, load)
        except (CassetteError, StaffVerificationFailed, StaffLocked) as exc:
            print(f"refused: {exc}")
            return 2
        return _print_report(report)

    return await _with_units(home, work)


async def _status(args: argparse.Namespace, config: Config) -> int:
    path = _db_path(args, config)
    if args.db and not path.is_file():
        raise CashStateMismatch(f"--db {path}: no such database file (nothing was created)")
    async with Database(path) as db:
        rows = await db.fetchall("SELECT * FROM cash_exchange ORDER BY id DESC LIMIT 10")
    for row in rows:
        _print_report(report_from_row(row))
    if not rows:
        print("no cassette exchanges recorded")
    return 0


def _register_insert(p: argparse.ArgumentParser) -> None:
    p.add_argument("yuan", help="the note's value in yuan (100, 50, 20, 10, 5, 1) or a coin's (1, 0.5, 0.1)")
    p.add_argument("--coin", action="store_true", help="a coin into the coin mechanism instead of a note")
    p.set_defaults(func=_insert)


def _insert(args: argparse.Namespace, config: Config) -> int:
    """A customer puts a note or coin into the simulator of a running kiosk."""
    from devices.cash_sim import SimControl

    cfg = config.section("cash", CashConfig)
    fen = _yuan_to_fen(args.yuan)
    if fen is None:
        print(f"cash insert: '{args.yuan}' is not an amount in yuan (e.g. 100 or 0.5)", file=sys.stderr)
        return 2
    path = Path(cfg.sim_control)
    path = path if path.is_absolute() else config.data_dir / path
    if not cfg.simulate or not path.exists():
        print(f"cash insert: no simulator is running ({path} not found); start the kiosk with "
              "[cash] simulate = true (make run)", file=sys.stderr)
        return 2
    what, unit = ("coin", "coins") if args.coin else ("note", "notes")
    control = SimControl(path)
    try:
        state = control.snapshot()
        known = sorted((int(k) for k in state[unit]), reverse=True)
        if fen not in known:
            print(f"cash insert: the {unit[:-1]} unit takes no {args.yuan} yuan {what} (it takes "
                  f"{', '.join(_fen(v).removesuffix('.00') for v in known)})", file=sys.stderr)
            return 2
        taken = control.insert_coin(fen) if args.coin else control.insert_note(fen)
    finally:
        control.close()
    if taken:
        print(f"{args.yuan} yuan {what}: taken in")
    elif state[f"{unit}_busy"]:
        print(f"{args.yuan} yuan {what}: handed back - the unit is busy with the one before it")
    else:
        print(f"{args.yuan} yuan {what}: handed back - the unit takes cash only while a payment waits "
              f"for it, and only {what}s the kiosk can give change for")
    return 0 if taken else 1


def _yuan_to_fen(text: str) -> int | None:
    """'100' -> 10000, '0.5' -> 50 (exact: no float on the way)."""
    whole, _, frac = text.strip().partition(".")
    if not whole.isdigit() or (frac and (not frac.isdigit() or len(frac) > 2)):
        return None
    return int(whole) * 100 + int((frac or "0").ljust(2, "0"))


def _register_plan(p: argparse.ArgumentParser) -> None:
    from assistant.cash_plan_cli import register_plan

    register_plan(p)


def _register_simulate_history(p: argparse.ArgumentParser) -> None:
    from assistant.cash_plan_cli import register_simulate

    register_simulate(p)


SUBCOMMANDS: dict[str, tuple[str, Registrar]] = {
    "levels": ("what each unit holds, next to the books", _register_levels),
    "insert": ("put a note or coin into the simulator of the running kiosk", _register_insert),
    "exchange": ("cassette exchange under dual control (bank + hall staff)", _register_exchange),
    "plan": ("remittance cycle and float standard from the transaction history", _register_plan),
    "simulate-history": ("make a demo transaction history (CSV; optionally load it into a fresh database)",
                         _register_simulate_history),
}
"""Sub-commands of ``main.py cash``: name -> (help, registrar)."""


def register(parser: argparse.ArgumentParser) -> None:
    """Add the ``cash`` sub-commands (see :data:`SUBCOMMANDS`)."""
    sub = parser.add_subparsers(dest="cash_command", metavar="SUBCOMMAND", required=True)
    for name, (help_text, registrar) in SUBCOMMANDS.items():
        registrar(sub.add_parser(name, help=help_text, description=help_text))


# ----------------------------------------------------------------------------- receipts


def _register_receipt(p: argparse.ArgumentParser) -> None:
    p.add_argument("payment", nargs="?", default="",
                   help="payment id, or its last digits (the serial number printed and spoken on the receipt)")
    p.add_argument("--account", default="", help="list the cash payments of this electricity account")
    p.add_argument("--db", help="database file (default: [storage] path)")
    p.add_argument("--print", action="store_true", help="also send the receipt to the receipt printer")
    p.set_defaults(func=lambda args, config: asyncio.run(_receipt(args, config)))


async def _receipt(args: argparse.Namespace, config: Config) -> int:
    """Reprint a cash receipt from the journal (e.g. for a payment finished after a power cut)."""
    from assistant.adapters import ReceiptDevice
    from assistant.backoffice import hall_zone, parse_stamp
    from assistant.errors import PaymentError
    from assistant.locale import LocaleRegistry
    from assistant.messages import DeviceAction, frozen_map
    from assistant.receipts import printable, receipt_for
    from devices.printer import EscposPrinter, PrinterConfig

    path = _db_path(args, config)
    if not path.is_file():
        raise PaymentError(f"no database at {path} (see --db or [storage] path)")
    zone = hall_zone(config)
    async with Database(path) as db:
        if args.account:
            rows = await db.fetchall(
                "SELECT id, created_at, due_fen FROM payment WHERE method = 'cash' AND account_no = ? "
                "ORDER BY created_at, rowid", (args.account,))
            if rows:
                # the database keeps UTC; staff compare with the hall clock and the printed receipts
                offset = datetime.now(zone).strftime("%z")
                print(f"times in {zone.key} (UTC{offset[:3]}:{offset[3:]}), the kiosk's time zone "
                      "([backoffice] timezone), as on its receipts")
            for pid, at, due in rows:
                at = parse_stamp(at).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")
                try:
                    r = await receipt_for(db, pid)
                    state = f"{r.outcome:<10} posted {_fen(r.posted_fen)} credited {_fen(r.credited_fen)}"
                except PaymentError:
                    state = "open"
                print(f"{pid}  {at}  due {_fen(int(due))}  {state}")
            if not rows:
                print(f"no cash payments for account {args.account} in {path}", file=sys.stderr)
            if not args.payment:
                return 0 if rows else 1
        if not args.payment:
            raise PaymentError("name a payment (its id or the last digits of it) or --account")
        ids = [r[0] for r in await db.fetchall(
            "SELECT id FROM payment WHERE method = 'cash' AND (id = ? OR id LIKE ?)",
            (args.payment, "%" + args.payment))]
        if not ids:
            raise PaymentError(f"no cash payment with the id or serial number {args.payment!r} in {path}")
        if len(ids) > 1:
            raise PaymentError(f"{len(ids)} cash payments end in {args.payment!r} ({', '.join(ids[:5])}"
                               f"{', ...' if len(ids) > 5 else ''}); give more digits")
        receipt = await receipt_for(db, ids[0])
    packs = LocaleRegistry.from_config(config).load()
    device = ReceiptDevice(EscposPrinter(config.section("printer", PrinterConfig)), lambda: packs.default,
                           receipt.kiosk_id or config.kiosk.id, zone=zone)
    action = DeviceAction("printer", "print", frozen_map({**printable(receipt), "reprint": True}))
    title, rows, footer = device.lines(dict(action.args))
    print(title)
    for label, value in rows:
        print(f"{label}: {value}")
    print(footer)
    if args.print:
        await device(action)
    return 0


SUBCOMMANDS["receipt"] = ("reprint a cash receipt from the journal, or list an account's payments",
                          _register_receipt)
