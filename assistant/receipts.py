"""Receipt data for a payment, rebuilt from the journal (so any receipt can be reprinted).

Only structured fields live here; the words and the layout come from the locale
pack and the printer module. A receipt is built from the same journal that drives
crash recovery, so the receipt of a payment resolved after a crash says exactly
what happened to every fen: posted to the bill, paid back as change, or credited
to the electricity account.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from assistant import cash_journal
from assistant.cash_journal import Outcome, PaymentState
from assistant.errors import PaymentError
from assistant.storage import Database


@dataclass(frozen=True)
class ReceiptData:
    """Everything a cash receipt shows, in fen and plain values."""

    reference: str
    """The payment id (also the billing reference prefix)."""
    kiosk_id: str
    account_no: str
    """Full account number; mask it when rendering."""
    method: str
    due_fen: int
    """Amount due when the payment started."""
    inserted_fen: int
    """Cash taken in."""
    inserted: tuple[tuple[int, int], ...]
    """(value in fen, pieces) inserted, largest first."""
    change_due_fen: int
    """Change the customer was owed (0 when the excess was credited or on cancel)."""
    change_paid_fen: int
    """Change actually paid out."""
    change: tuple[tuple[int, int], ...]
    """(value, pieces) paid out as change."""
    refunded_fen: int
    """Cash paid back after a cancel."""
    credited_fen: int
    """Credited to the electricity account as prepayment (分, empty hopper, chosen, or recovered)."""
    posted_fen: int
    """Posted to the bill."""
    outcome: str
    """paid, partial, cancelled or recovered."""
    opened_at: str
    closed_at: str
    recovered: bool
    """True when the payment was finished after a crash or a lost unit."""
    faults: tuple[str, ...]
    """Device faults seen during the payment (``unit:fault``)."""

    def to_json(self) -> str:
        """The receipt as JSON (stored in the ``receipt`` table)."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ReceiptData:
        """Parse what :meth:`to_json` wrote."""
        raw: dict[str, Any] = json.loads(text)
        for key in ("inserted", "change", "faults"):
            raw[key] = tuple(tuple(x) if isinstance(x, list) else x for x in raw[key])
        return cls(**raw)


def _pairs(counts: dict[int, int]) -> tuple[tuple[int, int], ...]:
    return tuple((v, n) for v, n in sorted(counts.items(), reverse=True) if n)


def receipt_from_state(st: PaymentState) -> ReceiptData:
    """Build the receipt of a closed payment from its journal state."""
    if not st.closed:
        raise PaymentError(f"payment {st.payment_id} is not finished; no receipt yet")
    s = st.summary
    return ReceiptData(
        reference=st.payment_id,
        kiosk_id=st.kiosk_id,
        account_no=st.account_no,
        method="cash",
        due_fen=st.due_fen,
        inserted_fen=st.inserted_fen,
        inserted=_pairs(st.inserted_counts),
        change_due_fen=int(s.get("change_due_fen", 0)),
        change_paid_fen=st.paid_out_fen("change"),
        change=_pairs(st.dispensed_counts("change")),
        refunded_fen=st.paid_out_fen("refund"),
        credited_fen=st.credited_fen,
        posted_fen=st.posted_fen,
        outcome=str(s.get("outcome", Outcome.PAID)),
        opened_at=st.opened_at,
        closed_at=st.closed_at,
        recovered=st.recovered,
        faults=tuple(st.faults),
    )


async def receipt_for(db: Database, payment_id: str) -> ReceiptData:
    """The receipt of a finished payment, rebuilt from its journal (for printing or reprinting).

    Raises :class:`PaymentError` if there is no such payment or it is not finished.
    """
    st = await cash_journal.load(db, payment_id)
    if st is None:
        raise PaymentError(f"no payment {payment_id}")
    return receipt_from_state(st)


def printable(r: ReceiptData) -> dict[str, Any]:
    """The receipt as the fields the receipt printer prints (as the dialog gives them at the end
    of a payment): masked account, money as :class:`~assistant.messages.Amount`, the serial
    number (the payment id's last six digits) as :class:`~assistant.messages.Digits`, and the
    time the payment closed."""
    from assistant.customers import mask_account
    from assistant.messages import Amount, Digits

    return {
        "payment": r.reference,
        "account": mask_account(r.account_no),
        "amount": Amount(r.posted_fen),
        "paid": Amount(r.posted_fen),
        "inserted": Amount(r.inserted_fen),
        "change": Amount(r.change_paid_fen),
        "credited": Amount(r.credited_fen),
        "reference": Digits(r.reference[-6:]),
        "at": r.closed_at,
    }
