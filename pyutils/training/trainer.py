"""Supervised training: a speaker-embedding network on random chunks, with labels.

What supervised training builds and does each epoch (:class:`Supervised`), run
by the training skeleton :class:`pyutils.training.run.Run` (set-up, resume per
epoch, the files under ``exp_dir``: config.yaml, models/epoch_N.pt, final.pt,
train_summary.json, .done); one epoch of steps is :mod:`pyutils.training.loop`.

The training data is a data dir: its ``feats.scp`` (precomputed features,
the default) or its audio (``features.on_the_fly`` or a waveform model, which
also enable augmentation).  ``validation.utts_per_speaker`` utterances of each
speaker are held out and scored every epoch.  ``final.pt`` holds the average
of the last ``training.average_last`` epochs (WeSpeaker's model averaging).
Under ``torchrun`` each rank trains on its share of every batch with
DistributedDataParallel (NCCL on GPUs, gloo on CPU).
"""
from __future__ import annotations

import logging
from typing import List, Optional

import torch

from pyutils.features.pipeline import FeaturePipeline
from pyutils.losses import build_loss
from pyutils.training import checkpoint
from pyutils.training.loader import build_loader
from pyutils.training.data import (OnTheFlyFeatures, PrecomputedFeatures, WaveformStore,
                                   read_utt2spk, speed_versions, split_validation)
from pyutils.training.run import Run, Training, build_network, rates, read_config, totals
from pyutils.training.scheduler import build_optimizer
from pyutils.training.device import autocast, compile_training, grad_scaler
from pyutils.training.loop import run_epoch, validate
from pyutils.training.inputs import data_inputs, training_inputs
from pyutils.utils.markers import fingerprint

logger = logging.getLogger(__name__)

SAMPLES_PER_FRAME = 160  # chunk sizes are in 10 ms frames; waveform sources use 16 kHz samples


SECTIONS = ("model", "loss", "data", "optimizer", "training")


def load_config(path: str) -> dict:
    return read_config(path, SECTIONS)


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
    if data_format == "shard" and pipeline.prepare:
        raise ValueError(f"features.prepare: {pipeline.prepare} needs data.format: raw")
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
                                 speed_prob=speed_prob, pipeline=pipeline)
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


class Supervised(Training):
    """Training with speaker labels: embedding network + margin loss on random chunks
    (one epoch of steps is :func:`pyutils.training.loop.run_epoch`)."""

    log = logger

    def __init__(self, data_dir: str):
        self.data_dir = data_dir

    sections = SECTIONS

    def build(self, run: Run) -> None:
        config, train_cfg, data_cfg, rank = run.config, run.train_cfg, run.data_cfg, run.rank
        source, valid = self.source, self.valid = build_sources(config, self.data_dir)
        model = self.model = build_network(config, source)
        loss_fn = self.loss_fn = build_loss(config["loss"]["name"], model.head_dim,
                                            source.num_classes,
                                            **{k: v for k, v in config["loss"].items()
                                               if k != "name"})
        self.net = TrainingNet(model, loss_fn, run.precision).to(run.device)
        self.scaler = grad_scaler(run.device, run.precision)
        # groups: frontend.lr has its own
        optimizer = self.optimizer = build_optimizer(self.net, **config["optimizer"])
        batch_size = int(data_cfg["batch_size"])
        if train_cfg.get("scale_lr_with_world"):
            # keep the per-process batch; the global batch and the LR grow with the world
            batch_size *= rank.world
            for group in optimizer.param_groups:
                group["lr"] *= rank.world
                group["initial_lr"] = group["lr"]
        micro_total = int(train_cfg.get("micro_batches") or rank.world)
        if micro_total % rank.world or batch_size % micro_total:
            raise ValueError(f"data.batch_size {batch_size} must split into "
                             f"training.micro_batches {micro_total}, one share or more per "
                             f"process of {rank.world}")
        self.batch_size, self.micro_batches = batch_size, micro_total // rank.world
        self.scheduler = run.scheduler_for(optimizer, batch_size)
        unit = SAMPLES_PER_FRAME if source.input_type == "waveform" else 1
        self.chunk_range = (int(data_cfg["min_chunk_frames"]) * unit,
                            int(data_cfg["max_chunk_frames"]) * unit)
        logger.info("%s: %d parameters; %d classes, %d training and %d validation utterances, "
                    "input dim %d", config["model"]["name"], model.num_parameters(),
                    source.num_classes, len(source), len(valid) if valid else 0, source.feat_dim)

    def load_state(self, run: Run, state: dict) -> None:
        source = self.source
        for what, theirs, ours in (("classes (speakers x speeds)", state.get("num_classes"),
                                    source.num_classes),
                                   ("input dimensions", state.get("feat_dim"), source.feat_dim)):
            if theirs is not None and theirs != ours:
                raise ValueError(f"cannot resume from {run.resume_from}: it has {theirs} {what}, "
                                 f"the data now gives {ours}; rerun with --force true to "
                                 f"start over")
        self.model.load_state_dict(state["model"])
        self.loss_fn.load_state_dict(state["loss"])

    def start_fresh(self, run: Run) -> None:
        train_cfg = run.train_cfg
        if not train_cfg.get("init_from"):
            return
        # a new run from a pre-trained encoder (head, loss fresh)
        from pyutils.training.selfsup.pretrained import init_classifier, init_encoder, init_head
        init_encoder(self.model, str(train_cfg["init_from"]), run.config["model"],
                     self.source.feat_dim)
        if train_cfg.get("init_head", "fresh") not in ("fresh", "keep"):
            raise ValueError(f"training.init_head must be fresh or keep, got "
                             f"'{train_cfg['init_head']}'")
        if train_cfg.get("init_head", "fresh") == "keep":   # large-margin fine-tuning
            init_classifier(self.model, self.loss_fn, str(train_cfg["init_from"]))
        elif run.epochs == 0:           # scored as it is: its own head too
            init_head(self.model, str(train_cfg["init_from"]))

    def prepare(self, run: Run) -> None:
        rank, net = run.rank, self.net
        if run.train_cfg.get("sync_bn") and rank.distributed:
            if run.device.type == "cuda":
                net = self.net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
            else:
                logger.warning("training.sync_bn: SyncBatchNorm needs GPUs (NCCL); on CPU each "
                               "process keeps its own batch-norm statistics")
        self.train_net = net
        if rank.distributed:   # under torchrun, one process included
            self.train_net = run.distributed(net)
            logger.info("DistributedDataParallel: %d process(es), %s", rank.world, rank.backend)
        self.train_net = compile_training(self.train_net, run.train_cfg.get("compile", False))
        self.freeze_epochs = int(run.train_cfg.get("freeze_encoder_epochs", 0))
        if self.freeze_epochs > 0 and rank.distributed:
            raise ValueError("training.freeze_encoder_epochs needs a single training process "
                             "(DistributedDataParallel keeps the set of trained tensors fixed)")
        self.chunk_loader = None   # raw data: built once, its worker processes serve every epoch

    def run_epoch(self, run: Run, epoch: int) -> dict:
        source, valid, loss_fn, data_cfg = self.source, self.valid, self.loss_fn, run.data_cfg
        if self.chunk_loader is None:   # a shard source (data.format: shard) builds its own
            own = getattr(source, "build_loader", None)
            args = (self.chunk_range, self.batch_size, run.seed, run.rank, run.device)
            self.chunk_loader = (own(data_cfg, *args) if own else
                                 build_loader(source, data_cfg, *args))
        if self.freeze_epochs > 0:   # adaptation: head first
            from pyutils.training.selfsup.pretrained import set_encoder_trainable
            if set_encoder_trainable(self.model, epoch > self.freeze_epochs):
                logger.info("epoch %d: encoder %s", epoch,
                            "trainable" if epoch > self.freeze_epochs else "frozen")
        stats = run_epoch(self.train_net, self.optimizer, self.scheduler, source,
                          self.chunk_loader, float(run.train_cfg.get("grad_clip", 0.0)),
                          run.seed, epoch, run.epochs, run.rank, run.device, self.scaler,
                          self.micro_batches)
        if self.scaler is not None:   # fp16: the GradScaler's scale after the epoch (the GPU check reads it)
            stats["grad_scale"] = float(self.scaler.get_scale())
        if valid is not None:
            stats.update(validate(self.net, valid, self.chunk_range, self.batch_size, run.seed,
                                  run.device))
        logger.info("epoch %d/%d: loss %.4f accuracy %.3f%s lr %.5f%s %.1f chunks/s", epoch,
                    run.epochs, stats["loss"], stats["accuracy"],
                    f" | validation loss {stats['valid_loss']:.4f} accuracy "
                    f"{stats['valid_accuracy']:.3f}" if valid is not None else "",
                    self.scheduler.get_last_lr()[0],
                    f" margin {loss_fn.current_margin:.3f}" if hasattr(loss_fn, "current_margin")
                    else "", stats["chunks_per_s"])
        return stats

    def networks_state(self) -> dict:
        return {"model": self.model.state_dict(), "loss": self.loss_fn.state_dict()}

    def shape(self) -> dict:
        return {"num_classes": self.source.num_classes, "feat_dim": self.source.feat_dim}

    def final_fields(self) -> dict:
        return {"feat_dim": self.source.feat_dim, "speakers": self.source.speakers}

    def summary(self, run: Run, stats: List[dict]) -> dict:
        """Parameters, chunks seen, training time and throughput; ``distributed``: the
        process group's backend (nccl | gloo) when the network trained under
        DistributedDataParallel, else None."""
        seconds, chunks = totals(stats, "chunks")
        last = stats[-1] if stats else {}
        return {"model": run.config["model"]["name"], "loss": run.config["loss"]["name"],
                **start_fields(run.train_cfg.get("init_from"), run.epochs),
                "parameters": int(self.model.num_parameters()), "epochs": run.epochs,
                "chunks": chunks, **rates(seconds, chunks), "processes": run.rank.world,
                "distributed": run.rank.backend, "final_train_accuracy": last.get("accuracy"),
                "final_valid_accuracy": last.get("valid_accuracy")}


def start_fields(init_from: Optional[str], epochs: int) -> dict:
    """The summary's ``start``: ``scratch`` (random weights), ``fine-tuned`` (trained on from
    ``init_from``) or ``as-is`` (``init_from`` unchanged, 0 epochs); ``init_from``; and
    ``init_source``: where that model came from (its import's ``pretrained`` record:
    ``from`` files and ``converted_by``), None for a model trained here."""
    if not init_from:
        return {"start": "scratch", "init_from": None, "init_source": None}
    saved = checkpoint.load(str(init_from))
    return {"start": "as-is" if epochs == 0 else "fine-tuned", "init_from": str(init_from),
            "init_source": (saved.get("config") or {}).get("pretrained")}


def train(config_path: str, data_dir: str, exp_dir: str, force: bool = False,
          max_epochs: Optional[int] = None) -> str:
    """Run (or resume) training; return the path of ``final.pt``.

    The marker ``.done`` records the fingerprint of the config and the data
    (:mod:`pyutils.training.inputs`): a finished run whose inputs changed is
    refused with the changed keys named (``force`` retrains), and so is a
    resume from a checkpoint written under another config or other data.
    """
    run = Run(Supervised(data_dir), config_path, exp_dir, training_inputs(config_path, data_dir),
              fingerprint(*data_inputs(data_dir)), force)
    return run.train(max_epochs)
