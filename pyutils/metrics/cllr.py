"""Cllr, minCllr and the actual DCF of log-likelihood-ratio scores (BOSARIS semantics).

``Cllr`` is the cost of the scores used as natural-log LLRs, in bits:
``0.5 * (mean log2(1 + e^-llr) over targets + mean log2(1 + e^llr) over non-targets)``;
1 bit is a system that always says LLR 0.  ``minCllr`` is the Cllr after the
best monotonic recalibration: PAV (isotonic regression) gives the posterior
of each trial at the empirical prior, whose log-odds minus the prior log-odds
are the optimal LLRs (BOSARIS ``opt_loglr``).
"""
from __future__ import annotations

import math
from typing import Sequence, Tuple

import numpy as np
from sklearn.isotonic import IsotonicRegression


def _split(scores: Sequence[float], labels: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel().astype(bool)
    if scores.size != labels.size:
        raise ValueError(f"{scores.size} scores but {labels.size} labels")
    if not labels.any() or labels.all():
        raise ValueError("need both target and non-target trials")
    return scores[labels], scores[~labels]


def cllr(llrs: Sequence[float], labels: Sequence[int]) -> float:
    """Cllr in bits of natural-log LLRs (labels 1 target, 0 non-target)."""
    tar, non = _split(llrs, labels)
    return float(0.5 * (np.mean(np.logaddexp(0, -tar)) + np.mean(np.logaddexp(0, non)))
                 / math.log(2))


def optimal_llrs(scores: Sequence[float], labels: Sequence[int]) -> np.ndarray:
    """PAV-calibrated LLRs of ``scores`` (infinite where PAV gives 0 or 1)."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel().astype(np.float64)
    _split(scores, labels)
    posterior = IsotonicRegression(increasing=True, out_of_bounds="clip").fit_transform(
        scores, labels)
    prior_log_odds = math.log(labels.sum() / (labels.size - labels.sum()))
    with np.errstate(divide="ignore"):
        return np.log(posterior) - np.log1p(-posterior) - prior_log_odds


def min_cllr(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Cllr after the optimal monotonic (PAV) calibration of ``scores``."""
    return cllr(optimal_llrs(scores, labels), labels)


def bayes_threshold(p_target: float, c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """LLR threshold of the Bayes decision: ``log(c_fa (1-p) / (c_miss p))``."""
    return math.log(c_fa * (1 - p_target) / (c_miss * p_target))


def actual_dcf(llrs: Sequence[float], labels: Sequence[int], p_target: float,
               c_miss: float = 1.0, c_fa: float = 1.0) -> float:
    """Normalised DCF of accepting ``llr > bayes_threshold`` (same normaliser as minDCF)."""
    if not 0 < p_target < 1:
        raise ValueError(f"p_target must be in (0, 1), got {p_target}")
    tar, non = _split(llrs, labels)
    threshold = bayes_threshold(p_target, c_miss, c_fa)
    p_miss = float(np.mean(tar <= threshold))
    p_fa = float(np.mean(non > threshold))
    c_def = min(c_miss * p_target, c_fa * (1 - p_target))
    return (c_miss * p_target * p_miss + c_fa * (1 - p_target) * p_fa) / c_def
