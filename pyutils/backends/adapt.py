"""Unsupervised adaptation of a back-end to a new domain, as Kaldi's recipes do it.

* :func:`adapt_plda` is ``ivector-adapt-plda`` (``PldaUnsupervisedAdaptor`` in
  Kaldi's ivector/plda.cc): the total covariance of unlabelled in-domain
  vectors (in the PLDA's input space: mean-subtracted, LDA, length-normalised),
  plus ``mean_diff_scale`` times the outer product of the mean shift, is
  compared with the model's total covariance ``within + between``; in each
  direction where the in-domain variance exceeds the model's, the excess is
  added to the within-class covariance (``within_covar_scale``, default 0.3)
  and the between-class covariance (``between_covar_scale``, 0.7).  The model
  mean becomes the in-domain mean, and the model is re-diagonalised.
* :func:`adapt_backend` adds Kaldi's simpler step (sre16/v2): the in-domain
  mean replaces the training mean (``ivector-subtract-global-mean`` with the
  in-domain ``mean.vec``) before LDA, for every back-end of the directory.
"""
from __future__ import annotations

import logging
import os
import shutil

import numpy as np
from scipy.linalg import solve_triangular

from pyutils.backends.base import LDA_FILE, MEAN_FILE, PLDA_FILE
from pyutils.backends.lda import apply_transform
from pyutils.backends.plda import (Plda, length_normalize, read_matrix, subtract_mean,
                                   write_vector)

log = logging.getLogger(__name__)


def adapt_plda(plda: Plda, X: np.ndarray, within_covar_scale: float = 0.3,
               between_covar_scale: float = 0.7, mean_diff_scale: float = 1.0) -> Plda:
    """A new :class:`Plda` adapted to the rows of ``X`` (PldaUnsupervisedAdaptor)."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[1] != plda.dim:
        raise ValueError(f"adaptation vectors of shape {X.shape} for a PLDA of dimension "
                         f"{plda.dim}")
    if len(X) == 0:
        raise ValueError("no adaptation vectors")
    if mean_diff_scale < 0:
        raise ValueError(f"mean_diff_scale must be >= 0, got {mean_diff_scale}")
    dim = plda.dim
    mean = X.mean(axis=0)
    variance = X.T @ X / len(X) - np.outer(mean, mean)
    mean_diff = mean - plda.mean
    variance += mean_diff_scale * np.outer(mean_diff, mean_diff)
    # transform_mod: to the space where the model's total covariance is I
    transform_mod = plda.transform / np.sqrt(1.0 + plda.psi)[:, None]
    variance_proj = transform_mod @ variance @ transform_mod.T
    s, P = np.linalg.eigh((variance_proj + variance_proj.T) / 2)
    order = np.argsort(-s, kind="stable")          # Kaldi SortSvd: decreasing
    s, P = s[order], P[:, order]
    log.info("eigenvalues of the in-domain total covariance where the training one is I: %s",
             np.array2string(s, precision=3))
    W = np.diag(1.0 / (1.0 + plda.psi))
    B = np.diag(plda.psi / (1.0 + plda.psi))
    W_proj2, B_proj2 = P.T @ W @ P, P.T @ B @ P
    excess = np.maximum(s - 1.0, 0.0)
    W_proj2 = W_proj2 + np.diag(within_covar_scale * excess)
    B_proj2 = B_proj2 + np.diag(between_covar_scale * excess)
    combined_inv = np.linalg.inv(P.T @ transform_mod)
    W_mod = combined_inv @ W_proj2 @ combined_inv.T
    B_mod = combined_inv @ B_proj2 @ combined_inv.T
    W_mod, B_mod = (W_mod + W_mod.T) / 2, (B_mod + B_mod.T) / 2
    chol = np.linalg.cholesky(W_mod)
    c_inv = solve_triangular(chol, np.eye(dim), lower=True)
    B_mod_proj = c_inv @ B_mod @ c_inv.T
    psi, Q = np.linalg.eigh((B_mod_proj + B_mod_proj.T) / 2)
    order = np.argsort(-psi, kind="stable")
    psi, Q = psi[order], Q[:, order]
    log.info("PLDA between-class diagonal: %s -> %s", np.array2string(plda.psi, precision=3),
             np.array2string(psi, precision=3))
    return Plda(mean, Q.T @ c_inv, psi)


def adapt_backend(backend_dir: str, X: np.ndarray, out_dir: str,
                  within_covar_scale: float = 0.3, between_covar_scale: float = 0.7,
                  mean_diff_scale: float = 1.0) -> dict:
    """Write ``out_dir`` = ``backend_dir`` adapted to the raw in-domain embeddings ``X``.

    ``mean.vec`` becomes the in-domain mean; ``lda.mat`` is kept; ``plda`` (when
    present) is adapted with the in-domain vectors mean-subtracted by their own
    mean, LDA-projected and length-normalised, as Kaldi's sre16 recipe feeds
    ``ivector-adapt-plda``.  Returns a summary for the done marker.
    """
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or len(X) < 2:
        raise ValueError(f"in-domain adaptation needs at least 2 embeddings, got {len(X)}")
    os.makedirs(out_dir, exist_ok=True)
    in_mean = X.mean(axis=0)
    write_vector(os.path.join(out_dir, MEAN_FILE), in_mean)
    summary = {"adapt_vectors": len(X)}
    lda_path, plda_path = os.path.join(backend_dir, LDA_FILE), os.path.join(backend_dir, PLDA_FILE)
    if os.path.isfile(lda_path):
        shutil.copyfile(lda_path, os.path.join(out_dir, LDA_FILE))
    if os.path.isfile(plda_path) and os.path.isfile(lda_path):
        reduced = length_normalize(apply_transform(read_matrix(lda_path),
                                                   subtract_mean(X, in_mean)))
        adapted = adapt_plda(Plda.load(plda_path), reduced, within_covar_scale,
                             between_covar_scale, mean_diff_scale)
        adapted.save(os.path.join(out_dir, PLDA_FILE))
        summary["plda_dim"] = adapted.dim
    return summary
