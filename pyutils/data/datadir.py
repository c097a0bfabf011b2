"""Kaldi data directories: load, validate, fix, split and subset.

A data dir is a folder of text tables keyed by utterance (utt2spk, feats.scp,
segments, ...), speaker (spk2utt, cmvn.scp, spk2gender) or recording (wav.scp
when a segments file exists, reco2dur), each sorted in C (byte) order with
unique keys, plus an optional ``trials`` list.  The rules follow Kaldi's
utils/validate_data_dir.sh, fix_data_dir.sh, split_data.sh and
subset_data_dir.sh so recipes written for Kaldi behave the same here.

Python's ``str`` order is code-point order, which for UTF-8 text is exactly
the byte order of ``LC_ALL=C sort``, so plain :func:`sorted` is used.
"""
from __future__ import annotations

import logging
import math
import os
import shutil
from dataclasses import dataclass
from functools import cached_property
from typing import (Callable, Dict, Iterable, List, Mapping, NamedTuple, Optional,
                    Sequence, Set, Tuple)

from pyutils.data.skips import Skips
from pyutils.data.originals import new_backup_dir
from pyutils.utils.fileio import TableError, write_lines

logger = logging.getLogger(__name__)

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


# --------------------------------------------------------------------------
# Table specifications and tolerant parsing
# --------------------------------------------------------------------------

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
class _Spec:
    """What a table is keyed by, its field count range and a value check."""
    index: str
    min_fields: int
    max_fields: Optional[int] = None
    check: Optional[Callable[[List[str]], Optional[str]]] = None


# wav.scp and reco2dur are keyed by utterance when there is no segments file.
SPECS: Dict[str, _Spec] = {
    "utt2spk": _Spec(UTT, 2, 2),
    "spk2utt": _Spec(SPK, 2),
    "wav.scp": _Spec(REC, 2, None, _no_tilde),
    "segments": _Spec(UTT, 4, 4, _segment_times),
    "feats.scp": _Spec(UTT, 2),
    "vad.scp": _Spec(UTT, 2),
    "text": _Spec(UTT, 1),
    "utt2dur": _Spec(UTT, 2, 2, _positive_number(float)),
    "utt2num_frames": _Spec(UTT, 2, 2, _positive_number(int)),
    "utt2lang": _Spec(UTT, 2, 2),
    "utt2uniq": _Spec(UTT, 2, 2),
    "cmvn.scp": _Spec(SPK, 2),
    "spk2gender": _Spec(SPK, 2, 2, _gender),
    "reco2dur": _Spec(REC, 2, 2, _positive_number(float)),
    "trials": _Spec(TRIAL, 3, 3, _trial_label),
}


@dataclass
class _Row:
    """One non-empty line: number, fields, verbatim text and its defect, if any."""
    lineno: int
    fields: List[str]
    line: str
    problem: Optional[str] = None

    @property
    def key(self) -> str:
        return self.fields[0]


@dataclass
class _Table:
    """A parsed table file: its rows plus problems not tied to a row."""
    path: str
    rows: List[_Row]
    issues: List[Tuple[Optional[int], str]]
    missing_newline: bool


def _read(path: str, spec: _Spec) -> _Table:
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
        rows.append(_Row(lineno, fields, line, _row_problem(spec, fields)))
    return _Table(path, rows, issues, bool(data) and not data.endswith(b"\n"))


def _row_problem(spec: _Spec, fields: List[str]) -> Optional[str]:
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


def _too_many_fields(name: str, row: _Row) -> bool:
    """True if ``row`` has more fields than table ``name`` allows (mis-split id?)."""
    spec = SPECS[name]
    return spec.max_fields is not None and len(row.fields) > spec.max_fields


def _read_strict(path: str, spec: _Spec) -> List[_Row]:
    """Parse ``path``; raise :class:`TableError` at the first defect."""
    table = _read(path, spec)
    if table.issues:
        raise TableError(path, *table.issues[0])
    for row in table.rows:
        if row.problem:
            raise TableError(path, row.lineno, row.problem)
    return table.rows


def _present(path: str) -> List[str]:
    """Names of the known tables that exist in data dir ``path``."""
    return [name for name in SPECS if os.path.isfile(os.path.join(path, name))]


def _load_strict(path: str) -> Dict[str, List[_Row]]:
    """Every known table of ``path``, strictly parsed; utt2spk is required."""
    if not os.path.isdir(path):
        raise DataDirError(path, ["no such directory"])
    if not os.path.isfile(os.path.join(path, "utt2spk")):
        raise DataDirError(path, ["utt2spk: no such file"])
    return {name: _read_strict(os.path.join(path, name), SPECS[name]) for name in _present(path)}


# --------------------------------------------------------------------------
# Small Kaldi helpers
# --------------------------------------------------------------------------

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
    rows = _read_strict(path, _Spec(UTT, 1))
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
    for row in _read_strict(path, _Spec(UTT, min_fields)):
        if row.key in seen:
            raise TableError(path, row.lineno, f"duplicate key '{row.key}' "
                                               f"(first on line {seen[row.key]})")
        seen[row.key] = row.lineno
        entries.append((row.lineno, row.key, _rest_of_line(row)))
    return entries


def read_id_list(path: str) -> List[str]:
    """First field of every line (the id-list format of filter_scp.pl)."""
    return [row.key for row in _read_strict(path, _Spec(UTT, 1))]


# --------------------------------------------------------------------------
# Loader
# --------------------------------------------------------------------------

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

    def _rows(self, name: str) -> Optional[List[_Row]]:
        return _read_strict(self.file(name), SPECS[name]) if self.has(name) else None

    def _mapping(self, name: str, convert: Callable[[_Row], object],
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
        return self._mapping("wav.scp", _rest_of_line, required=True)

    @cached_property
    def segments(self) -> Optional[Dict[str, Segment]]:
        return self._mapping("segments", lambda row: Segment(
            row.fields[1], float(row.fields[2]), float(row.fields[3])))

    @cached_property
    def feats_scp(self) -> Optional[Dict[str, str]]:
        return self._mapping("feats.scp", _rest_of_line)

    @cached_property
    def vad_scp(self) -> Optional[Dict[str, str]]:
        return self._mapping("vad.scp", _rest_of_line)

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


def _rest_of_line(row: _Row) -> str:
    return row.line.strip()[len(row.key):].strip()


# --------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------

class _Problems:
    """Collects problems; lists them by file, then line, a few dozen per file."""

    def __init__(self):
        self.by_file: Dict[str, List[Tuple[int, str]]] = {}

    def add(self, path: str, lineno: Optional[int], message: str) -> None:
        self.by_file.setdefault(path, []).append((lineno or 0, message))

    def result(self) -> List[str]:
        lines = []
        for path, items in self.by_file.items():
            items.sort(key=lambda item: item[0])
            for lineno, message in items[:MAX_PROBLEMS_PER_FILE]:
                lines.append(f"{path}:{lineno}: {message}" if lineno else f"{path}: {message}")
            if len(items) > MAX_PROBLEMS_PER_FILE:
                lines.append(f"{path}: {len(items) - MAX_PROBLEMS_PER_FILE} more problem(s) "
                             f"not shown")
        return lines


def _report_rows(table: _Table, out: _Problems, keyed: bool) -> None:
    """Report line defects and, for keyed tables, unsorted or duplicate keys."""
    for lineno, message in table.issues:
        out.add(table.path, lineno, message)
    if table.missing_newline:
        out.add(table.path, table.rows[-1].lineno if table.rows else None,
                "last line does not end in a newline")
    first_seen: Dict[str, int] = {}
    previous = None
    for row in table.rows:
        if row.problem:
            out.add(table.path, row.lineno, row.problem)
        if not keyed:
            continue
        if row.key in first_seen:
            out.add(table.path, row.lineno,
                    f"duplicate key '{row.key}' (first on line {first_seen[row.key]})")
        else:
            first_seen[row.key] = row.lineno
            if previous is not None and row.key < previous:
                out.add(table.path, row.lineno,
                        f"not in C sort order: '{row.key}' comes after '{previous}'")
        previous = row.key


def _match_keys(out: _Problems, table: _Table, expected: Dict[str, str], what: str,
                source: str) -> None:
    """Report keys of ``table`` not in ``expected`` and expected keys it lacks.

    ``expected`` maps each key to where it comes from (``file:line``);
    ``source`` names the file that defines the expected keys.
    """
    present = set()
    for row in table.rows:
        present.add(row.key)
        if row.key not in expected:
            out.add(table.path, row.lineno, f"{what} '{row.key}' is not in {source}")
    for key, where in expected.items():
        if key not in present:
            out.add(table.path, None, f"no line for {what} '{key}' (from {where})")


def _speaker_order_problems(utt2spk_rows: List[_Row]) -> List[Tuple[_Row, str]]:
    """Rows of utt2spk whose speaker sorts before the previous row's (sort -k2)."""
    return [(row, f"not sorted by speaker: '{row.fields[1]}' comes after '{prev.fields[1]}' "
                  f"(make speaker ids prefixes of utterance ids)")
            for prev, row in zip(utt2spk_rows, utt2spk_rows[1:])
            if row.fields[1] < prev.fields[1]]


def _check_spk2utt(out: _Problems, table: _Table, utt2spk_rows: List[_Row],
                   spks: Dict[str, str]) -> None:
    """spk2utt must list exactly the utterances of each speaker, in utt2spk order."""
    first_rows, seen_utts = [], set()
    for row in utt2spk_rows:  # a repeated utterance is reported as a duplicate key
        if row.key not in seen_utts:
            seen_utts.add(row.key)
            first_rows.append(row)
    expected = utt2spk_to_spk2utt((r.key, r.fields[1]) for r in first_rows)
    seen = set()
    for row in table.rows:
        spk, utts = row.key, row.fields[1:]
        if spk not in expected:
            out.add(table.path, row.lineno, f"speaker '{spk}' has no utterances in utt2spk")
            continue
        seen.add(spk)
        want = expected[spk]
        if utts == want:
            continue
        given, wanted = set(utts), set(want)
        missing = [u for u in want if u not in given]
        extra = [u for u in utts if u not in wanted]
        if missing or extra:
            detail = "; ".join(part for part in (
                missing and f"missing {_some(missing)} (in utt2spk)",
                extra and f"lists {_some(extra)} which utt2spk does not give to '{spk}'") if part)
        else:
            detail = "utterances are not in utt2spk order"
        out.add(table.path, row.lineno, f"speaker '{spk}' disagrees with utt2spk: {detail}")
    for spk in expected:
        if spk not in seen:
            out.add(table.path, None, f"no line for speaker '{spk}' (from {spks[spk]})")


def _some(items: List[str], limit: int = 5) -> str:
    shown = ", ".join(f"'{x}'" for x in items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def check_data_dir(path: str, no_feats: bool = True, no_wav: bool = False,
                   no_spk_sort: bool = False) -> List[str]:
    """Every problem of data dir ``path`` as ``file[:line]: message`` strings.

    Mirrors utils/validate_data_dir.sh (whose ``--no-feats`` is the default
    here) but collects all problems instead of stopping at the first.  Also
    checks ``trials``: three fields, known utterances, target|nontarget label,
    no repeated pair.  An empty list means the directory is valid.
    """
    if not os.path.isdir(path):
        return [f"{path}: no such directory"]
    out = _Problems()
    tables = {name: _read(os.path.join(path, name), SPECS[name]) for name in _present(path)}
    for name, table in tables.items():
        _report_rows(table, out, keyed=name != "trials")
    for name in ("utt2spk", "spk2utt"):
        if name not in tables:
            out.add(os.path.join(path, name), None, "no such file (required)")
    if "utt2spk" not in tables:
        return out.result()

    u2s = tables["utt2spk"]
    u2s_rows = [r for r in u2s.rows if len(r.fields) == 2]
    utts: Dict[str, str] = {}
    for row in u2s.rows:
        utts.setdefault(row.key, f"{u2s.path}:{row.lineno}")
    spks: Dict[str, str] = {}
    for row in u2s_rows:
        spks.setdefault(row.fields[1], f"{u2s.path}:{row.lineno}")
    if len(spks) == 1 and len(u2s_rows) == len(u2s.rows):
        logger.warning("%s: only one speaker; this is probably a bad idea", path)
    if not no_spk_sort:
        for row, message in _speaker_order_problems(u2s_rows):
            out.add(u2s.path, row.lineno, message)
    if "spk2utt" in tables:
        _check_spk2utt(out, tables["spk2utt"], u2s_rows, spks)

    recordings = _check_audio(out, path, tables, utts, no_wav)
    rec_source = "segments" if "segments" in tables else "utt2spk"
    if "feats.scp" not in tables and not no_feats:
        out.add(os.path.join(path, "feats.scp"), None, "no such file (required unless --no-feats)")
    for name, table in tables.items():
        index = SPECS[name].index
        if name in ("utt2spk", "spk2utt", "wav.scp", "segments"):
            continue
        if index == UTT:
            _match_keys(out, table, utts, UTT, "utt2spk")
        elif index == SPK:
            _match_keys(out, table, spks, SPK, "utt2spk")
        elif index == REC:
            _match_keys(out, table, recordings, REC, rec_source)
    if "trials" in tables:
        _check_trials(out, tables["trials"], utts)
    return out.result()


def _check_audio(out: _Problems, path: str, tables: Dict[str, _Table],
                 utts: Dict[str, str], no_wav: bool) -> Dict[str, str]:
    """Check that every utterance has audio; return the recording-id origins."""
    wav, segments = tables.get("wav.scp"), tables.get("segments")
    if wav is None and (segments is not None or not no_wav):
        why = "segments exists" if segments is not None else "required unless --no-wav"
        out.add(os.path.join(path, "wav.scp"), None, f"no such file ({why})")
    if segments is None:
        if wav is not None:
            _match_keys(out, wav, utts, UTT, "utt2spk")
        return utts
    _match_keys(out, segments, utts, UTT, "utt2spk")
    recordings: Dict[str, str] = {}
    for row in segments.rows:
        if len(row.fields) >= 2:
            recordings.setdefault(row.fields[1], f"{segments.path}:{row.lineno}")
    if wav is not None:
        _match_keys(out, wav, recordings, REC, "segments")
    return recordings


def _check_trials(out: _Problems, table: _Table, utts: Dict[str, str]) -> None:
    """Trials must name known utterances and not repeat a pair."""
    first_seen: Dict[Tuple[str, str], int] = {}
    for row in table.rows:
        if len(row.fields) < 2:
            continue
        for utt in row.fields[:2]:
            if utt not in utts:
                out.add(table.path, row.lineno, f"unknown utterance '{utt}' (not in utt2spk)")
        pair = (row.fields[0], row.fields[1])
        if pair in first_seen:
            out.add(table.path, row.lineno, f"repeated trial (first on line {first_seen[pair]})")
        else:
            first_seen[pair] = row.lineno


def validate_data_dir(path: str, no_feats: bool = True, no_wav: bool = False,
                      no_spk_sort: bool = False) -> None:
    """Raise :class:`DataDirError` listing all problems of ``path``, if any."""
    problems = check_data_dir(path, no_feats=no_feats, no_wav=no_wav, no_spk_sort=no_spk_sort)
    if problems:
        raise DataDirError(path, problems)


# --------------------------------------------------------------------------
# Selecting and writing
# --------------------------------------------------------------------------

def _select(tables: Dict[str, List[_Row]], keep: Set[str]) -> Dict[str, List[str]]:
    """Lines of every table restricted to the utterances in ``keep``.

    utt2spk keeps its order; spk2utt is regenerated from it (C-sorted by
    speaker); speaker tables follow the kept speakers and wav.scp / reco2dur
    the recordings the kept segments use (the utterances, with no segments).
    """
    u2s = [r for r in tables["utt2spk"] if r.key in keep]
    spk2utt = utt2spk_to_spk2utt((r.key, r.fields[1]) for r in u2s)
    out = {"utt2spk": [r.line for r in u2s],
           "spk2utt": [f"{spk} {' '.join(spk2utt[spk])}" for spk in sorted(spk2utt)]}
    recordings = keep
    if "segments" in tables:
        recordings = {r.fields[1] for r in tables["segments"] if r.key in keep}
    allowed = {UTT: keep, SPK: set(spk2utt), REC: recordings}
    for name, rows in tables.items():
        if name in out:
            continue
        if name == "trials":
            out[name] = [r.line for r in rows if r.fields[0] in keep and r.fields[1] in keep]
        else:
            out[name] = [r.line for r in rows if r.key in allowed[SPECS[name].index]]
    return out


def _write_dir(path: str, lines: Dict[str, List[str]]) -> None:
    """Write each table atomically; remove known tables not being written.

    An empty result is not written (an empty table is invalid) but logged.
    """
    os.makedirs(path, exist_ok=True)
    for name in SPECS:
        target = os.path.join(path, name)
        if lines.get(name):
            write_lines(target, lines[name])
        elif os.path.isfile(target):
            os.unlink(target)
            if name in lines:
                logger.warning("%s: no lines left; removed the file", target)
        elif name in lines:
            logger.warning("%s: no lines left; not written", target)


# --------------------------------------------------------------------------
# fix_data_dir
# --------------------------------------------------------------------------

def _clean(path: str, name: str) -> Tuple[List[_Row], int, List[str]]:
    """Rows of a table minus malformed lines and repeated keys, key-sorted.

    Every dropped line is logged.  Trials keep their order and drop repeated
    pairs instead.  Returns the rows, the original line count and the keys
    of the malformed lines.
    """
    table = _read(path, SPECS[name])
    for lineno, message in table.issues:
        if lineno is not None:
            logger.warning("%s:%d: dropping line: %s", path, lineno, message)
    kept, seen, malformed = [], set(), []
    for row in table.rows:
        key = tuple(row.fields[:2]) if name == "trials" else row.key
        if row.problem:
            logger.warning("%s:%d: dropping line: %s%s", path, row.lineno, row.problem,
                           WHITESPACE_HINT if _too_many_fields(name, row) else "")
            malformed.append(row.key)
        elif key in seen:
            logger.warning("%s:%d: dropping repeated %s", path, row.lineno,
                           "trial" if name == "trials" else f"key '{row.key}'")
        else:
            seen.add(key)
            kept.append(row)
    if name != "trials":
        kept.sort(key=lambda r: r.key)
    total = len(table.rows) + sum(1 for lineno, _ in table.issues if lineno is not None)
    return kept, total, malformed


def fix_data_dir(path: str) -> Dict[str, Tuple[int, int]]:
    """Make ``path`` consistent, like utils/fix_data_dir.sh.

    Keeps the utterances present in every utterance table (wav.scp too when
    there are no segments), whose segment's recording is in wav.scp (and
    reco2dur) and whose speaker is in every speaker table; C-sorts and
    de-duplicates every table, regenerates spk2utt, drops unused recordings
    and trials naming removed utterances.  Originals are copied to
    ``path/.backup/`` first; each file is replaced atomically.  Returns
    ``{file: (lines before, lines after)}``; every removal is logged.
    """
    if not os.path.isfile(os.path.join(path, "utt2spk")):
        raise DataDirError(path, ["utt2spk: no such file"])
    names = _present(path)
    tables, before, malformed = {}, {}, {}
    for name in names:
        tables[name], before[name], malformed[name] = _clean(os.path.join(path, name), name)
    keep = _fixed_utterances(path, tables)
    removed = _removal_reasons(tables, keep, malformed["utt2spk"])
    order = _speaker_order_problems([r for r in tables["utt2spk"] if r.key in keep])
    if order:
        raise DataDirError(path, [f"utt2spk:{row.lineno}: {message}; fix this yourself"
                                  for row, message in order[:MAX_PROBLEMS_PER_FILE]])
    lines = _select(tables, keep)
    if "trials" in tables:
        trial_skips = Skips(logger, what="trials", verb="removed",
                            max_logged=MAX_PROBLEMS_PER_FILE)
        for row in tables["trials"]:
            lost = [u for u in row.fields[:2] if u not in keep]
            if lost:
                trial_skips.skip(f"{os.path.join(path, 'trials')}:{row.lineno}",
                                 "unknown utterance", f"'{lost[0]}' is not (or no longer) "
                                 f"in the data dir", level=logging.INFO)
        if trial_skips:
            logger.info("fix_data_dir: kept %d of %d trials (%s)", len(lines["trials"]),
                        before["trials"], trial_skips.describe())

    backup = "(no change)"
    if _changes(path, names, lines):
        backup = new_backup_dir(path)  # numbered: an earlier backup is never overwritten
        for name in names:
            shutil.copy2(os.path.join(path, name), os.path.join(backup, name))
        _write_dir(path, lines)
    summary = {}
    for name in lines:
        old, new = before.get(name, 0), len(lines[name])
        summary[name] = (old, new)
        if old != new:
            logger.info("fix_data_dir: %s: kept %d of %d lines (removed %d)",
                        name, new, old, old - new)
    logger.info("fix_data_dir: kept %d of %d utterances (%s); old files are in %s",
                len(keep), len(keep) + len(removed), removed.describe(), backup)
    kept_speakers = {row.fields[1] for row in tables["utt2spk"] if row.key in keep}
    for speaker in sorted({row.fields[1] for row in tables["utt2spk"]} - kept_speakers):
        logger.info("fix_data_dir: speaker %s: removed (no utterances left)", speaker)
    return summary


def _changes(path: str, names: List[str], lines: Dict[str, List[str]]) -> bool:
    """True if writing ``lines`` would change any file of the data dir."""
    if set(names) != set(lines):
        return True
    for name in names:
        with open(os.path.join(path, name), encoding="utf-8") as handle:
            if handle.read() != "".join(line + "\n" for line in lines[name]):
                return True
    return False


def _removal_reasons(tables: Dict[str, List[_Row]], keep: Set[str],
                     malformed_utt2spk: List[str]) -> Skips:
    """Why each utterance of utt2spk that is not in ``keep`` goes (logged, counted)."""
    skips = Skips(logger, what="utterances", verb="removed", max_logged=MAX_PROBLEMS_PER_FILE)
    utt2spk = {r.key: r.fields[1] for r in tables["utt2spk"]}
    segments = {r.key: r.fields[1] for r in tables.get("segments", [])}
    keys = {name: {r.key for r in rows} for name, rows in tables.items()}
    for utt in sorted(set(utt2spk) | set(malformed_utt2spk)):
        if utt in keep:
            continue
        reason = "malformed utt2spk line" if utt not in utt2spk else None
        for name in keys:
            if reason:
                break
            index = SPECS[name].index
            if index == SPK and name != "spk2utt" and utt2spk[utt] not in keys[name]:
                reason = f"speaker not in {name}"
            elif (index == UTT or (index == REC and not segments and "segments" not in tables)) \
                    and utt not in keys[name]:
                reason = f"not in {name}"
            elif index == REC and "segments" in tables and utt in segments \
                    and segments[utt] not in keys[name]:
                reason = f"recording not in {name}"
        skips.skip(utt, reason or "inconsistent", level=logging.INFO)
    return skips


def _fixed_utterances(path: str, tables: Dict[str, List[_Row]]) -> Set[str]:
    """Utterances that survive the intersection of all tables (see fix_data_dir)."""
    speakers = {r.fields[1] for r in tables["utt2spk"]}
    for name, rows in tables.items():
        if SPECS[name].index == SPK and name != "spk2utt":
            speakers &= {r.key for r in rows}
    keep = {r.key for r in tables["utt2spk"] if r.fields[1] in speakers}
    segmented = "segments" in tables
    for name, rows in tables.items():
        index = SPECS[name].index
        if index == UTT or (index == REC and not segmented):
            keep &= {r.key for r in rows}
    if segmented:
        if "wav.scp" not in tables:
            raise DataDirError(path, ["wav.scp: no such file (segments exists)"])
        recordings = {r.key for r in tables["wav.scp"]}
        for name, rows in tables.items():
            if SPECS[name].index == REC:
                recordings &= {r.key for r in rows}
        keep &= {r.key for r in tables["segments"] if r.fields[1] in recordings}
    if not keep:
        raise DataDirError(path, ["no utterances remained: not proceeding"])
    return keep


# --------------------------------------------------------------------------
# split_data
# --------------------------------------------------------------------------

def split_dir_name(path: str, nj: int, per_spk: bool) -> str:
    """``path/split{nj}`` per speaker, ``path/split{nj}utt`` per utterance (Kaldi)."""
    return os.path.join(path, f"split{nj}" + ("" if per_spk else "utt"))


def _per_utt_blocks(n: int, nj: int) -> List[int]:
    """Block sizes of n lines in nj contiguous parts, larger ones first."""
    base, extra = divmod(n, nj)
    return [base + (1 if i < extra else 0) for i in range(nj)]


def _per_spk_blocks(counts: List[int], nj: int) -> List[int]:
    """Number of consecutive speakers per part, balancing utterance counts.

    Kaldi's split_scp.pl --utt2spk: start with an equal number of speakers
    per part, then move boundary speakers to a neighbour while that reduces
    the size difference of the two parts.
    """
    parts: List[List[int]] = [[] for _ in range(nj)]
    for idx, count in enumerate(counts):
        parts[idx * nj // len(counts)].append(count)
    changed = True
    while changed:
        changed = False
        for i in range(nj):
            if i < nj - 1 and parts[i]:
                moved, a, b = parts[i][-1], sum(parts[i]), sum(parts[i + 1])
                if abs((b + moved) - (a - moved)) < abs(b - a):
                    parts[i + 1].insert(0, parts[i].pop())
                    changed = True
            if i > 0 and parts[i]:
                moved, a, b = parts[i][0], sum(parts[i - 1]), sum(parts[i])
                if abs((b - moved) - (a + moved)) < abs(b - a):
                    parts[i - 1].append(parts[i].pop(0))
                    changed = True
    return [len(part) for part in parts]


def _is_fresh(path: str, dirs: List[str], names: List[str]) -> bool:
    """True when every split has every table, none older than its source."""
    for name in names:
        source = os.stat(os.path.join(path, name)).st_mtime_ns
        for directory in dirs:
            target = os.path.join(directory, name)
            if not os.path.isfile(target) or os.stat(target).st_mtime_ns < source:
                return False
    return True


def split_data(path: str, nj: int, per_spk: bool = False) -> List[str]:
    """Split ``path`` into ``nj`` parts; return the part directories.

    Like utils/split_data.sh: contiguous blocks of utt2spk balanced by
    utterance count, each speaker kept whole with ``per_spk``; every table is
    filtered to each part (wav.scp via segments).  Trials are not split.
    Nothing is redone when the parts are newer than the source tables.
    """
    if nj <= 0:
        raise DataDirError(path, [f"invalid number of splits {nj}"])
    root = split_dir_name(path, nj, per_spk)
    dirs = [os.path.join(root, str(j)) for j in range(1, nj + 1)]
    names = [name for name in _present(path) if name != "trials"]
    if "utt2spk" in names and _is_fresh(path, dirs, names):
        return dirs
    tables = _load_strict(path)
    tables.pop("trials", None)
    utt_rows = tables["utt2spk"]
    for name, rows in tables.items():
        if SPECS[name].index == UTT and len(rows) != len(utt_rows):
            logger.warning("split_data: %s has %d lines but utt2spk %d; "
                           "utils/fix_data_dir.sh %s fixes this", name, len(rows),
                           len(utt_rows), path)
    if per_spk:
        spk2utt = utt2spk_to_spk2utt((r.key, r.fields[1]) for r in utt_rows)
        if len(spk2utt) < nj:
            raise DataDirError(path, [f"cannot split {len(spk2utt)} speakers into {nj} parts"])
        spk_lists = list(spk2utt.values())
        groups, start = [], 0
        for size in _per_spk_blocks([len(u) for u in spk_lists], nj):
            groups.append({u for utts in spk_lists[start:start + size] for u in utts})
            start += size
    else:
        if len(utt_rows) < nj:
            raise DataDirError(path, [f"cannot split {len(utt_rows)} utterances into {nj} parts"])
        groups, start = [], 0
        for size in _per_utt_blocks(len(utt_rows), nj):
            groups.append({r.key for r in utt_rows[start:start + size]})
            start += size
    for directory, keep in zip(dirs, groups):
        _write_dir(directory, _select(tables, keep))
    return dirs


# --------------------------------------------------------------------------
# subset_data_dir
# --------------------------------------------------------------------------

def subset_data_dir(src: str, dst: str, utt_list: Optional[Iterable[str]] = None,
                    spk_list: Optional[Iterable[str]] = None) -> None:
    """Write to ``dst`` the part of ``src`` with the given utterances or speakers.

    Like utils/subset_data_dir.sh --utt-list/--spk-list; trials are kept
    when both utterances are kept.  Ids not in ``src`` are counted in a
    warning.  Known tables already in ``dst`` but not produced are removed.
    """
    if (utt_list is None) == (spk_list is None):
        raise ValueError("give exactly one of utt_list and spk_list")
    if os.path.abspath(src) == os.path.abspath(dst):
        raise DataDirError(dst, ["destination is the source directory"])
    tables = _load_strict(src)
    utt2spk = {r.key: r.fields[1] for r in tables["utt2spk"]}
    if utt_list is not None:
        wanted, known, what = set(utt_list), set(utt2spk), UTT
    else:
        wanted, known, what = set(spk_list), set(utt2spk.values()), SPK
    unknown = wanted - known
    if unknown:
        logger.warning("subset_data_dir: %d %s id(s) are not in %s, e.g. '%s'",
                       len(unknown), what, src, sorted(unknown)[0])
    keep = {u for u, s in utt2spk.items() if (u if what == UTT else s) in wanted}
    if not keep:
        raise DataDirError(src, [f"no utterances selected for {dst}"])
    _write_dir(dst, _select(tables, keep))
    logger.info("subset_data_dir: reducing #utt from %d to %d", len(utt2spk), len(keep))
