"""MoCo for speaker embeddings (Ding, He, Wan 2020, after He et al. 2020).

Two segments cut at random from one utterance, each augmented on its own, are
a positive pair: the query encoder embeds one, the momentum key encoder the
other, and InfoNCE contrasts the pair against a FIFO queue of keys of earlier
batches.  Batch norm must not let a query and its key share batch statistics
(the network would find the pair from them): under DDP the keys are computed
on a batch shuffled across ranks (MoCo's ``batch_shuffle_ddp``); in one
process the documented equivalent is used, as MoCo's single-GPU code does:
the key batch is shuffled and its batch norm runs per sub-batch of
``bn_splits`` groups, so each key is normalised with other samples than its
query.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F

from pyutils.losses.infonce import info_nce
from pyutils.training.selfsup.ema import ema_update, momentum_copy


def projection_head(in_dim: int, out_dim: int) -> torch.nn.Module:
    """MoCo v2's MLP head: Linear-ReLU-Linear."""
    return torch.nn.Sequential(torch.nn.Linear(in_dim, in_dim), torch.nn.ReLU(inplace=True),
                               torch.nn.Linear(in_dim, out_dim))


class MoCo(torch.nn.Module):
    """Query encoder (+ head), momentum key encoder (+ head) and the key queue."""

    def __init__(self, encoder: torch.nn.Module, embed_dim: int, queue_size: int = 65536,
                 momentum: float = 0.999, temperature: float = 0.07, projection: bool = True,
                 projection_dim: int = 128, bn_splits: int = 8, seed: int = 0):
        super().__init__()
        head = projection_head(embed_dim, projection_dim) if projection else torch.nn.Identity()
        dim = projection_dim if projection else embed_dim
        self.encoder_q = torch.nn.Sequential(encoder, head)
        self.encoder_k = momentum_copy(self.encoder_q)
        self.momentum, self.temperature, self.bn_splits = momentum, temperature, bn_splits
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("queue", F.normalize(torch.randn(dim, queue_size,
                                                              generator=generator), dim=0))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    @property
    def encoder(self) -> torch.nn.Module:
        """The embedding network alone (what extraction and fine-tuning use)."""
        return self.encoder_q[0]

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Replace the oldest ``len(keys)`` keys (FIFO), all ranks' keys under DDP."""
        keys = _gather(keys)
        size = keys.shape[0]
        ptr = int(self.queue_ptr)
        if self.queue.shape[1] % size:
            raise ValueError(f"queue size {self.queue.shape[1]} is not a multiple of the "
                             f"global batch {size}")
        self.queue[:, ptr:ptr + size] = keys.T
        self.queue_ptr[0] = (ptr + size) % self.queue.shape[1]

    @torch.no_grad()
    def keys(self, x_k: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Keys of the key views, batch norm never seeing a query's own batch order."""
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            x_all = _gather(x_k)
            perm = torch.randperm(x_all.shape[0], device=x_all.device)
            dist.broadcast(perm, 0)
            rank, n = dist.get_rank(), x_k.shape[0]
            mine = perm[rank * n:(rank + 1) * n]
            k = F.normalize(self.encoder_k(x_all[mine]), dim=1)
            k_all = _gather(k)
            inverse = torch.argsort(perm)
            return k_all[inverse][rank * n:(rank + 1) * n]
        perm = torch.randperm(x_k.shape[0], generator=generator).to(x_k.device)
        splits = max(1, min(self.bn_splits, x_k.shape[0] // 2))
        parts = [self.encoder_k(chunk) for chunk in torch.chunk(x_k[perm], splits)]
        k = F.normalize(torch.cat(parts), dim=1)
        return k[torch.argsort(perm)]

    def forward(self, x_q: torch.Tensor, x_k: torch.Tensor,
                generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """The InfoNCE loss of one batch; moves the key encoder and the queue."""
        q = F.normalize(self.encoder_q(x_q), dim=1)
        with torch.no_grad():
            ema_update(self.encoder_k, self.encoder_q, self.momentum)
            k = self.keys(x_k, generator)
        loss = info_nce(q, k, self.queue.clone().detach(), self.temperature)
        self.enqueue(k)
        return loss


def _gather(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` over the ranks (rank order); ``x`` itself in one process."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)
