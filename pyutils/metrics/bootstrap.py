"""Speaker-level bootstrap confidence intervals of a trial metric.

Trials sharing a speaker are dependent, so resampling trials gives intervals
that are too narrow.  On a list of speaker pairs (all-pairs lists such as
asc-v1 and so762-v1, or Vox1-O/E/H) a trial depends on *both* its sides'
speakers, so the bootstrap resamples speakers as a two-sided (U-statistic)
bootstrap does: each replicate draws the speakers with replacement, speaker
``s`` ``k_s`` times, and keeps the trials whose both sides' speakers were
drawn, with multiplicity -- a trial between speakers ``a != b`` counts
``k_a * k_b`` times (every pair of their copies), a trial within speaker
``a`` (a target trial) ``k_a`` times (once per copy: two copies of one
speaker are not two speakers).  Both weights are 1 in expectation (to
``1 - 1/n`` for ``a != b``), so a replicate is an unbiased copy of the list.
The interval is the percentile interval of the metric over the replicates;
the seed is fixed, so a rerun gives the same interval.

Speed: the trials are sorted by score once (stably); a replicate repeats that
order by its weights, so the metric receives its trials already sorted, in the
order a stable sort of the replicate would give (ties in trial order).  A
metric that skips its own sort (``compute_eer``/``compute_min_dcf`` with
``presorted=True``) then gives the values of sorting each replicate, without
the sorts that dominate on so762-v1's 3.1 M trials.

Given one speaker per trial instead of a pair, a trial depends on that
speaker only (the other side used once, as single-use test segments): it
counts ``k_s`` times, the one-sided cluster bootstrap.
"""
from __future__ import annotations

from typing import Callable, Sequence, Tuple

import numpy as np

Metric = Callable[[np.ndarray, np.ndarray], float]


def trial_speaker_index(speakers) -> Tuple[int, np.ndarray, np.ndarray]:
    """(number of speakers, side-1 and side-2 speaker index per trial) of
    ``speakers``: one speaker per trial (both sides get it) or a pair per trial."""
    array = np.asarray(speakers)
    if array.ndim == 1:
        names, side1 = np.unique(array, return_inverse=True)
        return len(names), side1.ravel(), side1.ravel()
    if array.ndim != 2 or array.shape[1] != 2:
        raise ValueError("speakers: give one speaker or one (speaker, speaker) pair per trial")
    names, index = np.unique(array, return_inverse=True)
    index = index.reshape(array.shape)
    return len(names), index[:, 0], index[:, 1]


def replicate_weights(counts: np.ndarray, side1: np.ndarray, side2: np.ndarray) -> np.ndarray:
    """How many times each trial counts when speaker ``s`` was drawn ``counts[s]``
    times: ``k_a * k_b`` between two speakers, ``k_a`` within one."""
    within = side1 == side2
    return np.where(within, counts[side1], counts[side1] * counts[side2])


def speaker_bootstrap_ci(metric: Metric, scores: Sequence[float], labels: Sequence[int],
                         speakers, num_replicates: int = 1000,
                         level: float = 0.95, seed: int = 777) -> Tuple[float, float]:
    """Return the ``level`` percentile interval of ``metric(scores, labels)``.

    ``speakers[i]`` is the (enrolment speaker, test speaker) pair of trial
    ``i``, or its one speaker (module docstring).  Replicates without a target
    or without a non-target trial are drawn again.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel().astype(np.int64)
    num_speakers, side1, side2 = trial_speaker_index(speakers)
    if not len(scores) == len(labels) == len(side1):
        raise ValueError("scores, labels and speakers differ in length")
    if num_speakers < 2:
        raise ValueError("a speaker bootstrap needs at least 2 speakers")
    rng = np.random.default_rng(seed)
    order = np.argsort(scores, kind="stable")        # sorted once: each replicate is too
    scores, labels, side1, side2 = scores[order], labels[order], side1[order], side2[order]
    trials = np.arange(len(scores))
    values = []
    while len(values) < num_replicates:
        counts = np.bincount(rng.integers(0, num_speakers, num_speakers),
                             minlength=num_speakers)
        index = np.repeat(trials, replicate_weights(counts, side1, side2))
        picked = labels[index]
        if picked.all() or not picked.any():
            continue
        values.append(metric(scores[index], picked))
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)
