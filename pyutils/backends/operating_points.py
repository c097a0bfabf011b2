"""Decision thresholds with the error rates they had on the calibration trials.

A threshold alone says nothing to the person who deploys it; with it we keep
the miss and false-alarm rates it gave on the held-out calibration trials and
their 95 % intervals (Clopper-Pearson, exact binomial).  The intervals treat
trials as independent; trials sharing speakers are not, so they are a lower
bound on the real uncertainty (the speaker bootstrap of stage 7 is wider).
Accept when the value is ``>=`` the threshold (save_calibration's convention).

:func:`pick_threshold` chooses a new operating point for a target false-alarm
or miss rate from the stored calibration scores (``<system>.cal_scores``,
``score target|nontarget`` lines, written by stage 6 and packaged).
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from pyutils.utils.fileio import TableError, read_table, write_lines

CONFIDENCE = 0.95


def binomial_interval(errors: int, trials: int, confidence: float = CONFIDENCE
                      ) -> Tuple[float, float]:
    """Clopper-Pearson interval of a rate ``errors / trials``."""
    from scipy.stats import beta
    if trials <= 0:
        return (0.0, 1.0)
    alpha = 1.0 - confidence
    low = 0.0 if errors == 0 else float(beta.ppf(alpha / 2, errors, trials - errors + 1))
    high = 1.0 if errors == trials else float(beta.ppf(1 - alpha / 2, errors + 1, trials - errors))
    return low, high


def error_rates_at(threshold: float, target: np.ndarray, nontarget: np.ndarray,
                   scale: str = "score") -> dict:
    """Miss and false-alarm rates (and intervals, counts) of accepting ``>= threshold``."""
    target = np.asarray(target, dtype=np.float64)
    nontarget = np.asarray(nontarget, dtype=np.float64)
    misses = int(np.sum(target < threshold))
    false_alarms = int(np.sum(nontarget >= threshold))
    return {"threshold": float(threshold), "scale": scale,
            "p_miss": misses / max(1, target.size),
            "p_miss_ci": list(binomial_interval(misses, target.size)),
            "p_fa": false_alarms / max(1, nontarget.size),
            "p_fa_ci": list(binomial_interval(false_alarms, nontarget.size)),
            "num_target": int(target.size), "num_nontarget": int(nontarget.size),
            "confidence": CONFIDENCE}


def operating_points(thresholds: Dict[str, float], scores: np.ndarray, labels: np.ndarray,
                     llrs: Optional[np.ndarray] = None) -> Dict[str, dict]:
    """Error rates at each threshold; keys ending in ``_llr`` apply to ``llrs``."""
    labels = np.asarray(labels).astype(bool)
    points = {}
    for name, value in thresholds.items():
        on_llr = name.endswith("_llr")
        if on_llr and llrs is None:
            continue
        values = np.asarray(llrs if on_llr else scores, dtype=np.float64).reshape(len(labels), -1)
        if values.shape[1] != 1:
            continue
        values = values[:, 0]
        points[name] = error_rates_at(value, values[labels], values[~labels],
                                      "llr" if on_llr else "score")
    return points


def pick_threshold(target: np.ndarray, nontarget: np.ndarray, far: Optional[float] = None,
                   frr: Optional[float] = None) -> float:
    """The lowest threshold whose false-alarm rate is at most ``far``, or the highest
    whose miss rate is at most ``frr`` (exactly one of them)."""
    if (far is None) == (frr is None):
        raise ValueError("give exactly one of a target false-alarm rate and a target miss rate")
    rate = far if far is not None else frr
    if not 0 <= rate < 1:
        raise ValueError(f"a target rate must be in [0, 1), got {rate}")
    if far is not None:
        scores = np.sort(np.asarray(nontarget, dtype=np.float64))[::-1]
        if scores.size == 0:
            raise ValueError("no non-target calibration trials")
        allowed = int(math.floor(far * scores.size + 1e-9))
        # accept only scores above the (allowed+1)-th highest non-target score
        return float(np.nextafter(scores[allowed], np.inf))
    scores = np.sort(np.asarray(target, dtype=np.float64))
    if scores.size == 0:
        raise ValueError("no target calibration trials")
    allowed = int(math.floor(frr * scores.size + 1e-9))
    return float(scores[allowed])     # below it: at most `allowed` target scores


def point_name(far: Optional[float] = None, frr: Optional[float] = None) -> str:
    return f"far_{far:g}" if far is not None else f"frr_{frr:g}"


def write_cal_scores(path: str, scores: Sequence[float], labels: Sequence[int]) -> None:
    """``score target|nontarget`` lines (the calibration trials' scores), atomically."""
    write_lines(path, (f"{float(s):.8g} {'target' if l else 'nontarget'}"
                       for s, l in zip(np.ravel(scores), np.ravel(labels))))


def read_labelled_scores(path: str) -> Tuple[np.ndarray, np.ndarray]:
    """``(scores, labels)`` of a :func:`write_cal_scores` file, in file order (the
    calibration trials' order); labels 1 target, 0 non-target."""
    scores, labels = [], []
    for lineno, (value, label) in read_table(path, 2, 2):
        try:
            score = float(value)
        except ValueError:
            raise TableError(path, lineno, f"'{value}' is not a score") from None
        if not math.isfinite(score):
            raise TableError(path, lineno, f"score '{value}' is not finite")
        if label not in ("target", "nontarget"):
            raise TableError(path, lineno, f"label '{label}' is not target or nontarget")
        scores.append(score)
        labels.append(label == "target")
    return np.array(scores, dtype=np.float64), np.array(labels, dtype=np.int64)


def read_cal_scores(path: str) -> Tuple[np.ndarray, np.ndarray]:
    """``(target scores, non-target scores)`` of a :func:`write_cal_scores` file."""
    scores, labels = read_labelled_scores(path)
    return scores[labels == 1], scores[labels == 0]


def describe(point: dict) -> str:
    """'2.10 % misses [1.2, 3.4], 0.80 % false alarms [...] on 1,770 held-out trials'."""
    lo_m, hi_m = point["p_miss_ci"]
    lo_f, hi_f = point["p_fa_ci"]
    total = point["num_target"] + point["num_nontarget"]
    return (f"{100 * point['p_miss']:.2f} % misses [{100 * lo_m:.2f}, {100 * hi_m:.2f}], "
            f"{100 * point['p_fa']:.2f} % false alarms [{100 * lo_f:.2f}, {100 * hi_f:.2f}] "
            f"on {total:,} held-out calibration trials ({point['num_target']:,} target; "
            f"{100 * point.get('confidence', CONFIDENCE):g} % intervals)")
