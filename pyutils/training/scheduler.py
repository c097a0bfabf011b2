"""Learning-rate schedules defined in global steps: linear warm-up, then decay."""
import math

import torch


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int, name: str = "exponential",
                    warmup_steps: int = 0, final_lr_ratio: float = 0.1):
    """LambdaLR: warm up linearly over ``warmup_steps``, then decay to
    ``final_lr_ratio`` x the initial rate at ``total_steps`` (exponentially,
    as Kaldi's x-vector recipe does, or on a cosine)."""
    if name not in ("exponential", "cosine", "constant"):
        raise ValueError(f"unknown scheduler '{name}' (exponential|cosine|constant)")

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if name == "constant":
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        if name == "exponential":
            return final_lr_ratio ** progress
        return final_lr_ratio + (1 - final_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def parameter_groups(module: torch.nn.Module):
    """Optimiser parameter groups of ``module``: first its trainable parameters at the
    optimiser's rate, then one group per sub-module whose ``separate_lr()`` gives
    (lr, params) (an SSL front-end's ``frontend.lr``).  Frozen parameters are left out."""
    groups, claimed = [], set()
    for sub in module.modules():
        own = sub.separate_lr() if hasattr(sub, "separate_lr") else None
        if own is not None:
            lr, params = own
            params = [p for p in params if p.requires_grad and id(p) not in claimed]
            claimed.update(id(p) for p in params)
            if params:
                groups.append({"params": params, "lr": float(lr)})
    rest = [p for p in module.parameters() if p.requires_grad and id(p) not in claimed]
    return [{"params": rest}] + groups


def build_optimizer(params, name: str = "sgd", lr: float = 0.01, momentum: float = 0.9,
                    weight_decay: float = 0.0, nesterov: bool = False):
    """SGD (with momentum) or Adam, from the config's ``optimizer`` section.

    ``params``: parameters, or a module, whose :func:`parameter_groups` then
    give sub-modules with their own learning rate a group of their own (the
    first group is the rest, at ``lr``; the schedule scales every group)."""
    if isinstance(params, torch.nn.Module):
        params = parameter_groups(params)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay,
                               nesterov=nesterov)
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer '{name}' (sgd|adam)")
