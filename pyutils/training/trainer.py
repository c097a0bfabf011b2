"""Train a speaker-embedding network on random chunks; resumable per epoch.

Layout written under ``exp_dir``::

    config.yaml        the resolved training config (copied for the record)
    models/epoch_N.pt  full checkpoint after epoch N (atomic)
    final.pt           model weights for extraction: the average of the last
                       ``average_last`` epochs (WeSpeaker's model averaging)
    train_summary.json parameters, chunks, training time and chunks/s
    .done              completion marker: the stage is finished

The training data is a data dir: its ``feats.scp`` (precomputed features,
the default) or its audio (``features.on_the_fly`` or a waveform model, which
also enable augmentation).  ``validation.utts_per_speaker`` utterances of each
speaker are held out and scored every epoch.  Rerunning resumes from the
newest epoch checkpoint; a finished run is left alone unless ``force``.
Under ``torchrun`` each rank trains on its share of every batch with
DistributedDataParallel (NCCL on GPUs, gloo on CPU).  This module sets a run
up, checks what a resume may continue and writes the results; one epoch of
steps is :mod:`pyutils.training.loop`.
"""
from __future__ import annotations

import json
import logging
import os
from typing import Optional

import torch
import torch.distributed as dist
import yaml

from pyutils.features.pipeline import FeaturePipeline
from pyutils.losses import build_loss
from pyutils.models import build_model
from pyutils.training import checkpoint
from pyutils.training.loader import build_loader
from pyutils.training.data import (OnTheFlyFeatures, PrecomputedFeatures, WaveformStore,
                                   read_utt2spk, speed_versions, split_validation)
from pyutils.training.ranks import SUMMARY_FILE, join_run
from pyutils.training.scheduler import build_optimizer, build_scheduler
from pyutils.training.device import autocast, grad_scaler, resolve_device
from pyutils.training.loop import run_epoch, validate
from pyutils.training.inputs import data_inputs, record_inputs, training_inputs
from pyutils.training.restart import check_resumable, must_start_over
from pyutils.utils.fileio import atomic_output, done_marker, fingerprint, job_done, write_marker

logger = logging.getLogger(__name__)

SAMPLES_PER_FRAME = 160  # chunk sizes are in 10 ms frames; waveform sources use 16 kHz samples


def load_config(path: str) -> dict:
    with open(path, encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    for section in ("model", "loss", "data", "optimizer", "training"):
        if section not in config:
            raise ValueError(f"{path}: missing section '{section}'")
    return config


def build_sources(config: dict, data_dir: str):
    """(train source, validation source or None) for the config's feature type."""
    feats = config.get("features", {"type": "mfcc"})
    valid_per_spk = int(config.get("validation", {}).get("utts_per_speaker", 0))
    utt2spk = read_utt2spk(data_dir)
    train_utts, valid_utts = split_validation(utt2spk, valid_per_spk)
    aug_cfg = config.get("augmentation") or {}
    speeds, speed_prob = speed_versions(aug_cfg.get("speed"))
    augmenter = None
    if any(k in aug_cfg for k in ("noise", "reverb")):
        from pyutils.augment import Augmenter
        augmenter = Augmenter({k: v for k, v in aug_cfg.items() if k != "speed"},
                              sample_rate=16000)
    pipeline = FeaturePipeline.from_config(feats)
    kind, on_the_fly = pipeline.kind, pipeline.on_the_fly
    data_format = str(config["data"].get("format", "raw"))
    if data_format not in ("raw", "shard"):
        raise ValueError(f"data.format must be raw or shard, got '{data_format}'")
    if data_format == "shard":   # streamed from tar shards (pyutils.training.shard_source)
        if config["data"].get("sampling", "utterance") != "utterance":
            raise ValueError("data.format: shard streams every utterance once per pass: "
                             "data.sampling must be utterance (or unset)")
        from pyutils.training.shard_source import build_shard_sources
        return build_shard_sources(config, data_dir, utt2spk, train_utts, valid_utts,
                                   augmenter, speeds, speed_prob)
    if kind != "waveform" and not on_the_fly:
        if augmenter is not None or len(speeds) > 1:
            raise ValueError("augmentation needs features.on_the_fly: true (or a waveform model)")
        in_memory = bool(config["data"].get("in_memory", True))
        train = PrecomputedFeatures(f"{data_dir}/feats.scp", utt2spk, train_utts, in_memory)
        valid = PrecomputedFeatures(f"{data_dir}/feats.scp", utt2spk, valid_utts, in_memory,
                                    speakers=train.speakers) if valid_utts else None
        return train, valid

    def make(utts, aug, spd, speakers=None):
        if kind == "waveform":
            return WaveformStore(data_dir, augmenter=aug, speeds=spd, utts=utts, speakers=speakers,
                                 speed_prob=speed_prob)
        return OnTheFlyFeatures(data_dir, pipeline=pipeline, augmenter=aug, speeds=spd,
                                utts=utts, speakers=speakers, speed_prob=speed_prob)
    train = make(train_utts, augmenter, speeds)
    valid = make(valid_utts, None, [1.0], train.speakers) if valid_utts else None
    return train, valid


class TrainingNet(torch.nn.Module):
    """Embedding network + loss as one module, so DDP synchronises both.

    The network runs under the autocast of ``precision``; the loss (margin
    softmax, log-sum-exp) always in fp32 for stability.
    """

    def __init__(self, model, loss_fn, precision: str = "fp32"):
        super().__init__()
        self.model, self.loss_fn, self.precision = model, loss_fn, precision

    def forward(self, inputs, labels):
        with autocast(inputs.device, self.precision):
            outputs = self.model.head(self.model(inputs))
        with torch.autocast(device_type=inputs.device.type, enabled=False):
            return self.loss_fn(outputs.float(), labels)


def train(config_path: str, data_dir: str, exp_dir: str, force: bool = False,
          max_epochs: Optional[int] = None) -> str:
    """Run (or resume) training; return the path of ``final.pt``.

    The marker ``.done`` records the fingerprint of the config and the data
    (:mod:`pyutils.training.inputs`): a finished run whose inputs changed is
    refused with the changed keys named (``force`` retrains), and so is a
    resume from a checkpoint written under another config or other data.
    """
    final_path = os.path.join(exp_dir, "final.pt")
    marker = done_marker(exp_dir)
    items = training_inputs(config_path, data_dir)
    stamp = fingerprint(*items)
    data_stamp = fingerprint(*data_inputs(data_dir))
    if job_done(marker, stamp) and not force:
        logger.info("%s is complete (.done matches config and data); skipping "
                    "(use --force to retrain)", exp_dir)
        return final_path
    config = load_config(config_path)
    recorded_path = os.path.join(exp_dir, "config.yaml")
    model_dir = os.path.join(exp_dir, "models")
    force = must_start_over(exp_dir, marker, config, config_path, data_stamp, force,
                            items=items)
    device = resolve_device(config["training"].get("device", "auto"))
    precision = str(config["training"].get("precision", "fp32"))
    rank = join_run(device, exp_dir, force)
    train_cfg, data_cfg = config["training"], config["data"]
    seed = int(train_cfg.get("seed", 0))
    torch.set_num_threads(int(train_cfg.get("num_threads", 1)))
    torch.manual_seed(seed)
    if train_cfg.get("deterministic"):   # bit-identical reruns; CUDA needs the cuBLAS workspace
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    os.makedirs(model_dir, exist_ok=True)
    resume_from = checkpoint.latest(model_dir)
    state = checkpoint.load(resume_from) if resume_from else None
    if state is not None:
        check_resumable(state, resume_from, exp_dir, config, config_path, data_stamp)

    source, valid = build_sources(config, data_dir)
    model = build_model(config["model"]["name"], feat_dim=source.feat_dim,
                        **{k: v for k, v in config["model"].items() if k != "name"})
    if getattr(model, "input_type", "feats") != source.input_type:
        raise ValueError(f"model '{config['model']['name']}' takes {model.input_type} input but "
                         f"the config's features give {source.input_type}")
    loss_fn = build_loss(config["loss"]["name"], model.head_dim, source.num_classes,
                         **{k: v for k, v in config["loss"].items() if k != "name"})
    net = TrainingNet(model, loss_fn, precision).to(device)
    scaler = grad_scaler(device, precision)
    optimizer = build_optimizer(net, **config["optimizer"])   # groups: frontend.lr has its own
    epochs, batch_size = int(train_cfg["epochs"]), int(data_cfg["batch_size"])
    if train_cfg.get("scale_lr_with_world"):
        # keep the per-process batch; the global batch and the LR grow with the world
        batch_size *= rank.world
        for group in optimizer.param_groups:
            group["lr"] *= rank.world
            group["initial_lr"] = group["lr"]
    micro_total = int(train_cfg.get("micro_batches") or rank.world)
    if micro_total % rank.world or batch_size % micro_total:
        raise ValueError(f"data.batch_size {batch_size} must split into training.micro_batches "
                         f"{micro_total}, one share or more per process of {rank.world}")
    micro = micro_total // rank.world
    steps_per_epoch = max(1, int(data_cfg["chunks_per_epoch"]) // batch_size)
    scheduler = build_scheduler(optimizer, epochs * steps_per_epoch, **config.get("scheduler", {}))
    unit = SAMPLES_PER_FRAME if source.input_type == "waveform" else 1
    chunk_range = (int(data_cfg["min_chunk_frames"]) * unit, int(data_cfg["max_chunk_frames"]) * unit)
    logger.info("%s: %d parameters; %d classes, %d training and %d validation utterances, "
                "input dim %d", config["model"]["name"], model.num_parameters(), source.num_classes,
                len(source), len(valid) if valid else 0, source.feat_dim)

    start_epoch = 0
    if state is not None:
        for what, theirs, ours in (("classes (speakers x speeds)", state.get("num_classes"),
                                    source.num_classes),
                                   ("input dimensions", state.get("feat_dim"), source.feat_dim)):
            if theirs is not None and theirs != ours:
                raise ValueError(f"cannot resume from {resume_from}: it has {theirs} {what}, "
                                 f"the data now gives {ours}; rerun with --force true to "
                                 f"start over")
        model.load_state_dict(state["model"])
        loss_fn.load_state_dict(state["loss"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        checkpoint.set_rng_state(state["rng"])
        start_epoch = state["epoch"]
        logger.info("resuming from %s (epoch %d done)", resume_from, start_epoch)
    elif train_cfg.get("init_from"):   # a new run from a pre-trained encoder (head, loss fresh)
        from pyutils.training.selfsup.pretrained import init_classifier, init_encoder
        init_encoder(model, str(train_cfg["init_from"]), config["model"], source.feat_dim)
        if train_cfg.get("init_head", "fresh") not in ("fresh", "keep"):
            raise ValueError(f"training.init_head must be fresh or keep, got "
                             f"'{train_cfg['init_head']}'")
        if train_cfg.get("init_head", "fresh") == "keep":   # large-margin fine-tuning
            init_classifier(model, loss_fn, str(train_cfg["init_from"]))
    if rank.main:   # only now: config.yaml records the run that continues
        with atomic_output(recorded_path) as out:
            yaml.safe_dump(config, out, sort_keys=False)

    if train_cfg.get("sync_bn") and rank.distributed:
        if device.type == "cuda":
            net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
        else:
            logger.warning("training.sync_bn: SyncBatchNorm needs GPUs (NCCL); on CPU each "
                           "process keeps its own batch-norm statistics")
    train_net = net
    if rank.distributed:   # under torchrun, one process included
        train_net = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None)
        logger.info("DistributedDataParallel: %d process(es), %s", rank.world, rank.backend)
    if int(train_cfg.get("freeze_encoder_epochs", 0)) > 0 and rank.distributed:
        raise ValueError("training.freeze_encoder_epochs needs a single training process "
                         "(DistributedDataParallel keeps the set of trained tensors fixed)")
    last_epoch = epochs if max_epochs is None else min(epochs, max_epochs)
    chunk_loader = None     # raw data: built once, its worker processes serve every epoch
    for epoch in range(start_epoch + 1, last_epoch + 1):
        if chunk_loader is None:   # a shard source (data.format: shard) builds its own
            own = getattr(source, "build_loader", None)
            chunk_loader = (own(data_cfg, chunk_range, batch_size, seed, rank, device) if own else
                            build_loader(source, data_cfg, chunk_range, batch_size, seed, rank,
                                         device))
        if int(train_cfg.get("freeze_encoder_epochs", 0)) > 0:   # adaptation: head first
            from pyutils.training.selfsup.pretrained import set_encoder_trainable
            if set_encoder_trainable(model, epoch > int(train_cfg["freeze_encoder_epochs"])):
                logger.info("epoch %d: encoder %s", epoch, "trainable" if epoch >
                            int(train_cfg["freeze_encoder_epochs"]) else "frozen")
        stats = run_epoch(train_net, optimizer, scheduler, source, chunk_loader,
                          float(train_cfg.get("grad_clip", 0.0)), seed, epoch, epochs, rank,
                          device, scaler, micro)
        if scaler is not None:   # fp16: the GradScaler's scale after the epoch (the GPU check reads it)
            stats["grad_scale"] = float(scaler.get_scale())
        if valid is not None:
            stats.update(validate(net, valid, chunk_range, batch_size, seed, device))
        logger.info("epoch %d/%d: loss %.4f accuracy %.3f%s lr %.5f%s %.1f chunks/s", epoch, epochs,
                    stats["loss"], stats["accuracy"],
                    f" | validation loss {stats['valid_loss']:.4f} accuracy "
                    f"{stats['valid_accuracy']:.3f}" if valid is not None else "",
                    scheduler.get_last_lr()[0],
                    f" margin {loss_fn.current_margin:.3f}" if hasattr(loss_fn, "current_margin")
                    else "", stats["chunks_per_s"])
        if rank.main:
            checkpoint.save(checkpoint.epoch_path(model_dir, epoch), {
                "model": model.state_dict(), "loss": loss_fn.state_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "epoch": epoch, "rng": checkpoint.rng_state(), "stats": stats,
                "config": config, "data_stamp": data_stamp,
                "num_classes": source.num_classes, "feat_dim": source.feat_dim})
    if last_epoch < epochs:
        return final_path
    if rank.main:
        weights = checkpoint.average(model_dir, epochs, int(train_cfg.get("average_last", 1)))
        checkpoint.save(final_path, {"model": weights, "config": config,
                                     "feat_dim": source.feat_dim, "speakers": source.speakers})
        write_summary(os.path.join(exp_dir, SUMMARY_FILE), model_dir, epochs, config,
                      model.num_parameters(), rank.world, rank.backend)
        record_inputs(exp_dir, items)
        write_marker(marker, stamp, info=f"epochs={epochs}")
    if rank.distributed:
        dist.barrier()
    return final_path


def write_summary(path: str, model_dir: str, epochs: int, config: dict, num_parameters: int,
                  world: int, distributed: Optional[str] = None) -> dict:
    """``train_summary.json``: parameters, chunks seen, training time and throughput,
    summed over the epoch checkpoints (so a resumed run counts each epoch once);
    ``distributed``: the process group's backend (nccl | gloo) when the network
    trained under DistributedDataParallel, else None."""
    stats = [checkpoint.load(checkpoint.epoch_path(model_dir, e)).get("stats", {})
             for e in range(1, epochs + 1)]
    complete = all("seconds" in s and "chunks" in s for s in stats)  # (older checkpoints lack them)
    seconds = sum(float(s["seconds"]) for s in stats) if complete else None
    chunks = sum(int(s["chunks"]) for s in stats) if complete else None
    last = stats[-1] if stats else {}
    summary = {"model": config["model"]["name"], "loss": config["loss"]["name"],
               "parameters": int(num_parameters), "epochs": epochs, "chunks": chunks,
               "train_seconds": round(seconds, 3) if complete else None,
               "chunks_per_s": round(chunks / seconds, 2) if complete and seconds > 0 else None,
               "processes": world, "distributed": distributed, "final_train_accuracy": last.get("accuracy"),
               "final_valid_accuracy": last.get("valid_accuracy")}
    with atomic_output(path) as out:
        json.dump(summary, out, indent=1)
        out.write("\n")
    return summary
