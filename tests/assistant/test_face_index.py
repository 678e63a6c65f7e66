"""1:N search: exact top-two owners, removal, and the inverted-file fast path against exact search."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.face_index import EmbeddingIndex


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def population(n: int, dim: int = 64, seed: int = 0) -> np.ndarray:
    """Identities with the structure of real embeddings: a shared direction plus a low-rank spread."""
    rng = np.random.default_rng(seed)
    common = unit(rng.standard_normal(dim))
    basis = np.linalg.qr(rng.standard_normal((dim, 16)))[0]
    return unit(0.4 * common + (rng.standard_normal((n, 16)) @ basis.T) * 0.25 + 0.05 * rng.standard_normal((n, dim)))


def probe(x: np.ndarray, cos: float, rng: np.random.Generator) -> np.ndarray:
    """A query at cosine ``cos`` from ``x`` (a new photo of the same person)."""
    e = rng.standard_normal(x.shape[0])
    e -= (e @ x) * x
    return unit(cos * x + np.sqrt(1 - cos**2) * unit(e))


def test_top_two_distinct_owners_and_margin():
    idx = EmbeddingIndex(dim=3, ivf_min_size=0)
    idx.add(1, owner=10, vector=np.array([1.0, 0, 0]))
    idx.add(2, owner=10, vector=np.array([0.9, 0.1, 0]))  # a second template of the same person
    idx.add(3, owner=20, vector=np.array([0.6, 0.8, 0]))
    idx.add(4, owner=30, vector=np.array([0, 0, 1.0]))
    r = idx.search(np.array([1.0, 0.05, 0]))
    assert r.exact and r.best.owner == 10 and r.second.owner == 20
    # the owner's best template counts: [1, 0, 0] scores 1/sqrt(1 + 0.05^2)
    assert r.best.score == pytest.approx(1 / np.sqrt(1.0025), abs=1e-6)
    assert r.second.score == pytest.approx(float(unit(np.array([1.0, 0.05, 0])) @ np.array([0.6, 0.8, 0])), abs=1e-6)
    assert r.margin == pytest.approx(r.best.score - r.second.score)
    assert len(idx) == 4 and idx.owners() == {10, 20, 30}


def test_removal_by_owner_and_key():
    idx = EmbeddingIndex(dim=3, ivf_min_size=0)
    idx.add(1, 10, np.array([1.0, 0, 0]))
    idx.add(2, 20, np.array([0.8, 0.6, 0]))
    idx.add(3, 30, np.array([0, 1.0, 0]))
    assert idx.remove_owner(10) == 1
    r = idx.search(np.array([1.0, 0, 0]))
    assert r.best.owner == 20 and r.second.owner == 30
    assert idx.remove_keys({2, 3}) == 2
    assert len(idx) == 0 and idx.search(np.array([1.0, 0, 0])).best is None


def test_one_owner_filling_the_shortlist_still_yields_a_second():
    idx = EmbeddingIndex(dim=4, ivf_min_size=0, shortlist=3)
    rng = np.random.default_rng(3)
    base = unit(np.array([1.0, 0.2, 0, 0]))
    for k in range(6):  # six near-identical templates of owner 1
        idx.add(k, 1, base + 0.01 * rng.standard_normal(4))
    idx.add(99, 2, np.array([0, 1.0, 0, 0]))
    r = idx.search(base)
    assert r.best.owner == 1 and r.second is not None and r.second.owner == 2


def test_fast_path_agrees_with_exact_search():
    rng = np.random.default_rng(7)
    people = population(6000)
    idx = EmbeddingIndex(dim=64, ivf_min_size=5000, nprobe=16, confident=0.6)
    idx.add_many(np.arange(6000), np.arange(6000) + 1000, people)
    assert idx.uses_ivf
    agree = fast = 0
    for i in rng.choice(6000, 100, replace=False):
        q = probe(people[i], 0.8, rng)
        got, want = idx.search(q), idx.search(q, exact=True)
        fast += not got.exact
        agree += got.best.owner == want.best.owner == i + 1000
    assert agree == 100  # the answer is always the exact one
    assert fast >= 90  # and almost always found without the full scan


def test_unknown_person_always_gets_the_exact_scan():
    rng = np.random.default_rng(8)
    idx = EmbeddingIndex(dim=64, ivf_min_size=1000, confident=0.6)
    idx.add_many(np.arange(3000), np.arange(3000), population(3000, seed=1))
    stranger = population(1, seed=99)[0]
    r = idx.search(stranger)
    assert r.exact and r.best.score < 0.6
    # new enrolments after the build are searched too (the unindexed tail)
    idx.add(5000, 4242, stranger)
    r = idx.search(probe(stranger, 0.9, rng))
    assert r.best.owner == 4242


def test_bad_vectors_are_refused():
    idx = EmbeddingIndex(dim=3)
    with pytest.raises(ValueError):
        idx.add(1, 1, np.zeros(3))
