"""Minimum detection cost exactly as Kaldi's ``sid/compute_min_dcf.py``.

Every sorted score is a threshold; at position ``i`` the trials at sorted
positions ``0..i`` are rejected.  Scores are sorted stably, so tied trials
keep their input order and each one is its own operating point, as in the
Kaldi script.  The minimum is the first one found and is normalised by
``c_def = min(c_miss * p_target, c_fa * (1 - p_target))``.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np


def error_rates(scores: Sequence[float], labels: Sequence[int], presorted: bool = False
                ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(fnrs, fprs, thresholds)`` like Kaldi's ComputeErrorRates.

    ``labels`` are 1 for target and 0 for non-target trials.  ``presorted``: the
    trials are already in the order of a stable sort by score (the bootstrap's
    replicates), so the sort is skipped.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel().astype(np.int64)
    if scores.size != labels.size:
        raise ValueError(f"{scores.size} scores but {labels.size} labels")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 (non-target) or 1 (target)")
    num_target = int(labels.sum())
    num_nontarget = labels.size - num_target
    if num_target == 0:
        raise ValueError("no target trials")
    if num_nontarget == 0:
        raise ValueError("no non-target trials")
    order = np.arange(scores.size) if presorted else np.argsort(scores, kind="stable")
    sorted_labels = labels[order]
    fnrs = np.cumsum(sorted_labels) / float(num_target)
    fprs = 1 - np.cumsum(1 - sorted_labels) / float(num_nontarget)
    return fnrs, fprs, scores[order]


def compute_min_dcf(scores: Sequence[float], labels: Sequence[int], p_target: float,
                    c_miss: float = 1.0, c_fa: float = 1.0, presorted: bool = False
                    ) -> Tuple[float, float]:
    """Return ``(min_dcf, threshold)`` for the given operating point (``presorted``:
    as :func:`error_rates`)."""
    if not 0 < p_target < 1:
        raise ValueError(f"p_target must be in (0, 1), got {p_target}")
    if c_miss <= 0 or c_fa <= 0:
        raise ValueError(f"c_miss and c_fa must be > 0, got {c_miss}, {c_fa}")
    fnrs, fprs, thresholds = error_rates(scores, labels, presorted)
    c_det = c_miss * fnrs * p_target + c_fa * fprs * (1 - p_target)
    best = int(np.argmin(c_det))  # first minimum, like the script's strict '<'
    c_def = min(c_miss * p_target, c_fa * (1 - p_target))
    return float(c_det[best] / c_def), float(thresholds[best])
