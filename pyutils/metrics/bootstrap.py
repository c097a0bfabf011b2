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


def speaker_sides(first: np.ndarray, second: np.ndarray, speaker_of: Sequence[str]
                  ) -> Tuple[int, np.ndarray, np.ndarray]:
    """:func:`trial_speaker_index` of the pairs ``(speaker_of[first[i]],
    speaker_of[second[i]])`` from integer utterance codes: the same speaker indices
    (the sorted speakers of these trials), without a string per trial."""
    used = np.unique(np.concatenate([first, second]))
    names = np.asarray(speaker_of, dtype=object)[used]
    speakers = sorted(set(names.tolist()))
    rank = {name: i for i, name in enumerate(speakers)}
    of_code = np.zeros(len(speaker_of), dtype=np.int32)
    of_code[used] = [rank[name] for name in names.tolist()]
    return len(speakers), of_code[first], of_code[second]


def _cost_values(tar_rejected: np.ndarray, non_rejected: np.ndarray, num_target: int,
                 num_nontarget: int, p_target: float) -> np.ndarray:
    """The detection cost of :func:`pyutils.metrics.dcf.compute_min_dcf` (C_miss = C_fa = 1)
    at operating points given by their rejected target and non-target counts, computed
    with the same operations, so bit for bit the values it minimises."""
    fnrs = tar_rejected / float(num_target)
    fprs = 1 - non_rejected / float(num_nontarget)
    return 1.0 * fnrs * p_target + 1.0 * fprs * (1 - p_target)


class _PairWeights:
    """:func:`replicate_weights` of the target and the non-target trials, looked up per
    speaker pair (one gather per trial from a table of ``k_a * k_b``, ``k_a`` on the
    diagonal) where the pairs of speakers are few enough for a table."""

    def __init__(self, num_speakers: int, t1, t2, n1, n2):
        self.num = num_speakers
        self.sides = (t1, t2, n1, n2)
        self.table = num_speakers ** 2 <= (1 << 22)
        if self.table:
            self.pairs = [(a.astype(np.int64) * num_speakers + b).astype(np.int32)
                          for a, b in ((t1, t2), (n1, n2))]

    def __call__(self, counts: np.ndarray):
        if not self.table:
            t1, t2, n1, n2 = self.sides
            return replicate_weights(counts, t1, t2), replicate_weights(counts, n1, n2)
        table = np.outer(counts, counts)
        np.fill_diagonal(table, counts)
        table = table.ravel()
        return table[self.pairs[0]], table[self.pairs[1]]


def speaker_bootstrap_eer_dcf(scores: Sequence[float], labels: Sequence[int], num_speakers: int,
                              side1: np.ndarray, side2: np.ndarray, num_replicates: int = 1000,
                              p_target: float = 0.01, level: float = 0.95, seed: int = 777
                              ) -> Tuple[Tuple[float, float], Tuple[float, float]]:
    """The intervals :func:`speaker_bootstrap_ci` gives for Kaldi's EER and minDCF(``p_target``)
    (``compute_eer``/``compute_min_dcf`` as metrics; speaker indices as
    :func:`trial_speaker_index` returns them): percentiles of :func:`eer_dcf_replicates`."""
    values = eer_dcf_replicates(scores, labels, num_speakers, side1, side2, num_replicates,
                                p_target, seed)
    return percentile_intervals(values, level)


def paired_difference_ci(scores_a: Sequence[float], scores_b: Sequence[float],
                         labels: Sequence[int], num_speakers: int, side1: np.ndarray,
                         side2: np.ndarray, num_replicates: int = 1000, p_target: float = 0.01,
                         level: float = 0.95, seed: int = 777
                         ) -> Tuple[Tuple[float, float], Tuple[float, float]]:
    """Intervals of system b's EER and minDCF minus system a's, both scoring the same trials:
    each replicate draws the speakers once and evaluates both systems on that draw (the draws
    of :func:`eer_dcf_replicates` depend on the seed, the speakers and the labels only), so the
    variation the two systems share does not widen the interval, as it widens two separate
    intervals: those may overlap where the paired difference excludes 0."""
    a, b = (eer_dcf_replicates(scores, labels, num_speakers, side1, side2, num_replicates,
                               p_target, seed) for scores in (scores_a, scores_b))
    return percentile_intervals(b - a, level)


def percentile_intervals(values: np.ndarray, level: float = 0.95
                         ) -> Tuple[Tuple[float, float], Tuple[float, float]]:
    """Percentile intervals of the columns (EER, minDCF) of :func:`eer_dcf_replicates`."""
    tail = 100 * (1 - level) / 2
    return tuple((float(low), float(high)) for low, high in
                 (np.percentile(values[:, j], [tail, 100 - tail]) for j in range(2)))


def eer_dcf_replicates(scores: Sequence[float], labels: Sequence[int], num_speakers: int,
                       side1: np.ndarray, side2: np.ndarray, num_replicates: int = 1000,
                       p_target: float = 0.01, seed: int = 777) -> np.ndarray:
    """``(num_replicates, 2)``: Kaldi's EER and minDCF(``p_target``) of each replicate
    :func:`speaker_bootstrap_ci` draws (same generator, seed and redraws), in one pass over
    the replicates and without building them.

    A replicate repeats trial ``i`` ``w_i`` times (:func:`replicate_weights`) in the
    sorted order, so its error counts at a position are cumulative sums of the weights:
    the EER reads the scores at Kaldi's positions through those sums
    (``searchsorted``), and minDCF, the first minimum of a cost that falls along a run
    of non-targets and rises along the copies of a target, is the least cost at the
    end of each non-target run and at the first copy of each target.  Both are computed
    from the same integer counts with the same float operations as the metrics on the
    repeated trials, so the intervals are identical, for about the cost of one pass
    over the weights per replicate.
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    is_target = np.asarray(labels).ravel().astype(bool)
    if not len(scores) == len(is_target) == len(side1) == len(side2):
        raise ValueError("scores, labels and speakers differ in length")
    if num_speakers < 2:
        raise ValueError("a speaker bootstrap needs at least 2 speakers")
    order = np.argsort(scores, kind="stable")
    is_target, side1, side2 = is_target[order], side1[order], side2[order]
    tar_at, non_at = np.flatnonzero(is_target), np.flatnonzero(~is_target)
    tar32 = scores[order[tar_at]].astype(np.float32)
    non32 = scores[order[non_at]].astype(np.float32)
    non_before = tar_at - np.arange(tar_at.size)      # non-targets sorted before each target
    weights = _PairWeights(num_speakers, side1[tar_at], side2[tar_at], side1[non_at],
                           side2[non_at])
    rng = np.random.default_rng(seed)
    eers, dcfs = [], []
    while len(eers) < num_replicates:
        counts = np.bincount(rng.integers(0, num_speakers, num_speakers), minlength=num_speakers)
        w_tar, w_non = weights(counts)
        cum_tar, cum_non = np.cumsum(w_tar), np.cumsum(w_non)
        num_tar = int(cum_tar[-1]) if cum_tar.size else 0
        num_non = int(cum_non[-1]) if cum_non.size else 0
        if num_tar == 0 or num_non == 0:
            continue
        # EER (compute_eer on the repeated, sorted scores)
        positions = np.arange(num_tar - 1, dtype=np.int64)
        ranks = np.trunc((num_non * positions).astype(np.float64) / num_tar).astype(np.int64)
        non_positions = np.maximum(num_non - 1 - ranks, 0)
        crossed = np.flatnonzero(non32[np.searchsorted(cum_non, non_positions, side="right")]
                                 < tar32[np.searchsorted(cum_tar, positions, side="right")])
        eers.append((int(crossed[0]) if crossed.size else num_tar - 1) / num_tar)
        # minDCF (compute_min_dcf on the repeated, sorted trials)
        tar_before = cum_tar - w_tar
        non_cum = np.concatenate([[0], cum_non])[non_before]
        drawn = w_tar > 0
        costs = np.concatenate([
            _cost_values(tar_before[drawn] + 1, non_cum[drawn], num_tar, num_non, p_target),
            _cost_values(tar_before, non_cum, num_tar, num_non, p_target),
            _cost_values(np.array([num_tar]), np.array([num_non]), num_tar, num_non, p_target)])
        dcfs.append(float(costs.min() / min(p_target, 1 - p_target)))
    return np.column_stack([eers, dcfs])
