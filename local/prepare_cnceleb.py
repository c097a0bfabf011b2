#!/usr/bin/env python3
"""Prepare Kaldi data dirs for CN-Celeb1/2 (Kaldi egs/cnceleb, WeSpeaker cnceleb/v2).

Layout expected under the corpus root (cn-celeb_v2.tar.gz, cn-celeb2_v2.tar.gz* unpacked):
  CN-Celeb_flac/data/idXXXXX/<genre>-<session>-<n>.flac   CN-Celeb1 audio
  CN-Celeb_flac/dev/dev.lst                               its 800 training speakers
  CN-Celeb_flac/eval/{enroll,test}/*.flac                 evaluation audio
  CN-Celeb_flac/eval/lists/{enroll.lst,trials.lst}        the evaluation protocol
  CN-Celeb2_flac/data/idXXXXX/*.flac                      CN-Celeb2 (all training)
Training utterance ids are ``<speaker>-<file stem>`` (make_cnceleb.sh), e.g.
id00000-singing-01-001.  Evaluation is by speaker models: each line of
enroll.lst (``id00800-enroll enroll/id00800-enroll.wav``) names a model and
its enrolment audio; the model becomes one utterance of OUT/eval with that id
(speaker id00800), several files of one model concatenated by a wav.scp pipe,
so its embedding is the speaker model.  trials.lst lines
``id00800-enroll test/id00800-singing-01-001.wav 1`` become
``id00800-enroll id00800-singing-01-001 target`` (0: nontarget).  The lists
name .wav files; the .flac release is found too.
"""
from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pyutils.data.corpus import (CorpusError, audio_value, c_sorted,  # noqa: E402
                                 write_data_dir)

AUDIO = (".flac", ".wav")
logger = logging.getLogger("prepare_cnceleb")


def audio_file(stem: str) -> str:
    """``stem`` + .flac or .wav, whichever exists (lists say .wav, the release is flac)."""
    stem = os.path.splitext(stem)[0]
    for ext in AUDIO:
        if os.path.isfile(stem + ext):
            return stem + ext
    raise CorpusError(f"no audio {stem}.flac or .wav")


def speaker_utts(data: str, speakers):
    """{<spk>-<stem>: (spk, path)} of data/<spk>/* for the given speakers."""
    utts = {}
    for spk in speakers:
        folder = os.path.join(data, spk)
        if not os.path.isdir(folder):
            raise CorpusError(f"speaker folder {folder} not found")
        for name in c_sorted(os.listdir(folder)):
            if name.lower().endswith(AUDIO):
                utts[f"{spk}-{os.path.splitext(name)[0]}"] = (spk, audio_value(
                    os.path.join(folder, name)))
    return utts


def read_list(path: str, fields: int):
    """Lines of a protocol list as field lists; errors name file and line."""
    rows = []
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            parts = line.split()
            if len(parts) != fields:
                raise CorpusError(f"{path}:{lineno}: expected {fields} fields, got "
                                  f"'{line.strip()}'")
            rows.append(parts)
    return rows


def model_speaker(model: str) -> str:
    return model[:-len("-enroll")] if model.endswith("-enroll") else model.split("-")[0]


def eval_set(cnc1: str, python: str):
    """(utts, trials) of the CN-Celeb1 evaluation with speaker-model enrolment."""
    lists = os.path.join(cnc1, "eval", "lists")
    enroll = {}
    for model, rel in read_list(os.path.join(lists, "enroll.lst"), 2):
        enroll.setdefault(model, []).append(audio_file(os.path.join(cnc1, "eval", rel)))
    utts = {}
    for model, files in enroll.items():
        value = (audio_value(files[0]) if len(files) == 1 else
                 f"{shlex.quote(python)} -m pyutils.cli.concat_audio "
                 + " ".join(shlex.quote(f) for f in files) + " |")
        utts[model] = (model_speaker(model), value)
    trials = []
    for lineno, (model, rel, label) in enumerate(read_list(os.path.join(lists, "trials.lst"), 3), 1):
        if model not in enroll:
            raise CorpusError(f"{lists}/trials.lst:{lineno}: model '{model}' not in enroll.lst")
        if label not in ("0", "1"):
            raise CorpusError(f"{lists}/trials.lst:{lineno}: label '{label}' is not 0 or 1")
        utt = os.path.splitext(os.path.basename(rel))[0]
        if utt not in utts:
            utts[utt] = (utt.split("-")[0], audio_value(audio_file(os.path.join(cnc1, "eval", rel))))
        trials.append(f"{model} {utt} {'target' if label == '1' else 'nontarget'}")
    return utts, trials


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus-root", default=os.environ.get("SV_CORPUS_ROOT", "."))
    parser.add_argument("--cnceleb1-dir", default="", help="default CORPUS_ROOT/CN-Celeb_flac")
    parser.add_argument("--cnceleb2-dir", default="", help="default CORPUS_ROOT/CN-Celeb2_flac")
    parser.add_argument("--train-sets", default="cnceleb1_dev,cnceleb2",
                        help="comma list of cnceleb1_dev, cnceleb2")
    parser.add_argument("--python", default="python3", help="interpreter of wav.scp pipes")
    parser.add_argument("out_dir")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    cnc1 = args.cnceleb1_dir or os.path.join(args.corpus_root, "CN-Celeb_flac")
    cnc2 = args.cnceleb2_dir or os.path.join(args.corpus_root, "CN-Celeb2_flac")
    sets = [s for s in args.train_sets.split(",") if s]
    try:
        if not os.path.isdir(os.path.join(cnc1, "eval", "lists")):
            raise CorpusError(f"CN-Celeb1 not found: no folder {cnc1}/eval/lists (unpack "
                              f"cn-celeb_v2.tar.gz under the corpus root, or set cnceleb1_dir)")
        if set(sets) - {"cnceleb1_dev", "cnceleb2"} or not sets:
            raise CorpusError(f"--train-sets {args.train_sets}: use cnceleb1_dev and/or cnceleb2")
        evaluation, trials = eval_set(cnc1, args.python)
        train = {}
        if "cnceleb1_dev" in sets:
            dev = [row[0] for row in read_list(os.path.join(cnc1, "dev", "dev.lst"), 1)]
            train.update(speaker_utts(os.path.join(cnc1, "data"), dev))
        if "cnceleb2" in sets:
            data2 = os.path.join(cnc2, "data")
            if not os.path.isdir(data2):
                raise CorpusError(f"CN-Celeb2 not found: no folder {data2} (or drop cnceleb2 "
                                  f"from the training sets)")
            train.update(speaker_utts(data2, c_sorted(
                s for s in os.listdir(data2) if os.path.isdir(os.path.join(data2, s)))))
        overlap = {s for s, _ in train.values()} & {s for s, _ in evaluation.values()}
        if overlap:
            raise CorpusError(f"speaker {sorted(overlap)[0]} is in training and in the trials")
        write_data_dir(os.path.join(args.out_dir, "train"), train)
        write_data_dir(os.path.join(args.out_dir, "eval"), evaluation, trials)
    except (CorpusError, OSError) as err:
        sys.exit(f"prepare_cnceleb.py: {err}")
    logger.info("train (%s): %d utterances of %d speakers; eval: %d utterances "
                "(models + tests), %d trials", "+".join(sets), len(train),
                len({s for s, _ in train.values()}), len(evaluation), len(trials))


if __name__ == "__main__":
    main()
