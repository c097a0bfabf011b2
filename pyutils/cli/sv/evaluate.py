"""Score a data dir with trials against a package, in one command.

    utils/folder_to_data_dir.sh --trials /path/to/eval_audio data/mine/eval
    sv eval -p exp/asc/xvector/package data/mine/eval exp/mine_eval

Reads the data dir's audio (``wav.scp``, pipes and ``segments`` included),
computes the recipe's features and embeddings (OUT/embeddings/xvector.{ark,scp}),
scores ``trials`` with each back-end (OUT/scores/<backend>/scores) and writes
the recipe's metrics (``pyutils.cli.compute_metrics``: EER, minDCF, DET plot,
speaker-bootstrap intervals when utt2spk is there) to OUT/results.md; with a
calibrated package the LLRs (OUT/scores/<backend>/llr) add Cllr and the actual
DCF there, and OUT/decisions.md gives the error rates at the saved thresholds.  Unusable audio is skipped and counted, as
in the recipe, and trials naming it are left out (OUT/skipped).
"""
from __future__ import annotations

import os
import sys

import numpy as np

from pyutils.cli.sv.common import SvError, add_package_options, embed_items, open_package
from pyutils.cli.sv.embed import write_embeddings
from pyutils.cli.sv.score import score_with_package, write_llrs
from pyutils.utils.fileio import TableError, atomic_output, read_table, write_lines


def add_parser(parser) -> None:
    add_package_options(parser)
    parser.add_argument("data_dir", help="Kaldi data dir with wav.scp, utt2spk and trials")
    parser.add_argument("out_dir", help="output dir (embeddings, scores, results.md)")
    parser.add_argument("--backends", nargs="+", help="back-ends to score with (default: all "
                        "in the package)")
    parser.add_argument("--p-target", type=float, default=0.01,
                        help="target prior of the bayes threshold")


def _audio_items(data_dir: str):
    """(utt, reader) pairs: the data dir's utterances read through AudioReader."""
    from pyutils.data.audio import AudioReader
    from pyutils.data.datadir import DataDir
    try:
        data = DataDir(data_dir)
        reader = AudioReader(data, expected_rate=None)
        return data, reader, list(data.utts)
    except (TableError, OSError, ValueError) as err:
        raise SvError(str(err)) from None


class _DataDirFrontend:
    """Front-end adapter: the 'source' of an item is its utterance id in the data dir."""

    def __init__(self, frontend, reader):
        self.frontend, self.reader = frontend, reader

    def __call__(self, utt: str, key: str) -> np.ndarray:
        samples, rate = self.reader.read(utt)
        return self.frontend.network_input(samples, rate, key, source=f"utterance {utt}")


def _decisions_table(package, kinds, trials_path, out_dir, p_target) -> str:
    """Miss / false-alarm rates at each threshold saved with the calibration."""
    from pyutils.metrics.results import TrialList
    trials = TrialList(trials_path)
    lines = []
    for kind in kinds:
        calibration = package.calibration(kind)
        if calibration is None:
            continue
        scores, labels = trials.join(os.path.join(out_dir, "scores", kind, "scores"))
        labels = np.asarray(labels, dtype=bool)
        cells = [kind]
        for name in ("eer", "min_dcf", "bayes"):
            try:
                threshold = calibration.threshold(name, p_target)
            except ValueError:
                cells.append("-")
                continue
            accept = scores >= threshold
            cells.append(f"{threshold:.4g}: {100 * np.mean(~accept[labels]):.2f} / "
                         f"{100 * np.mean(accept[~labels]):.2f}")
        lines.append("| " + " | ".join(cells) + " |\n")
    if not lines:
        return ""
    return (f"\nDecisions at the thresholds saved with the calibration (bayes: "
            f"p_target={p_target:g}): threshold: miss / false-alarm rate (%)\n\n| backend | eer | "
            f"min_dcf | bayes |\n|---|---|---|---|\n" + "".join(lines))


def run(args) -> int:
    from pyutils.cli import compute_metrics
    package = open_package(args.package)
    kinds = args.backends or package.backends
    if not kinds:
        raise SvError(f"{package.root}: the package has no back-end to score with")
    trials_path = os.path.join(args.data_dir, "trials")
    if not os.path.isfile(trials_path):
        raise SvError(f"{args.data_dir}: no trials file (utils/folder_to_data_dir.sh --trials "
                      f"makes one)")
    data, reader, utts = _audio_items(args.data_dir)
    frontend = _DataDirFrontend(package.frontend(args.resample), reader)
    keys, vectors, failed = embed_items(package, [(u, u) for u in utts], args, desc="eval",
                                        skip_errors=True, frontend=frontend)
    if not keys:
        raise SvError(f"{args.data_dir}: none of the {len(utts)} utterances could be embedded")
    os.makedirs(args.out_dir, exist_ok=True)
    emb_scp = os.path.join(args.out_dir, "embeddings", "xvector.scp")
    write_embeddings(emb_scp[:-4] + ".ark", keys, vectors)
    have = set(keys)
    try:
        trials = [fields for _, fields in read_table(trials_path, 3, 3)]
    except TableError as err:
        raise SvError(str(err)) from None
    kept = [t for t in trials if t[0] in have and t[1] in have]
    write_lines(os.path.join(args.out_dir, "skipped"), failed)
    used_trials = os.path.join(args.out_dir, "trials")
    write_lines(used_trials, (" ".join(t) for t in kept))
    print(f"sv eval: {len(keys)} of {len(utts)} utterances embedded ({len(failed)} skipped: "
          f"{os.path.join(args.out_dir, 'skipped')}); {len(kept)} of {len(trials)} trials kept")
    specs, llrs = [], []
    for kind in kinds:
        out = os.path.join(args.out_dir, "scores", kind, "scores")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        score_with_package(package, kind, used_trials, emb_scp, None, out)
        specs.append(f"{kind}={out}")
        if package.calibration(kind) is not None:
            write_llrs(out, os.path.join(os.path.dirname(out), "llr"), package.calibration(kind))
            llrs.append(f"{kind}={os.path.join(os.path.dirname(out), 'llr')}")
    utt2spk = os.path.join(args.data_dir, "utt2spk")
    metrics_args = ["--trials", used_trials, "--scores", *specs,
                    "--det-png", os.path.join(args.out_dir, "det.png"),
                    "--results-md", os.path.join(args.out_dir, "results.md"),
                    "--system", package.name]
    if os.path.isfile(utt2spk):
        metrics_args += ["--utt2spk", utt2spk]
    if llrs:
        metrics_args += ["--llr", *llrs]
    sys.stdout.flush()
    if compute_metrics.main(metrics_args) != 0:
        raise SvError("computing the metrics failed (the error is above)")
    decisions = _decisions_table(package, kinds, used_trials, args.out_dir, args.p_target)
    if decisions:
        with atomic_output(os.path.join(args.out_dir, "decisions.md")) as out:
            out.write(decisions)
        print(decisions, end="")
    print(f"sv eval: results in {os.path.join(args.out_dir, 'results.md')}")
    return 0
