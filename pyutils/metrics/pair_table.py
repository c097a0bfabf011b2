"""Trial and score files (``utt1 utt2 value``) read by numpy into integer-coded arrays.

A 3.1 M-line file (so762-v1) as a dict of ``(utt1, utt2)`` string pairs takes
gigabytes and a minute; here each line becomes two int32 utterance codes and a
value, read in blocks of whole lines (:func:`pyutils.backends.trials.line_blocks`)
and tokenised by numpy (:func:`pyutils.backends.trials.canonical_fields`).
Scores are parsed by Python's ``float`` (so they are exactly those of the plain
reader), labels compared as bytes.

Only the common layout is read here (ASCII, one space between the three fields,
``\\n`` line ends); anything else -- and every error -- returns None, and the
caller uses the plain reader of :mod:`pyutils.metrics.results`, which gives the
same values or the error naming the file and line.  So the results and the error
messages are those of the plain reader, whatever the input.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np

from pyutils.backends.trials import TrialIds, canonical_fields, line_blocks, score_lines
from pyutils.utils.fileio import atomic_output

_BLOCK_LINES = 250_000      # lines tokenised at a time (bounds the work arrays)
_MAX_TOKEN = 256            # longer tokens: the plain reader
_LABELS = (b"nontarget", b"target")
_WRITE_LINES = 16384       # lines formatted at a time (stays in cache)


def _tokens(arr: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> Optional[np.ndarray]:
    """The tokens ``arr[start:end]`` as a fixed-width bytes (``S``) array."""
    lengths = ends - starts
    width = int(lengths.max())
    if width > _MAX_TOKEN:
        return None
    padded = np.zeros(arr.size + width, dtype=np.uint8)
    padded[:arr.size] = arr
    columns = np.arange(width)
    matrix = padded[starts[:, None] + columns]
    matrix[columns >= lengths[:, None]] = 0     # (NUL is no token byte: canonical_fields)
    return matrix.view(f"S{width}").ravel()


class Vocabulary:
    """Utterance ids <-> int32 codes (in order of first appearance)."""

    def __init__(self, names: Optional[List[str]] = None):
        self.names: List[str] = []
        self.codes: Dict[bytes, int] = {}
        self._ids: Optional[TrialIds] = None
        for name in names or []:
            self.add(name.encode("utf-8"))

    def find(self, arr: np.ndarray, starts: np.ndarray, ends: np.ndarray
             ) -> Optional[np.ndarray]:
        """int32 codes of the tokens ``arr[start:end]``, all known ids, found by binary
        search of their bytes (:class:`TrialIds`, as the scorer does); else None."""
        if not self.names:
            return None
        if self._ids is None or len(self._ids.keys) != len(self.names):
            self._ids = TrialIds(self.names)
        padded = np.zeros(arr.size + self._ids.width, dtype=np.uint8)
        padded[:arr.size] = arr
        rows = self._ids.find(padded, starts, ends - starts)
        return rows.astype(np.int32) if rows.min() >= 0 else None

    def __len__(self) -> int:
        return len(self.names)

    def add(self, token: bytes) -> int:
        code = self.codes.get(token)
        if code is None:
            code = self.codes[token] = len(self.names)
            self.names.append(token.decode("utf-8"))
        return code

    def encode(self, tokens: np.ndarray, grow: bool) -> Optional[np.ndarray]:
        """int32 codes of ``tokens``; an unknown one is added (``grow``) or gives None."""
        unique, inverse = np.unique(tokens, return_inverse=True)
        if grow:
            known = [self.add(t) for t in unique.tolist()]
        else:
            known = [self.codes.get(t, -1) for t in unique.tolist()]
            if min(known) < 0:
                return None
        return np.asarray(known, dtype=np.int32)[inverse.ravel()]


class PairTable:
    """``utt1 utt2 value`` lines as arrays in file order: ``first``, ``second`` (codes
    into ``vocab``) and ``values`` (float64 scores, or bool labels: True = target)."""

    def __init__(self, path: str, vocab: Vocabulary, first: np.ndarray, second: np.ndarray,
                 values: np.ndarray):
        self.path, self.vocab = path, vocab
        self.first, self.second, self.values = first, second, values
        self._sorted = None

    def __len__(self) -> int:
        return int(self.values.size)

    def keys(self) -> np.ndarray:
        """One int64 per pair: ``first * len(vocab) + second``."""
        return self.first.astype(np.int64) * len(self.vocab) + self.second

    def sorted_keys(self):
        """``(sorted keys, the order that sorts them)``, computed once."""
        if self._sorted is None:
            keys = self.keys()
            order = np.argsort(keys, kind="stable")
            self._sorted = keys[order], order
        return self._sorted

    def rows_of(self, other: "PairTable") -> Optional[np.ndarray]:
        """Row of each of ``other``'s pairs in this table (same vocabulary), or None if
        one is missing."""
        keys, order = self.sorted_keys()
        wanted = other.keys()
        pos = np.minimum(np.searchsorted(keys, wanted), keys.size - 1)
        if keys.size == 0 or not np.array_equal(keys[pos], wanted):
            return None
        return order[pos]

    def has_duplicates(self) -> bool:
        keys, _ = self.sorted_keys()
        return bool(np.any(keys[1:] == keys[:-1]))

    def lines(self, values: np.ndarray) -> List[bytes]:
        """``utt1 utt2 value`` lines of this table's pairs with ``values`` (as Python's
        ``'%.8g'``, byte for byte), in blocks."""
        names = np.asarray(self.vocab.names, dtype=object)
        return [score_lines(names, self.first[i:i + _WRITE_LINES], names,
                            self.second[i:i + _WRITE_LINES], values[i:i + _WRITE_LINES])
                for i in range(0, len(self), _WRITE_LINES)]

    def write(self, path: str, values: np.ndarray) -> None:
        """Atomically write :meth:`lines` to ``path``."""
        with atomic_output(path, "wb") as out:
            out.writelines(self.lines(values))

    @classmethod
    def from_pairs(cls, path: str, pairs, values: np.ndarray) -> "PairTable":
        """A table of ``(utt1, utt2)`` string pairs (what the plain reader returns)."""
        vocab = Vocabulary()
        codes = np.array([[vocab.add(u.encode("utf-8")) for u in pair] for pair in pairs],
                         dtype=np.int32).reshape(-1, 2)
        return cls(path, vocab, codes[:, 0], codes[:, 1], values)


def _parse_block(data, vocab: Vocabulary, grow: bool, labels: bool):
    arr = np.frombuffer(data, dtype=np.uint8)
    spans = canonical_fields(arr, fields=(3,))
    if spans is None:
        return None
    codes = []
    for starts, ends in spans[:2]:
        found = vocab.find(arr, starts, ends)      # known ids: the fast way
        if found is None:                          # a new id, or no vocabulary yet
            tokens = _tokens(arr, starts, ends)
            found = None if tokens is None else vocab.encode(tokens, grow)
            if found is None:
                return None
        codes.append(found)
    tokens = _tokens(arr, *spans[2])
    if tokens is None:
        return None
    if labels:
        values = tokens == _LABELS[1]
        if not np.all(values | (tokens == _LABELS[0])):
            return None
    else:
        try:
            values = np.fromiter(map(float, tokens.tolist()), dtype=np.float64,
                                 count=tokens.size)
        except ValueError:
            return None
        if not np.isfinite(values).all():
            return None
    return codes[0], codes[1], values


def read_pair_table(path: str, labels: bool, vocab: Optional[Vocabulary] = None
                    ) -> Optional[PairTable]:
    """Read ``utt1 utt2 target|nontarget`` (``labels``) or ``utt1 utt2 score`` lines.

    With ``vocab`` given, every id must be in it (else None); without, the table
    gets a vocabulary of its own ids.  None also for any other layout or error
    and for a repeated pair: then read the file with the plain reader.
    """
    grow = vocab is None
    vocab = Vocabulary() if vocab is None else vocab
    parts = []
    try:
        for data, _ in line_blocks(path, _BLOCK_LINES):
            block = _parse_block(data, vocab, grow, labels)
            if block is None:
                return None
            parts.append(block)
    except (OSError, ValueError):         # a missing file (TableError): the plain reader
        return None
    if not parts:
        return None
    first, second, values = (np.concatenate([p[i] for p in parts]) for i in range(3))
    table = PairTable(path, vocab, first, second, values)
    return None if table.has_duplicates() else table
