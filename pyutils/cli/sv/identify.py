"""Who is speaking: a test clip against every enrolled speaker, best first.

    sv identify -p exp/asc/xvector/package test.wav
    sv identify -p PKG test.wav --top 3 --backend plda --threshold min_dcf --json

Scores the clip against each speaker model of the store (sv enroll; PLDA with
each speaker's count), prints the --top best with their scores and LLRs, and
names the best speaker only if its score passes the threshold (as sv verify:
eer, min_dcf, bayes or a number on the score scale); otherwise "none".
"""
from __future__ import annotations

import json

import numpy as np

from pyutils.cli.sv.common import (SvError, add_package_options, list_inputs, open_backend,
                                   open_package, resolve_backend)
from pyutils.cli.sv.enrolled import (add_store_option, calibrated_llrs, embed_with_durations,
                                     point_text, read_speakers, saved_point)
from pyutils.cli.sv.verify import decide


def add_parser(parser) -> None:
    add_package_options(parser)
    parser.add_argument("test", help="the test audio file")
    add_store_option(parser)
    parser.add_argument("--backend", help="cosine or plda (default: cosine)")
    parser.add_argument("--top", type=int, default=5, help="speakers listed (default 5)")
    parser.add_argument("--threshold", default="eer",
                        help="eer, min_dcf, bayes, or a score value (default: eer)")
    parser.add_argument("--p-target", type=float, default=0.01)
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args) -> int:
    from pyutils.backends.speakers import score_models
    package = open_package(args.package)
    path, speakers = read_speakers(package, args)
    if not speakers:
        raise SvError(f"no speakers enrolled in {path} (sv enroll -p PKG --speaker NAME CLIP...)")
    kind = resolve_backend(package, args.backend)
    backend = open_backend(package, kind)
    vectors, seconds = embed_with_durations(package, list_inputs([args.test], unique=False),
                                            args, desc="identify")
    names = sorted(speakers)
    means = np.stack([speakers[n].mean for n in names])
    scores = score_models(backend, means, [speakers[n].count for n in names], vectors[0][None])[:, 0]
    calibration = package.calibration(kind)
    test_q = {"dur": seconds[0], "mag": float(np.linalg.norm(vectors[0]))}
    calibrated = [calibrated_llrs(calibration, [s], _quality(speakers[n], calibration), [test_q])
                  for n, s in zip(names, scores)]
    llrs = [llr for llr, _ in calibrated]
    qmf = bool(calibrated and calibrated[0][1] == "QMF")
    # best first: by LLR when QMF makes it differ from the score's order, else by score
    key = np.array([l[0] for l in llrs]) if qmf else scores
    order = np.argsort(-key, kind="stable")[:max(1, args.top)]
    best = int(order[0])
    verdict = decide(calibration, float(scores[best]), args.threshold, args.p_target,
                     float(llrs[best][0]) if qmf else None)
    point = None if verdict["threshold_kind"] == "given" else \
        saved_point(calibration, args.threshold, args.p_target, qmf)
    ranked = [{"speaker": names[i], "score": float(scores[i]), "count": speakers[names[i]].count,
               "llr": None if llrs[i] is None else float(llrs[i][0])} for i in order]
    result = {"test": args.test, "backend": kind, "store": path, "ranked": ranked,
              "identified": names[best] if verdict["decision"] == "accept" else "none",
              "threshold": verdict["threshold"], "threshold_kind": verdict["threshold_kind"],
              "why": verdict["why"], "error_rates": point}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"test: {args.test}\nspeakers: {len(names)} in {path} (backend {kind})")
    for rank, row in enumerate(ranked, 1):
        llr = "" if row["llr"] is None else f", LLR {row['llr']:.3g}"
        print(f"{rank}. {row['speaker']}: score {row['score']:.6g}{llr} "
              f"(model of {row['count']} clip(s))")
    if verdict["decision"] is None:
        print(f"identified: none decided: {verdict['why']}")
        return 0
    on_llr = "LLR" in verdict["threshold_kind"]
    value = llrs[best][0] if on_llr else scores[best]
    print(f"identified: {result['identified']} (best {'LLR' if on_llr else 'score'} {value:.6g} "
          f"{'>=' if verdict['decision'] == 'accept' else '<'} threshold "
          f"{verdict['threshold']:.6g} ({verdict['threshold_kind']}))")
    if point:
        print(point_text(point))
    return 0


def _quality(speaker, calibration) -> dict:
    if calibration is not None and calibration.qmf:
        missing = [m for m in calibration.qmf["measures"] if m not in speaker.quality]
        if missing:
            raise SvError(f"the package's calibration uses QMF ({', '.join(missing)}) but the "
                          f"enrolled model has no such measure; enrol again with sv enroll")
    return speaker.quality
