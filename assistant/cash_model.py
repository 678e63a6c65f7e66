"""The kiosk's cash units as a model: stacking, capacities and the kiosk's own change-making.

:class:`KioskCash` takes one cash payment at a time the way
:class:`~assistant.cash_payment.CashPaymentService` does, without the hardware:

* each note is checked *before* it is stacked: if the change it would need cannot
  be paid (to within ``auto_credit_limit_fen``) from the payout stock, the kiosk
  would hand it back; the model then lets the customer credit the excess instead
  (what the kiosk offers) and counts a **change shortfall**;
* a note goes into the recycler's payout store while its denomination has room,
  otherwise into the cashbox; coins go into the hopper;
* once the amount is covered, the change is paid with
  :func:`assistant.change.best_change` over the stock (notes store and hopper
  together); what cannot be paid is credited, and a shortfall of 1 角 or more is a
  change shortfall too.

Change plans come from :class:`ChangeMaker`. ``exact`` calls the kiosk's change-making
on the model's exact stock for every payment. The Monte Carlo planner runs millions
of payments, and the kiosk's change-making costs 0.1-0.7 ms a call, so ``fast`` mode
calls the *same* functions on a coarsened view of the stock: counts above five are
rounded to the middle of buckets over which a piece's scarcity weight
(:func:`~assistant.change.piece_cost`) changes by at most a factor of 1.5, and each view gets one
:class:`~assistant.change.ChangeTable` (one solve answers every change amount that
uses the same denominations). A plan is used only if the real stock can pay every
piece of it and it pays all the 角; otherwise, and for every shortfall, the exact
stock decides. A shortfall is therefore always what the kiosk itself would have
found; only the choice between several exact payouts can differ, and
``bench/back_office.py`` measures what that changes (the verdict per cycle and the
lowest levels reached).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from assistant.change import ChangePlan, ChangeTable, best_change, piece_cost

NOTES, COINS = "notes", "coins"
KEYS: tuple[tuple[str, int], ...] = (
    (COINS, 10), (COINS, 50), (COINS, 100), (NOTES, 100), (NOTES, 500),
    (NOTES, 1000), (NOTES, 2000), (NOTES, 5000), (NOTES, 10000),
)
"""Payable stock, smallest first: the hopper's coins and the recycler store's notes."""
VALUES: tuple[int, ...] = tuple(v for _, v in KEYS)
INDEX: dict[tuple[str, int], int] = {k: i for i, k in enumerate(KEYS)}
IS_NOTE: tuple[bool, ...] = tuple(u == NOTES for u, _ in KEYS)
SMALLEST_PAYABLE_FEN = 10
"""No 分 coins: change below 1 角 is always credited (as the kiosk does)."""

# --- the coarsened view of the stock used by the fast change-maker -----------------------
def scarcity_edges(exact_below: int = 8, step: float = 1.25, top: int = 100_000) -> list[int]:
    """Bucket edges of piece counts: every count up to ``exact_below``, then buckets over
    which the scarcity part of :func:`~assistant.change.piece_cost` changes by at most ``step``."""
    edges = list(range(exact_below + 1))
    c = exact_below
    while c < top:
        target = 1000 + (piece_cost(c) - 1000) / step
        nxt = c + 1
        while piece_cost(nxt) > target and nxt < top:
            nxt = max(nxt + 1, int(nxt * 1.02))
        edges.append(nxt)
        c = nxt
    return edges


def _reps(edges: Sequence[int], exact_below: int) -> list[int]:
    # a bucket's representative: the geometric middle, so its scarcity weight is not biased
    out = []
    for i, e in enumerate(edges):
        hi = edges[i + 1] - 1 if i + 1 < len(edges) else e
        out.append(e if e <= exact_below else round((e * hi) ** 0.5))
    return out


_EXACT_BELOW = 5
_EDGES = scarcity_edges(_EXACT_BELOW, 1.5)
_REP = _reps(_EDGES, _EXACT_BELOW)
_LOOKUP = [bisect_right(_EDGES, c) - 1 for c in range(5001)]
_BAND = [bisect_right(VALUES, t * SMALLEST_PAYABLE_FEN) for t in range(VALUES[-1] // SMALLEST_PAYABLE_FEN)]
"""Change amount // 10 -> how many denominations are worth no more than it (below 100 元)."""
# change amounts (fen) that use the same denominations share one table: bands between values
_BAND_TOP = [VALUES[k] - SMALLEST_PAYABLE_FEN if k < len(VALUES) else 0 for k in range(len(VALUES) + 1)]
_MAX_TABLES = 20_000


def bucket(count: int) -> int:
    """The view bucket of a piece count."""
    return _LOOKUP[count] if count < len(_LOOKUP) else bisect_right(_EDGES, count) - 1


Piece = tuple[int, int, bool]
"""A compiled note or coin: (index into :data:`KEYS`, value in fen, is a note)."""


def compile_pieces(pieces: Sequence[tuple[str, int]]) -> tuple[Piece, ...]:
    """``(unit, value)`` pairs as :data:`Piece` (done once per payment of a history)."""
    return tuple((INDEX[(unit, v)], v, unit == NOTES) for unit, v in pieces)


@dataclass(frozen=True, slots=True)
class Payout:
    """Change paid by the model: pieces per stock index and the value."""

    pieces: tuple[tuple[int, int], ...]
    """(index into :data:`KEYS`, count)."""
    paid_fen: int


_NOTHING = Payout((), 0)


class ChangeMaker:
    """Plans change with the kiosk's change-making (:mod:`assistant.change`).

    Args:
        fast: plan over the coarsened view of the stock, with caches (Monte Carlo);
            otherwise :func:`~assistant.change.best_change` on the exact stock every time.
    """

    def __init__(self, fast: bool = False) -> None:
        self.fast = fast
        self._plans: dict[tuple[int, tuple[int, ...]], Payout] = {}
        self._tables: dict[tuple[int, ...], ChangeTable] = {}
        self.calls = 0
        """Plans asked for."""
        self.solved = 0
        """Times the change-making solved a stock (exact plans and new view tables)."""

    def exact(self, target_fen: int, counts: Sequence[int]) -> Payout:
        """The kiosk's plan on the exact stock."""
        self.solved += 1
        k = bisect_right(VALUES, target_fen)
        stock = {KEYS[i]: counts[i] for i in range(k) if counts[i] > 0}
        return _payout(best_change(target_fen, stock))

    def plan(self, target_fen: int, counts: Sequence[int]) -> Payout:
        """Change for ``target_fen`` that the stock ``counts`` can pay (see the module notes)."""
        self.calls += 1
        target = target_fen - target_fen % SMALLEST_PAYABLE_FEN
        if target <= 0:
            return _NOTHING
        if not self.fast:
            return self.exact(target, counts)
        t = target // SMALLEST_PAYABLE_FEN
        k = _BAND[t] if t < len(_BAND) else bisect_right(VALUES, target)
        lookup = _LOOKUP
        view = tuple([lookup[c] if c < 5001 else bucket(c) for c in counts[:k]])
        key = (target, view)
        p = self._plans.get(key)
        if p is None:
            p = self._plan_view(target, k, view)
            if len(self._plans) > 40 * _MAX_TABLES:
                self._plans.clear()
            self._plans[key] = p
        if p.paid_fen == target:
            for i, n in p.pieces:
                if counts[i] < n:
                    break
            else:
                return p
        return self.exact(target, counts)

    def _plan_view(self, target: int, k: int, view: tuple[int, ...]) -> Payout:
        if k >= len(VALUES):  # 100 元 or more of change: rare, solved on its own
            self.solved += 1
            return _payout(best_change(target, {KEYS[i]: _REP[b] for i, b in enumerate(view) if b > 0}))
        table = self._tables.get(view)
        if table is None:
            self.solved += 1
            if len(self._tables) >= _MAX_TABLES:
                self._tables.clear()
            stock = {KEYS[i]: _REP[b] for i, b in enumerate(view) if b > 0}
            table = self._tables[view] = ChangeTable(_BAND_TOP[k], stock)
        return _payout(table.best(target))


def _payout(plan: ChangePlan) -> Payout:
    pieces = [(INDEX[key], n) for key, n in plan.counts.items() if n]
    pieces.sort()
    return Payout(tuple(pieces), sum(VALUES[i] * n for i, n in pieces))


@dataclass(frozen=True)
class Capacities:
    """What each part of the kiosk holds."""

    store: Mapping[int, int]
    """Recycler payout store: note value -> pieces."""
    cashbox: int
    """Recycler cashbox: notes in all."""
    hopper: Mapping[int, int]
    """Coin hopper: coin value -> pieces."""

    def of_index(self) -> list[int]:
        """Capacity per :data:`KEYS` index."""
        return [self.store.get(v, 0) if IS_NOTE[i] else self.hopper.get(v, 0) for i, v in enumerate(VALUES)]


@dataclass(slots=True)
class PaymentResult:
    """What one cash payment did to the model (exact mode keeps the details for a journal)."""

    inserted_fen: int
    change_due_fen: int
    """Change owed (0 when the customer credited the excess)."""
    change_paid_fen: int
    credited_fen: int
    shortfall: bool
    """True when change could not be paid down to the 角 (or a note needed the excess credited)."""
    routes: list[str]
    """For each piece inserted: ``store``, ``cashbox``, ``hopper`` or ``refused`` (full)."""
    payout: Payout
    excess_to_credit: bool


class KioskCash:
    """The payout stock, cashbox and hopper of one kiosk, and its way of taking a payment.

    Args:
        counts: starting stock per :data:`KEYS` index (the float).
        capacities: store, cashbox and hopper sizes.
        maker: the change planner.
        auto_credit_limit_fen: change that cannot be paid, below this, is credited without
            handing the note back (``[cash] auto_credit_limit_fen``).
    """

    def __init__(self, counts: Sequence[int], capacities: Capacities, maker: ChangeMaker,
                 auto_credit_limit_fen: int = 100) -> None:
        self.counts = list(counts)
        self.caps = capacities.of_index()
        self.cashbox_cap = capacities.cashbox
        self.cashbox: dict[int, int] = {}
        self.cashbox_notes = 0
        self.maker = maker
        self.limit = auto_credit_limit_fen
        self.refused = 0
        """Pieces a full cashbox or hopper could not take."""
        self.cash_fen = sum(v * n for v, n in zip(VALUES, self.counts, strict=True))
        """All cash inside the kiosk (stock and cashbox)."""

    def pay(self, due_fen: int, pieces: Sequence[tuple[str, int]] | Sequence[Piece]) -> PaymentResult:
        """Take one cash payment (pieces in the order the customer inserts them).

        ``pieces`` are ``(unit, value)`` pairs, or the same compiled by :func:`compile_pieces`.
        """
        if pieces and len(pieces[0]) == 2:
            pieces = compile_pieces(pieces)  # type: ignore[arg-type]
        counts, caps, maker, limit = self.counts, self.caps, self.maker, self.limit
        inserted = 0
        credit_excess = False
        shortfall = False
        routes: list[str] = []
        checked: tuple[int, Payout] | None = None
        for i, v, note in pieces:  # type: ignore[misc]
            total = inserted + v
            if note and total > due_fen and not credit_excess:
                change = total - due_fen
                p = maker.plan(change, counts)
                checked = (change, p)
                if change - p.paid_fen >= limit:
                    # the kiosk would hand the note back; the customer credits the excess
                    shortfall = credit_excess = True
            if counts[i] < caps[i]:
                counts[i] += 1
                routes.append("store" if note else "hopper")
            elif note and self.cashbox_notes < self.cashbox_cap:
                self.cashbox[v] = self.cashbox.get(v, 0) + 1
                self.cashbox_notes += 1
                routes.append("cashbox")
            else:
                self.refused += 1
                routes.append("refused")
                continue
            inserted = total
        excess = inserted - min(inserted, due_fen)
        target = 0 if credit_excess else excess
        payout = _NOTHING
        if target >= SMALLEST_PAYABLE_FEN:
            if checked is not None and checked[0] == target:
                # the note checked was the last piece and is worth more than its change: the stock
                # that can pay the change is what the check saw, so the plan is the same
                payout = checked[1]
            else:
                payout = maker.plan(target, counts)
            for i, n in payout.pieces:
                counts[i] -= n
            if target - payout.paid_fen >= SMALLEST_PAYABLE_FEN:
                shortfall = True
        self.cash_fen += inserted - payout.paid_fen
        return PaymentResult(
            inserted_fen=inserted, change_due_fen=target, change_paid_fen=payout.paid_fen,
            credited_fen=excess - payout.paid_fen, shortfall=shortfall, routes=routes,
            payout=payout, excess_to_credit=credit_excess,
        )

    def culprits(self, target_fen: int) -> list[int]:
        """Stock indices (value <= target) that are empty: what a shortfall ran out of."""
        k = bisect_right(VALUES, target_fen)
        return [i for i in range(k) if self.counts[i] == 0]
