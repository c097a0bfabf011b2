"""Equal error rate exactly as Kaldi's ``compute-eer``.

Kaldi's algorithm is not a threshold sweep: it walks the sorted target scores
and stops at the first position ``p`` where the non-target score at the
mirrored rank ``N_non - 1 - floor(N_non * p / N_tar)`` is below ``tar[p]``.
The EER is then ``p / N_tar`` (a miss rate, never above ``(N_tar-1)/N_tar``)
and the threshold is ``tar[p]``.  Scores are held as float32 (Kaldi's
BaseFloat) so that ties are resolved on the same values Kaldi compares.
"""
from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np


def compute_eer(target_scores: Sequence[float], nontarget_scores: Sequence[float],
                presorted: bool = False) -> Tuple[float, float]:
    """Return ``(eer_fraction, threshold)``; empty inputs raise ValueError.
    ``presorted``: both lists are already in ascending order (the bootstrap's replicates)."""
    tar = np.asarray(target_scores, dtype=np.float32).ravel()
    non = np.asarray(nontarget_scores, dtype=np.float32).ravel()
    if not presorted:
        tar, non = np.sort(tar), np.sort(non)
    if tar.size == 0:
        raise ValueError("compute_eer: no target scores")
    if non.size == 0:
        raise ValueError("compute_eer: no non-target scores")
    num_tar, num_non = tar.size, non.size
    # Candidate positions 0 .. num_tar-2; Kaldi computes the non-target rank
    # in double precision and truncates it towards zero.
    positions = np.arange(num_tar - 1, dtype=np.int64)
    ranks = np.trunc((num_non * positions).astype(np.float64) / num_tar).astype(np.int64)
    non_positions = np.maximum(num_non - 1 - ranks, 0)
    crossed = np.flatnonzero(non[non_positions] < tar[positions])
    position = int(crossed[0]) if crossed.size else num_tar - 1
    return position / num_tar, float(tar[position])
