"""Streaming trial scoring and the on-disk layout of a trained backend.

Embeddings are prepared once per unique utterance (``backend.prepare``, a
matrix product over the stacked embeddings); the trials file is then read in
blocks of whole lines, each trial is mapped to a pair of row indices, and one
score per pair is computed from those rows.  No ``N x N`` score matrix is
formed, no Python loop runs over trials, and memory is bounded by the
embedding matrices plus one block.

Fast paths (exact, checked against the plain path by the tests):

* **scoring** -- cosine and the PLDA log-likelihood ratio (one enrolment
  utterance) are both bilinear: ``score(i, j) = P1[i] . P2[j] + b1[i] + b2[j]``
  with per-utterance ``P`` and ``b`` (:func:`bilinear_form`), so a block costs
  one gathered row-wise dot product, in cache-sized chunks and sorted by
  utterance tile for locality.  Any other backend (or a subclass overriding
  ``score``) gets ``backend.score(rows1, rows2)`` once per block.
* **parsing** -- a block of the trials file is tokenised with numpy (no
  per-line Python objects); ids are looked up through a hash of their bytes
  and verified byte for byte.  Blocks the fast parser does not handle
  (carriage returns, non-ASCII bytes, errors) go through the plain
  ``str.split`` parser, which produces the same results and error messages.
* **writing** -- ``utt1 utt2 score`` lines are assembled in numpy; the score is
  formatted exactly as Python's ``'%.8g'`` (:func:`format_g8`).
"""
from __future__ import annotations

import io
import logging
import os
import re
import time
from collections import defaultdict
from typing import Dict, Iterator, List, Optional, Protocol, Sequence, Tuple

import numpy as np

from pyutils.backends.cosine import CosineBackend
from pyutils.backends.plda import Plda, PldaBackend, read_matrix, read_vector
from pyutils.utils.fileio import TableError, atomic_output, read_table

log = logging.getLogger(__name__)

MEAN_FILE = "mean.vec"
LDA_FILE = "lda.mat"
PLDA_FILE = "plda"
BACKENDS = ("cosine", "plda")

DEFAULT_BLOCK_SIZE = 200_000   # trials per block (about 9 MB of text + 20 MB of arrays)
_READ_BYTES = 1 << 22          # bytes read from the trials file at a time
_CHUNK_ROWS = 256              # rows gathered per row-wise dot product (stays in cache)
_TILE = 256                    # utterances per locality tile when sorting a block


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
    """Read an scp of vectors into ``{key: float32 vector}``, each ark read once.

    Entries ``key ark:offset`` pointing at Kaldi binary float/double vectors
    are decoded with numpy straight from the ark bytes; anything else (pipes,
    ranges, matrices, text arks) falls back to kaldiio.  Errors name the line.
    """
    import kaldiio

    table: Dict[str, np.ndarray] = {}
    by_ark: Dict[str, List[Tuple[int, str, int]]] = defaultdict(list)
    for lineno, (key, location) in read_table(scp_path, min_fields=2, max_fields=2):
        match = _ARK_OFFSET.match(location)
        if match and os.path.isfile(match.group(1)):
            by_ark[match.group(1)].append((lineno, key, int(match.group(2))))
        else:
            table[key] = _load_one(scp_path, lineno, location, kaldiio)
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
    return table


def _load_one(scp_path: str, lineno: int, location: str, kaldiio) -> np.ndarray:
    try:
        return np.asarray(kaldiio.load_mat(location))
    except Exception as err:  # kaldiio raises many types
        raise TableError(scp_path, lineno, f"cannot read '{location}': {err}") from err


# ---------------------------------------------------------------- bilinear scoring

def bilinear_form(backend: Backend, X: np.ndarray):
    """``(P, b)`` with ``backend.score(prep[i], prep[j]) == P[i] . P[j] + b[i] + b[j]``.

    ``X`` are raw embeddings (rows).  Returns None when the backend is not one
    whose scores are known to be bilinear (then the generic path is used).

    * cosine: ``P`` = the prepared (centred, unit-length) rows, ``b = 0``;
    * PLDA LLR with one enrolment utterance (Kaldi ``LogLikelihoodRatio``):
      with ``psi`` the between-class variances and ``y`` the transformed rows,
      ``llr = sum(w y1 y2) - q/2 sum(y1^2) - q/2 sum(y2^2) + c`` where
      ``w = psi / (2 psi + 1)``, ``q = psi^2 / ((psi + 1)(2 psi + 1))`` and
      ``c = 1/2 sum log((1 + psi)^2 / (2 psi + 1))``; it is symmetric.
    """
    kind = type(backend)
    if kind is CosineBackend or (isinstance(backend, CosineBackend)
                                 and kind.score is CosineBackend.score
                                 and kind.prepare is CosineBackend.prepare):
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


class _Side:
    """The utterances on one side of the trials: keys, their bytes and prepared rows."""

    def __init__(self, embeddings: Dict[str, np.ndarray], backend: Backend):
        self.keys = sorted(embeddings)
        if not self.keys:
            raise ValueError("no embeddings to score")
        X = stack_embeddings(embeddings, self.keys)
        self.index = {k: i for i, k in enumerate(self.keys)}
        self.bytes = _KeyBytes(self.keys)
        form = bilinear_form(backend, X)
        if form is not None and not _form_matches(backend, X, form):
            log.warning("%s: bilinear scores disagree with backend.score; using the "
                        "generic path", type(backend).__name__)
            form = None
        if form is None:
            self.prepared, self.P, self.bias = backend.prepare(X), None, None
        else:
            self.prepared, (self.P, self.bias) = None, form

    def lookup(self, utts: Sequence[str]) -> np.ndarray:
        """Row indices of ``utts``, -1 for unknown ones."""
        get = self.index.get
        return np.fromiter((get(u, -1) for u in utts), dtype=np.int64, count=len(utts))


def _form_matches(backend: Backend, X: np.ndarray, form) -> bool:
    """Check the bilinear form on a few pairs against ``backend.score`` (guards refactors)."""
    P, bias = form
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, len(X), 16), rng.integers(0, len(X), 16)
    prepared = backend.prepare(X[np.union1d(i, j)])
    pos = {v: k for k, v in enumerate(np.union1d(i, j).tolist())}
    a = prepared[[pos[v] for v in i.tolist()]]
    b = prepared[[pos[v] for v in j.tolist()]]
    want = np.asarray(backend.score(a, b), dtype=np.float64)
    got = np.einsum("ij,ij->i", P[i], P[j]) + (0.0 if bias is None else bias[i] + bias[j])
    scale = max(1.0, float(np.max(np.abs(want))))
    return bool(np.all(np.abs(got - want) <= 1e-9 * scale))


class _PairScorer:
    """Scores of row pairs ``(r1, r2)`` between two prepared sides."""

    def __init__(self, backend: Backend, side1: _Side, side2: _Side):
        self.backend, self.side1, self.side2 = backend, side1, side2
        self.bilinear = side1.P is not None and side2.P is not None
        if self.bilinear:
            self._buffers = (np.empty((_CHUNK_ROWS, side1.P.shape[1])),
                             np.empty((_CHUNK_ROWS, side2.P.shape[1])))
            if side1.P.shape[1] != side2.P.shape[1]:
                raise ValueError(f"embedding dimensions differ: {side1.P.shape[1]} "
                                 f"and {side2.P.shape[1]}")

    def __call__(self, r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
        if not self.bilinear:
            return np.asarray(self.backend.score(self.side1.prepared[r1],
                                                 self.side2.prepared[r2]), dtype=np.float64)
        n = r1.size
        P1, P2 = self.side1.P, self.side2.P
        order = None
        if n > 4 * _CHUNK_ROWS and P1.nbytes + P2.nbytes > (4 << 20):
            # Visit trials tile by tile so the gathered rows come from cache.
            tiles = (P2.shape[0] + _TILE - 1) // _TILE
            key = (r1 // _TILE) * tiles + r2 // _TILE
            if key.max(initial=0) < 2 ** 31:
                order = np.argsort(key.astype(np.int32), kind="stable")
                r1, r2 = r1[order], r2[order]
        out = np.empty(n)
        a, b = self._buffers
        for start in range(0, n, _CHUNK_ROWS):
            stop = min(n, start + _CHUNK_ROWS)
            m = stop - start
            np.take(P1, r1[start:stop], axis=0, out=a[:m], mode="clip")
            np.take(P2, r2[start:stop], axis=0, out=b[:m], mode="clip")
            np.vecdot(a[:m], b[:m], out=out[start:stop])
        if self.side1.bias is not None:
            out += self.side1.bias[r1]
            out += self.side2.bias[r2]
        if order is not None:
            unsorted = np.empty_like(out)
            unsorted[order] = out
            out = unsorted
        return out


# ---------------------------------------------------------------- %.8g in numpy

_P10 = np.array([float(f"1e{k}") for k in range(0, 24)])
_MI = np.arange(10000)
_DIGITS4 = np.stack([(_MI // 1000) % 10, (_MI // 100) % 10, (_MI // 10) % 10, _MI % 10],
                    axis=1).astype(np.uint8) + 48
_DIGITS4_U32 = np.ascontiguousarray(_DIGITS4).view(np.uint32).ravel()
_TRAILING0 = np.zeros(10000, dtype=np.int64)
for _k in (1, 2, 3):
    _TRAILING0 += (_MI % 10 ** _k) == 0
_TRAILING0[0] = 4

# Score column layout: sign, "0.000" (values below 1), then the 8 digits with a
# candidate '.' after each one; a per-(sign, exponent, significant digits)
# mask keeps the characters '%.8g' prints.
_SCORE_COLS = 21
_DIGIT_COLS = np.array([6 + 2 * k for k in range(8)])


def _score_layout():
    chars = np.zeros(_SCORE_COLS, dtype=np.uint8)
    chars[0:6] = np.frombuffer(b"-0.000", dtype=np.uint8)
    chars[7:20:2] = ord(".")
    masks = np.zeros((2, 12, 9, _SCORE_COLS), dtype=bool)   # neg, exponent + 4, nz
    for neg in (0, 1):
        for x in range(-4, 8):
            for nz in range(1, 9):
                keep = masks[neg, x + 4, nz]
                keep[0] = bool(neg)
                if x < 0:
                    keep[1] = keep[2] = True
                    keep[3:3 + (-x - 1)] = True
                    keep[_DIGIT_COLS[:nz]] = True
                else:
                    keep[_DIGIT_COLS[:max(nz, x + 1)]] = True
                    if nz > x + 1:
                        keep[_DIGIT_COLS[x] + 1] = True
    return chars, masks


_SCORE_CHARS, _SCORE_MASKS = _score_layout()


def format_g8(x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """``'%.8g' % v`` for every value, as ``(chars, keep)`` of shape (n, 21).

    The text of row ``i`` is ``chars[i][keep[i]]``.  Plain notation is built
    with integer arithmetic; values Python prints in exponent notation, zeros,
    non-finite values and near-ties of the 8th digit (where float64 scaling
    could round differently) are formatted by Python itself.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    a = np.abs(x)
    neg = np.signbit(x)
    plain = (a >= 1e-4) & (a < 99_999_999.5)      # NaN fails both
    a = np.where(plain, a, 1.0)
    with np.errstate(divide="ignore"):
        X = np.floor(np.log10(a)).astype(np.int64)
    X = np.clip(X, -4, 7)
    for _ in range(3):   # log10 can be off by one next to powers of ten
        k = 7 - X
        m = a * _P10[k]
        low, high = (m < 1e7) & (X > -4), m >= 1e8
        if not (low.any() or high.any()):
            break
        X = X - low + high
    base = np.floor(m)
    frac = m - base
    mi = base.astype(np.int64) + (frac > 0.5)
    carry = mi >= 100_000_000
    mi[carry] = 10_000_000
    X = X + carry
    fallback = ~plain | (np.abs(frac - 0.5) < 1e-6) | (X > 7) | (m < 1e7)
    hi, lo = np.divmod(mi, 10000)
    hi = np.clip(hi, 0, 9999)
    words = np.empty((n, 2), dtype=np.uint32)
    words[:, 0] = _DIGITS4_U32[hi]
    words[:, 1] = _DIGITS4_U32[lo]
    nz = np.where(lo == 0, 4 - _TRAILING0[hi], 8 - _TRAILING0[lo])
    chars = np.empty((n, _SCORE_COLS), dtype=np.uint8)
    chars[:] = _SCORE_CHARS
    chars[:, _DIGIT_COLS] = words.view(np.uint8).reshape(n, 8)
    keep = _SCORE_MASKS[neg.astype(np.int64), np.clip(X, -4, 7) + 4, np.clip(nz, 1, 8)]
    for i in np.flatnonzero(fallback).tolist():
        text = np.frombuffer(b"%.8g" % float(x[i]), dtype=np.uint8)
        chars[i, :text.size] = text
        keep[i] = False
        keep[i, :text.size] = True
    return chars, keep


class _KeyBytes:
    """Utterance ids as a zero-padded byte matrix, with a hash table over it."""

    MAX_WIDTH = 64

    def __init__(self, keys: Sequence[str]):
        encoded = [k.encode("utf-8") for k in keys]
        self.lengths = np.array([len(k) for k in encoded], dtype=np.int64)
        width = max(8, -(-int(self.lengths.max()) // 8) * 8)
        self.width = width
        self.matrix = np.zeros((len(keys), width), dtype=np.uint8)
        for i, k in enumerate(encoded):
            self.matrix[i, :len(k)] = np.frombuffer(k, dtype=np.uint8)
        self.keep = np.arange(width)[None, :] < self.lengths[:, None]
        self.hashable = width <= self.MAX_WIDTH and all(k.isascii() for k in keys)
        if self.hashable:
            hashes = _hash_rows(self.matrix)
            self.order = np.argsort(hashes, kind="stable")
            self.sorted_hashes = hashes[self.order]
            if np.any(self.sorted_hashes[1:] == self.sorted_hashes[:-1]):
                self.hashable = False      # a collision between two ids: plain path

    def find(self, window: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Row of each token ``data[start:start+length]`` (-1 if not an id)."""
        tokens = window[starts]                                  # (n, width) bytes
        tokens &= (np.arange(self.width, dtype=np.int64)[None, :] < lengths[:, None]) \
            .view(np.uint8) * np.uint8(255)
        hashes = _hash_rows(tokens)
        pos = np.searchsorted(self.sorted_hashes, hashes)
        pos[pos >= self.sorted_hashes.size] = 0
        rows = self.order[pos]
        ok = (self.sorted_hashes[pos] == hashes) & (self.lengths[rows] == lengths)
        ok &= np.all(self.matrix.view(np.uint64)[rows] == tokens.view(np.uint64), axis=1)
        return np.where(ok, rows, -1)


_HASH_MULTIPLIERS = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                              0xD6E8FEB86659FD93, 0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53,
                              0x94D049BB133111EB, 0xBF58476D1CE4E5B9], dtype=np.uint64)


def _hash_rows(matrix: np.ndarray) -> np.ndarray:
    """A 64-bit multiply-xor hash of each row of a (n, 8k) uint8 matrix."""
    words = matrix.view(np.uint64)
    h = np.zeros(words.shape[0], dtype=np.uint64)
    for j in range(words.shape[1]):
        h ^= words[:, j] * _HASH_MULTIPLIERS[j % 8]
        h ^= h >> np.uint64(29)
        h *= _HASH_MULTIPLIERS[(j + 3) % 8]
    return h


# ---------------------------------------------------------------- trials blocks

# byte classes: 0 = part of a token, 1 = blank (what str.split splits on), 2 = newline,
# 3 = needs the plain parser (carriage return, non-ASCII)
_BYTE_CLASS = np.zeros(256, dtype=np.uint8)
_BYTE_CLASS[[9, 11, 12, 28, 29, 30, 31, 32]] = 1
_BYTE_CLASS[10] = 2
_BYTE_CLASS[13] = 3
_BYTE_CLASS[128:] = 3


def _line_blocks(path: str, block_size: int) -> Iterator[Tuple[bytes, int]]:
    """Yield ``(bytes, num_newlines)`` of at most ``block_size`` whole lines."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise TableError(path, None, "file not found") from None
    with handle:
        rest = b""
        while True:
            data = handle.read(_READ_BYTES)
            if not data:
                if rest:
                    yield rest + b"\n", 1
                return
            data = rest + data
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                rest = data
                continue
            rest = data[cut:]
            lines = data.count(b"\n", 0, cut)
            if lines <= block_size:
                yield data[:cut], lines
                continue
            ends = np.flatnonzero(np.frombuffer(data, dtype=np.uint8, count=cut) == 10)
            start = 0
            for i in range(block_size - 1, lines, block_size):
                yield data[start:ends[i] + 1], block_size
                start = ends[i] + 1
            if start < cut:
                yield data[start:cut], lines % block_size


class _FastBlock:
    """A block tokenised by numpy: row indices of both utterances per line."""

    @staticmethod
    def parse(data: bytes, side1: _Side, side2: _Side) -> Optional[Tuple[np.ndarray, np.ndarray]]:
        if not (side1.bytes.hashable and side2.bytes.hashable):
            return None
        arr = np.frombuffer(data, dtype=np.uint8)
        cls = _BYTE_CLASS[arr]
        if cls.max(initial=0) == 3:
            return None
        token = (cls == 0).view(np.int8)
        edges = np.diff(token, prepend=np.int8(0), append=np.int8(0))
        starts = np.flatnonzero(edges == 1)
        ends = np.flatnonzero(edges == -1)
        newlines = np.flatnonzero(cls == 2)
        before = np.searchsorted(starts, newlines)
        per_line = np.diff(before, prepend=0)
        if per_line.size == 0 or per_line.min() < 2 or per_line.max() > 3:
            return None
        first = before - per_line
        width = max(side1.bytes.width, side2.bytes.width)
        padded = np.zeros(arr.size + width, dtype=np.uint8)
        padded[:arr.size] = arr
        window = np.lib.stride_tricks.as_strided(padded, shape=(arr.size, width),
                                                 strides=(1, 1), writeable=False)
        found = []
        for side, tok in ((side1, first), (side2, first + 1)):
            lengths = ends[tok] - starts[tok]
            rows = np.full(tok.size, -1, dtype=np.int64)
            short = lengths <= side.bytes.width
            rows[short] = side.bytes.find(window[:, :side.bytes.width], starts[tok][short],
                                          lengths[short])
            if rows.min(initial=0) < 0:
                return None
            found.append(rows)
        return found[0], found[1]


def _plain_block(data: bytes, path: str, lineno: int, side1: _Side, side2: _Side):
    """``str.split`` parsing of a block with read_table's errors; returns (r1, r2, lines)."""
    utt1s: List[str] = []
    utt2s: List[str] = []
    linenos: List[int] = []
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
        linenos.append(lineno)
    r1, r2 = side1.lookup(utt1s), side2.lookup(utt2s)
    for rows, utts, name in ((r1, utt1s, "enroll"), (r2, utt2s, "test")):
        if rows.size and rows.min() < 0:
            bad = int(np.argmin(rows >= 0))
            raise TableError(path, linenos[bad], f"utterance '{utts[bad]}' has no {name} embedding")
    return r1, r2, len(linenos)


def _score_lines(side1: _Side, r1: np.ndarray, side2: _Side, r2: np.ndarray,
                 scores: np.ndarray) -> bytes:
    """``utt1 utt2 score\\n`` lines as one bytes object."""
    n = r1.size
    k1, k2 = side1.bytes, side2.bytes
    chars, keep = format_g8(scores)
    w1, w2 = k1.width, k2.width
    width = w1 + 1 + w2 + 1 + _SCORE_COLS + 1
    row = np.empty((n, width), dtype=np.uint8)
    mask = np.empty((n, width), dtype=bool)
    row[:, :w1] = k1.matrix[r1]
    mask[:, :w1] = k1.keep[r1]
    row[:, w1] = 32
    row[:, w1 + 1:w1 + 1 + w2] = k2.matrix[r2]
    mask[:, w1 + 1:w1 + 1 + w2] = k2.keep[r2]
    at = w1 + 1 + w2
    row[:, at] = 32
    row[:, at + 1:at + 1 + _SCORE_COLS] = chars
    mask[:, at + 1:at + 1 + _SCORE_COLS] = keep
    row[:, -1] = 10
    mask[:, [w1, at, width - 1]] = True
    return row[mask].tobytes()


def score_trials(trials_path: str, enroll: Dict[str, np.ndarray], test: Dict[str, np.ndarray],
                 backend: Backend, out_path: str, block_size: int = DEFAULT_BLOCK_SIZE) -> int:
    """Atomically write ``utt1 utt2 score`` in trial order; returns the trial count.

    Trials may carry a third (label) field, which is ignored.  An utterance
    missing from ``enroll``/``test`` is a TableError naming the trials line.
    ``block_size`` trials are read, scored and written at a time.
    """
    if block_size < 1:
        raise ValueError(f"block size must be positive, got {block_size}")
    start = time.perf_counter()
    side1 = _Side(enroll, backend)
    side2 = side1 if test is enroll else _Side(test, backend)
    scorer = _PairScorer(backend, side1, side2)
    num_trials = fast_blocks = blocks = 0
    with atomic_output(out_path, "wb") as out:
        for data, lines in _line_blocks(trials_path, block_size):
            parsed = _FastBlock.parse(data, side1, side2)
            if parsed is None:
                r1, r2, lines = _plain_block(data, trials_path, num_trials, side1, side2)
            else:
                r1, r2 = parsed
                fast_blocks += 1
            blocks += 1
            out.write(_score_lines(side1, r1, side2, r2, scorer(r1, r2)))
            num_trials += lines
    elapsed = time.perf_counter() - start
    log.info("Scored %d trials into %s in %.2f s (%.0f trials/s; %d of %d blocks parsed by the "
             "fast path; %s scoring)", num_trials, out_path, elapsed,
             num_trials / max(elapsed, 1e-9), fast_blocks, blocks,
             "bilinear" if scorer.bilinear else "generic")
    return num_trials
