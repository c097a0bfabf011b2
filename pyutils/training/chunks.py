"""Random fixed-length training chunks, reproducible per (seed, epoch).

Like Kaldi's x-vector egs: every minibatch has one chunk length drawn between
``min_frames`` and ``max_frames``; utterances are drawn in proportion to their
length (Kaldi's allocate_egs spreads egs over the data that way) and each
chunk starts at a uniform offset.  Because a batch list is a pure function of
(seed, epoch), a run resumed from an epoch checkpoint sees exactly the chunks
an uninterrupted run would.

``prior = (groups, shares)`` (a group number per item and each group's
share of the chunks, or None) fixes how many chunks each group gets, still
length-proportional inside a group: speed perturbation puts the copies of the
utterances at speed k in group k, so ``speed.prob`` is exactly the share of
perturbed chunks.  Without it the draw is the one the trainer always made.
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np

Chunk = Tuple[int, int, int]  # (utterance index, first frame, number of frames)


def epoch_batches(lengths: Sequence[int], min_frames: int, max_frames: int,
                  batch_size: int, num_chunks: int, seed: int, epoch: int,
                  prior: Optional[Tuple[Sequence[int], Sequence[float]]] = None
                  ) -> List[List[Chunk]]:
    """The chunk list of one epoch, a pure function of its arguments."""
    lengths = np.asarray(lengths)
    if prior is not None:
        groups, shares = np.asarray(prior[0], dtype=np.int64), np.asarray(prior[1], np.float64)
        if groups.shape != lengths.shape or groups.min(initial=0) < 0 \
                or groups.max(initial=0) >= len(shares) or (shares < 0).any() or not shares.any():
            raise ValueError("prior needs a group per item and non-negative group shares")
        lengths = np.where(shares[groups] > 0, lengths, 0)   # share 0: never drawn
    if lengths.max(initial=0) < min_frames:
        raise ValueError(f"no utterance has {min_frames} frames; lower min_chunk_frames "
                         f"or filter with a smaller min_len")
    rng = np.random.default_rng([seed, epoch])
    batches = []
    for _ in range(max(1, num_chunks // batch_size)):
        frames = int(rng.integers(min_frames, max_frames + 1))
        eligible = np.flatnonzero(lengths >= frames)
        if eligible.size == 0:
            frames = int(lengths.max())
            eligible = np.flatnonzero(lengths >= frames)
        weights = (lengths[eligible] - frames + 1).astype(np.float64)
        if prior is not None:    # each group's total is its share
            totals = np.bincount(groups[eligible], weights=weights, minlength=len(shares))
            weights *= (shares / np.where(totals > 0, totals, 1.0))[groups[eligible]]
        picks = rng.choice(eligible, size=batch_size, p=weights / weights.sum())
        offsets = rng.integers(0, lengths[picks] - frames + 1)
        batches.append([(int(u), int(o), frames) for u, o in zip(picks, offsets)])
    return batches
