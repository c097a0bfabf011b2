"""GE2E speaker encoder (Wan et al. 2018) as Resemblyzer ships it: ``model.name: ge2e``.

Network: 40 mel bands -> 3-layer LSTM (256) -> last hidden state of the top
layer -> linear 256 -> ReLU -> L2 norm (Resemblyzer's ``VoiceEncoder``; its
``lstm.*``/``linear.*`` weights load unchanged, see
:mod:`pyutils.models.convert.resemblyzer`).

Parameters (default configuration): 1,423,616.

The model takes the waveform (``input_type = "waveform"``, 16 kHz, int16
scale) and owns its front-end (:mod:`pyutils.features.ge2e_mel`):

- eval (extraction, ``sv``): Resemblyzer's ``preprocess_wav`` (volume to
  -30 dBFS, raise only; WebRTC VAD trimming, ``vad: true``), then
  ``embed_utterance``: 1.6 s partial windows every 1/``rate`` s, each
  embedded, averaged and L2-normalised.  Equals the package's embeddings
  (tests/test_import_resemblyzer.py).  Audio the VAD finds no speech in is
  embedded untrimmed (Resemblyzer would fail);
- train: each chunk is one partial: its mel spectrogram through the LSTM as one
  sequence, a chunk shorter than a partial (1.6 s) zero-padded to one, as
  ``embed_utterance`` pads a short utterance (the trainer's chunks take the place of
  GE2E's partials).  The utterances are prepared (volume, VAD trimming) by the
  training source once (``features.prepare: ge2e``,
  :meth:`pyutils.features.pipeline.FeaturePipeline.training_waveform`).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import nn

from pyutils.deploy.network_part import numpy_frontend
from pyutils.features import ge2e_mel
from pyutils.models.base import EmbeddingNet

INT16_SCALE = 32768.0


class GE2E(EmbeddingNet):
    """LSTM speaker encoder on 40-band mel power spectra; ``head`` is the identity."""

    input_type = "waveform"
    frame_shift = 160            # samples per 10 ms frame: the unit of chunk options

    def __init__(self, feat_dim: Optional[int] = None, num_mels: int = ge2e_mel.NUM_MELS,
                 hidden_size: int = 256, num_layers: int = 3, embed_dim: int = 256,
                 vad: bool = True, vad_mode: int = 3, rate: float = 1.3,
                 min_coverage: float = 0.75):
        # feat_dim is accepted for the common build_model interface; a waveform has none.
        super().__init__()
        self.num_mels = int(num_mels)
        self.lstm = nn.LSTM(self.num_mels, hidden_size, num_layers, batch_first=True)
        self.linear = nn.Linear(hidden_size, embed_dim)
        self.relu = nn.ReLU()
        self.set_head(int(embed_dim))
        self.vad, self.vad_mode = bool(vad), int(vad_mode)
        self.rate, self.min_coverage = float(rate), float(min_coverage)
        self.receptive_field = 1

    def embed_mels(self, mels: torch.Tensor) -> torch.Tensor:
        """(batch, frames, num_mels) -> (batch, embed_dim) L2-normed embeddings."""
        _, (hidden, _) = self.lstm(mels)
        raw = self.relu(self.linear(hidden[-1]))
        return raw / torch.norm(raw, dim=1, keepdim=True).clamp_min(1e-12)

    def partial_mels(self, wav: np.ndarray) -> torch.Tensor:
        """(frames, num_mels) of one training chunk in [-1, 1]: ``len // 160`` frames,
        at least a partial's 160 (zero-padded as ``embed_utterance`` pads)."""
        frames = max(len(wav), ge2e_mel.PARTIAL_FRAMES * self.frame_shift) // self.frame_shift
        wav = np.pad(wav, (0, max(0, frames * self.frame_shift - len(wav))))
        return torch.from_numpy(ge2e_mel.mel_spectrogram(wav)[:frames])

    def frontend_spec(self) -> dict:
        """:meth:`frontend` as data (a package records it; its ONNX runtime needs no torch)."""
        return {"name": "ge2e_partials", "vad": self.vad, "vad_mode": self.vad_mode,
                "rate": self.rate, "min_coverage": self.min_coverage}

    def frontend(self, wav: np.ndarray) -> np.ndarray:
        """The numpy front-end of one float waveform in [-1, 1]: its (partials, 160,
        num_mels) mel windows (:func:`pyutils.features.ge2e_mel.utterance_partials`)."""
        return numpy_frontend(self.frontend_spec())(wav)

    def network_part(self) -> nn.Module:
        """The network after :meth:`frontend`: (partials, frames, num_mels) -> (1, embed_dim),
        the partials' embeddings averaged and L2-normed (what the ONNX export holds)."""
        return GE2EPartials(self)

    def embed_utterance(self, wav: np.ndarray) -> torch.Tensor:
        """(embed_dim,) embedding of one float waveform in [-1, 1] (Resemblyzer's pipeline)."""
        mels = torch.from_numpy(self.frontend(wav)).to(self.linear.weight.device)
        return self.network_part()(mels)[0]

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """(batch, samples) int16-scale waveform -> (batch, embed_dim)."""
        audio = waveform.detach().double().cpu().numpy() / INT16_SCALE
        if not self.training:
            return torch.stack([self.embed_utterance(wav) for wav in audio])
        mels = torch.stack([self.partial_mels(wav) for wav in audio]).to(
            self.linear.weight.device)
        return self.embed_mels(mels)


class GE2EPartials(nn.Module):
    """One utterance's partial mel windows -> its embedding (``GE2E.network_part``)."""

    def __init__(self, ge2e: GE2E):
        super().__init__()
        self.ge2e = ge2e

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        mean = self.ge2e.embed_mels(mels).mean(dim=0, keepdim=True)
        return mean / torch.norm(mean, dim=1, keepdim=True).clamp_min(1e-12)

