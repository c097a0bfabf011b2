"""How far a threshold moves when it leaves the trials it was set on.

Stage 6 sets each system's thresholds on its calibration trials (the Bayes
threshold at the recipe's prior, the EER and minDCF points; stage 6 also keeps
the calibration trials' scores, from which we pick the thresholds for a target
false-alarm or miss rate, as ``sv threshold`` does).  Their error rates on
those trials are what a deployment is told (the *intended* rates).  Applied
unchanged to the evaluation trials -- another corpus's, in a cross-corpus run
-- they give other rates: the *measured* ones.  Both come with 95 %
Clopper-Pearson intervals (pyutils.backends.operating_points; they treat trials
as independent, so they are a lower bound on the real uncertainty).  For the
target-rate thresholds we also give the threshold the evaluation trials
themselves would have needed (``threshold_on_eval``).

A system ``<s>_qmf`` (stage 6's QMF LLRs) uses the QMF entry of ``<s>``'s
calibration: its Bayes threshold on the LLR and target-rate thresholds picked
on the calibration trials' QMF LLRs (recomputed from the stored calibration
scores and the calibration utterances' quality measures).
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from pyutils.backends.calibration import load_calibration
from pyutils.backends.operating_points import (operating_points, pick_threshold, point_name,
                                               read_labelled_scores)
from pyutils.backends.qmf import QmfCalibration, pair_features, read_quality
from pyutils.metrics.results import read_trials

Target = Tuple[str, float]      # ("far" | "frr", rate)
RATE_KEYS = ("p_miss", "p_miss_ci", "p_fa", "p_fa_ci", "num_target", "num_nontarget")


def parse_targets(text: str) -> List[Target]:
    """``"far=0.01 frr=0.05"`` -> ``[("far", 0.01), ("frr", 0.05)]``; bad text is a ValueError."""
    targets = []
    for item in text.replace(",", " ").split():
        kind, _, value = item.partition("=")
        try:
            rate = float(value)
        except ValueError:
            rate = -1.0
        if kind not in ("far", "frr") or not 0 <= rate < 1:
            raise ValueError(f"threshold target '{item}': expected far=RATE or frr=RATE "
                             f"with 0 <= RATE < 1")
        targets.append((kind, rate))
    return targets


def cal_scores_of(cal_json: str) -> str:
    """``<system>.cal_scores`` beside ``<system>.json`` (stage 6 writes both)."""
    return os.path.splitext(cal_json)[0] + ".cal_scores"


def _pick(thresholds: Dict[str, float], targets: Sequence[Target], values: np.ndarray,
          labels: np.ndarray, suffix: str) -> Dict[str, float]:
    for kind, rate in targets:
        far, frr = (rate, None) if kind == "far" else (None, rate)
        thresholds[point_name(far, frr) + suffix] = pick_threshold(
            values[labels == 1], values[labels == 0], far, frr)
    return thresholds


def _rates(point: dict) -> dict:
    return {k: point[k] for k in RATE_KEYS}


def _qmf_cal_llrs(info: dict, cal_x: np.ndarray, cal_labels: np.ndarray,
                  cal_json: str) -> np.ndarray:
    """The calibration trials' QMF LLRs: the stored scores (trial order) with the
    quality measures of the calibration utterances."""
    entry = info.get("qmf")
    if not entry:
        raise ValueError(f"{cal_json}: no QMF calibration (stage 6 ran without qmf_measures)")
    model = QmfCalibration.from_dict(entry)
    trials = read_trials(info["trained_on"])
    if len(trials) != len(cal_x) or any(bool(t[2]) != bool(l) for t, l in zip(trials, cal_labels)):
        raise ValueError(f"{cal_scores_of(cal_json)} does not hold the scores of "
                         f"{info['trained_on']} in order (rerun stage 6)")
    quality = read_quality(entry["quality_dir"], model.measures)
    features = pair_features(model.measures, quality, quality,
                             [(a, b) for a, b, _ in trials], info["trained_on"])
    return model(cal_x, features)


def decision_thresholds(stored: Dict[str, float]) -> Dict[str, float]:
    """The stored thresholds, one per decision: a threshold on the LLR that has a raw-score
    twin (``bayes_p0.01_llr`` beside ``bayes_p0.01``) is the same decision, kept once."""
    return {k: v for k, v in stored.items() if not (k.endswith("_llr") and k[:-4] in stored)}


def needs_llrs(cal_json: str) -> bool:
    """Whether a threshold of ``cal_json`` is on the LLR only (fusion): then
    :func:`threshold_shift` needs the evaluation LLRs, else the scores suffice."""
    return any(k.endswith("_llr") for k in decision_thresholds(load_calibration(cal_json)[1]))


def threshold_shift(cal_json: str, eval_scores: np.ndarray, eval_labels: np.ndarray,
                    targets: Sequence[Target] = (), qmf: bool = False,
                    eval_llrs: Optional[np.ndarray] = None) -> dict:
    """Each threshold of ``cal_json`` (and one per target rate) with its error rates on
    the calibration trials (``intended``) and on the evaluation trials (``measured``).

    ``eval_scores`` are the system's evaluation scores (``qmf``: its QMF LLRs) and
    ``eval_labels`` their labels; ``eval_llrs`` (the calibrated LLRs) are needed only
    for a threshold on the LLR without a raw-score twin (fusion).  Returns
    ``{"calibration": cal_json, "calibration_trials": path, "points": {name:
    {"threshold", "scale", "intended": rates, "measured": rates[, "threshold_on_eval"]}}}``.
    """
    calibration, stored, info = load_calibration(cal_json)
    cal_x, cal_labels = read_labelled_scores(cal_scores_of(cal_json))
    eval_scores = np.asarray(eval_scores, dtype=np.float64).ravel()
    eval_labels = np.asarray(eval_labels).ravel().astype(np.int64)
    if qmf:
        cal_values = _qmf_cal_llrs(info, cal_x, cal_labels, cal_json)
        thresholds = dict(info["qmf"].get("thresholds", {}))
        thresholds = _pick(thresholds, targets, cal_values, cal_labels, "_llr")
        # the QMF system's "scores" are its LLRs: every threshold is on that one scale
        intended = operating_points(thresholds, cal_values, cal_labels, cal_values)
        measured = operating_points(thresholds, eval_scores, eval_labels, eval_scores)
    else:
        thresholds = _pick(decision_thresholds(stored), targets, cal_x, cal_labels, "")
        intended = operating_points(thresholds, cal_x, cal_labels, calibration(cal_x))
        measured = operating_points(thresholds, eval_scores, eval_labels, eval_llrs)
    points = {}
    for name, point in intended.items():
        if name not in measured:
            continue
        entry = {"threshold": point["threshold"], "scale": point["scale"],
                 "intended": _rates(point), "measured": _rates(measured[name])}
        kind = name.split("_", 1)[0]
        if kind in ("far", "frr") and (eval_labels == 1).any() and (eval_labels == 0).any():
            rate = float(name.split("_")[1])
            far, frr = (rate, None) if kind == "far" else (None, rate)
            entry["threshold_on_eval"] = pick_threshold(
                eval_scores[eval_labels == 1], eval_scores[eval_labels == 0], far, frr)
        points[name] = entry
    return {"calibration": cal_json, "calibration_trials": info.get("trained_on"),
            "points": points}


def describe_shift(system: str, shift: dict) -> List[str]:
    """Markdown table rows: system, threshold, intended and measured miss / FA (%)."""
    def pct(rates: dict, key: str) -> str:
        lo, hi = rates[f"{key}_ci"]
        return f"{100 * rates[key]:.2f} [{100 * lo:.2f}, {100 * hi:.2f}]"
    rows = []
    for name, p in shift["points"].items():
        rows.append(f"| {system} | {name} | {p['threshold']:.4g} ({p['scale']}) | "
                    f"{pct(p['intended'], 'p_miss')} | {pct(p['intended'], 'p_fa')} | "
                    f"{pct(p['measured'], 'p_miss')} | {pct(p['measured'], 'p_fa')} |")
    return rows


TABLE_HEADER = ("| system | threshold | value | intended miss (%) | intended FA (%) | "
                "measured miss (%) | measured FA (%) |\n|---|---|---|---|---|---|---|")
