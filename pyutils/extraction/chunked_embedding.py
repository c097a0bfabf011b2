"""Chunked embedding of one utterance, in numpy, for any network runtime.

As ``nnet3-xvector-compute``: the input is cut into consecutive chunks of at
most ``chunk_size`` rows, a chunk shorter than ``min_chunk_size`` is padded by
repeating its edge rows (Kaldi's --pad-input), and the chunk embeddings are
averaged weighted by their row counts.  ``forward`` maps one chunk
``(rows, dim)`` or ``(samples,)`` to its embedding, so PyTorch
(:func:`pyutils.extraction.extract.embed`) and ONNX Runtime
(:mod:`pyutils.deploy.runtime`) share this code; it imports no torch.
"""
from __future__ import annotations

from typing import Callable

import numpy as np


def pad_chunk(chunk: np.ndarray, min_frames: int) -> np.ndarray:
    """Repeat the first/last frame so the chunk has ``min_frames`` rows (Kaldi pad-input)."""
    missing = min_frames - chunk.shape[0]
    if missing <= 0:
        return chunk
    left = missing // 2
    return np.concatenate([np.repeat(chunk[:1], left, axis=0), chunk,
                           np.repeat(chunk[-1:], missing - left, axis=0)])


def chunked_embedding(forward: Callable[[np.ndarray], np.ndarray], feats: np.ndarray,
                      chunk_size: int = 10000, min_chunk_size: int = 25) -> np.ndarray:
    """Row-weighted average of ``forward`` over consecutive (padded) chunks, float32."""
    total = None
    weight = 0
    for start in range(0, feats.shape[0], chunk_size):
        chunk = feats[start:start + chunk_size]
        vector = forward(pad_chunk(chunk, min_chunk_size))
        total = vector * chunk.shape[0] if total is None else total + vector * chunk.shape[0]
        weight += chunk.shape[0]
    return (total / weight).astype(np.float32)
