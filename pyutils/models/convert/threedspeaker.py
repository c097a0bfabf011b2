"""3D-Speaker checkpoints (CAM++, ERes2Net-base) as toolkit models.

SRC is a model directory holding one ``.bin``/``.ckpt``/``.pt`` state dict (ModelScope's
``campplus_*.bin``, a recipe's ``embedding_model.ckpt``), or that file.  The architecture is
recognised from the weights; the feature size from, in order, ``--config`` / a ``*.yaml``
with the recipe's ``embedding_model: {obj, args}``, ModelScope's ``configuration.json``
(``model.model_config.fbank_dim``), else 80.

- CAM++ (``speakerlab.models.campplus.DTDNN.CAMPPlus``) -> ``campplus``: WeSpeaker's CAM++
  is this same code (pyutils.models.convert.wespeaker);
- ERes2Net (``speakerlab.models.eres2net.ERes2Net.ERes2Net``) -> ``eres2net``:
  ``fuse_mode12/123/1234 -> fuse.0/1/2``, ``layerN_downsample -> downsample.N-1``,
  ``seg_1 -> embedding``, ``layerN.M.fuse_models -> layerN.M.fuse``; the base width from
  the weights; variance + 1e-8 in the pooling (3D-Speaker's TSTP).

3D-Speaker's CAM++ pools sqrt(unbiased variance) with no epsilon (``stats_eps: 0``).

Front-end (``speakerlab.process.processor.FBank``): Kaldi fbank, 80 bins, default (Povey)
window, dither 0, then the utterance mean removed.  It feeds ``Kaldi.fbank`` the waveform in
[-1, 1], not on the int16 scale: every log energy is 2 ln 32768 lower, a constant that the
mean normalisation removes (apart from the energy floor of digital silence).  Written to
``OUT/fbank.conf``; CMN and VAD as for WeSpeaker (docs/pretrained.md).
"""
from __future__ import annotations

import json
import os

from pyutils.models import build_model
from pyutils.models.convert import layout
from pyutils.models.convert.common import ConversionError, load_checked, load_torch, read_yaml
from pyutils.models.convert.wespeaker import build_campplus, fbank_options

ERES2NET_RULES = layout.ERES2NET_3DSPEAKER_RULES
WEIGHT_SUFFIXES = (".bin", ".ckpt", ".pt", ".pth")


def _weights(src: str, checkpoint=None) -> str:
    if checkpoint:
        return checkpoint
    if os.path.isfile(src):
        return src
    if not os.path.isdir(src):
        raise ConversionError(f"{src}: no such file or directory")
    found = sorted(f for f in os.listdir(src) if f.endswith(WEIGHT_SUFFIXES))
    if len(found) != 1:
        raise ConversionError(f"{src}: {len(found)} weight files ({', '.join(found) or 'none'}); "
                              f"name one with --checkpoint")
    return os.path.join(src, found[0])


def _feat_dim(src: str, config=None):
    """(feature size, the config file read or None)."""
    directory = src if os.path.isdir(src) else os.path.dirname(src)
    candidates = [config] if config else sorted(
        os.path.join(directory, f) for f in os.listdir(directory)
        if f.endswith((".yaml", ".yml")) or f == "configuration.json")
    for path in candidates:
        if path.endswith(".json"):
            with open(path) as handle:
                model = (json.load(handle).get("model") or {}).get("model_config") or {}
            if "fbank_dim" in model:
                return int(model["fbank_dim"]), path
        else:
            args = ((read_yaml(path).get("embedding_model") or {}).get("args") or {})
            if "feat_dim" in args:
                return int(args["feat_dim"]), path
    return 80, None


def build_eres2net(state: dict, feat_dim: int, source: str):
    if "seg_1.weight" not in state:
        raise ConversionError(f"{source}: key 'seg_1.weight' is missing: not an ERes2Net")
    config = {"name": "eres2net", "embed_dim": int(state["seg_1.weight"].shape[0]),
              "m_channels": int(state["conv1.weight"].shape[0]), "stats_eps": 1e-8}
    model = build_model(feat_dim=feat_dim, **config)
    renamed, origin = layout.rename(state, ERES2NET_RULES)
    return load_checked(model, renamed, source, origin=origin), config


def convert(src: str, checkpoint: str = None, config: str = None):
    """(network, toolkit config, files read) from a 3D-Speaker model at ``src``."""
    weights = _weights(src, checkpoint)
    saved = load_torch(weights)
    state = layout.strip(saved.get("state_dict", saved) if isinstance(saved, dict) else {})
    feat_dim, config_path = _feat_dim(src if not checkpoint else os.path.dirname(weights), config)
    if "xvector.dense.linear.weight" in state:
        model, model_cfg = build_campplus(state, feat_dim, weights, stats_eps=0.0)
    elif "fuse_mode12.local_att.0.weight" in state:
        model, model_cfg = build_eres2net(state, feat_dim, weights)
    else:
        raise ConversionError(f"{weights}: neither 'xvector.dense.linear.weight' (CAM++) nor "
                              f"'fuse_mode12.local_att.0.weight' (ERes2Net) is in it: not an "
                              f"importable 3D-Speaker model")
    config_out = {"features": {"type": "fbank",
                               "kaldi_options": fbank_options(feat_dim, window="povey")},
                  "model": model_cfg, "loss": {"name": "aam", "scale": 32, "margin": 0.2}}
    return model, config_out, [weights] + ([config_path] if config_path else [])
