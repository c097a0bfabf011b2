"""Energy VAD with Kaldi ``compute-vad`` semantics, vectorised.

Kaldi's ``ComputeVadEnergy`` (``ivector/voice-activity-detection.cc``, after
the 2016 fix that made the context window count its neighbours): a frame is
voiced when at least ``proportion_threshold`` of the frames within
``+-frames_context`` (window clipped at the utterance edges) have log energy
(feature column 0) above ``energy_threshold + energy_mean_scale * mean``.
Comparisons are done in float32 as Kaldi does.
"""
from __future__ import annotations

from typing import Dict, Mapping

import numpy as np

# Kaldi's VadEnergyOptions defaults, used for keys a vad.conf leaves out.
KALDI_VAD_DEFAULTS = {"vad-energy-threshold": 5.0, "vad-energy-mean-scale": 0.5,
                      "vad-frames-context": 0, "vad-proportion-threshold": 0.6}


def compute_vad_energy(feats: np.ndarray, energy_threshold: float = 5.5,
                       energy_mean_scale: float = 0.5, frames_context: int = 2,
                       proportion_threshold: float = 0.12) -> np.ndarray:
    """Per-frame voiced decision (float32 0/1) from features whose column 0 is log energy.

    Defaults are the usual speaker-recognition ``conf/vad.conf`` values.
    """
    if energy_mean_scale < 0.0:
        raise ValueError("energy_mean_scale must be >= 0")
    if frames_context < 0:
        raise ValueError("frames_context must be >= 0")
    if not 0.0 < proportion_threshold < 1.0:
        raise ValueError("proportion_threshold must be in (0, 1)")
    feats = np.asarray(feats)
    num_frames = feats.shape[0]
    if num_frames == 0:
        return np.zeros(0, dtype=np.float32)
    log_energy = feats[:, 0].astype(np.float32)
    threshold = np.float32(energy_threshold)
    if energy_mean_scale != 0.0:
        total = np.float32(log_energy.sum(dtype=np.float64))
        threshold += np.float32(energy_mean_scale) * total / np.float32(num_frames)
    above = np.concatenate([[0], np.cumsum(log_energy > threshold)])
    t = np.arange(num_frames)
    lo = np.maximum(t - frames_context, 0)
    hi = np.minimum(t + frames_context, num_frames - 1) + 1
    num = (above[hi] - above[lo]).astype(np.float32)
    den = (hi - lo).astype(np.float32)
    return (num >= den * np.float32(proportion_threshold)).astype(np.float32)


def vad_options_from_conf(conf: Mapping[str, object]) -> Dict[str, object]:
    """Keyword arguments for :func:`compute_vad_energy` from a parsed vad.conf.

    Keys missing from ``conf`` take Kaldi's defaults (as ``compute-vad``
    would); unknown keys raise ``ValueError``.
    """
    unknown = set(conf) - set(KALDI_VAD_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown VAD option(s): {', '.join(sorted(unknown))}")
    merged = {**KALDI_VAD_DEFAULTS, **conf}
    context = merged["vad-frames-context"]
    if isinstance(context, bool) or int(context) != context:
        raise ValueError(f"--vad-frames-context must be an integer, got {context!r}")
    return {"energy_threshold": float(merged["vad-energy-threshold"]),
            "energy_mean_scale": float(merged["vad-energy-mean-scale"]),
            "frames_context": int(context),
            "proportion_threshold": float(merged["vad-proportion-threshold"])}
