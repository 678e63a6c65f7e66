"""Quick-pay by the bound bank card and payment from the e-wallet, journal first.

Steps of a non-cash payment (each side effect written as an intent before it and
an outcome after it):

    open -> charge(intent) -> charge(done|failed) -> post(intent) -> post(done) -> close

The charge and the posting are idempotent by the payment id, so recovery after a
crash simply asks the gateway what happened to an undecided charge and re-posts an
unfinished posting; nothing is ever charged or posted twice.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from assistant import journal
from assistant.billing import Billing
from assistant.errors import BillingError, PaymentError
from assistant.messages import PaymentDone
from assistant.payments import (
    ChargeStatus,
    GatewayTimeout,
    PaymentDeclined,
    PaymentGateway,
    charge_with_recovery,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecoveryOutcome:
    """What recovery did with one unfinished payment."""

    payment_id: str
    result: str
    """posted, failed, or left (still undecided: the gateway cannot be reached)."""


class NonCashPayments:
    """Pays bills through payment gateways with a journal.

    Args:
        db: the kiosk database.
        billing: where payments are posted.
        gateways: channel (``card``/``ewallet``) -> gateway.
        kiosk_id: this kiosk, for postings.
        timeout_s: how long to wait for a gateway answer.
    """

    def __init__(self, db, billing: Billing, gateways: dict[str, PaymentGateway], kiosk_id: str, timeout_s: float = 10.0) -> None:
        self.db = db
        self.billing = billing
        self.gateways = gateways
        self.kiosk_id = kiosk_id
        self.timeout_s = timeout_s

    def available(self, method: str) -> bool:
        """True when a gateway for ``method`` is configured."""
        return method in self.gateways

    async def pay(self, payment_id: str, account_no: str, user_id: int | None, method: str, payer: str, amount_fen: int) -> PaymentDone:
        """Charge ``payer`` and post to billing; returns the outcome (never raises for a decline)."""
        gateway = self.gateways.get(method)
        if gateway is None:
            return PaymentDone(payment_id, ok=False, problem="method_unavailable")
        problem = await self.earlier_problem(account_no)
        if problem is not None:
            return PaymentDone(payment_id, ok=False, problem=problem)
        await journal.open_payment(self.db, payment_id, account_no, user_id, method, amount_fen, self.kiosk_id)
        await journal.append(self.db, payment_id, "charge", "intent", amount_fen, channel=method)
        try:
            charge = await charge_with_recovery(gateway, payment_id, payer, amount_fen, self.timeout_s)
        except PaymentDeclined as exc:
            await journal.append(self.db, payment_id, "charge", "failed", 0, reason=str(exc))
            await journal.append(self.db, payment_id, journal.CLOSE, "done", 0, result="declined")
            return PaymentDone(payment_id, ok=False, problem=exc.prompt_id)
        except GatewayTimeout as exc:
            # Undecided: leave the intent open; recovery will ask the gateway later.
            log.warning("payment %s: %s", payment_id, exc)
            return PaymentDone(payment_id, ok=False, problem=exc.prompt_id)
        except (PaymentError, OSError) as exc:
            # The line to the bank failed (refused, reset) or the bank answered something
            # that is not a decision: the charge may or may not have happened, so it is
            # undecided like a timeout, never "nothing charged".
            log.warning("payment %s: %s gateway failed: %s", payment_id, method, exc)
            return PaymentDone(payment_id, ok=False, problem=GatewayTimeout.prompt_id)
        await journal.append(
            self.db, payment_id, "charge", "done", charge.amount_fen, gateway_ref=charge.gateway_ref, bank=charge.bank
        )
        return await self._post(payment_id, account_no, method, amount_fen)

    async def earlier_problem(self, account_no: str, wait_s: float | None = None) -> str | None:
        """Why no new payment of ``account_no`` may start now, or None.

        An earlier card or e-wallet payment of this account whose answer was lost may have
        been charged: taking the money again now (by any method, cash included) would take
        it twice. The gateway is asked first (bounded by the payment timeout): a charge it
        confirms is posted (``payment_earlier_posted``); one it still cannot decide blocks
        the new payment (``payment_undecided``). The first one still undecided settles it:
        the rest are left for recovery, so a customer waits one gateway timeout, not one
        per earlier payment. ``wait_s`` shortens that wait (a customer standing at the
        cash screen): a bank that has not answered by then counts as undecided.
        """
        posted = False
        for payment_id in await self._unfinished_of(account_no):
            result = (await self._recover_one(payment_id, wait_s)).result
            if result == "left":
                return "payment_undecided"
            posted = posted or result == "posted"
        return "payment_earlier_posted" if posted else None

    async def _post(self, payment_id: str, account_no: str, method: str, amount_fen: int) -> PaymentDone:
        await journal.append(self.db, payment_id, "post", "intent", amount_fen)
        try:
            posting = await self.billing.post(f"{payment_id}-pay", account_no, amount_fen, "payment", method, self.kiosk_id)
        except BillingError as exc:
            # The money is taken but billing is down: the intent stays open and recovery
            # re-posts (idempotently) when billing answers again.
            log.error("payment %s: charged but not posted: %s", payment_id, exc)
            return PaymentDone(payment_id, ok=False, problem="payment_pending")
        await journal.append(self.db, payment_id, "post", "done", posting.amount_fen)
        await journal.append(self.db, payment_id, journal.CLOSE, "done", posting.amount_fen, result="posted")
        return PaymentDone(payment_id, ok=True, paid_fen=posting.amount_fen)

    async def _unfinished_of(self, account_no: str) -> list[str]:
        """Unfinished non-cash payments of one electricity account, oldest first."""
        out = []
        for method in self.gateways:
            for payment_id in await journal.unfinished(self.db, method):
                head = await journal.header(self.db, payment_id)
                if head is not None and head.account_no == account_no:
                    out.append(payment_id)
        return out

    async def recover(self) -> list[RecoveryOutcome]:
        """Resolve every unfinished non-cash payment (run at start-up)."""
        results: list[RecoveryOutcome] = []
        for method in self.gateways:
            for payment_id in await journal.unfinished(self.db, method):
                results.append(await self._recover_one(payment_id))
        return results

    async def _recover_one(self, payment_id: str, wait_s: float | None = None) -> RecoveryOutcome:
        head = await journal.header(self.db, payment_id)
        assert head is not None
        log_ = await journal.entries(self.db, payment_id)
        gateway = self.gateways[head.method]
        charged = journal.outcome(log_, "charge")
        if charged is None:
            if journal.has_intent(log_, "charge"):
                try:
                    # bounded: a bank that never answers must not hold up the kiosk's start
                    status = await asyncio.wait_for(gateway.status(payment_id), wait_s or self.timeout_s)
                except (PaymentError, OSError, TimeoutError):
                    return RecoveryOutcome(payment_id, "left")
            else:
                status = None
            if status is None or status.status is ChargeStatus.DECLINED:
                reason = "never_arrived" if status is None else status.reason
                await journal.append(self.db, payment_id, "charge", "failed", 0, reason=reason, recovered=True)
                await journal.append(self.db, payment_id, journal.CLOSE, "done", 0, result="failed")
                return RecoveryOutcome(payment_id, "failed")
            await journal.append(
                self.db, payment_id, "charge", "done", status.amount_fen,
                gateway_ref=status.gateway_ref, bank=status.bank, recovered=True,
            )
        elif charged.state == "failed":
            await journal.append(self.db, payment_id, journal.CLOSE, "done", 0, result="failed")
            return RecoveryOutcome(payment_id, "failed")
        done = await self._post(payment_id, head.account_no, head.method, head.due_fen)
        return RecoveryOutcome(payment_id, "posted" if done.ok else "left")
