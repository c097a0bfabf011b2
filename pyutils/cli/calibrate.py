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

The JSON also holds ``operating_points``: the miss and false-alarm rates of
each threshold on the calibration trials, with 95 % intervals
(pyutils.backends.operating_points); one system's calibration-trial scores go
to ``<json>.cal_scores`` (``sv threshold`` picks new operating points from them).
``--qmf dur,mag`` also fits a QMF calibration (pyutils.backends.qmf) with the
trials' quality measures (``--cal-quality``: the embeddings dir holding
utt2speech_dur, utt2magnitude) into the JSON's ``qmf`` entry, and writes the QMF
LLRs of the eval trials to ``--qmf-out-dir``/{scores,llr}.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import List, Optional, Tuple

import numpy as np

from pyutils.backends.calibration import LinearCalibration, operating_thresholds, save_calibration
from pyutils.backends.operating_points import error_rates_at, operating_points, write_cal_scores
from pyutils.backends.qmf import (QmfCalibration, code_features, pair_features, parse_measures,
                                 read_quality)
from pyutils.metrics.cllr import bayes_threshold, cllr, min_cllr
from pyutils.metrics.pair_table import PairTable, read_pair_table
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


def aligned_table(paths: List[str]) -> Tuple[PairTable, np.ndarray]:
    """:func:`aligned_scores` as ``(the first file's pairs as a PairTable, scores)``:
    integer-coded arrays (pyutils.metrics.pair_table), no Python pair per trial."""
    first = read_pair_table(paths[0], labels=False)
    if first is not None:
        columns = [first.values]
        for path in paths[1:]:
            other = read_pair_table(path, labels=False, vocab=first.vocab)
            rows = other.rows_of(first) if other is not None and len(other) == len(first) \
                else None
            if rows is None:
                break
            columns.append(other.values[rows])
        else:
            return first, np.stack(columns, axis=1)
    pairs, scores = aligned_scores(paths)         # the plain reader: same values, or the error
    return PairTable.from_pairs(paths[0], pairs, scores[:, 0]), scores


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
              qmf: Optional[dict] = None, **info) -> LinearCalibration:
    """Fit on the calibration trials and save the calibration with its thresholds, the
    error rates at each (on these trials), and with ``qmf`` (:func:`fit_qmf`) the QMF."""
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
    if qmf is not None:
        info["qmf"] = fit_qmf(trials_path, x[:, 0], labels, prior, **qmf)
    if x.shape[1] == 1:   # the calibration trials' scores: sv threshold picks new points
        write_cal_scores(cal_scores_path(json_path), x[:, 0], labels)
    save_calibration(json_path, calibration, thresholds, trained_on=trials_path,
                     num_trials=int(len(labels)), num_target=int(labels.sum()),
                     cllr_train=cllr(llr, labels), min_cllr_train=min_cllr(llr, labels),
                     operating_points=operating_points(thresholds, x, labels, llr), **info)
    log.info("%s: weights %s, offset %.4g (prior %g) from %d calibration trials (%d target); "
             "Cllr on them %.3f", json_path, ", ".join(f"{w:.4g}" for w in calibration.weights),
             calibration.bias, prior, len(labels), int(labels.sum()), cllr(llr, labels))
    return calibration


def cal_scores_path(json_path: str) -> str:
    """``<system>.cal_scores`` beside ``<system>.json`` (packaged with it)."""
    return os.path.splitext(json_path)[0] + ".cal_scores"


def fit_qmf(trials_path: str, scores: np.ndarray, labels: np.ndarray, prior: float,
            measures: List[str], quality_dir: str) -> dict:
    """The ``qmf`` entry of the calibration JSON: QMF weights fitted on the calibration
    trials with the quality measures of ``quality_dir`` (utt2speech_dur, ...), its Cllr
    there, and the error rates at its Bayes threshold."""
    pairs = [(a, b) for a, b, _ in read_trials(trials_path)]
    quality = read_quality(quality_dir, measures)
    features = pair_features(measures, quality, quality, pairs, trials_path)
    model = QmfCalibration.fit(scores, features, labels, measures, prior)
    num_weights, num_target = 2 + features.shape[1], int(np.sum(labels))
    if num_target < 25 * num_weights:      # a rule of thumb: 25 target trials per weight
        log.warning("QMF: %d target calibration trials for %d weights: expect over-fitting "
                    "(extreme LLRs on new trials); use more held-out calibration trials "
                    "(docs/backends.md)", num_target, num_weights)
    llr = model(scores, features)
    labels = np.asarray(labels).astype(bool)
    name = f"bayes_p{prior:g}_llr"
    entry = model.to_dict()
    entry.update(cllr_train=cllr(llr, labels), quality_dir=quality_dir,
                 thresholds={name: bayes_threshold(prior)},
                 operating_points={name: error_rates_at(bayes_threshold(prior), llr[labels],
                                                        llr[~labels], "llr")})
    log.info("QMF (%s): weights %s, offset %.4g; Cllr on the calibration trials %.3f",
             ", ".join(measures), ", ".join(f"{w:.4g}" for w in model.weights), model.bias,
             entry["cllr_train"])
    return entry


def write_qmf_llrs(entry: dict, score_path: str, quality_dir: str, out_dir: str,
                   aligned: Optional[Tuple[PairTable, np.ndarray]] = None) -> int:
    """``out_dir/scores`` and ``out_dir/llr``: the eval trials' QMF LLRs (a system of
    its own for stage 7: its EER/minDCF rank by the QMF LLR, its Cllr is QMF's).
    ``aligned``: :func:`aligned_table` of ``[score_path]`` if already read."""
    model = QmfCalibration.from_dict(entry)
    table, x = aligned or aligned_table([score_path])
    quality = read_quality(quality_dir, model.measures)
    llr = model(x[:, 0], code_features(model.measures, quality, quality, table.vocab.names,
                                       table.first, table.second, score_path))
    os.makedirs(out_dir, exist_ok=True)
    lines = table.lines(llr)
    for name in ("scores", "llr"):
        with atomic_output(os.path.join(out_dir, name), "wb") as out:
            out.writelines(lines)
    return len(table)


def write_llrs(calibration: LinearCalibration, score_paths: List[str], out_path: str,
               aligned: Optional[Tuple[PairTable, np.ndarray]] = None) -> int:
    """``utt1 utt2 llr`` lines for the eval scores, in the first file's order
    (``aligned``: :func:`aligned_table` of ``score_paths`` if already read)."""
    table, x = aligned or aligned_table(score_paths)
    table.write(out_path, calibration(x))
    return len(table)


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
    parser.add_argument("--qmf", default="", help="quality measures of a QMF calibration fitted "
                        "beside the linear one, e.g. 'dur,mag' (pyutils.backends.qmf)")
    parser.add_argument("--cal-quality", help="--qmf: dir with utt2speech_dur / utt2magnitude "
                        "of the calibration trials' utterances (their embeddings dir)")
    parser.add_argument("--eval-quality", help="--qmf: the same for the --scores utterances")
    parser.add_argument("--qmf-out-dir", help="--qmf: writes scores and llr, the QMF LLRs of "
                        "--scores")
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
        qmf = None
        if args.qmf:
            if len(args.cal_scores) != 1 or not args.cal_quality:
                raise ValueError("--qmf calibrates one system and needs --cal-quality")
            if args.qmf_out_dir and not (args.scores and args.eval_quality):
                raise ValueError("--qmf-out-dir needs --scores and --eval-quality")
            qmf = {"measures": parse_measures(args.qmf), "quality_dir": args.cal_quality}
        calibration = calibrate(args.trials, args.cal_scores, args.prior, args.calibration,
                                qmf, **info)
        aligned = aligned_table(args.scores) if args.scores else None   # read once
        if args.scores:
            count = write_llrs(calibration, args.scores, args.out_llr, aligned)
            log.info("%d LLRs -> %s", count, args.out_llr)
        if qmf is not None and args.qmf_out_dir:
            with open(args.calibration) as src:
                entry = json.load(src)["qmf"]
            count = write_qmf_llrs(entry, args.scores[0], args.eval_quality, args.qmf_out_dir,
                                   aligned)
            log.info("%d QMF LLRs -> %s/llr", count, args.qmf_out_dir)
    except (TableError, ValueError, OSError, RuntimeError) as err:
        print(f"calibrate: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
