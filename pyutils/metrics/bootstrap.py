"""Speaker-level bootstrap confidence intervals of a trial metric.

Trials sharing a speaker are dependent, so resampling trials gives intervals
that are too narrow.  Each replicate draws speakers with replacement (the
speaker of each trial is its enrolment side, ``utt1``) and keeps every trial
of a drawn speaker once per draw; the interval is the percentile interval of
the metric over the replicates.  The seed is fixed, so a rerun gives the same
interval.
"""
from __future__ import annotations

from typing import Callable, Sequence, Tuple

import numpy as np

Metric = Callable[[np.ndarray, np.ndarray], float]


def speaker_bootstrap_ci(metric: Metric, scores: Sequence[float], labels: Sequence[int],
                         speakers: Sequence[str], num_replicates: int = 1000,
                         level: float = 0.95, seed: int = 777) -> Tuple[float, float]:
    """Return the ``level`` percentile interval of ``metric(scores, labels)``.

    ``speakers[i]`` is the speaker of trial ``i``.  Replicates without a target
    or without a non-target trial are drawn again.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel().astype(np.int64)
    spk_ids, trial_spk = np.unique(np.asarray(speakers), return_inverse=True)
    if not len(scores) == len(labels) == len(trial_spk):
        raise ValueError("scores, labels and speakers differ in length")
    if len(spk_ids) < 2:
        raise ValueError("a speaker bootstrap needs at least 2 speakers")
    order = np.argsort(trial_spk, kind="stable")
    starts = np.searchsorted(trial_spk[order], np.arange(len(spk_ids) + 1))
    rng = np.random.default_rng(seed)
    values = []
    while len(values) < num_replicates:
        drawn = rng.integers(0, len(spk_ids), len(spk_ids))
        index = np.concatenate([order[starts[s]:starts[s + 1]] for s in drawn])
        picked = labels[index]
        if picked.all() or not picked.any():
            continue
        values.append(metric(scores[index], picked))
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)
