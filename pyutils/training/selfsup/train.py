"""The label-free training run (MoCo or DINO): stage 3 for a config with an ``ssl:`` block.

Same layout as the supervised run (:mod:`pyutils.training.trainer`)::

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

import json
import logging
import os
import time
from typing import Optional, Sequence

import numpy as np
import torch
import torch.distributed as dist
import yaml

from pyutils.models import build_model
from pyutils.training import checkpoint
from pyutils.training.device import autocast, resolve_device
from pyutils.training.restart import check_resumable, must_start_over
from pyutils.training.ranks import SUMMARY_FILE, join_run
from pyutils.training.scheduler import build_optimizer, build_scheduler
from pyutils.training.selfsup import ssl_options
from pyutils.training.selfsup.data import LabelFreeSource
from pyutils.training.selfsup.dino import DINO
from pyutils.training.inputs import record_inputs
from pyutils.training.selfsup.inputs import data_inputs, label_free_inputs
from pyutils.training.selfsup.moco import MoCo
from pyutils.utils.fileio import atomic_output, done_marker, fingerprint, job_done, write_marker
from pyutils.utils.progress import progress as show_progress

logger = logging.getLogger(__name__)


def load_config(path: str) -> dict:
    with open(path, encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    for section in ("model", "data", "optimizer", "training", "ssl"):
        if section not in config:
            raise ValueError(f"{path}: missing section '{section}'")
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


def train_label_free(config_path: str, data_dir: str, exp_dir: str, force: bool = False,
                     max_epochs: Optional[int] = None, unlabelled: Sequence[str] = ()) -> str:
    """Run (or resume) label-free training; return the path of ``final.pt``."""
    data_dirs = [data_dir] + [d for d in unlabelled if d]
    final_path, marker = os.path.join(exp_dir, "final.pt"), done_marker(exp_dir)
    items = label_free_inputs(config_path, data_dirs)
    stamp = fingerprint(*items)
    data_stamp = fingerprint(*data_inputs(data_dirs))
    if job_done(marker, stamp) and not force:
        logger.info("%s is complete (.done matches config and data); skipping "
                    "(use --force to retrain)", exp_dir)
        return final_path
    config = load_config(config_path)
    recorded_path, model_dir = os.path.join(exp_dir, "config.yaml"), os.path.join(exp_dir, "models")
    force = must_start_over(exp_dir, marker, config, config_path, data_stamp, force,
                            data_name="the training data or --unlabelled-data", items=items)
    train_cfg, data_cfg = config["training"], config["data"]
    device = resolve_device(train_cfg.get("device", "auto"))
    precision = str(train_cfg.get("precision", "fp32"))
    rank = join_run(device, exp_dir, force)
    seed, batch_size = int(train_cfg.get("seed", 0)), int(data_cfg["batch_size"])
    options = ssl_options(config, batch_size)
    if batch_size % rank.world:
        raise ValueError(f"data.batch_size {batch_size} must split evenly over {rank.world} "
                         f"processes")
    torch.set_num_threads(int(train_cfg.get("num_threads", 1)))
    torch.manual_seed(seed)
    os.makedirs(model_dir, exist_ok=True)
    resume_from = checkpoint.latest(model_dir)
    state = checkpoint.load(resume_from) if resume_from else None
    if state is not None:
        check_resumable(state, resume_from, exp_dir, config, config_path, data_stamp)

    frames = view_frames(options, data_cfg)
    source = LabelFreeSource(data_dirs, config.get("features"), config.get("augmentation"),
                             frames, int(data_cfg.get("shuffle_buffer", 500)),
                             int(data_cfg.get("num_workers", 0) or 0))
    model = build_model(config["model"]["name"], feat_dim=source.feat_dim,
                        **{k: v for k, v in config["model"].items() if k != "name"})
    if getattr(model, "input_type", "feats") != source.input_type:
        raise ValueError(f"model '{config['model']['name']}' takes {model.input_type} input but "
                         f"the config's features give {source.input_type}")
    for parameter in model.head.parameters():     # the classifier side: supervised only
        parameter.requires_grad_(False)
    net = build_wrapper(config, model, options).to(device)
    optimizer = build_optimizer([p for p in net.parameters() if p.requires_grad],
                                **config["optimizer"])
    epochs = int(train_cfg["epochs"])
    per_epoch = int(data_cfg["chunks_per_epoch"])
    steps_per_epoch = max(1, per_epoch // batch_size)
    scheduler = build_scheduler(optimizer, epochs * steps_per_epoch, **config.get("scheduler", {}))
    logger.info("%s (%s, label-free): %d encoder parameters; %s streamed from %s; "
                "views of %s frames", config["model"]["name"], options["method"],
                model.num_parameters(), source.describe(), ", ".join(data_dirs),
                "+".join(map(str, frames)))
    start_epoch = 0
    if state is not None:
        net.load_state_dict(state["ssl_state"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        checkpoint.set_rng_state(state["rng"])
        start_epoch = state["epoch"]
        logger.info("resuming from %s (epoch %d done)", resume_from, start_epoch)
    if rank.main:
        with atomic_output(recorded_path) as out:
            yaml.safe_dump(config, out, sort_keys=False)
    train_net = net
    if rank.world > 1:
        train_net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None)
    last_epoch = epochs if max_epochs is None else min(epochs, max_epochs)
    loader = source.build_loader(data_cfg, None, batch_size, seed, rank, device)
    for epoch in range(start_epoch + 1, last_epoch + 1):
        stats = run_epoch(train_net, net, optimizer, scheduler, loader, batch_size, options,
                          float(train_cfg.get("grad_clip", 0.0)), seed, epoch, epochs, rank,
                          device, precision)
        logger.info("epoch %d/%d: %s loss %.4f lr %.5f %.1f utterances/s", epoch, epochs,
                    options["method"], stats["loss"], scheduler.get_last_lr()[0],
                    stats["utts_per_s"])
        if rank.main:
            checkpoint.save(checkpoint.epoch_path(model_dir, epoch), {
                "ssl_state": net.state_dict(), "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "epoch": epoch, "rng": checkpoint.rng_state(), "stats": stats,
                "config": config, "data_stamp": data_stamp, "feat_dim": source.feat_dim})
    if last_epoch < epochs:
        return final_path
    if rank.main:
        weights = checkpoint.average(model_dir, epochs, int(train_cfg.get("average_last", 1)))
        checkpoint.save(final_path, {"model": weights, "config": config,
                                     "feat_dim": source.feat_dim, "speakers": [],
                                     "label_free": options["method"]})
        write_summary(os.path.join(exp_dir, SUMMARY_FILE), model_dir, epochs, config,
                      model.num_parameters(), rank.world, source.num_utterances,
                      source.num_shards)
        record_inputs(exp_dir, items)
        write_marker(marker, stamp, info=f"epochs={epochs} label_free={options['method']}")
    if rank.world > 1:
        dist.barrier()
    return final_path


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


def write_summary(path, model_dir, epochs, config, num_parameters, world, num_utts,
                  num_shards=0) -> dict:
    """``unlabelled_utterances``: of the raw data dirs (a shard's count is not read
    up front: the shards are only streamed); ``unlabelled_shards``: of the shard dirs."""
    stats = [checkpoint.load(checkpoint.epoch_path(model_dir, e))["stats"]
             for e in range(1, epochs + 1)]
    seconds = sum(s["seconds"] for s in stats)
    utts = sum(s["utterances"] for s in stats)
    summary = {"model": config["model"]["name"], "loss": config["ssl"]["method"],
               "label_free": config["ssl"]["method"], "parameters": int(num_parameters),
               "epochs": epochs, "chunks": utts, "utterances_seen": utts,
               "unlabelled_utterances": num_utts, "unlabelled_shards": num_shards,
               "train_seconds": round(seconds, 3),
               "chunks_per_s": round(utts / seconds, 2) if seconds > 0 else None,
               "processes": world, "final_loss": stats[-1]["loss"]}
    with atomic_output(path) as out:
        json.dump(summary, out, indent=1)
        out.write("\n")
    return summary
