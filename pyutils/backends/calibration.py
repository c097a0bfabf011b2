"""Linear logistic-regression calibration and fusion, prior-weighted as in BOSARIS.

``llr = w . scores + b`` is fitted by minimising the prior-weighted
cross-entropy of BOSARIS ``train_binary_classifier`` / Brümmer's FoCal:

    P/N_tar * sum_tar softplus(-(s + logit P)) + (1-P)/N_non * sum_non softplus(s + logit P)

with ``s = w . x + b``, so each class weighs by the effective prior ``P`` and
not by its trial count; the result is an LLR (the prior log-odds is added only
inside the objective).  One score column is calibration; several is fusion.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

import numpy as np
from scipy.optimize import minimize

from pyutils.utils.fileio import atomic_output


def _objective(params: np.ndarray, tar: np.ndarray, non: np.ndarray, prior: float):
    """Prior-weighted cross-entropy (nats) and its gradient."""
    offset = math.log(prior / (1 - prior))
    weights, bias = params[:-1], params[-1]
    s_tar = tar @ weights + bias + offset
    s_non = non @ weights + bias + offset
    value = (prior * np.mean(np.logaddexp(0, -s_tar))
             + (1 - prior) * np.mean(np.logaddexp(0, s_non)))
    g_tar = -prior / len(tar) * (1 / (1 + np.exp(s_tar)))       # d/ds softplus(-s)
    g_non = (1 - prior) / len(non) * (1 / (1 + np.exp(-s_non)))  # d/ds softplus(s)
    grad = np.concatenate([tar.T @ g_tar + non.T @ g_non, [g_tar.sum() + g_non.sum()]])
    return value, grad


@dataclass
class LinearCalibration:
    """``llr = scores @ weights + bias``; fitted by :meth:`fit`."""

    weights: List[float] = field(default_factory=lambda: [1.0])
    bias: float = 0.0
    prior: float = 0.5

    @classmethod
    def fit(cls, scores: Sequence, labels: Sequence[int], prior: float = 0.5
            ) -> "LinearCalibration":
        """Fit on ``scores`` (N or N x systems) and labels (1 target, 0 non-target)."""
        if not 0 < prior < 1:
            raise ValueError(f"prior must be in (0, 1), got {prior}")
        x = np.asarray(scores, dtype=np.float64)
        x = x.reshape(len(x), -1)
        labels = np.asarray(labels).ravel().astype(bool)
        if len(labels) != len(x):
            raise ValueError(f"{len(x)} score rows but {len(labels)} labels")
        if not labels.any() or labels.all():
            raise ValueError("calibration needs both target and non-target trials")
        start = np.concatenate([np.ones(x.shape[1]) / x.shape[1], [0.0]])
        result = minimize(_objective, start, args=(x[labels], x[~labels], prior),
                          jac=True, method="L-BFGS-B")
        if not result.success:
            raise RuntimeError(f"calibration did not converge: {result.message}")
        return cls([float(w) for w in result.x[:-1]], float(result.x[-1]), prior)

    def __call__(self, scores: Sequence) -> np.ndarray:
        x = np.asarray(scores, dtype=np.float64)
        return x.reshape(len(x), -1) @ np.asarray(self.weights) + self.bias

    def save(self, path: str) -> None:
        with atomic_output(path) as out:
            json.dump({"weights": self.weights, "bias": self.bias, "prior": self.prior},
                      out, indent=1)
            out.write("\n")

    @classmethod
    def load(cls, path: str) -> "LinearCalibration":
        with open(path) as src:
            data = json.load(src)
        return cls([float(w) for w in data["weights"]], float(data["bias"]),
                   float(data["prior"]))


# ---------------------------------------------------------------- deployable calibration file

def save_calibration(path: str, calibration: LinearCalibration,
                     thresholds: Dict[str, float], **info) -> None:
    """Write a calibration and its decision thresholds as one JSON file, atomically.

    The file, read by :func:`load_calibration` (and by ``sv verify``), holds::

        {"slope": a, "offset": b, "prior": p,     # llr = a * raw_score + b
         "weights": [a, ...],                     # one per fused system (fusion: several)
         "thresholds": {name: value, ...},
         ...info}                                 # e.g. "backend", "trained_on", "num_trials"

    ``thresholds`` keys, by convention (accept when the value is >= the threshold):

    * ``"eer"``            -- raw score at the EER operating point of the calibration trials;
    * ``"min_dcf_p0.01"``  -- raw score at the minDCF (p_target 0.01) operating point;
    * ``"bayes_p0.01_llr"`` -- the Bayes threshold on the LLR, ``log((1-p)/p)`` (here 4.595);
    * ``"bayes_p0.01"``    -- the same decision as a raw score, ``(llr_thr - b) / a``.

    Keys ending in ``_llr`` are thresholds on the calibrated LLR, the others on the raw
    score.  ``slope`` is the first weight (the only one for a single system).
    """
    data = {"slope": float(calibration.weights[0]), "offset": float(calibration.bias),
            "prior": float(calibration.prior),
            "weights": [float(w) for w in calibration.weights],
            "thresholds": {str(k): float(v) for k, v in thresholds.items()}}
    for key, value in info.items():
        if key in data:
            raise ValueError(f"save_calibration: info key '{key}' is reserved")
        data[key] = value
    with atomic_output(path) as out:
        json.dump(data, out, indent=1, sort_keys=True)
        out.write("\n")


def load_calibration(path: str) -> Tuple[LinearCalibration, Dict[str, float], dict]:
    """Read a :func:`save_calibration` file: ``(calibration, thresholds, info)``."""
    try:
        with open(path) as src:
            data = json.load(src)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not a calibration file ({err})") from None
    try:
        weights = [float(w) for w in data.pop("weights", [data["slope"]])]
        data.pop("slope", None)
        calibration = LinearCalibration(weights, float(data.pop("offset")),
                                        float(data.pop("prior")))
        thresholds = {k: float(v) for k, v in data.pop("thresholds", {}).items()}
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{path}: bad calibration file (missing or bad {err})") from None
    return calibration, thresholds, data


# ---------------------------------------------------------------- operating points

def operating_thresholds(scores: Sequence, labels: Sequence[int],
                         calibration: LinearCalibration, p_target: float = 0.01
                         ) -> Dict[str, float]:
    """The thresholds :func:`save_calibration` documents, from calibration trials.

    One score column: ``eer`` and ``min_dcf_p<p>`` are raw-score thresholds
    (Kaldi compute-eer's threshold; sid/compute_min_dcf.py's), ``bayes_p<p>_llr``
    is ``log((1-p)/p)`` on the LLR and ``bayes_p<p>`` the same decision as a raw
    score.  Several columns (fusion): the first two are taken on the fused LLR
    instead and named ``eer_llr``, ``min_dcf_p<p>_llr``.
    """
    from pyutils.metrics.cllr import bayes_threshold
    from pyutils.metrics.dcf import compute_min_dcf
    from pyutils.metrics.eer import compute_eer

    x = np.asarray(scores, dtype=np.float64)
    x = x.reshape(len(x), -1)
    labels = np.asarray(labels).ravel().astype(bool)
    fused = x.shape[1] > 1
    values = calibration(x) if fused else x[:, 0]
    suffix = "_llr" if fused else ""
    tag = f"p{p_target:g}"
    bayes = bayes_threshold(p_target)
    thresholds = {f"eer{suffix}": compute_eer(values[labels], values[~labels])[1],
                  f"min_dcf_{tag}{suffix}": compute_min_dcf(values, labels, p_target)[1],
                  f"bayes_{tag}_llr": bayes}
    if not fused and calibration.weights[0] > 0:
        thresholds[f"bayes_{tag}"] = (bayes - calibration.bias) / calibration.weights[0]
    return thresholds
