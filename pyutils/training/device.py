"""Where and how training runs: ``training.device`` (auto | cpu | cuda | cuda:N),
``training.precision`` (fp32 | bf16 | fp16) and ``training.compile`` (true | false).

Under torchrun each process takes the GPU of its ``LOCAL_RANK`` and the
process group uses NCCL; on CPU it uses gloo.  ``auto`` is CUDA when one is
available.  Checkpoints are always loaded with ``map_location="cpu"``
(:func:`pyutils.training.checkpoint.load`), so a model trained on a GPU
extracts on a CPU-only machine.
"""
from __future__ import annotations

import contextlib
import os

import torch

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str = "auto") -> torch.device:
    """The torch device of this process; a clear error when CUDA is asked for and absent."""
    name = str(name or "auto")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not name.startswith("cuda"):
        raise ValueError(f"training.device must be auto, cpu, cuda or cuda:N, got '{name}'")
    if not torch.cuda.is_available():
        raise ValueError(f"training.device is '{name}' but no CUDA device is available "
                         f"(use cpu or auto)")
    if name == "cuda":
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device(name)


def process_group_backend(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def autocast(device: torch.device, precision: str = "fp32"):
    """The autocast context of ``precision`` (a no-op for fp32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"training.precision must be one of {', '.join(PRECISIONS)}, "
                         f"got '{precision}'")
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    if device.type == "cpu" and dtype is torch.float16:
        raise ValueError("training.precision fp16 needs a GPU; use bf16 or fp32 on CPU")
    return torch.autocast(device_type=device.type, dtype=dtype)


def grad_scaler(device: torch.device, precision: str):
    """A GradScaler for fp16 (bf16 and fp32 need none), else None."""
    if precision != "fp16":
        return None
    return torch.amp.GradScaler(device.type)


def compile_training(net: torch.nn.Module, enabled) -> torch.nn.Module:
    """``training.compile``: ``net`` (network + loss, DDP-wrapped or not) under
    ``torch.compile(dynamic=True)``, so chunks of any length share one graph
    instead of a compilation per length; ``net`` itself when false.

    Only the step runs compiled: the checkpoints save the wrapped modules (no
    ``_orig_mod.`` prefix), so resuming, averaging and extraction are unchanged,
    and a run may switch the option between epochs."""
    if not isinstance(enabled, bool):
        raise ValueError(f"training.compile must be true or false, got '{enabled}'")
    if not enabled:
        return net
    # a graph the compiler cannot build (torch 2.13's inductor on ResNet34's 2-d convolutions
    # with dynamic shapes, on CPU) runs eagerly, with dynamo's warning, instead of failing
    torch._dynamo.config.suppress_errors = True
    return torch.compile(net, dynamic=True)
