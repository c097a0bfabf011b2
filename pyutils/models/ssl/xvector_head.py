"""The x-vector head of transformers' ``WavLMForXVector`` / ``Wav2Vec2ForXVector``.

Layers (the ``microsoft/wavlm-base-sv`` card: TDNN dims (512, 512, 512, 512,
1500), kernels (5, 3, 3, 1, 1), dilations (1, 2, 3, 1, 1), 512-dim output):

  projector   Linear(hidden, tdnn_dim[0])
  tdnn        per layer a dilated Conv1d (no padding) -> ReLU; no batch norm
  pooling     mean and *unbiased* standard deviation over the valid frames
  embedding   Linear(2 * tdnn_dim[-1], embed_dim)   (transformers: feature_extractor)
  head        Linear(embed_dim, embed_dim)          (transformers: classifier),
              fed to the loss (AM-softmax, s=30, m=0.4, in the model card)

transformers keeps each TDNN kernel as an ``nn.Linear`` over ``kernel *
in_dim`` inputs and applies it with ``F.conv1d``; here it is an ``nn.Conv1d``
(``hf_convert`` reshapes the weights).  transformers' ``_get_tdnn_output_lengths``
subtracts ``kernel - 1`` per layer and ignores the dilation, so with padding
its pooling takes ``sum((d - 1) * (k - 1))`` = 6 frames too many (the last
frames computed from padding); :meth:`output_lengths` subtracts
``dilation * (kernel - 1)``.  Unpadded inputs give identical embeddings.

Receptive field ``1 + sum(d * (k - 1))`` = 15 frames, frame shift 1.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from pyutils.models.base import EmbeddingNet


class HFXVectorHead(EmbeddingNet):
    """transformers' XVector head on (batch, frames, feat_dim) features."""

    frame_shift = 1
    accepts_lengths = True

    def __init__(self, feat_dim: int = 768, tdnn_dim: Sequence[int] = (512, 512, 512, 512, 1500),
                 tdnn_kernel: Sequence[int] = (5, 3, 3, 1, 1),
                 tdnn_dilation: Sequence[int] = (1, 2, 3, 1, 1), embed_dim: int = 512,
                 classifier: bool = True):
        super().__init__()
        if not len(tdnn_dim) == len(tdnn_kernel) == len(tdnn_dilation):
            raise ValueError("tdnn_dim, tdnn_kernel and tdnn_dilation need equal lengths")
        self.kernels = [int(k) for k in tdnn_kernel]
        self.dilations = [int(d) for d in tdnn_dilation]
        self.projector = nn.Linear(feat_dim, tdnn_dim[0])
        layers, in_dim = [], tdnn_dim[0]
        for dim, kernel, dilation in zip(tdnn_dim, self.kernels, self.dilations):
            layers.append(nn.Conv1d(in_dim, dim, kernel, dilation=dilation))
            in_dim = dim
        self.tdnn = nn.ModuleList(layers)
        self.relu = nn.ReLU()
        self.embedding = nn.Linear(2 * in_dim, embed_dim)
        self.set_head(embed_dim, nn.Linear(embed_dim, embed_dim) if classifier else None)

    @property
    def receptive_field(self) -> int:
        return 1 + sum(d * (k - 1) for k, d in zip(self.kernels, self.dilations))

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """TDNN output frames for ``lengths`` input frames (dilation included)."""
        return lengths - (self.receptive_field - 1)

    def frame_level(self, feats: torch.Tensor) -> torch.Tensor:
        """(batch, frames, feat_dim) -> (batch, tdnn_dim[-1], frames - 14)."""
        x = self.projector(feats).transpose(1, 2)
        for layer in self.tdnn:
            x = self.relu(layer(x))
        return x

    def forward(self, feats: torch.Tensor, lengths: Optional[torch.Tensor] = None) -> torch.Tensor:
        """(batch, frames, feat_dim) [+ valid frame counts] -> (batch, embed_dim)."""
        x = self.frame_level(feats)
        if lengths is None:
            stats = torch.cat([x.mean(dim=2), x.std(dim=2)], dim=1)
        else:
            counts = self.output_lengths(lengths).clamp(min=1)
            valid = (torch.arange(x.shape[2], device=x.device)[None] < counts[:, None])
            valid = valid.unsqueeze(1).to(x.dtype)
            n = counts.to(x.dtype)[:, None]
            mean = (x * valid).sum(dim=2) / n
            var = (((x - mean.unsqueeze(2)) * valid) ** 2).sum(dim=2) / (n - 1)
            stats = torch.cat([mean, var.sqrt()], dim=1)
        return self.embedding(stats)
