"""Temporal pooling layers."""
import torch
from torch import nn


class StatsPooling(nn.Module):
    """Mean and standard deviation over time (Kaldi stats-layer mean+stddev).

    (batch, channels, frames) -> (batch, 2 * channels); the variance is floored
    at 1e-10 before the square root, as Kaldi's variance-floor does.
    """

    def __init__(self, variance_floor: float = 1e-10):
        super().__init__()
        self.variance_floor = variance_floor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=2)
        var = (x * x).mean(dim=2) - mean * mean
        return torch.cat([mean, var.clamp(min=self.variance_floor).sqrt()], dim=1)


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
                 variance_floor: float = 1e-10):
        super().__init__()
        self.global_context = global_context
        self.variance_floor = variance_floor
        context_dim = 3 * channels if global_context else channels
        self.attention = nn.Sequential(
            nn.Conv1d(context_dim, bottleneck, kernel_size=1),   # W, b
            nn.Tanh(),
            nn.Conv1d(bottleneck, channels, kernel_size=1))      # v_c, k_c

    def _stats(self, x: torch.Tensor, weights: torch.Tensor):
        """Weighted mean and std over time; ``weights`` sum to 1 over time."""
        mean = (weights * x).sum(dim=2)
        var = (weights * (x - mean.unsqueeze(2)) ** 2).sum(dim=2)
        return mean, var.clamp(min=self.variance_floor).sqrt()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = x.shape[2]
        if self.global_context:
            uniform = x.new_full((1, 1, frames), 1.0 / frames)
            mean, std = self._stats(x, uniform)
            context = torch.cat([x, mean.unsqueeze(2).expand_as(x),
                                 std.unsqueeze(2).expand_as(x)], dim=1)
        else:
            context = x
        alpha = torch.softmax(self.attention(context), dim=2)
        mean, std = self._stats(x, alpha)
        return torch.cat([mean, std], dim=1)
