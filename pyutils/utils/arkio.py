"""Kaldi ark/scp reading and crash-safe writing (binary, via kaldiio).

:class:`ArkScpWriter` writes ``<name>.ark`` and ``<name>.scp`` through temp
files and renames the ark first, then the scp: an scp that exists always
points into a complete ark, so a killed job never leaves a readable half.
"""
from __future__ import annotations

import contextlib
import errno
import os
from typing import Dict, Iterator, Tuple

import kaldiio
import numpy as np
from kaldiio.matio import write_array

from pyutils.data.formats import read_scp as read_scp_lines
from pyutils.utils.fileio import DiskFullError, TableError, atomic_output, create_temp


class ArkScpWriter:
    """Write ``key -> numpy array`` pairs to an ark with a matching scp."""

    def __init__(self, ark_path: str, scp_path: str):
        self.ark_path = os.path.abspath(ark_path)
        self.scp_path = scp_path
        directory = os.path.dirname(self.ark_path)
        os.makedirs(directory, exist_ok=True)
        os.makedirs(os.path.dirname(os.path.abspath(scp_path)), exist_ok=True)
        fd, self._ark_tmp = create_temp(self.ark_path)
        self._ark = os.fdopen(fd, "wb")
        self._scp_lines = []
        self._keys = set()

    def write(self, key: str, array: np.ndarray) -> None:
        """Append one matrix or vector (stored as float32 unless int32)."""
        if key in self._keys:
            raise ValueError(f"{self.ark_path}: duplicate key '{key}'")
        if not isinstance(array, np.ndarray) or array.dtype not in (np.float32, np.int32):
            array = np.asarray(array, dtype=np.float32)
        if array.dtype == np.float32 and not np.all(np.isfinite(array)):
            raise ValueError(f"{self.ark_path}: non-finite values for key '{key}'")
        self._keys.add(key)
        try:
            self._ark.write(key.encode("utf-8") + b" ")
            offset = self._ark.tell()
            write_array(self._ark, array)
            self._ark.flush()
        except OSError as err:
            if err.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFullError(self.ark_path) from err
            raise
        self._scp_lines.append(f"{key} {self.ark_path}:{offset}\n")

    def close(self) -> None:
        """Publish the ark, then the scp (sorted by key as Kaldi expects)."""
        self._ark.flush()
        os.fsync(self._ark.fileno())
        self._ark.close()
        os.replace(self._ark_tmp, self.ark_path)
        with atomic_output(self.scp_path) as out:
            out.writelines(sorted(self._scp_lines))

    def abort(self) -> None:
        """Drop everything written so far."""
        self._ark.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._ark_tmp)

    def __enter__(self) -> "ArkScpWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def read_scp(scp_path: str) -> Iterator[Tuple[str, np.ndarray]]:
    """Yield ``(key, array)`` from an scp in file order; errors name the line.

    The location is the rest of the line, as in Kaldi (paths may hold spaces).
    """
    for lineno, key, location in read_scp_lines(scp_path):
        try:
            array = kaldiio.load_mat(location)
        except Exception as err:  # kaldiio raises many types
            raise TableError(scp_path, lineno, f"cannot read '{location}': {err}") from err
        yield key, np.asarray(array)


def load_scp_dict(scp_path: str) -> Dict[str, np.ndarray]:
    """Read a whole scp into memory (embeddings, small feature sets)."""
    return dict(read_scp(scp_path))


def write_scp_dict(ark_path: str, scp_path: str, table: Dict[str, np.ndarray]) -> None:
    """Write a dict of arrays atomically as ark + scp."""
    with ArkScpWriter(ark_path, scp_path) as writer:
        for key in sorted(table):
            writer.write(key, table[key])
