"""Joining a training run under torchrun: ranks, who logs, a forced restart.

Every training run (:class:`pyutils.training.run.Run`: supervised and
label-free alike) starts this way: the device
chosen, the process group joined, rank 0 alone logging progress and, on a
forced rerun, rank 0 alone removing the previous run's outputs before the
other ranks go on (they would otherwise delete each other's new files).
"""
from __future__ import annotations

import logging
import os
import shutil

import torch
import torch.distributed as dist

from pyutils.training.device import process_group_backend

SUMMARY_FILE = "train_summary.json"
# What a run writes under its exp dir; a forced rerun removes them first.
RUN_OUTPUTS = ("models", ".done", "final.pt", SUMMARY_FILE, "config.yaml")


class Rank:
    """Who we are under torchrun (rank 0 of 1 otherwise).

    Under torchrun the process group is joined even with one process
    (``steps/train.sh --launcher torchrun --nproc-per-node 1``), so a one-GPU
    machine runs NCCL and DistributedDataParallel as a multi-GPU run does;
    ``distributed`` says whether it did (the network is then wrapped in DDP)."""

    def __init__(self, backend: str = "gloo"):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        under_torchrun = "TORCHELASTIC_RUN_ID" in os.environ   # set by torchrun's agent
        self.distributed = self.world > 1 or under_torchrun
        if self.distributed and not dist.is_initialized():
            dist.init_process_group(backend)
        self.backend = str(dist.get_backend()) if self.distributed else None

    @property
    def main(self) -> bool:
        return self.rank == 0


def join_run(device: torch.device, exp_dir: str, force: bool) -> Rank:
    """Join the run on ``device``; with ``force``, rank 0 clears ``exp_dir``'s outputs."""
    if device.type == "cuda":
        torch.cuda.set_device(device)
    rank = Rank(process_group_backend(device))
    if not rank.main:   # rank 0 alone logs progress (the others only warnings and errors)
        logging.getLogger("pyutils").setLevel(logging.WARNING)
    if force and rank.main:                # once, before the other ranks go on
        for stale in RUN_OUTPUTS:
            path = os.path.join(exp_dir, stale)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)
    if rank.distributed:
        dist.barrier()
    return rank
