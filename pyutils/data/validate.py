"""Check a Kaldi data dir as utils/validate_data_dir.sh does, listing every problem
(file and line) instead of stopping at the first."""
from __future__ import annotations

import logging
import os
from typing import Dict, List, Optional, Tuple

from pyutils.data.formats import (MAX_PROBLEMS_PER_FILE, REC, SPECS, SPK, UTT, DataDirError,
                                  ParsedTable, Row, parse_table, present_tables,
                                  utt2spk_to_spk2utt)

logger = logging.getLogger(__name__)


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


def _report_rows(table: ParsedTable, out: _Problems, keyed: bool) -> None:
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


def _match_keys(out: _Problems, table: ParsedTable, expected: Dict[str, str], what: str,
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


def speaker_order_problems(utt2spk_rows: List[Row]) -> List[Tuple[Row, str]]:
    """Rows of utt2spk whose speaker sorts before the previous row's (sort -k2)."""
    return [(row, f"not sorted by speaker: '{row.fields[1]}' comes after '{prev.fields[1]}' "
                  f"(make speaker ids prefixes of utterance ids)")
            for prev, row in zip(utt2spk_rows, utt2spk_rows[1:])
            if row.fields[1] < prev.fields[1]]


def _check_spk2utt(out: _Problems, table: ParsedTable, utt2spk_rows: List[Row],
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
    tables = {name: parse_table(os.path.join(path, name), SPECS[name])
              for name in present_tables(path)}
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
        for row, message in speaker_order_problems(u2s_rows):
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


def _check_audio(out: _Problems, path: str, tables: Dict[str, ParsedTable],
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


def _check_trials(out: _Problems, table: ParsedTable, utts: Dict[str, str]) -> None:
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
