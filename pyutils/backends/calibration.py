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
from typing import List, Sequence

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
