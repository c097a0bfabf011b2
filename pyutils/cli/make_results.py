"""Write the results page (RESULTS.md) from the runs' json files; no number is typed by hand.

    python -m pyutils.cli.make_results --out RESULTS.md exp/speechocean762 exp/asc+speechocean762

For each experiment dir, every system dir (and evaluation-set subdir) with a
``results.json`` from stage 7 becomes rows, joined with the system's
``train_summary.json`` (budget, training time), ``config.yaml`` (label-free ``ssl:``,
``training.init_from``, ``training.seed``, import_model's ``pretrained:``) and
``train_info.json`` / ``run_info.json`` (machine, date, commit, protocol, training and
evaluation corpora, calibration data).  Per protocol the page has one table per question
(networks, back-ends, QMF, PLDA adaptation, label-free against supervised, seeds,
pretrained, cross-corpus, combined training, subgroups), each read in generated sentences
(which differences the 95 % intervals separate), and the DET chart of every system
(``det_all*.png``, stage 7), copied into --charts beside the page so its links work
without exp/.  See pyutils.metrics.report.
"""
import argparse
import logging
import os
import sys

from pyutils.metrics.report import copy_charts, render
from pyutils.metrics.report_runs import collect
from pyutils.utils.fileio import atomic_output


def main(argv=None) -> int:
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(name)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="the page to write, e.g. RESULTS.md")
    parser.add_argument("--charts", help="folder of the DET charts the page links (default: "
                        "'results' beside --out); the page's older det_*.png there are removed")
    parser.add_argument("--backends", default="cosine,plda",
                        help="back-ends of the networks, label-free, seeds, pretrained and "
                             "corpus tables (comma list)")
    parser.add_argument("exp_dirs", nargs="+")
    args = parser.parse_args(argv)
    log = logging.getLogger("make_results")
    out_dir = os.path.dirname(os.path.abspath(args.out))
    charts_dir = os.path.abspath(args.charts or os.path.join(out_dir, "results"))
    try:
        missing = [d for d in args.exp_dirs if not os.path.isdir(d)]
        if missing:
            raise ValueError(f"{missing[0]}: no such experiment dir")
        groups = collect(args.exp_dirs)
        if not groups:
            raise ValueError("no results.json under " + " ".join(args.exp_dirs)
                             + " (run stage 7 first)")
        text, charts = render(groups, [b for b in args.backends.split(",") if b], out_dir,
                              charts_dir)
        for path in copy_charts(charts, charts_dir):
            log.info("removed %s (no longer linked)", path)
        with atomic_output(args.out) as out:
            out.write(text)
    except (OSError, ValueError, KeyError) as err:
        print(f"make_results: error: {err}", file=sys.stderr)
        return 1
    log.info("%s: %d sections, %d DET charts in %s", args.out, len(groups), len(charts),
             charts_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
