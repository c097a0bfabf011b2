"""Streaming trial scoring: trials file in, ``utt1 utt2 score`` file out.

Embeddings are prepared once per unique utterance (:class:`PreparedRows`,
the back-end's bilinear form when it has one); the trials file is then read in
blocks of whole lines, each trial is mapped to a pair of row indices
(:mod:`pyutils.backends.trials`), and one score per pair is computed from those
rows.  No ``N x N`` score matrix is formed, no Python loop runs over trials,
and memory is bounded by the embedding matrices plus a few blocks.

* **bilinear back-ends** (cosine, PLDA with one enrolment utterance):
  ``score(i, j) = P1[i] . P2[j] + b1[i] + b2[j]``, so a block costs one row-wise
  dot product of gathered rows, in cache-sized chunks, visiting the trials in
  (utt1, utt2) order for locality.  Cosine uses single precision for the dot
  product, as Kaldi's ``ivector-compute-dot-products`` (``double=True`` keeps
  double); PLDA uses double, as ``ivector-plda-scoring``.  Any other back-end
  (or a subclass overriding ``score``) gets ``backend.score(rows1, rows2)`` once
  per block.
* **normalisation** (:mod:`pyutils.backends.norm`): per-utterance cohort
  statistics once, then one affine step per trial.

With ``num_threads`` > 1, whole blocks are parsed, scored and formatted in
worker threads (numpy releases the GIL) and written in order.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Optional

import numpy as np

from pyutils.backends.base import Backend, PreparedRows, backend_names, trusted_bilinear_form
from pyutils.backends.embeddings import stack_embeddings
from pyutils.backends.norm import NORMS, ScoreNorm
from pyutils.backends.trials import (TrialIds, fast_parse, line_blocks, plain_parse,
                                     score_lines)
from pyutils.utils.fileio import atomic_output

log = logging.getLogger(__name__)

BACKENDS = backend_names()

DEFAULT_BLOCK_SIZE = 250_000   # trials per block: ~10 MB of text, ~60 MB of work arrays
_CHUNK_ROWS = 256              # rows gathered per row-wise dot product (stays in cache)
_PIECE_BYTES = 1 << 19         # trials text parsed at a time (stays in cache)
_PIECE_ROWS = 16384            # score lines formatted at a time (stays in cache)


def bilinear_form(backend: Backend, X: np.ndarray):
    """``(P, b)`` of ``backend`` for raw rows ``X`` (see :meth:`Backend.bilinear_form`),
    None when the back-end is not known to be bilinear."""
    return trusted_bilinear_form(backend, X)


class _Side:
    """The utterances on one side of the trials: their ids and prepared rows."""

    def __init__(self, embeddings: Dict[str, np.ndarray], backend: Backend,
                 double: bool = False):
        keys = sorted(embeddings)
        if not keys:
            raise ValueError("no embeddings to score")
        self.ids = TrialIds(keys)
        self.keys = self.ids.keys
        self.rows = PreparedRows(stack_embeddings(embeddings, keys), backend, double)


class _PairScorer:
    """Scores of row pairs ``(r1, r2)`` between two prepared sides (thread-safe)."""

    def __init__(self, backend: Backend, side1: _Side, side2: _Side,
                 norm: Optional[ScoreNorm] = None):
        self.backend, self.side1, self.side2 = backend, side1.rows, side2.rows
        self.bilinear = self.side1.bilinear and self.side2.bilinear
        if self.bilinear and self.side1.P.shape[1] != self.side2.P.shape[1]:
            raise ValueError(f"embedding dimensions differ: {self.side1.P.shape[1]} "
                             f"and {self.side2.P.shape[1]}")
        self.norm = norm
        self._local = threading.local()

    def __call__(self, r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
        raw = self._raw(r1, r2)
        return raw if self.norm is None else self.norm(raw, r1, r2)

    def _raw(self, r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
        if not self.bilinear:
            return np.asarray(self.backend.score(self.side1.prepared[r1],
                                                 self.side2.prepared[r2]), dtype=np.float64)
        P1, P2 = self.side1.P, self.side2.P
        n = r1.size
        order = None
        if n > 4 * _CHUNK_ROWS and P1.nbytes + P2.nbytes > (2 << 20):
            # Visit the trials in (utt1, utt2) order: repeated rows come from cache.
            order = np.argsort(r1 * P2.shape[0] + r2)
            r1, r2 = r1[order], r2[order]
        buffers = getattr(self._local, "buffers", None)
        if buffers is None:
            buffers = self._local.buffers = (np.empty((_CHUNK_ROWS, P1.shape[1]), P1.dtype),
                                              np.empty((_CHUNK_ROWS, P2.shape[1]), P2.dtype))
        a, b = buffers
        out = np.empty(n, dtype=P1.dtype)
        for start in range(0, n, _CHUNK_ROWS):
            stop = min(n, start + _CHUNK_ROWS)
            m = stop - start
            np.take(P1, r1[start:stop], axis=0, out=a[:m], mode="clip")
            np.take(P2, r2[start:stop], axis=0, out=b[:m], mode="clip")
            np.vecdot(a[:m], b[:m], out=out[start:stop])
        out = out.astype(np.float64, copy=False)
        if self.side1.bias is not None:
            out += self.side1.bias[r1]
            out += self.side2.bias[r2]
        if order is not None:
            unsorted = np.empty_like(out)
            unsorted[order] = out
            out = unsorted
        return out


class _BlockScorer:
    """Parse, score and format one block of trials (callable from worker threads)."""

    def __init__(self, path: str, side1: _Side, side2: _Side, scorer: _PairScorer):
        self.path, self.ids1, self.ids2, self.scorer = path, side1.ids, side2.ids, scorer
        self.fast_blocks = 0

    def __call__(self, data: bytes, lineno: int) -> bytes:
        view = memoryview(data)
        parts = []
        start, size = 0, len(data)
        while start < size:        # cache-sized pieces of whole lines
            stop = data.find(b"\n", min(start + _PIECE_BYTES, size) - 1) + 1 or size
            parsed = fast_parse(view[start:stop], self.ids1, self.ids2)
            if parsed is None:
                parts = None
                break
            parts.append(parsed)
            start = stop
        if parts is None:
            r1, r2 = plain_parse(data, self.path, lineno, self.ids1, self.ids2)
        else:
            r1 = np.concatenate([p[0] for p in parts]) if len(parts) != 1 else parts[0][0]
            r2 = np.concatenate([p[1] for p in parts]) if len(parts) != 1 else parts[0][1]
            self.fast_blocks += 1
        if r1.size == 0:
            return b""
        scores = self.scorer(r1, r2)
        return b"".join(score_lines(self.ids1, r1[i:i + _PIECE_ROWS], self.ids2,
                                    r2[i:i + _PIECE_ROWS], scores[i:i + _PIECE_ROWS])
                        for i in range(0, r1.size, _PIECE_ROWS))


def score_trials(trials_path: str, enroll: Dict[str, np.ndarray], test: Dict[str, np.ndarray],
                 backend: Backend, out_path: str, block_size: int = DEFAULT_BLOCK_SIZE,
                 num_threads: int = 1, double: bool = False,
                 cohort: Optional[Dict[str, np.ndarray]] = None, top_k: int = 300,
                 norm: str = "asnorm") -> int:
    """Atomically write ``utt1 utt2 score`` in trial order; returns the trial count.

    Trials may carry a third (label) field, which is ignored.  An utterance
    missing from ``enroll``/``test`` is a TableError naming the trials line.
    ``block_size`` trials are read, scored and written at a time; with
    ``num_threads`` > 1 that many blocks are processed at once.  ``double``
    computes cosine dot products in double precision (PLDA always is).
    With a ``cohort`` of embeddings, scores are normalised by ``norm``
    (znorm, tnorm, snorm or asnorm with the ``top_k`` best cohort scores per
    side; :mod:`pyutils.backends.norm`).
    """
    if block_size < 1:
        raise ValueError(f"block size must be positive, got {block_size}")
    if cohort is not None and norm not in NORMS:
        raise ValueError(f"unknown score normalisation '{norm}' (expected one of "
                         f"{', '.join(NORMS)})")
    start = time.perf_counter()
    side1 = _Side(enroll, backend, double)
    side2 = side1 if test is enroll else _Side(test, backend, double)
    normaliser = None
    if cohort is not None:
        keys = sorted(cohort)
        if not keys:
            raise ValueError("the score-normalisation cohort is empty")
        cohort_rows = PreparedRows(stack_embeddings(cohort, keys), backend, double=True)
        normaliser = ScoreNorm.build(norm, side1.rows, side2.rows, cohort_rows, top_k,
                                     side1.keys, side2.keys)
        log.info("%s: cohort of %d embeddings%s", norm, len(keys),
                 f", top {min(top_k, len(keys))}" if norm == "asnorm" else "")
    scorer = _PairScorer(backend, side1, side2, normaliser)
    process = _BlockScorer(trials_path, side1, side2, scorer)
    num_trials = blocks = 0
    with atomic_output(out_path, "wb") as out:
        if num_threads <= 1:
            for data, lines in line_blocks(trials_path, block_size):
                out.write(process(data, num_trials))
                num_trials += lines
                blocks += 1
        else:
            with ThreadPoolExecutor(num_threads) as pool:
                pending: deque = deque()
                for data, lines in line_blocks(trials_path, block_size):
                    pending.append(pool.submit(process, data, num_trials))
                    num_trials += lines
                    blocks += 1
                    while len(pending) > num_threads:
                        out.write(pending.popleft().result())
                while pending:
                    out.write(pending.popleft().result())
    elapsed = time.perf_counter() - start
    log.info("Scored %d trials into %s in %.2f s (%.0f trials/s; %s scoring; %d of %d blocks "
             "parsed by the fast path; %d thread(s))", num_trials, out_path, elapsed,
             num_trials / max(elapsed, 1e-9), "bilinear" if scorer.bilinear else "generic",
             process.fast_blocks, blocks, num_threads)
    return num_trials
