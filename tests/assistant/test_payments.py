"""Sandbox bank and e-wallet: tokenising, idempotent charges, declines, lost answers, settlement."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from assistant.payments import (
    ChargeStatus,
    GatewayTimeout,
    PaymentDeclined,
    SandboxConfig,
    SandboxGateway,
    SandboxTokenizer,
    charge_with_recovery,
)

CARD = "6222021234567897"


@pytest.fixture
async def bank(db):
    gw = SandboxGateway(db, "card", SandboxConfig(latency_s=0.0, timeout_s=0.2, card_limit_fen=300_000))
    await gw.ensure_schema()
    return gw


async def test_tokenize_keeps_no_card_number(db, bank) -> None:
    tok = SandboxTokenizer(db)
    t1 = await tok.tokenize(CARD, "工商银行")
    t2 = await tok.tokenize(CARD, "工商银行")
    assert t1 == t2 and t1.last4 == "7897" and t1.token.startswith("tok_")
    dump = "\n".join(str(tuple(r)) for r in await db.fetchall("SELECT * FROM sandbox_card"))
    assert CARD not in dump


async def test_charge_is_idempotent(db, bank) -> None:
    tok = await SandboxTokenizer(db).tokenize(CARD, "工商银行")
    a = await bank.charge("P1", tok.token, 12345)
    b = await bank.charge("P1", tok.token, 12345)
    assert a == b and a.status is ChargeStatus.APPROVED and a.bank == "工商银行"
    row = await db.fetchone("SELECT balance_fen FROM sandbox_card WHERE token = ?", (tok.token,))
    assert row[0] == 1_000_000 - 12345  # charged once


async def test_decline_over_limit_and_unknown_card(db, bank) -> None:
    tok = await SandboxTokenizer(db).tokenize(CARD, "工商银行")
    with pytest.raises(PaymentDeclined, match="over_limit"):
        await charge_with_recovery(bank, "P2", tok.token, 300_001, timeout=1)
    with pytest.raises(PaymentDeclined, match="unknown_card"):
        await charge_with_recovery(bank, "P3", "tok_nope", 100, timeout=1)


async def test_lost_answer_is_recovered_by_status_query(db, bank) -> None:
    tok = await SandboxTokenizer(db).tokenize(CARD, "工商银行")
    bank.hang_next = 1
    charge = await charge_with_recovery(bank, "P4", tok.token, 5000, timeout=0.2)
    assert charge.status is ChargeStatus.APPROVED
    rows = await db.fetchall("SELECT count(*) FROM sandbox_charge WHERE reference = 'P4'")
    assert rows[0][0] == 1
    row = await db.fetchone("SELECT balance_fen FROM sandbox_card WHERE token = ?", (tok.token,))
    assert row[0] == 1_000_000 - 5000


class Unreachable(SandboxGateway):
    """A gateway whose every call hangs (network down)."""

    async def charge(self, reference, payer, amount_fen):
        await asyncio.sleep(10)

    async def status(self, reference):
        await asyncio.sleep(10)


async def test_unreachable_gateway_times_out_without_charging(db) -> None:
    gw = Unreachable(db, "ewallet")
    await gw.ensure_schema()
    with pytest.raises(GatewayTimeout):
        await charge_with_recovery(gw, "P5", "EW1", 100, timeout=0.05)
    assert (await db.fetchone("SELECT count(*) FROM sandbox_charge"))[0] == 0


async def test_wallet_and_settlement_file(db) -> None:
    wallet = SandboxGateway(db, "ewallet", SandboxConfig(latency_s=0.0))
    await wallet.ensure_schema()
    await wallet.charge("P6", "EW3100012345", 8650)
    await wallet.charge("P7", "EW3100012345", 1_000_000)  # more than the balance left
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    settled = await wallet.settlements(today)
    assert [(c.reference, c.amount_fen) for c in settled] == [("P6", 8650)]
    declined = await wallet.status("P7")
    assert declined is not None and declined.reason == "insufficient_funds"
