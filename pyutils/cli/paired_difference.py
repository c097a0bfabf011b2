"""Is system B better than system A on the same trials? The paired speaker-bootstrap interval.

    python -m pyutils.cli.paired_difference --trials data/speechocean762/eval/trials \\
        --utt2spk data/speechocean762/eval/utt2spk \\
        exp/speechocean762/ecapa_c512_so762/scores/plda/scores \\
        exp/speechocean762/ecapa_c512_so762_x4/scores/plda/scores

Prints each system's EER and minDCF(p=0.01) with its own 95 % interval (stage 7's) and the
difference B - A with its paired interval: each bootstrap replicate draws the speakers once
and evaluates both systems on that draw
(as :func:`pyutils.metrics.bootstrap.paired_difference_ci`). Two separate intervals share the
variation of the speakers, so they may overlap where the paired difference excludes 0; a
difference whose paired interval holds 0 is not a gain. Both score files must score every
trial of --trials (the errors of stage 7's reader otherwise), in any order.
"""
from __future__ import annotations

import argparse
import logging
import sys

import numpy as np

from pyutils.metrics.bootstrap import eer_dcf_replicates, percentile_intervals, speaker_sides
from pyutils.metrics.results import ScoredTrials, TrialList, summarize
from pyutils.utils.fileio import TableError, read_key_value
from pyutils.utils.log import setup_logging

log = logging.getLogger("paired_difference")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", required=True, help="utt1 utt2 target|nontarget lines")
    parser.add_argument("--utt2spk", required=True,
                        help="the trials' utt2spk (an utterance not in it is its own speaker)")
    parser.add_argument("--bootstrap", type=int, default=200,
                        help="replicates (seed fixed; stage 7 uses 200)")
    parser.add_argument("scores_a", help="system A's score file (utt1 utt2 score)")
    parser.add_argument("scores_b", help="system B's score file, the same trials")
    return parser.parse_args(argv)


def in_trial_order(joined: ScoredTrials) -> ScoredTrials:
    """``joined`` sorted by its (utt1, utt2) codes, so two files of the same trials align."""
    order = np.lexsort((joined.second, joined.first))
    return ScoredTrials(joined.scores[order], joined.labels[order], joined.first[order],
                        joined.second[order], joined.names)


def compare(trials: str, utt2spk: str, path_a: str, path_b: str, replicates: int = 200
            ) -> dict:
    """Both systems' EER and minDCF with their intervals, and B - A with its paired one."""
    trial_list = TrialList(trials)
    a, b = (in_trial_order(trial_list.join_codes(path)) for path in (path_a, path_b))
    if not (np.array_equal(a.first, b.first) and np.array_equal(a.second, b.second)):
        raise ValueError(f"{path_a} and {path_b} do not score the same trials of {trials}")
    speaker_of = read_key_value(utt2spk)
    sides = speaker_sides(a.first, a.second, [speaker_of.get(u, u) for u in a.names])
    result = {"trials": int(a.labels.size), "speakers": sides[0]}
    replicates_of = {}
    for name, system, path in (("a", a, path_a), ("b", b, path_b)):
        # one set of replicates per system serves its own intervals and the paired difference
        # (the draws depend on the seed, speakers and labels only: paired_difference_ci's)
        replicates_of[name] = eer_dcf_replicates(system.scores, system.labels, *sides,
                                                 replicates)
        row = summarize(system.scores, system.labels)
        eer_ci, dcf_ci = percentile_intervals(replicates_of[name])
        result[name] = {"scores": path, "eer": row["eer"], "eer_ci": list(eer_ci),
                        "min_dcf": row["min_dcf_0.01"], "min_dcf_ci": list(dcf_ci)}
    eer_diff, dcf_diff = percentile_intervals(replicates_of["b"] - replicates_of["a"])
    result["eer_diff"] = result["b"]["eer"] - result["a"]["eer"]
    result["min_dcf_diff"] = result["b"]["min_dcf"] - result["a"]["min_dcf"]
    result["eer_diff_ci"], result["min_dcf_diff_ci"] = list(eer_diff), list(dcf_diff)
    return result


def report(result: dict) -> str:
    """The comparison as a few lines a person reads."""
    def interval(low, high, scale, fmt):
        return f"[{format(scale * low, fmt)}, {format(scale * high, fmt)}]"
    lines = [f"{result['trials']:,} trials, {result['speakers']} speakers"]
    for name in ("a", "b"):
        row = result[name]
        lines.append(f"{name.upper()}: EER {100 * row['eer']:.2f} % "
                     f"{interval(*row['eer_ci'], 100, '.2f')}, minDCF(0.01) "
                     f"{row['min_dcf']:.3f} {interval(*row['min_dcf_ci'], 1, '.3f')}  "
                     f"{row['scores']}")
    for key, name, scale, unit, fmt in (("eer", "EER", 100, " points", "+.2f"),
                                        ("min_dcf", "minDCF(0.01)", 1, "", "+.3f")):
        low, high = result[f"{key}_diff_ci"]
        verdict = ("B lower, the paired interval excludes 0" if high < 0 else
                   "B higher, the paired interval excludes 0" if low > 0 else
                   "the paired interval holds 0: not a difference")
        lines.append(f"B - A {name}: {format(scale * result[f'{key}_diff'], fmt)}{unit}, paired "
                     f"95 % CI {interval(low, high, scale, fmt)}: {verdict}")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    args = parse_args(argv)
    setup_logging()
    try:
        result = compare(args.trials, args.utt2spk, args.scores_a, args.scores_b,
                         args.bootstrap)
    except (TableError, ValueError, OSError) as err:
        sys.exit(f"paired_difference: error: {err}")
    print(report(result), end="")


if __name__ == "__main__":
    main()
