"""CAM++ (Wang et al., Interspeech 2023), the layout of WeSpeaker's
``wespeaker/models/campplus.py`` and 3D-Speaker's ``speakerlab/models/campplus``.

* front-end (FCM): a 2-D ResNet over (frequency, time): a 3x3 stem of 32
  channels, two stages of two basic blocks each halving the frequency axis,
  a last 3x3 convolution halving it again; its channels x frequency bins
  (32 x ceil(F / 8)) become the channels of a 1-D sequence;
* a TDNN layer (kernel 5, stride 2 in time) to 128 channels;
* three densely connected TDNN blocks of 12, 24 and 16 layers (growth 32,
  bottleneck 4 x 32, kernel 3, dilations 1, 2, 2), each followed by a
  1x1 transit layer halving the channels; every dense layer's 3-tap
  convolution is scaled by a **context-aware mask**: a sigmoid of a small
  network over the utterance mean plus the mean of the surrounding
  100-frame segment of its input;
* mean + standard-deviation pooling (unbiased variance + 1e-7, WeSpeaker's TSTP) and a 512-dim affine
  embedding with a non-affine batch norm.

Every norm is BatchNorm (then ReLU).  Parameters for 80-dim fbank and a
512-dim embedding: 7,176,736 (the published 7.18 M).  Frame shift 2 (the
strided TDNN layer); the local receptive field is 393 frames (+-196), beyond
which the context masks reach the whole utterance.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from pyutils.models.base import EmbeddingNet


def _bn_relu(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm1d(channels), nn.ReLU())


class BasicBlock2d(nn.Module):
    """3x3 - 3x3 residual block; ``stride`` acts on the frequency axis only."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=(stride, 1), padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=(stride, 1), bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class FCM(nn.Module):
    """The 2-D convolutional front-end: (batch, F, T) -> (batch, 32 * ceil(F/8), T)."""

    def __init__(self, feat_dim: int = 80, channels: int = 32, blocks=(2, 2)):
        super().__init__()
        self.conv1 = nn.Conv2d(1, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.layer1 = nn.Sequential(*[BasicBlock2d(channels, channels, 2 if i == 0 else 1)
                                      for i in range(blocks[0])])
        self.layer2 = nn.Sequential(*[BasicBlock2d(channels, channels, 2 if i == 0 else 1)
                                      for i in range(blocks[1])])
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=(2, 1), padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.out_channels = channels * math.ceil(feat_dim / 8)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x.unsqueeze(1))))
        out = F.relu(self.bn2(self.conv2(self.layer2(self.layer1(out)))))
        return out.reshape(out.shape[0], -1, out.shape[-1])


class ContextMask(nn.Module):
    """The context-aware mask of a CAM layer: sigmoid(W2 relu(W1 (global mean
    + segment mean))) per channel and frame, segments of ``segment`` frames."""

    def __init__(self, in_ch: int, out_ch: int, reduction: int = 2, segment: int = 100):
        super().__init__()
        self.segment = segment
        self.linear1 = nn.Conv1d(in_ch, in_ch // reduction, 1)
        self.linear2 = nn.Conv1d(in_ch // reduction, out_ch, 1)

    def segment_means(self, x):
        seg = F.avg_pool1d(x, self.segment, self.segment, ceil_mode=True)
        return seg.repeat_interleave(self.segment, dim=-1)[..., :x.shape[-1]]

    def forward(self, x):
        context = x.mean(dim=-1, keepdim=True) + self.segment_means(x)
        return torch.sigmoid(self.linear2(F.relu(self.linear1(context))))


class CAMDenseLayer(nn.Module):
    """BN-ReLU-1x1 bottleneck, BN-ReLU, then a masked dilated 3-tap convolution."""

    def __init__(self, in_ch: int, growth: int, bottleneck: int, kernel: int, dilation: int):
        super().__init__()
        self.nonlinear1 = _bn_relu(in_ch)
        self.linear1 = nn.Conv1d(in_ch, bottleneck, 1, bias=False)
        self.nonlinear2 = _bn_relu(bottleneck)
        self.linear_local = nn.Conv1d(bottleneck, growth, kernel, dilation=dilation,
                                      padding=(kernel - 1) // 2 * dilation, bias=False)
        self.mask = ContextMask(bottleneck, growth)

    def forward(self, x):
        x = self.nonlinear2(self.linear1(self.nonlinear1(x)))
        return self.linear_local(x) * self.mask(x)


class CAMDenseBlock(nn.ModuleList):
    """Densely connected layers: each sees the concatenation of all before it."""

    def __init__(self, layers: int, in_ch: int, growth: int, bottleneck: int, kernel: int,
                 dilation: int):
        super().__init__([CAMDenseLayer(in_ch + i * growth, growth, bottleneck, kernel, dilation)
                          for i in range(layers)])

    def forward(self, x):
        for layer in self:
            x = torch.cat([x, layer(x)], dim=1)
        return x


class CAMPPlus(EmbeddingNet):
    """CAM++: ``forward`` (batch, frames, feat_dim) -> (batch, embed_dim)."""

    receptive_field = 393
    frame_shift = 2

    def __init__(self, feat_dim: int = 80, embed_dim: int = 512, growth_rate: int = 32,
                 bn_size: int = 4, init_channels: int = 128,
                 blocks=((12, 3, 1), (24, 3, 2), (16, 3, 2)), stats_eps: float = 1e-7):
        # stats_eps: added to the pooled variance (WeSpeaker 1e-7; 3D-Speaker's std has none)
        super().__init__()
        self.stats_eps = float(stats_eps)
        self.fcm = FCM(feat_dim)
        layers = [nn.Conv1d(self.fcm.out_channels, init_channels, 5, stride=2, padding=2,
                            bias=False), nn.BatchNorm1d(init_channels), nn.ReLU()]
        channels = init_channels
        for num_layers, kernel, dilation in blocks:
            layers.append(CAMDenseBlock(num_layers, channels, growth_rate, bn_size * growth_rate,
                                        kernel, dilation))
            channels += num_layers * growth_rate
            layers += [nn.BatchNorm1d(channels), nn.ReLU(),                  # transit layer
                       nn.Conv1d(channels, channels // 2, 1, bias=False)]
            channels //= 2
        layers += [nn.BatchNorm1d(channels), nn.ReLU()]
        self.tdnn = nn.Sequential(*layers)
        self.embedding = nn.Linear(2 * channels, embed_dim)
        self.embedding_norm = nn.BatchNorm1d(embed_dim, affine=False)
        self.set_head(embed_dim)

    def frame_level(self, feats: torch.Tensor) -> torch.Tensor:
        """(batch, frames, feat_dim) -> (batch, channels, ceil(frames / 2))."""
        return self.tdnn(self.fcm(feats.transpose(1, 2)))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        x = self.frame_level(feats)
        stats = torch.cat([x.mean(dim=-1), torch.sqrt(x.var(dim=-1) + self.stats_eps)], dim=1)
        return self.embedding_norm(self.embedding(stats))
