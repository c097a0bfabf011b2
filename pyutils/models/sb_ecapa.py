"""SpeechBrain's speaker ECAPA-TDNN with its own front-end: ``model.name: sb_ecapa``.

The waveform (``input_type = "waveform"``, 16 kHz, int16 scale) goes through SpeechBrain's
Fbank + sentence mean normalisation (:mod:`pyutils.features.sb_fbank`), then
:class:`pyutils.models.ecapa.ECAPATDNN` built with ``layout: speechbrain`` (reflect padding,
MFA and attention batch norms) and without the final batch norm, as SpeechBrain's
``ECAPA_TDNN`` (``spkrec-ecapa-voxceleb``: C=1024, MFA 3072, 192-dim).  Imported by
:mod:`pyutils.models.convert.speechbrain`; parity in tests/test_import_speechbrain.py.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from pyutils.deploy.network_part import numpy_frontend
from pyutils.models.base import EmbeddingNet
from pyutils.models.ecapa import ECAPATDNN

INT16_SCALE = 32768.0


class SpeechBrainECAPA(EmbeddingNet):
    """SpeechBrain Fbank -> ECAPA-TDNN; ``head`` is the identity."""

    input_type = "waveform"
    frame_shift = 160
    receptive_field = 1

    def __init__(self, feat_dim: Optional[int] = None, num_mels: int = 80,
                 channels: int = 1024, mfa_channels: int = 3072, embed_dim: int = 192,
                 attention_bottleneck: int = 128, se_bottleneck: int = 128, scale: int = 8):
        super().__init__()
        self.num_mels = int(num_mels)
        self.ecapa = ECAPATDNN(feat_dim=self.num_mels, channels=channels, embed_dim=embed_dim,
                               mfa_channels=mfa_channels, scale=scale,
                               se_bottleneck=se_bottleneck,
                               attention_bottleneck=attention_bottleneck, final_bn=False,
                               layout="speechbrain")
        self.set_head(int(embed_dim))

    def frontend_spec(self) -> dict:
        """:meth:`frontend` as data (a package records it; its ONNX runtime needs no torch)."""
        return {"name": "sb_fbank", "num_mels": self.num_mels}

    def frontend(self, wav: np.ndarray) -> np.ndarray:
        """The numpy front-end of one float waveform in [-1, 1]: (1, frames, num_mels)
        (:func:`pyutils.features.sb_fbank.features`)."""
        return numpy_frontend(self.frontend_spec())(wav)

    def network_part(self) -> torch.nn.Module:
        """The network after :meth:`frontend`: (batch, frames, num_mels) -> (batch,
        embed_dim) (what the ONNX export holds)."""
        return self.ecapa

    def features(self, waveform: torch.Tensor) -> torch.Tensor:
        audio = waveform.detach().double().cpu().numpy() / INT16_SCALE
        feats = [torch.from_numpy(self.frontend(wav)[0]) for wav in audio]
        return torch.stack(feats).to(next(self.parameters()).device)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """(batch, samples) int16-scale waveform -> (batch, embed_dim)."""
        return self.ecapa(self.features(waveform))

