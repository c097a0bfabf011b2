"""Cosine scoring: subtract the training mean, unit-normalise, dot product."""
from __future__ import annotations

import numpy as np

from pyutils.backends.plda import subtract_mean


def unit_normalize(X: np.ndarray) -> np.ndarray:
    """Scale rows to unit length; zero rows stay zero (they then score 0)."""
    X = np.asarray(X, dtype=np.float64)
    norms = np.linalg.norm(X, axis=-1, keepdims=True)
    return X / np.where(norms == 0, 1.0, norms)


def rowwise_dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Dot product of each row of ``a`` with the same row of ``b``."""
    return np.einsum("ij,ij->i", a, b)


def cosine_similarity(enroll: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``enroll`` with the same row of ``test``."""
    return rowwise_dot(unit_normalize(enroll), unit_normalize(test))


class CosineBackend:
    """Mean-subtracted cosine similarity (``mean=None`` skips centring)."""

    def __init__(self, mean: np.ndarray = None):
        self.mean = mean

    def prepare(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        return unit_normalize(X if self.mean is None else subtract_mean(X, self.mean))

    def score(self, enroll: np.ndarray, test: np.ndarray) -> np.ndarray:
        return rowwise_dot(enroll, test)
