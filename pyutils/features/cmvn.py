"""Sliding-window CMN and voiced-frame selection with Kaldi semantics, vectorised.

:func:`sliding_cmn` is ``apply-cmvn-sliding`` (``SlidingWindowCmnInternal`` in
``feat/feature-functions.cc``): the per-frame window bounds follow Kaldi's
rules exactly, and window sums come from float64 cumulative sums instead of
Kaldi's running sums.  :func:`select_voiced_frames` is ``select-voiced-frames``.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np


def sliding_window_bounds(num_frames: int, cmn_window: int, min_window: int,
                          center: bool) -> Tuple[np.ndarray, np.ndarray]:
    """Kaldi's ``[start, end)`` normalisation window for every frame.

    Centred windows start ``cmn_window // 2`` frames back and are shifted to
    stay inside the utterance; non-centred windows cover the ``cmn_window``
    previous frames plus the current one, extended to ``min_window`` frames
    at the start.  Both are clipped to the utterance.
    """
    if cmn_window <= 0:
        raise ValueError("cmn_window must be > 0")
    if center and not 0 < min_window <= cmn_window:
        raise ValueError("min_window must be in (0, cmn_window] when centred")
    t = np.arange(num_frames)
    if center:
        start = t - cmn_window // 2
        end = start + cmn_window
    else:
        start = t - cmn_window
        end = t + 1
    end = np.where(start < 0, end - start, end)
    start = np.maximum(start, 0)
    if not center:
        end = np.where(end > t, np.maximum(t + 1, min_window), end)
    overflow = np.maximum(end - num_frames, 0)
    start = np.maximum(start - overflow, 0)
    end = np.minimum(end, num_frames)
    return start, end


def sliding_cmn(feats: np.ndarray, cmn_window: int = 300, min_window: int = 100,
                center: bool = True, norm_vars: bool = False) -> np.ndarray:
    """Subtract (and with ``norm_vars`` divide by the std of) a sliding window, float32.

    Defaults are the speaker-recognition recipe's ``--cmn-window=300
    --center=true``.  Empty input raises ``ValueError`` (Kaldi skips it).
    """
    feats = np.asarray(feats)
    if feats.ndim != 2 or feats.shape[0] == 0:
        raise ValueError(f"expected a non-empty 2-D feature matrix, got {feats.shape}")
    start, end = sliding_window_bounds(len(feats), cmn_window, min_window, center)
    return sliding_cmn_rows(feats, 0, start, end, np.arange(len(feats)), norm_vars)


def sliding_cmn_rows(feats: np.ndarray, first: int, starts: np.ndarray, ends: np.ndarray,
                     rows: np.ndarray, norm_vars: bool = False) -> np.ndarray:
    """:func:`sliding_cmn` of frames ``rows`` only, float32, given the features of
    frames ``first..`` (all their windows' frames) and those rows' window bounds
    ``starts``/``ends`` (:func:`sliding_window_bounds`, in utterance frames): what
    a training chunk computed on its span needs."""
    x = np.asarray(feats).astype(np.float64)
    x -= x.mean(axis=0)  # shift for accurate cumulative sums; output is invariant
    lo, hi = starts - first, ends - first
    count = (hi - lo)[:, None].astype(np.float64)
    mean = _window_sums(x, lo, hi) / count
    out = x[rows - first] - mean
    if norm_vars:
        variance = _window_sums(x * x, lo, hi) / count - mean * mean
        out *= np.maximum(variance, 1e-10) ** -0.5
        out[count[:, 0] == 1] = 0.0
    return out.astype(np.float32)


def _window_sums(x: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Row sums of ``x[start[t]:end[t]]`` for every ``t`` via one cumulative sum."""
    cumulative = np.zeros((len(x) + 1, x.shape[1]))
    np.cumsum(x, axis=0, out=cumulative[1:])
    return cumulative[end] - cumulative[start]


def select_voiced_frames(feats: np.ndarray, vad: np.ndarray) -> np.ndarray:
    """Rows of ``feats`` whose VAD value is 1, as Kaldi's ``select-voiced-frames``.

    Kaldi tolerates no length mismatch and skips utterances that are empty or
    have no voiced frame; each of these raises ``ValueError`` here, as do VAD
    values other than 0 and 1.
    """
    feats = np.asarray(feats)
    vad = np.asarray(vad).reshape(-1)
    if feats.shape[0] == 0:
        raise ValueError("empty feature matrix")
    if feats.shape[0] != len(vad):
        raise ValueError(f"mismatch in number of frames: {feats.shape[0]} for "
                         f"features and {len(vad)} for VAD")
    voiced = vad != 0
    if not voiced.any():
        raise ValueError("no frames were judged voiced")
    if not np.all(vad[voiced] == 1):
        raise ValueError("VAD values must be 0 or 1")
    return feats[voiced]
