"""Transaction history for cash planning: the kiosk's own journal, a CSV file, or a demo generator.

The planner needs, for every payment, when it happened, how it was paid, the amount
due and - for cash - the notes and coins the customer put in, in the order they put
them in. Change is *not* taken from history: it is recomputed by the kiosk's own
change-making over the simulated cassette stock, because it depends on the stock.

History CSV (UTF-8, one header line, ``#`` lines are comments)::

    kiosk_id,payment_id,at,account_no,method,bank,due_fen,tendered
    K001,4f0c...,2025-03-03T09:12:44+08:00,3100012345,cash,,8650,10000:1
    K001,77ab...,2025-03-03T09:15:02+08:00,3100023456,card,ICBC,11230,
    K001,9d31...,2025-03-03T09:20:10+08:00,3100034567,cash,,11250,10000:1 1000:1 c100:2 c50:1

* ``at``: ISO-8601 time with its UTC offset (local time of the kiosk);
* ``method``: ``cash``, ``card`` or ``ewallet``; ``bank``: the card's issuer code or
  the wallet provider (empty for cash);
* ``due_fen``: the amount due, integer fen, positive;
* ``tendered``: cash only: ``value:count`` pairs in fen, separated by spaces, in the
  order the customer inserted them; coins carry a ``c`` before the value (``c100`` is
  a 1 元 coin, ``100`` a 1 元 note; 1 角 and 5 角 exist only as coins). Empty for
  card and e-wallet.

Every problem in a file is reported with its line number and column, and nothing
is used from a file that has one.

The demo generator (:func:`generate`) makes a year that looks like a real service
hall: bills log-normal around 120 元 with their 角 and 分, more payments early in
the month, on Mondays and in the summer and winter peaks, about three in four in
cash, and notes tendered the way people pay (one 100 for 86.50, 100 + 20 for 112,
sometimes the exact money).
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from assistant.backoffice import COIN_VALUES, NOTE_VALUES, BackofficeError, parse_stamp
from assistant.storage import Database

COLUMNS = ("kiosk_id", "payment_id", "at", "account_no", "method", "bank", "due_fen", "tendered")
"""The history CSV header, in order."""
METHODS = ("cash", "card", "ewallet")
NOTES, COINS = "notes", "coins"
"""Units a piece goes into (the ``unit`` names of ``cash_unit``)."""
Piece = tuple[str, int]
"""A note or coin: (``notes`` or ``coins``, value in fen)."""
MAX_DUE_FEN = 10_000_000
"""A sanity bound on one payment (100 000 元): anything larger in a file is a typo."""


@dataclass(frozen=True)
class Transaction:
    """One payment as the planner sees it."""

    kiosk_id: str
    payment_id: str
    at: datetime
    """When it started, timezone-aware."""
    account_no: str
    method: str
    """cash, card or ewallet."""
    due_fen: int
    """Amount due."""
    tendered: tuple[Piece, ...] = ()
    """Cash: the notes and coins inserted, in order; empty for card and e-wallet."""
    bank: str = ""
    """Card issuer or wallet provider (non-cash only)."""

    @property
    def tendered_fen(self) -> int:
        """Value of the cash inserted."""
        return sum(v for _, v in self.tendered)

    def day(self, zone: ZoneInfo) -> date:
        """The local business day of the payment."""
        return self.at.astimezone(zone).date()


# ============================================================================ CSV


def format_tendered(pieces: Sequence[Piece]) -> str:
    """``[notes 10000, notes 2000, coins 50]`` -> ``"10000:1 2000:1 c50:1"`` (runs kept in order)."""
    out: list[list[object]] = []
    for unit, v in pieces:
        token = f"c{v}" if unit == COINS else str(v)
        if out and out[-1][0] == token:
            out[-1][1] += 1  # type: ignore[operator]
        else:
            out.append([token, 1])
    return " ".join(f"{t}:{n}" for t, n in out)


def parse_tendered(text: str, where: str) -> tuple[Piece, ...]:
    """The inverse of :func:`format_tendered`, with errors naming ``where``."""
    out: list[Piece] = []
    for part in text.split():
        token, sep, count = part.partition(":")
        coin = token.startswith("c")
        value = token[1:] if coin else token
        if not sep or not value.isdigit() or not count.lstrip("-").isdigit():
            raise BackofficeError(f"{where}: tendered: {part!r} is not VALUE:COUNT (cVALUE for a coin)")
        v, n = int(value), int(count)
        if n < 0:
            raise BackofficeError(f"{where}: tendered: negative count {n} of {token}")
        unit = COINS if coin or v not in NOTE_VALUES else NOTES
        if v not in (COIN_VALUES if unit == COINS else NOTE_VALUES):
            raise BackofficeError(f"{where}: tendered: {token} is not a note or coin the kiosk takes")
        out.extend([(unit, v)] * n)
    return tuple(out)


def write_csv(transactions: Iterable[Transaction], zone: ZoneInfo) -> str:
    """The history as CSV text (times in the kiosk's local time with offset)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(COLUMNS)
    for t in transactions:
        w.writerow([t.kiosk_id, t.payment_id, t.at.astimezone(zone).isoformat(timespec="seconds"),
                    t.account_no, t.method, t.bank, t.due_fen, format_tendered(t.tendered)])
    return buf.getvalue()


def read_csv(path: Path) -> list[Transaction]:
    """Read a history CSV; raises :class:`BackofficeError` naming the line and field of the first problem."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise BackofficeError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise BackofficeError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip() and not line.startswith("#")]
    if not lines:
        raise BackofficeError(f"{path}: empty file (expected the header {','.join(COLUMNS)})")
    header_no, header_line = lines[0]
    header = next(csv.reader([header_line]))
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise BackofficeError(f"{path}:{header_no}: header lacks column(s) {', '.join(missing)}")
    index = {c: header.index(c) for c in COLUMNS}
    out: list[Transaction] = []
    seen: dict[str, int] = {}
    for n, line in lines[1:]:
        row = next(csv.reader([line]))
        where = f"{path}:{n}"
        if len(row) != len(header):
            raise BackofficeError(f"{where}: {len(row)} fields, the header has {len(header)}")
        t = _row(row, index, where)
        if t.payment_id in seen:
            raise BackofficeError(f"{where}: payment_id {t.payment_id} repeats line {seen[t.payment_id]}")
        seen[t.payment_id] = n
        out.append(t)
    out.sort(key=lambda t: t.at)
    return out


def _row(row: list[str], index: dict[str, int], where: str) -> Transaction:
    def col(name: str) -> str:
        return row[index[name]].strip()

    kiosk, pid = col("kiosk_id"), col("payment_id")
    if not kiosk:
        raise BackofficeError(f"{where}: kiosk_id is empty")
    if not pid:
        raise BackofficeError(f"{where}: payment_id is empty")
    try:
        at = datetime.fromisoformat(col("at"))
    except ValueError:
        raise BackofficeError(f"{where}: at: {col('at')!r} is not an ISO time") from None
    if at.tzinfo is None:
        raise BackofficeError(f"{where}: at: {col('at')!r} has no UTC offset (write e.g. +08:00)")
    method = col("method")
    if method not in METHODS:
        raise BackofficeError(f"{where}: method: {method!r} is not one of {', '.join(METHODS)}")
    due_text = col("due_fen")
    if not due_text.lstrip("-").isdigit():
        raise BackofficeError(f"{where}: due_fen: {due_text!r} is not a whole number of fen")
    due = int(due_text)
    if due <= 0:
        raise BackofficeError(f"{where}: due_fen: {due} is not positive")
    if due > MAX_DUE_FEN:
        raise BackofficeError(f"{where}: due_fen: {due} is more than {MAX_DUE_FEN} fen")
    tendered = parse_tendered(col("tendered"), where)
    if method == "cash":
        if not tendered:
            raise BackofficeError(f"{where}: tendered: a cash payment needs the notes and coins inserted")
        # the kiosk stops taking cash once the amount is covered: the last piece must be needed
        total = sum(v for _, v in tendered)
        if total - tendered[-1][1] >= due:
            raise BackofficeError(
                f"{where}: tendered: {total} fen inserted for {due} due, but the kiosk stops "
                f"taking cash once {due} is covered"
            )
    elif tendered:
        raise BackofficeError(f"{where}: tendered: a {method} payment has no cash")
    return Transaction(kiosk_id=kiosk, payment_id=pid, at=at, account_no=col("account_no"), method=method,
                       due_fen=due, tendered=tendered, bank=col("bank"))


# ============================================================================ the kiosk's own journal


async def read_database(db: Database, kiosk_id: str | None = None, since: str = "", until: str = "~") -> list[Transaction]:
    """Payments from the kiosk's journal (``since <= created_at < until``, UTC stamps).

    Cash payments count with what the customer inserted (a cancelled one is left out:
    its cash went back; one still open too); card and e-wallet payments with their
    charge, once charged. Only the entries that say so are read.
    """
    params: list[object] = [since, until]
    where = "p.created_at >= ? AND p.created_at < ?"
    if kiosk_id:
        where += " AND p.kiosk_id = ?"
        params.append(kiosk_id)
    heads = {r["id"]: r for r in await db.fetchall(f"SELECT * FROM payment p WHERE {where}", params)}
    rows = await db.fetchall(
        f"SELECT j.payment_id, j.id, j.step, j.state, j.amount_fen, j.detail FROM journal j "
        f"JOIN payment p ON p.id = j.payment_id WHERE {where} AND ((j.step IN ('note', 'coin', 'charge') "
        f"AND j.state = 'done') OR j.step IN ('close', 'cancel')) ORDER BY j.payment_id, j.id", params,
    )
    out: list[Transaction] = []
    for pid, entries in _group(rows):
        head = heads[pid]
        at = parse_stamp(head["created_at"])
        steps = {e["step"] for e in entries}  # type: ignore[index]
        if head["method"] == "cash":
            if "cancel" in steps or "close" not in steps:
                continue
            tendered = _inserted_in_order(entries)
            if tendered:
                out.append(Transaction(head["kiosk_id"], pid, at, head["account_no"], "cash", int(head["due_fen"]),
                                       tendered))
        else:
            charge = [e for e in entries if e["step"] == "charge"]  # type: ignore[index]
            if not charge:
                continue
            bank = json.loads(charge[-1]["detail"] or "{}").get("bank", "")  # type: ignore[index]
            out.append(Transaction(head["kiosk_id"], pid, at, head["account_no"], head["method"],
                                   int(charge[-1]["amount_fen"]), (), bank))  # type: ignore[index]
    out.sort(key=lambda t: t.at)
    return out


def _inserted_in_order(entries: Sequence[object]) -> tuple[Piece, ...]:
    """Notes stacked and coins accepted, in journal order."""
    out: list[Piece] = []
    for e in entries:
        if e["state"] != "done":  # type: ignore[index]
            continue
        if e["step"] == "note":  # type: ignore[index]
            out.append((NOTES, int(e["amount_fen"])))  # type: ignore[index]
        elif e["step"] == "coin":  # type: ignore[index]
            out.append((COINS, int(e["amount_fen"])))  # type: ignore[index]
    return tuple(out)


def _group(rows: Iterable[object]) -> Iterator[tuple[str, list[object]]]:
    current: str | None = None
    bucket: list[object] = []
    for r in rows:
        pid = r["payment_id"]  # type: ignore[index]
        if pid != current:
            if current is not None:
                yield current, bucket
            current, bucket = pid, []
        bucket.append(r)
    if current is not None:
        yield current, bucket


# ============================================================================ demo generator

WEEKDAY = (1.15, 1.05, 1.0, 1.0, 1.1, 0.9, 0.8)
"""Payments per weekday relative to the average (Monday first): halls are busiest after the weekend."""
MONTH = (1.15, 1.1, 0.95, 0.9, 0.9, 1.0, 1.15, 1.2, 1.0, 0.9, 0.95, 1.1)
"""Payments and bill size per month: the heating and the air-conditioning peaks."""
CARD_BANKS = (("ICBC", 30), ("CCB", 22), ("ABC", 20), ("BOC", 12), ("PSBC", 8), ("BOCOM", 5), ("CMB", 3))
"""Issuers of the cards customers pay with, by weight."""
NOTES_DESC = tuple(sorted(NOTE_VALUES, reverse=True))


def _pick(rng: random.Random, table: Sequence[tuple[str, int]]) -> str:
    return rng.choices([k for k, _ in table], weights=[w for _, w in table])[0]


def smallest_note_covering(amount_fen: int) -> int:
    """The smallest single note worth at least ``amount_fen`` (100 元 if none is)."""
    return next((v for v in sorted(NOTE_VALUES) if v >= amount_fen), NOTES_DESC[0])


def tender(due_fen: int, rng: random.Random) -> tuple[Piece, ...]:
    """Notes and coins a customer puts in for ``due_fen``, in order, the way people pay.

    * about half pay with the smallest note covering the bill, or whole hundreds
      (one 100 for 86.50, two for 156.30);
    * about a third give hundreds for the hundreds and one note covering the rest
      (100 + 20 for 112), or notes down to it and a covering note (100 + 50 + 10 for 156.30);
    * the rest count out the exact money down to the 角 (the 分 are credited), 1 元
      as a note or a coin.
    """
    r = rng.random()
    hundreds, rest = divmod(due_fen, 10000)
    notes: list[int] = []
    if r < 0.5:
        if due_fen <= 10000:
            notes = [smallest_note_covering(due_fen)]
        else:
            notes = [10000] * (hundreds + (1 if rest else 0))
        return tuple((NOTES, v) for v in notes)
    if r < 0.85:
        notes = [10000] * hundreds
        if rest and rng.random() < 0.6:
            notes.append(smallest_note_covering(rest))
        elif rest:
            for v in NOTES_DESC[1:]:
                while rest >= v:
                    notes.append(v)
                    rest -= v
            if rest:
                notes.append(smallest_note_covering(rest))
        return tuple((NOTES, v) for v in notes)
    left = -(-due_fen // 10) * 10
    for v in NOTES_DESC:
        if v == 100:
            break
        while left >= v:
            notes.append(v)
            left -= v
    out: list[Piece] = [(NOTES, v) for v in notes]
    coin_yuan = rng.random() < 0.5
    while left >= 100:
        out.append((COINS, 100) if coin_yuan else (NOTES, 100))
        left -= 100
    while left >= 50:
        out.append((COINS, 50))
        left -= 50
    while left >= 10:
        out.append((COINS, 10))
        left -= 10
    # a customer who counts out coins usually puts the notes in first
    return tuple(sorted(out, key=lambda p: p[0] == COINS))


def bill_amount(rng: random.Random, month: int) -> int:
    """A bill in fen: log-normal around 120 元 times the month's factor, 5 元 .. 2000 元."""
    median = 12000 * MONTH[month - 1]
    fen = int(math.exp(rng.gauss(math.log(median), 0.55)))
    return max(500, min(fen, 200_000))


def _time_of_day(rng: random.Random) -> time:
    """Service-hall hours 08:30-17:30, busiest mid-morning and mid-afternoon."""
    while True:
        hours = rng.gauss(10.0, 1.0) if rng.random() < 0.55 else rng.gauss(15.0, 1.1)
        if 8.5 <= hours < 17.5 and not 12.0 <= hours < 12.5:
            seconds = int(hours * 3600)
            return time(seconds // 3600, seconds // 60 % 60, seconds % 60)


def generate(
    days: int,
    *,
    start: date,
    zone: ZoneInfo,
    seed: int,
    kiosk_id: str = "K001",
    per_day: float = 137.0,
    cash_share: float = 0.75,
    accounts: int = 4000,
) -> list[Transaction]:
    """A demo history of ``days`` days from ``start`` (reproducible for the same arguments)."""
    if days < 1:
        raise BackofficeError(f"--days must be at least 1, got {days}")
    rng = random.Random(f"{seed}:{kiosk_id}")
    pool = [f"31{rng.randrange(10**8):08d}" for _ in range(accounts)]
    out: list[Transaction] = []
    for d in range(days):
        day = start + timedelta(days=d)
        early = 1.2 if day.day <= 12 else 0.85  # bills come out at the start of the month
        mean = per_day * WEEKDAY[day.weekday()] * MONTH[day.month - 1] * early / 1.0
        n = _poisson(rng, mean)
        stamps = sorted(_time_of_day(rng) for _ in range(n))
        for moment in stamps:
            at = datetime.combine(day, moment, zone)
            due = bill_amount(rng, day.month)
            u = rng.random()
            pid = uuid.UUID(int=rng.getrandbits(128), version=4).hex
            account = rng.choice(pool)
            if u < cash_share:
                out.append(Transaction(kiosk_id, pid, at, account, "cash", due, tender(due, rng)))
            elif u < cash_share + (1 - cash_share) * 0.6:
                out.append(Transaction(kiosk_id, pid, at, account, "card", due, (), _pick(rng, CARD_BANKS)))
            else:
                out.append(Transaction(kiosk_id, pid, at, account, "ewallet", due, (), "ewallet"))
    return out


def _poisson(rng: random.Random, mean: float) -> int:
    if mean > 30:  # normal approximation; exact enough for daily counts
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1
