"""EER and minDCF (p=0.01, 0.001) of score files, a results table and a DET plot.

Each ``--scores name=path`` becomes one table row (backend ``name``) and one
DET curve.  minCllr (PAV) comes from the scores; with ``--llr name=path``
(the calibrated scores of stage 6) the row also gets Cllr and the actual DCF
at the Bayes threshold (p=0.01).  The rows are also written as JSON beside the table
(``results.md`` -> ``results.json``) for ``compare_systems``.  Metrics follow Kaldi's compute-eer and sid/compute_min_dcf.py.
Nothing is skipped: a trial without a score, a score for a pair that is not
a trial, a repeated pair, a bad label or a NaN/inf score is an error naming
the file, line and trial; so is a trial list without target or non-target
trials.  Each ``--subgroup name=trials`` (a subset of --trials, e.g. so762-v1's
child-child pairs) adds a row per back-end, ``<backend> [<name>]``, from the
same score files.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Dict, List, Tuple

import numpy as np

from pyutils.metrics.bootstrap import speaker_bootstrap_eer_dcf, speaker_sides
from pyutils.metrics.cllr import actual_dcf, cllr, min_cllr
from pyutils.metrics.det import DetCurve, det_curve, plot_det
from pyutils.metrics.results import (ScoredTrials, TrialList, format_results_table, summarize,
                                     write_results_json)
from pyutils.utils.fileio import TableError, atomic_output, read_table
from pyutils.utils.log import setup_logging

log = logging.getLogger("compute_metrics")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", required=True, help="utt1 utt2 target|nontarget lines")
    parser.add_argument("--scores", nargs="+", required=True, metavar="NAME=PATH")
    parser.add_argument("--llr", nargs="*", default=[], metavar="NAME=PATH",
                        help="calibrated LLRs of some of the --scores names: Cllr, actual DCF")
    parser.add_argument("--det-png", required=True)
    parser.add_argument("--results-md", required=True)
    parser.add_argument("--system", required=True, help="system name for the table")
    parser.add_argument("--utt2spk", default=None,
                        help="eval utt2spk: adds speaker-bootstrap 95%% CIs of EER and "
                             "minDCF (both sides' speakers resampled; an utterance not in it "
                             "is its own speaker)")
    parser.add_argument("--bootstrap", type=int, default=200,
                        help="bootstrap replicates (seed fixed)")
    parser.add_argument("--subgroup", action="append", default=[], metavar="NAME=TRIALS",
                        help="a subset of the trials whose metrics get their own rows")
    return parser.parse_args(argv)


def parse_named_paths(specs: List[str], option: str = "--scores") -> List[Tuple[str, str]]:
    """Split ``name=path`` arguments; names must be unique."""
    pairs = []
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"{option} expects NAME=PATH, got '{spec}'")
        if name in dict(pairs):
            raise ValueError(f"{option} name '{name}' given twice")
        pairs.append((name, path))
    return pairs


def add_error_bars(row: dict, scores, labels, sides, replicates: int) -> None:
    """Speaker-bootstrap 95% CIs of EER and minDCF(0.01) into ``row``; ``sides`` is
    ``(number of speakers, side-1 and side-2 speaker index per trial)``."""
    eer_ci, dcf_ci = speaker_bootstrap_eer_dcf(scores, labels, *sides, replicates)
    row["eer_ci"], row["min_dcf_0.01_ci"] = list(eer_ci), list(dcf_ci)


def by_score(joined: ScoredTrials) -> Tuple[ScoredTrials, np.ndarray]:
    """``joined`` sorted stably by score, once per score file: the metrics' own stable
    sorts then find it sorted (a fast pass), and keep the file order among tied scores."""
    order = np.argsort(joined.scores, kind="stable")
    return ScoredTrials(joined.scores[order], joined.labels[order], joined.first[order],
                        joined.second[order], joined.names), order


def subgroup_row(row: dict, group: str, path: str, mask: np.ndarray, joined: ScoredTrials,
                 ranked: ScoredTrials, order: np.ndarray, speaker_of, replicates: int) -> dict:
    """The metrics of ``row``'s scores restricted to one subgroup's trials (``mask`` of
    ``joined``; ``ranked``, ``order``: :func:`by_score` of ``joined``)."""
    in_order = mask[order]
    scores, labels = ranked.scores[in_order], ranked.labels[in_order]
    try:
        metrics = summarize(scores, labels)
    except ValueError as err:
        raise ValueError(f"subgroup {group} ({path}): {err}") from None
    sub = {"system": row["system"], "backend": f"{row['backend']} [{group}]",
           "subgroup": group, "scores_backend": row["backend"], **metrics,
           "min_cllr": min_cllr(joined.scores[mask], joined.labels[mask]),
           "scores_path": row["scores_path"], "trials_path": path}
    if speaker_of is not None:
        add_error_bars(sub, scores, labels,
                       speaker_sides(ranked.first[in_order], ranked.second[in_order],
                                     speaker_of), replicates)
    return sub


def add_calibrated(row: dict, llrs, labels) -> None:
    """Cllr and the actual DCF (p=0.01, Bayes threshold) of calibrated LLRs into ``row``."""
    row["cllr"] = cllr(llrs, labels)
    row["act_dcf_0.01"] = actual_dcf(llrs, labels, 0.01)


def _cell(row: dict, key: str, fmt: str) -> str:
    value = row.get(key)
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        scale = 100.0 if key == "eer_ci" else 1.0
        return f"{format(scale * value[0], fmt)}-{format(scale * value[1], fmt)}"
    return format(value, fmt)


def format_error_bars(rows: List[dict]) -> str:
    """Markdown table of the CIs, minCllr, Cllr and actual DCF."""
    lines = [f"| {r['system']} | {r['backend']} | {_cell(r, 'eer_ci', '.2f')} | "
             f"{_cell(r, 'min_dcf_0.01_ci', '.3f')} | {_cell(r, 'min_cllr', '.3f')} | "
             f"{_cell(r, 'cllr', '.3f')} | {_cell(r, 'act_dcf_0.01', '.4f')} |\n" for r in rows]
    return ("\nSpeaker-bootstrap 95% intervals (seed fixed); differences inside them "
            "are not gains. Cllr and the actual DCF (Bayes threshold) are of the LLRs of "
            "stage 6's calibration (calibration/<system>.json names its trials: held-out "
            "speakers', or training utterances, which give over-confident LLRs); minCllr is the "
            "best any calibration could do.\n\n| system | backend | EER (%) 95% CI | "
            "minDCF (p=0.01) 95% CI | minCllr (bits) | Cllr (bits) | actual DCF (p=0.01) |"
            "\n|---|---|---|---|---|---|---|\n" + "".join(lines))


def main(argv=None) -> int:
    setup_logging()
    args = parse_args(argv)
    try:
        rows: List[dict] = []
        curves: Dict[str, DetCurve] = {}
        named_paths = parse_named_paths(args.scores)
        llr_paths = dict(parse_named_paths(args.llr, "--llr"))
        unknown = sorted(set(llr_paths) - set(dict(named_paths)))
        if unknown:
            raise ValueError(f"--llr name '{unknown[0]}' is not a --scores name")
        trials = TrialList(args.trials)
        utt2spk = ({utt: spk for _, (utt, spk) in read_table(args.utt2spk, 2, 2)}
                   if args.utt2spk else None)
        subgroups = [(group, path, trials.subset(path))
                     for group, path in parse_named_paths(args.subgroup, "--subgroup")]
        sub_rows: List[dict] = []
        for name, path in named_paths:
            joined = trials.join_codes(path)
            ranked, order = by_score(joined)
            scores, labels = ranked.scores, ranked.labels
            try:
                metrics = summarize(scores, labels)
            except ValueError as err:
                raise ValueError(f"{path} (trials {args.trials}): {err}") from None
            log.info("%s: %d trials (%d target) from %s", name, metrics["num_trials"],
                     metrics["num_target"], path)
            curves[name] = det_curve(scores, labels)   # points, not 3.1 M scores
            rows.append({"system": args.system, "backend": name, **metrics,
                         "min_cllr": min_cllr(joined.scores, joined.labels), "scores_path": path,
                         "trials_path": args.trials})
            if name in llr_paths:
                llrs, llr_labels = trials.join(llr_paths[name])
                add_calibrated(rows[-1], llrs, llr_labels)
            speaker_of = None
            if utt2spk is not None:
                speaker_of = [utt2spk.get(utt, utt) for utt in joined.names]
                add_error_bars(rows[-1], scores, labels,
                               speaker_sides(ranked.first, ranked.second, speaker_of),
                               args.bootstrap)
            for group, group_path, subset in subgroups:
                sub_rows.append(subgroup_row(rows[-1], group, group_path,
                                             trials.subset_mask(joined, subset), joined,
                                             ranked, order, speaker_of, args.bootstrap))
        rows += sub_rows
        text = format_results_table(rows) + format_error_bars(rows)
        with atomic_output(args.results_md) as out:
            out.write(text)
        write_results_json(rows, os.path.splitext(args.results_md)[0] + ".json")
        plot_det(curves, args.det_png)  # the full trial list's curves only
    except (TableError, ValueError, OSError) as err:
        print(f"compute_metrics: error: {err}", file=sys.stderr)
        return 1
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
