"""Atomic epoch checkpoints and resumption.

A checkpoint holds everything a resumed run needs: model, loss (classifier),
optimiser, scheduler, the finished epoch and every RNG state.  It is written
to a temp file and renamed, so ``epoch_N.pt`` is either complete or absent.
"""
from __future__ import annotations

import glob
import logging
import os
import random
import re
from typing import Optional

import numpy as np
import torch

from pyutils.utils.fileio import atomic_output

logger = logging.getLogger(__name__)


def rng_state() -> dict:
    """Every generator a run draws from; with CUDA also each GPU's (dropout on the GPU)."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore :func:`rng_state`'s generators.  GPU states are restored when CUDA is
    present (as many devices as both have); a GPU checkpoint resumes on a CPU
    without them, and a CPU checkpoint on a GPU keeps the GPUs' seeded states."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    cuda = state.get("cuda")
    if cuda and torch.cuda.is_available():
        count = min(len(cuda), torch.cuda.device_count())
        for index in range(count):
            torch.cuda.set_rng_state(cuda[index], index)
        if count < len(cuda):
            logger.warning("checkpoint has RNG states of %d GPUs, this machine %d; the "
                           "others are not restored", len(cuda), count)


def save(path: str, payload: dict) -> None:
    """torch.save through a temp file + rename."""
    with atomic_output(path, "wb") as out:
        torch.save(payload, out)


def epoch_path(model_dir: str, epoch: int) -> str:
    return os.path.join(model_dir, f"epoch_{epoch}.pt")


def latest(model_dir: str) -> Optional[str]:
    """The checkpoint of the highest finished epoch, or None."""
    found = []
    for path in glob.glob(os.path.join(model_dir, "epoch_*.pt")):
        match = re.fullmatch(r"epoch_(\d+)\.pt", os.path.basename(path))
        if match:
            found.append((int(match.group(1)), path))
    return max(found)[1] if found else None


def load(path: str) -> dict:
    """Load a checkpoint on the CPU (all our checkpoints are plain dicts)."""
    return torch.load(path, map_location="cpu", weights_only=False)


def average(model_dir: str, last_epoch: int, count: int) -> dict:
    """Element-wise mean of the model weights of epochs last-count+1..last.

    Integer buffers (BatchNorm's num_batches_tracked) are taken from the last
    epoch; everything else, running statistics included, is averaged.
    """
    epochs = list(range(max(1, last_epoch - count + 1), last_epoch + 1))
    states = [load(epoch_path(model_dir, e))["model"] for e in epochs]
    averaged = {}
    for key, value in states[-1].items():
        if value.is_floating_point():
            averaged[key] = sum(s[key] for s in states) / len(states)
        else:
            averaged[key] = value.clone()
    logger.info("final model: average of epochs %s", ", ".join(map(str, epochs)))
    return averaged
