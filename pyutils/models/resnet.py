"""ResNet r-vectors on filterbanks, as WeSpeaker's ResNet18/ResNet34 (wespeaker/models/resnet.py).

The (frames x 80) fbank matrix is a one-channel image, frequency by time:

  conv 3x3, 32 channels, stride 1 -> BN -> ReLU
  stage 1: BasicBlocks,  32 channels, stride 1
  stage 2: BasicBlocks,  64 channels, first block stride 2 (time and frequency)
  stage 3: BasicBlocks, 128 channels, first block stride 2
  stage 4: BasicBlocks, 256 channels, first block stride 2
  temporal statistics pooling (TSTP): mean and standard deviation over time
  of the flattened 256 x ceil(80/8) = 2560-dim channel x frequency map
  affine 5120 -> 256 = the embedding (WeSpeaker ``seg_1``, two_emb_layer=False)

A BasicBlock is conv3x3 -> BN -> ReLU -> conv3x3 -> BN, plus a shortcut
(identity, or a strided 1x1 conv + BN when the shape changes), then ReLU.
No convolution has a bias.  ResNet34 stacks [3, 4, 6, 3] blocks, ResNet18
[2, 2, 2, 2].  The embedding feeds the margin loss directly (``head`` is
the identity), as in WeSpeaker.

Differences from WeSpeaker, none of which changes the parameter count:
the pooled standard deviation uses the biased variance floored at 1e-10
(this repo's StatsPooling, Kaldi's stats layer) where WeSpeaker takes
sqrt(unbiased var + 1e-8); and the pooled dimension is computed as
256 * ceil(feat_dim / 8), so feature sizes that are not multiples of 8
also work (for 80 it is WeSpeaker's 2560).  ``pooling: tstp`` takes WeSpeaker's
statistics instead (pooling.TemporalStatsPooling), as imported WeSpeaker models need.  With ``two_emb_layer=True`` the
second segment layer (ReLU -> BN without affine -> affine) goes into
``head``, so the extracted embedding is the first affine output (Kaldi's
convention; WeSpeaker would extract the second).

Receptive field (frame-level part, i.e. up to the stage-4 output):
ResNet34 225 frames (+-112), ResNet18 109 frames (+-54); output frame
shift 8 input frames (80 ms), and ceil(T / 8) output frames for T input
frames (every convolution is zero-padded).

Parameters for 80-dim fbank and 256-dim embeddings: ResNet34 6,634,336;
ResNet18 4,105,440 (``num_parameters()`` gives the exact count).  WeSpeaker's
voxceleb/v2 README lists ResNet34 at 6.700M, which is the two_emb_layer=True
size: 6,700,128 here.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from pyutils.models.base import EmbeddingNet
from pyutils.models.pooling import StatsPooling, TemporalStatsPooling


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a residual connection."""

    expansion = 1              # output channels per ``channels``
    convs_3x3 = 2              # 3x3 convolutions on the main path, the first one strided

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU()
        if stride != 1 or in_channels != channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(channels))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


def _ceil_halvings(size: int, times: int) -> int:
    """Length after ``times`` zero-padded 3x3 stride-2 convolutions: ceil(size / 2**times)."""
    for _ in range(times):
        size = (size + 1) // 2
    return size


class ResNet(EmbeddingNet):
    """ResNet speaker-embedding network with BasicBlocks (WeSpeaker ResNet18/34); a subclass
    may set another ``block`` (pyutils.models.resnet_bottleneck: ResNet50 ... ResNet293)."""

    block = BasicBlock
    stage_sizes = (3, 4, 6, 3)  # blocks per stage; each depth's subclass sets its own
    stage_strides = (1, 2, 2, 2)
    frame_shift = 8            # product of the stage strides

    def __init__(self, feat_dim: int = 80, embed_dim: int = 256, m_channels: int = 32,
                 two_emb_layer: bool = False, pooling: str = "stats",
                 num_blocks: Optional[Sequence[int]] = None):
        super().__init__()
        num_blocks = self.stage_sizes if num_blocks is None else num_blocks
        if pooling not in ("stats", "tstp"):
            raise ValueError(f"model.pooling must be stats or tstp, got '{pooling}'")
        if len(num_blocks) != 4:
            raise ValueError(f"num_blocks needs 4 stage sizes, got {list(num_blocks)}")
        self.num_blocks = tuple(int(n) for n in num_blocks)
        self.stem = nn.Sequential(
            nn.Conv2d(1, m_channels, 3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(m_channels), nn.ReLU())
        stages, in_channels = [], m_channels
        for index, (blocks, stride) in enumerate(zip(self.num_blocks, self.stage_strides)):
            channels = m_channels * 2 ** index
            layers = []
            for block in range(blocks):
                layers.append(self.block(in_channels, channels, stride if block == 0 else 1))
                in_channels = channels * self.block.expansion
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.frame_dim = in_channels * _ceil_halvings(feat_dim, 3)
        self.pooling = StatsPooling() if pooling == "stats" else TemporalStatsPooling()
        self.embedding = nn.Linear(2 * self.frame_dim, embed_dim)          # WeSpeaker seg_1
        head = None                                                         # identity
        if two_emb_layer:
            head = nn.Sequential(nn.ReLU(), nn.BatchNorm1d(embed_dim, affine=False),
                                 nn.Linear(embed_dim, embed_dim))           # seg_bn_1, seg_2
        self.set_head(embed_dim, head)

    @property
    def receptive_field(self) -> int:
        """Input frames seen by one output frame of the last stage."""
        field, jump = 3, 1                        # the stem's 3x3 convolution
        for blocks, stride in zip(self.num_blocks, self.stage_strides):
            for block in range(blocks):
                field += 2 * jump                 # first 3x3 conv (strided in block 0)
                if block == 0:
                    jump *= stride
                field += 2 * jump * (self.block.convs_3x3 - 1)   # the other 3x3 convs
        return field

    def frame_level(self, feats: torch.Tensor) -> torch.Tensor:
        """(batch, frames, feat_dim) -> (batch, channels * freq, ceil(frames / 8))."""
        image = feats.transpose(1, 2).unsqueeze(1)            # (batch, 1, freq, time)
        maps = self.stages(self.stem(image))                  # (batch, C, freq/8, time/8)
        return maps.flatten(1, 2)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """(batch, frames, feat_dim) -> (batch, embed_dim) embeddings."""
        return self.embedding(self.pooling(self.frame_level(feats)))


class ResNet34(ResNet):
    """WeSpeaker ResNet34: [3, 4, 6, 3] BasicBlocks, 32 base channels, 256-dim embedding.

    Parameters for 80-dim fbank: 6,634,336.  Receptive field 225 frames, frame shift 8.
    """

    stage_sizes = (3, 4, 6, 3)


class ResNet18(ResNet):
    """WeSpeaker ResNet18: [2, 2, 2, 2] BasicBlocks, 32 base channels, 256-dim embedding.

    Parameters for 80-dim fbank: 4,105,440.  Receptive field 109 frames, frame shift 8.
    """

    stage_sizes = (2, 2, 2, 2)
