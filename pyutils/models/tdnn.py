"""The Kaldi x-vector TDNN (Snyder et al. 2018; egs/voxceleb/v2 xconfig).

Frame layers (affine -> ReLU -> BatchNorm, Kaldi's ``relu-batchnorm-layer``):
  tdnn1 512, context [-2..2]; tdnn2 512, {-2,0,2}; tdnn3 512, {-3,0,3};
  tdnn4 512, {0}; tdnn5 1500, {0}
then mean+standard-deviation pooling over time, segment layers tdnn6 512 and
tdnn7 512, and a softmax over the training speakers.  The embedding is the
affine output of tdnn6, before its nonlinearity, as in Kaldi; ``head`` holds
the rest (tdnn6 nonlinearity, tdnn7), and the speaker classifier belongs to
the loss (pyutils.losses), so every model plugs into the same training loop.

Receptive field: 15 frames (+-7), i.e. 0.165 s of 10 ms frames.
Parameters for 30-dim input (without the output layer): 4,491,668
(``num_parameters()`` gives the exact count).
"""
from __future__ import annotations

import torch
from torch import nn

from pyutils.models.pooling import StatsPooling


class ReluBatchNormTdnn(nn.Module):
    """Kaldi relu-batchnorm-layer over a spliced context (a dilated Conv1d)."""

    def __init__(self, in_dim: int, out_dim: int, context: int = 1, dilation: int = 1):
        super().__init__()
        self.affine = nn.Conv1d(in_dim, out_dim, kernel_size=context, dilation=dilation)
        self.relu = nn.ReLU()
        self.norm = nn.BatchNorm1d(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.relu(self.affine(x)))


class XVectorTDNN(nn.Module):
    """Kaldi x-vector network: ``forward`` gives embeddings, ``head`` the classifier input."""

    input_type = "feats"
    receptive_field = 15
    frame_shift = 1

    def __init__(self, feat_dim: int = 30, embed_dim: int = 512,
                 frame_dims=(512, 512, 512, 512, 1500)):
        super().__init__()
        contexts = [(5, 1), (3, 2), (3, 3), (1, 1), (1, 1)]  # (kernel, dilation) per layer
        layers, in_dim = [], feat_dim
        for dim, (kernel, dilation) in zip(frame_dims, contexts):
            layers.append(ReluBatchNormTdnn(in_dim, dim, kernel, dilation))
            in_dim = dim
        self.frame_layers = nn.Sequential(*layers)
        self.pooling = StatsPooling()
        self.embedding = nn.Linear(2 * in_dim, embed_dim)          # tdnn6.affine
        self.head = nn.Sequential(nn.ReLU(), nn.BatchNorm1d(embed_dim),   # tdnn6 rest
                                  nn.Linear(embed_dim, embed_dim), nn.ReLU(),
                                  nn.BatchNorm1d(embed_dim))              # tdnn7
        self.embed_dim = embed_dim
        self.head_dim = embed_dim

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """(batch, frames, feat_dim) -> (batch, embed_dim) embeddings."""
        frames = self.frame_layers(feats.transpose(1, 2))
        return self.embedding(self.pooling(frames))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
