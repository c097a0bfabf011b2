"""EER and minDCF (p=0.01, 0.001) of score files, a results table and a DET plot.

Each ``--scores name=path`` becomes one table row (backend ``name``) and one
DET curve.  The rows are also written as JSON beside the table
(``results.md`` -> ``results.json``) for ``compare_systems``.  Metrics follow Kaldi's compute-eer and sid/compute_min_dcf.py.
Nothing is skipped: a trial without a score, a score for a pair that is not
a trial, a repeated pair, a bad label or a NaN/inf score is an error naming
the file, line and trial; so is a trial list without target or non-target
trials.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Dict, List, Tuple

from pyutils.metrics.det import plot_det
from pyutils.metrics.results import (TrialList, summarize, write_results_json,
                                     write_results_table)
from pyutils.utils.fileio import TableError

log = logging.getLogger("compute_metrics")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", required=True, help="utt1 utt2 target|nontarget lines")
    parser.add_argument("--scores", nargs="+", required=True, metavar="NAME=PATH")
    parser.add_argument("--det-png", required=True)
    parser.add_argument("--results-md", required=True)
    parser.add_argument("--system", required=True, help="system name for the table")
    return parser.parse_args(argv)


def parse_named_paths(specs: List[str]) -> List[Tuple[str, str]]:
    """Split ``name=path`` arguments; names must be unique."""
    pairs = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--scores expects NAME=PATH, got '{spec}'")
        if name in dict(pairs):
            raise ValueError(f"--scores name '{name}' given twice")
        pairs.append((name, path))
    return pairs


def main(argv=None) -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = parse_args(argv)
    try:
        rows: List[dict] = []
        curves: Dict[str, Tuple] = {}
        named_paths = parse_named_paths(args.scores)
        trials = TrialList(args.trials)
        for name, path in named_paths:
            scores, labels = trials.join(path)
            try:
                metrics = summarize(scores, labels)
            except ValueError as err:
                raise ValueError(f"{path} (trials {args.trials}): {err}") from None
            log.info("%s: %d trials (%d target) from %s", name, metrics["num_trials"],
                     metrics["num_target"], path)
            curves[name] = (scores, labels)
            rows.append({"system": args.system, "backend": name, **metrics})
        text = write_results_table(rows, args.results_md)
        write_results_json(rows, os.path.splitext(args.results_md)[0] + ".json")
        plot_det(curves, args.det_png)
    except (TableError, ValueError, OSError) as err:
        print(f"compute_metrics: error: {err}", file=sys.stderr)
        return 1
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
