"""``training.init_from``: start supervised training from a pre-trained encoder.

Loads the ENCODER tensors of a ``final.pt`` (a label-free run's, or any
supervised one's) into a freshly built network: every tensor of the
network's state dict except its classifier-side ``head`` (x-vector tdnn7,
ResNet's last batch norm: the layers only speaker classification trains).
The head and the loss (classifier, margins) stay as initialised, and so do
the optimiser and scheduler: this is a new run, not a resume.  The two
architectures must match: the same ``model`` section (name and options) and
the same input dimension, else a clear error says what differs.

``training.init_head: keep`` also keeps the head and the loss's classifier (large-margin
fine-tuning of the same speakers, conf/*_lm.yaml); ``training.freeze_encoder_epochs: N``
trains only the head and classifier for the first N epochs (adapting to new speakers).
"""
from __future__ import annotations

import logging
import os
from typing import List

import torch

from pyutils.training import checkpoint
from pyutils.training.inputs import changed_keys, describe_changes

logger = logging.getLogger(__name__)

HEAD_PREFIX = "head."


def encoder_keys(state: dict) -> List[str]:
    """The keys of a network state dict that make the encoder (all but ``head.*``)."""
    return [k for k in state if not k.startswith(HEAD_PREFIX)]


def init_encoder(model: torch.nn.Module, path: str, model_config: dict, feat_dim: int) -> List[str]:
    """Copy the encoder tensors of checkpoint ``path`` into ``model``; return their keys."""
    try:
        saved = checkpoint.load(path)
    except FileNotFoundError:
        raise ValueError(f"training.init_from: no checkpoint {path} (train that model first)") \
            from None
    if not isinstance(saved, dict) or "model" not in saved or "config" not in saved:
        raise ValueError(f"training.init_from: {path} is not a final.pt of this toolkit "
                         f"(no 'model' and 'config')")
    theirs, ours_cfg = {"model": saved["config"].get("model") or {}}, {"model": model_config}
    keys = changed_keys(theirs, ours_cfg)
    if keys:
        raise ValueError(f"training.init_from: {path} holds another architecture: "
                         f"{describe_changes(theirs, ours_cfg, keys)} (its config -> this one)")
    if saved.get("feat_dim") not in (None, feat_dim):
        raise ValueError(f"training.init_from: {path} was trained on {saved['feat_dim']}-dim "
                         f"input, this data gives {feat_dim}")
    ours = model.state_dict()
    wanted = encoder_keys(ours)
    missing = [k for k in wanted if k not in saved["model"]]
    wrong = [k for k in wanted if k in saved["model"] and saved["model"][k].shape != ours[k].shape]
    if missing or wrong:
        raise ValueError(f"training.init_from: {path} does not fit the network: "
                         f"missing {missing[:5]}, other shapes {wrong[:5]}")
    result = model.load_state_dict({k: saved["model"][k] for k in wanted}, strict=False)
    left = sorted(result.missing_keys)
    logger.info("training.init_from %s (%s): loaded %d encoder tensors (%d values); left as "
                "initialised: %s and the loss", path, saved.get("label_free") or "supervised",
                len(wanted), sum(saved["model"][k].numel() for k in wanted),
                ", ".join(left) if left else "no network tensor")
    return wanted


def init_classifier(model: torch.nn.Module, loss_fn: torch.nn.Module, path: str) -> None:
    """``training.init_head: keep`` (large-margin fine-tuning): also the network's ``head.*``
    and the loss's classifier from the run of ``path``, which must have the same classes.

    ``final.pt`` keeps no loss state, so the classifier comes from the checkpoint itself if
    it has one (an ``epoch_N.pt``), else from the last ``models/epoch_N.pt`` beside it."""
    saved = checkpoint.load(path)
    source = path
    if "loss" not in saved:
        source = checkpoint.latest(os.path.join(os.path.dirname(path) or ".", "models"))
        if source is None:
            raise ValueError(f"training.init_head: keep: {path} holds no classifier and no "
                             f"models/epoch_N.pt is beside it (an imported model has none: "
                             f"use init_head: fresh)")
    with_loss = saved if source == path else checkpoint.load(source)
    ours = loss_fn.state_dict()
    for key, value in with_loss["loss"].items():
        if key in ours and tuple(ours[key].shape) != tuple(value.shape):
            raise ValueError(f"training.init_head: keep: {source}: loss '{key}' has shape "
                             f"{tuple(value.shape)}, this run's {tuple(ours[key].shape)} "
                             f"(other speakers or speed perturbation?)")
    loss_fn.load_state_dict(with_loss["loss"])
    head = {k: v for k, v in with_loss["model"].items() if k.startswith(HEAD_PREFIX)}
    model.load_state_dict(head, strict=False)
    logger.info("training.init_head: keep: the classifier (%s) and %d head tensors from %s",
                ", ".join(sorted(with_loss["loss"])), len(head), source)


def init_head(model: torch.nn.Module, path: str) -> None:
    """``training.epochs: 0`` (a model scored as it is): the network's own ``head.*`` tensors
    from ``path`` too, so the network is the checkpoint's whole (:func:`init_encoder` first)."""
    saved = checkpoint.load(path)
    head = {k: v for k, v in saved["model"].items() if k.startswith(HEAD_PREFIX)}
    wanted = [k for k in model.state_dict() if k.startswith(HEAD_PREFIX)]
    missing = [k for k in wanted if k not in head]
    if missing:
        raise ValueError(f"training.init_from: {path} has no {', '.join(missing[:5])}: it "
                         f"cannot be used as it is (training.epochs: 0)")
    model.load_state_dict({k: head[k] for k in wanted}, strict=False)


def set_encoder_trainable(model: torch.nn.Module, trainable: bool) -> int:
    """``training.freeze_encoder_epochs``: (un)freeze every parameter outside ``head.*``;
    returns how many tensors changed.  Frozen tensors get no gradient, so the optimiser
    leaves them (and their weight decay) alone; batch-norm statistics still adapt."""
    changed = 0
    for name, param in model.named_parameters():
        if not name.startswith(HEAD_PREFIX) and param.requires_grad != trainable:
            param.requires_grad_(trainable)
            changed += 1
    return changed
