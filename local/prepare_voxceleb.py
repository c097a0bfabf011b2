#!/usr/bin/env python3
"""Prepare Kaldi data dirs for VoxCeleb1/2 (egs/voxceleb/v2, WeSpeaker voxceleb/v2).

Layout expected under the corpus root (the archives unpacked as published):
  voxceleb1/wav/idXXXXX/<video>/<n>.wav        vox1_dev_wav.zip + vox1_test_wav.zip
  voxceleb2/dev/aac/idXXXXX/<video>/<n>.m4a    vox2_dev_aac.zip (decoded by an ffmpeg
                                               pipe in wav.scp, as make_voxceleb2.pl), or
  voxceleb2/dev/wav/idXXXXX/<video>/<n>.wav    the same converted to wav beforehand.
Utterance ids follow Kaldi's make_voxceleb1_v2.pl / make_voxceleb2.pl:
``<speaker>-<video>-<n>``, e.g. id10270-x6uYqmx31kE-00001; speaker ``id10270``.

Writes OUT/train (the --train-sets combined: vox2_dev, vox1_dev) and OUT/eval
(the utterances the trial list names, with ``trials``).  Trial lists, the
official cleaned ones: O = veri_test2.txt (Vox1 test speakers), E =
list_test_all2.txt and H = list_test_hard2.txt, both over all of VoxCeleb1, so
E and H cannot train on vox1_dev.  A list is read from voxceleb1/ or
voxceleb1/meta/, else fetched from --lists-url into OUT/local/.  Each line is
``<1|0> <spk>/<video>/<n>.wav <spk>/<video>/<n>.wav`` (1: same speaker), e.g.
``1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav``, the first line
of veri_test2.txt; it becomes ``id10270-x6uYqmx31kE-00001
id10270-8jEAjG6SegY-00008 target`` (0: nontarget).

Line-count check: the published lists have the counts of OFFICIAL_COUNTS (also
in PaddleSpeech's and 3D-Speaker's VoxCeleb READMEs).  A list of another count
is a truncated or edited copy, or another version (veri_test.txt has 37,720
lines): it is converted, with a warning that its EERs are not comparable with
published Vox1-O/E/H results.  tests/fixtures/voxceleb holds small lists in the
published format (tests/test_corpora.py).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pyutils.data.corpus import (CorpusError, audio_value, convert_vox_trials,  # noqa: E402
                                 path_to_utt, scan_files, write_data_dir)
from pyutils.data.download import DownloadError, fetch  # noqa: E402

LISTS = {"O": "veri_test2.txt", "E": "list_test_all2.txt", "H": "list_test_hard2.txt"}
# (lines = trials, target trials) of the published cleaned lists
OFFICIAL_COUNTS = {"veri_test2.txt": (37611, 18802), "list_test_all2.txt": (579818, 289921),
                   "list_test_hard2.txt": (550894, 275488)}
M4A_COMMAND = "ffmpeg -v 8 -i {} -f wav -acodec pcm_s16le -"
logger = logging.getLogger("prepare_voxceleb")


def scan_vox1(vox1: str):
    """{utt: (speaker, wav)} of voxceleb1/wav."""
    wav = os.path.join(vox1, "wav")
    if not os.path.isdir(wav):
        raise CorpusError(f"VoxCeleb1 not found: no folder {wav} (unzip vox1_dev_wav.zip "
                          f"and vox1_test_wav.zip there, or set voxceleb1_dir)")
    return {path_to_utt(rel): (rel.split(os.sep)[0], audio_value(os.path.join(wav, rel)))
            for rel in scan_files(wav, (".wav",))}


def scan_vox2(vox2: str):
    """{utt: (speaker, wav.scp value)} of voxceleb2/dev: wav files, else m4a via ffmpeg."""
    for sub, ext, command in (("wav", ".wav", ""), ("aac", ".m4a", M4A_COMMAND)):
        root = os.path.join(vox2, "dev", sub)
        if os.path.isdir(root):
            return {path_to_utt(rel): (rel.split(os.sep)[0],
                                       audio_value(os.path.join(root, rel), command))
                    for rel in scan_files(root, (ext,))}
    raise CorpusError(f"VoxCeleb2 dev not found: no folder {vox2}/dev/aac or {vox2}/dev/wav "
                      f"(unzip vox2_dev_aac.zip there, or set voxceleb2_dir)")


def find_list(name: str, vox1: str, out: str, url: str, checksum: str) -> str:
    """The trial list ``name``: in voxceleb1/ or its meta/, else fetched."""
    for candidate in (os.path.join(vox1, name), os.path.join(vox1, "meta", name)):
        if os.path.isfile(candidate):
            return candidate
    if not url:
        raise CorpusError(f"trial list {name} not found in {vox1} or {vox1}/meta")
    return fetch(f"{url.rstrip('/')}/{name}", os.path.join(out, "local", name), checksum,
                 hint=f"put it at {vox1}/meta/{name}")


def check_official_count(path: str, trials, official=OFFICIAL_COUNTS) -> str:
    """A warning ('' if none) when the list at ``path`` has not the trial and
    target counts of the published list of its name."""
    name = os.path.basename(path)
    if name not in official:
        return ""
    got = (len(trials), sum(label == "target" for _, _, label in trials))
    if got == official[name]:
        return ""
    return (f"{path}: {got[0]:,} trials ({got[1]:,} target), the published {name} has "
            f"{official[name][0]:,} ({official[name][1]:,} target): a truncated or edited "
            f"copy, or another version; its EERs are not comparable with published results")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus-root", default=os.environ.get("SV_CORPUS_ROOT", "."))
    parser.add_argument("--voxceleb1-dir", default="", help="default CORPUS_ROOT/voxceleb1")
    parser.add_argument("--voxceleb2-dir", default="", help="default CORPUS_ROOT/voxceleb2")
    parser.add_argument("--train-sets", default="vox2_dev",
                        help="comma list of vox2_dev, vox1_dev (Kaldi v2 uses both)")
    parser.add_argument("--trials", default="O", choices=sorted(LISTS),
                        help="O (veri_test2), E (list_test_all2) or H (list_test_hard2)")
    parser.add_argument("--lists-url", default="", help="where the trial lists are published")
    parser.add_argument("--list-checksum", default="", help="md5:/sha256: of the list")
    parser.add_argument("out_dir")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    vox1 = args.voxceleb1_dir or os.path.join(args.corpus_root, "voxceleb1")
    vox2 = args.voxceleb2_dir or os.path.join(args.corpus_root, "voxceleb2")
    sets = [s for s in args.train_sets.split(",") if s]
    try:
        unknown = set(sets) - {"vox1_dev", "vox2_dev"}
        if unknown or not sets:
            raise CorpusError(f"--train-sets: unknown set(s) {sorted(unknown)}; "
                              f"use vox2_dev and/or vox1_dev")
        if "vox1_dev" in sets and args.trials != "O":
            raise CorpusError(f"Vox1-{args.trials} scores all of VoxCeleb1: vox1_dev "
                              f"cannot be in --train-sets")
        if not os.path.isdir(os.path.join(vox1, "wav")):
            scan_vox1(vox1)  # raises the missing-corpus error
        list_path = find_list(LISTS[args.trials], vox1, args.out_dir, args.lists_url,
                              args.list_checksum)
        trials = convert_vox_trials(list_path)
        warning = check_official_count(list_path, trials)
        if warning:
            logger.warning("%s", warning)
        vox1_utts = scan_vox1(vox1)
        wanted = {u for a, b, _ in trials for u in (a, b)}
        missing = sorted(wanted - set(vox1_utts))
        if missing:
            raise CorpusError(f"{list_path}: {len(missing)} utterance(s) it names are not "
                              f"under {vox1}/wav, e.g. {missing[0]}")
        eval_spks = {vox1_utts[u][0] for u in wanted}
        train = {}
        if "vox2_dev" in sets:
            train.update(scan_vox2(vox2))
        if "vox1_dev" in sets:
            train.update({u: v for u, v in vox1_utts.items() if v[0] not in eval_spks})
        overlap = {s for s, _ in train.values()} & eval_spks
        if overlap:
            raise CorpusError(f"speaker {sorted(overlap)[0]} is in training and in the trials")
        write_data_dir(os.path.join(args.out_dir, "train"), train)
        write_data_dir(os.path.join(args.out_dir, "eval"), {u: vox1_utts[u] for u in wanted},
                       [f"{a} {b} {label}" for a, b, label in trials])
    except (CorpusError, DownloadError, OSError) as err:
        sys.exit(f"prepare_voxceleb.py: {err}")
    logger.info("train (%s): %d utterances of %d speakers; eval: %d utterances, "
                "%d trials (Vox1-%s)", "+".join(sets), len(train),
                len({s for s, _ in train.values()}), len(wanted), len(trials), args.trials)


if __name__ == "__main__":
    main()
