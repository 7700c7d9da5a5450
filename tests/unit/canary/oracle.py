"""Independent oracles for the rank-sum interval: a literal transcription of R's ``W(d)`` (ranks of
``c(x - d, y)`` with average ties, tie-corrected sigma, continuity correction) evaluated on every
piece between consecutive distinct pairwise differences. Slow and obviously right; small cases
only, with data whose subtractions are exact (continuous random values or dyadic grids)."""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm, rankdata


def r_w(x: np.ndarray, y: np.ndarray, d: float) -> float:
    m, n = len(x), len(y)
    r = rankdata(np.concatenate([x - d, y]))
    _, ties = np.unique(r, return_counts=True)
    dz = r[:m].sum() - m * (m + 1) / 2 - m * n / 2
    correction = math.copysign(0.5, dz) if dz != 0 else 0.0
    total = m + n
    sigma = math.sqrt(m * n / 12 * ((total + 1) - np.sum(ties**3 - ties) / (total * (total - 1))))
    return (dz - correction) / sigma


def oracle_interval(x: np.ndarray, y: np.ndarray, confidence: float) -> tuple[float, float]:
    diffs = np.unique(np.subtract.outer(x, y))
    z = norm.ppf(1 - (1 - confidence) / 2)
    # W on the piece right of each distinct difference; piece 0 is left of the smallest one
    mids = np.concatenate(([diffs[0] - 1.0], (diffs[:-1] + diffs[1:]) / 2, [diffs[-1] + 1.0]))
    w = np.array([r_w(x, y, d) for d in mids])
    low = next((diffs[max(t - 1, 0)] for t in range(len(w)) if w[t] <= z), diffs[-1])
    high = next((diffs[max(t - 1, 0)] for t in range(len(w)) if w[t] < -z), diffs[-1])
    return float(low), float(high)
