"""Models whose front-end is numpy: that front-end as data, and ONNX Runtime behind it.

The imported Resemblyzer GE2E (``ge2e``) and SpeechBrain ECAPA (``sb_ecapa``) compute their
input in numpy (:mod:`pyutils.features.ge2e_mel`, :mod:`pyutils.features.sb_fbank`), so
their whole forward does not export; their ONNX holds the network after the front-end
(:func:`pyutils.deploy.export.export_network_part`).  The model describes its front-end
as data (``model.frontend_spec()``, recorded in a package's manifest), and
:func:`numpy_frontend` turns that into the function both runtimes call: the model's own
``frontend`` is ``numpy_frontend(self.frontend_spec())``, and
:class:`NetworkPartOnnxEmbedder` runs it before ONNX Runtime, per utterance, exactly as the
model's eager forward does (int16-scale samples / 32768 in float64, the front-end, the
network part).  Imports no torch.
"""
from __future__ import annotations

from typing import Callable, Dict

import numpy as np

from pyutils.deploy.runtime import OnnxEmbedder

INT16_SCALE = 32768.0


def _ge2e_partials(vad: bool, vad_mode: int, rate: float, min_coverage: float):
    from pyutils.features import ge2e_mel
    return lambda wav: ge2e_mel.utterance_partials(wav, vad, vad_mode, rate, min_coverage)


def _sb_fbank(num_mels: int):
    from pyutils.features import sb_fbank
    return lambda wav: sb_fbank.features(wav, num_mels)[None]


# name -> builder(options) of (waveform in [-1, 1] -> the network part's input)
FRONTENDS: Dict[str, Callable] = {
    "ge2e_partials": _ge2e_partials,     # (partials, 160, 40) mel windows (Resemblyzer)
    "sb_fbank": _sb_fbank,               # (1, frames, num_mels) SpeechBrain Fbank, mean removed
}


def numpy_frontend(spec: dict) -> Callable[[np.ndarray], np.ndarray]:
    """The front-end ``spec`` (``{"name": ..., **options}``) describes: a function of one
    float waveform in [-1, 1] returning the network part's float32 input."""
    options = dict(spec)
    name = options.pop("name", None)
    if name not in FRONTENDS:
        raise ValueError(f"unknown numpy front-end '{name}' (known: {', '.join(FRONTENDS)})")
    return FRONTENDS[name](**options)


class NetworkPartOnnxEmbedder(OnnxEmbedder):
    """ONNX Runtime over a network part, each input row (an utterance or chunk of
    int16-scale samples) through the numpy front-end of ``frontend_spec`` first."""

    def __init__(self, onnx_path: str, frontend_spec: dict, chunk_size: int = 10000,
                 min_chunk_size: int = 25, num_threads: int = 1, device: str = "cpu"):
        super().__init__(onnx_path, chunk_size, min_chunk_size, num_threads, device)
        self.frontend = numpy_frontend(frontend_spec)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        # float32 then float64, as TorchEmbedder's tensor and the model's .double()
        rows = np.asarray(batch, dtype=np.float32).astype(np.float64) / INT16_SCALE
        network = super().forward
        return np.concatenate([network(self.frontend(row)) for row in rows])
