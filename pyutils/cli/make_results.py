"""Write the results page (RESULTS.md) from the runs' json files; no number is typed by hand.

    python -m pyutils.cli.make_results --out RESULTS.md exp/speechocean762 exp/asc+speechocean762

For each experiment dir, every system dir (and evaluation-set subdir) with a
``results.json`` from stage 7 becomes rows, joined with the system's
``train_summary.json`` (budget, training time) and ``train_info.json`` /
``run_info.json`` (machine, date, commit, protocol, evaluation set,
calibration data).  Per protocol and evaluation set the page has one table per
question (networks, back-ends, label-free against supervised, subgroups), each
read in generated sentences (which differences the 95 % intervals separate),
and the DET chart of every system (``det_all*.png``, stage 7).
See pyutils.metrics.report.
"""
import argparse
import logging
import os
import sys

from pyutils.metrics.report import collect, render
from pyutils.utils.fileio import atomic_output


def main(argv=None) -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(name)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="the page to write, e.g. RESULTS.md")
    parser.add_argument("--backends", default="cosine,plda",
                        help="back-ends of the networks and label-free tables (comma list)")
    parser.add_argument("exp_dirs", nargs="+")
    args = parser.parse_args(argv)
    try:
        missing = [d for d in args.exp_dirs if not os.path.isdir(d)]
        if missing:
            raise ValueError(f"{missing[0]}: no such experiment dir")
        groups = collect(args.exp_dirs)
        if not groups:
            raise ValueError("no results.json under " + " ".join(args.exp_dirs)
                             + " (run stage 7 first)")
        text = render(groups, [b for b in args.backends.split(",") if b],
                      os.path.dirname(os.path.abspath(args.out)))
        with atomic_output(args.out) as out:
            out.write(text)
    except (OSError, ValueError, KeyError) as err:
        print(f"make_results: error: {err}", file=sys.stderr)
        return 1
    logging.getLogger("make_results").info("%s: %d protocol and evaluation-set sections", args.out, len(groups))
    return 0


if __name__ == "__main__":
    sys.exit(main())
