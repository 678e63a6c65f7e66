"""Cash reconciliation: every fen taken in is posted, paid back or credited - or it is listed.

For each cash payment the journal gives what was inserted, what went back out
(change or refund, as the units reported it) and what was posted and credited;
billing must hold a matching posting for each. The books (``cash_unit``) must
equal what the movements add up to. Anything that does not add up is a
discrepancy with the payment id and the amounts, for the daily report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from assistant import cash_journal
from assistant.billing import Billing
from assistant.storage import Database


@dataclass(frozen=True)
class PaymentLine:
    """One cash payment in the reconciliation."""

    payment_id: str
    account_no: str
    closed: bool
    outcome: str
    inserted_fen: int
    paid_out_fen: int
    posted_fen: int
    credited_fen: int

    @property
    def unaccounted_fen(self) -> int:
        """Inserted minus everything it went to (0 when the payment adds up)."""
        return self.inserted_fen - self.paid_out_fen - self.posted_fen - self.credited_fen


@dataclass(frozen=True)
class CashReconciliation:
    """The result: one line per payment, totals, and what does not add up."""

    lines: tuple[PaymentLine, ...]
    discrepancies: tuple[str, ...]
    books: Mapping[str, Mapping[int, int]] = field(default_factory=dict)
    """unit -> value -> count, as the kiosk's books say."""

    @property
    def ok(self) -> bool:
        """True when every payment is closed and every fen is accounted for."""
        return not self.discrepancies

    def total(self, attr: str) -> int:
        """Sum of one field over all payments, e.g. ``total("inserted_fen")``."""
        return sum(getattr(line, attr) for line in self.lines)


async def reconcile_cash(db: Database, billing: Billing, since: str = "") -> CashReconciliation:
    """Check every cash payment (created at or after ``since``, ISO time) against billing and the books."""
    rows = await db.fetchall(
        "SELECT id FROM payment WHERE method = 'cash' AND created_at >= ? ORDER BY created_at, rowid",
        (since,),
    )
    lines: list[PaymentLine] = []
    problems: list[str] = []
    for (pid,) in rows:
        st = await cash_journal.load(db, pid)
        assert st is not None
        line = PaymentLine(
            payment_id=pid, account_no=st.account_no, closed=st.closed,
            outcome=str(st.summary.get("outcome", "")), inserted_fen=st.inserted_fen,
            paid_out_fen=st.paid_out_fen(), posted_fen=st.posted_fen, credited_fen=st.credited_fen,
        )
        lines.append(line)
        if not st.closed:
            problems.append(f"{pid}: still open (inserted {st.inserted_fen} fen)")
            continue
        if line.unaccounted_fen:
            problems.append(
                f"{pid}: inserted {line.inserted_fen} fen but paid out {line.paid_out_fen}, "
                f"posted {line.posted_fen}, credited {line.credited_fen}"
            )
        if st.post is not None and st.post["done"]:
            posting = await billing.posting(st.post["reference"])
            if posting is None or posting.amount_fen != st.posted_fen or posting.kind != "payment":
                problems.append(f"{pid}: billing has no payment posting of {st.posted_fen} fen")
        for c in st.credits:
            posting = await billing.posting(c["reference"])
            if c["done"] and (posting is None or posting.amount_fen != int(c["amount"])
                              or posting.kind != "prepayment"):
                problems.append(f"{pid}: billing has no prepayment posting {c['reference']}")
        receipt = await db.fetchone("SELECT 1 FROM receipt WHERE payment_id = ?", (pid,))
        if receipt is None:
            problems.append(f"{pid}: closed without a stored receipt")
    books: dict[str, dict[int, int]] = {}
    for r in await db.fetchall("SELECT unit, denomination_fen, count FROM cash_unit"):
        books.setdefault(r[0], {})[int(r[1])] = int(r[2])
    moved: dict[str, dict[int, int]] = {}
    for r in await db.fetchall(
        "SELECT unit, denomination_fen, sum(delta) FROM cash_movement GROUP BY unit, denomination_fen"
    ):
        moved.setdefault(r[0], {})[int(r[1])] = int(r[2])
    for unit, values in books.items():
        for value, count in values.items():
            if count != max(moved.get(unit, {}).get(value, 0), 0):
                problems.append(
                    f"books: {unit} {value} fen shows {count}, movements add up to "
                    f"{moved.get(unit, {}).get(value, 0)}"
                )
    return CashReconciliation(lines=tuple(lines), discrepancies=tuple(problems), books=books)
