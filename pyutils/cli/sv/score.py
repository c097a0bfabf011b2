"""Score a trial list with a package's back-end (trials + embeddings -> scores).

    sv score -p exp/asc/xvector/package --trials data/eval/trials \\
        --enroll-scp emb.scp --out scores [--backend plda] [--llr]

Embeddings come from ``sv embed`` (or stage 4); scoring is the recipe's
streaming scorer (``pyutils.backends.scoring``), ``utt1 utt2 score`` lines in
trial order.  ``--llr`` writes calibrated LLRs instead of raw scores.
"""
from __future__ import annotations

import numpy as np

from pyutils.cli.sv.common import (SvError, add_package_options, open_backend, open_package,
                                   resolve_backend)
from pyutils.utils.fileio import TableError, atomic_output


def add_parser(parser) -> None:
    add_package_options(parser, embeds=False)
    parser.add_argument("--trials", required=True, help="utt1 utt2 [target|nontarget] lines")
    parser.add_argument("--enroll-scp", required=True, help="embeddings of the utt1 side")
    parser.add_argument("--test-scp", help="embeddings of the utt2 side (default: --enroll-scp)")
    parser.add_argument("--out", required=True, help="output: utt1 utt2 score lines")
    parser.add_argument("--backend", help="cosine or plda (default: cosine)")
    parser.add_argument("--llr", action="store_true",
                        help="write calibrated LLRs (needs the package's calibration)")


def score_with_package(package, kind: str, trials: str, enroll_scp: str, test_scp: str,
                       out: str, llr: bool = False) -> int:
    """Score ``trials`` into ``out``; returns the trial count."""
    from pyutils.backends.embeddings import load_embeddings
    from pyutils.backends.scoring import score_trials
    backend = open_backend(package, kind)
    calibration = package.calibration(kind) if llr else None
    if llr and calibration is None:
        raise SvError(f"--llr: the package has no calibration for '{kind}'")
    try:
        enroll = load_embeddings(enroll_scp)
        test = enroll if test_scp in (None, enroll_scp) else load_embeddings(test_scp)
        count = score_trials(trials, enroll, test, backend, out)
        if calibration is not None:
            write_llrs(out, out, calibration)
    except (TableError, ValueError, OSError) as err:
        raise SvError(str(err)) from None
    return count


def write_llrs(scores_path: str, out_path: str, calibration) -> None:
    """``utt1 utt2 llr`` lines of a score file through the calibration (atomically)."""
    with open(scores_path) as src:
        rows = [line.split() for line in src]
    llrs = calibration.llr(np.array([float(r[2]) for r in rows]))
    with atomic_output(out_path) as out:
        out.writelines(f"{r[0]} {r[1]} {v:.8g}\n" for r, v in zip(rows, llrs))


def run(args) -> int:
    package = open_package(args.package)
    kind = resolve_backend(package, args.backend)
    count = score_with_package(package, kind, args.trials, args.enroll_scp, args.test_scp,
                               args.out, args.llr)
    print(f"sv score: {count} trials scored with {kind}{' (LLRs)' if args.llr else ''} "
          f"into {args.out}")
    return 0
