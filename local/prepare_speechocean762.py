#!/usr/bin/env python3
"""Prepare Kaldi data dirs for speechocean762 (OpenSLR 101), protocol so762-v1.

Protocol so762-v1 (fixed; see docs/corpora.md):
  * train = the 125 speakers of the corpus's ``train/`` lists (2,500
    utterances), eval = the 125 speakers of ``test/`` (2,500 utterances);
    utterance and speaker ids are the corpus's own (``000010011``, ``0001``);
  * trials: every unordered pair of eval utterances, first id < second in C
    order: 3,123,750 trials, 23,750 of them target;
  * subgroup trial lists beside them (``eval/trials_<group>``): the pairs whose
    two speakers are both adults (``spk2age`` >= 13), both children (< 13),
    both female or both male (``spk2gender``);
  * 15 training speakers are held out for calibration by run.sh stage 0
    (conf/corpora/speechocean762.conf), leaving 110 to train on.

Either layout works: the shared copy (``WAVE/SPEAKERnnnn/<utt>.ogg``, Ogg
Opus) or the original download (``.WAV``); a wav.scp line naming a file that
is missing is resolved to the same stem with the other extension, else it is
an error naming the file and line.  The corpus is looked for at
``<corpus-root>/speechocean762``; with --download true a missing corpus is
fetched from OpenSLR (resumable, checked against --checksum when given) and
unpacked there; offline, the error says where to put it.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from pyutils.data.corpus import (CorpusError, audio_value, c_sorted,  # noqa: E402
                                 check_speaker_order, pair_trials, write_data_dir)
from pyutils.data.download import DownloadError, extract, fetch  # noqa: E402
from pyutils.utils.fileio import TableError, read_key_value, write_lines  # noqa: E402

logger = logging.getLogger("prepare_speechocean762")
AUDIO_SUFFIXES = (".ogg", ".WAV", ".wav", ".flac")
CHILD_AGE = 13   # spk2age below this: a child (the corpus's children are 6-12)
SUBGROUPS = {
    "adult-adult": lambda info: info["age"] >= CHILD_AGE,
    "child-child": lambda info: info["age"] < CHILD_AGE,
    "female-female": lambda info: info["gender"] == "f",
    "male-male": lambda info: info["gender"] == "m",
}


def ensure_corpus(root: str, download: bool, url: str, checksum: str) -> str:
    """``<root>/speechocean762``, downloaded and unpacked first when asked."""
    corpus = os.path.join(root, "speechocean762")
    if os.path.isdir(os.path.join(corpus, "train")):
        return corpus
    if not download:
        raise CorpusError(f"speechocean762 not found at {corpus} (no train/ in it); point "
                          f"--corpus-root (or SV_CORPUS_ROOT) at the folder holding "
                          f"speechocean762/, or set speechocean762_download=true in "
                          f"conf/corpora/speechocean762.conf to fetch {url}")
    archive = fetch(url, os.path.join(root, "speechocean762.tar.gz"), checksum,
                    hint=f"unpack it yourself so that {corpus}/train exists", timeout=60)
    extract(archive, root)
    if not os.path.isdir(os.path.join(corpus, "train")):
        raise CorpusError(f"{archive} did not unpack to {corpus}/train")
    return corpus


def resolve_audio(corpus: str, rel: str, where: str) -> str:
    """The audio file a wav.scp path names, in either layout (.ogg or .WAV)."""
    path = os.path.join(corpus, rel)
    if os.path.isfile(path):
        return path
    stem = os.path.splitext(path)[0]
    for suffix in AUDIO_SUFFIXES:
        if os.path.isfile(stem + suffix):
            return stem + suffix
    raise CorpusError(f"{where}: no audio file {path} (nor with {'/'.join(AUDIO_SUFFIXES)})")


def read_split(corpus: str, split: str):
    """``({utt: (speaker, wav.scp value)}, {speaker: {age, gender}})`` of train/ or test/."""
    folder = os.path.join(corpus, split)
    try:
        wav = read_key_value(os.path.join(folder, "wav.scp"), single_value=False)
        utt2spk = read_key_value(os.path.join(folder, "utt2spk"))
        ages = read_key_value(os.path.join(folder, "spk2age"))
        genders = read_key_value(os.path.join(folder, "spk2gender"))
    except TableError as err:
        raise CorpusError(str(err)) from None
    missing = c_sorted(set(utt2spk) ^ set(wav))
    if missing:
        raise CorpusError(f"{folder}: utterance '{missing[0]}' is in only one of wav.scp and "
                          f"utt2spk ({len(missing)} such)")
    with open(os.path.join(folder, "wav.scp"), encoding="utf-8") as handle:
        lines = {line.split(None, 1)[0]: n for n, line in enumerate(handle, 1) if line.strip()}
    utts = {u: (utt2spk[u], audio_value(resolve_audio(corpus, wav[u], f"{folder}/wav.scp:"
                                                      f"{lines[u]}")))
            for u in c_sorted(wav)}
    speakers = {}
    for spk in c_sorted(set(utt2spk.values())):
        age, gender = ages.get(spk), genders.get(spk, "").lower()
        if age is None or not age.isdigit() or gender not in ("m", "f"):
            raise CorpusError(f"{folder}: speaker '{spk}' needs an age in spk2age and m|f in "
                              f"spk2gender (got {age!r}, {gender!r})")
        speakers[spk] = {"age": int(age), "gender": gender}
    check_speaker_order(utts)
    return utts, speakers


def write_speaker_info(out: str, speakers: dict) -> None:
    """spk2gender (a Kaldi table) and spk2age beside the data dir's tables."""
    order = c_sorted(speakers)
    write_lines(os.path.join(out, "spk2gender"), (f"{s} {speakers[s]['gender']}" for s in order))
    write_lines(os.path.join(out, "spk2age"), (f"{s} {speakers[s]['age']}" for s in order))


def write_subgroup_trials(out: str, utts: dict, speakers: dict) -> dict:
    """``trials_<group>`` of every subgroup; returns ``{group: (trials, targets)}``."""
    counts = {}
    for group, member in SUBGROUPS.items():
        subset = {u: v for u, v in utts.items() if member(speakers[v[0]])}
        lines = list(pair_trials(subset))
        write_lines(os.path.join(out, f"trials_{group}"), lines)
        counts[group] = (len(lines), sum(line.endswith(" target") for line in lines))
    return counts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--corpus-root", default=os.environ.get("SV_CORPUS_ROOT", "."),
                        help="folder holding speechocean762/")
    parser.add_argument("--download", default="false", choices=["true", "false"])
    parser.add_argument("--url", default="https://www.openslr.org/resources/101/"
                                         "speechocean762.tar.gz")
    parser.add_argument("--checksum", default="", help="md5:HEX or sha256:HEX of the archive")
    parser.add_argument("out_dir", help="writes OUT/train and OUT/eval (with trials)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        corpus = ensure_corpus(args.corpus_root, args.download == "true", args.url,
                               args.checksum)
        train, train_speakers = read_split(corpus, "train")
        evaluation, eval_speakers = read_split(corpus, "test")
        overlap = c_sorted(set(train_speakers) & set(eval_speakers))
        if overlap:
            raise CorpusError(f"speaker '{overlap[0]}' is in train/ and test/")
        write_data_dir(os.path.join(args.out_dir, "train"), train)
        eval_dir = os.path.join(args.out_dir, "eval")
        write_data_dir(eval_dir, evaluation, pair_trials(evaluation))
        write_speaker_info(os.path.join(args.out_dir, "train"), train_speakers)
        write_speaker_info(eval_dir, eval_speakers)
        counts = write_subgroup_trials(eval_dir, evaluation, eval_speakers)
    except (CorpusError, DownloadError, OSError) as err:
        sys.exit(f"prepare_speechocean762.py: {err}")
    n = len(evaluation)
    logger.info("train: %d utterances of %d speakers; eval: %d utterances of %d speakers, "
                "%d trials; subgroups: %s", len(train), len(train_speakers), n,
                len(eval_speakers), n * (n - 1) // 2,
                ", ".join(f"{g} {t} ({k} target)" for g, (t, k) in counts.items()))


if __name__ == "__main__":
    main()
