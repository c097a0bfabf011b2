"""Streaming trial scoring and the on-disk layout of a trained backend.

Embeddings are prepared once per unique utterance (``backend.prepare``, a
matrix product over the stacked embeddings); the trials file is then read in
blocks of whole lines, each trial is mapped to a pair of row indices, and one
score per pair is computed from those rows.  No ``N x N`` score matrix is
formed, no Python loop runs over trials, and memory is bounded by the
embedding matrices plus a few blocks.

Fast paths (each checked against the plain computation by tests/test_scoring_fast.py):

* **scoring** -- cosine and the PLDA log-likelihood ratio (one enrolment
  utterance) are both bilinear, ``score(i, j) = P1[i] . P2[j] + b1[i] + b2[j]``
  with per-utterance ``P`` and ``b`` (:func:`bilinear_form`), so a block costs
  one row-wise dot product of gathered rows, in cache-sized chunks, visiting
  the trials in (utt1, utt2) order for locality.  Cosine uses single precision for the
  dot product, as Kaldi's ``ivector-compute-dot-products`` (``double=True``
  keeps double); PLDA uses double, as ``ivector-plda-scoring``.  Any other
  backend (or a subclass overriding ``score``) gets
  ``backend.score(rows1, rows2)`` once per block.
* **parsing** -- a block of the trials file is tokenised with numpy (no
  per-line Python objects); ids are found through a hash table over their
  bytes and verified byte for byte.  Blocks it does not handle (carriage
  returns, non-ASCII bytes, bad lines, unknown ids) go through the plain
  ``str.split`` parser, which gives the same results and read_table's errors.
* **writing** -- ``utt1 utt2 score`` lines are assembled in numpy; the score
  is formatted exactly as Python's ``'%.8g'`` (:func:`format_g8`).

With ``num_threads`` > 1, whole blocks are parsed, scored and formatted in
worker threads (numpy releases the GIL) and written in order.
"""
from __future__ import annotations

import io
import logging
import os
import re
import threading
import time
from collections import defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, Iterator, List, Optional, Protocol, Sequence, Tuple

import numpy as np

from pyutils.backends.cosine import CosineBackend
from pyutils.backends.plda import Plda, PldaBackend, read_matrix, read_vector
from pyutils.data.datadir import read_scp
from pyutils.utils.fileio import TableError, atomic_output

log = logging.getLogger(__name__)

MEAN_FILE = "mean.vec"
LDA_FILE = "lda.mat"
PLDA_FILE = "plda"
BACKENDS = ("cosine", "plda")

DEFAULT_BLOCK_SIZE = 250_000   # trials per block: ~10 MB of text, ~60 MB of work arrays
_READ_BYTES = 1 << 23          # bytes read from the trials file at a time
_CHUNK_ROWS = 256              # rows gathered per row-wise dot product (stays in cache)
_PIECE_BYTES = 1 << 19         # trials text parsed at a time (stays in cache)
_PIECE_ROWS = 16384            # score lines formatted at a time (stays in cache)


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


# ---------------------------------------------------------------- embeddings

_ARK_OFFSET = re.compile(r"^(.+):(\d+)$")


def load_embeddings(scp_path: str) -> Dict[str, np.ndarray]:
    """Read an scp of vectors into ``{key: vector}``, reading each ark once.

    Entries ``key ark:offset`` that point at Kaldi binary float/double
    vectors are decoded with numpy from the ark's bytes; anything else
    (pipes, ranges, matrices, text) goes through kaldiio.  The one loader of
    every back-end stage: a repeated key, an unreadable entry, a matrix, a
    NaN/inf value or another dimension than the first embedding's is a
    TableError naming the line.
    """
    import kaldiio

    table: Dict[str, np.ndarray] = {}
    lines: Dict[str, int] = {}
    by_ark: Dict[str, List[Tuple[int, str, int]]] = defaultdict(list)
    for lineno, key, location in read_scp(scp_path):     # repeated keys are an error
        lines[key] = lineno
        match = _ARK_OFFSET.match(location)
        if match and os.path.isfile(match.group(1)):
            by_ark[match.group(1)].append((lineno, key, int(match.group(2))))
        else:
            table[key] = _load_one(scp_path, lineno, location, kaldiio)
    _load_arks(scp_path, by_ark, table, kaldiio)
    first = None
    for key, lineno in lines.items():                   # file order: the first bad line
        vector = table[key]
        if vector.ndim != 1 and not (vector.ndim == 2 and 1 in vector.shape):
            raise TableError(scp_path, lineno, f"embedding '{key}' is a {vector.shape} "
                                               f"matrix, not a vector")
        table[key] = vector = vector.ravel()
        bad = int(np.count_nonzero(~np.isfinite(vector)))
        if bad:
            raise TableError(scp_path, lineno, f"embedding '{key}' has {bad} NaN/inf value(s)")
        if first is None:
            first = (key, vector.size)
        elif vector.size != first[1]:
            raise TableError(scp_path, lineno, f"embedding '{key}' has dimension {vector.size} "
                                               f"but '{first[0]}' has {first[1]}")
    return table


def _load_arks(scp_path: str, by_ark, table: Dict[str, np.ndarray], kaldiio) -> None:
    """Decode the ``ark:offset`` entries of each ark from one read of its bytes."""
    for ark, entries in by_ark.items():
        data = np.fromfile(ark, dtype=np.uint8)
        for lineno, key, offset in entries:
            header = data[offset:offset + 10].tobytes()
            if len(header) == 10 and header[:2] == b"\0B" and header[2:5] in (b"FV ", b"DV ") \
                    and header[5] == 4:
                dim = int.from_bytes(header[6:10], "little", signed=True)
                dtype = np.float32 if header[2:3] == b"F" else np.float64
                end = offset + 10 + dim * np.dtype(dtype).itemsize
                if dim >= 0 and end <= data.size:
                    table[key] = data[offset + 10:end].view(dtype)
                    continue
            table[key] = _load_one(scp_path, lineno, f"{ark}:{offset}", kaldiio)


def _load_one(scp_path: str, lineno: int, location: str, kaldiio) -> np.ndarray:
    try:
        return np.asarray(kaldiio.load_mat(location))
    except Exception as err:  # kaldiio raises many types
        raise TableError(scp_path, lineno, f"cannot read '{location}': {err}") from err


# ---------------------------------------------------------------- bilinear scoring

def bilinear_form(backend: Backend, X: np.ndarray):
    """``(P, b)`` with ``backend.score(prep[i], prep[j]) == P[i] . P[j] + b[i] + b[j]``.

    ``X`` are raw embeddings (rows).  Returns None for a backend whose scores
    are not known to be bilinear (then the generic path is used); ``b`` is
    None when it is zero.

    * cosine: ``P`` = the prepared (centred, unit-length) rows;
    * PLDA LLR with one enrolment utterance (Kaldi ``LogLikelihoodRatio``):
      with ``psi`` the between-class variances and ``y`` the transformed rows,
      ``llr = sum(w y1 y2) - 1/2 sum(q y1^2) - 1/2 sum(q y2^2) + c``, where
      ``w = psi / (2 psi + 1)``, ``q = psi^2 / ((psi + 1)(2 psi + 1))`` and
      ``c = 1/2 sum log((1 + psi)^2 / (2 psi + 1))`` -- symmetric in y1, y2.
    """
    kind = type(backend)
    if isinstance(backend, CosineBackend) and kind.score is CosineBackend.score \
            and kind.prepare is CosineBackend.prepare:
        return np.ascontiguousarray(backend.prepare(X), dtype=np.float64), None
    if isinstance(backend, PldaBackend) and kind.score is PldaBackend.score \
            and kind.prepare is PldaBackend.prepare:
        Y = np.asarray(backend.prepare(X), dtype=np.float64)
        psi = np.asarray(backend.plda.psi, dtype=np.float64)
        w = psi / (2.0 * psi + 1.0)
        q = psi * psi / ((psi + 1.0) * (2.0 * psi + 1.0))
        const = 0.5 * float(np.sum(np.log((1.0 + psi) ** 2 / (2.0 * psi + 1.0))))
        bias = -0.5 * ((Y * Y) @ q) + 0.5 * const
        return np.ascontiguousarray(Y * np.sqrt(w)), bias
    return None


def _form_matches(backend: Backend, X: np.ndarray, form) -> bool:
    """Check the bilinear form against ``backend.score`` on a few pairs (guards refactors)."""
    P, bias = form
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, len(X), 16), rng.integers(0, len(X), 16)
    want = np.asarray(backend.score(backend.prepare(X[i]), backend.prepare(X[j])),
                      dtype=np.float64)
    got = np.einsum("ij,ij->i", P[i], P[j]) + (0.0 if bias is None else bias[i] + bias[j])
    scale = max(1.0, float(np.max(np.abs(want))))
    return bool(np.all(np.abs(got - want) <= 1e-9 * scale))


# ---------------------------------------------------------------- score normalisation

def cohort_statistics(side: "_Side", cohort: "_Side", backend: Backend, top_k: int,
                      rows_per_block: int = 1024) -> Tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of each utterance's ``top_k`` highest cohort scores.

    Adaptive s-norm (Matejka et al. 2017; WeSpeaker's ``score_norm.py``):
    the cohort is usually the training set.  Scores are computed in blocks of
    utterance rows, so memory is ``rows_per_block x cohort size``.
    """
    num_cohort = len(cohort.keys)
    if int(top_k) < 2:
        raise ValueError(f"AS-norm top-k must be at least 2, got {top_k}")
    k = min(int(top_k), num_cohort)
    if k < 2:
        raise ValueError(f"AS-norm needs a cohort of at least 2 embeddings, got {num_cohort}")
    num = len(side.keys)
    means, stds = np.empty(num), np.empty(num)
    for start in range(0, num, rows_per_block):
        rows = np.arange(start, min(num, start + rows_per_block))
        if side.P is not None and cohort.P is not None:
            S = side.P[rows].astype(np.float64) @ cohort.P.astype(np.float64).T
            if side.bias is not None:
                S += side.bias[rows][:, None] + cohort.bias[None, :]
        else:
            S = np.stack([np.asarray(backend.score(
                np.repeat(side.prepared[r:r + 1], num_cohort, axis=0), cohort.prepared),
                dtype=np.float64) for r in rows])
        top = np.partition(S, num_cohort - k, axis=1)[:, num_cohort - k:]
        means[rows] = top.mean(axis=1)
        stds[rows] = top.std(axis=1)
    if np.any(stds <= 0):
        bad = side.keys[int(np.flatnonzero(stds <= 0)[0])]
        raise ValueError(f"AS-norm: the top-{k} cohort scores of '{bad}' are all equal")
    return means, stds


# ---------------------------------------------------------------- utterance tables

_HASH_MULTIPLIERS = [np.uint64(m) for m in (
    0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93,
    0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53, 0x94D049BB133111EB, 0xBF58476D1CE4E5B9)]
_SHIFT29 = np.uint64(29)


def _hash_columns(words: Sequence[np.ndarray]) -> np.ndarray:
    """A 64-bit multiply-xor hash of rows given as uint64 columns."""
    h = words[0] * _HASH_MULTIPLIERS[0]
    for j in range(1, len(words)):
        h ^= h >> _SHIFT29
        h += words[j] * _HASH_MULTIPLIERS[j % 8]
    h ^= h >> _SHIFT29
    h *= _HASH_MULTIPLIERS[3]
    h ^= h >> _SHIFT29
    return h


class _Side:
    """The utterances on one side of the trials: ids, their bytes and prepared rows."""

    MAX_HASHED_WIDTH = 64

    def __init__(self, embeddings: Dict[str, np.ndarray], backend: Backend,
                 double: bool = False, lookup: bool = True):
        self.keys = sorted(embeddings)
        if not self.keys:
            raise ValueError("no embeddings to score")
        X = stack_embeddings(embeddings, self.keys)
        self.index = {k: i for i, k in enumerate(self.keys)}
        form = bilinear_form(backend, X)
        if form is not None and not _form_matches(backend, X, form):
            log.warning("%s: bilinear scores disagree with backend.score; using the "
                        "generic path", type(backend).__name__)
            form = None
        self.prepared = self.P = self.bias = None
        if form is None:
            self.prepared = backend.prepare(X)
        else:
            self.P, self.bias = form
            if self.bias is None and not double:        # cosine: single precision, as Kaldi
                self.P = self.P.astype(np.float32)
        if lookup:                                      # (a cohort is never looked up)
            self._init_bytes()

    def _init_bytes(self) -> None:
        encoded = [k.encode("utf-8") for k in self.keys]
        lengths = np.array([len(k) for k in encoded], dtype=np.int64)
        self.lengths = lengths
        # output: "<id> " padded to the longest id (+ a mask when lengths differ)
        longest = int(lengths.max())
        self.out_bytes = np.full((len(encoded), longest + 1), 32, dtype=np.uint8)
        for i, k in enumerate(encoded):
            self.out_bytes[i, :len(k)] = np.frombuffer(k, dtype=np.uint8)
        self.out_mask = None
        if lengths.min() != longest:
            self.out_mask = np.arange(longest + 1)[None, :] < lengths[:, None]
            self.out_mask[np.arange(len(encoded)), lengths] = True
        # lookup: zero-padded ids as uint64 words, open-addressing hash table
        self.width = max(8, -(-longest // 8) * 8)
        self.hashable = self.width <= self.MAX_HASHED_WIDTH and all(k.isascii() for k in self.keys)
        if not self.hashable:
            return
        padded = np.zeros((len(encoded), self.width), dtype=np.uint8)
        for i, k in enumerate(encoded):
            padded[i, :len(k)] = np.frombuffer(k, dtype=np.uint8)
        self.word_columns = [np.ascontiguousarray(c) for c in padded.view(np.uint64).T]
        self.hashes = _hash_columns(self.word_columns)
        bits = max(4, int(np.ceil(np.log2(4 * len(encoded)))))
        self.shift = np.uint64(64 - bits)
        table = np.full(1 << bits, -1, dtype=np.int64)
        self.max_probe = 0
        for row, slot in enumerate((self.hashes >> self.shift).astype(np.int64).tolist()):
            probe = 0
            while table[(slot + probe) & (table.size - 1)] >= 0:
                probe += 1
            table[(slot + probe) & (table.size - 1)] = row
            self.max_probe = max(self.max_probe, probe)
        self.table = table
        masks = np.zeros((self.width + 1, self.width), dtype=np.uint8)
        for length in range(self.width + 1):
            masks[length, :length] = 255
        self.word_masks = masks.view(np.uint64)

    def lookup(self, utts: Sequence[str]) -> np.ndarray:
        """Row indices of ``utts`` (str), -1 for unknown ones."""
        get = self.index.get
        return np.fromiter((get(u, -1) for u in utts), dtype=np.int64, count=len(utts))

    def find(self, padded: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Row of each token ``padded[start:start + length]`` (-1 if it is no id).

        ``padded`` is the block's bytes followed by at least ``width`` zeros.
        """
        rows = np.full(starts.size, -1, dtype=np.int64)
        fits = np.flatnonzero(lengths <= self.width)
        if fits.size < starts.size:
            starts, lengths = starts[fits], lengths[fits]
        # the token's bytes as uint64 words (unaligned loads), zeroed past its end
        unaligned = np.ndarray(shape=(padded.size - 7,), dtype=np.uint64, buffer=padded,
                               strides=(1,))
        uniform = lengths.size > 0 and lengths.min() == lengths.max()
        words = []
        for j in range(self.width // 8):
            word = unaligned[starts + 8 * j]
            word &= self.word_masks[lengths[0] if uniform else lengths, j]
            words.append(word)
        hashes = _hash_columns(words)
        slots = (hashes >> self.shift).astype(np.int64)
        found = self.table[slots]
        hit = (found >= 0) & (self.hashes[found] == hashes)
        if self.max_probe and not hit.all():
            mask = self.table.size - 1
            todo = np.flatnonzero(~hit & (found >= 0))
            for probe in range(1, self.max_probe + 1):
                cand = self.table[(slots[todo] + probe) & mask]
                ok = (cand >= 0) & (self.hashes[cand] == hashes[todo])
                found[todo[ok]] = cand[ok]
                hit[todo[ok]] = True
                todo = todo[(cand >= 0) & ~ok]
                if todo.size == 0:
                    break
        found[~hit] = -1
        # verify byte for byte: a hash match is not proof
        safe = np.maximum(found, 0)
        ok = hit & (self.lengths[safe] == lengths)
        for j, word in enumerate(words):
            ok &= self.word_columns[j][safe] == word
        found[~ok] = -1
        if fits.size == rows.size:
            return found
        rows[fits] = found
        return rows


class _PairScorer:
    """Scores of row pairs ``(r1, r2)`` between two prepared sides (thread-safe)."""

    def __init__(self, backend: Backend, side1: _Side, side2: _Side, norm1=None, norm2=None):
        self.backend, self.side1, self.side2 = backend, side1, side2
        self.bilinear = side1.P is not None and side2.P is not None
        if self.bilinear and side1.P.shape[1] != side2.P.shape[1]:
            raise ValueError(f"embedding dimensions differ: {side1.P.shape[1]} "
                             f"and {side2.P.shape[1]}")
        self.norm1, self.norm2 = norm1, norm2        # AS-norm (mean, std) per row, or None
        self._local = threading.local()

    def __call__(self, r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
        raw = self._raw(r1, r2)
        if self.norm1 is None:
            return raw
        (m1, s1), (m2, s2) = self.norm1, self.norm2
        return 0.5 * ((raw - m1[r1]) / s1[r1] + (raw - m2[r2]) / s2[r2])

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


# ---------------------------------------------------------------- '%.8g' in numpy

_P10 = np.array([float(f"1e{k}") for k in range(0, 12)])
_N4 = np.arange(10000)
_DIGITS4 = np.ascontiguousarray(np.stack([(_N4 // 1000) % 10, (_N4 // 100) % 10,
                                          (_N4 // 10) % 10, _N4 % 10], axis=1) + 48,
                                dtype=np.uint8).view(np.uint32).ravel()
_TRAILING_ZEROS = sum(((_N4 % 10 ** k) == 0).astype(np.int64) for k in (1, 2, 3))

# Score column layout: sign, "0.000" (for values below 1), then the 8 digits
# with a candidate '.' after each; a mask per (sign, exponent, significant
# digits) keeps the characters '%.8g' prints.
SCORE_COLS = 21
_DIGIT_COLS = np.array([6 + 2 * k for k in range(8)])


def _score_layout():
    chars = np.zeros(SCORE_COLS, dtype=np.uint8)
    chars[0:6] = np.frombuffer(b"-0.000", dtype=np.uint8)
    chars[7:20:2] = ord(".")
    masks = np.zeros((2, 12, 9, SCORE_COLS), dtype=bool)   # negative, exponent + 4, digits
    for neg in (0, 1):
        for x in range(-4, 8):
            for nz in range(1, 9):
                keep = masks[neg, x + 4, nz]
                keep[0] = bool(neg)
                if x < 0:                                   # 0.000ddd
                    keep[1:3 + (-x - 1)] = True
                    keep[_DIGIT_COLS[:nz]] = True
                else:                                       # ddd.ddd
                    keep[_DIGIT_COLS[:max(nz, x + 1)]] = True
                    if nz > x + 1:
                        keep[_DIGIT_COLS[x] + 1] = True
    return chars, masks


_SCORE_CHARS, _SCORE_MASKS = _score_layout()


def format_g8(x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``'%.8g' % v`` for every value, as ``(chars, keep)`` of shape (n, SCORE_COLS).

    The text of value ``i`` is ``chars[i][keep[i]]``.  Plain notation
    (1e-4 <= |v| < 1e8) is built with integer arithmetic from one exactly
    rounded scaling; values printed in exponent notation, zeros, non-finite
    values and near-ties of the 8th digit (where that scaling could round
    differently) are formatted by Python itself, so the text always equals
    Python's.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    a = np.abs(x)
    neg = np.signbit(x)
    plain = (a >= 1e-4) & (a < 99_999_999.5)      # NaN fails both
    a = np.where(plain, a, 1.0)
    X = np.clip(np.floor(np.log10(a)), -4, 7).astype(np.int64)
    for _ in range(3):   # log10 can be off by one next to powers of ten
        m = a * _P10[7 - X]                           # exact power of ten: one rounding
        low, high = (m < 1e7) & (X > -4), (m >= 1e8) & (X < 7)
        if not (low.any() or high.any()):
            break
        X = X - low + high
    base = np.floor(m)
    frac = m - base
    mi = base.astype(np.int64) + (frac > 0.5)
    carry = mi >= 100_000_000
    mi[carry] = 10_000_000
    X += carry
    fallback = ~plain | (np.abs(frac - 0.5) < 1e-6) | (X > 7) | (m < 1e7) | (m >= 1e8)
    hi, lo = np.divmod(np.clip(mi, 10_000_000, 99_999_999), 10000)
    words = np.empty((n, 2), dtype=np.uint32)
    words[:, 0] = _DIGITS4[hi]
    words[:, 1] = _DIGITS4[lo]
    nz = np.where(lo == 0, 4 - _TRAILING_ZEROS[hi], 8 - _TRAILING_ZEROS[lo])
    chars = np.empty((n, SCORE_COLS), dtype=np.uint8)
    chars[:] = _SCORE_CHARS
    chars[:, _DIGIT_COLS] = words.view(np.uint8).reshape(n, 8)
    layout = (neg.view(np.uint8) * 12 + np.clip(X, -4, 7) + 4) * 9 + nz
    keep = np.take(_SCORE_MASKS.reshape(-1, SCORE_COLS), layout, axis=0)
    for i in np.flatnonzero(fallback).tolist():
        text = np.frombuffer(b"%.8g" % float(x[i]), dtype=np.uint8)
        chars[i, :text.size] = text
        keep[i] = False
        keep[i, :text.size] = True
    return chars, keep


def _score_lines(side1: _Side, r1: np.ndarray, side2: _Side, r2: np.ndarray,
                 scores: np.ndarray) -> bytes:
    """``utt1 utt2 score\\n`` lines as one bytes object."""
    n = r1.size
    chars, keep = format_g8(scores)
    w1, w2 = side1.out_bytes.shape[1], side2.out_bytes.shape[1]
    width = w1 + w2 + SCORE_COLS + 1
    row = np.empty((n, width), dtype=np.uint8)
    mask = np.ones((n, width), dtype=bool)
    row[:, :w1] = side1.out_bytes[r1]
    row[:, w1:w1 + w2] = side2.out_bytes[r2]
    row[:, w1 + w2:-1] = chars
    row[:, -1] = 10
    if side1.out_mask is not None:
        mask[:, :w1] = side1.out_mask[r1]
    if side2.out_mask is not None:
        mask[:, w1:w1 + w2] = side2.out_mask[r2]
    mask[:, w1 + w2:-1] = keep
    return row[mask].tobytes()


# ---------------------------------------------------------------- trials blocks

_ASCII_BLANKS = [9, 11, 12, 28, 29, 30, 31, 32]   # what str.split splits on (ASCII, not \n \r)
_BYTE_CLASS = np.zeros(256, dtype=np.uint8)      # 0 token, 1 blank, 2 newline, 3 other
_BYTE_CLASS[_ASCII_BLANKS] = 1
_BYTE_CLASS[10] = 2
_BYTE_CLASS[13] = 3
_BYTE_CLASS[128:] = 3


def _line_blocks(path: str, block_size: int) -> Iterator[Tuple[bytes, int]]:
    """Yield ``(bytes, lines)``: at most ``block_size`` whole lines, and how many
    lines text-mode reading counts in them (a lone '\\r' ends a line too)."""
    try:
        handle = open(path, "rb", buffering=0)
    except FileNotFoundError:
        raise TableError(path, None, "file not found") from None

    def counted(block) -> Tuple[bytes, int]:
        lines = block.count(b"\n")
        if b"\r" in block:
            lines += block.count(b"\r") - block.count(b"\r\n")
        return block, lines

    with handle:
        rest = b""
        while True:
            buffer = bytearray(max(_READ_BYTES, 2 * len(rest)))
            buffer[:len(rest)] = rest
            got = handle.readinto(memoryview(buffer)[len(rest):])
            if not got:
                if rest:
                    yield counted(bytes(rest) + b"\n")
                return
            size = len(rest) + got
            cut = buffer.rfind(b"\n", 0, size) + 1
            rest = bytes(buffer[cut:size])
            if cut == 0:
                continue
            del buffer[cut:]
            data = bytes(buffer) if cut < 4096 else buffer
            lines = data.count(b"\n")
            if lines <= block_size:
                yield counted(data)
                continue
            ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
            start = 0
            for i in range(block_size - 1, ends.size, block_size):
                yield counted(data[start:ends[i] + 1])
                start = int(ends[i]) + 1
            if start < cut:
                yield counted(data[start:cut])


def _fast_parse(data: bytes, side1: _Side, side2: _Side):
    """Row indices ``(r1, r2)`` of a block tokenised by numpy, or None (plain path)."""
    if not (side1.hashable and side2.hashable):
        return None
    arr = np.frombuffer(data, dtype=np.uint8)
    spaces = np.flatnonzero(arr == 32)
    newlines = np.flatnonzero(arr == 10)
    n = newlines.size
    if n == 0:
        return None
    line_starts = np.empty(n, dtype=np.int64)
    line_starts[0] = 0
    line_starts[1:] = newlines[:-1] + 1
    fields = spaces.size // n + 1
    canonical = False
    if spaces.size % n == 0 and fields in (2, 3) \
            and np.count_nonzero(arr <= 32) == spaces.size + n and arr.max() < 128:
        # one space between fields, none at either end: the common layout
        sep = spaces.reshape(n, fields - 1)
        canonical = bool(np.all(sep[:, 0] > line_starts) and np.all(newlines > sep[:, -1] + 1)
                         and (fields == 2 or np.all(sep[:, 1] > sep[:, 0] + 1)))
    if canonical:
        s1, e1 = line_starts, sep[:, 0]
        s2 = sep[:, 0] + 1
        e2 = newlines if fields == 2 else sep[:, 1]
    else:
        cls = _BYTE_CLASS[arr]
        if cls.max() == 3:
            return None
        edges = np.diff((cls == 0).view(np.int8), prepend=np.int8(0), append=np.int8(0))
        starts = np.flatnonzero(edges == 1)
        ends = np.flatnonzero(edges == -1)
        before = np.searchsorted(starts, newlines)
        per_line = np.diff(before, prepend=0)
        if per_line.min() < 2 or per_line.max() > 3:
            return None
        first = before - per_line
        s1, e1, s2, e2 = starts[first], ends[first], starts[first + 1], ends[first + 1]
    padded = np.zeros(arr.size + max(side1.width, side2.width) + 8, dtype=np.uint8)
    padded[:arr.size] = arr
    r1 = side1.find(padded, s1, e1 - s1)
    if r1.min() < 0:
        return None
    r2 = side2.find(padded, s2, e2 - s2)
    if r2.min() < 0:
        return None
    return r1, r2


def _plain_parse(data: bytes, path: str, lineno: int, side1: _Side, side2: _Side):
    """``str.split`` parsing of a block, with read_table's errors; returns (r1, r2)."""
    utt1s: List[str] = []
    utt2s: List[str] = []
    for line in io.StringIO(data.decode("utf-8"), newline=None):
        lineno += 1
        fields = line.split()
        if not fields:
            raise TableError(path, lineno, "empty line")
        if len(fields) < 2:
            raise TableError(path, lineno, f"expected at least 2 fields, got {len(fields)}")
        if len(fields) > 3:
            raise TableError(path, lineno, f"expected at most 3 fields, got {len(fields)}")
        utt1s.append(fields[0])
        utt2s.append(fields[1])
    r1, r2 = side1.lookup(utt1s), side2.lookup(utt2s)
    first_line = lineno - len(utt1s) + 1
    for rows, utts, name in ((r1, utt1s, "enroll"), (r2, utt2s, "test")):
        if rows.size and rows.min() < 0:
            bad = int(np.argmin(rows >= 0))
            raise TableError(path, first_line + bad,
                             f"utterance '{utts[bad]}' has no {name} embedding")
    return r1, r2


class _BlockScorer:
    """Parse, score and format one block of trials (callable from worker threads)."""

    def __init__(self, path: str, side1: _Side, side2: _Side, scorer: _PairScorer):
        self.path, self.side1, self.side2, self.scorer = path, side1, side2, scorer
        self.fast_blocks = 0

    def __call__(self, data: bytes, lineno: int) -> bytes:
        view = memoryview(data)
        parts = []
        start, size = 0, len(data)
        while start < size:        # cache-sized pieces of whole lines
            stop = data.find(b"\n", min(start + _PIECE_BYTES, size) - 1) + 1 or size
            parsed = _fast_parse(view[start:stop], self.side1, self.side2)
            if parsed is None:
                parts = None
                break
            parts.append(parsed)
            start = stop
        if parts is None:
            r1, r2 = _plain_parse(data, self.path, lineno, self.side1, self.side2)
        else:
            r1 = np.concatenate([p[0] for p in parts]) if len(parts) != 1 else parts[0][0]
            r2 = np.concatenate([p[1] for p in parts]) if len(parts) != 1 else parts[0][1]
            self.fast_blocks += 1
        if r1.size == 0:
            return b""
        scores = self.scorer(r1, r2)
        return b"".join(_score_lines(self.side1, r1[i:i + _PIECE_ROWS], self.side2,
                                     r2[i:i + _PIECE_ROWS], scores[i:i + _PIECE_ROWS])
                        for i in range(0, r1.size, _PIECE_ROWS))


def score_trials(trials_path: str, enroll: Dict[str, np.ndarray], test: Dict[str, np.ndarray],
                 backend: Backend, out_path: str, block_size: int = DEFAULT_BLOCK_SIZE,
                 num_threads: int = 1, double: bool = False,
                 cohort: Optional[Dict[str, np.ndarray]] = None, top_k: int = 300) -> int:
    """Atomically write ``utt1 utt2 score`` in trial order; returns the trial count.

    Trials may carry a third (label) field, which is ignored.  An utterance
    missing from ``enroll``/``test`` is a TableError naming the trials line.
    ``block_size`` trials are read, scored and written at a time; with
    ``num_threads`` > 1 that many blocks are processed at once.  ``double``
    computes cosine dot products in double precision (PLDA always is).
    With a ``cohort`` of embeddings, scores are adaptive-s-normalised:
    ``(s - mu_e)/sd_e + (s - mu_t)/sd_t``, halved, with each side's mean and
    deviation over its ``top_k`` best cohort scores (:func:`cohort_statistics`).
    """
    if block_size < 1:
        raise ValueError(f"block size must be positive, got {block_size}")
    start = time.perf_counter()
    side1 = _Side(enroll, backend, double)
    side2 = side1 if test is enroll else _Side(test, backend, double)
    norm1 = norm2 = None
    if cohort is not None:
        cohort_side = _Side(cohort, backend, double=True, lookup=False)
        norm1 = cohort_statistics(side1, cohort_side, backend, top_k)
        norm2 = norm1 if side2 is side1 else cohort_statistics(side2, cohort_side, backend, top_k)
        log.info("AS-norm: cohort of %d embeddings, top %d", len(cohort_side.keys),
                 min(top_k, len(cohort_side.keys)))
    scorer = _PairScorer(backend, side1, side2, norm1, norm2)
    process = _BlockScorer(trials_path, side1, side2, scorer)
    num_trials = blocks = 0
    with atomic_output(out_path, "wb") as out:
        if num_threads <= 1:
            for data, lines in _line_blocks(trials_path, block_size):
                out.write(process(data, num_trials))
                num_trials += lines
                blocks += 1
        else:
            with ThreadPoolExecutor(num_threads) as pool:
                pending: deque = deque()
                for data, lines in _line_blocks(trials_path, block_size):
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
