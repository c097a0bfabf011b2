#!/usr/bin/env python3
"""Prepare Kaldi data dirs for speaker verification on LibriSpeech (OpenSLR 12).

Layout under the corpus root: ``LibriSpeech/<subset>/<spk>/<chapter>/<spk>-<chapter>-<n>.flac``.
The utterance id is the file stem (``103-1240-0000``), which starts with the
speaker id as Kaldi requires.  OUT/train combines --train-subsets (default
train-clean-100: 251 speakers); OUT/eval is --eval-subset (test-clean: 40
speakers, 2,620 utterances).  LibriSpeech has no official verification list, so
trials are drawn (pyutils.data.corpus.sampled_trials): for each utterance
--trials-per-utt same-speaker and as many other-speaker partners, with --seed.

A subset missing under the corpus root is downloaded from --url-base when
--download is true: resumable, checked against the SHA-256 in
conf/corpora/librispeech.conf, then unpacked; offline, the error says where
to put the archive.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pyutils.data.corpus import (CorpusError, audio_value, path_to_utt,  # noqa: E402
                                 sampled_trials, scan_files, write_data_dir)
from pyutils.data.download import DownloadError, extract, fetch  # noqa: E402

logger = logging.getLogger("prepare_librispeech")


def subset_utts(root: str, subset: str):
    """{utt: (speaker, path)} of LibriSpeech/<subset>."""
    folder = os.path.join(root, "LibriSpeech", subset)
    utts = {}
    for rel in scan_files(folder, (".flac", ".wav")):
        parts = rel.split(os.sep)
        if len(parts) != 3:
            raise CorpusError(f"{folder}/{rel}: expected <spk>/<chapter>/<file>")
        utt = path_to_utt(parts[2])
        if not utt.startswith(parts[0] + "-"):
            raise CorpusError(f"{folder}/{rel}: file name does not start with '{parts[0]}-'")
        utts[utt] = (parts[0], audio_value(os.path.join(folder, rel)))
    if not utts:
        raise CorpusError(f"no .flac files under {folder}/<spk>/<chapter>/")
    return utts


def ensure_subset(root: str, subset: str, download: bool, url_base: str, checksums: dict):
    """Download and unpack <subset>.tar.gz into ``root`` unless it is there."""
    if os.path.isdir(os.path.join(root, "LibriSpeech", subset)):
        return
    if not download:
        raise CorpusError(f"LibriSpeech {subset} not found at {root}/LibriSpeech/{subset}: "
                          f"unpack it there (or give --corpus-root a copy), or let stage 0 "
                          f"fetch it with librispeech_download=true in "
                          f"conf/corpora/librispeech.conf (--download true when calling "
                          f"local/prepare_librispeech.py)")
    archive = fetch(f"{url_base.rstrip('/')}/{subset}.tar.gz",
                    os.path.join(root, f"{subset}.tar.gz"), checksums.get(subset, ""),
                    hint="unpack it yourself under --corpus-root (or SV_CORPUS_ROOT)", timeout=60)
    extract(archive, root)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus-root", default=os.environ.get("SV_CORPUS_ROOT", "."))
    parser.add_argument("--train-subsets", default="train-clean-100")
    parser.add_argument("--eval-subset", default="test-clean")
    parser.add_argument("--trials-per-utt", type=int, default=10)
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--download", default="false", choices=["true", "false"])
    parser.add_argument("--url-base", default="https://www.openslr.org/resources/12")
    parser.add_argument("--checksums", default="",
                        help="subset:sha256:HEX,... (conf/corpora/librispeech.conf)")
    parser.add_argument("out_dir")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    checksums = dict(item.split(":", 1) for item in args.checksums.split(",") if item)
    try:
        train = {}
        for subset in [s for s in args.train_subsets.split(",") if s] + [args.eval_subset]:
            ensure_subset(args.corpus_root, subset, args.download == "true", args.url_base,
                          checksums)
        for subset in [s for s in args.train_subsets.split(",") if s]:
            train.update(subset_utts(args.corpus_root, subset))
        evaluation = subset_utts(args.corpus_root, args.eval_subset)
        overlap = {s for s, _ in train.values()} & {s for s, _ in evaluation.values()}
        if overlap:
            raise CorpusError(f"speaker {sorted(overlap)[0]} is in training and in the trials")
        trials = sampled_trials(evaluation, args.trials_per_utt, args.seed)
        write_data_dir(os.path.join(args.out_dir, "train"), train)
        write_data_dir(os.path.join(args.out_dir, "eval"), evaluation, trials)
    except (CorpusError, DownloadError, OSError) as err:
        sys.exit(f"prepare_librispeech.py: {err}")
    logger.info("train: %d utterances of %d speakers; eval: %d utterances, %d trials",
                len(train), len({s for s, _ in train.values()}), len(evaluation), len(trials))


if __name__ == "__main__":
    main()
