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

``sampling="utterance"`` draws as WeSpeaker's loader and this toolkit's tar shards
(:mod:`pyutils.training.shard_source`) do instead: every utterance once per pass,
passes in a new random order each, one chunk at a uniform offset from each; an
utterance shorter than the batch's chunk is given whole (offset 0) and the loader
repeats it to fill the chunk.  With a ``prior``, each utterance of the pass takes
speed copy ``k`` with probability ``shares[k]`` (the shard loader's choice).
"""
from __future__ import annotations

from typing import List, Optional, Sequence, Tuple

import numpy as np

Chunk = Tuple[int, int, int]  # (utterance index, first frame, number of frames)
SAMPLINGS = ("length", "utterance")


def epoch_batches(lengths: Sequence[int], min_frames: int, max_frames: int,
                  batch_size: int, num_chunks: int, seed: int, epoch: int,
                  prior: Optional[Tuple[Sequence[int], Sequence[float]]] = None,
                  sampling: str = "length") -> List[List[Chunk]]:
    """The chunk list of one epoch, a pure function of its arguments."""
    if sampling not in SAMPLINGS:
        raise ValueError(f"data.sampling must be one of {', '.join(SAMPLINGS)}, got '{sampling}'")
    lengths = np.asarray(lengths)
    if prior is not None:
        groups, shares = np.asarray(prior[0], dtype=np.int64), np.asarray(prior[1], np.float64)
        if groups.shape != lengths.shape or groups.min(initial=0) < 0 \
                or groups.max(initial=0) >= len(shares) or (shares < 0).any() or not shares.any():
            raise ValueError("prior needs a group per item and non-negative group shares")
        if sampling == "utterance":
            return _utterance_batches(lengths, min_frames, max_frames, batch_size, num_chunks,
                                      seed, epoch, groups, shares)
        lengths = np.where(shares[groups] > 0, lengths, 0)   # share 0: never drawn
    elif sampling == "utterance":
        return _utterance_batches(lengths, min_frames, max_frames, batch_size, num_chunks,
                                  seed, epoch)
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


def _utterance_batches(lengths: np.ndarray, min_frames: int, max_frames: int, batch_size: int,
                       num_chunks: int, seed: int, epoch: int, groups=None, shares=None
                       ) -> List[List[Chunk]]:
    """``sampling="utterance"``: passes over the utterances, one chunk each."""
    if groups is None:
        groups, shares = np.zeros(len(lengths), np.int64), np.ones(1)
    members = [np.flatnonzero(groups == k) for k in range(len(shares))]
    if any(len(m) != len(members[0]) for m in members):
        raise ValueError("sampling: utterance needs as many items in every speed group")
    originals = members[0]
    if originals.size == 0 or lengths.max(initial=0) == 0:
        raise ValueError("sampling: utterance has no utterance to draw from")
    probs = shares / shares.sum()
    rng = np.random.default_rng([seed, epoch])
    order, next_in_pass = np.empty(0, np.int64), 0
    batches = []
    for _ in range(max(1, num_chunks // batch_size)):
        frames = int(rng.integers(min_frames, max_frames + 1))
        batch = []
        while len(batch) < batch_size:
            if next_in_pass == order.size:         # a new pass, in a new order
                order, next_in_pass = rng.permutation(originals.size), 0
            position = int(order[next_in_pass])
            next_in_pass += 1
            group = int(rng.choice(len(probs), p=probs)) if len(probs) > 1 else 0
            item = int(members[group][position])
            if lengths[item] == 0:
                continue                           # nothing to cut (no voiced frame)
            offset = int(rng.integers(0, lengths[item] - frames + 1)) \
                if lengths[item] >= frames else 0
            batch.append((item, offset, frames))
        batches.append(batch)
    return batches
