"""Two-covariance PLDA as in Kaldi's ``ivector/plda.{h,cc}``.

A :class:`Plda` holds ``mean``, ``transform`` and ``psi``: ``transform``
maps mean-subtracted embeddings to a space where the within-class covariance
is ``I`` and the between-class covariance is ``diag(psi)`` (decreasing).
:func:`train_plda` is Kaldi's PldaEstimator EM; scoring is Kaldi's
TransformIvector + LogLikelihoodRatio, vectorised over trials.  Models,
vectors and matrices are stored in Kaldi's text format.
"""
from __future__ import annotations

import logging
import os
import re
from typing import List, Sequence, Union

import kaldiio
import numpy as np
from scipy.linalg import solve_triangular

from pyutils.backends.base import LDA_FILE, MEAN_FILE, PLDA_FILE, Backend, register_backend
from pyutils.backends.lda import apply_transform, class_means
from pyutils.utils.fileio import atomic_output

log = logging.getLogger(__name__)

IntOrArray = Union[int, np.ndarray]


# ---------------------------------------------------------------- Kaldi text I/O

def _format_vector(v: np.ndarray) -> str:
    return " [ " + "".join(f"{x!r} " for x in np.asarray(v, dtype=float).tolist()) + "]\n"


def _format_matrix(m: np.ndarray) -> str:
    rows = "".join("\n  " + "".join(f"{x!r} " for x in row)
                   for row in np.asarray(m, dtype=float).tolist())
    return " [" + rows + "]\n"


def _parse_text(text: str, path: str) -> List[Union[str, List[List[float]]]]:
    """Split Kaldi text into bare tokens and bracketed arrays (lists of rows)."""
    items: List[Union[str, List[List[float]]]] = []
    rows: Union[None, List[List[float]]] = None
    for token in re.findall(r"\[|\]|\n|[^\s\[\]]+", text):
        if token == "[":
            if rows is not None:
                raise ValueError(f"{path}: nested '['")
            rows = [[]]
        elif token == "]":
            if rows is None:
                raise ValueError(f"{path}: unmatched ']'")
            items.append([row for row in rows if row])
            rows = None
        elif token == "\n":
            if rows is not None:
                rows.append([])
        elif rows is not None:
            try:
                rows[-1].append(float(token))
            except ValueError:
                raise ValueError(f"{path}: bad number '{token}'") from None
        else:
            items.append(token)
    if rows is not None:
        raise ValueError(f"{path}: missing ']'")
    return items


def _as_matrix(rows: List[List[float]], path: str) -> np.ndarray:
    if len({len(row) for row in rows}) > 1:
        raise ValueError(f"{path}: matrix rows have different lengths")
    return np.array(rows, dtype=np.float64).reshape(len(rows), -1)


def _as_vector(rows: List[List[float]], path: str) -> np.ndarray:
    if len(rows) > 1:
        raise ValueError(f"{path}: expected a vector, found {len(rows)} rows")
    return np.array(rows[0] if rows else [], dtype=np.float64)


def _read_single(path: str) -> List[List[float]]:
    with open(path, encoding="utf-8") as handle:
        items = _parse_text(handle.read(), path)
    if len(items) != 1 or isinstance(items[0], str):
        raise ValueError(f"{path}: expected one bracketed Kaldi vector or matrix")
    return items[0]


def _is_binary(path: str) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == b"\0B"


def write_vector(path: str, vector: np.ndarray) -> None:
    """Atomically write a Kaldi text vector ``[ v1 v2 ... ]`` (exact round trip)."""
    with atomic_output(path) as out:
        out.write(_format_vector(vector))


def write_matrix(path: str, matrix: np.ndarray) -> None:
    """Atomically write a Kaldi text matrix, one row per line."""
    with atomic_output(path) as out:
        out.write(_format_matrix(matrix))


def read_vector(path: str) -> np.ndarray:
    """Read a Kaldi vector (text, or binary as written by Kaldi tools)."""
    if _is_binary(path):
        return np.asarray(kaldiio.load_mat(path), dtype=np.float64).ravel()
    return _as_vector(_read_single(path), path)


def read_matrix(path: str) -> np.ndarray:
    """Read a Kaldi matrix (text, or binary as written by Kaldi tools)."""
    if _is_binary(path):
        return np.atleast_2d(np.asarray(kaldiio.load_mat(path), dtype=np.float64))
    return _as_matrix(_read_single(path), path)


# ---------------------------------------------------------------- preprocessing

def subtract_mean(X: np.ndarray, mean: Union[np.ndarray, None] = None) -> np.ndarray:
    """ivector-subtract-global-mean: subtract ``mean`` (default: the rows' own mean)."""
    X = np.asarray(X, dtype=np.float64)
    return X - (X.mean(axis=0) if mean is None else np.asarray(mean, dtype=np.float64))


def length_normalize(X: np.ndarray) -> np.ndarray:
    """ivector-normalize-length: scale rows to length ``sqrt(dim)``; zero rows stay zero."""
    X = np.asarray(X, dtype=np.float64)
    ratio = np.linalg.norm(X, axis=-1, keepdims=True) / np.sqrt(X.shape[-1])
    if np.any(ratio == 0):
        log.warning("%d zero vectors left unnormalized", int(np.sum(ratio == 0)))
    return X / np.where(ratio == 0, 1.0, ratio)


# ---------------------------------------------------------------- model

class Plda:
    """PLDA model: ``transform @ (x - mean)`` has within covariance ``I``, between ``diag(psi)``."""

    def __init__(self, mean: np.ndarray, transform: np.ndarray, psi: np.ndarray):
        self.mean = np.asarray(mean, dtype=np.float64)
        self.transform = np.asarray(transform, dtype=np.float64)
        self.psi = np.asarray(psi, dtype=np.float64)
        dim = self.mean.size
        if self.transform.shape != (dim, dim) or self.psi.shape != (dim,):
            raise ValueError(f"inconsistent PLDA shapes: mean {self.mean.shape}, "
                             f"transform {self.transform.shape}, psi {self.psi.shape}")

    @property
    def dim(self) -> int:
        return self.mean.size

    @classmethod
    def from_covariances(cls, mean: np.ndarray, within: np.ndarray,
                         between: np.ndarray) -> "Plda":
        """Diagonalise (within, between) as Kaldi's PldaEstimator::GetOutput.

        Cholesky ``within = C C^T`` whitens with ``C^-1``; the eigenvectors
        ``U`` of the whitened ``between`` give ``transform = U^T C^-1``.
        """
        chol = np.linalg.cholesky(within)
        whiten = solve_triangular(chol, np.eye(len(chol)), lower=True)
        between_proj = whiten @ between @ whiten.T
        values, vectors = np.linalg.eigh((between_proj + between_proj.T) / 2)
        num_negative = int(np.sum(values < 0))
        if num_negative:
            log.warning("Floored %d eigenvalues of between-class variance to zero", num_negative)
        order = np.argsort(-values, kind="stable")
        return cls(mean, vectors[:, order].T @ whiten, np.maximum(values[order], 0.0))

    def within_covariance(self) -> np.ndarray:
        """Within-class covariance in the input space, ``A A^T`` with ``A = transform^-1``."""
        inverse = np.linalg.inv(self.transform)
        return inverse @ inverse.T

    def between_covariance(self) -> np.ndarray:
        """Between-class covariance in the input space, ``A diag(psi) A^T``."""
        inverse = np.linalg.inv(self.transform)
        return (inverse * self.psi) @ inverse.T

    def transform_embeddings(self, X: np.ndarray, num_utts: IntOrArray = 1,
                             simple_length_norm: bool = False,
                             normalize_length: bool = True) -> np.ndarray:
        """Kaldi TransformIvector on the rows of ``X``.

        With ``normalize_length`` each row is scaled so that
        ``sum(y^2 / (psi + 1/num_utts)) = dim`` (or, with
        ``simple_length_norm``, so that ``|y| = sqrt(dim)``).
        """
        Y = (np.atleast_2d(np.asarray(X, dtype=np.float64)) - self.mean) @ self.transform.T
        if not normalize_length:
            return Y
        if simple_length_norm:
            factor = np.sqrt(self.dim) / np.linalg.norm(Y, axis=1)
        else:
            n = np.reshape(np.asarray(num_utts, dtype=np.float64), (-1, 1))
            factor = np.sqrt(self.dim / np.sum(Y ** 2 / (self.psi + 1.0 / n), axis=1))
        return Y * factor[:, None]

    def log_likelihood_ratio(self, enroll_transformed: np.ndarray, num_utts: IntOrArray,
                             test_transformed: np.ndarray) -> np.ndarray:
        """Kaldi LogLikelihoodRatio for each row pair: log p(test|enroll) / p(test).

        Given an enrolment mean over ``n`` utterances ``u``, the test vector is
        ``N(n psi / (n psi + 1) u, 1 + psi / (n psi + 1))`` under the same-speaker
        hypothesis and ``N(0, 1 + psi)`` otherwise (diagonal Gaussians).
        """
        enroll = np.atleast_2d(enroll_transformed)
        test = np.atleast_2d(test_transformed)
        n = np.reshape(np.asarray(num_utts, dtype=np.float64), (-1, 1))
        shrink = n * self.psi / (n * self.psi + 1.0)
        var_same = 1.0 + self.psi / (n * self.psi + 1.0)
        var_diff = 1.0 + self.psi
        loglike_same = -0.5 * (np.sum(np.log(var_same), axis=1)
                               + np.sum((test - shrink * enroll) ** 2 / var_same, axis=1))
        loglike_diff = -0.5 * (np.sum(np.log(var_diff))
                               + np.sum(test ** 2 / var_diff, axis=1))
        return loglike_same - loglike_diff

    def smooth_within_class_covariance(self, factor: float) -> None:
        """ivector-copy-plda --smoothing: within += factor * between (in place)."""
        if not 0.0 <= factor <= 1.0:
            raise ValueError(f"smoothing factor must be in [0, 1], got {factor}")
        within = 1.0 + factor * self.psi
        self.psi = self.psi / within
        self.transform = self.transform * (within ** -0.5)[:, None]

    def save(self, path: str) -> None:
        """Atomically write ``<Plda> [mean] [transform] [psi] </Plda>`` (Kaldi text)."""
        with atomic_output(path) as out:
            out.write("<Plda> " + _format_vector(self.mean) + _format_matrix(self.transform)
                      + _format_vector(self.psi) + "</Plda> \n")

    @classmethod
    def load(cls, path: str) -> "Plda":
        """Read a model written by :meth:`save` or by Kaldi with ``--binary=false``."""
        with open(path, encoding="utf-8") as handle:
            items = _parse_text(handle.read(), path)
        if (len(items) != 5 or items[0] != "<Plda>" or items[4] != "</Plda>"
                or any(isinstance(item, str) for item in items[1:4])):
            raise ValueError(f"{path}: not a Kaldi text PLDA model")
        return cls(_as_vector(items[1], path), _as_matrix(items[2], path),
                   _as_vector(items[3], path))


# ---------------------------------------------------------------- training

def train_plda(X: np.ndarray, labels: Sequence, num_em_iters: int = 10) -> Plda:
    """Kaldi PldaEstimator: EM for ``x = mean + y + e``, ``y ~ N(0, B)``, ``e ~ N(0, W)``.

    Starts from ``W = B = I``.  The intra-class scatter always feeds ``W``;
    each class mean ``m`` (minus the mean of class means) of a class with
    ``n`` examples is split into a speaker part with posterior mean
    ``w = (B^-1 + n W^-1)^-1 n W^-1 m`` and covariance ``(B^-1 + n W^-1)^-1``
    that feeds ``B``, and a residual ``m - w`` that feeds ``W`` with weight
    ``n``.  The model mean is the unweighted mean of class means.
    """
    X = np.asarray(X, dtype=np.float64)
    counts, means, index = class_means(X, labels)
    num_utts, dim = X.shape
    num_classes = len(counts)
    if num_classes == num_utts:
        raise ValueError("no speakers with multiple utterances, unable to estimate PLDA")
    if num_classes <= dim:
        log.warning("PLDA of dimension %d trained on only %d speakers: the between-speaker "
                    "covariance is estimated from %d speaker means (rank <= %d), so it is "
                    "poorly determined; reduce the dimension (LDA to at most %d)",
                    dim, num_classes, num_classes, num_classes - 1, num_classes - 1)
    residual = X - means[index]
    scatter = residual.T @ residual
    global_mean = means.mean(axis=0)
    centered = means - global_mean
    groups = [(n, centered[counts == n]) for n in np.unique(counts)]
    within, between = np.eye(dim), np.eye(dim)
    for iteration in range(num_em_iters):
        within_inv, between_inv = np.linalg.inv(within), np.linalg.inv(between)
        within_stats, between_stats = scatter.copy(), np.zeros((dim, dim))
        for n, m in groups:
            mixed = np.linalg.inv(between_inv + n * within_inv)
            w = n * m @ within_inv @ mixed
            between_stats += len(m) * mixed + w.T @ w
            m_w = m - w
            within_stats += n * (len(m) * mixed + m_w.T @ m_w)
        # within count: sum over classes of (n - 1) from the scatter plus 1.
        within = within_stats / num_utts
        between = between_stats / num_classes
        within, between = (within + within.T) / 2, (between + between.T) / 2
        log.info("PLDA iteration %d/%d: trace within %.4g, between %.4g",
                 iteration + 1, num_em_iters, np.trace(within), np.trace(between))
    return Plda.from_covariances(global_mean, within, between)


# ---------------------------------------------------------------- scoring backend

@register_backend("plda")
class PldaBackend(Backend):
    """The voxceleb/v2 scoring chain for per-utterance embeddings.

    subtract training mean -> LDA -> length norm -> PLDA transform with
    ``normalize_length=True, num_utts=1`` -> log-likelihood ratio.
    """

    def __init__(self, mean: np.ndarray, lda: np.ndarray, plda: Plda):
        self.mean, self.lda, self.plda = mean, lda, plda

    def prepare(self, X: np.ndarray) -> np.ndarray:
        reduced = length_normalize(apply_transform(self.lda, subtract_mean(X, self.mean)))
        return self.plda.transform_embeddings(reduced, num_utts=1)

    def score(self, enroll: np.ndarray, test: np.ndarray) -> np.ndarray:
        return self.plda.log_likelihood_ratio(enroll, 1, test)

    def score_models(self, means: np.ndarray, counts, test: np.ndarray) -> np.ndarray:
        """``(models, tests)`` LLRs of speaker models (raw mean embeddings of ``counts``
        utterances) as ``ivector-plda-scoring --num-utts``: the mean through mean
        subtraction, LDA and length norm, then TransformIvector and LogLikelihoodRatio
        with its count."""
        counts = np.asarray(counts, dtype=np.float64).ravel()
        reduced = length_normalize(apply_transform(self.lda, subtract_mean(means, self.mean)))
        enroll = self.plda.transform_embeddings(reduced, num_utts=counts)
        probe = self.prepare(test)
        return np.stack([self.plda.log_likelihood_ratio(
            np.repeat(enroll[i:i + 1], len(probe), axis=0), counts[i], probe)
            for i in range(len(enroll))])

    @classmethod
    def from_dir(cls, backend_dir: str, smoothing: float = 0.0, **_) -> "PldaBackend":
        plda = Plda.load(os.path.join(backend_dir, PLDA_FILE))
        if smoothing:
            plda.smooth_within_class_covariance(smoothing)
        return cls(read_vector(os.path.join(backend_dir, MEAN_FILE)),
                   read_matrix(os.path.join(backend_dir, LDA_FILE)), plda)

    def bilinear_form(self, X: np.ndarray):
        """Kaldi's ``LogLikelihoodRatio`` with one enrolment utterance is bilinear.

        With ``psi`` the between-class variances and ``y`` the prepared rows,
        ``llr = sum(w y1 y2) - 1/2 sum(q y1^2) - 1/2 sum(q y2^2) + c``, where
        ``w = psi / (2 psi + 1)``, ``q = psi^2 / ((psi + 1)(2 psi + 1))`` and
        ``c = 1/2 sum log((1 + psi)^2 / (2 psi + 1))``: ``P = y sqrt(w)`` and
        ``b = -1/2 q.y^2 + c/2`` per row.
        """
        Y = np.asarray(self.prepare(X), dtype=np.float64)
        psi = np.asarray(self.plda.psi, dtype=np.float64)
        w = psi / (2.0 * psi + 1.0)
        q = psi * psi / ((psi + 1.0) * (2.0 * psi + 1.0))
        const = 0.5 * float(np.sum(np.log((1.0 + psi) ** 2 / (2.0 * psi + 1.0))))
        bias = -0.5 * ((Y * Y) @ q) + 0.5 * const
        return np.ascontiguousarray(Y * np.sqrt(w)), bias
