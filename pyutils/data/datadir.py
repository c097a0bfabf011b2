"""Kaldi data directories: the read-only :class:`DataDir` view.

The data-dir code is a tree, each module importing only those below it:
:mod:`pyutils.data.formats` (table specs, strict readers, the Kaldi list
helpers) at the bottom, this view above it, then :mod:`pyutils.data.validate`,
:mod:`pyutils.data.fix` and :mod:`pyutils.data.subsets` (split, subset,
combine, copy), with :mod:`pyutils.data.audio` beside them.  Each name is
imported from the module that defines it (nothing is re-exported here).
"""
from __future__ import annotations

from functools import cached_property
import os
from typing import Callable, Dict, List, NamedTuple, Optional

from pyutils.data.formats import SPECS, DataDirError, Row, read_rows, rest_of_line
from pyutils.utils.fileio import TableError


class Segment(NamedTuple):
    recording: str
    start: float
    end: float


class Trial(NamedTuple):
    utt1: str
    utt2: str
    target: bool


class DataDir:
    """Read-only view of a Kaldi data dir; each table is loaded on first use.

    Loading is strict: the first malformed line raises :class:`TableError`
    naming file and line.  Optional tables that are absent read as ``None``.
    """

    def __init__(self, path: str):
        if not os.path.isdir(path):
            raise DataDirError(path, ["no such directory"])
        self.path = path

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    def has(self, name: str) -> bool:
        return os.path.isfile(self.file(name))

    def _rows(self, name: str) -> Optional[List[Row]]:
        return read_rows(self.file(name), SPECS[name]) if self.has(name) else None

    def _mapping(self, name: str, convert: Callable[[Row], object],
                 required: bool = False) -> Optional[Dict[str, object]]:
        rows = self._rows(name)
        if rows is None:
            if required:
                raise TableError(self.file(name), None, "file not found")
            return None
        table: Dict[str, object] = {}
        for row in rows:
            if row.key in table:
                raise TableError(self.file(name), row.lineno, f"duplicate key '{row.key}'")
            table[row.key] = convert(row)
        return table

    @cached_property
    def utt2spk(self) -> Dict[str, str]:
        return self._mapping("utt2spk", lambda row: row.fields[1], required=True)

    @cached_property
    def spk2utt(self) -> Dict[str, List[str]]:
        return self._mapping("spk2utt", lambda row: row.fields[1:], required=True)

    @cached_property
    def wav_scp(self) -> Dict[str, str]:
        """Recording (or utterance) -> rxfilename: a path or a ``cmd |`` pipe."""
        return self._mapping("wav.scp", rest_of_line, required=True)

    @cached_property
    def segments(self) -> Optional[Dict[str, Segment]]:
        return self._mapping("segments", lambda row: Segment(
            row.fields[1], float(row.fields[2]), float(row.fields[3])))

    @cached_property
    def feats_scp(self) -> Optional[Dict[str, str]]:
        return self._mapping("feats.scp", rest_of_line)

    @cached_property
    def vad_scp(self) -> Optional[Dict[str, str]]:
        return self._mapping("vad.scp", rest_of_line)

    @cached_property
    def utt2num_frames(self) -> Optional[Dict[str, int]]:
        return self._mapping("utt2num_frames", lambda row: int(row.fields[1]))

    @cached_property
    def utt2dur(self) -> Optional[Dict[str, float]]:
        return self._mapping("utt2dur", lambda row: float(row.fields[1]))

    @cached_property
    def trials(self) -> Optional[List[Trial]]:
        rows = self._rows("trials")
        if rows is None:
            return None
        return [Trial(r.fields[0], r.fields[1], r.fields[2] == "target") for r in rows]

    @property
    def utts(self) -> List[str]:
        return list(self.utt2spk)

    @property
    def spks(self) -> List[str]:
        return list(self.spk2utt)
