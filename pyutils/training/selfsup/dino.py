"""DINO for speaker embeddings, as WeSpeaker's examples/voxceleb/v3 recipe.

Each utterance gives ``num_long`` long and ``num_short`` short random crops.
The student (encoder + DINO head) sees every crop, the teacher (their EMA)
the long ones; :class:`~pyutils.losses.dino.DINOLoss` makes the student match
the teacher's centred, sharpened output on every pair of different views.
"""
from __future__ import annotations

from typing import List, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from pyutils.losses.dino import DINOLoss
from pyutils.training.selfsup.ema import ema_update, momentum_copy


class DINOHead(torch.nn.Module):
    """MLP (in -> hidden -> hidden -> bottleneck), L2 norm, weight-normalised output layer."""

    def __init__(self, in_dim: int, out_dim: int = 65536, hidden_dim: int = 2048,
                 bottleneck_dim: int = 256):
        super().__init__()
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(in_dim, hidden_dim), torch.nn.GELU(),
            torch.nn.Linear(hidden_dim, hidden_dim), torch.nn.GELU(),
            torch.nn.Linear(hidden_dim, bottleneck_dim))
        self.last = torch.nn.utils.parametrizations.weight_norm(
            torch.nn.Linear(bottleneck_dim, out_dim, bias=False))
        with torch.no_grad():      # DINO fixes the norm's scale at 1
            self.last.parametrizations.weight.original0.fill_(1.0)
        self.last.parametrizations.weight.original0.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.last(F.normalize(self.mlp(x), dim=-1))


class DINO(torch.nn.Module):
    def __init__(self, encoder: torch.nn.Module, embed_dim: int, out_dim: int = 65536,
                 hidden_dim: int = 2048, bottleneck_dim: int = 256, momentum: float = 0.996,
                 student_temp: float = 0.1, teacher_temp: float = 0.04,
                 center_momentum: float = 0.9, **_crop_options):
        super().__init__()
        self.student = torch.nn.Sequential(
            encoder, DINOHead(embed_dim, out_dim, hidden_dim, bottleneck_dim))
        self.teacher = momentum_copy(self.student)
        self.momentum = momentum
        self.loss = DINOLoss(out_dim, student_temp, teacher_temp, center_momentum)

    @property
    def encoder(self) -> torch.nn.Module:
        return self.student[0]

    def forward(self, long_crops: Sequence[torch.Tensor],
                short_crops: Sequence[torch.Tensor] = ()) -> torch.Tensor:
        """Loss of one batch (crops of one length are batched together)."""
        with torch.no_grad():
            teacher_out = [self.teacher(x) for x in long_crops]
        student_out = [self.student(x) for x in list(long_crops) + list(short_crops)]
        return self.loss(student_out, teacher_out)

    @torch.no_grad()
    def update_teacher(self, momentum: float = None) -> None:
        """Call after the optimiser step."""
        ema_update(self.teacher, self.student, self.momentum if momentum is None else momentum)


def random_crops(x: np.ndarray, lengths: List[int], rng: np.random.Generator) -> List[np.ndarray]:
    """One crop per length, each at a random start (frames or samples on axis 0);
    an utterance shorter than a crop is repeated to fill it."""
    crops = []
    for size in lengths:
        if x.shape[0] < size:
            x = np.concatenate([x] * (-(-size // x.shape[0])))
        start = int(rng.integers(0, x.shape[0] - size + 1))
        crops.append(x[start:start + size])
    return crops
