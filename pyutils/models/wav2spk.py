"""Wav2Spk (Lin & Mak, Interspeech 2020): speaker embeddings straight from the waveform.

The paper replaces MFCC, VAD and CMVN by standard network layers:

  input     (batch, samples) float waveform on the int16 scale (Kaldi's
            convention), divided by 32768 here; no CMVN, no VAD
  encoder   5 strided Conv1d layers (no padding), kernels (10, 8, 4, 4, 4),
            strides (5, 4, 2, 2, 2), channels (40, 200, 300, 512, 512); each
            conv -> ReLU -> instance normalisation (per utterance, per channel,
            over time, with a learned scale and offset).  The last one plays
            the role of CMVN on learned "features" at 100 frames/s.
  gating    temporal gating, a learned VAD: g_t = sigmoid(w . h_t + b), one
            gate per frame from that frame's 512 features, h_t <- g_t * h_t
  frames    frame aggregator: 4 TDNN layers, 512 wide, kernel 3 (context
            {-1, 0, 1}), each affine -> ReLU -> BatchNorm (tdnn.ReluBatchNormTdnn)
  pooling   mean + standard deviation over time (StatsPooling)
  segment   affine 1024 -> 512 -> ReLU -> BatchNorm, then affine 512 -> 512 =
            the embedding, fed to the loss (``head`` is the identity)

Sources and guesses.  The paper's PDF could not be read here; the structure
comes from a summary of it (maelfabien.github.io: five conv layers, kernels
(10, 8, 4, 4, 4), strides (5, 4, 2, 2, 2), 30 ms windows at a 10 ms shift,
then temporal gating) and from four public re-implementations, which agree
on encoder widths (40, 200, 300, 512, 512), instance normalisation in the
encoder, a frame aggregator of four 512-wide kernel-3 convolutions and
mean (+std) pooling before the utterance layers; most gate each frame by
sigmoid(w . h_t + b).  Those re-implementations use kernels (10, 5, 5, 3, 3)
(receptive field 350 samples) where the summary says (10, 8, 4, 4, 4); the
defaults here take the summary's kernels (as wav2vec, which the paper builds
on) with the re-implementations' widths; all are constructor arguments.
Guessed: the conv -> ReLU -> IN order (so the encoder output is mean and
variance normalised per channel, like CMVN'd features); the BatchNorm in
the frame aggregator (the re-implementations have none; this repo's
x-vector frame layers have it); unpadded convolutions (exact, Kaldi-style
frame counts); the utterance layers (x-vector-like, 512-dim embedding).

Receptive field: encoder 465 samples (29 ms at 16 kHz) at a shift of 160
samples (10 ms); the whole frame-level part (encoder + gating + aggregator)
465 + 8 * 160 = 1745 samples (109 ms), which is ``receptive_field``.  An
input of N samples gives floor((N - 465) / 160) + 1 - 8 output frames
(``num_frames``); ``forward`` zero-pads shorter inputs to 1745 samples
(``frame_level`` refuses them).  Instance normalisation uses utterance-wide
statistics, so strictly every frame depends on the whole input; the
receptive field is that of the convolutional path.

Parameters (default configuration): 5,912,933 (``num_parameters()``).
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from pyutils.models.base import EmbeddingNet
from pyutils.models.pooling import StatsPooling
from pyutils.models.tdnn import ReluBatchNormTdnn

INT16_SCALE = 32768.0


class EncoderLayer(nn.Module):
    """Strided Conv1d (no padding) -> ReLU -> InstanceNorm1d (learned affine)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride)
        self.relu = nn.ReLU()
        self.norm = nn.InstanceNorm1d(out_channels, affine=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.relu(self.conv(x)))


class TemporalGate(nn.Module):
    """One sigmoid gate per frame from that frame's features: x_t * sigmoid(w . x_t + b)."""

    def __init__(self, channels: int):
        super().__init__()
        self.score = nn.Conv1d(channels, 1, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.score(x))


class Wav2Spk(EmbeddingNet):
    """Wav2Spk on raw waveforms: ``forward`` gives embeddings, ``head`` is the identity.

    Parameters (default configuration): 5,912,933.  Receptive field 1745
    samples (encoder alone 465), frame shift 160 samples (10 ms at 16 kHz).
    """

    input_type = "waveform"

    def __init__(self, feat_dim: Optional[int] = None, embed_dim: int = 512,
                 encoder_channels: Sequence[int] = (40, 200, 300, 512, 512),
                 kernel_sizes: Sequence[int] = (10, 8, 4, 4, 4),
                 strides: Sequence[int] = (5, 4, 2, 2, 2),
                 aggregator_dims: Sequence[int] = (512, 512, 512, 512),
                 aggregator_kernel: int = 3, segment_dim: int = 512,
                 temporal_gating: bool = True):
        # feat_dim is accepted for the common build_model interface; a waveform has none.
        super().__init__()
        if not len(encoder_channels) == len(kernel_sizes) == len(strides):
            raise ValueError("encoder_channels, kernel_sizes and strides need equal lengths")
        self.kernel_sizes = tuple(int(k) for k in kernel_sizes)
        self.strides = tuple(int(s) for s in strides)
        self.aggregator_kernel = int(aggregator_kernel)
        layers, in_channels = [], 1
        for channels, kernel, stride in zip(encoder_channels, self.kernel_sizes, self.strides):
            layers.append(EncoderLayer(in_channels, channels, kernel, stride))
            in_channels = channels
        self.encoder = nn.Sequential(*layers)
        self.gate = TemporalGate(in_channels) if temporal_gating else nn.Identity()
        frames = []
        for dim in aggregator_dims:
            frames.append(ReluBatchNormTdnn(in_channels, dim, self.aggregator_kernel))
            in_channels = dim
        self.aggregator = nn.Sequential(*frames)
        self.num_aggregator_layers = len(frames)
        self.pooling = StatsPooling()
        self.segment = nn.Sequential(nn.Linear(2 * in_channels, segment_dim), nn.ReLU(),
                                     nn.BatchNorm1d(segment_dim))
        self.embedding = nn.Linear(segment_dim, embed_dim)
        self.set_head(embed_dim)

    @property
    def frame_shift(self) -> int:
        """Input samples per output frame (product of the strides): 160."""
        shift = 1
        for stride in self.strides:
            shift *= stride
        return shift

    @property
    def encoder_receptive_field(self) -> int:
        """Samples seen by one encoder frame: 465 for the defaults."""
        field, jump = 1, 1
        for kernel, stride in zip(self.kernel_sizes, self.strides):
            field += (kernel - 1) * jump
            jump *= stride
        return field

    @property
    def receptive_field(self) -> int:
        """Samples seen by one frame-level output (encoder + aggregator): 1745."""
        context = (self.aggregator_kernel - 1) * self.num_aggregator_layers
        return self.encoder_receptive_field + context * self.frame_shift

    def num_frames(self, num_samples: int) -> int:
        """Frame-level outputs for ``num_samples`` input samples (0 if too short)."""
        if num_samples < self.receptive_field:
            return 0
        return (num_samples - self.receptive_field) // self.frame_shift + 1

    def frame_level(self, waveform: torch.Tensor) -> torch.Tensor:
        """(batch, samples) int16-scale waveform -> (batch, channels, frames)."""
        if waveform.shape[-1] < self.receptive_field:
            raise ValueError(f"need at least {self.receptive_field} samples, "
                             f"got {waveform.shape[-1]}")
        x = (waveform / INT16_SCALE).unsqueeze(1)
        return self.aggregator(self.gate(self.encoder(x)))

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> (batch, embed_dim) embeddings.

        Inputs shorter than the receptive field are zero-padded (silence, split
        evenly between the two ends) to one frame's worth, so a short tail
        chunk at extraction still gets an embedding."""
        missing = self.receptive_field - waveform.shape[-1]
        if missing > 0:
            waveform = nn.functional.pad(waveform, (missing // 2, missing - missing // 2))
        return self.embedding(self.segment(self.pooling(self.frame_level(waveform))))
