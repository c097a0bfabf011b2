"""Linear fusion of score files of several systems on the same trials.

    python -m pyutils.cli.fuse_scores --out fused/scores [--weights 1,1] sysA/scores sysB/scores

Writes ``utt1 utt2 score`` in the first file's order, the score being the
weighted mean of the systems' scores (equal weights by default).  Fuse
scores on comparable scales, e.g. AS-normalised ones (each is a mean of
standard scores); no weight is trained on the evaluation trials.  Every file
must score exactly the same trials: a missing, extra or repeated pair is an
error naming the file and line.  The output is written atomically.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

import numpy as np

from pyutils.metrics.results import read_score_lines
from pyutils.utils.fileio import TableError, atomic_output


def fuse(score_paths: List[str], weights: Optional[List[float]] = None):
    """``(pairs, fused scores)`` in the first file's order."""
    if weights is None:
        weights = [1.0] * len(score_paths)
    if len(weights) != len(score_paths):
        raise ValueError(f"{len(weights)} weights for {len(score_paths)} score files")
    first = read_score_lines(score_paths[0])
    pairs = list(first)
    total = np.asarray([first[p][0] for p in pairs]) * weights[0]
    for path, weight in zip(score_paths[1:], weights[1:]):
        other = read_score_lines(path)
        missing = next((p for p in pairs if p not in other), None)
        if missing is not None:
            raise TableError(score_paths[0], first[missing][1], f"trial '{missing[0]} "
                             f"{missing[1]}' has no score in {path}")
        if len(other) != len(pairs):
            extra = next(p for p in other if p not in first)
            raise TableError(path, other[extra][1], f"score for '{extra[0]} {extra[1]}', "
                             f"which {score_paths[0]} does not score")
        total += weight * np.asarray([other[p][0] for p in pairs])
    return pairs, total / float(sum(weights))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="fused scores (utt1 utt2 score)")
    parser.add_argument("--weights", help="comma-separated, one per file (default: equal)")
    parser.add_argument("scores", nargs="+", help="score files of the systems")
    args = parser.parse_args(argv)
    try:
        if len(args.scores) < 2:
            raise ValueError("fusion needs at least two score files")
        weights = [float(w) for w in args.weights.split(",")] if args.weights else None
        pairs, fused = fuse(args.scores, weights)
        with atomic_output(args.out) as out:
            out.writelines(f"{a} {b} {s:.8g}\n" for (a, b), s in zip(pairs, fused.tolist()))
    except (TableError, ValueError, OSError) as err:
        print(f"fuse_scores: error: {err}", file=sys.stderr)
        return 1
    print(f"fuse_scores: {len(pairs)} trials from {len(args.scores)} systems -> {args.out}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
