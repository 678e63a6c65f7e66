"""1:N search over enrolled face embeddings.

All embeddings are unit vectors and the one score used everywhere is their cosine
similarity (a dot product). :class:`EmbeddingIndex` keeps them in one contiguous
float32 matrix, so an exact search is a single matrix-vector product.

For big halls it can also build an inverted-file index (k-means cells, each cell's
vectors stored contiguously) and scan only the cells nearest the query. That is
approximate, so it is used only where being approximate cannot put a wrong name on
someone: a fast-path result is final when its best score is at or above
``confident`` (a score no impostor reached in calibration) or below ``floor`` (the
lowest score that could lead to a match or a read-back). In between, the exact scan
decides. The price: an enrolled customer whose cell was not probed (measured well
under 1 % of queries) looks unknown and uses the account number, as anyone may.
``bench/face_search.py`` measures both paths against each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Candidate:
    """One enrolled person and the best score of their embeddings."""

    owner: int
    """The owner id (the customer's login user id)."""
    score: float
    """Cosine similarity in -1..1."""


@dataclass(frozen=True)
class SearchResult:
    """The two best distinct owners for a query."""

    best: Candidate | None
    second: Candidate | None
    exact: bool
    """True when every enrolled embedding was scored."""

    @property
    def margin(self) -> float:
        """Best score minus the second owner's score (the best score if there is no second)."""
        if self.best is None:
            return 0.0
        return self.best.score - (self.second.score if self.second else 0.0)


class EmbeddingIndex:
    """Unit embeddings with owner ids; exact search, optionally with an IVF fast path.

    Args:
        dim: embedding length.
        ivf_min_size: build the inverted file once this many embeddings are held (0: never).
        nprobe: cells scanned per query on the fast path.
        confident: fast-path results at or above this score are final.
        floor: fast-path results below this score are final (None: re-do them exactly).
        shortlist: how many top rows are examined to find two distinct owners.
    """

    def __init__(
        self,
        dim: int = 512,
        ivf_min_size: int = 20_000,
        nprobe: int = 32,
        confident: float = 0.6,
        floor: float | None = None,
        shortlist: int = 32,
        seed: int = 0,
    ) -> None:
        self.dim = dim
        self.ivf_min_size = ivf_min_size
        self.nprobe = nprobe
        self.confident = confident
        self.floor = floor
        self.shortlist = shortlist
        self._rng = np.random.default_rng(seed)
        self._vecs = np.zeros((0, dim), dtype=np.float32)
        self._owners = np.zeros(0, dtype=np.int64)
        self._keys = np.zeros(0, dtype=np.int64)
        self._n = 0
        self._dead = 0
        self._ivf: _Ivf | None = None

    # -- content -----------------------------------------------------------------------
    def __len__(self) -> int:
        return self._n - self._dead

    def add(self, key: int, owner: int, vector: np.ndarray) -> None:
        """Add one embedding (normalised here, so any length is accepted)."""
        self.add_many(np.asarray([key]), np.asarray([owner]), np.asarray(vector, dtype=np.float32)[None, :])

    def add_many(self, keys: np.ndarray, owners: np.ndarray, vectors: np.ndarray) -> None:
        """Add many embeddings at once (rows of ``vectors``)."""
        v = np.asarray(vectors, dtype=np.float32).reshape(-1, self.dim)
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        if np.any(norms == 0) or not np.all(np.isfinite(norms)):
            raise ValueError("embeddings must be finite and non-zero")
        v = v / norms
        m = v.shape[0]
        self._reserve(self._n + m)
        self._vecs[self._n:self._n + m] = v
        self._owners[self._n:self._n + m] = np.asarray(owners, dtype=np.int64)
        self._keys[self._n:self._n + m] = np.asarray(keys, dtype=np.int64)
        self._n += m
        if self._ivf is not None:
            self._ivf.tail_from = min(self._ivf.tail_from, self._n - m)
            if self._n - self._ivf.tail_from > max(1000, self._ivf.size // 10):
                self._ivf = None  # too much unindexed: rebuild lazily
        self._maybe_build()

    def remove_owner(self, owner: int) -> int:
        """Drop every embedding of ``owner``; returns how many were removed."""
        mask = self._owners[: self._n] == owner
        return self._drop(mask)

    def remove_keys(self, keys: set[int]) -> int:
        """Drop the embeddings with these keys (database row ids)."""
        mask = np.isin(self._keys[: self._n], np.fromiter(keys, dtype=np.int64))
        return self._drop(mask)

    def owners(self) -> set[int]:
        """Owner ids with at least one embedding."""
        alive = self._owners[: self._n] >= 0
        return set(int(o) for o in self._owners[: self._n][alive])

    # -- search ------------------------------------------------------------------------
    def search(self, query: np.ndarray, exact: bool = False) -> SearchResult:
        """The two best distinct owners for ``query`` (a unit vector).

        Args:
            exact: skip the fast path even when an inverted file is built.
        """
        q = np.asarray(query, dtype=np.float32).ravel()
        q = q / max(float(np.linalg.norm(q)), 1e-12)
        if len(self) == 0:
            return SearchResult(None, None, True)
        if not exact and self._ivf is not None:
            rows, scores = self._ivf.search(self._vecs, q, self.nprobe)
            if self._ivf.tail_from < self._n:
                tail = np.arange(self._ivf.tail_from, self._n)
                rows = np.concatenate([rows, tail])
                scores = np.concatenate([scores, self._vecs[tail] @ q])
            best, second = self._top_two(rows, scores)
            top = best.score if best is not None else -1.0
            if top >= self.confident or (self.floor is not None and top < self.floor):
                return SearchResult(best, second, False)
        scores = self._vecs[: self._n] @ q
        best, second = self._top_two(None, scores)
        return SearchResult(best, second, True)

    def _top_two(self, rows: np.ndarray | None, scores: np.ndarray) -> tuple[Candidate | None, Candidate | None]:
        owners = self._owners[: self._n] if rows is None else self._owners[rows]
        if self._dead:
            # removed rows (owner -1) must never be a candidate
            scores = np.where(owners >= 0, scores, -np.inf)
        k = min(self.shortlist, scores.shape[0])
        top = np.argpartition(scores, -k)[-k:]
        top = top[np.argsort(scores[top])[::-1]]
        found: list[Candidate] = []
        for i in top:
            s = float(scores[i])
            if s == -np.inf:
                break
            o = int(owners[i])
            if found and found[0].owner == o:
                continue
            found.append(Candidate(o, s))
            if len(found) == 2:
                break
        if len(found) < 2 and k < scores.shape[0]:
            # One owner filled the whole shortlist: find the best of everyone else.
            others = scores.copy()
            if found:
                others[owners == found[0].owner] = -np.inf
            j = int(np.argmax(others))
            if others[j] > -np.inf:
                found.append(Candidate(int(owners[j]), float(others[j])))
        return (found[0] if found else None, found[1] if len(found) > 1 else None)

    # -- storage -----------------------------------------------------------------------
    def _reserve(self, n: int) -> None:
        if n <= self._vecs.shape[0]:
            return
        cap = max(n, 2 * self._vecs.shape[0], 64)
        vecs = np.zeros((cap, self.dim), dtype=np.float32)
        vecs[: self._n] = self._vecs[: self._n]
        owners = np.full(cap, -1, dtype=np.int64)
        owners[: self._n] = self._owners[: self._n]
        keys = np.full(cap, -1, dtype=np.int64)
        keys[: self._n] = self._keys[: self._n]
        self._vecs, self._owners, self._keys = vecs, owners, keys

    def _drop(self, mask: np.ndarray) -> int:
        mask &= self._owners[: self._n] >= 0
        count = int(mask.sum())
        if count:
            # Owner -1 marks a removed row; its vector is zeroed so it cannot score.
            self._owners[: self._n][mask] = -1
            self._vecs[: self._n][mask] = 0.0
            self._dead += count
            if self._dead > max(1000, self._n // 4):
                self._compact()
        return count

    def _compact(self) -> None:
        alive = self._owners[: self._n] >= 0
        self._vecs = np.ascontiguousarray(self._vecs[: self._n][alive])
        self._owners = self._owners[: self._n][alive].copy()
        self._keys = self._keys[: self._n][alive].copy()
        self._n = self._vecs.shape[0]
        self._dead = 0
        self._ivf = None
        self._maybe_build()

    def _maybe_build(self) -> None:
        if self._ivf is None and self.ivf_min_size and len(self) >= self.ivf_min_size:
            self.build_ivf()

    def build_ivf(self, nlist: int | None = None, iterations: int = 8) -> None:
        """(Re)build the inverted file over the current embeddings.

        The rows are reordered so that each cell is one contiguous slice of the
        matrix: the fast path scans slices and needs no second copy of the vectors.
        """
        alive = self._owners[: self._n] >= 0
        n = int(alive.sum())
        if n == 0:
            self._ivf = None
            return
        nlist = nlist or max(1, min(4096, int(2 * np.sqrt(n))))
        vecs = self._vecs[: self._n][alive]
        centroids, assign = _kmeans(vecs, nlist, iterations, self._rng)
        order = np.argsort(assign, kind="stable")
        self._vecs[:n] = vecs[order]
        self._owners[:n] = self._owners[: self._n][alive][order]
        self._keys[:n] = self._keys[: self._n][alive][order]
        self._vecs[n: self._n] = 0.0
        self._owners[n: self._n] = -1
        self._keys[n: self._n] = -1
        self._n, self._dead = n, 0
        offsets = np.concatenate([[0], np.cumsum(np.bincount(assign, minlength=nlist))])
        self._ivf = _Ivf(centroids, offsets)
        self._ivf.tail_from = n

    @property
    def uses_ivf(self) -> bool:
        """True when the fast path is built."""
        return self._ivf is not None


class _Ivf:
    """Inverted file: k-means cells over unit vectors; cell ``c`` is rows ``offsets[c]:offsets[c+1]``."""

    def __init__(self, centroids: np.ndarray, offsets: np.ndarray) -> None:
        self.centroids = centroids
        self.offsets = offsets
        self.size = int(offsets[-1])
        self.tail_from = self.size  # rows added after training are scanned exactly

    def search(self, vecs: np.ndarray, q: np.ndarray, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
        nprobe = min(nprobe, self.centroids.shape[0])
        cells = np.argpartition(self.centroids @ q, -nprobe)[-nprobe:]
        parts_rows, parts_scores = [], []
        for c in cells:
            a, b = int(self.offsets[c]), int(self.offsets[c + 1])
            if a == b:
                continue
            parts_rows.append(np.arange(a, b))
            parts_scores.append(vecs[a:b] @ q)
        if not parts_rows:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        return np.concatenate(parts_rows), np.concatenate(parts_scores)


def _kmeans(vecs: np.ndarray, nlist: int, iterations: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Spherical k-means on a sample; returns (unit centroids, cell of every vector)."""
    n = vecs.shape[0]
    sample = vecs if n <= nlist * 64 else vecs[rng.choice(n, nlist * 64, replace=False)]
    nlist = min(nlist, sample.shape[0])
    cent = sample[rng.choice(sample.shape[0], nlist, replace=False)].copy()
    for _ in range(iterations):
        assign = np.argmax(sample @ cent.T, axis=1)
        sums = np.zeros_like(cent)
        np.add.at(sums, assign, sample)
        empty = np.bincount(assign, minlength=nlist) == 0
        # An empty cell restarts from a random sample point instead of dying.
        sums[empty] = sample[rng.choice(sample.shape[0], int(empty.sum()), replace=True)]
        cent = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    assign = np.empty(n, dtype=np.int64)
    step = 16_384
    for s in range(0, n, step):
        assign[s:s + step] = np.argmax(vecs[s:s + step] @ cent.T, axis=1)
    return cent.astype(np.float32), assign
