"""Bottleneck ResNets, as WeSpeaker's ResNet50/101/152/221/293 (wespeaker/models/resnet.py).

The same network as :class:`pyutils.models.resnet.ResNet` (stem, four stages of 32, 64, 128,
256 base channels with strides 1, 2, 2, 2, statistics pooling, one or two affine embedding
layers) with WeSpeaker's Bottleneck block in place of the BasicBlock:

  conv 1x1 -> BN -> ReLU -> conv 3x3 (strided in a stage's first block) -> BN -> ReLU
  -> conv 1x1 to 4x the channels (expansion 4) -> BN, plus a shortcut (identity, or a
  strided 1x1 conv + BN when the shape changes), then ReLU.

So the stage outputs have 128, 256, 512 and 1024 channels and the pooled map is
1024 x ceil(80/8) = 10240-dim (2 x that after mean and standard deviation).  Block counts
per stage, as WeSpeaker's constructors give them: ResNet50 [3, 4, 6, 3], ResNet101
[3, 4, 23, 3], ResNet152 [3, 8, 36, 3], ResNet221 [6, 16, 48, 3], ResNet293
[10, 20, 64, 3].  The state-dict layout is WeSpeaker's (``conv1/bn1/conv2/bn2/conv3/bn3``
and ``shortcut.0/.1`` in each block), so the importer renames only the top-level names
(pyutils/models/convert/wespeaker.py).  Pooling, ``two_emb_layer``, ``m_channels`` and the
differences from WeSpeaker are those of pyutils.models.resnet.

Parameters for 80-dim fbank, 32 base channels and 256-dim embeddings (``two_emb_layer``
False; ``num_parameters()`` gives the exact count), the same as WeSpeaker's own modules:
ResNet50 11,131,360; ResNet101 15,892,448; ResNet152 19,814,880; ResNet221 23,792,224;
ResNet293 28,626,016 (WeSpeaker's voxceleb/v2 README: ResNet221 23.79M, ResNet293 28.62M).
Receptive fields (frames): 107, 243, 363, 497, 649 (one 3x3 convolution per block, so a
ResNet50 sees less context than a ResNet34's 225); frame shift 8.
"""
from __future__ import annotations

import torch
from torch import nn

from pyutils.models.resnet import ResNet


class Bottleneck(nn.Module):
    """1x1 -> 3x3 -> 1x1 (4x wider) convolutions with batch norm and a residual connection."""

    expansion = 4
    convs_3x3 = 1

    def __init__(self, in_channels: int, channels: int, stride: int = 1):
        super().__init__()
        out_channels = channels * self.expansion
        self.conv1 = nn.Conv2d(in_channels, channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.conv3 = nn.Conv2d(channels, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels))
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


class BottleneckResNet(ResNet):
    """A ResNet of Bottleneck blocks; each depth sets its ``stage_sizes``."""

    block = Bottleneck


class ResNet50(BottleneckResNet):
    """WeSpeaker ResNet50: [3, 4, 6, 3] Bottleneck blocks, 32 base channels, 256-dim embedding.

    Parameters for 80-dim fbank: 11,131,360.  Receptive field 107 frames, frame shift 8.
    """

    stage_sizes = (3, 4, 6, 3)


class ResNet101(BottleneckResNet):
    """WeSpeaker ResNet101: [3, 4, 23, 3] Bottleneck blocks, 32 base channels, 256-dim embedding.

    Parameters for 80-dim fbank: 15,892,448.  Receptive field 243 frames, frame shift 8.
    """

    stage_sizes = (3, 4, 23, 3)


class ResNet152(BottleneckResNet):
    """WeSpeaker ResNet152: [3, 8, 36, 3] Bottleneck blocks, 32 base channels, 256-dim embedding.

    Parameters for 80-dim fbank: 19,814,880.  Receptive field 363 frames, frame shift 8.
    """

    stage_sizes = (3, 8, 36, 3)


class ResNet221(BottleneckResNet):
    """WeSpeaker ResNet221: [6, 16, 48, 3] Bottleneck blocks, 32 base channels, 256-dim embedding.

    Parameters for 80-dim fbank: 23,792,224.  Receptive field 497 frames, frame shift 8.
    """

    stage_sizes = (6, 16, 48, 3)


class ResNet293(BottleneckResNet):
    """WeSpeaker ResNet293: [10, 20, 64, 3] Bottleneck blocks, 32 base channels, 256-dim embedding.

    Parameters for 80-dim fbank: 28,626,016.  Receptive field 649 frames, frame shift 8.
    """

    stage_sizes = (10, 20, 64, 3)
