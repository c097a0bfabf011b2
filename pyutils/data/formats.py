"""Kaldi data-dir tables: what each file is keyed by, its fields, and strict readers.

A data dir is a folder of text tables keyed by utterance (utt2spk, feats.scp,
segments, ...), speaker (spk2utt, cmvn.scp, spk2gender) or recording (wav.scp
when a segments file exists, reco2dur), each sorted in C (byte) order with
unique keys, plus an optional ``trials`` list.  :data:`SPECS` says which;
the readers here parse without stopping (for validation and fixing) or stop
at the first defect with a :class:`TableError` naming file and line.

Python's ``str`` order is code-point order, which for UTF-8 text is exactly
the byte order of ``LC_ALL=C sort``, so plain :func:`sorted` is used.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from pyutils.utils.fileio import TableError


UTT, SPK, REC, TRIAL = "utterance", "speaker", "recording", "trial"


MAX_PROBLEMS_PER_FILE = 20


class DataDirError(ValueError):
    """A data directory is inconsistent; ``problems`` lists every defect found."""

    def __init__(self, path: str, problems: Sequence[str]):
        self.path = path
        self.problems = list(problems)
        if len(self.problems) == 1:
            super().__init__(f"{path}: {self.problems[0]}")
        else:
            super().__init__(f"{path}: {len(self.problems)} problems:\n  "
                             + "\n  ".join(self.problems))


def _positive_number(kind: type) -> Callable[[List[str]], Optional[str]]:
    """Value check: the second field is a finite ``kind`` greater than zero."""
    def check(fields: List[str]) -> Optional[str]:
        try:
            value = kind(fields[1])
        except ValueError:
            return f"'{fields[1]}' is not a valid {kind.__name__}"
        if not (math.isfinite(value) and value > 0):
            return f"value {fields[1]} must be > 0"
        return None
    return check


def _segment_times(fields: List[str]) -> Optional[str]:
    """Value check for ``segments``: 0 <= start < end, both finite numbers."""
    try:
        start, end = float(fields[2]), float(fields[3])
    except ValueError:
        return f"start/end '{fields[2]} {fields[3]}' are not numbers"
    if not (math.isfinite(start) and math.isfinite(end)):
        return f"start/end '{fields[2]} {fields[3]}' must be finite"
    if start < 0:
        return f"start time {fields[2]} is negative"
    if end <= start:
        return f"end time {fields[3]} is not after start time {fields[2]}"
    return None


def _no_tilde(fields: List[str]) -> Optional[str]:
    """Kaldi rejects '~' paths in wav.scp: fopen() does no tilde expansion."""
    return "do not use '~' in wav.scp (no tilde expansion)" if fields[1].startswith("~") else None


def _gender(fields: List[str]) -> Optional[str]:
    return None if fields[1] in ("m", "f") else f"gender '{fields[1]}' must be m or f"


def _trial_label(fields: List[str]) -> Optional[str]:
    if fields[2] in ("target", "nontarget"):
        return None
    return f"label '{fields[2]}' must be target or nontarget"


@dataclass(frozen=True)
class TableSpec:
    """What a table is keyed by, its field count range and a value check."""
    index: str
    min_fields: int
    max_fields: Optional[int] = None
    check: Optional[Callable[[List[str]], Optional[str]]] = None


SPECS: Dict[str, TableSpec] = {
    "utt2spk": TableSpec(UTT, 2, 2),
    "spk2utt": TableSpec(SPK, 2),
    "wav.scp": TableSpec(REC, 2, None, _no_tilde),
    "segments": TableSpec(UTT, 4, 4, _segment_times),
    "feats.scp": TableSpec(UTT, 2),
    "vad.scp": TableSpec(UTT, 2),
    "text": TableSpec(UTT, 1),
    "utt2dur": TableSpec(UTT, 2, 2, _positive_number(float)),
    "utt2num_frames": TableSpec(UTT, 2, 2, _positive_number(int)),
    "utt2lang": TableSpec(UTT, 2, 2),
    "utt2uniq": TableSpec(UTT, 2, 2),
    "cmvn.scp": TableSpec(SPK, 2),
    "spk2gender": TableSpec(SPK, 2, 2, _gender),
    "reco2dur": TableSpec(REC, 2, 2, _positive_number(float)),
    "trials": TableSpec(TRIAL, 3, 3, _trial_label),
}


@dataclass
class Row:
    """One non-empty line: number, fields, verbatim text and its defect, if any."""
    lineno: int
    fields: List[str]
    line: str
    problem: Optional[str] = None

    @property
    def key(self) -> str:
        return self.fields[0]


@dataclass
class ParsedTable:
    """A parsed table file: its rows plus problems not tied to a row."""
    path: str
    rows: List[Row]
    issues: List[Tuple[Optional[int], str]]
    missing_newline: bool


def parse_table(path: str, spec: TableSpec) -> ParsedTable:
    """Parse ``path`` without stopping at the first defect."""
    with open(path, "rb") as handle:
        data = handle.read()
    issues: List[Tuple[Optional[int], str]] = []
    if not data:
        issues.append((None, "empty file"))
    raw_lines = data.split(b"\n")
    if raw_lines[-1] == b"":
        raw_lines.pop()
    rows = []
    for lineno, raw in enumerate(raw_lines, 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            issues.append((lineno, "not valid UTF-8"))
            continue
        fields = line.split()
        if not fields:
            issues.append((lineno, "empty line"))
            continue
        rows.append(Row(lineno, fields, line, _row_problem(spec, fields)))
    return ParsedTable(path, rows, issues, bool(data) and not data.endswith(b"\n"))


def _row_problem(spec: TableSpec, fields: List[str]) -> Optional[str]:
    """Why a line is malformed under ``spec`` (field count, value), or None."""
    n = len(fields)
    if n < spec.min_fields or (spec.max_fields is not None and n > spec.max_fields):
        if spec.max_fields == spec.min_fields:
            expected = f"{spec.min_fields}"
        elif spec.max_fields is None:
            expected = f"at least {spec.min_fields}"
        else:
            expected = f"{spec.min_fields}-{spec.max_fields}"
        return f"expected {expected} fields, got {n}"
    return spec.check(fields) if spec.check else None


WHITESPACE_HINT = " (an id containing whitespace? Kaldi ids cannot contain it)"


def too_many_fields(name: str, row: Row) -> bool:
    """True if ``row`` has more fields than table ``name`` allows (mis-split id?)."""
    spec = SPECS[name]
    return spec.max_fields is not None and len(row.fields) > spec.max_fields


def read_rows(path: str, spec: TableSpec) -> List[Row]:
    """Parse ``path``; raise :class:`TableError` at the first defect."""
    table = parse_table(path, spec)
    if table.issues:
        raise TableError(path, *table.issues[0])
    for row in table.rows:
        if row.problem:
            raise TableError(path, row.lineno, row.problem)
    return table.rows


def present_tables(path: str) -> List[str]:
    """Names of the known tables that exist in data dir ``path``."""
    return [name for name in SPECS if os.path.isfile(os.path.join(path, name))]


def load_tables(path: str) -> Dict[str, List[Row]]:
    """Every known table of ``path``, strictly parsed; utt2spk is required."""
    if not os.path.isdir(path):
        raise DataDirError(path, ["no such directory"])
    if not os.path.isfile(os.path.join(path, "utt2spk")):
        raise DataDirError(path, ["utt2spk: no such file"])
    return {name: read_rows(os.path.join(path, name), SPECS[name])
            for name in present_tables(path)}


def utt2spk_to_spk2utt(utt2spk) -> Dict[str, List[str]]:
    """Speaker -> utterances, speakers in order of first appearance (Kaldi's .pl).

    ``utt2spk`` is a mapping or an iterable of ``(utt, spk)`` pairs.
    """
    pairs = utt2spk.items() if isinstance(utt2spk, Mapping) else utt2spk
    spk2utt: Dict[str, List[str]] = {}
    for utt, spk in pairs:
        spk2utt.setdefault(spk, []).append(utt)
    return spk2utt


def spk2utt_to_utt2spk(spk2utt: Mapping[str, Sequence[str]]) -> Dict[str, str]:
    """Utterance -> speaker, in spk2utt order (Kaldi's spk2utt_to_utt2spk.pl)."""
    return {utt: spk for spk, utts in spk2utt.items() for utt in utts}


def filter_scp(keys: Iterable[str], path: str, exclude: bool = False) -> List[str]:
    """Lines of ``path`` whose first field is (or with ``exclude``, is not) in ``keys``.

    Like Kaldi's filter_scp.pl: lines keep their text and file order.
    """
    wanted = set(keys)
    rows = read_rows(path, TableSpec(UTT, 1))
    return [row.line for row in rows if (row.key in wanted) != exclude]


def read_scp(path: str, min_fields: int = 2,
             allow_empty: bool = False) -> List[Tuple[int, str, str]]:
    """``(lineno, key, value)`` of each line; the value is the rest of the line.

    As in Kaldi's scp files the value (an rxfilename such as ``a b.ark:12``
    or a ``cmd |`` pipe) may hold spaces.  A malformed line, an empty line or
    a repeated key is a :class:`TableError` naming file and line; so is an
    empty file unless ``allow_empty``.
    """
    if not os.path.isfile(path):
        raise TableError(path, None, "file not found")
    if allow_empty and os.path.getsize(path) == 0:
        return []
    seen: Dict[str, int] = {}
    entries = []
    for row in read_rows(path, TableSpec(UTT, min_fields)):
        if row.key in seen:
            raise TableError(path, row.lineno, f"duplicate key '{row.key}' "
                                               f"(first on line {seen[row.key]})")
        seen[row.key] = row.lineno
        entries.append((row.lineno, row.key, rest_of_line(row)))
    return entries


def read_id_list(path: str) -> List[str]:
    """First field of every line (the id-list format of filter_scp.pl)."""
    return [row.key for row in read_rows(path, TableSpec(UTT, 1))]


def rest_of_line(row: Row) -> str:
    return row.line.strip()[len(row.key):].strip()
