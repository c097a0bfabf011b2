"""Kaldi data-dir operations that write new dirs: split, subset, combine, copy.

split_data (utils/split_data.sh), subset_data_dir (--utt-list/--spk-list)
and, from utils/subset_data_dir.sh, --first/--per-spk/--shortest;
combine_data (utils/combine_data.sh) and copy_data_dir (utils/copy_data_dir.sh
--utt-prefix/--spk-prefix).  utt2dur (utils/data/get_utt2dur.sh) reads audio:
:func:`pyutils.data.audio.compute_utt2dur`.
"""
from __future__ import annotations

import logging
import os
from typing import Dict, Iterable, List, Optional, Sequence, Set

from pyutils.data.datadir import DataDir
from pyutils.data.formats import (REC, SPECS, SPK, UTT, DataDirError, Row, load_tables,
                                  present_tables, utt2spk_to_spk2utt)
from pyutils.utils.fileio import write_lines

logger = logging.getLogger(__name__)


def select_lines(tables: Dict[str, List[Row]], keep: Set[str]) -> Dict[str, List[str]]:
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


def write_tables(path: str, lines: Dict[str, List[str]]) -> None:
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
    names = [name for name in present_tables(path) if name != "trials"]
    if "utt2spk" in names and _is_fresh(path, dirs, names):
        return dirs
    tables = load_tables(path)
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
        write_tables(directory, select_lines(tables, keep))
    return dirs


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
    tables = load_tables(src)
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
    write_tables(dst, select_lines(tables, keep))
    logger.info("subset_data_dir: reducing #utt from %d to %d", len(utt2spk), len(keep))




def combine_data(dst: str, srcs: Sequence[str], skip_fix: bool = False) -> None:
    """Write to ``dst`` the union of data dirs ``srcs`` (utils/combine_data.sh).

    A table is combined only when every source has it (otherwise it is
    dropped with a warning, as Kaldi does); rows are C-sorted, spk2utt is
    regenerated.  An utterance in two sources is an error naming both, since
    the copies would differ (rename with copy_data_dir --utt-prefix); trials
    are concatenated where all sources have them.
    """
    if not srcs:
        raise DataDirError(dst, ["no source data dirs"])
    if any(os.path.abspath(s) == os.path.abspath(dst) for s in srcs):
        raise DataDirError(dst, ["destination is one of the sources"])
    loaded = [load_tables(src) for src in srcs]
    names = set.intersection(*(set(t) for t in loaded))
    for src, tables in zip(srcs, loaded):
        for name in sorted(set(tables) - names):
            logger.warning("combine_data: %s/%s is not in every source; not combined", src, name)
    owner: Dict[str, str] = {}
    for src, tables in zip(srcs, loaded):
        for row in tables["utt2spk"]:
            if row.key in owner:
                raise DataDirError(dst, [f"utterance '{row.key}' is in {owner[row.key]} and "
                                         f"{src}; give the copies distinct ids "
                                         f"(utils/copy_data_dir.sh --utt-prefix)"])
            owner[row.key] = src
    lines: Dict[str, List[str]] = {}
    for name in names - {"spk2utt"}:
        rows = [row for tables in loaded for row in tables[name]]
        if name == "trials":
            lines[name] = [row.line for row in rows]
            continue
        seen: Dict[str, str] = {}
        for row in rows:
            if row.key in seen and seen[row.key] != row.line and SPECS[name].index != UTT:
                raise DataDirError(dst, [f"{name}: key '{row.key}' differs between sources"])
            seen[row.key] = row.line
        lines[name] = [seen[key] for key in sorted(seen)]
    u2s = [line.split() for line in lines["utt2spk"]]
    spk2utt = utt2spk_to_spk2utt((u, s) for u, s in u2s)
    lines["spk2utt"] = [f"{s} {' '.join(spk2utt[s])}" for s in sorted(spk2utt)]
    write_tables(dst, lines)
    logger.info("combine_data: %d utterances of %d speakers from %d dirs into %s",
                len(u2s), len(spk2utt), len(srcs), dst)


def copy_data_dir(src: str, dst: str, utt_prefix: str = "", spk_prefix: str = "",
                  utt_suffix: str = "", spk_suffix: str = "") -> None:
    """Copy ``src`` to ``dst`` renaming utterances and speakers (utils/copy_data_dir.sh).

    Utterance ids become ``utt_prefix + id + utt_suffix`` in every utterance
    table (and in wav.scp when there are no segments; recordings keep their
    ids otherwise, as in Kaldi), speaker ids likewise in utt2spk and the
    speaker tables; trials are renamed on both sides.  As augmentation needs:
    ``--utt-suffix -reverb`` gives copies that combine with the clean set.
    """
    if os.path.abspath(src) == os.path.abspath(dst):
        raise DataDirError(dst, ["destination is the source directory"])
    tables = load_tables(src)
    utt = lambda u: f"{utt_prefix}{u}{utt_suffix}"  # noqa: E731
    spk = lambda s: f"{spk_prefix}{s}{spk_suffix}"  # noqa: E731
    segmented = "segments" in tables
    lines: Dict[str, List[str]] = {}
    for name, rows in tables.items():
        index = SPECS[name].index
        if name == "spk2utt":
            continue
        if name == "trials":
            lines[name] = [" ".join([utt(r.fields[0]), utt(r.fields[1])] + r.fields[2:])
                           for r in rows]
        elif name == "utt2spk":
            lines[name] = [f"{utt(r.key)} {spk(r.fields[1])}" for r in rows]
        elif index == UTT or (index == REC and not segmented):
            lines[name] = [utt(r.key) + r.line.strip()[len(r.key):] for r in rows]
        elif index == SPK:
            lines[name] = [spk(r.key) + r.line.strip()[len(r.key):] for r in rows]
        else:
            lines[name] = [r.line for r in rows]
    for name in lines:
        if name != "trials":
            lines[name].sort(key=lambda line: line.split(None, 1)[0])
    u2s = [line.split() for line in lines["utt2spk"]]
    spk2utt = utt2spk_to_spk2utt((u, s) for u, s in u2s)
    lines["spk2utt"] = [f"{s} {' '.join(spk2utt[s])}" for s in sorted(spk2utt)]
    write_tables(dst, lines)
    logger.info("copy_data_dir: copied %s to %s (%d utterances)", src, dst, len(u2s))


def _subset(src: str, dst: str, keep, how: str) -> None:
    if os.path.abspath(src) == os.path.abspath(dst):
        raise DataDirError(dst, ["destination is the source directory"])
    tables = load_tables(src)
    if not keep:
        raise DataDirError(src, [f"no utterances selected for {dst}"])
    write_tables(dst, select_lines(tables, set(keep)))
    logger.info("subset_data_dir (%s): reducing #utt from %d to %d", how,
                len(tables["utt2spk"]), len(keep))


def subset_first(src: str, dst: str, n: int) -> None:
    """The first ``n`` utterances of utt2spk (subset_data_dir.sh --first)."""
    utts = DataDir(src).utts
    if n > len(utts):
        raise DataDirError(src, [f"cannot take the first {n} of {len(utts)} utterances"])
    _subset(src, dst, utts[:n], f"first {n}")


def subset_per_spk(src: str, dst: str, n: int) -> None:
    """The first ``n`` utterances of each speaker in spk2utt order (--per-spk);
    speakers with fewer keep them all."""
    spk2utt = DataDir(src).spk2utt
    _subset(src, dst, [u for utts in spk2utt.values() for u in utts[:n]], f"{n} per speaker")


def subset_shortest(src: str, dst: str, n: int) -> None:
    """The ``n`` shortest utterances (--shortest), by utt2num_frames, else utt2dur;
    ties broken by utterance id."""
    data = DataDir(src)
    lengths: Optional[Dict[str, float]] = data.utt2num_frames or data.utt2dur
    if lengths is None:
        raise DataDirError(src, ["--shortest needs utt2num_frames or utt2dur "
                                 "(utils/data/get_utt2dur.sh makes utt2dur)"])
    missing = [u for u in data.utts if u not in lengths]
    if missing:
        raise DataDirError(src, [f"no length for utterance '{missing[0]}' "
                                 f"(utils/fix_data_dir.sh fixes this)"])
    if n > len(data.utts):
        raise DataDirError(src, [f"cannot take the {n} shortest of {len(data.utts)} utterances"])
    chosen = sorted(data.utts, key=lambda u: (lengths[u], u))[:n]
    _subset(src, dst, chosen, f"{n} shortest")
