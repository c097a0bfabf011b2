"""Train a speaker-embedding network on random chunks; resumable per epoch.

Layout written under ``exp_dir``::

    config.yaml        the resolved training config (copied for the record)
    models/epoch_N.pt  full checkpoint after epoch N (atomic)
    final.pt           model weights + config for extraction (atomic)
    .done              completion marker: the stage is finished

Rerunning resumes from the newest epoch checkpoint; a finished run is left
alone unless ``force`` is given.  Under ``torchrun`` each rank trains on its
share of every batch with DistributedDataParallel (gloo on CPU).
"""
from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from typing import Optional

import torch
import torch.distributed as dist
import yaml
from tqdm import tqdm

from pyutils.losses import build_loss
from pyutils.models import build_model
from pyutils.training import checkpoint
from pyutils.training.chunks import FeatureStore, collate, epoch_batches, speaker_table
from pyutils.training.scheduler import build_optimizer, build_scheduler
from pyutils.utils.fileio import atomic_output, is_done, mark_done

logger = logging.getLogger(__name__)


def load_config(path: str) -> dict:
    with open(path, encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    for section in ("model", "loss", "data", "optimizer", "training"):
        if section not in config:
            raise ValueError(f"{path}: missing section '{section}'")
    return config


class _Rank:
    """Who we are under torchrun (rank 0 of 1 otherwise)."""

    def __init__(self):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0


def train(config_path: str, feats_scp: str, utt2spk: str, exp_dir: str,
          force: bool = False, max_epochs: Optional[int] = None) -> str:
    """Run (or resume) training; return the path of ``final.pt``."""
    final_path = os.path.join(exp_dir, "final.pt")
    if is_done(exp_dir) and not force:
        logger.info("%s is complete (.done present); skipping (use --force to retrain)", exp_dir)
        return final_path
    if force and os.path.isdir(os.path.join(exp_dir, "models")):
        shutil.rmtree(os.path.join(exp_dir, "models"))
    config = load_config(config_path)
    rank = _Rank()
    train_cfg, data_cfg = config["training"], config["data"]
    torch.set_num_threads(int(train_cfg.get("num_threads", 1)))
    torch.manual_seed(int(train_cfg.get("seed", 0)))
    model_dir = os.path.join(exp_dir, "models")
    os.makedirs(model_dir, exist_ok=True)
    if rank.main:
        with atomic_output(os.path.join(exp_dir, "config.yaml")) as out:
            yaml.safe_dump(config, out, sort_keys=False)

    store = FeatureStore(feats_scp, utt2spk, in_memory=bool(data_cfg.get("in_memory", True)))
    speakers = speaker_table(store)
    model = build_model(config["model"]["name"], feat_dim=store.feat_dim,
                        **{k: v for k, v in config["model"].items() if k != "name"})
    loss_fn = build_loss(config["loss"]["name"], model.head_dim, len(speakers),
                         **{k: v for k, v in config["loss"].items() if k != "name"})
    net = TrainingNet(model, loss_fn)
    optimizer = build_optimizer(net.parameters(), **config["optimizer"])
    epochs = int(train_cfg["epochs"])
    batch_size = int(data_cfg["batch_size"])
    steps_per_epoch = max(1, int(data_cfg["chunks_per_epoch"]) // batch_size)
    scheduler = build_scheduler(optimizer, epochs * steps_per_epoch, **config.get("scheduler", {}))
    logger.info("%s: %d parameters, %d speakers, %d utterances, %d frames of dim %d",
                config["model"]["name"], model.num_parameters(), len(speakers), len(store),
                int(store.lengths.sum()), store.feat_dim)

    start_epoch = 0
    resume_from = checkpoint.latest(model_dir)
    if resume_from:
        state = checkpoint.load(resume_from)
        model.load_state_dict(state["model"])
        loss_fn.load_state_dict(state["loss"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        checkpoint.set_rng_state(state["rng"])
        start_epoch = state["epoch"]
        logger.info("resuming from %s (epoch %d done)", resume_from, start_epoch)

    train_net = torch.nn.parallel.DistributedDataParallel(net) if rank.world > 1 else net
    last_epoch = epochs if max_epochs is None else min(epochs, max_epochs)
    for epoch in range(start_epoch + 1, last_epoch + 1):
        batches = epoch_batches(store.lengths, int(data_cfg["min_chunk_frames"]),
                                int(data_cfg["max_chunk_frames"]), batch_size,
                                int(data_cfg["chunks_per_epoch"]),
                                int(train_cfg.get("seed", 0)), epoch)
        stats = _run_epoch(train_net, optimizer, scheduler, store, batches,
                           float(train_cfg.get("grad_clip", 0.0)), epoch, epochs, rank)
        logger.info("epoch %d/%d: loss %.4f accuracy %.3f lr %.5f %.1f chunks/s", epoch,
                    epochs, stats["loss"], stats["accuracy"], scheduler.get_last_lr()[0],
                    stats["chunks_per_s"])
        if rank.main:
            checkpoint.save(checkpoint.epoch_path(model_dir, epoch), {
                "model": model.state_dict(), "loss": loss_fn.state_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "epoch": epoch, "rng": checkpoint.rng_state(), "stats": stats})
    if last_epoch < epochs:
        return final_path
    if rank.main:
        checkpoint.save(final_path, {"model": model.state_dict(), "config": config,
                                     "feat_dim": store.feat_dim, "speakers": speakers})
        mark_done(exp_dir, info=f"epochs={epochs}")
    if rank.world > 1:
        dist.barrier()
    return final_path


class TrainingNet(torch.nn.Module):
    """Embedding network + loss as one module, so DDP synchronises both."""

    def __init__(self, model, loss_fn):
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, feats, labels):
        return self.loss_fn(self.model.head(self.model(feats)), labels)


def _run_epoch(net, optimizer, scheduler, store, batches, grad_clip,
               epoch, epochs, rank) -> dict:
    """One pass over ``batches`` (this rank's share of each); returns mean stats."""
    net.train()
    total_loss = total_correct = total = 0.0
    start = time.time()
    progress = tqdm(batches, desc=f"epoch {epoch}/{epochs}", unit="batch", file=sys.stderr,
                    disable=not rank.main, mininterval=1.0 if sys.stderr.isatty() else 15.0)
    for batch in progress:
        feats, labels = collate(store, batch[rank.rank::rank.world])
        loss, logits = net(feats, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
        optimizer.step()
        scheduler.step()
        total_loss += loss.item() * len(labels)
        total_correct += (logits.argmax(1) == labels).sum().item()
        total += len(labels)
        rate = total * rank.world / max(1e-9, time.time() - start)
        progress.set_postfix(loss=f"{total_loss / total:.3f}",
                             acc=f"{total_correct / total:.3f}", chunks_s=f"{rate:.1f}")
    return {"loss": total_loss / total, "accuracy": total_correct / total,
            "chunks_per_s": total * rank.world / max(1e-9, time.time() - start)}

