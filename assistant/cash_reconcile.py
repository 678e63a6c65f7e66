"""Cash reconciliation: every fen taken in is posted, paid back or credited - or it is listed.

For each cash payment the journal gives what was inserted, what went back out
(change or refund, as the units reported it) and what was posted and credited;
billing must hold a matching posting for each. The books (``cash_unit``) must
equal what the movements add up to. Anything that does not add up is a
discrepancy with the payment id and the amounts, for the daily report.

:func:`check_payment` and :func:`check_books` are the checks themselves, on data
already read; :func:`reconcile_cash` reads one payment at a time for them, and the
daily report (:mod:`assistant.reconcile`) reads a whole day (or year) at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from assistant import cash_journal
from assistant.billing import Billing, Posting
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


@dataclass(frozen=True)
class CashProblem:
    """One thing about a cash payment that does not add up."""

    kind: str
    """open, unaccounted, missing_posting, posting_amount or receipt_missing."""
    payment_id: str
    message: str
    reference: str = ""
    """The billing reference concerned (posting problems)."""
    amount_fen: int = 0
    """The money concerned."""

    def __str__(self) -> str:
        return self.message


def check_payment(
    st: cash_journal.PaymentState, postings: Mapping[str, Posting | None], has_receipt: bool
) -> tuple[PaymentLine, list[CashProblem]]:
    """One cash payment against billing: its line and what does not add up.

    Args:
        st: the payment's journal, replayed.
        postings: billing's posting for each reference the journal names (None: billing has none).
        has_receipt: whether a receipt was stored for it.
    """
    pid = st.payment_id
    line = PaymentLine(
        payment_id=pid, account_no=st.account_no, closed=st.closed,
        outcome=str(st.summary.get("outcome", "")), inserted_fen=st.inserted_fen,
        paid_out_fen=st.paid_out_fen(), posted_fen=st.posted_fen, credited_fen=st.credited_fen,
    )
    problems: list[CashProblem] = []
    if not st.closed:
        problems.append(CashProblem("open", pid, f"{pid}: still open (inserted {st.inserted_fen} fen)",
                                    amount_fen=st.inserted_fen))
        return line, problems
    if line.unaccounted_fen:
        problems.append(CashProblem(
            "unaccounted", pid,
            f"{pid}: inserted {line.inserted_fen} fen but paid out {line.paid_out_fen}, "
            f"posted {line.posted_fen}, credited {line.credited_fen}", amount_fen=line.unaccounted_fen,
        ))
    expected = []
    if st.post is not None and st.post["done"]:
        expected.append((st.post["reference"], "payment", st.posted_fen))
    expected += [(c["reference"], "prepayment", int(c["amount"])) for c in st.credits if c["done"]]
    for reference, kind, amount in expected:
        posting = postings.get(reference)
        if posting is None:
            problems.append(CashProblem("missing_posting", pid,
                                        f"{pid}: billing has no {kind} posting of {amount} fen ({reference})",
                                        reference, amount))
        elif posting.amount_fen != amount or posting.kind != kind:
            problems.append(CashProblem(
                "posting_amount", pid,
                f"{pid}: billing posted {posting.amount_fen} fen as {posting.kind} under {reference}; "
                f"the journal says {amount} fen as {kind}", reference, posting.amount_fen - amount,
            ))
    if not has_receipt:
        problems.append(CashProblem("receipt_missing", pid, f"{pid}: closed without a stored receipt"))
    return line, problems


def posting_references(st: cash_journal.PaymentState) -> list[str]:
    """The billing references a cash payment's journal names (payment and credits)."""
    refs = [st.post["reference"]] if st.post is not None else []
    return refs + [c["reference"] for c in st.credits]


def check_books(books: Mapping[str, Mapping[int, int]], moved: Mapping[str, Mapping[int, int]]) -> list[str]:
    """The books (``cash_unit``) against what the cash movements add up to."""
    problems = []
    for unit, values in books.items():
        for value, count in values.items():
            if count != max(moved.get(unit, {}).get(value, 0), 0):
                problems.append(
                    f"books: {unit} {value} fen shows {count}, movements add up to "
                    f"{moved.get(unit, {}).get(value, 0)}"
                )
    return problems


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
        postings = {ref: await billing.posting(ref) for ref in posting_references(st)}
        receipt = await db.fetchone("SELECT 1 FROM receipt WHERE payment_id = ?", (pid,))
        line, found = check_payment(st, postings, receipt is not None)
        lines.append(line)
        problems += [str(p) for p in found]
    books = await cash_journal.read_books(db)
    moved: dict[str, dict[int, int]] = {}
    for r in await db.fetchall(
        "SELECT unit, denomination_fen, sum(delta) FROM cash_movement GROUP BY unit, denomination_fen"
    ):
        moved.setdefault(r[0], {})[int(r[1])] = int(r[2])
    problems += check_books(books, moved)
    return CashReconciliation(lines=tuple(lines), discrepancies=tuple(problems), books=books)
