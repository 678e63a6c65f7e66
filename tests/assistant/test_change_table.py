"""ChangeTable: one solve answers every amount exactly as best_change does."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assistant.change import ChangeTable, best_change

KEYS = (("coins", 10), ("coins", 50), ("coins", 100), ("notes", 100), ("notes", 500), ("notes", 1000),
        ("notes", 2000), ("notes", 5000), ("notes", 10000))
stocks = st.dictionaries(st.sampled_from(KEYS), st.sampled_from((0, 1, 2, 3, 5, 8, 20, 60, 300)), min_size=1)


@settings(max_examples=200, deadline=None)
@given(stock=stocks, top=st.sampled_from((0, 40, 90, 490, 990, 4990, 9990)), data=st.data())
def test_every_amount_gets_best_changes_plan(stock: dict, top: int, data) -> None:
    table = ChangeTable(top, stock)
    for target in data.draw(st.lists(st.integers(min_value=0, max_value=top), min_size=1, max_size=8)):
        assert table.best(target) == best_change(target, stock)


def test_a_scarce_note_is_spared_in_the_table_too() -> None:
    table = ChangeTable(9990, {5000: 1, 2000: 40, 1000: 40})
    assert dict(table.best(5000).counts) == {2000: 2, 1000: 1}
    assert table.best(5005).remainder_fen == 5
    with pytest.raises(ValueError, match="beyond this table"):
        table.best(10000)
