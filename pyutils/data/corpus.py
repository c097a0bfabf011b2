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
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

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


def check_speaker_order(utts: Utts, ids: Optional[Sequence[str]] = None) -> None:
    """Kaldi's rule: utt2spk sorted by utterance is sorted by speaker too.

    Speaker ids that prefix their utterance ids guarantee it; speechocean762's
    own ids (speaker ``0001``, utterances ``00001nnnn``) keep it without a prefix.
    """
    ids = c_sorted(utts) if ids is None else ids
    for prev, utt in zip(ids, ids[1:]):
        if utts[utt][0].encode("utf-8") < utts[prev][0].encode("utf-8"):
            raise CorpusError(f"utterance '{utt}' of speaker '{utts[utt][0]}' sorts after "
                              f"'{prev}' of speaker '{utts[prev][0]}': utt2spk would not be "
                              f"sorted by speaker (make speaker ids prefixes of utterance ids)")


def write_data_dir(final_dir: str, utts: Utts, trials: Optional[Sequence[str]] = None) -> None:
    """Write wav.scp, utt2spk, spk2utt (and trials lines) as a new dir, swapped in whole."""
    if not utts:
        raise CorpusError(f"{final_dir}: no utterances to write")
    ids = c_sorted(utts)
    check_speaker_order(utts, ids)
    tmp = final_dir.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
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


def pair_trials(utts: Utts, keep: Optional[Callable[[str, str], bool]] = None) -> Iterator[str]:
    """Every unordered pair of utterances, first id < second in C order, as
    ``utt1 utt2 target|nontarget`` lines in C order of (utt1, utt2); with
    ``keep(spk1, spk2)`` only the pairs it accepts (a subgroup's trials)."""
    ids = c_sorted(utts)
    for i, first in enumerate(ids):
        spk1 = utts[first][0]
        for second in ids[i + 1:]:
            spk2 = utts[second][0]
            if keep is None or keep(spk1, spk2):
                yield f"{first} {second} {'target' if spk1 == spk2 else 'nontarget'}"


def spaced_speakers(speakers: Iterable[str], num: int) -> List[str]:
    """``num`` speakers spread evenly over the C-sorted list: the one at index
    ``floor((i + 0.5) * S / num)`` for i = 0..num-1 (no randomness to document)."""
    ordered = c_sorted(set(speakers))
    if not 0 < num < len(ordered):
        raise CorpusError(f"cannot hold out {num} of {len(ordered)} speakers "
                          f"(at least one must stay)")
    return [ordered[int((i + 0.5) * len(ordered) / num)] for i in range(num)]
