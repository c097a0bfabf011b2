"""ECAPA-TDNN (Desplanques, Thienpondt, Demuynck, Interspeech 2020) on filterbanks.

Frame layers, every one "Conv1d -> ReLU -> BatchNorm" unless noted (C = 512 or 1024):

  layer1  Conv1d k=5, d=1, feat_dim -> C
  layer2  SE-Res2Block k=3, d=2      \\
  layer3  SE-Res2Block k=3, d=3       > each: 1x1 conv, Res2 dilated conv (scale 8),
  layer4  SE-Res2Block k=3, d=4      /  1x1 conv, squeeze-excitation (bottleneck 128),
                                        plus the block input (residual)
  MFA     concatenation of the three block outputs (3C) -> Conv1d 1x1 to 1536 -> ReLU
  pooling attentive statistics with global context (pooling.AttentiveStatsPooling,
          bottleneck 128) -> BatchNorm
  FC      affine -> 192, BatchNorm  = the embedding (fed to the AAM loss; ``head`` is
          the identity, as in WeSpeaker)

Res2 dilated conv: the C channels are cut into 8 groups x_1..x_8; y_1 = x_1,
y_2 = K_2(x_2), y_i = K_i(x_i + y_{i-1}) for i > 2, each K_i a C/8-wide
Conv1d -> ReLU -> BN; the outputs are concatenated.  Because the groups are
chained, one block widens the receptive field by 7 * (k - 1) * d frames.

MFA width: 1536 for both C=512 and C=1024, as in the paper: its figure draws
1536, and its 14.7M parameters for C=1024 are only reached with 1536.
WeSpeaker (``cat_channels = channels * 3``) and SpeechBrain's C=1024 VoxCeleb
recipe use 3C = 3072 for C=1024 instead: 20,761,536 parameters here
(WeSpeaker's README: 20.761M); set ``mfa_channels: 3072`` for that.

Differences from WeSpeaker's ECAPA_TDNN_GLOB_c512/c1024: the MFA width for
C=1024 (above); the final BatchNorm
on the 192-dim embedding (the paper's "FC + BN"; WeSpeaker stops at the
affine layer; ``final_bn=False`` removes it, -384 parameters); the Res2 groups
are chained in the standard Res2Net order (first group passed through,
WeSpeaker passes the last one; same parameters); the global-context mean and
std use the biased variance.

Receptive field of the convolutional path: 131 frames (+-65) = 5 + 7*2*2 +
7*2*3 + 7*2*4 (layer1, then three blocks of 7 chained k=3 convolutions).
Frame shift 1; every convolution is zero-padded to keep the number of frames.  The squeeze-excitation (and the attentive pooling)
also see utterance-wide means, so strictly every frame output depends on
the whole input; 131 is the extent of the local, convolutional context.

Parameters for 80-dim fbank, 192-dim embedding: C=512 6,191,104 (WeSpeaker's
ECAPA_TDNN_GLOB_c512 has 6,190,720 = this minus the final BatchNorm's 384;
its README says 6.190M; the paper says 6.2M); C=1024 14,657,472 (paper:
14.7M).  ``num_parameters()`` gives the exact count.
"""
from __future__ import annotations

import torch
from torch import nn

from pyutils.models.base import EmbeddingNet
from pyutils.models.pooling import AttentiveStatsPooling


class ConvReluBn(nn.Module):
    """Conv1d (zero-padded, 'same' length) -> ReLU -> BatchNorm1d."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1,
                 dilation: int = 1, padding_mode: str = "zeros"):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation,
                              padding=dilation * (kernel_size - 1) // 2,
                              padding_mode=padding_mode)
        self.relu = nn.ReLU()
        self.norm = nn.BatchNorm1d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.relu(self.conv(x)))


class Res2Conv(nn.Module):
    """Res2Net dilated convolution: ``scale`` channel groups, chained."""

    def __init__(self, channels: int, kernel_size: int, dilation: int, scale: int = 8,
                 padding_mode: str = "zeros", pass_last: bool = False):
        # pass_last: WeSpeaker's order (groups 1..7 chained, group 8 passed through)
        super().__init__()
        self.pass_last = pass_last
        if channels % scale:
            raise ValueError(f"channels {channels} not divisible by scale {scale}")
        self.scale = scale
        width = channels // scale
        self.convs = nn.ModuleList(ConvReluBn(width, width, kernel_size, dilation, padding_mode)
                                   for _ in range(scale - 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        groups = torch.chunk(x, self.scale, dim=1)
        if self.pass_last:
            outputs, previous = [], None
            for group, conv in zip(groups[:-1], self.convs):
                previous = conv(group if previous is None else group + previous)
                outputs.append(previous)
            return torch.cat(outputs + [groups[-1]], dim=1)
        outputs, previous = [groups[0]], None
        for group, conv in zip(groups[1:], self.convs):
            previous = conv(group if previous is None else group + previous)
            outputs.append(previous)
        return torch.cat(outputs, dim=1)


class SqueezeExcitation(nn.Module):
    """Channel gates from the utterance mean: x * sigmoid(W2 relu(W1 mean_t x))."""

    def __init__(self, channels: int, bottleneck: int = 128):
        super().__init__()
        self.squeeze = nn.Linear(channels, bottleneck)
        self.excite = nn.Linear(bottleneck, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gates = torch.sigmoid(self.excite(torch.relu(self.squeeze(x.mean(dim=2)))))
        return x * gates.unsqueeze(2)


class SERes2Block(nn.Module):
    """1x1 conv -> Res2 dilated conv -> 1x1 conv -> SE, plus the input."""

    def __init__(self, channels: int, kernel_size: int, dilation: int, scale: int = 8,
                 se_bottleneck: int = 128, padding_mode: str = "zeros", pass_last: bool = False):
        super().__init__()
        self.body = nn.Sequential(
            ConvReluBn(channels, channels, 1),
            Res2Conv(channels, kernel_size, dilation, scale, padding_mode, pass_last),
            ConvReluBn(channels, channels, 1),
            SqueezeExcitation(channels, se_bottleneck))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ECAPATDNN(EmbeddingNet):
    """ECAPA-TDNN: ``forward`` gives the 192-dim embedding; ``head`` is the identity.

    Parameters for 80-dim fbank, 192-dim embedding: C=512 6,191,104; C=1024
    14,657,472.  Receptive field (convolutional path) 131 frames, frame shift 1.
    """

    frame_shift = 1

    def __init__(self, feat_dim: int = 80, channels: int = 512, embed_dim: int = 192,
                 mfa_channels: int = 1536, scale: int = 8, se_bottleneck: int = 128,
                 attention_bottleneck: int = 128, global_context: bool = True,
                 final_bn: bool = True, kernel_size: int = 3, dilations=(2, 3, 4),
                 layout: str = "paper"):
        # layout (imported models, pyutils.models.convert): "speechbrain": SpeechBrain's
        # ECAPA_TDNN: reflect-padded convolutions, BatchNorm after the MFA, ReLU + BatchNorm
        # inside the attention, variance floor 1e-12; "wespeaker": WeSpeaker's ECAPA_TDNN:
        # Res2 groups chained from the first (the last passed through) and its ASTP arithmetic
        super().__init__()
        if layout not in ("paper", "speechbrain", "wespeaker"):
            raise ValueError(f"model.layout must be paper, speechbrain or wespeaker, got "
                             f"'{layout}'")
        speechbrain = layout == "speechbrain"
        self.kernel_size, self.dilations, self.scale = kernel_size, tuple(dilations), scale
        padding = "reflect" if speechbrain else "zeros"
        self.layer1 = ConvReluBn(feat_dim, channels, kernel_size=5, padding_mode=padding)
        self.blocks = nn.ModuleList(
            SERes2Block(channels, kernel_size, d, scale, se_bottleneck, padding,
                        pass_last=layout == "wespeaker")
            for d in self.dilations)
        self.mfa = nn.Sequential(
            nn.Conv1d(channels * len(self.dilations), mfa_channels, kernel_size=1), nn.ReLU(),
            *([nn.BatchNorm1d(mfa_channels)] if speechbrain else []))
        self.pooling = AttentiveStatsPooling(mfa_channels, attention_bottleneck, global_context,
                                             variance_floor=1e-12 if speechbrain else 1e-10,
                                             attention_norm=speechbrain,
                                             wespeaker_stats=layout == "wespeaker")
        self.pooling_norm = nn.BatchNorm1d(2 * mfa_channels)
        self.embedding = nn.Linear(2 * mfa_channels, embed_dim)
        self.embedding_norm = nn.BatchNorm1d(embed_dim) if final_bn else nn.Identity()
        self.set_head(embed_dim)

    @property
    def receptive_field(self) -> int:
        """Frames spanned by the convolutional path (layer1 k=5, chained Res2 groups)."""
        return 5 + sum((self.scale - 1) * (self.kernel_size - 1) * d for d in self.dilations)

    def frame_level(self, feats: torch.Tensor) -> torch.Tensor:
        """(batch, frames, feat_dim) -> (batch, mfa_channels, frames): the MFA output."""
        x = self.layer1(feats.transpose(1, 2))
        outputs = []
        for block in self.blocks:
            x = block(x)
            outputs.append(x)
        return self.mfa(torch.cat(outputs, dim=1))

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """(batch, frames, feat_dim) -> (batch, embed_dim) embeddings."""
        stats = self.pooling_norm(self.pooling(self.frame_level(feats)))
        return self.embedding_norm(self.embedding(stats))


class ECAPATDNN512(ECAPATDNN):
    """ECAPA-TDNN with C=512 (MFA 1536): 6,191,104 parameters for 80-dim fbank."""

    def __init__(self, feat_dim: int = 80, embed_dim: int = 192, **kwargs):
        kwargs.setdefault("channels", 512)
        super().__init__(feat_dim=feat_dim, embed_dim=embed_dim, **kwargs)


class ECAPATDNN1024(ECAPATDNN):
    """ECAPA-TDNN with C=1024 (MFA 1536): 14,657,472 parameters for 80-dim fbank."""

    def __init__(self, feat_dim: int = 80, embed_dim: int = 192, **kwargs):
        kwargs.setdefault("channels", 1024)
        super().__init__(feat_dim=feat_dim, embed_dim=embed_dim, **kwargs)
