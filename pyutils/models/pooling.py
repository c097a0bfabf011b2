"""Temporal pooling layers.

The statistics (means, variances, the attention softmax) are computed in
float32 even under autocast: ``E[x^2] - E[x]^2`` and a softmax over hundreds
of frames lose most of their digits in bf16/fp16 (issue 8).  The attention's
1x1 convolutions still run in the autocast dtype.
"""
import torch
from torch import nn


def _fp32(x: torch.Tensor) -> torch.Tensor:
    """``x`` as float32 (a no-op for float32 and float64 input)."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _no_autocast(x: torch.Tensor):
    return torch.autocast(device_type=x.device.type, enabled=False)


class StatsPooling(nn.Module):
    """Mean and standard deviation over time (Kaldi stats-layer mean+stddev).

    (batch, channels, frames) -> (batch, 2 * channels); the variance is floored
    at 1e-10 before the square root, as Kaldi's variance-floor does.  It is the
    mean of the squared deviations (two passes), not ``E[x^2] - E[x]^2``: a
    channel constant over an utterance (a ReLU silent on all its frames, common
    after a few steps) then has variance 0, floored, and no gradient, where the
    one-pass difference left rounding noise of about +-1e-7 whose square root
    sent gradients of ~1/(2 sqrt(1e-7)) into training, different under each
    kernel order (why compiled and eager training parted after a few steps).
    """

    def __init__(self, variance_floor: float = 1e-10):
        super().__init__()
        self.variance_floor = variance_floor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with _no_autocast(x):
            x = _fp32(x)
            mean = x.mean(dim=2)
            var = ((x - mean.unsqueeze(2)) ** 2).mean(dim=2)
            return torch.cat([mean, var.clamp(min=self.variance_floor).sqrt()], dim=1)


class TemporalStatsPooling(nn.Module):
    """WeSpeaker's TSTP: mean and sqrt(unbiased variance + 1e-7) over time.

    (batch, channels, frames) -> (batch, 2 * channels); what imported WeSpeaker
    ResNets were trained with (``model.pooling: tstp``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with _no_autocast(x):
            x = _fp32(x)
            return torch.cat([x.mean(dim=2), torch.sqrt(x.var(dim=2) + 1e-7)], dim=1)


class AttentiveStatsPooling(nn.Module):
    """Channel- and context-dependent attentive statistics pooling (ECAPA-TDNN, sec. 2.3).

    (batch, channels, frames) -> (batch, 2 * channels).  Every channel ``c``
    gets its own softmax over time of the scores

        e[t, c] = v_c . tanh(W k_t + b) + k_c

    where ``k_t`` is the frame ``h_t`` alone or, with ``global_context``, the
    frame concatenated with the utterance mean and standard deviation of
    ``h`` (so the attention can judge a frame against the whole utterance).
    W (a ``bottleneck``-wide 1x1 convolution) is shared by all channels; the
    second 1x1 convolution holds the per-channel v_c and k_c.  The outputs
    are the attention-weighted mean and standard deviation of every channel;
    the variance is floored at ``variance_floor`` before the square root.

    Parameters: (3 if global_context else 1) * C * B + B + B * C + C for
    C channels and bottleneck B.
    """

    def __init__(self, channels: int, bottleneck: int = 128, global_context: bool = True,
                 variance_floor: float = 1e-10, attention_norm: bool = False,
                 wespeaker_stats: bool = False):
        # attention_norm: ReLU + BatchNorm after W (SpeechBrain's TDNNBlock), before the tanh;
        # wespeaker_stats: WeSpeaker's ASTP arithmetic (context std sqrt(unbiased var + 1e-7),
        # pooled var E[x^2] - mean^2 floored at 1e-7), for imported WeSpeaker models
        super().__init__()
        self.global_context = global_context
        self.variance_floor = variance_floor
        self.wespeaker_stats = wespeaker_stats
        context_dim = 3 * channels if global_context else channels
        norm = [nn.ReLU(), nn.BatchNorm1d(bottleneck)] if attention_norm else []
        self.attention = nn.Sequential(
            nn.Conv1d(context_dim, bottleneck, kernel_size=1),   # W, b
            *norm,
            nn.Tanh(),
            nn.Conv1d(bottleneck, channels, kernel_size=1))      # v_c, k_c

    def _stats(self, x: torch.Tensor, weights: torch.Tensor):
        """Weighted mean and std over time in float32; ``weights`` sum to 1 over time."""
        with _no_autocast(x):
            x, weights = _fp32(x), _fp32(weights)
            mean = (weights * x).sum(dim=2)
            var = (weights * (x - mean.unsqueeze(2)) ** 2).sum(dim=2)
            return mean, var.clamp(min=self.variance_floor).sqrt()

    def _wespeaker_stats(self, x: torch.Tensor, weights: torch.Tensor):
        with _no_autocast(x):
            x, weights = _fp32(x), _fp32(weights)
            mean = (weights * x).sum(dim=2)
            var = (weights * x * x).sum(dim=2) - mean ** 2
            return mean, var.clamp(min=1e-7).sqrt()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = x.shape[2]
        if self.global_context and self.wespeaker_stats:
            with _no_autocast(x):
                mean, std = _fp32(x).mean(dim=2), torch.sqrt(_fp32(x).var(dim=2) + 1e-7)
            context = torch.cat([x, mean.unsqueeze(2).expand_as(x).to(x.dtype),
                                 std.unsqueeze(2).expand_as(x).to(x.dtype)], dim=1)
        elif self.global_context:
            uniform = x.new_full((1, 1, frames), 1.0 / frames)
            mean, std = self._stats(x, uniform)
            context = torch.cat([x, mean.unsqueeze(2).expand_as(x).to(x.dtype),
                                 std.unsqueeze(2).expand_as(x).to(x.dtype)], dim=1)
        else:
            context = x
        scores = self.attention(context)              # autocast dtype under autocast
        with _no_autocast(x):
            alpha = torch.softmax(_fp32(scores), dim=2)
        mean, std = (self._wespeaker_stats if self.wespeaker_stats else self._stats)(x, alpha)
        return torch.cat([mean, std], dim=1)
