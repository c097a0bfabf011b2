"""One training run, whatever is trained: set up, resume, run the epochs, finish.

Supervised (:mod:`pyutils.training.trainer`) and label-free
(:mod:`pyutils.training.selfsup.train`) training are each a small
:class:`Training` object (what is built, what one epoch does, what a
checkpoint, ``final.pt`` and the summary hold); :class:`Run` does the rest,
the same way for both.  Layout written under ``exp_dir``::

    config.yaml        the resolved training config (copied for the record)
    models/epoch_N.pt  full checkpoint after epoch N (atomic): the networks,
                       optimiser, scheduler, RNG states, the epoch's stats
    final.pt           model weights for extraction: the average of the last
                       ``training.average_last`` epochs (WeSpeaker's averaging)
    train_summary.json what was trained, how much and how fast
    inputs.json        each stamp item's fingerprint (names what changed later)
    .done              completion marker: the fingerprint of the config and data

``training.epochs: 0`` with ``training.init_from``: the model scored as it is (an
imported one): ``final.pt`` holds the network of ``init_from`` whole, head included,
and no epoch runs (``train_summary.json``'s ``start: as-is``).

Set-up: a finished run (``.done`` matching the inputs) is left alone unless
``force``; :func:`~pyutils.training.rerun_policy.must_start_over` decides whether
the run starts over or is refused; the device, the process group
(:func:`~pyutils.training.join_run.join_run`), threads and seed are set; the
newest epoch checkpoint is resumed, bit-identically (RNG states included).
"""
from __future__ import annotations

import json
import logging
import os
from typing import List, Optional, Sequence

import torch
import torch.distributed as dist
import yaml

from pyutils.models import build_model
from pyutils.training import checkpoint
from pyutils.training.device import resolve_device
from pyutils.training.inputs import record_inputs
from pyutils.training.join_run import SUMMARY_FILE, join_run
from pyutils.training.rerun_policy import check_resumable, is_trained, must_start_over
from pyutils.training.scheduler import build_scheduler
from pyutils.utils.fileio import atomic_output
from pyutils.utils.markers import done_marker, fingerprint, write_marker

logger = logging.getLogger(__name__)


def read_config(path: str, sections: Sequence[str]) -> dict:
    """The training YAML at ``path``; each of ``sections`` must be there."""
    with open(path, encoding="utf-8") as handle:
        config = yaml.safe_load(handle)
    for section in sections:
        if section not in config:
            raise ValueError(f"{path}: missing section '{section}'")
    return config


class Training:
    """What one kind of training plugs into :class:`Run`.

    :meth:`build` sets ``optimizer`` and ``scheduler`` (the run saves and
    resumes them) and whatever else the epochs need."""

    data_name = "the training data"   # what a warning about changed data names
    log = logger   # the run's lines go to the plugged-in module's logger (its name is logged)
    optimizer = None
    scheduler = None

    sections: Sequence[str] = ("model", "data", "optimizer", "training")

    def load_config(self, path: str) -> dict:
        """The training YAML, its ``sections`` checked."""
        return read_config(path, self.sections)

    def check(self, run: "Run") -> None:
        """Checks that need the run joined (``run.rank.world`` known); before seeding."""

    def build(self, run: "Run") -> None:
        """Sources, networks, optimiser and scheduler (seeded); log what is trained."""
        raise NotImplementedError

    def load_state(self, run: "Run", state: dict) -> None:
        """Resume: the networks' tensors of an epoch checkpoint (the run loads the rest)."""
        raise NotImplementedError

    def start_fresh(self, run: "Run") -> None:
        """A run with no checkpoint to resume: e.g. initialise from a pre-trained model."""

    def prepare(self, run: "Run") -> None:
        """After the config is recorded, before the first epoch (DistributedDataParallel)."""

    def run_epoch(self, run: "Run", epoch: int) -> dict:
        """Train one epoch, log its line; its stats (``seconds`` included)."""
        raise NotImplementedError

    def networks_state(self) -> dict:
        """The networks' part of an epoch checkpoint."""
        raise NotImplementedError

    def shape(self) -> dict:
        """What a resumed run must match (input dimensions, classes), in each checkpoint."""
        return {}

    def final_fields(self) -> dict:
        """``final.pt``'s fields besides the averaged ``model`` and ``config``."""
        raise NotImplementedError

    def summary(self, run: "Run", stats: List[dict]) -> dict:
        """``train_summary.json`` from the stats of every epoch's checkpoint."""
        raise NotImplementedError

    def marker_info(self, run: "Run") -> str:
        return f"epochs={run.epochs}"


def totals(stats: List[dict], count: str):
    """(seconds, items) summed over the epochs' stats (so a resumed run counts each
    epoch once); (None, None) where a checkpoint lacks them (an older version's)."""
    if not all("seconds" in s and count in s for s in stats):
        return None, None
    return sum(float(s["seconds"]) for s in stats), sum(int(s[count]) for s in stats)


def rates(seconds: Optional[float], items: Optional[int]) -> dict:
    """The summary's ``train_seconds`` and ``chunks_per_s``."""
    return {"train_seconds": round(seconds, 3) if seconds is not None else None,
            "chunks_per_s": round(items / seconds, 2) if seconds else None}


def build_network(config: dict, source) -> torch.nn.Module:
    """The config's model for ``source``'s input (features of a dimension, or waveforms)."""
    model = build_model(config["model"]["name"], feat_dim=source.feat_dim,
                        **{k: v for k, v in config["model"].items() if k != "name"})
    if getattr(model, "input_type", "feats") != source.input_type:
        raise ValueError(f"model '{config['model']['name']}' takes {model.input_type} input but "
                         f"the config's features give {source.input_type}")
    return model


class Run:
    """Set up, resume, run the epochs of and finish one training run in ``exp_dir``.

    ``items``: the stamp's items (the config and the data's tables and markers);
    ``data_stamp``: the data's fingerprint alone (a checkpoint of other data is
    not resumed)."""

    def __init__(self, training: Training, config_path: str, exp_dir: str,
                 items: Sequence[str], data_stamp: str, force: bool = False):
        self.training, self.config_path, self.exp_dir = training, config_path, exp_dir
        self.items, self.data_stamp, self.force = list(items), data_stamp, force
        self.stamp = fingerprint(*self.items)
        self.marker = done_marker(exp_dir)
        self.final_path = os.path.join(exp_dir, "final.pt")
        self.model_dir = os.path.join(exp_dir, "models")

    def train(self, max_epochs: Optional[int] = None) -> str:
        """Run (or resume) the training; the path of ``final.pt`` (written once the
        last epoch is done: ``max_epochs`` stops earlier, resumably)."""
        if is_trained(self.marker, self.items) and not self.force:
            self.training.log.info("%s is complete (.done matches config and data); skipping "
                        "(use --force to retrain)", self.exp_dir)
            return self.final_path
        self.set_up()
        last_epoch = self.epochs if max_epochs is None else min(self.epochs, max_epochs)
        for epoch in range(self.start_epoch + 1, last_epoch + 1):
            self.run_epoch(epoch)
        if last_epoch == self.epochs:
            self.finish()
        return self.final_path

    def set_up(self) -> None:
        training = self.training
        config = self.config = training.load_config(self.config_path)
        force = must_start_over(self.exp_dir, self.marker, config, self.config_path,
                                self.data_stamp, self.force, data_name=training.data_name,
                                items=self.items)
        self.train_cfg, self.data_cfg = config["training"], config["data"]
        self.device = resolve_device(self.train_cfg.get("device", "auto"))
        self.precision = str(self.train_cfg.get("precision", "fp32"))
        self.rank = join_run(self.device, self.exp_dir, force)
        self.seed = int(self.train_cfg.get("seed", 0))
        training.check(self)
        torch.set_num_threads(int(self.train_cfg.get("num_threads", 1)))
        torch.manual_seed(self.seed)
        if self.train_cfg.get("deterministic"):   # bit-identical reruns; CUDA: cuBLAS workspace
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True)
        os.makedirs(self.model_dir, exist_ok=True)
        self.resume_from = checkpoint.latest(self.model_dir)
        state = checkpoint.load(self.resume_from) if self.resume_from else None
        if state is not None:
            check_resumable(state, self.resume_from, self.exp_dir, config, self.config_path,
                            self.data_stamp)
        self.epochs = int(self.train_cfg["epochs"])
        if self.epochs < 0 or (self.epochs == 0 and not self.train_cfg.get("init_from")):
            raise ValueError(f"{self.config_path}: training.epochs must be at least 1 (0 keeps "
                             f"training.init_from as it is, and needs one), got {self.epochs}")
        training.build(self)
        self.start_epoch = 0
        if state is not None:
            training.load_state(self, state)
            training.optimizer.load_state_dict(state["optimizer"])
            training.scheduler.load_state_dict(state["scheduler"])
            checkpoint.set_rng_state(state["rng"])
            self.start_epoch = state["epoch"]
            training.log.info("resuming from %s (epoch %d done)", self.resume_from,
                              self.start_epoch)
        else:
            training.start_fresh(self)
        if self.rank.main:   # only now: config.yaml records the run that continues
            with atomic_output(os.path.join(self.exp_dir, "config.yaml")) as out:
                yaml.safe_dump(config, out, sort_keys=False)
        training.prepare(self)

    def scheduler_for(self, optimizer, batch_size: int):
        """The config's LR schedule over every step of the run (``chunks_per_epoch //
        batch_size`` steps an epoch, at least one)."""
        steps_per_epoch = max(1, int(self.data_cfg["chunks_per_epoch"]) // batch_size)
        return build_scheduler(optimizer, self.epochs * steps_per_epoch,
                               **self.config.get("scheduler", {}))

    def distributed(self, net: torch.nn.Module) -> torch.nn.Module:
        """``net`` in DistributedDataParallel on this run's device."""
        device = self.device
        return torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None)

    def run_epoch(self, epoch: int) -> None:
        training = self.training
        stats = training.run_epoch(self, epoch)
        if self.rank.main:
            checkpoint.save(checkpoint.epoch_path(self.model_dir, epoch), {
                **training.networks_state(), "optimizer": training.optimizer.state_dict(),
                "scheduler": training.scheduler.state_dict(), "epoch": epoch,
                "rng": checkpoint.rng_state(), "stats": stats, "config": self.config,
                "data_stamp": self.data_stamp, **training.shape()})

    def finish(self) -> None:
        """final.pt, train_summary.json, inputs.json and .done (rank 0), then every rank
        waits for them."""
        training = self.training
        if self.rank.main:
            weights = training.networks_state()["model"] if self.epochs == 0 else \
                checkpoint.average(self.model_dir, self.epochs,
                                   int(self.train_cfg.get("average_last", 1)))
            checkpoint.save(self.final_path, {"model": weights, "config": self.config,
                                              **training.final_fields()})
            stats = [checkpoint.load(checkpoint.epoch_path(self.model_dir, e)).get("stats", {})
                     for e in range(1, self.epochs + 1)]
            with atomic_output(os.path.join(self.exp_dir, SUMMARY_FILE)) as out:
                json.dump(training.summary(self, stats), out, indent=1)
                out.write("\n")
            record_inputs(self.exp_dir, self.items)
            write_marker(self.marker, self.stamp, info=training.marker_info(self))
        if self.rank.distributed:
            dist.barrier()
