"""Quality measure functions (QMF): calibration that knows the trial's durations.

A linear calibration maps every score to the same LLR whatever the speech
behind it; but a 2 s clip gives a less reliable (and lower) score than a 20 s
one.  QMF (Mandasari et al. 2013; IDLab's VoxSRC-20 system; WeSpeaker's
``score_calibration.py``) adds the trial's quality measures to the input of
the logistic regression:

    llr = w_s * score + sum_k w_k * q_k + b

with, per trial (sides 1 and 2):

* ``dur``: ``log min(d1, d2)``, ``log max(d1, d2)``: seconds of speech after
  VAD (the voiced frames the network saw; waveform models: the audio), each
  floored at 0.01 s;
* ``mag``: ``min(m1, m2)``, ``max(m1, m2)``: the magnitudes (L2 norms) of the
  raw embeddings, which many margin-trained networks make grow with quality.

WeSpeaker also adds max-min and max/min of each measure and the AS-norm
cohort means; min/max of log durations is the choice of the literature that
introduced QMF for duration and the one the deployment can always compute.
The weights are fitted by :meth:`LinearCalibration.fit` (the same
prior-weighted logistic regression) on held-out calibration trials.

Per-utterance measures live beside the embeddings (stage 4):
``utt2speech_dur`` (seconds) and ``utt2magnitude``, Kaldi text tables.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Sequence

import numpy as np

from pyutils.backends.calibration import LinearCalibration
from pyutils.utils.fileio import TableError, read_table, write_lines

# measure -> its per-utterance table (beside xvector.scp) and its trial columns
MEASURES = {"dur": ("utt2speech_dur", ("log_dur_min", "log_dur_max")),
            "mag": ("utt2magnitude", ("mag_min", "mag_max"))}
MIN_DURATION = 0.01     # seconds: floor of a duration before its log


def parse_measures(text: str) -> List[str]:
    """``"dur,mag"`` or ``"dur mag"`` -> ``["dur", "mag"]``; unknown names are an error."""
    names = [m for m in text.replace(",", " ").split() if m]
    for name in names:
        if name not in MEASURES:
            raise ValueError(f"unknown quality measure '{name}' (expected any of "
                             f"{', '.join(MEASURES)})")
    if len(set(names)) != len(names):
        raise ValueError(f"quality measures '{text}' name one twice")
    return names


def columns(measures: Sequence[str]) -> List[str]:
    """The QMF input columns after the score, in order."""
    return [c for m in measures for c in MEASURES[m][1]]


def side_value(measure: str, values) -> np.ndarray:
    """One side's per-utterance values on the scale the trial columns use."""
    v = np.asarray(values, dtype=np.float64)
    return np.log(np.maximum(v, MIN_DURATION)) if measure == "dur" else v


def trial_features(measures: Sequence[str], side1: Mapping[str, Sequence[float]],
                   side2: Mapping[str, Sequence[float]]) -> np.ndarray:
    """``(trials, 2 * len(measures))`` columns: min and max over the two sides of
    each measure (``side1[m][i]``, ``side2[m][i]``: trial ``i``'s raw values)."""
    cols = []
    for m in measures:
        a, b = side_value(m, side1[m]), side_value(m, side2[m])
        cols += [np.minimum(a, b), np.maximum(a, b)]
    n = len(next(iter(side1.values()))) if side1 else 0
    return np.stack(cols, axis=1) if cols else np.zeros((n, 0))


@dataclass
class QmfCalibration:
    """``llr = weights[0] * score + weights[1:] . trial_features + bias``."""

    measures: List[str]
    weights: List[float] = field(default_factory=list)
    bias: float = 0.0
    prior: float = 0.5

    @classmethod
    def fit(cls, scores: Sequence[float], features: np.ndarray, labels: Sequence[int],
            measures: Sequence[str], prior: float = 0.5) -> "QmfCalibration":
        x = np.column_stack([np.asarray(scores, dtype=np.float64).ravel(), features])
        if x.shape[1] != 1 + 2 * len(measures):
            raise ValueError(f"{x.shape[1] - 1} quality columns for measures {list(measures)}")
        linear = LinearCalibration.fit(x, labels, prior)
        return cls(list(measures), linear.weights, linear.bias, prior)

    def __call__(self, scores: Sequence[float], features: np.ndarray) -> np.ndarray:
        x = np.column_stack([np.asarray(scores, dtype=np.float64).ravel(), features])
        if x.shape[1] != len(self.weights):
            raise ValueError(f"QMF of {len(self.weights)} columns given {x.shape[1]}")
        return x @ np.asarray(self.weights) + self.bias

    def to_dict(self) -> dict:
        """The ``qmf`` entry of a calibration JSON."""
        return {"measures": list(self.measures), "columns": ["score"] + columns(self.measures),
                "weights": [float(w) for w in self.weights], "bias": float(self.bias),
                "prior": float(self.prior)}

    @classmethod
    def from_dict(cls, data: Mapping) -> "QmfCalibration":
        try:
            measures = parse_measures(" ".join(data["measures"]))
            weights = [float(w) for w in data["weights"]]
            if len(weights) != 1 + 2 * len(measures):
                raise ValueError(f"{len(weights)} weights for measures {measures}")
            return cls(measures, weights, float(data["bias"]), float(data.get("prior", 0.5)))
        except (KeyError, TypeError) as err:
            raise ValueError(f"bad QMF entry (missing or bad {err})") from None


# ---------------------------------------------------------------- per-utterance tables

def quality_path(emb_dir: str, measure: str) -> str:
    return os.path.join(emb_dir, MEASURES[measure][0])


def write_quality(emb_dir: str, measure: str, values: Mapping[str, float]) -> None:
    """``<emb_dir>/utt2speech_dur`` or ``utt2magnitude``, sorted by key, atomically."""
    write_lines(quality_path(emb_dir, measure),
                (f"{k} {float(values[k]):.6g}" for k in sorted(values)))


def read_quality(emb_dir: str, measures: Sequence[str]) -> Dict[str, Dict[str, float]]:
    """``{measure: {utt: value}}`` from the tables beside the embeddings; a bad line is a
    TableError naming it."""
    tables: Dict[str, Dict[str, float]] = {}
    for m in measures:
        path = quality_path(emb_dir, m)
        if not os.path.isfile(path):
            raise TableError(path, None, f"no quality measure '{m}' beside the embeddings "
                                         f"(stage 4 writes it: pyutils.cli.quality_measures)")
        table: Dict[str, float] = {}
        for lineno, (key, value) in read_table(path, 2, 2):
            try:
                number = float(value)
            except ValueError:
                raise TableError(path, lineno, f"'{value}' is not a number") from None
            if not math.isfinite(number) or number < 0:
                raise TableError(path, lineno, f"'{value}' is not a finite value >= 0")
            table[key] = number
        tables[m] = table
    return tables


def pair_features(measures: Sequence[str], quality1: Mapping[str, Mapping[str, float]],
                  quality2: Mapping[str, Mapping[str, float]], pairs: Sequence[tuple],
                  where: str = "trials") -> np.ndarray:
    """QMF columns of ``(utt1, utt2)`` pairs from per-utterance tables; an utterance
    without a value is a ValueError naming it."""
    side1: Dict[str, List[float]] = {m: [] for m in measures}
    side2: Dict[str, List[float]] = {m: [] for m in measures}
    for a, b in pairs:
        for m in measures:
            for utt, table, out in ((a, quality1[m], side1), (b, quality2[m], side2)):
                if utt not in table:
                    raise ValueError(f"{where}: utterance '{utt}' has no {MEASURES[m][0]} "
                                     f"value")
                out[m].append(table[utt])
    if not pairs:
        return np.zeros((0, 2 * len(measures)))
    return trial_features(measures, side1, side2)


def code_features(measures: Sequence[str], quality1: Mapping[str, Mapping[str, float]],
                  quality2: Mapping[str, Mapping[str, float]], names: Sequence[str],
                  first: np.ndarray, second: np.ndarray, where: str = "trials") -> np.ndarray:
    """:func:`pair_features` of the pairs ``(names[first[i]], names[second[i]])`` given as
    integer codes: one look-up per utterance, not per trial (same values and errors)."""
    side1: Dict[str, np.ndarray] = {}
    side2: Dict[str, np.ndarray] = {}
    for m in measures:
        for quality, codes, out in ((quality1, first, side1), (quality2, second, side2)):
            table = quality[m]
            values = np.array([table.get(name, np.nan) for name in names], dtype=np.float64)
            out[m] = values[codes]
            if np.isnan(out[m]).any():      # a missing value: the error of pair_features
                pairs = list(zip(np.asarray(names, dtype=object)[first].tolist(),
                                 np.asarray(names, dtype=object)[second].tolist()))
                return pair_features(measures, quality1, quality2, pairs, where)
    if len(first) == 0:
        return np.zeros((0, 2 * len(measures)))
    return trial_features(measures, side1, side2)
