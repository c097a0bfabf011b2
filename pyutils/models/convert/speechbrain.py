"""SpeechBrain ``spkrec-ecapa-voxceleb``-style models (``embedding_model.ckpt`` +
``hyperparams.yaml``) as the toolkit's ``sb_ecapa`` (SpeechBrain Fbank + ECAPA-TDNN).

The sizes come from the weights (channels, MFA width, attention and SE bottlenecks, Res2
scale, embedding size, mel bands); ``hyperparams.yaml`` (HyperPyYAML: its ``!new:``/``!ref``
tags are read as plain values) is checked for what the weights cannot tell: the dilations
and kernel sizes, and a front-end this toolkit reproduces (``Fbank`` with default
options, ``InputNormalization`` by sentence without variance normalisation).  The tensors
are matched in definition order (SpeechBrain's ``blocks.0`` ... ``fc``, a 1x1 Conv1d, to
ours).  ``classifier.ckpt`` (the training speakers) and ``mean_var_norm_emb.ckpt`` (a global
embedding mean that ``EncoderClassifier`` subtracts; the back-end's mean subtraction plays
that part here) are not imported.
"""
from __future__ import annotations

import os

import yaml

from pyutils.models import build_model
from pyutils.models.convert import layout
from pyutils.models.convert.common import ConversionError, load_checked, load_torch

DILATIONS, KERNELS = [1, 2, 3, 4, 1], [5, 3, 3, 3, 1]


class _TagLoader(yaml.SafeLoader):
    """YAML with HyperPyYAML's tags read as untagged values."""


def _untagged(loader, suffix, node):
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_TagLoader.add_multi_constructor("!", _untagged)


def read_hyperparams(path: str) -> dict:
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_TagLoader) or {}      # noqa: S506 (SafeLoader subclass)


def _check_hyperparams(path: str) -> None:
    params = read_hyperparams(path)
    model = params.get("embedding_model") or {}
    for key, expected in (("dilations", DILATIONS), ("kernel_sizes", KERNELS)):
        if key in model and [int(v) for v in model[key]] != expected:
            raise ConversionError(f"{path}: embedding_model.{key} {model[key]}: only "
                                  f"{expected} (SpeechBrain's default ECAPA) is importable")
    channels = model.get("channels")
    if isinstance(channels, list) and len(set(channels[:-1])) > 1:
        raise ConversionError(f"{path}: embedding_model.channels {channels}: only equal "
                              f"block widths are importable")
    norm = params.get("mean_var_norm") or {}
    if norm and (norm.get("norm_type", "global") != "sentence" or norm.get("std_norm", True)):
        raise ConversionError(f"{path}: mean_var_norm {norm}: only sentence mean normalisation "
                              f"(std_norm: False) is reproduced")
    fbank = params.get("compute_features") or {}
    other = {k: v for k, v in fbank.items() if k not in ("n_mels",)}
    if other:
        raise ConversionError(f"{path}: compute_features {other}: only Fbank's defaults "
                              f"(n_mels aside) are reproduced")


def convert(src: str, checkpoint: str = None, config: str = None):
    """(network, toolkit config, files read) from a SpeechBrain model directory ``src``."""
    weights = checkpoint or os.path.join(src, "embedding_model.ckpt")
    hyperparams = config or os.path.join(src, "hyperparams.yaml")
    state = layout.strip(load_torch(weights))
    try:
        first = state["blocks.0.conv.conv.weight"]
        channels = int(first.shape[0])
        model_cfg = {"name": "sb_ecapa", "num_mels": int(first.shape[1]), "channels": channels,
                     "mfa_channels": int(state["mfa.conv.conv.weight"].shape[0]),
                     "embed_dim": int(state["fc.conv.weight"].shape[0]),
                     "attention_bottleneck": int(state["asp.tdnn.conv.conv.weight"].shape[0]),
                     "se_bottleneck": int(state["blocks.1.se_block.conv1.conv.weight"].shape[0]),
                     "scale": channels // int(
                         state["blocks.1.res2net_block.blocks.0.conv.conv.weight"].shape[0])}
    except KeyError as err:
        raise ConversionError(f"{weights}: key {err} is missing: not a SpeechBrain ECAPA_TDNN "
                              f"embedding model") from None
    sources = [weights]
    if os.path.isfile(hyperparams):
        _check_hyperparams(hyperparams)
        sources.append(hyperparams)
    model = build_model(**model_cfg)
    load_checked(model, layout.positional(state, model, weights), weights)
    config_out = {"features": {"type": "waveform"}, "model": model_cfg,
                  "loss": {"name": "aam", "scale": 30, "margin": 0.2}}
    return model, config_out, sources
