"""Thresholds set on the calibration trials, applied to the evaluation trials (stage 7).

    python -m pyutils.cli.threshold_shift --trials data/asc/eval/trials \
        --scores-dir exp/x/m/scores --calibration-dir exp/x/m/calibration \
        --targets "far=0.01 frr=0.05" --results exp/x/m/results.json cosine plda plda_qmf

For each SYSTEM, the thresholds of ``<calibration-dir>/<s>[<suffix>].json`` (and one
per ``--targets`` rate, picked on its ``.cal_scores``; a ``<s>_qmf`` system: the
QMF entry of ``<s>``'s calibration, on the QMF LLR) with their miss and
false-alarm rates on the calibration trials (intended) and on ``--trials`` scored
in ``<scores-dir>/<system>/scores`` (measured), 95 % Clopper-Pearson intervals
(pyutils.backends.threshold_shift).  Written into the system's row of
``--results`` (stage 7's results.json, the row without a subgroup) under
``threshold_shift``, and as a table to ``--table`` (markdown).
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from pyutils.backends.threshold_shift import (TABLE_HEADER, describe_shift, needs_llrs,
                                              parse_targets, threshold_shift)
from pyutils.metrics.results import TrialList
from pyutils.utils.fileio import TableError, atomic_output, read_json
from pyutils.utils.log import setup_logging

log = logging.getLogger("threshold_shift")
QMF = "_qmf"


def system_shift(system: str, trials: TrialList, scores_dir: str, calibration_dir: str,
                 suffix: str, targets) -> dict:
    """:func:`threshold_shift` of one scored system of stage 6."""
    qmf = system.endswith(QMF)
    base = system[:-len(QMF)] if qmf else system
    cal_json = os.path.join(calibration_dir, f"{base}{suffix}.json")
    if not os.path.isfile(cal_json):
        raise ValueError(f"{cal_json}: no calibration of system '{system}' (run stage 6)")
    score_path = os.path.join(scores_dir, system, "scores")
    llrs = None
    if not qmf and needs_llrs(cal_json):     # a threshold on the LLR only (fusion)
        scores, labels, pairs = trials.join_with_pairs(score_path)
        llr_path = os.path.join(scores_dir, system, "llr")
        llrs, _, llr_pairs = trials.join_with_pairs(llr_path)
        if llr_pairs != pairs:
            raise ValueError(f"{llr_path}: not in the order of {score_path}")
    else:
        scores, labels = trials.join(score_path)
    return threshold_shift(cal_json, scores, labels, targets, qmf=qmf, eval_llrs=llrs)


def merge_into_results(path: str, shifts: dict) -> int:
    """Put each system's shift into its row (no subgroup) of results.json; rows merged."""
    rows = read_json(path)
    merged = 0
    for row in rows:
        if row.get("subgroup") is None and row.get("backend") in shifts:
            row["threshold_shift"] = shifts[row["backend"]]
            merged += 1
    with atomic_output(path) as out:
        json.dump(rows, out, indent=1)
        out.write("\n")
    return merged


def main(argv=None) -> int:
    setup_logging()
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", required=True, help="the evaluation trials (with labels)")
    parser.add_argument("--scores-dir", required=True, help="stage 6's scores dir of the set")
    parser.add_argument("--calibration-dir", required=True, help="stage 6's calibration dir")
    parser.add_argument("--suffix", default="", help="calibration file suffix of the set "
                        "(stage 6: '' for the first evaluation set, _<set> for others)")
    parser.add_argument("--targets", default="far=0.01 frr=0.05",
                        help="target rates of the picked thresholds, e.g. 'far=0.01 frr=0.05'")
    parser.add_argument("--results", help="results.json to add the rows' threshold_shift to")
    parser.add_argument("--table", help="markdown table to write")
    parser.add_argument("systems", nargs="+")
    args = parser.parse_args(argv)
    try:
        targets = parse_targets(args.targets)
        trials = TrialList(args.trials)
        shifts = {s: system_shift(s, trials, args.scores_dir, args.calibration_dir,
                                  args.suffix, targets) for s in args.systems}
        lines = [TABLE_HEADER] + [r for s, shift in shifts.items()
                                  for r in describe_shift(s, shift)]
        if args.table:
            with atomic_output(args.table) as out:
                out.write(f"Thresholds set on the calibration trials ({args.calibration_dir}), "
                          f"applied to {args.trials}; 95 % Clopper-Pearson intervals.\n\n")
                out.write("\n".join(lines) + "\n")
        if args.results:
            merged = merge_into_results(args.results, shifts)
            log.info("%s: threshold_shift of %d systems", args.results, merged)
        print("\n".join(lines))
    except (TableError, ValueError, OSError, KeyError) as err:
        print(f"threshold_shift: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
