"""Kaldi data-dir operations that make new dirs: combine, copy with new ids,
subset (--utt-list, --spk-list, --per-spk, --first, --shortest) and utt2dur.

The semantics follow Kaldi's utils/combine_data.sh, copy_data_dir.sh,
subset_data_dir.sh and data/get_utt2dur.sh; split and list subsets live in
:mod:`pyutils.data.datadir` (re-exported here).
"""
from __future__ import annotations

import logging
import os
from typing import Dict, List, Optional, Sequence

from pyutils.data.datadir import (REC, SPECS, SPK, UTT, DataDir, DataDirError, _load_strict,
                                  _select, _write_dir, split_data, subset_data_dir,
                                  utt2spk_to_spk2utt)
from pyutils.utils.fileio import write_lines

logger = logging.getLogger(__name__)

__all__ = ["combine_data", "copy_data_dir", "subset_first", "subset_per_spk",
           "subset_shortest", "compute_utt2dur", "split_data", "subset_data_dir"]


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
    loaded = [_load_strict(src) for src in srcs]
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
    _write_dir(dst, lines)
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
    tables = _load_strict(src)
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
    _write_dir(dst, lines)
    logger.info("copy_data_dir: copied %s to %s (%d utterances)", src, dst, len(u2s))


def _subset(src: str, dst: str, keep, how: str) -> None:
    if os.path.abspath(src) == os.path.abspath(dst):
        raise DataDirError(dst, ["destination is the source directory"])
    tables = _load_strict(src)
    if not keep:
        raise DataDirError(src, [f"no utterances selected for {dst}"])
    _write_dir(dst, _select(tables, set(keep)))
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


def compute_utt2dur(path: str) -> Dict[str, float]:
    """Write ``path/utt2dur`` (seconds) and return it (utils/data/get_utt2dur.sh).

    From segments when present (end - start); else from each wav.scp entry:
    a file's header (soundfile.info, no decoding), a pipe by running it.
    """
    import soundfile as sf
    from pyutils.data.audio import read_wav_scp_entry
    data = DataDir(path)
    durations: Dict[str, float] = {}
    if data.segments is not None:
        durations = {u: seg.end - seg.start for u, seg in data.segments.items()}
    else:
        for utt, value in data.wav_scp.items():
            if value.endswith("|"):
                samples, rate = read_wav_scp_entry(value)
                durations[utt] = len(samples) / rate
            else:
                try:
                    durations[utt] = sf.info(value).duration
                except (RuntimeError, OSError) as err:
                    raise DataDirError(path, [f"wav.scp: utterance '{utt}': cannot read "
                                              f"{value}: {err}"]) from err
    write_lines(os.path.join(path, "utt2dur"),
                (f"{u} {durations[u]:.6g}" for u in sorted(durations)))
    logger.info("get_utt2dur: %s/utt2dur: %d utterances, %.1f h", path, len(durations),
                sum(durations.values()) / 3600)
    return durations
