"""The label-free training run (MoCo or DINO): stage 3 for a config with an ``ssl:`` block.

What label-free training builds and does each epoch (:class:`LabelFree`), run by
the training skeleton :class:`pyutils.training.run.Run` as supervised training is;
the same layout::

    config.yaml        the training config
    models/epoch_N.pt  full checkpoint: the MoCo/DINO wrapper (query and key
                       encoders + queue, or student, teacher and centre), the
                       encoder alone, optimiser, scheduler, RNG states
    final.pt           the ENCODER, in the supervised final.pt's format, so
                       stages 4-7 extract and score it unchanged (cosine)
    train_summary.json parameters, utterances, time, utterances/s
    .done              completion marker (:mod:`pyutils.training.selfsup.inputs`)

No labels: the views (:mod:`pyutils.training.selfsup.data`) stream the shards
of shard dirs and ``wav.scp`` (and ``segments``) of raw data dirs, the
training dir and each ``--unlabelled-data`` dir, never ``utt2spk`` or
``spk2utt``; memory is flat in the corpus size.  ``data.chunks_per_epoch``
counts utterances (each gives 2 views for MoCo, ``num_long + num_short`` for
DINO); the batches of an epoch and every view are functions of (seed, epoch,
world size, ``data.num_workers``), and MoCo's key shuffle draws from a
generator seeded per step, so a resumed run is bit-identical to an
uninterrupted one.  The encoder's classifier-side ``head`` (x-vector tdnn7,
ResNet's last BN) is frozen: only a supervised run trains it.

Under torchrun every rank streams its own share of the shards and utterances
and makes ``batch_size / world`` utterances' views a step; the wrappers gather
keys and centres across ranks, and MoCo shuffles the key batch across ranks
(its documented 1-process equivalent: ``ssl.bn_splits``).
"""
from __future__ import annotations

import logging
import time
from typing import List, Optional, Sequence

import numpy as np
import torch
import torch.distributed as dist

from pyutils.training.device import autocast
from pyutils.training.run import Run, Training, build_network, rates, read_config, totals
from pyutils.training.scheduler import build_optimizer
from pyutils.training.selfsup import ssl_options
from pyutils.training.selfsup.data import LabelFreeSource
from pyutils.training.selfsup.dino import DINO
from pyutils.training.selfsup.inputs import data_inputs, label_free_inputs
from pyutils.training.selfsup.moco import MoCo
from pyutils.utils.markers import fingerprint
from pyutils.utils.progress import progress as show_progress

logger = logging.getLogger(__name__)


def load_config(path: str) -> dict:
    config = read_config(path, ("model", "data", "optimizer", "training", "ssl"))
    if "loss" in config:
        raise ValueError(f"{path}: a label-free config (ssl:) has no loss: section; the "
                         f"loss is the method's (InfoNCE or DINO's)")
    return config


def build_wrapper(config: dict, encoder: torch.nn.Module, options: dict) -> torch.nn.Module:
    """MoCo or DINO around ``encoder`` from the checked ``ssl`` options."""
    seed = int(config["training"].get("seed", 0))
    kwargs = {k: v for k, v in options.items() if k != "method"}
    if options["method"] == "moco":
        return MoCo(encoder, encoder.embed_dim, seed=seed, **kwargs)
    return DINO(encoder, encoder.embed_dim, **kwargs)


def view_frames(options: dict, data_cfg: dict):
    """The crop sizes of one utterance's views (frames; x160 samples for waveform models)."""
    if options["method"] == "moco":
        return [int(data_cfg["max_chunk_frames"])] * 2
    return ([int(options["long_frames"])] * int(options["num_long"])
            + [int(options["short_frames"])] * int(options["num_short"]))


class LabelFree(Training):
    """Label-free training: MoCo or DINO around the encoder, on streamed views."""

    data_name = "the training data or --unlabelled-data"
    log = logger

    def __init__(self, data_dirs: Sequence[str]):
        self.data_dirs = list(data_dirs)

    def load_config(self, path: str) -> dict:
        return load_config(path)

    def check(self, run: Run) -> None:
        self.batch_size = int(run.data_cfg["batch_size"])
        self.options = ssl_options(run.config, self.batch_size)
        if self.batch_size % run.rank.world:
            raise ValueError(f"data.batch_size {self.batch_size} must split evenly over "
                             f"{run.rank.world} processes")
        if run.train_cfg.get("compile"):
            raise ValueError("training.compile: only supervised training compiles its step; "
                             "set it false for label-free training")

    def build(self, run: Run) -> None:
        config, data_cfg, options = run.config, run.data_cfg, self.options
        frames = view_frames(options, data_cfg)
        source = self.source = LabelFreeSource(
            self.data_dirs, config.get("features"), config.get("augmentation"), frames,
            int(data_cfg.get("shuffle_buffer", 500)), int(data_cfg.get("num_workers", 0) or 0))
        model = self.model = build_network(config, source)
        for parameter in model.head.parameters():     # the classifier side: supervised only
            parameter.requires_grad_(False)
        net = self.net = build_wrapper(config, model, options).to(run.device)
        self.optimizer = build_optimizer([p for p in net.parameters() if p.requires_grad],
                                         **config["optimizer"])
        self.scheduler = run.scheduler_for(self.optimizer, self.batch_size)
        logger.info("%s (%s, label-free): %d encoder parameters; %s streamed from %s; "
                    "views of %s frames", config["model"]["name"], options["method"],
                    model.num_parameters(), source.describe(), ", ".join(self.data_dirs),
                    "+".join(map(str, frames)))

    def load_state(self, run: Run, state: dict) -> None:
        self.net.load_state_dict(state["ssl_state"])

    def prepare(self, run: Run) -> None:
        self.train_net = run.distributed(self.net) if run.rank.world > 1 else self.net
        self.loader = self.source.build_loader(run.data_cfg, None, self.batch_size, run.seed,
                                               run.rank, run.device)

    def run_epoch(self, run: Run, epoch: int) -> dict:
        stats = run_epoch(self.train_net, self.net, self.optimizer, self.scheduler, self.loader,
                          self.batch_size, self.options,
                          float(run.train_cfg.get("grad_clip", 0.0)), run.seed, epoch,
                          run.epochs, run.rank, run.device, run.precision)
        logger.info("epoch %d/%d: %s loss %.4f lr %.5f %.1f utterances/s", epoch, run.epochs,
                    self.options["method"], stats["loss"], self.scheduler.get_last_lr()[0],
                    stats["utts_per_s"])
        return stats

    def networks_state(self) -> dict:
        return {"ssl_state": self.net.state_dict(), "model": self.model.state_dict()}

    def shape(self) -> dict:
        return {"feat_dim": self.source.feat_dim}

    def final_fields(self) -> dict:
        return {"feat_dim": self.source.feat_dim, "speakers": [],
                "label_free": self.options["method"]}

    def summary(self, run: Run, stats: List[dict]) -> dict:
        """``unlabelled_utterances``: of the raw data dirs (a shard's count is not read
        up front: the shards are only streamed); ``unlabelled_shards``: of the shard dirs."""
        seconds, utts = totals(stats, "utterances")
        method = run.config["ssl"]["method"]
        return {"model": run.config["model"]["name"], "loss": method, "label_free": method,
                "parameters": int(self.model.num_parameters()), "epochs": run.epochs,
                "chunks": utts, "utterances_seen": utts,
                "unlabelled_utterances": self.source.num_utterances,
                "unlabelled_shards": self.source.num_shards, **rates(seconds, utts),
                "processes": run.rank.world, "final_loss": stats[-1]["loss"]}

    def marker_info(self, run: Run) -> str:
        return f"epochs={run.epochs} label_free={self.options['method']}"


def train_label_free(config_path: str, data_dir: str, exp_dir: str, force: bool = False,
                     max_epochs: Optional[int] = None, unlabelled: Sequence[str] = ()) -> str:
    """Run (or resume) label-free training; return the path of ``final.pt``."""
    data_dirs = [data_dir] + [d for d in unlabelled if d]
    run = Run(LabelFree(data_dirs), config_path, exp_dir,
              label_free_inputs(config_path, data_dirs), fingerprint(*data_inputs(data_dirs)),
              force)
    return run.train(max_epochs)


def train_step(train_net, net, optimizer, scheduler, views, options, grad_clip, generator,
               device, precision="fp32"):
    """One optimiser step on one batch of views; returns the loss (a float tensor)."""
    optimizer.zero_grad(set_to_none=True)
    with autocast(device, precision):
        if options["method"] == "moco":
            loss = train_net(views[0], views[1], generator)
        else:
            num_long = int(options["num_long"])
            loss = train_net(views[:num_long], views[num_long:])
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_([p for p in net.parameters() if p.requires_grad],
                                       grad_clip)
    optimizer.step()
    scheduler.step()
    if options["method"] == "dino":
        net.update_teacher()
    return loss.detach()


def run_epoch(train_net, net, optimizer, scheduler, loader, batch_size, options, grad_clip,
              seed, epoch, epochs, rank, device, precision="fp32") -> dict:
    """One epoch of ``loader`` (a :class:`~pyutils.training.shard_source.ShardLoader` of
    label-free views: this rank's share of each global batch of ``batch_size``)."""
    train_net.train()
    start, losses, seen = time.time(), [], 0
    batches_in = loader.epoch(epoch)
    bar = show_progress(batches_in, total=len(batches_in), desc=f"epoch {epoch}/{epochs}",
                        unit="batch") if rank.main else None
    for i, (views, _) in enumerate(bar if bar is not None else batches_in):
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch * 10_007 + i)
        loss = train_step(train_net, net, optimizer, scheduler, views, options, grad_clip,
                          generator, device, precision)
        if rank.world > 1:
            dist.all_reduce(loss)
            loss /= rank.world
        losses.append(float(loss))
        seen += batch_size
        if bar is not None:
            bar.set_postfix(loss=f"{np.mean(losses):.3f}",
                            utts_s=f"{seen / max(1e-9, time.time() - start):.1f}")
    seconds = time.time() - start
    return {"loss": float(np.mean(losses)), "step_losses": losses, "utterances": seen,
            "seconds": seconds, "utts_per_s": seen / max(1e-9, seconds)}
