"""Order statistics of the pairwise differences ``x_i - y_j`` without building all of them.

The rank-sum interval and the Hodges-Lehmann estimate are order statistics of the m·n differences.
For small m·n they are materialised and partitioned. For large m·n each wanted rank keeps a
bracket ``(lo, hi]`` that is narrowed with counts of the differences at or below a pivot (one
binary search per row of the implicit sorted matrix, as in Johnson & Mizoguchi and Monahan's
selection for the Hodges-Lehmann estimator); pivots are drawn at random from the bracket, as in
Floyd & Rivest's selection, until few enough candidates are left to partition.

Every count is exact for the differences *as computed in floating point* (``fl(x_i - y_j)``), so
the value returned is always one of those differences: the answer does not depend on the random
pivots, only the running time does (and the seed is fixed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: below this many differences they are all materialised
DIRECT_LIMIT = 40_000
#: a bracket with at most this many candidates is materialised
FINAL_LIMIT = 12_000
#: pivots drawn from a bracket per narrowing round (more for the first, shared, round)
SAMPLE_SIZE = 1_024
FIRST_SAMPLE_SIZE = 4_096
#: half-width of the pivot window, in standard deviations of the sample rank
MARGIN_SD = 3.5
#: the random pivots only steer the search; a fixed seed keeps the running time reproducible
_SEED = 20_170_410


def row_counts(xs: FloatArray, ys: FloatArray, values: FloatArray, strict: bool) -> IntArray:
    """Per value v and row i: #{j : fl(xs[i] - ys[j]) <= v} (``< v`` when strict). Shape (q, m).

    The binary search runs on ``xs[i] - v`` (sorted per value, which keeps it cache friendly),
    and that subtraction may round differently from the differences themselves: the boundary is
    then walked to where the computed differences put it.
    """
    n = ys.shape[0]
    keys = xs[None, :] - values[:, None]
    side: Literal["left", "right"] = "right" if strict else "left"
    first = np.searchsorted(ys, keys.ravel(), side=side).astype(np.int64)
    xr = np.broadcast_to(xs[None, :], keys.shape).ravel()
    vr = np.broadcast_to(values[:, None], keys.shape).ravel()

    def qualifies(j: IntArray) -> npt.NDArray[np.bool_]:
        diff = xr - ys[j]
        return diff < vr if strict else diff <= vr

    while True:  # move left while the previous column still qualifies
        step = (first > 0) & qualifies(np.maximum(first - 1, 0))
        if not step.any():
            break
        first[step] = np.searchsorted(ys, ys[first[step] - 1], side="left")
    while True:  # move right while the current column does not qualify
        step = (first < n) & ~qualifies(np.minimum(first, n - 1))
        if not step.any():
            break
        first[step] = np.searchsorted(ys, ys[first[step]], side="right")
    counts: IntArray = (n - first).reshape(keys.shape)
    return counts


@dataclass
class _Bracket:
    """Candidates for rank k: row i holds columns ``[n - hi_rows[i], n - lo_rows[i])``."""

    k: int
    lo_rows: IntArray
    hi_rows: IntArray
    lo_count: int
    hi_count: int
    stalls: int = 0
    answer: float | None = None

    @property
    def size(self) -> int:
        return self.hi_count - self.lo_count

    @property
    def open(self) -> bool:
        """Still worth narrowing: unanswered, large, and not stuck on a run of ties."""
        return self.answer is None and self.size > FINAL_LIMIT and self.stalls < 2

    def narrow(self, rows: IntArray, total: int) -> None:
        if total <= self.k and total > self.lo_count:
            self.lo_rows, self.lo_count = rows, total
        elif total > self.k and total < self.hi_count:
            self.hi_rows, self.hi_count = rows, total


def _candidates(xs: FloatArray, ys: FloatArray, b: _Bracket) -> FloatArray:
    n = ys.shape[0]
    lengths = b.hi_rows - b.lo_rows
    rows = np.repeat(np.arange(xs.shape[0]), lengths)
    starts = np.repeat(n - b.hi_rows - (np.cumsum(lengths) - lengths), lengths)
    result: FloatArray = xs[rows] - ys[starts + np.arange(rows.shape[0])]
    return result


def _sample(
    xs: FloatArray, ys: FloatArray, b: _Bracket, rng: np.random.Generator, size: int
) -> FloatArray:
    """Random differences from the bracket, uniform over its candidates (unsorted)."""
    n = ys.shape[0]
    if b.lo_count == 0 and b.hi_count == xs.shape[0] * n:
        picks = rng.integers(0, b.hi_count, size=size)
        values: FloatArray = xs[picks // n] - ys[picks % n]
        return values
    lengths = b.hi_rows - b.lo_rows
    ends = np.cumsum(lengths)
    picks = np.sort(rng.integers(0, int(ends[-1]), size=size))  # sorted keys search faster
    rows = np.searchsorted(ends, picks, side="right")
    within = picks - (ends[rows] - lengths[rows])
    values = xs[rows] - ys[n - b.hi_rows[rows] + within]
    return values


def _pivots(sample: FloatArray, b: _Bracket) -> list[float]:
    """Two sample values that bracket rank k with high probability."""
    size = sample.shape[0]
    q = (b.k - b.lo_count + 0.5) / b.size
    centre = q * size
    margin = MARGIN_SD * np.sqrt(size * q * (1.0 - q)) + 2.0
    picks = [i for i in (int(centre - margin), int(np.ceil(centre + margin))) if 0 <= i < size]
    if not picks:
        return []
    part = np.partition(sample, picks)
    return [float(part[i]) for i in picks]


def _resolve_ties(xs: FloatArray, ys: FloatArray, b: _Bracket, pivots: list[float]) -> None:
    """A rank inside a long run of equal differences: the bracket cannot shrink past the run,
    but a pivot equal to the run's value answers it directly."""
    values = np.array(pivots)
    le = row_counts(xs, ys, values, strict=False).sum(axis=1)
    lt = row_counts(xs, ys, values, strict=True).sum(axis=1)
    for value, below, through in zip(pivots, lt, le, strict=True):
        if below <= b.k < through:
            b.answer = value


def order_statistics(xs: FloatArray, ys: FloatArray, ranks: Sequence[int]) -> list[float]:
    """Order statistics (0-based ranks) of ``fl(xs[i] - ys[j])``; xs and ys sorted ascending."""
    m, n = xs.shape[0], ys.shape[0]
    total = m * n
    for k in ranks:
        if not 0 <= k < total:
            raise IndexError(f"rank {k} outside 0..{total - 1}")
    if total <= DIRECT_LIMIT:
        part = np.partition((xs[:, None] - ys[None, :]).ravel(), sorted(set(ranks)))
        return [float(part[k]) for k in ranks]

    rng = np.random.default_rng(_SEED)
    full_lo, full_hi = np.zeros(m, dtype=np.int64), np.full(m, n, dtype=np.int64)
    brackets = {k: _Bracket(k, full_lo, full_hi, 0, total) for k in sorted(set(ranks))}
    shared: FloatArray | None = None  # one sample serves every bracket still spanning everything
    while True:
        active = [b for b in brackets.values() if b.open]
        if not active:
            break
        proposals: dict[int, list[float]] = {}
        for b in active:
            if b.size == total:
                shared = _sample(xs, ys, b, rng, FIRST_SAMPLE_SIZE) if shared is None else shared
                proposals[b.k] = _pivots(shared, b)
            else:
                proposals[b.k] = _pivots(_sample(xs, ys, b, rng, SAMPLE_SIZE), b)
        pivots = np.array(sorted({p for ps in proposals.values() for p in ps}))
        counts = row_counts(xs, ys, pivots, strict=False)
        totals = counts.sum(axis=1)
        for b in active:
            before = b.size
            for i in range(pivots.shape[0]):
                b.narrow(counts[i], int(totals[i]))
            if b.size > 0.5 * before:
                b.stalls += 1
                _resolve_ties(xs, ys, b, proposals[b.k])
    result = {}
    for k, b in brackets.items():
        if b.answer is not None:
            result[k] = b.answer
        else:
            values = _candidates(xs, ys, b)
            result[k] = float(np.partition(values, k - b.lo_count)[k - b.lo_count])
    return [result[k] for k in ranks]


def select_next(xs: FloatArray, ys: FloatArray, k: int, value: float) -> float:
    """The (k+1)-th smallest difference (0-based), given that the k-th smallest is ``value``."""
    le = row_counts(xs, ys, np.array([value]), strict=False)[0]
    if int(le.sum()) > k + 1:
        return value
    n = ys.shape[0]
    rows = np.nonzero(le < n)[0]  # row i: its smallest difference above value sits at n-le-1
    return float(np.min(xs[rows] - ys[n - le[rows] - 1]))


def count_at_most(xs: FloatArray, ys: FloatArray, value: float) -> int:
    """#{(i, j) : fl(xs[i] - ys[j]) <= value}."""
    return int(row_counts(xs, ys, np.array([value]), strict=False).sum())
