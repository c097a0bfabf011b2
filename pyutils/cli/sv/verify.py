"""Same speaker or not: enrolment file(s) against a test file, to a score, an LLR and a decision.

    sv verify -p exp/asc/xvector/package enrol.wav test.wav
    sv verify -p PKG enrol1.wav enrol2.wav enrol3.wav test.wav --threshold min_dcf

The last file is the test; the others form the enrolment model (the mean of
their embeddings, as Kaldi's ivector-mean).  The score comes from the
package's back-end (--backend; default cosine), the LLR from its
calibration, and the decision compares the score with a threshold saved with
the calibration (--threshold eer | min_dcf), the Bayes threshold of the LLR
at --p-target (bayes), or a number on the score scale.  A package without
calibration prints the score alone (and decides only with a number).
"""
from __future__ import annotations

import json
import math

import numpy as np

from pyutils.cli.sv.common import (SvError, add_package_options, embed_items, list_inputs,
                                   mean_embedding, open_package, resolve_backend)


def add_parser(parser) -> None:
    add_package_options(parser)
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="enrolment audio file(s), then the test audio file")
    parser.add_argument("--backend", help="cosine or plda (default: cosine)")
    parser.add_argument("--threshold", default="eer",
                        help="eer, min_dcf, bayes, or a score value (default: eer)")
    parser.add_argument("--p-target", type=float, default=0.01,
                        help="target prior of the bayes threshold (default 0.01)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def decide(calibration, score: float, threshold: str, p_target: float) -> dict:
    """LLR and decision of ``score``; says why when there is none."""
    result = {"score": score, "llr": None, "threshold": None, "threshold_kind": threshold,
              "decision": None, "why": ""}
    if calibration is not None:
        result["llr"] = float(calibration.llr([score])[0])
    try:
        result["threshold"] = float(threshold)
        result["threshold_kind"] = "given"
    except ValueError:
        if calibration is None:
            result["why"] = ("the package has no calibration, so no LLR and no saved threshold; "
                             "give --threshold SCORE, or package a calibrated model")
            return result
        from pyutils.deploy.package import PackageError
        try:
            result["threshold"] = calibration.threshold(threshold, p_target)
        except PackageError as err:
            raise SvError(f"--threshold {threshold}: {err}") from None
    if not math.isfinite(result["threshold"]):
        raise SvError(f"--threshold {threshold}: not a finite number")
    result["decision"] = "accept" if score >= result["threshold"] else "reject"
    return result


def run(args) -> int:
    if len(args.files) < 2:
        raise SvError("give at least one enrolment file and a test file")
    package = open_package(args.package)
    kind = resolve_backend(package, args.backend)
    backend = _backend(package, kind)
    items = list_inputs(args.files, unique=False)   # ids only seed the dither
    keys, vectors, _ = embed_items(package, items, args, desc="verify")
    enrol, test = mean_embedding(vectors[:-1]), vectors[-1]
    prepared = backend.prepare(np.stack([enrol, test]).astype(np.float64))
    score = float(backend.score(prepared[:1], prepared[1:])[0])
    result = decide(package.calibration(kind), score, args.threshold, args.p_target)
    result.update({"backend": kind, "enrolment": [s for _, s in items[:-1]],
                   "test": items[-1][1]})
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"enrolment: {', '.join(result['enrolment'])}\ntest: {result['test']}")
    print(f"score ({kind}): {score:.6g}")
    if result["llr"] is not None:
        print(f"LLR: {result['llr']:.4g} (calibrated; > 0 favours the same speaker)")
    if result["decision"] is None:
        print(f"decision: none: {result['why']}")
    else:
        relation = ">=" if result["decision"] == "accept" else "<"
        verdict = "same speaker" if result["decision"] == "accept" else "different speakers"
        print(f"decision: {result['decision'].upper()} ({verdict}): score {score:.6g} {relation} "
              f"threshold {result['threshold']:.6g} ({result['threshold_kind']})")
    return 0


def _backend(package, kind):
    from pyutils.deploy.package import PackageError
    try:
        return package.backend(kind)
    except (PackageError, ValueError, OSError) as err:
        raise SvError(str(err)) from None
