"""LDA as Kaldi's ``ivector-compute-lda``, and affine transforms (``transform-vec``).

Statistics follow Kaldi's CovarianceStats on mean-subtracted data ``x``:
total ``T = sum x x^T / N``, between ``B = sum_s n_s m_s m_s^T / N`` (each
speaker mean weighted by its utterance count) and within ``W = T - B``.
The matrix ``F = f T + (1 - f) W`` (``f`` = total_covariance_factor) is
whitened with ``diag(s^-1/2) U^T`` from its eigen-decomposition (eigenvalues
floored at ``covariance_floor`` times the largest), the whitened ``B`` is
diagonalised, and the leading ``dim`` directions are kept.  The data mean is
folded into an offset column, so the result is ``(dim, D + 1)``.
"""
from __future__ import annotations

import logging
from typing import Sequence, Tuple

import numpy as np
from scipy import sparse

log = logging.getLogger(__name__)


def class_means(X: np.ndarray, labels: Sequence) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(counts, means, class_index)`` of the rows of ``X`` per label."""
    labels = np.asarray(labels)
    if labels.shape != (X.shape[0],):
        raise ValueError(f"{X.shape[0]} embeddings but {labels.size} labels")
    _, index, counts = np.unique(labels, return_inverse=True, return_counts=True)
    onehot = sparse.csr_matrix((np.ones(len(index)), (index, np.arange(len(index)))),
                               shape=(len(counts), len(index)))
    return counts, np.asarray(onehot @ X) / counts[:, None], index


def _sorted_eigh(matrix: np.ndarray, by_absolute_value: bool) -> Tuple[np.ndarray, np.ndarray]:
    """Eigenvalues in decreasing order (Kaldi's SortSvd) with matching columns."""
    values, vectors = np.linalg.eigh(matrix)
    key = np.abs(values) if by_absolute_value else values
    order = np.argsort(-key, kind="stable")
    return values[order], vectors[:, order]


def _normalizing_transform(covar: np.ndarray, floor: float) -> np.ndarray:
    """Matrix ``P`` with ``P covar P^T = I`` after flooring small eigenvalues."""
    values, vectors = _sorted_eigh(covar, by_absolute_value=True)
    floor *= values[0]
    num_floored = int(np.sum(values < floor))
    if num_floored:
        log.warning("Floored %d eigenvalues of covariance to %g", num_floored, floor)
    return np.maximum(values, floor)[:, None] ** -0.5 * vectors.T


def compute_lda(embeddings: np.ndarray, labels: Sequence, dim: int,
                total_covariance_factor: float = 0.0,
                covariance_floor: float = 1.0e-6) -> np.ndarray:
    """Return the ``(dim, D + 1)`` affine LDA transform of ivector-compute-lda."""
    X = np.asarray(embeddings, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(f"expected a non-empty (N, D) matrix, got shape {X.shape}")
    num_utts, feat_dim = X.shape
    mean = X.mean(axis=0)
    X = X - mean
    counts, means, _ = class_means(X, labels)
    num_spk = len(counts)
    if not 0 < dim <= feat_dim:
        raise ValueError(f"LDA dim {dim} must be in 1..{feat_dim} (embedding dim)")
    if dim > num_spk - 1:
        raise ValueError(f"LDA dim {dim} exceeds num_speakers - 1 = {num_spk - 1}")
    if num_utts == num_spk:
        raise ValueError("every speaker has one utterance: within-class covariance is zero")
    if num_utts < feat_dim:
        raise ValueError(f"too little data: {num_utts} utterances for dimension {feat_dim}")
    total = X.T @ X / num_utts
    weighted = means * np.sqrt(counts)[:, None]
    between = weighted.T @ weighted / num_utts
    within = total - between
    log.info("LDA stats: %d speakers, %d utterances", num_spk, num_utts)
    to_normalize = total_covariance_factor * total + (1.0 - total_covariance_factor) * within
    normalizer = _normalizing_transform(to_normalize, covariance_floor)
    between_proj = normalizer @ between @ normalizer.T
    values, vectors = _sorted_eigh((between_proj + between_proj.T) / 2, by_absolute_value=False)
    log.info("LDA between-class eigenvalues (leading %d): %s", dim, values[:dim])
    linear = vectors[:, :dim].T @ normalizer
    return np.hstack([linear, -(linear @ mean)[:, None]])


def apply_transform(matrix: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Apply a linear ``(d, D)`` or affine ``(d, D + 1)`` transform to rows of ``x``."""
    matrix = np.asarray(matrix, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    dim = x.shape[-1]
    if matrix.shape[1] == dim:
        return x @ matrix.T
    if matrix.shape[1] == dim + 1:
        return x @ matrix[:, :dim].T + matrix[:, dim]
    raise ValueError(f"dimension mismatch: vectors have dimension {dim} and the "
                     f"transform has {matrix.shape[1]} columns")
