"""Quick-pay and e-wallet payments with the journal, including recovery after a crash."""

from __future__ import annotations

import asyncio

import pytest

from assistant import journal
from assistant.billing import LedgerBilling
from assistant.noncash import NonCashPayments, RecoveryOutcome
from assistant.payments import SandboxConfig, SandboxGateway, SandboxTokenizer
from assistant.seed import seed

ACCOUNT = "3100012345"  # 123.45 元 owed in the demo data


@pytest.fixture
async def world(db, tmp_path):
    await seed(db, tmp_path)
    cfg = SandboxConfig(latency_s=0.0, timeout_s=0.2)
    card = SandboxGateway(db, "card", cfg)
    wallet = SandboxGateway(db, "ewallet", cfg)
    await card.ensure_schema()
    token = await SandboxTokenizer(db).tokenize("6222021234567897", "工商银行")
    billing = LedgerBilling(db)
    svc = NonCashPayments(db, billing, {"card": card, "ewallet": wallet}, "K001", timeout_s=0.2)
    return svc, billing, card, wallet, token


async def test_card_payment_posts_and_journals(world, db) -> None:
    svc, billing, card, _, token = world
    done = await svc.pay("P100", ACCOUNT, None, "card", token.token, 12345)
    assert done.ok and done.paid_fen == 12345
    assert (await billing.account(ACCOUNT)).arrears_fen == 0
    steps = [(e.step, e.state) for e in await journal.entries(db, "P100")]
    assert steps == [("open", "done"), ("charge", "intent"), ("charge", "done"),
                     ("post", "intent"), ("post", "done"), ("close", "done")]
    assert await journal.unfinished(db) == []


async def test_decline_is_closed_and_nothing_posted(world, db) -> None:
    svc, billing, _, _, _ = world
    done = await svc.pay("P101", ACCOUNT, None, "card", "tok_unknown", 12345)
    assert not done.ok and done.problem == "payment_declined"
    assert (await billing.account(ACCOUNT)).arrears_fen == 12345
    assert await billing.posting("P101-pay") is None


async def test_lost_answers_leave_it_undecided_then_recovery_posts(world, db) -> None:
    svc, billing, card, _, token = world
    card.hang_next = 1  # the charge's answer is lost on the way back
    done = await svc.pay("P102", ACCOUNT, None, "card", token.token, 12345)
    # The bank charged but the status query answered: the payment completes.
    assert done.ok
    assert (await db.fetchone("SELECT count(*) FROM sandbox_charge WHERE reference='P102'"))[0] == 1


async def test_crash_between_charge_and_post_is_recovered(world, db) -> None:
    svc, billing, card, _, token = world
    # Simulate the process dying right after the charge: journal has charge done, no post.
    await journal.open_payment(db, "P103", ACCOUNT, None, "card", 12345, "K001")
    await journal.append(db, "P103", "charge", "intent", 12345)
    charge = await card.charge("P103", token.token, 12345)
    await journal.append(db, "P103", "charge", "done", 12345, gateway_ref=charge.gateway_ref)
    results = await svc.recover()
    assert [(r.payment_id, r.result) for r in results] == [("P103", "posted")]
    assert (await billing.account(ACCOUNT)).arrears_fen == 0
    # Recovery again is a no-op: nothing is posted twice.
    assert await svc.recover() == []
    assert (await db.fetchone("SELECT count(*) FROM billing_posting"))[0] == 1


async def test_crash_with_undecided_charge_asks_the_bank(world, db) -> None:
    svc, billing, card, _, token = world
    # Intent written, charge never reached the bank.
    await journal.open_payment(db, "P104", ACCOUNT, None, "card", 12345, "K001")
    await journal.append(db, "P104", "charge", "intent", 12345)
    # Intent written and the bank did charge, but the kiosk died before hearing back.
    await journal.open_payment(db, "P105", "3100023456", None, "card", 8650, "K001")
    await journal.append(db, "P105", "charge", "intent", 8650)
    await card.charge("P105", token.token, 8650)
    results = {r.payment_id: r.result for r in await svc.recover()}
    assert results == {"P104": "failed", "P105": "posted"}
    assert (await billing.account(ACCOUNT)).arrears_fen == 12345
    assert (await billing.account("3100023456")).arrears_fen == 0


async def test_ewallet_payment(world) -> None:
    svc, billing, _, wallet, _ = world
    done = await svc.pay("P106", "3100023456", None, "ewallet", "EW3100023456", 8650)
    assert done.ok
    settled = await wallet.status("P106")
    assert settled is not None and settled.amount_fen == 8650


class Unreachable(SandboxGateway):
    """The bank's line is down: every call fails at once (connection refused)."""

    async def charge(self, reference, payer, amount_fen):
        raise ConnectionRefusedError(111, "Connection refused")

    async def status(self, reference):
        raise ConnectionRefusedError(111, "Connection refused")


class LostAnswers(SandboxGateway):
    """The bank charges, but its answers (to the charge and the first status queries) are lost."""

    lost_status = 0

    async def status(self, reference):
        if self.lost_status > 0:
            self.lost_status -= 1
            await asyncio.sleep(self.config.timeout_s * 2)
        return await super().status(reference)


async def test_gateway_that_fails_outright_leaves_the_payment_undecided(world, db) -> None:
    """A refused connection is not a decline (maybe the charge went through): the customer
    is told the bank did not answer, and the payment waits for the bank, nothing posted."""
    svc, billing, _, _, token = world
    svc.gateways["card"] = Unreachable(db, "card", SandboxConfig(latency_s=0.0, timeout_s=0.2))
    done = await svc.pay("P110", ACCOUNT, None, "card", token.token, 12345)
    assert (done.ok, done.problem) == (False, "payment_timeout")
    assert await journal.unfinished(db, "card") == ["P110"]
    assert (await billing.account(ACCOUNT)).arrears_fen == 12345
    assert await svc.recover() == [RecoveryOutcome("P110", "left")]


async def test_second_payment_while_the_first_is_undecided_charges_once(world, db) -> None:
    """The first card payment's answers are lost (the bank did charge); the customer tries
    again at once. The kiosk must ask the bank about the first one before charging again."""
    svc, billing, card, _, token = world
    lost = LostAnswers(db, "card", SandboxConfig(latency_s=0.0, timeout_s=0.2))
    svc.gateways["card"] = lost
    lost.hang_next, lost.lost_status = 1, 1
    first = await svc.pay("P111", ACCOUNT, None, "card", token.token, 12345)
    assert (first.ok, first.problem) == (False, "payment_timeout")
    # still undecided when the customer tries again: no second charge
    lost.lost_status = 1
    again = await svc.pay("P112", ACCOUNT, None, "card", token.token, 12345)
    assert (again.ok, again.problem) == (False, "payment_undecided")
    assert await journal.header(db, "P112") is None
    # the bank answers now: the first payment is posted and the second charges nothing
    third = await svc.pay("P113", ACCOUNT, None, "card", token.token, 12345)
    assert (third.ok, third.problem) == (False, "payment_earlier_posted")
    charges = await db.fetchall("SELECT reference FROM sandbox_charge")
    assert [r[0] for r in charges] == ["P111"]
    assert (await billing.account(ACCOUNT)).arrears_fen == 0
    assert (await db.fetchone("SELECT sum(amount_fen) FROM billing_posting"))[0] == 12345
    assert await journal.unfinished(db) == []


async def test_several_undecided_payments_hold_the_customer_one_wait_not_one_each(world, db) -> None:
    """Cash waits while the bank is asked about undecided card payments of the account. With
    the bank silent, the first still-undecided one already decides (no new payment), so the
    customer waits one gateway timeout, not one per earlier payment."""
    import time

    svc, _, _, _, _ = world
    silent = LostAnswers(db, "card", SandboxConfig(latency_s=0.0, timeout_s=0.2))
    silent.lost_status = 100
    svc.gateways["card"] = silent
    for n in range(5):
        await journal.open_payment(db, f"P12{n}", ACCOUNT, None, "card", 12345, "K001")
        await journal.append(db, f"P12{n}", "charge", "intent", 12345, channel="card")
    started = time.monotonic()
    assert await svc.earlier_problem(ACCOUNT) == "payment_undecided"
    assert time.monotonic() - started < 0.5
    assert len(await journal.unfinished(db, "card")) == 5  # still waiting for the bank, nothing lost
