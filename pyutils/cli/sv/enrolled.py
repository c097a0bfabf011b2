"""What ``sv enroll``, ``verify --speaker``, ``identify`` and ``threshold`` share.

Clips are embedded with the seconds of speech the network saw (voiced frames
times the frame shift; waveform models: the samples), the quality measure the
recipe writes as ``utt2speech_dur`` in stage 4, so a QMF calibration gets the
same inputs here.  Speaker models live in an enrolment store
(:mod:`pyutils.backends.speakers`), by default ``<package>/enrolled``.
"""
from __future__ import annotations

import os
from typing import List, Optional, Sequence, Tuple

import numpy as np

from pyutils.cli.sv.common import SvError, embed_items


def add_store_option(parser) -> None:
    parser.add_argument("--store", help="enrolment store dir (default: PACKAGE/enrolled; "
                        "a stage-4 embeddings dir with spk_xvector.scp works too)")


def store_path(package, args) -> str:
    return args.store or os.path.join(package.root, "enrolled")


def read_speakers(package, args):
    from pyutils.backends.speakers import read_store
    from pyutils.utils.fileio import TableError
    path = store_path(package, args)
    try:
        return path, read_store(path)
    except (TableError, OSError, ValueError) as err:
        raise SvError(f"enrolment store {path}: {err}") from None


def seconds_per_row(frontend) -> float:
    """Seconds of audio one row of the network input stands for."""
    if frontend.input_type == "waveform":
        return 1.0 / frontend.sample_rate
    return float(frontend.mfcc.options.get("frame-shift", 10.0)) / 1000.0


def min_chunk_seconds(package) -> float:
    """The package's shortest chunk (extraction min_chunk_size) in seconds."""
    return package.min_chunk_rows * seconds_per_row(package.frontend())


def embed_with_durations(package, items: Sequence[Tuple[str, str]], args, desc: str
                         ) -> Tuple[List[np.ndarray], List[float]]:
    """Embeddings of ``items`` and each clip's seconds of speech; bad audio is an SvError."""
    frontend = package.frontend(args.resample)
    row_seconds = seconds_per_row(frontend)
    rows: List[int] = []

    def counted(source: str, key: str) -> np.ndarray:
        x = frontend(source, key)
        rows.append(len(x))
        return x

    _, vectors, _ = embed_items(package, items, args, desc=desc, frontend=counted)
    return [np.asarray(v, dtype=np.float64).ravel() for v in vectors], \
        [n * row_seconds for n in rows]


def calibrated_llrs(calibration, scores: np.ndarray, enroll_quality: dict,
                    test_quality: Sequence[dict]) -> Tuple[Optional[np.ndarray], str]:
    """LLRs of ``scores`` (one enrolment side against tests): QMF when the calibration
    has it (with each side's ``{"dur": s, "mag": m}``), else linear; and which."""
    if calibration is None:
        return None, ""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if calibration.qmf:
        from pyutils.backends.qmf import QmfCalibration, trial_features
        model = QmfCalibration.from_dict(calibration.qmf)
        side1 = {m: [enroll_quality[m]] * len(scores) for m in model.measures}
        side2 = {m: [q[m] for q in test_quality] for m in model.measures}
        return model(scores, trial_features(model.measures, side1, side2)), "QMF"
    return calibration.llr(scores), "linear"


def saved_point(calibration, which: str, p_target: float, qmf: bool = False) -> Optional[dict]:
    """The error rates stored for the threshold ``which`` (as ``Calibration.threshold``
    finds it: eer, min_dcf, a name saved by sv threshold; bayes at ``p_target``, on the
    QMF LLR when ``qmf``), None when none was stored."""
    if calibration is None:
        return None
    if which == "bayes":
        if qmf:
            return (calibration.qmf.get("operating_points") or {}).get(f"bayes_p{p_target:g}_llr")
        return calibration.operating_points.get(f"bayes_p{p_target:g}")
    keys = [k for k in sorted(calibration.thresholds) if k == which or k.startswith(which + "_")]
    return calibration.operating_points.get(keys[0]) if keys else None


def point_text(point: Optional[dict]) -> str:
    """'at this threshold: ... on N held-out calibration trials', or ''."""
    from pyutils.backends.operating_points import describe
    return f"at this threshold: {describe(point)}" if point else ""
