"""Random fixed-length training chunks, reproducible per (seed, epoch).

Like Kaldi's x-vector egs: every minibatch has one chunk length drawn between
``min_frames`` and ``max_frames``; utterances are drawn in proportion to their
length (Kaldi's allocate_egs spreads egs over the data that way) and each
chunk starts at a uniform offset.  Because a batch list is a pure function of
(seed, epoch), a run resumed from an epoch checkpoint sees exactly the chunks
an uninterrupted run would.
"""
from __future__ import annotations

import logging
from typing import Dict, List, Sequence, Tuple

import kaldiio
import numpy as np
import torch

from pyutils.utils.fileio import TableError, read_key_value, read_table

logger = logging.getLogger(__name__)

Chunk = Tuple[int, int, int]  # (utterance index, first frame, number of frames)


class FeatureStore:
    """Features of a data dir, indexed by position; loaded into memory or lazily."""

    def __init__(self, feats_scp: str, utt2spk: str, in_memory: bool = True):
        spk_of = read_key_value(utt2spk)
        self.utts: List[str] = []
        self.locations: List[str] = []
        for lineno, (utt, location) in read_table(feats_scp, 2, 2):
            if utt not in spk_of:
                raise TableError(feats_scp, lineno, f"utterance '{utt}' is not in {utt2spk}")
            self.utts.append(utt)
            self.locations.append(location)
        self.speakers = sorted(set(spk_of[u] for u in self.utts))
        spk_index = {s: i for i, s in enumerate(self.speakers)}
        self.labels = np.array([spk_index[spk_of[u]] for u in self.utts], dtype=np.int64)
        self.cache = [np.asarray(kaldiio.load_mat(loc), dtype=np.float32)
                      for loc in self.locations] if in_memory else None
        self.lengths = np.array([m.shape[0] for m in self.cache] if in_memory else
                                [kaldiio.load_mat(loc).shape[0] for loc in self.locations])
        self.feat_dim = (self.cache[0] if in_memory else kaldiio.load_mat(self.locations[0])).shape[1]

    def matrix(self, index: int) -> np.ndarray:
        if self.cache is not None:
            return self.cache[index]
        return np.asarray(kaldiio.load_mat(self.locations[index]), dtype=np.float32)

    def __len__(self) -> int:
        return len(self.utts)


def epoch_batches(lengths: Sequence[int], min_frames: int, max_frames: int,
                  batch_size: int, num_chunks: int, seed: int, epoch: int) -> List[List[Chunk]]:
    """The chunk list of one epoch, a pure function of its arguments."""
    lengths = np.asarray(lengths)
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
        picks = rng.choice(eligible, size=batch_size, p=weights / weights.sum())
        offsets = rng.integers(0, lengths[picks] - frames + 1)
        batches.append([(int(u), int(o), frames) for u, o in zip(picks, offsets)])
    return batches


def collate(store: FeatureStore, batch: List[Chunk]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Stack the chunks of a batch into (feats, labels) tensors."""
    feats = np.stack([store.matrix(u)[o:o + n] for u, o, n in batch])
    labels = store.labels[[u for u, _, _ in batch]]
    return torch.from_numpy(feats), torch.from_numpy(labels)


def speaker_table(store: FeatureStore) -> Dict[str, int]:
    """Speaker -> class index, stored in checkpoints."""
    return {s: i for i, s in enumerate(store.speakers)}
