"""The momentum (EMA) copy shared by MoCo's key encoder and DINO's teacher."""
from __future__ import annotations

import copy

import torch


def momentum_copy(module: torch.nn.Module) -> torch.nn.Module:
    """A frozen deep copy of ``module`` (no gradients), to be moved by :func:`ema_update`."""
    twin = copy.deepcopy(module)
    for parameter in twin.parameters():
        parameter.requires_grad_(False)
    return twin


@torch.no_grad()
def ema_update(target: torch.nn.Module, source: torch.nn.Module, momentum: float) -> None:
    """theta_target <- m theta_target + (1 - m) theta_source, for the parameters only:
    the copy's batch-norm statistics are its own (it runs on its own views), as in
    the MoCo and DINO reference code."""
    for t, s in zip(target.parameters(), source.parameters()):
        t.mul_(momentum).add_(s.detach(), alpha=1.0 - momentum)
