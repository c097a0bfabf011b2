"""Streaming trial scoring and the on-disk layout of a trained backend.

Embeddings are prepared once per utterance (``backend.prepare``) into a
matrix indexed by unique utterance; trials are then read in blocks, their
rows gathered, and ``backend.score`` computes one score per row pair.  No
``N x N`` score matrix is formed and no Python loop runs over trial scores.
"""
from __future__ import annotations

import logging
import os
from typing import Dict, Iterator, List, Protocol, Tuple

import numpy as np

from pyutils.backends.cosine import CosineBackend
from pyutils.backends.plda import Plda, PldaBackend, read_matrix, read_vector
from pyutils.utils.fileio import TableError, atomic_output, read_table

log = logging.getLogger(__name__)

MEAN_FILE = "mean.vec"
LDA_FILE = "lda.mat"
PLDA_FILE = "plda"
BACKENDS = ("cosine", "plda")


class Backend(Protocol):
    def prepare(self, X: np.ndarray) -> np.ndarray: ...
    def score(self, enroll: np.ndarray, test: np.ndarray) -> np.ndarray: ...


def load_backend(kind: str, backend_dir: str, smoothing: float = 0.0) -> Backend:
    """Build a ``cosine`` or ``plda`` backend from a train_backend output dir."""
    mean = read_vector(os.path.join(backend_dir, MEAN_FILE))
    if kind == "cosine":
        return CosineBackend(mean)
    if kind == "plda":
        plda = Plda.load(os.path.join(backend_dir, PLDA_FILE))
        if smoothing:
            plda.smooth_within_class_covariance(smoothing)
        return PldaBackend(mean, read_matrix(os.path.join(backend_dir, LDA_FILE)), plda)
    raise ValueError(f"unknown backend '{kind}' (expected one of {', '.join(BACKENDS)})")


def stack_embeddings(table: Dict[str, np.ndarray], keys) -> np.ndarray:
    """Stack ``table[k]`` for ``keys`` as float64 rows; all must share one dimension."""
    rows = [np.ravel(table[k]).astype(np.float64) for k in keys]
    dims = {row.size for row in rows}
    if len(dims) > 1:
        first = rows[0].size
        odd = next(k for k, row in zip(keys, rows) if row.size != first)
        raise ValueError(f"embedding dimensions differ: '{keys[0]}' has {first}, "
                         f"'{odd}' has {table[odd].size}")
    return np.stack(rows)


class _Index:
    """Prepared embeddings of one dict, looked up by sorted key."""

    def __init__(self, embeddings: Dict[str, np.ndarray], backend: Backend):
        self.keys = np.array(sorted(embeddings))
        if self.keys.size == 0:
            raise ValueError("no embeddings to score")
        self.matrix = backend.prepare(stack_embeddings(embeddings, self.keys))

    def rows(self, keys: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Row indices of ``keys`` and a mask of which keys exist."""
        pos = np.minimum(np.searchsorted(self.keys, keys), self.keys.size - 1)
        return pos, self.keys[pos] == keys


def _trial_blocks(trials_path: str, block_size: int) -> Iterator[Tuple[List[int], List[str], List[str]]]:
    """Yield ``(linenos, utt1s, utt2s)`` of at most ``block_size`` trials."""
    linenos: List[int] = []
    utt1s: List[str] = []
    utt2s: List[str] = []
    for lineno, fields in read_table(trials_path, min_fields=2, max_fields=3):
        linenos.append(lineno)
        utt1s.append(fields[0])
        utt2s.append(fields[1])
        if len(linenos) == block_size:
            yield linenos, utt1s, utt2s
            linenos, utt1s, utt2s = [], [], []
    if linenos:
        yield linenos, utt1s, utt2s


def score_trials(trials_path: str, enroll: Dict[str, np.ndarray], test: Dict[str, np.ndarray],
                 backend: Backend, out_path: str, block_size: int = 20_000) -> int:
    """Atomically write ``utt1 utt2 score`` in trial order; returns the trial count.

    Trials may carry a third (label) field, which is ignored.  An utterance
    missing from ``enroll``/``test`` is a TableError naming the trials line.
    """
    if block_size < 1:
        raise ValueError(f"block size must be positive, got {block_size}")
    enroll_index = _Index(enroll, backend)
    test_index = enroll_index if test is enroll else _Index(test, backend)
    num_trials = 0
    with atomic_output(out_path) as out:
        for linenos, utt1s, utt2s in _trial_blocks(trials_path, block_size):
            rows1, found1 = enroll_index.rows(np.array(utt1s))
            rows2, found2 = test_index.rows(np.array(utt2s))
            for found, utts, side in ((found1, utt1s, "enroll"), (found2, utt2s, "test")):
                if not found.all():
                    bad = int(np.argmin(found))
                    raise TableError(trials_path, linenos[bad],
                                     f"utterance '{utts[bad]}' has no {side} embedding")
            scores = backend.score(enroll_index.matrix[rows1], test_index.matrix[rows2])
            out.writelines(f"{u1} {u2} {s:.8g}\n" for u1, u2, s in zip(utt1s, utt2s, scores.tolist()))
            num_trials += len(linenos)
    log.info("Scored %d trials into %s", num_trials, out_path)
    return num_trials
