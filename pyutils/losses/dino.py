"""DINO's self-distillation loss (Caron et al. 2021), as WeSpeaker's v3 recipe uses it.

The teacher's outputs are centred (minus a running mean of its outputs) and
sharpened (a low temperature), the student's softened; the loss is the
cross-entropy ``-sum softmax((t - c) / T_t) * log_softmax(s / T_s)`` averaged
over every (teacher view, student view) pair of different views.  Teachers
see the long crops only; students see every crop.  The centre is updated
after each step: ``c <- m c + (1 - m) mean(t)`` (all-reduced under DDP).
"""
from __future__ import annotations

from typing import List, Sequence

import torch
import torch.distributed as dist
import torch.nn.functional as F


class DINOLoss(torch.nn.Module):
    def __init__(self, out_dim: int, student_temp: float = 0.1, teacher_temp: float = 0.04,
                 center_momentum: float = 0.9):
        super().__init__()
        self.student_temp = student_temp
        self.teacher_temp = teacher_temp
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, out_dim))

    def teacher_probs(self, teacher_out: torch.Tensor, temp: float = None) -> torch.Tensor:
        """Centred and sharpened teacher distribution."""
        temp = self.teacher_temp if temp is None else temp
        return F.softmax((teacher_out.float() - self.center) / temp, dim=-1)

    def forward(self, student_out: Sequence[torch.Tensor], teacher_out: Sequence[torch.Tensor],
                teacher_temp: float = None) -> torch.Tensor:
        """``student_out``: one (N, D) tensor per crop, the long crops first;
        ``teacher_out``: one per long crop (same order)."""
        teachers = [self.teacher_probs(t.detach(), teacher_temp) for t in teacher_out]
        students = [F.log_softmax(s.float() / self.student_temp, dim=-1) for s in student_out]
        total, pairs = 0.0, 0
        for ti, t in enumerate(teachers):
            for si, s in enumerate(students):
                if si == ti:        # the same view: not a pair
                    continue
                total = total + (-t * s).sum(dim=-1).mean()
                pairs += 1
        self.update_center(teacher_out)
        return total / pairs

    @torch.no_grad()
    def update_center(self, teacher_out: List[torch.Tensor]) -> None:
        batch = torch.cat([t.detach().float() for t in teacher_out])
        total = batch.sum(dim=0, keepdim=True)
        count = torch.tensor(float(batch.shape[0]), device=batch.device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(total)
            dist.all_reduce(count)
        self.center.mul_(self.center_momentum).add_(total / count, alpha=1 - self.center_momentum)
