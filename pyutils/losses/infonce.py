"""InfoNCE of momentum contrast (He et al. 2020; Ding, He, Wan 2020 for speakers).

For a batch of queries q and their positive keys k (both L2-normalised, one
row per segment) and a queue of negative keys, the logits of row i are
``[q_i . k_i, q_i . queue_1, ..., q_i . queue_K] / T`` and the loss is the
cross-entropy with the positive at index 0.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce_logits(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor,
                    temperature: float) -> torch.Tensor:
    """(N, 1 + K) logits; ``queue`` is (dim, K) as in MoCo's reference code."""
    positive = (q * k).sum(dim=1, keepdim=True)
    negative = q @ queue
    return torch.cat([positive, negative], dim=1) / temperature


def info_nce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor,
             temperature: float = 0.07) -> torch.Tensor:
    """Mean InfoNCE loss over the batch (computed in fp32)."""
    logits = info_nce_logits(q.float(), k.float(), queue.float(), temperature)
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, target)
