"""Loading and validating embedding tables (scp of Kaldi vectors) for the back-ends."""
from __future__ import annotations

import os
import re
from collections import defaultdict
from typing import Dict, List, Tuple

import numpy as np

from pyutils.data.formats import read_scp
from pyutils.utils.fileio import TableError


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
