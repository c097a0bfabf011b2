"""Margin-based softmax losses on cosine logits: AM-softmax (CosFace) and AAM (ArcFace).

Both normalise the embedding and every class weight, so a logit is the
cosine ``cos(theta_j)`` between the embedding and class ``j``, times a fixed
``scale`` s.  Only the target class's logit gets the margin m:

* ``am``  (additive margin, CosFace):   ``s * (cos(theta_y) - m)``
* ``aam`` (additive angular margin, ArcFace): ``s * cos(theta_y + m)`` while
  ``theta_y + m < pi`` (that is ``cos(theta_y) > cos(pi - m)``); beyond that
  ``cos(theta_y + m)`` would start to *rise* again, so, as WeSpeaker's
  ``ArcMarginProduct`` with ``easy_margin=False`` does, the target logit is
  ``s * (cos(theta_y) - (1 - cos(m)))`` instead.  That is WeSpeaker's current
  choice (its ``mmm = 1 + cos(pi - m)``), which meets ``cos(theta + m)``
  exactly at ``theta = pi - m`` (both are -1), so the target logit is
  continuous and monotonic in theta; the older InsightFace fallback
  ``cos(theta) - m*sin(m)`` (WeSpeaker's commented-out ``mm``) is not used.
  ``easy_margin=True`` instead keeps ``cos(theta_y)`` wherever it is <= 0.

The returned logits are the scaled cosines *without* margin, for accuracy.

Margin warm-up (``margin_warmup: {start_step, end_step, increase}``): the
margin is 0 before ``start_step``, rises to ``margin`` over
``[start_step, end_step)`` and stays there from ``end_step`` on.  The rise is
WeSpeaker's MarginScheduler curve: ``increase: exp`` (the default) uses
``ratio = 1 - 10**(-3 * p)`` with ``p`` the fraction of the window elapsed
(so half the final margin is reached after 10 % of the window), and
``increase: linear`` uses ``ratio = p``.  As in WeSpeaker the exponential
curve reaches 0.999 of the margin at the end of the window and snaps to the
full margin at ``end_step``.  The margin is a pure function of the global
step: the trainer calls :meth:`set_step` before each step, so a resumed run
(which restores the global step) continues the schedule exactly.
"""
from __future__ import annotations

import math
from typing import Mapping, Optional

import torch
import torch.nn.functional as F
from torch import nn

EXP_FINAL_RATIO = 1e-3  # WeSpeaker's exp curve: ratio = 1 - EXP_FINAL_RATIO ** progress


class MarginSchedule:
    """Margin as a function of the global step (see the module docstring)."""

    def __init__(self, margin: float, start_step: Optional[int] = None,
                 end_step: Optional[int] = None, increase: str = "exp"):
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        if increase not in ("exp", "linear"):
            raise ValueError(f"margin_warmup increase must be 'exp' or 'linear', got '{increase}'")
        if (start_step is None) != (end_step is None):
            raise ValueError("margin_warmup needs both start_step and end_step")
        if start_step is not None and not 0 <= start_step <= end_step:
            raise ValueError(f"margin_warmup needs 0 <= start_step <= end_step, "
                             f"got {start_step}, {end_step}")
        self.margin = float(margin)
        self.start_step = start_step
        self.end_step = end_step
        self.increase = increase

    @classmethod
    def from_config(cls, margin: float, warmup: Optional[Mapping] = None) -> "MarginSchedule":
        if not warmup:
            return cls(margin)
        unknown = set(warmup) - {"start_step", "end_step", "increase"}
        if unknown:
            raise ValueError(f"unknown margin_warmup keys: {', '.join(sorted(unknown))}")
        if "start_step" not in warmup or "end_step" not in warmup:
            raise ValueError("margin_warmup needs both start_step and end_step")
        return cls(margin, int(warmup["start_step"]), int(warmup["end_step"]),
                   warmup.get("increase", "exp"))

    def __call__(self, step: int) -> float:
        if self.start_step is None or step >= self.end_step:
            return self.margin
        if step < self.start_step:
            return 0.0
        progress = (step - self.start_step) / (self.end_step - self.start_step)
        if self.increase == "linear":
            ratio = progress
        else:
            ratio = 1.0 - EXP_FINAL_RATIO ** progress
        return self.margin * ratio


class _CosineMarginLoss(nn.Module):
    """Cosine classifier + cross-entropy with a margin on the target logit."""

    def __init__(self, in_dim: int, num_classes: int, scale: float = 32.0, margin: float = 0.2,
                 margin_warmup: Optional[Mapping] = None):
        super().__init__()
        if scale <= 0:
            raise ValueError(f"scale must be > 0, got {scale}")
        self.in_dim, self.num_classes = in_dim, num_classes
        self.scale = float(scale)
        self.margin = float(margin)
        self.schedule = MarginSchedule.from_config(margin, margin_warmup)
        self.weight = nn.Parameter(torch.empty(num_classes, in_dim))
        nn.init.xavier_uniform_(self.weight)
        self.current_margin = self.schedule(0)

    def set_step(self, step: int) -> None:
        """Set :attr:`current_margin` from the global step (call before every step)."""
        self.current_margin = float(self.schedule(int(step)))

    def cosine(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(x, dim=1), F.normalize(self.weight, dim=1))

    def target_logit(self, cos_target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, labels: torch.Tensor):
        cos = self.cosine(x)
        index = labels.long().view(-1, 1)
        with_margin = cos.scatter(1, index, self.target_logit(cos.gather(1, index)))
        loss = F.cross_entropy(self.scale * with_margin, labels.long())
        return loss, self.scale * cos

    def extra_repr(self) -> str:
        return (f"in_dim={self.in_dim}, num_classes={self.num_classes}, scale={self.scale}, "
                f"margin={self.margin}, current_margin={self.current_margin:.4f}")


class AdditiveMarginLoss(_CosineMarginLoss):
    """AM-softmax / CosFace: target logit ``s * (cos(theta) - m)``."""

    def target_logit(self, cos_target: torch.Tensor) -> torch.Tensor:
        return cos_target - self.current_margin


class AdditiveAngularMarginLoss(_CosineMarginLoss):
    """AAM-softmax / ArcFace: target logit ``s * cos(theta + m)`` (see module doc)."""

    def __init__(self, in_dim: int, num_classes: int, scale: float = 32.0, margin: float = 0.2,
                 margin_warmup: Optional[Mapping] = None, easy_margin: bool = False):
        super().__init__(in_dim, num_classes, scale, margin, margin_warmup)
        self.easy_margin = bool(easy_margin)

    def target_logit(self, cos_target: torch.Tensor) -> torch.Tensor:
        m = self.current_margin
        # clamp keeps sqrt's gradient finite when an embedding lies on its class axis
        sin_target = torch.sqrt(torch.clamp(1.0 - cos_target * cos_target, min=1e-12))
        phi = cos_target * math.cos(m) - sin_target * math.sin(m)  # cos(theta + m)
        if self.easy_margin:
            return torch.where(cos_target > 0, phi, cos_target)
        threshold = math.cos(math.pi - m)          # theta + m < pi  <=>  cos > threshold
        return torch.where(cos_target > threshold, phi, cos_target - (1.0 - math.cos(m)))
