"""Cosine scoring: subtract the training mean, unit-normalise, dot product.

``cosine_mean="train"`` (the default, as WeSpeaker) centres on the training
mean ``mean.vec``; ``"none"`` does not centre, as Kaldi's ``cosine_scoring.sh``
(``ivector-normalize-length`` then ``ivector-compute-dot-products``).
"""
from __future__ import annotations

import os

import numpy as np

from pyutils.backends.base import MEAN_FILE, Backend, register_backend
from pyutils.backends.plda import read_vector, subtract_mean

COSINE_MEANS = ("train", "none")


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


@register_backend("cosine")
class CosineBackend(Backend):
    """Mean-subtracted cosine similarity (``mean=None`` skips centring)."""

    def __init__(self, mean: np.ndarray = None):
        self.mean = mean

    @classmethod
    def from_dir(cls, backend_dir: str, cosine_mean: str = "train", **_) -> "CosineBackend":
        if cosine_mean not in COSINE_MEANS:
            raise ValueError(f"cosine mean '{cosine_mean}' is not one of "
                             f"{', '.join(COSINE_MEANS)}")
        if cosine_mean == "none":
            return cls(None)
        return cls(read_vector(os.path.join(backend_dir, MEAN_FILE)))

    def prepare(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        return unit_normalize(X if self.mean is None else subtract_mean(X, self.mean))

    def score(self, enroll: np.ndarray, test: np.ndarray) -> np.ndarray:
        return rowwise_dot(enroll, test)

    def bilinear_form(self, X: np.ndarray):
        """``P`` = the prepared (centred, unit-length) rows, no bias."""
        return np.ascontiguousarray(self.prepare(X), dtype=np.float64), None
