#!/usr/bin/env python3
"""Prepare Kaldi data dirs for any folder-per-speaker corpus.

    local/prepare_folder.py --train-dir DIR --eval-dir DIR OUT

Each of DIR holds ``<speaker>/.../<file>.<ext>``, any format libsndfile reads
(wav, flac, ogg/opus, mp3, ...; --ext narrows it) (the first folder level
names the speaker); utterance ids are ``<speaker>-<relative path, '/' -> '-'>``
(pyutils.cli.folder_to_data_dir).  OUT/eval gets every unordered pair of its
utterances as trials when it has at most --max-all-pairs utterances, else
--trials-per-utt drawn partners per utterance (as for LibriSpeech).
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pyutils.data.corpus import CorpusError, sampled_trials  # noqa: E402
from pyutils.utils.fileio import write_lines  # noqa: E402

logger = logging.getLogger("prepare_folder")


def make_dir(audio_root: str, out: str, trials: bool, ext: str) -> None:
    """Run pyutils.cli.folder_to_data_dir; its error reaches the terminal."""
    if not os.path.isdir(audio_root):
        raise CorpusError(f"no folder {audio_root} (set folder_train_dir / folder_eval_dir "
                          f"in conf/corpora/folder.conf)")
    shutil.rmtree(out, ignore_errors=True)  # no table of an older preparation survives
    cmd = [sys.executable, "-m", "pyutils.cli.folder_to_data_dir"] + (["--ext", ext] if ext else [])
    if trials:
        cmd.append("--trials")
    result = subprocess.run(cmd + [audio_root, out])
    if result.returncode:
        raise CorpusError(f"folder_to_data_dir failed on {audio_root}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus-root", default="", help="relative dirs are under it")
    parser.add_argument("--train-dir", required=True)
    parser.add_argument("--eval-dir", required=True)
    parser.add_argument("--ext", default="", help="e.g. wav,flac (default: every audio format)")
    parser.add_argument("--max-all-pairs", type=int, default=3000)
    parser.add_argument("--trials-per-utt", type=int, default=10)
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("out_dir")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    where = lambda d: d if os.path.isabs(d) or not args.corpus_root else os.path.join(  # noqa: E731
        args.corpus_root, d)
    try:
        make_dir(where(args.train_dir), os.path.join(args.out_dir, "train"), False, args.ext)
        eval_dir = os.path.join(args.out_dir, "eval")
        make_dir(where(args.eval_dir), eval_dir, False, args.ext)
        with open(os.path.join(eval_dir, "utt2spk"), encoding="utf-8") as handle:
            utts = {u: (s, "") for u, s in (line.split() for line in handle)}
        if len(utts) <= args.max_all_pairs:
            ids = sorted(utts)
            trials = [f"{a} {b} {'target' if utts[a][0] == utts[b][0] else 'nontarget'}"
                      for i, a in enumerate(ids) for b in ids[i + 1:]]
        else:
            trials = sampled_trials(utts, args.trials_per_utt, args.seed)
        write_lines(os.path.join(eval_dir, "trials"), trials)
    except (CorpusError, OSError) as err:
        sys.exit(f"prepare_folder.py: {err}")
    logger.info("eval: %d utterances, %d trials", len(utts), len(trials))


if __name__ == "__main__":
    main()
