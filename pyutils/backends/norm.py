"""Score normalisation against a cohort: Z-norm, T-norm, S-norm and adaptive S-norm.

With ``mu(x), sd(x)`` the mean and standard deviation (numpy, ddof=0) of the
scores of utterance ``x`` against the cohort, a raw score ``s(e, t)`` becomes

* ``znorm``:  ``(s - mu(e)) / sd(e)``            (enrolment side, Auckenthaler et al. 2000)
* ``tnorm``:  ``(s - mu(t)) / sd(t)``            (test side)
* ``snorm``:  ``((s - mu(e)) / sd(e) + (s - mu(t)) / sd(t)) / 2``   (symmetric)
* ``asnorm``: S-norm with ``mu, sd`` over each side's ``top_k`` highest cohort
  scores only (Matejka et al. 2017; the formula of WeSpeaker's ``score_norm.py``).
  ``top_k`` >= the cohort size is S-norm.

The cohort is the training set: its utterances' embeddings or its speakers'
mean embeddings (``score_norm_cohort`` in conf/backend.conf).  Statistics are
computed once per utterance, from blocks of ``rows x cohort`` scores; the
per-trial step is one affine map, vectorised over a block of trials.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from pyutils.backends.base import PreparedRows

NORMS = ("znorm", "tnorm", "snorm", "asnorm")
Stats = Tuple[np.ndarray, np.ndarray]


def cohort_statistics(side: PreparedRows, cohort: PreparedRows, top_k: Optional[int] = None,
                      keys: Sequence[str] = (), rows_per_block: int = 1024) -> Stats:
    """Mean and standard deviation of each row's cohort scores (its ``top_k`` highest
    ones when ``top_k`` is given); memory is ``rows_per_block x cohort size``."""
    num_cohort = cohort.size
    k = num_cohort if top_k is None else min(int(top_k), num_cohort)
    if top_k is not None and int(top_k) < 2:
        raise ValueError(f"AS-norm top-k must be at least 2, got {top_k}")
    if k < 2:
        raise ValueError(f"score normalisation needs a cohort of at least 2 embeddings, "
                         f"got {num_cohort}")
    means, stds = np.empty(side.size), np.empty(side.size)
    for start in range(0, side.size, rows_per_block):
        rows = np.arange(start, min(side.size, start + rows_per_block))
        S = side.score_matrix(rows, cohort)
        if k < num_cohort:
            S = np.partition(S, num_cohort - k, axis=1)[:, num_cohort - k:]
        means[rows] = S.mean(axis=1)
        stds[rows] = S.std(axis=1)
    if np.any(stds <= 0):
        i = int(np.flatnonzero(stds <= 0)[0])
        name = keys[i] if len(keys) > i else f"row {i}"
        raise ValueError(f"score normalisation: the {'top-%d ' % k if k < num_cohort else ''}"
                         f"cohort scores of '{name}' are all equal")
    return means, stds


class ScoreNorm:
    """One normalisation, with each side's cohort statistics (None where unused)."""

    def __init__(self, method: str, enroll_stats: Optional[Stats], test_stats: Optional[Stats]):
        if method not in NORMS:
            raise ValueError(f"unknown score normalisation '{method}' "
                             f"(expected one of {', '.join(NORMS)})")
        self.method, self.enroll, self.test = method, enroll_stats, test_stats

    @staticmethod
    def sides(method: str) -> Tuple[bool, bool]:
        """Whether ``method`` needs the (enrolment, test) side's statistics."""
        return method != "tnorm", method != "znorm"

    @classmethod
    def build(cls, method: str, enroll: PreparedRows, test: PreparedRows,
              cohort: PreparedRows, top_k: int, enroll_keys=(), test_keys=()) -> "ScoreNorm":
        """Cohort statistics of the sides ``method`` uses (``top_k`` for asnorm only)."""
        k = top_k if method == "asnorm" else None
        use_e, use_t = cls.sides(method)
        e = cohort_statistics(enroll, cohort, k, enroll_keys) if use_e else None
        if use_t:
            t = e if (test is enroll and e is not None) else \
                cohort_statistics(test, cohort, k, test_keys)
        else:
            t = None
        return cls(method, e, t)

    def __call__(self, raw: np.ndarray, r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
        if self.method == "znorm":
            return (raw - self.enroll[0][r1]) / self.enroll[1][r1]
        if self.method == "tnorm":
            return (raw - self.test[0][r2]) / self.test[1][r2]
        (m1, s1), (m2, s2) = self.enroll, self.test
        return 0.5 * ((raw - m1[r1]) / s1[r1] + (raw - m2[r2]) / s2[r2])
