"""What the corpus preparations (local/prepare_<corpus>.py) share.

A preparation scans a corpus layout into ``{utt: (speaker, wav.scp value)}``,
writes Kaldi data dirs with :func:`write_data_dir` (the whole dir is built
beside its place and swapped in, so no table of an older preparation
survives), and converts the corpus's trial list to Kaldi's
``<enrol> <test> target|nontarget`` format.
"""
from __future__ import annotations

import os
import random
import shlex
import shutil
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from pyutils.utils.fileio import write_lines

Utts = Dict[str, Tuple[str, str]]   # utt -> (speaker, wav.scp value)


class CorpusError(ValueError):
    """A corpus is missing or not laid out as expected (names file or folder)."""


def c_sorted(items: Iterable[str]) -> List[str]:
    """C (byte) order, the order of ``LC_ALL=C sort`` that Kaldi tables use."""
    return sorted(items, key=lambda s: s.encode("utf-8"))


def scan_files(root: str, extensions: Sequence[str]) -> Iterator[str]:
    """Paths relative to ``root`` of files ending in one of ``extensions``, C-sorted."""
    found = []
    for dirpath, dirnames, files in os.walk(root, followlinks=True):
        dirnames.sort()
        for name in files:
            if name.lower().endswith(tuple(extensions)):
                found.append(os.path.relpath(os.path.join(dirpath, name), root))
    return iter(c_sorted(found))


def path_to_utt(rel: str) -> str:
    """``id10270/x6uYqmx31kE/00001.wav`` -> ``id10270-x6uYqmx31kE-00001``.

    The id scheme of Kaldi's make_voxceleb1_v2.pl / make_voxceleb2.pl
    (speaker-video-segment); any extension is dropped.  Whitespace is an
    error: Kaldi ids cannot hold it.
    """
    stem = os.path.splitext(rel)[0]
    utt = stem.replace(os.sep, "-").replace("/", "-")
    if any(c.isspace() for c in utt):
        raise CorpusError(f"{rel}: whitespace cannot be part of a Kaldi utterance id")
    return utt


def audio_value(path: str, command: str = "") -> str:
    """The wav.scp value of ``path``: the path, or ``command`` with ``{}`` replaced
    by the quoted path, as a pipe (e.g. ffmpeg decoding VoxCeleb2's m4a)."""
    if not command:
        if any(c.isspace() for c in path):
            return f"cat {shlex.quote(path)} |"  # a path with spaces: a pipe
        return path
    return command.replace("{}", shlex.quote(path)) + " |"


def write_data_dir(final_dir: str, utts: Utts, trials: Optional[Sequence[str]] = None) -> None:
    """Write wav.scp, utt2spk, spk2utt (and trials lines) as a new dir, swapped in whole."""
    if not utts:
        raise CorpusError(f"{final_dir}: no utterances to write")
    bad = [u for u, (s, _) in utts.items() if not u.startswith(s)]
    if bad:
        raise CorpusError(f"utterance '{bad[0]}' does not start with its speaker id "
                          f"'{utts[bad[0]][0]}' (Kaldi sorts utt2spk by both)")
    tmp = final_dir.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    ids = c_sorted(utts)
    write_lines(os.path.join(tmp, "wav.scp"), (f"{u} {utts[u][1]}" for u in ids))
    write_lines(os.path.join(tmp, "utt2spk"), (f"{u} {utts[u][0]}" for u in ids))
    spk2utt: Dict[str, List[str]] = {}
    for u in ids:
        spk2utt.setdefault(utts[u][0], []).append(u)
    write_lines(os.path.join(tmp, "spk2utt"),
                (f"{s} {' '.join(spk2utt[s])}" for s in c_sorted(spk2utt)))
    if trials:
        write_lines(os.path.join(tmp, "trials"), trials)
    shutil.rmtree(final_dir, ignore_errors=True)
    os.replace(tmp, final_dir)


def convert_vox_trials(path: str) -> List[Tuple[str, str, str]]:
    """VoxCeleb1 list (``1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav``)
    -> ``(utt1, utt2, 'target'|'nontarget')`` with Kaldi's ids; errors name file and line."""
    out = []
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            fields = line.split()
            if len(fields) != 3 or fields[0] not in ("0", "1"):
                raise CorpusError(f"{path}:{lineno}: expected '1|0 spk/video/n.wav "
                                  f"spk/video/n.wav', got '{line.strip()}'")
            label = "target" if fields[0] == "1" else "nontarget"
            out.append((path_to_utt(fields[1]), path_to_utt(fields[2]), label))
    return out


def sampled_trials(utts: Utts, per_utt: int, seed: int) -> List[str]:
    """Up to ``per_utt`` target and ``per_utt`` nontarget partners per utterance,
    drawn with ``seed``; pairs unordered (first id < second), C-sorted, unique.

    For corpora without an official verification list (LibriSpeech): all
    pairs of a 2,620-utterance test set would be 3.4 M trials.
    """
    rng = random.Random(seed)
    ids = c_sorted(utts)
    by_spk: Dict[str, List[str]] = {}
    for u in ids:
        by_spk.setdefault(utts[u][0], []).append(u)
    pairs = set()
    for u in ids:
        same = [v for v in by_spk[utts[u][0]] if v != u]
        partners = rng.sample(same, min(per_utt, len(same)))
        others = len(ids) - len(same) - 1
        wanted = min(per_utt, others)
        chosen: set = set()
        while len(chosen) < wanted:  # rejection: draw any id, keep other speakers'
            v = ids[rng.randrange(len(ids))]
            if utts[v][0] != utts[u][0]:
                chosen.add(v)
        for v in partners + sorted(chosen):
            pairs.add((u, v) if u < v else (v, u))
    return [f"{a} {b} {'target' if utts[a][0] == utts[b][0] else 'nontarget'}"
            for a, b in sorted(pairs)]
