"""ERes2Net-base (Chen et al., Interspeech 2023), the layout of 3D-Speaker's
``speakerlab/models/eres2net/ERes2Net.py`` and WeSpeaker's ``eres2net.py``.

A ResNet34-shaped 2-D network (stem 3x3 of 32 channels; stages of 3, 4, 6, 3
blocks with 32, 64, 128, 256 planes, expansion 2, time and frequency halved
at stages 2-4) whose blocks are Res2Net blocks of scale 2 (width
planes * 32 / 64 per split):

* **local feature fusion**: in stages 3 and 4 a split is joined to the output
  of the previous split by attentional feature fusion (AFF: a 1x1 conv
  network over both gives weights ``1 + tanh(a)``; out = x * w + y * (2 - w))
  instead of the plain sum of stages 1 and 2;
* **global feature fusion**: the outputs of stages 1-4 are fused bottom-up,
  each earlier result brought down by a strided 3x3 convolution and joined
  to the next stage's output by AFF.

Activations in the blocks are ReLU clipped at 20 (Hardtanh(0, 20)), in the stem a plain ReLU; mean + standard
deviation pooling over time of the (channels x frequency) map (unbiased
variance + 1e-7, WeSpeaker's TSTP) and a 192-dim affine embedding.
Parameters for 80-dim fbank: 6,610,688, as the reference file's own count
(6.61 M); the published "4.6 M" of ERes2Net-base is this without the 1,966,272
of the embedding layer (10,240 x 192 + 192).  Frame shift 8, receptive field
239 frames (+-119).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from pyutils.models.base import EmbeddingNet


def _relu() -> nn.Module:
    return nn.Hardtanh(0.0, 20.0)


class AFF(nn.Module):
    """Attentional feature fusion of two maps of ``channels`` channels."""

    def __init__(self, channels: int, r: int = 4):
        super().__init__()
        inter = channels // r
        self.local_att = nn.Sequential(
            nn.Conv2d(2 * channels, inter, 1), nn.BatchNorm2d(inter), nn.SiLU(),
            nn.Conv2d(inter, channels, 1), nn.BatchNorm2d(channels))

    def forward(self, x, y):
        weight = 1.0 + torch.tanh(self.local_att(torch.cat([x, y], dim=1)))
        return x * weight + y * (2.0 - weight)


class ERes2NetBlock(nn.Module):
    """Res2Net basic block of ``scale`` splits; ``fuse``: AFF joins the splits."""

    expansion = 2

    def __init__(self, in_ch: int, planes: int, stride: int = 1, base_width: int = 32,
                 scale: int = 2, fuse: bool = False):
        super().__init__()
        width = int(math.floor(planes * base_width / 64.0))
        self.width, self.scale = width, scale
        self.conv1 = nn.Conv2d(in_ch, width * scale, 1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(width * scale)
        self.convs = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1, bias=False)
                                   for _ in range(scale))
        self.bns = nn.ModuleList(nn.BatchNorm2d(width) for _ in range(scale))
        self.fuse = nn.ModuleList(AFF(width) for _ in range(scale - 1)) if fuse else None
        self.conv3 = nn.Conv2d(width * scale, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = _relu()
        self.shortcut = nn.Sequential()
        if stride != 1 or in_ch != planes * self.expansion:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, planes * self.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * self.expansion))

    def forward(self, x):
        splits = torch.split(self.relu(self.bn1(self.conv1(x))), self.width, dim=1)
        outs = []
        for i, split in enumerate(splits):
            if i == 0:
                sp = split
            else:
                sp = self.fuse[i - 1](sp, split) if self.fuse is not None else sp + split
            sp = self.relu(self.bns[i](self.convs[i](sp)))
            outs.append(sp)
        out = self.bn3(self.conv3(torch.cat(outs, dim=1)))
        return self.relu(out + self.shortcut(x))


class ERes2Net(EmbeddingNet):
    """ERes2Net: ``forward`` (batch, frames, feat_dim) -> (batch, embed_dim)."""

    receptive_field = 239
    frame_shift = 8

    def __init__(self, feat_dim: int = 80, embed_dim: int = 192, m_channels: int = 32,
                 num_blocks=(3, 4, 6, 3), base_width: int = 32, scale: int = 2,
                 stats_eps: float = 1e-7):
        # stats_eps: added to the pooled variance (WeSpeaker 1e-7, 3D-Speaker 1e-8)
        super().__init__()
        self.stats_eps = float(stats_eps)
        self.conv1 = nn.Conv2d(1, m_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(m_channels)
        self.relu = _relu()
        in_ch, stages = m_channels, []
        for i, blocks in enumerate(num_blocks):
            planes = m_channels * 2 ** i
            layer = []
            for b in range(blocks):
                layer.append(ERes2NetBlock(in_ch, planes, 2 if (b == 0 and i > 0) else 1,
                                           base_width, scale, fuse=i >= 2))
                in_ch = planes * ERes2NetBlock.expansion
            stages.append(nn.Sequential(*layer))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        c = m_channels
        self.downsample = nn.ModuleList(nn.Conv2d(c * 2 ** (i + 1), c * 2 ** (i + 2), 3, stride=2,
                                                  padding=1, bias=False) for i in range(3))
        self.fuse = nn.ModuleList(AFF(c * 2 ** (i + 2)) for i in range(3))
        self.frame_dim = in_ch * math.ceil(feat_dim / 8)
        self.embedding = nn.Linear(2 * self.frame_dim, embed_dim)
        self.set_head(embed_dim)

    def frame_level(self, feats: torch.Tensor) -> torch.Tensor:
        """(batch, frames, feat_dim) -> (batch, 512 * ceil(feat_dim/8), ceil(frames/8))."""
        out = torch.relu(self.bn1(self.conv1(feats.transpose(1, 2).unsqueeze(1))))
        fused = None
        for i, layer in enumerate((self.layer1, self.layer2, self.layer3, self.layer4)):
            out = layer(out)
            if i == 0:
                fused = out
            else:
                fused = self.fuse[i - 1](out, self.downsample[i - 1](fused))
        return fused.reshape(fused.shape[0], -1, fused.shape[-1])

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = self.frame_level(feats)
        stats = torch.cat([x.mean(dim=-1), torch.sqrt(x.var(dim=-1) + self.stats_eps)], dim=1)
        return self.embedding(stats)
