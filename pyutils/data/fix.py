"""Make a Kaldi data dir consistent as utils/fix_data_dir.sh does: keep the
utterances every table agrees on, C-sort, regenerate spk2utt; every removal logged."""
from __future__ import annotations

import logging
import os
import shutil
from typing import Dict, List, Set, Tuple

from pyutils.data.formats import (MAX_PROBLEMS_PER_FILE, REC, SPECS, SPK, UTT, WHITESPACE_HINT,
                                  DataDirError, Row, parse_table, present_tables,
                                  too_many_fields)
from pyutils.data.original_lists import new_backup_dir
from pyutils.data.skipped_items import Skips
from pyutils.data.subsets import select_lines, write_tables
from pyutils.data.validate import speaker_order_problems

logger = logging.getLogger(__name__)


def _clean(path: str, name: str) -> Tuple[List[Row], int, List[str]]:
    """Rows of a table minus malformed lines and repeated keys, key-sorted.

    Every dropped line is logged.  Trials keep their order and drop repeated
    pairs instead.  Returns the rows, the original line count and the keys
    of the malformed lines.
    """
    table = parse_table(path, SPECS[name])
    for lineno, message in table.issues:
        if lineno is not None:
            logger.warning("%s:%d: dropping line: %s", path, lineno, message)
    kept, seen, malformed = [], set(), []
    for row in table.rows:
        key = tuple(row.fields[:2]) if name == "trials" else row.key
        if row.problem:
            logger.warning("%s:%d: dropping line: %s%s", path, row.lineno, row.problem,
                           WHITESPACE_HINT if too_many_fields(name, row) else "")
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
    names = present_tables(path)
    tables, before, malformed = {}, {}, {}
    for name in names:
        tables[name], before[name], malformed[name] = _clean(os.path.join(path, name), name)
    keep = _fixed_utterances(path, tables)
    removed = _removal_reasons(tables, keep, malformed["utt2spk"])
    order = speaker_order_problems([r for r in tables["utt2spk"] if r.key in keep])
    if order:
        raise DataDirError(path, [f"utt2spk:{row.lineno}: {message}; fix this yourself"
                                  for row, message in order[:MAX_PROBLEMS_PER_FILE]])
    lines = select_lines(tables, keep)
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

    backup = None
    if _changes(path, names, lines):
        backup = new_backup_dir(path)  # numbered: an earlier backup is never overwritten
        for name in names:
            shutil.copy2(os.path.join(path, name), os.path.join(backup, name))
        write_tables(path, lines)
    summary = {}
    for name in lines:
        old, new = before.get(name, 0), len(lines[name])
        summary[name] = (old, new)
        if old != new:
            logger.info("fix_data_dir: %s: kept %d of %d lines (removed %d)",
                        name, new, old, old - new)
    if backup is None:
        logger.info("fix_data_dir: %s is consistent: all %d utterances kept, nothing changed",
                    path, len(keep))
    else:
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


def _removal_reasons(tables: Dict[str, List[Row]], keep: Set[str],
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


def _fixed_utterances(path: str, tables: Dict[str, List[Row]]) -> Set[str]:
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
