"""Fusion of the score files of several systems on the same trials.

Trained (the recipe's): a logistic-regression fusion fitted on calibration
trials, never on the evaluation trials, and written as fused LLRs:

    python -m pyutils.cli.fuse_scores --out fused/llr --trials cal/trials \
        --cal-scores sysA/cal/scores sysB/cal/scores --calibration fused.json \
        sysA/scores sysB/scores

``--cal-scores`` are the systems' scores of the calibration trials, in the
order of the eval score files; the weights, offset and thresholds go to
``--calibration`` (pyutils.cli.calibrate does the same for one system).

Untrained: without ``--trials``, the weighted mean of the scores (``--weights``,
equal by default), for scores already on one scale.

Either way the output is ``utt1 utt2 score`` in the first file's order; every
file must score exactly the same trials (a missing, extra or repeated pair is
an error naming the file and line).  Outputs are written atomically.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

import numpy as np

from pyutils.cli.calibrate import aligned_scores, calibrate, write_llrs
from pyutils.utils.fileio import TableError, atomic_output
from pyutils.utils.log import setup_logging


def fuse(score_paths: List[str], weights: Optional[List[float]] = None):
    """``(pairs, weighted mean of the scores)`` in the first file's order (untrained)."""
    if weights is None:
        weights = [1.0] * len(score_paths)
    if len(weights) != len(score_paths):
        raise ValueError(f"{len(weights)} weights for {len(score_paths)} score files")
    pairs, scores = aligned_scores(score_paths)
    return pairs, scores @ np.asarray(weights, dtype=np.float64) / float(sum(weights))


def main(argv=None) -> int:
    setup_logging()
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="fused scores (utt1 utt2 score)")
    parser.add_argument("--trials", help="calibration trials: train the fusion on them")
    parser.add_argument("--cal-scores", nargs="+", default=[],
                        help="with --trials: each system's scores of the calibration trials")
    parser.add_argument("--calibration", help="with --trials: the fusion's JSON")
    parser.add_argument("--prior", type=float, default=0.01)
    parser.add_argument("--weights", help="untrained: comma-separated, one per file")
    parser.add_argument("scores", nargs="+", help="eval score files of the systems")
    args = parser.parse_args(argv)
    try:
        if len(args.scores) < 2:
            raise ValueError("fusion needs at least two score files")
        if args.trials:
            if len(args.cal_scores) != len(args.scores):
                raise ValueError(f"{len(args.scores)} score files but {len(args.cal_scores)} "
                                 f"--cal-scores files: one of each per system")
            if not args.calibration or args.weights:
                raise ValueError("a trained fusion needs --calibration and takes no --weights")
            fusion = calibrate(args.trials, args.cal_scores, args.prior, args.calibration,
                               backend="fusion", systems=list(args.scores))
            count = write_llrs(fusion, args.scores, args.out)
        else:
            weights = [float(w) for w in args.weights.split(",")] if args.weights else None
            pairs, fused = fuse(args.scores, weights)
            with atomic_output(args.out) as out:
                out.writelines(f"{a} {b} {s:.8g}\n" for (a, b), s in zip(pairs, fused.tolist()))
            count = len(pairs)
    except (TableError, ValueError, OSError, RuntimeError) as err:
        print(f"fuse_scores: error: {err}", file=sys.stderr)
        return 1
    print(f"fuse_scores: {count} trials from {len(args.scores)} systems -> {args.out}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
