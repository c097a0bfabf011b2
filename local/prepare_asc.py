#!/usr/bin/env python3
"""Prepare Kaldi data dirs for the Arabic Speech Commands corpus, protocol asc-v1.

Protocol asc-v1 (fixed; see README):
  * speakers 00000001-00000018 train, 00000019-00000030 evaluate;
  * keyword folders sorted in C order and cut into 4 consecutive groups of 10;
  * one utterance = one speaker's clips of one repetition over one group,
    concatenated in keyword order, id ``<speaker>-r<rep>-g<group>``;
  * trials: every unordered pair of evaluation utterances, first id < second.

Clips may be .flac (the shared subset, reps 01-05) or .wav (the public
original, reps 01-10).  An utterance's audio is a wav.scp pipe that
concatenates its clips (``python3 -m pyutils.cli.concat_audio ... |``), so no
audio is copied.  Writes <out>/train and <out>/eval, and with --calib-speakers
<out>/calib: speakers held out of training, whose trials calibrate the scores.
"""
from __future__ import annotations

import argparse
import itertools
import logging
import os
import re
import shlex
import shutil
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pyutils.data.download import DownloadError, download_and_extract  # noqa: E402
from pyutils.utils.fileio import write_lines  # noqa: E402

CLIP_RE = re.compile(r"^(\d{8})_NO_(\d{2})\.(wav|flac)$")
NUM_GROUPS = 4
TRAIN_SPEAKERS = [f"{i:08d}" for i in range(1, 19)]
EVAL_SPEAKERS = [f"{i:08d}" for i in range(19, 31)]
logger = logging.getLogger("prepare_asc")


def find_corpus(corpus_root: str, url: str | None) -> str:
    """Return <corpus_root>/asc/dataset, downloading the corpus if it is missing."""
    asc = os.path.join(corpus_root, "asc")
    dataset = os.path.join(asc, "dataset")
    if not os.path.isdir(dataset):
        if not url:
            raise DownloadError(f"ASC corpus not found at {dataset}; set --corpus-root "
                                f"(or SV_CORPUS_ROOT) to the folder holding asc/")
        logger.info("ASC not found at %s; fetching %s", dataset, url)
        download_and_extract(url, asc, hint="--corpus-root (or SV_CORPUS_ROOT)")
        if not os.path.isdir(dataset):
            raise DownloadError(f"the archive from {url} has no dataset/ folder")
    return dataset


def scan_clips(dataset: str):
    """Map (speaker, rep, keyword) -> clip path; error on a clip in both formats."""
    keywords = sorted(os.listdir(dataset), key=lambda k: k.encode("utf-8"))
    keywords = [k for k in keywords if os.path.isdir(os.path.join(dataset, k))]
    clips = {}
    for keyword in keywords:
        for name in os.listdir(os.path.join(dataset, keyword)):
            match = CLIP_RE.match(name)
            if not match:
                logger.warning("skipping unexpected file %s/%s", keyword, name)
                continue
            key = (match.group(1), match.group(2), keyword)
            if key in clips:
                raise ValueError(f"{dataset}/{keyword}: clip {name} exists as wav and flac")
            clips[key] = os.path.join(dataset, keyword, name)
    return keywords, clips


def keyword_groups(keywords):
    """Cut the C-sorted keyword list into NUM_GROUPS consecutive groups."""
    if len(keywords) % NUM_GROUPS:
        raise ValueError(f"{len(keywords)} keyword folders cannot be cut into "
                         f"{NUM_GROUPS} equal groups")
    size = len(keywords) // NUM_GROUPS
    return [keywords[i * size:(i + 1) * size] for i in range(NUM_GROUPS)]


def build_utterances(speakers, reps, groups, clips):
    """Return {utt_id: [clip paths]} for the given speakers; counts missing clips."""
    utts, missing = {}, 0
    for spk, rep, (g, group) in itertools.product(speakers, reps, enumerate(groups, 1)):
        paths = [clips[(spk, rep, kw)] for kw in group if (spk, rep, kw) in clips]
        missing += len(group) - len(paths)
        if paths:
            utts[f"{spk}-r{rep}-g{g}"] = paths
    if missing:
        logger.warning("%d clips missing: those utterances are shorter", missing)
    return utts


def write_data_dir(final_dir, utts, python, with_trials):
    """Write wav.scp (concatenation pipes), utt2spk, spk2utt and optionally trials.

    The dir is built beside its final place and swapped in whole, so files
    derived from an older preparation (features, splits) never survive.
    """
    out_dir = final_dir.rstrip("/") + ".tmp"
    shutil.rmtree(out_dir, ignore_errors=True)
    os.makedirs(out_dir)
    ids = sorted(utts, key=lambda u: u.encode("utf-8"))
    write_lines(os.path.join(out_dir, "wav.scp"),
                (f"{u} {shlex.quote(python)} -m pyutils.cli.concat_audio "
                 + " ".join(shlex.quote(p) for p in utts[u]) + " |" for u in ids))
    write_lines(os.path.join(out_dir, "utt2spk"), (f"{u} {u.split('-')[0]}" for u in ids))
    spk2utt = defaultdict(list)
    for u in ids:
        spk2utt[u.split("-")[0]].append(u)
    write_lines(os.path.join(out_dir, "spk2utt"),
                (f"{s} {' '.join(spk2utt[s])}" for s in sorted(spk2utt)))
    if with_trials:
        write_lines(os.path.join(out_dir, "trials"),
                    (f"{a} {b} {'target' if a.split('-')[0] == b.split('-')[0] else 'nontarget'}"
                     for a, b in itertools.combinations(ids, 2)))
    shutil.rmtree(final_dir, ignore_errors=True)
    os.replace(out_dir, final_dir)


def parse_speakers(spec: str, default):
    """'1-4,19' -> ['00000001', ..., '00000004', '00000019']; empty -> default."""
    if not spec:
        return default
    out = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        if not lo.isdigit() or not (hi or lo).isdigit() or int(hi or lo) < int(lo):
            raise ValueError(f"speaker range '{part}' of '{spec}': expected N or N-M "
                             f"with N <= M, e.g. 1-4,19")
        out += [f"{i:08d}" for i in range(int(lo), int(hi or lo) + 1)]
    return out


def split_speakers(train_spec: str, eval_spec: str, calib_spec: str = ""):
    """The training, evaluation and calibration speakers (none unless asked).

    An overlap is an error: it would score or calibrate on speakers the
    network was trained on (calibration needs held-out speakers, or its
    log-likelihood ratios come out over-confident).
    """
    sets = {"train": parse_speakers(train_spec, TRAIN_SPEAKERS),
            "eval": parse_speakers(eval_spec, EVAL_SPEAKERS),
            "calib": parse_speakers(calib_spec, [])}
    names = list(sets)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            both = sorted(set(sets[first]) & set(sets[second]))
            if both:
                raise ValueError(f"--{first}-speakers and --{second}-speakers overlap: "
                                 f"{len(both)} speaker(s) in both, e.g. {int(both[0])}")
    return sets["train"], sets["eval"], sets["calib"]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus-root", default=os.environ.get("SV_CORPUS_ROOT"),
                        help="folder holding asc/ (default $SV_CORPUS_ROOT or "
                             "../shared/corpora beside the checkout)")
    parser.add_argument("--url", default="", help="archive to fetch when the corpus is missing")
    parser.add_argument("--reps", default="", help="comma list of repetitions (default: all found)")
    parser.add_argument("--train-speakers", default="", help="subset, e.g. 1-4 (default 1-18)")
    parser.add_argument("--eval-speakers", default="", help="subset, e.g. 19-22 (default 19-30)")
    parser.add_argument("--calib-speakers", default="",
                        help="held-out speakers for calibration, e.g. 16-18 (default none); "
                             "writes OUT/calib")
    parser.add_argument("--python", default="python3", help="interpreter used by wav.scp pipes")
    parser.add_argument("out_dir", help="writes OUT/train and OUT/eval (and OUT/calib)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    corpus_root = args.corpus_root or os.path.join(os.path.dirname(root), "shared", "corpora")
    try:
        train_speakers, eval_speakers, calib_speakers = split_speakers(
            args.train_speakers, args.eval_speakers, args.calib_speakers)
        dataset = find_corpus(os.path.abspath(corpus_root), args.url)
        keywords, clips = scan_clips(dataset)
        groups = keyword_groups(keywords)
    except (DownloadError, ValueError) as err:
        sys.exit(f"prepare_asc.py: {err}")
    reps = args.reps.split(",") if args.reps else sorted({rep for _, rep, _ in clips})
    reps = [f"{int(r):02d}" for r in reps]
    sets = [("train", train_speakers), ("eval", eval_speakers)]
    if calib_speakers:
        sets.append(("calib", calib_speakers))
    for name, speakers in sets:
        utts = build_utterances(speakers, reps, groups, clips)
        if not utts:
            sys.exit(f"prepare_asc.py: no clips found for the {name} speakers in {dataset}")
        write_data_dir(os.path.join(args.out_dir, name), utts, args.python, name == "eval")
        logger.info("%s: %d speakers, %d utterances", name,
                    len({u.split('-')[0] for u in utts}), len(utts))


if __name__ == "__main__":
    main()
