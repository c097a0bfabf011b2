"""The Kaldi x-vector TDNN (Snyder et al. 2018; egs/voxceleb/v2 xconfig).

Frame layers (affine -> ReLU -> BatchNorm, Kaldi's ``relu-batchnorm-layer``):
  tdnn1 512, context [-2..2]; tdnn2 512, {-2,0,2}; tdnn3 512, {-3,0,3};
  tdnn4 512, {0}; tdnn5 1500, {0}
then mean+standard-deviation pooling over time, segment layers tdnn6 512 and
tdnn7 512, and a softmax over the training speakers.  The embedding is the
affine output of tdnn6, before its nonlinearity, as in Kaldi; ``head`` holds
the rest (tdnn6 nonlinearity, tdnn7), and the speaker classifier belongs to
the loss (pyutils.losses), so every model plugs into the same training loop.

Batch norm: Kaldi's ``BatchNormComponent`` normalises only; it has no
learnable scale or offset (the following affine layer absorbs them), so
every batch norm here is non-affine by default.  ``bn_affine=True``
(``model.bn_affine: true``) gives PyTorch's affine BatchNorm1d instead, as
checkpoints of this toolkit written before the switch have; such a
checkpoint still loads into a model built from its own config (which
predates ``bn_affine``): :meth:`XVectorTDNN.load_state_dict` sees the BN
weights and switches the batch norms to affine first, with a warning.

Receptive field: 15 frames (+-7), i.e. 0.165 s of 10 ms frames.
Parameters for 30-dim input (without the output layer): 4,482,524, Kaldi's
count for this xconfig (``bn_affine=True``: 4,491,668, 9,144 more: a scale
and an offset for each of the 5 x 512 + 1500 + 2 x 512 channels);
``num_parameters()`` gives the exact count.
"""
from __future__ import annotations

import logging

import torch
from torch import nn

from pyutils.models.base import EmbeddingNet
from pyutils.models.pooling import StatsPooling

logger = logging.getLogger(__name__)


class ReluBatchNormTdnn(nn.Module):
    """Kaldi relu-batchnorm-layer over a spliced context (a dilated Conv1d)."""

    def __init__(self, in_dim: int, out_dim: int, context: int = 1, dilation: int = 1,
                 bn_affine: bool = True):
        super().__init__()
        self.affine = nn.Conv1d(in_dim, out_dim, kernel_size=context, dilation=dilation)
        self.relu = nn.ReLU()
        self.norm = nn.BatchNorm1d(out_dim, affine=bn_affine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.relu(self.affine(x)))


class XVectorTDNN(EmbeddingNet):
    """Kaldi x-vector network: ``forward`` gives embeddings, ``head`` the classifier input."""

    receptive_field = 15
    frame_shift = 1

    def __init__(self, feat_dim: int = 30, embed_dim: int = 512,
                 frame_dims=(512, 512, 512, 512, 1500), bn_affine: bool = False):
        super().__init__()
        contexts = [(5, 1), (3, 2), (3, 3), (1, 1), (1, 1)]  # (kernel, dilation) per layer
        layers, in_dim = [], feat_dim
        for dim, (kernel, dilation) in zip(frame_dims, contexts):
            layers.append(ReluBatchNormTdnn(in_dim, dim, kernel, dilation, bn_affine))
            in_dim = dim
        self.frame_layers = nn.Sequential(*layers)
        self.pooling = StatsPooling()
        self.embedding = nn.Linear(2 * in_dim, embed_dim)          # tdnn6.affine
        self.set_head(embed_dim, nn.Sequential(
            nn.ReLU(), nn.BatchNorm1d(embed_dim, affine=bn_affine),                    # tdnn6
            nn.Linear(embed_dim, embed_dim), nn.ReLU(),
            nn.BatchNorm1d(embed_dim, affine=bn_affine)))                              # tdnn7
        self.bn_affine = bool(bn_affine)

    def _norms(self):
        return [m for m in self.modules() if isinstance(m, nn.BatchNorm1d)]

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """Load weights; a checkpoint with affine batch-norm weights (written before
        the non-affine default, or with ``bn_affine: true``) switches a non-affine
        model to affine first, so old ``final.pt`` files still extract."""
        has_affine = any(k.endswith(".weight") and k.replace(".weight", ".running_mean")
                         in state_dict for k in state_dict)
        if has_affine and not self.bn_affine:
            logger.warning("the checkpoint has affine batch-norm weights (trained with "
                           "model.bn_affine: true, or before the Kaldi-style non-affine "
                           "default); loading it with affine batch norms")
            for norm in self._norms():
                norm.affine = True
                norm.weight = nn.Parameter(torch.ones(norm.num_features))
                norm.bias = nn.Parameter(torch.zeros(norm.num_features))
            self.bn_affine = True
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """(batch, frames, feat_dim) -> (batch, embed_dim) embeddings."""
        frames = self.frame_layers(feats.transpose(1, 2))
        return self.embedding(self.pooling(frames))
