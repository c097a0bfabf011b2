"""One table and one DET plot comparing every trained system x back-end of an experiment dir.

    python -m pyutils.cli.compare_systems --out exp/asc/results.md exp/asc/*/

Reads each system dir's ``results.json`` (stage 7) and ``train_summary.json``
(stage 3) and writes a Markdown table: EER with its speaker-bootstrap 95 %
interval, minDCF, minCllr and Cllr (of the calibrated LLRs), parameters,
training chunks, training time and chunks/s per system and back-end; and
``det_all.png`` beside it (``--det-png``), one DET curve per system and
back-end, from the score files the rows name.  Dirs without ``results.json``
(unfinished systems, feature dirs) are listed as skipped.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import List

from pyutils.utils.fileio import TableError, atomic_output, read_json

log = logging.getLogger("compare_systems")

HEADER = ("| system | input | loss | backend | EER (%) | EER 95% CI | minDCF (p=0.01) "
          "| minDCF (p=0.001) | minCllr | Cllr | parameters | training chunks "
          "| training time (min) | chunks/s |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")


def system_rows(system_dir: str) -> List[dict]:
    """Rows of one system: its results joined with its training summary."""
    results = read_json(os.path.join(system_dir, "results.json"))
    # Results of a second evaluation set live in <system>/<set>/ (run.sh --corpus a,b).
    model_dir = system_dir
    if not os.path.isfile(os.path.join(system_dir, "config.yaml")) and \
            os.path.isfile(os.path.join(os.path.dirname(system_dir), "config.yaml")):
        model_dir = os.path.dirname(system_dir)
    summary_path = os.path.join(model_dir, "train_summary.json")
    summary = read_json(summary_path) if os.path.isfile(summary_path) else {}
    config_path = os.path.join(model_dir, "config.yaml")
    feature_type = "-"                     # not a trained system (e.g. a fusion)
    if os.path.isfile(config_path):
        import yaml
        with open(config_path, encoding="utf-8") as handle:
            feature_type = (yaml.safe_load(handle).get("features") or {}).get("type", "mfcc")
    return [{**row, "input": feature_type, **{k: summary.get(k) for k in
             ("loss", "parameters", "chunks", "train_seconds", "chunks_per_s")}}
            for row in results]


def _cell(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _interval(value) -> str:
    return "-" if not value else f"{100 * value[0]:.2f}-{100 * value[1]:.2f}"


def format_table(rows: List[dict]) -> str:
    lines = []
    for row in rows:
        minutes = None if row["train_seconds"] is None else row["train_seconds"] / 60.0
        lines.append(
            f"| {row['system']} | {row['input']} | {row['loss'] or '-'} | {row['backend']} "
            f"| {100 * row['eer']:.3f} | {_interval(row.get('eer_ci'))} "
            f"| {row['min_dcf_0.01']:.4f} | {row['min_dcf_0.001']:.4f} "
            f"| {_cell(row.get('min_cllr'), '.3f')} | {_cell(row.get('cllr'), '.3f')} "
            f"| {_cell(row['parameters'], ',d')} | {_cell(row['chunks'], ',d')} "
            f"| {_cell(minutes, '.1f')} | {_cell(row['chunks_per_s'], '.1f')} |\n")
    return HEADER + "".join(lines)


def plot_all(rows: List[dict], path: str) -> int:
    """``det_all.png``: one DET curve per row whose score and trial files exist."""
    from pyutils.metrics.det import det_curve, plot_det
    from pyutils.metrics.results import TrialList

    curves, trial_lists = {}, {}
    for row in rows:
        scores, trials = row.get("scores_path"), row.get("trials_path")
        if row.get("subgroup"):  # a subset of another row's trials: the chart shows full lists
            continue
        if not (scores and trials and os.path.isfile(scores) and os.path.isfile(trials)):
            log.info("%s %s: no score file recorded or found; not in %s", row["system"],
                     row["backend"], path)
            continue
        if trials not in trial_lists:
            trial_lists[trials] = TrialList(trials)
        name = f"{row['system']} {row['backend']}"
        curves[name] = det_curve(*trial_lists[trials].join(scores))   # points, not scores
    if curves:
        plot_det(curves, path)
    return len(curves)


def main(argv=None) -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="the comparison table (Markdown)")
    parser.add_argument("--det-png", help="DET plot of every row (default: det_all.png "
                                          "beside --out)")
    parser.add_argument("system_dirs", nargs="+")
    args = parser.parse_args(argv)
    rows: List[dict] = []
    try:
        for directory in sorted(set(os.path.normpath(d) for d in args.system_dirs)):
            if not os.path.isfile(os.path.join(directory, "results.json")):
                log.info("%s: no results.json; skipped (not a finished system)", directory)
                continue
            rows += system_rows(directory)
        if not rows:
            raise ValueError("no system dir has a results.json (run stage 7 first)")
        text = format_table(rows)
        with atomic_output(args.out) as out:
            out.write(text)
        det = args.det_png or os.path.join(os.path.dirname(os.path.abspath(args.out)),
                                           "det_all.png")
        log.info("%d DET curves in %s", plot_all(rows, det), det)
    except (OSError, ValueError, KeyError, TableError) as err:
        print(f"compare_systems: error: {err}", file=sys.stderr)
        return 1
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
