"""Trial files in, score files out: fast, exact and with read_table's errors.

* **reading** -- :func:`line_blocks` yields blocks of whole lines;
  :func:`fast_parse` tokenises a block with numpy (no per-line Python objects)
  and finds each id by binary search (``np.searchsorted``) in the sorted ids
  of a :class:`TrialIds`.  Blocks it does not handle (carriage returns,
  non-ASCII bytes, bad lines, unknown ids) go through :func:`plain_parse`, the
  ``str.split`` parser, which gives the same results and read_table's errors.
* **writing** -- :func:`score_lines` formats ``utt1 utt2 score`` lines with
  one ``'%s %s %.8g\\n' * n`` format operation per block (C code, no Python
  loop per trial), byte-identical to Python's ``'%.8g'``.
"""
from __future__ import annotations

import io
from typing import Dict, Iterator, List, Sequence, Tuple

import numpy as np

from pyutils.utils.fileio import TableError

_READ_BYTES = 1 << 23          # bytes read from the trials file at a time


_MULTIPLIERS = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                         0xD6E8FEB86659FD93], dtype=np.uint64)


def _word_keys(words: Sequence[np.ndarray]) -> np.ndarray:
    """One uint64 per id from its zero-padded bytes as uint64 word columns: the
    bytes themselves for ids of at most 8 bytes, else a multiply-xor mix."""
    key = words[0].copy()
    for j in range(1, len(words)):
        key ^= key >> np.uint64(29)
        key *= _MULTIPLIERS[j % 4]
        key += words[j]
    return key


class TrialIds:
    """The utterance ids of one side of the trials, mapped to rows ``0..n-1``
    (the order of ``keys``).

    :meth:`find` reduces each id's bytes to one uint64 (:func:`_word_keys`) and
    looks it up by binary search (``np.searchsorted``) in the sorted keys of the
    ids, then compares the bytes; ids whose keys collide (not seen in practice)
    leave every block to the plain parser.
    """

    def __init__(self, keys: Sequence[str]):
        self.keys = list(keys)
        self.index: Dict[str, int] = {k: i for i, k in enumerate(self.keys)}
        self.names = np.array(self.keys, dtype=object)     # output: names.take(rows)
        encoded = [k.encode("utf-8") for k in self.keys]
        self.width = max(8, -(-max(len(k) for k in encoded) // 8) * 8)
        self.bytes = np.zeros((len(encoded), self.width), dtype=np.uint8)
        for i, k in enumerate(encoded):
            self.bytes[i, :len(k)] = np.frombuffer(k, dtype=np.uint8)
        self.lengths = np.array([len(k) for k in encoded])
        self.words = [np.ascontiguousarray(c) for c in self.bytes.view(np.uint64).T]
        masks = np.zeros((self.width + 2, self.width), dtype=np.uint8)   # by token length
        for length in range(self.width + 2):
            masks[length, :length] = 255
        self.masks = [np.ascontiguousarray(c) for c in masks.view(np.uint64).T]
        key = _word_keys(self.words).view(np.int64)     # (int64 searches faster)
        self.order = np.argsort(key, kind="stable")
        self.sorted = key[self.order]
        self.searchable = bool(np.all(np.diff(self.sorted) != 0))

    def lookup(self, utts: Sequence[str]) -> np.ndarray:
        """Row indices of ``utts`` (str), -1 for unknown ones."""
        get = self.index.get
        return np.fromiter((get(u, -1) for u in utts), dtype=np.int64, count=len(utts))

    def find(self, padded: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """Row of each token ``padded[start:start + length]`` (-1 if it is no id).

        ``padded`` is the block's bytes followed by at least ``width`` zeros.
        """
        if not self.searchable:
            return np.full(starts.size, -1, dtype=np.int64)
        lengths = np.minimum(lengths, self.width + 1)     # too long: matches nothing
        # the token's bytes as uint64 words (unaligned loads), zeroed past its end
        unaligned = np.ndarray(shape=(padded.size - 7,), dtype=np.uint64, buffer=padded,
                               strides=(1,))
        words = [unaligned[starts + 8 * j] & mask[lengths]
                 for j, mask in enumerate(self.masks)]
        pos = np.searchsorted(self.sorted, _word_keys(words).view(np.int64))
        rows = self.order[np.minimum(pos, len(self.order) - 1)]
        ok = self.lengths[rows] == lengths
        for mine, theirs in zip(self.words, words):
            ok &= mine[rows] == theirs
        return np.where(ok, rows, -1)


def score_lines(ids1, r1: np.ndarray, ids2, r2: np.ndarray, scores: np.ndarray) -> bytes:
    """``utt1 utt2 score\\n`` lines (score as ``'%.8g'``) as one bytes object; ``ids1``,
    ``ids2``: :class:`TrialIds` or object arrays of the names rows ``r1``, ``r2`` index."""
    n = r1.size
    values: List = [None] * (3 * n)
    values[0::3] = getattr(ids1, "names", ids1).take(r1).tolist()
    values[1::3] = getattr(ids2, "names", ids2).take(r2).tolist()
    values[2::3] = np.asarray(scores, dtype=np.float64).tolist()
    return (("%s %s %.8g\n" * n) % tuple(values)).encode("utf-8")


_ASCII_BLANKS = [9, 11, 12, 28, 29, 30, 31, 32]   # what str.split splits on (ASCII, not \n \r)
_BYTE_CLASS = np.zeros(256, dtype=np.uint8)      # 0 token, 1 blank, 2 newline, 3 other
_BYTE_CLASS[_ASCII_BLANKS] = 1
_BYTE_CLASS[10] = 2
_BYTE_CLASS[13] = 3
_BYTE_CLASS[0] = 3                               # NUL: not an id byte here
_BYTE_CLASS[128:] = 3


def line_blocks(path: str, block_size: int) -> Iterator[Tuple[bytes, int]]:
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


def canonical_fields(arr: np.ndarray, fields=(2, 3)):
    """``[(starts, ends), ...]`` of each field of a block of whole lines in the common
    layout (printable ASCII, one space between fields, none at either end, ``\\n``
    line ends, every line with the same number of fields, one of ``fields``), or None."""
    spaces = np.flatnonzero(arr == 32)
    newlines = np.flatnonzero(arr == 10)
    n = newlines.size
    if n == 0 or spaces.size % n or spaces.size // n + 1 not in fields \
            or np.count_nonzero(arr <= 32) != spaces.size + n or arr.max() >= 128:
        return None
    line_starts = np.empty(n, dtype=np.int64)
    line_starts[0] = 0
    line_starts[1:] = newlines[:-1] + 1
    sep = spaces.reshape(n, -1)
    if not (np.all(sep[:, 0] > line_starts) and np.all(newlines > sep[:, -1] + 1)
            and np.all(sep[:, 1:] > sep[:, :-1] + 1)):
        return None
    starts = [line_starts] + [sep[:, j] + 1 for j in range(sep.shape[1])]
    ends = [sep[:, j] for j in range(sep.shape[1])] + [newlines]
    return list(zip(starts, ends))


def fast_parse(data: bytes, side1: "TrialIds", side2: "TrialIds"):
    """Row indices ``(r1, r2)`` of a block tokenised by numpy, or None (plain path)."""
    arr = np.frombuffer(data, dtype=np.uint8)
    spans = canonical_fields(arr)
    if spans is not None:
        (s1, e1), (s2, e2) = spans[:2]
    else:
        newlines = np.flatnonzero(arr == 10)
        if newlines.size == 0:
            return None
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
    padded = np.zeros(arr.size + max(side1.width, side2.width), dtype=np.uint8)
    padded[:arr.size] = arr
    r1 = side1.find(padded, s1, e1 - s1)
    if r1.min() < 0:
        return None
    r2 = side2.find(padded, s2, e2 - s2)
    if r2.min() < 0:
        return None
    return r1, r2


def plain_parse(data: bytes, path: str, lineno: int, side1: "TrialIds", side2: "TrialIds"):
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


def pair_trials(utt2spk: Dict[str, str], max_trials: int = 0, seed: int = 0
                ) -> List[Tuple[str, str, str]]:
    """Every unordered pair of the utterances (first id < second in C order) as
    ``(utt1, utt2, "target"|"nontarget")``, as the asc-v1 eval trials are made.

    With ``max_trials`` > 0 and more pairs than that, a fixed-seed uniform sample
    of that many pairs, kept in pair order (deterministic for one utt2spk).
    """
    utts = sorted(utt2spk, key=lambda u: u.encode("utf-8"))
    n = len(utts)
    if n < 2:
        raise ValueError(f"a trial list needs at least 2 utterances, got {n}")
    first, second = np.triu_indices(n, k=1)
    if 0 < max_trials < first.size:
        keep = np.sort(np.random.default_rng(seed).choice(first.size, max_trials,
                                                          replace=False))
        first, second = first[keep], second[keep]
    speakers = np.array([utt2spk[u] for u in utts], dtype=object)
    target = speakers[first] == speakers[second]
    names = np.array(utts, dtype=object)
    return list(zip(names[first].tolist(), names[second].tolist(),
                    np.where(target, "target", "nontarget").tolist()))
