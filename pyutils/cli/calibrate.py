"""Train a linear calibration (one system) or a logistic-regression fusion (several)
on calibration trials, save it with its thresholds, and turn eval scores into LLRs.

    python -m pyutils.cli.calibrate --trials CAL_TRIALS --cal-scores cal/scores \
        --calibration calibration/cosine.json --scores eval/scores --out-llr eval/llr

``--cal-scores`` are the system's scores of the calibration trials (utt1 utt2
target|nontarget), never of the eval trials; with N files (N systems) the fit is
a fusion and ``--scores`` takes the N systems' eval score files, in the same
order.  The calibration (prior-weighted logistic regression, BOSARIS style,
``--prior``) and the thresholds at the EER, minDCF and Bayes operating points
of the calibration trials go to ``--calibration`` (pyutils.backends.calibration
save_calibration); the LLRs to ``--out-llr`` in the first eval file's order.
Every score file must score exactly the trials of its list: a missing, extra or
repeated pair is an error naming the file and line.  Outputs are atomic.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Tuple

import numpy as np

from pyutils.backends.calibration import LinearCalibration, operating_thresholds, save_calibration
from pyutils.metrics.cllr import cllr, min_cllr
from pyutils.metrics.results import Pair, read_score_lines, read_trials
from pyutils.utils.fileio import TableError, atomic_output
from pyutils.utils.log import setup_logging

log = logging.getLogger("calibrate")


def aligned_scores(paths: List[str]) -> Tuple[List[Pair], np.ndarray]:
    """``(pairs, scores)``: the pairs of the first file, one score column per file."""
    first = read_score_lines(paths[0])
    pairs = list(first)
    columns = [np.asarray([first[p][0] for p in pairs])]
    for path in paths[1:]:
        other = read_score_lines(path)
        missing = next((p for p in pairs if p not in other), None)
        if missing is not None:
            raise TableError(paths[0], first[missing][1], f"trial '{missing[0]} "
                             f"{missing[1]}' has no score in {path}")
        if len(other) != len(pairs):
            extra = next(p for p in other if p not in first)
            raise TableError(path, other[extra][1], f"score for '{extra[0]} {extra[1]}', "
                             f"which {paths[0]} does not score")
        columns.append(np.asarray([other[p][0] for p in pairs]))
    return pairs, np.stack(columns, axis=1)


def labelled_scores(trials_path: str, score_paths: List[str]) -> Tuple[np.ndarray, np.ndarray]:
    """Scores (trials x systems) and labels of the calibration trials, in trial order."""
    trials = read_trials(trials_path)
    pairs, scores = aligned_scores(score_paths)
    row = {pair: i for i, pair in enumerate(pairs)}
    for lineno, (utt1, utt2, _) in enumerate(trials, 1):
        if (utt1, utt2) not in row:
            raise TableError(trials_path, lineno, f"trial '{utt1} {utt2}' has no score in "
                                                  f"{score_paths[0]}")
    if len(trials) != len(pairs):
        wanted = {(a, b) for a, b, _ in trials}
        extra = next(p for p in pairs if p not in wanted)
        raise TableError(score_paths[0], read_score_lines(score_paths[0])[extra][1],
                         f"score for '{extra[0]} {extra[1]}', which is not a trial in "
                         f"{trials_path}")
    order = np.array([row[(a, b)] for a, b, _ in trials])
    return scores[order], np.array([label for _, _, label in trials], dtype=np.int64)


def calibrate(trials_path: str, cal_scores: List[str], prior: float, json_path: str,
              **info) -> LinearCalibration:
    """Fit on the calibration trials and save the calibration with its thresholds."""
    x, labels = labelled_scores(trials_path, cal_scores)
    calibration = LinearCalibration.fit(x, labels, prior)
    if min_cllr(x @ np.ones(x.shape[1]), labels) < 0.01 or (
            x.shape[1] == 1 and x[labels == 1, 0].min() > x[labels == 0, 0].max()):
        log.warning("%s: the calibration trials are (nearly) separable, so the fit is "
                    "over-confident (a steep slope); scores of unseen speakers will get "
                    "extreme LLRs. Calibrate on trials of held-out speakers "
                    "(calibration_trials= and calibration_embeddings= in conf/backend.conf)",
                    trials_path)
    thresholds = operating_thresholds(x, labels, calibration, prior)
    llr = calibration(x)
    save_calibration(json_path, calibration, thresholds, trained_on=trials_path,
                     num_trials=int(len(labels)), num_target=int(labels.sum()),
                     cllr_train=cllr(llr, labels), min_cllr_train=min_cllr(llr, labels),
                     **info)
    log.info("%s: weights %s, offset %.4g (prior %g) from %d calibration trials (%d target); "
             "Cllr on them %.3f", json_path, ", ".join(f"{w:.4g}" for w in calibration.weights),
             calibration.bias, prior, len(labels), int(labels.sum()), cllr(llr, labels))
    return calibration


def write_llrs(calibration: LinearCalibration, score_paths: List[str], out_path: str) -> int:
    """``utt1 utt2 llr`` lines for the eval scores, in the first file's order."""
    pairs, x = aligned_scores(score_paths)
    llr = calibration(x).tolist()
    with atomic_output(out_path) as out:
        out.writelines(f"{a} {b} {s:.8g}\n" for (a, b), s in zip(pairs, llr))
    return len(pairs)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", required=True, help="calibration trials (with labels)")
    parser.add_argument("--cal-scores", nargs="+", required=True,
                        help="each system's scores of the calibration trials")
    parser.add_argument("--calibration", required=True, help="output JSON")
    parser.add_argument("--scores", nargs="+", help="eval score files to turn into LLRs "
                        "(one per system, same order as --cal-scores)")
    parser.add_argument("--out-llr", help="output LLRs of --scores")
    parser.add_argument("--prior", type=float, default=0.01,
                        help="effective target prior of the fit and the Bayes threshold")
    parser.add_argument("--system", default="", help="recorded as 'backend' in the JSON")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    setup_logging()
    args = parse_args(argv)
    try:
        if bool(args.scores) != bool(args.out_llr):
            raise ValueError("--scores and --out-llr go together")
        if args.scores and len(args.scores) != len(args.cal_scores):
            raise ValueError(f"{len(args.cal_scores)} --cal-scores files but "
                             f"{len(args.scores)} --scores files: one of each per system")
        info = {"backend": args.system} if args.system else {}
        if len(args.cal_scores) > 1:
            info["systems"] = list(args.scores or args.cal_scores)
        calibration = calibrate(args.trials, args.cal_scores, args.prior, args.calibration,
                                **info)
        if args.scores:
            count = write_llrs(calibration, args.scores, args.out_llr)
            log.info("%d LLRs -> %s", count, args.out_llr)
    except (TableError, ValueError, OSError, RuntimeError) as err:
        print(f"calibrate: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
