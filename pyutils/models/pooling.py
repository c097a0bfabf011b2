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
