"""Same speaker or not: enrolment file(s) against a test file, to a score, an LLR and a decision.

    sv verify -p exp/asc/xvector/package enrol.wav test.wav
    sv verify -p PKG enrol1.wav enrol2.wav enrol3.wav test.wav --threshold min_dcf
    sv verify -p PKG --speaker alice test.wav          # a speaker of sv enroll's store

The last file is the test; the others form the enrolment model (the mean of
their embeddings and their count, as Kaldi's ivector-mean and num_utts; with
--speaker the model comes from the enrolment store instead).  The score comes from the
package's back-end (--backend; default cosine), the LLR from its
calibration, and the decision compares the score with a threshold saved with
the calibration (--threshold eer | min_dcf), the Bayes threshold of the LLR
at --p-target (bayes), or a number on the score scale.  A package without
calibration prints the score alone (and decides only with a number).  With a
saved threshold the miss and false-alarm rates it had on the held-out
calibration trials are printed with the decision; a calibration with QMF
gives the LLR from the score and both sides' seconds of speech.
"""
from __future__ import annotations

import json
import math
from typing import Optional

import numpy as np

from pyutils.cli.sv.common import (SvError, add_package_options, list_inputs, mean_embedding,
                                   open_backend, open_package, resolve_backend)
from pyutils.cli.sv.enrolled import (add_store_option, calibrated_llrs, embed_with_durations,
                                     point_text, read_speakers, saved_point)


def add_parser(parser) -> None:
    add_package_options(parser)
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="enrolment audio file(s), then the test audio file (with "
                             "--speaker: the test file only)")
    parser.add_argument("--speaker", help="an enrolled speaker (sv enroll) instead of "
                        "enrolment files")
    add_store_option(parser)
    parser.add_argument("--backend", help="cosine or plda (default: cosine)")
    parser.add_argument("--threshold", default="eer",
                        help="eer, min_dcf, bayes, or a score value (default: eer)")
    parser.add_argument("--p-target", type=float, default=0.01,
                        help="target prior of the bayes threshold (default 0.01)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def decide(calibration, score: float, threshold: str, p_target: float,
           llr: Optional[float] = None) -> dict:
    """LLR and decision of ``score``; says why when there is none.  ``llr``: the LLR
    when the caller computed it (QMF); then ``bayes`` decides on it."""
    result = {"score": score, "llr": None, "threshold": None, "threshold_kind": threshold,
              "decision": None, "why": ""}
    if calibration is not None:
        result["llr"] = float(calibration.llr([score])[0]) if llr is None else float(llr)
    if llr is not None and threshold == "bayes":
        result["threshold"] = math.log((1 - p_target) / p_target)
        result["threshold_kind"] = "bayes, on the QMF LLR"
        result["decision"] = "accept" if llr >= result["threshold"] else "reject"
        return result
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
    from pyutils.backends.speakers import model_quality, score_models
    if args.speaker and len(args.files) != 1:
        raise SvError("with --speaker give the test file only")
    if not args.speaker and len(args.files) < 2:
        raise SvError("give at least one enrolment file and a test file (or --speaker NAME)")
    package = open_package(args.package)
    kind = resolve_backend(package, args.backend)
    backend = open_backend(package, kind)
    items = list_inputs(args.files, unique=False)   # ids only seed the dither
    if args.speaker:
        path, speakers = read_speakers(package, args)
        if args.speaker not in speakers:
            raise SvError(f"speaker '{args.speaker}' is not enrolled in {path} (enrolled: "
                          f"{', '.join(sorted(speakers)) or 'none'}; sv enroll adds one)")
        model = speakers[args.speaker]
        vectors, seconds = embed_with_durations(package, items, args, desc="verify")
        enrol, count, enrol_q = model.mean, model.count, model.quality
        enrolment = [f"speaker '{args.speaker}' ({count} clip(s))"]
    else:
        vectors, seconds = embed_with_durations(package, items, args, desc="verify")
        enrol, count = mean_embedding(vectors[:-1]), len(vectors) - 1
        enrol_q = model_quality(seconds[:-1], vectors[:-1])
        enrolment = [s for _, s in items[:-1]]
    test = vectors[-1]
    score = float(score_models(backend, np.asarray(enrol)[None], [count], test[None])[0, 0])
    calibration = package.calibration(kind)
    test_q = {"dur": seconds[-1], "mag": float(np.linalg.norm(test))}
    if calibration is not None and calibration.qmf and \
            any(m not in enrol_q for m in calibration.qmf["measures"]):
        raise SvError(f"the calibration uses QMF but speaker '{args.speaker}' was enrolled "
                      f"without quality measures; enrol again with sv enroll")
    llr, how = calibrated_llrs(calibration, [score], enrol_q, [test_q])
    result = decide(calibration, score, args.threshold, args.p_target,
                    None if how != "QMF" else float(llr[0]))
    point = None if result["threshold_kind"] == "given" else \
        saved_point(calibration, args.threshold, args.p_target, how == "QMF")
    result.update({"backend": kind, "enrolment": enrolment, "test": items[-1][1],
                   "calibration": how or None, "speech_seconds": {"test": seconds[-1],
                                                                  "enrolment": enrol_q.get("dur")},
                   "error_rates": point})
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"enrolment: {', '.join(result['enrolment'])}\ntest: {result['test']}")
    print(f"score ({kind}): {score:.6g}")
    if result["llr"] is not None:
        print(f"LLR: {result['llr']:.4g} ({result['calibration']} calibration; > 0 favours "
              f"the same speaker)")
    if result["decision"] is None:
        print(f"decision: none: {result['why']}")
    else:
        relation = ">=" if result["decision"] == "accept" else "<"
        verdict = "same speaker" if result["decision"] == "accept" else "different speakers"
        on_llr = "LLR" in result["threshold_kind"]
        print(f"decision: {result['decision'].upper()} ({verdict}): "
              f"{'LLR' if on_llr else 'score'} {result['llr'] if on_llr else score:.6g} "
              f"{relation} threshold {result['threshold']:.6g} ({result['threshold_kind']})")
        if point:
            print(point_text(point))
    return 0

