"""Paying without cash: the ``PaymentGateway`` port and the embedded sandbox bank / e-wallet.

A real integration implements :class:`PaymentGateway` against the bank's quick-pay
API or the e-wallet's API. The sandbox keeps its own books in the kiosk database
(tables ``sandbox_*``) so that the whole flow — tokenising a card, charging,
declines, timeouts, status queries, daily settlement files for reconciliation —
runs with no network.

Every charge carries the kiosk's reference (the payment id) and is idempotent: the
same reference never charges twice, so after a timeout the kiosk first asks for the
status and only then retries with the same reference.
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum

from assistant.errors import PaymentError
from assistant.storage import Database


class ChargeStatus(StrEnum):
    """Outcome of a charge."""

    APPROVED = "approved"
    DECLINED = "declined"


class GatewayTimeout(PaymentError):
    """The gateway did not answer in time (the charge may or may not have happened)."""

    prompt_id = "payment_timeout"


class PaymentDeclined(PaymentError):
    """The bank or wallet refused the charge."""

    prompt_id = "payment_declined"


@dataclass(frozen=True)
class Charge:
    """A charge as the gateway recorded it."""

    reference: str
    """The kiosk's idempotency key (payment id)."""
    channel: str
    """card or ewallet."""
    amount_fen: int
    status: ChargeStatus
    gateway_ref: str
    """The gateway's own transaction id."""
    bank: str
    """Issuer / wallet provider, for clearing."""
    reason: str = ""
    """Why it was declined."""
    at: str = ""


@dataclass(frozen=True)
class CardToken:
    """What the kiosk may keep of a bank card: the bank's token and the last four digits."""

    token: str
    last4: str
    issuer: str


class PaymentGateway(abc.ABC):
    """One non-cash payment channel."""

    channel: str

    @abc.abstractmethod
    async def charge(self, reference: str, payer: str, amount_fen: int) -> Charge:
        """Charge ``payer`` (a card token or a wallet number); idempotent by ``reference``."""

    @abc.abstractmethod
    async def status(self, reference: str) -> Charge | None:
        """The charge made under ``reference``, or None if the gateway never saw it."""

    @abc.abstractmethod
    async def settlements(self, business_date: str) -> list[Charge]:
        """The gateway's approved charges for one business day (YYYY-MM-DD, UTC)."""

    async def settlements_between(self, start: str, end: str) -> list[Charge]:
        """Approved charges with ``start <= at < end`` (UTC timestamps as the database writes them).

        A kiosk's business day is a local day, which spans two UTC dates; this is how
        reconciliation asks for it. The default reads :meth:`settlements` for each UTC
        date the interval touches; a gateway with a range query overrides it.
        """
        from datetime import date, timedelta

        day, last = date.fromisoformat(start[:10]), date.fromisoformat(end[:10])
        out: list[Charge] = []
        while day <= last:
            out += [c for c in await self.settlements(day.isoformat()) if start <= c.at < end]
            day += timedelta(days=1)
        return out


class CardTokenizer(abc.ABC):
    """The bank side of binding a card: turns a card number into a token."""

    @abc.abstractmethod
    async def tokenize(self, card_number: str, issuer: str) -> CardToken:
        """A token for ``card_number``; the number itself is never stored by the kiosk."""


@dataclass(frozen=True)
class SandboxConfig:
    """The ``[payments]`` config section (sandbox behaviour)."""

    latency_s: float = 0.05
    """Simulated round-trip time of each call."""
    timeout_s: float = 10.0
    """How long the kiosk waits for a gateway answer."""
    card_limit_fen: int = 500_000
    """Per-transaction limit of the sandbox bank (declines above it)."""


SANDBOX_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS sandbox_card (
        token TEXT PRIMARY KEY,
        pan_hmac TEXT NOT NULL UNIQUE,     -- keyed hash, so the same card gets the same token
        last4 TEXT NOT NULL,
        issuer TEXT NOT NULL,
        balance_fen INTEGER NOT NULL,
        blocked INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE IF NOT EXISTS sandbox_wallet (
        wallet_no TEXT PRIMARY KEY,
        balance_fen INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS sandbox_charge (
        reference TEXT NOT NULL,
        channel TEXT NOT NULL,
        payer TEXT NOT NULL,
        amount_fen INTEGER NOT NULL,
        status TEXT NOT NULL,
        gateway_ref TEXT NOT NULL UNIQUE,
        bank TEXT NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
        PRIMARY KEY (channel, reference)
    )""",
    "CREATE INDEX IF NOT EXISTS sandbox_charge_at ON sandbox_charge(at)",
)

SANDBOX_OPENING_BALANCE_FEN = 1_000_000


class SandboxGateway(PaymentGateway):
    """The embedded sandbox for one channel (``card`` or ``ewallet``).

    Args:
        db: the kiosk database (the sandbox keeps its books in ``sandbox_*`` tables).
        channel: ``card`` or ``ewallet``.
        config: latency and limits.
        secret: key for the card-number HMAC (from config in production).
    """

    def __init__(self, db: Database, channel: str, config: SandboxConfig | None = None, secret: bytes = b"sandbox") -> None:
        if channel not in ("card", "ewallet"):
            raise ValueError(f"unknown channel {channel!r}")
        self.db = db
        self.channel = channel
        self.config = config or SandboxConfig()
        self.secret = secret
        self.hang_next = 0
        """Test hook: the next N charges are recorded but their answer never arrives."""

    async def ensure_schema(self) -> None:
        """Create the sandbox tables if needed."""
        async with self.db.transaction() as tx:
            for stmt in SANDBOX_SCHEMA:
                await tx.execute(stmt)

    async def _latency(self) -> None:
        await asyncio.sleep(self.config.latency_s)

    async def charge(self, reference: str, payer: str, amount_fen: int) -> Charge:
        if amount_fen <= 0:
            raise PaymentError("amount must be positive")
        await self._latency()
        charge = await self._charge(reference, payer, amount_fen)
        if self.hang_next > 0:
            # The bank did the work but its answer is lost on the way back.
            self.hang_next -= 1
            await asyncio.sleep(self.config.timeout_s * 2)
        return charge

    async def _charge(self, reference: str, payer: str, amount_fen: int) -> Charge:
        async with self.db.transaction() as tx:
            cur = await tx.execute(
                "SELECT * FROM sandbox_charge WHERE channel = ? AND reference = ?", (self.channel, reference)
            )
            row = await cur.fetchone()
            if row is not None:
                if row["amount_fen"] != amount_fen or row["payer"] != payer:
                    raise PaymentError(f"reference {reference} reused with different content")
                return _charge(row)
            status, reason, bank = ChargeStatus.APPROVED, "", ""
            if self.channel == "card":
                cur = await tx.execute("SELECT * FROM sandbox_card WHERE token = ?", (payer,))
                acct = await cur.fetchone()
                if acct is None:
                    status, reason = ChargeStatus.DECLINED, "unknown_card"
                else:
                    bank = acct["issuer"]
                    if acct["blocked"]:
                        status, reason = ChargeStatus.DECLINED, "card_blocked"
                    elif amount_fen > self.config.card_limit_fen:
                        status, reason = ChargeStatus.DECLINED, "over_limit"
                    elif acct["balance_fen"] < amount_fen:
                        status, reason = ChargeStatus.DECLINED, "insufficient_funds"
                    else:
                        await tx.execute(
                            "UPDATE sandbox_card SET balance_fen = balance_fen - ? WHERE token = ?",
                            (amount_fen, payer),
                        )
            else:
                bank = "ewallet"
                cur = await tx.execute("SELECT * FROM sandbox_wallet WHERE wallet_no = ?", (payer,))
                acct = await cur.fetchone()
                if acct is None:
                    await tx.execute(
                        "INSERT INTO sandbox_wallet(wallet_no, balance_fen) VALUES (?, ?)",
                        (payer, SANDBOX_OPENING_BALANCE_FEN),
                    )
                    balance = SANDBOX_OPENING_BALANCE_FEN
                else:
                    balance = acct["balance_fen"]
                if balance < amount_fen:
                    status, reason = ChargeStatus.DECLINED, "insufficient_funds"
                else:
                    await tx.execute(
                        "UPDATE sandbox_wallet SET balance_fen = balance_fen - ? WHERE wallet_no = ?",
                        (amount_fen, payer),
                    )
            gateway_ref = f"{self.channel[:2].upper()}{secrets.token_hex(8)}"
            await tx.execute(
                "INSERT INTO sandbox_charge(reference, channel, payer, amount_fen, status, gateway_ref, bank, reason) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (reference, self.channel, payer, amount_fen, status, gateway_ref, bank, reason),
            )
            cur = await tx.execute(
                "SELECT * FROM sandbox_charge WHERE channel = ? AND reference = ?", (self.channel, reference)
            )
            return _charge(await cur.fetchone())

    async def status(self, reference: str) -> Charge | None:
        await self._latency()
        row = await self.db.fetchone(
            "SELECT * FROM sandbox_charge WHERE channel = ? AND reference = ?", (self.channel, reference)
        )
        return _charge(row) if row else None

    async def settlements(self, business_date: str) -> list[Charge]:
        rows = await self.db.fetchall(
            "SELECT * FROM sandbox_charge WHERE channel = ? AND status = 'approved' AND substr(at, 1, 10) = ? "
            "ORDER BY at",
            (self.channel, business_date),
        )
        return [_charge(r) for r in rows]

    async def settlements_between(self, start: str, end: str) -> list[Charge]:
        rows = await self.db.fetchall(
            "SELECT * FROM sandbox_charge WHERE channel = ? AND status = 'approved' AND at >= ? AND at < ? "
            "ORDER BY at",
            (self.channel, start, end),
        )
        return [_charge(r) for r in rows]


class SandboxTokenizer(CardTokenizer):
    """The sandbox bank's card binding: a keyed hash finds the card, a random token names it."""

    def __init__(self, db: Database, secret: bytes = b"sandbox") -> None:
        self.db = db
        self.secret = secret

    async def tokenize(self, card_number: str, issuer: str) -> CardToken:
        if not card_number.isdigit():
            raise PaymentError("card number must be digits")
        pan_hmac = hmac.new(self.secret, card_number.encode(), hashlib.sha256).hexdigest()
        async with self.db.transaction() as tx:
            cur = await tx.execute("SELECT token, last4, issuer FROM sandbox_card WHERE pan_hmac = ?", (pan_hmac,))
            row = await cur.fetchone()
            if row is not None:
                return CardToken(row["token"], row["last4"], row["issuer"])
            token = "tok_" + secrets.token_hex(12)
            await tx.execute(
                "INSERT INTO sandbox_card(token, pan_hmac, last4, issuer, balance_fen) VALUES (?, ?, ?, ?, ?)",
                (token, pan_hmac, card_number[-4:], issuer, SANDBOX_OPENING_BALANCE_FEN),
            )
        return CardToken(token, card_number[-4:], issuer)


def _charge(row: object) -> Charge:
    r = row
    return Charge(
        reference=r["reference"],  # type: ignore[index]
        channel=r["channel"],  # type: ignore[index]
        amount_fen=int(r["amount_fen"]),  # type: ignore[index]
        status=ChargeStatus(r["status"]),  # type: ignore[index]
        gateway_ref=r["gateway_ref"],  # type: ignore[index]
        bank=r["bank"],  # type: ignore[index]
        reason=r["reason"],  # type: ignore[index]
        at=r["at"],  # type: ignore[index]
    )


async def charge_with_recovery(gateway: PaymentGateway, reference: str, payer: str, amount_fen: int, timeout: float) -> Charge:
    """Charge once; on a timeout ask for the status before retrying with the same reference.

    Raises :class:`GatewayTimeout` when neither the charge nor the status query
    answers, and :class:`PaymentDeclined` when the charge was refused.
    """
    for attempt in range(2):
        try:
            charge = await asyncio.wait_for(gateway.charge(reference, payer, amount_fen), timeout)
        except TimeoutError:
            try:
                charge_or_none = await asyncio.wait_for(gateway.status(reference), timeout)
            except TimeoutError:
                raise GatewayTimeout(f"{gateway.channel} gateway did not answer for {reference}") from None
            if charge_or_none is None:
                if attempt == 0:
                    continue  # the request never arrived: retrying with the same reference is safe
                raise GatewayTimeout(f"{gateway.channel} gateway did not answer for {reference}") from None
            charge = charge_or_none
        if charge.status is ChargeStatus.DECLINED:
            raise PaymentDeclined(f"{gateway.channel} charge {reference} declined: {charge.reason}")
        return charge
    raise GatewayTimeout(f"{gateway.channel} gateway did not answer for {reference}")


# ----------------------------------------------------------------------------- settlement files

SETTLEMENT_COLUMNS = ("channel", "bank", "reference", "gateway_ref", "amount_fen", "at")
"""Columns of a settlement file (one approved charge per line, amounts in fen, times UTC)."""


def settlement_csv(records: list[Charge]) -> str:
    """Approved charges as a settlement file (CSV with :data:`SETTLEMENT_COLUMNS`)."""
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(SETTLEMENT_COLUMNS)
    for c in records:
        w.writerow([c.channel, c.bank, c.reference, c.gateway_ref, c.amount_fen, c.at])
    return buf.getvalue()


def read_settlement_csv(path: str) -> list[Charge]:
    """Read a settlement file; raises :class:`PaymentError` naming the line and field of a bad row."""
    import csv
    from pathlib import Path

    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except (FileNotFoundError, UnicodeDecodeError) as exc:
        raise PaymentError(f"{path}: cannot read the settlement file ({exc})") from None
    lines = text.splitlines()
    if not lines:
        raise PaymentError(f"{path}: empty settlement file")
    header = next(csv.reader([lines[0]]))
    missing = [c for c in SETTLEMENT_COLUMNS if c not in header]
    if missing:
        raise PaymentError(f"{path}:1: header lacks column(s) {', '.join(missing)}")
    out = []
    for n, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        row = dict(zip(header, next(csv.reader([line])), strict=False))
        where = f"{path}:{n}"
        if row.get("channel") not in ("card", "ewallet"):
            raise PaymentError(f"{where}: channel: {row.get('channel')!r} is not card or ewallet")
        amount = (row.get("amount_fen") or "").strip()
        if not amount.isdigit() or int(amount) <= 0:
            raise PaymentError(f"{where}: amount_fen: {amount!r} is not a positive number of fen")
        if not row.get("reference"):
            raise PaymentError(f"{where}: reference is empty")
        at = row.get("at") or ""
        if len(at) < 19 or at[4] != "-" or at[10] != "T":
            raise PaymentError(f"{where}: at: {at!r} is not a UTC timestamp (YYYY-MM-DDTHH:MM:SS...Z)")
        out.append(Charge(reference=row["reference"], channel=row["channel"], amount_fen=int(amount),
                          status=ChargeStatus.APPROVED, gateway_ref=row.get("gateway_ref", ""),
                          bank=row.get("bank", ""), at=at))
    return out
