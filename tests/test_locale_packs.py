"""Every locale pack's test sentences (generated from locales/<pack>/tests/*.yaml).

Run one pack with ``pytest --pack yue``. Inherited tests run under the child pack too,
so a dialect that breaks a base sentence is caught.
"""

from __future__ import annotations

from assistant.locale_check import evaluate_test


def test_sentence(pack_case) -> None:
    pack, test = pack_case
    failure = evaluate_test(pack, test)
    assert failure is None, f"{test.file}:{test.line}: {failure}"
