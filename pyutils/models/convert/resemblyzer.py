"""Resemblyzer's ``pretrained.pt`` (GE2E ``VoiceEncoder``) as the toolkit's ``ge2e`` model.

The checkpoint's ``model_state`` holds ``lstm.*`` and ``linear.*`` under the same names as
:class:`pyutils.models.ge2e.GE2E`; ``similarity_weight``/``similarity_bias`` (the GE2E
loss's scale and offset) are training-only and dropped.  The sizes are read from the
weights, so a re-trained encoder of another size imports too.  ``SRC`` is the file, or the
installed ``resemblyzer`` package directory that ships it.
"""
from __future__ import annotations

import os
import re

from pyutils.models.convert.common import ConversionError, load_checked, load_torch
from pyutils.models.ge2e import GE2E

TRAINING_ONLY = ("similarity_weight", "similarity_bias")


def locate(src: str) -> str:
    path = os.path.join(src, "pretrained.pt") if os.path.isdir(src) else src
    if not os.path.isfile(path):
        raise ConversionError(f"{path}: no such file (give Resemblyzer's pretrained.pt, or the "
                           f"installed resemblyzer package directory)")
    return path


def convert(src: str):
    """(GE2E model in eval mode, toolkit config) from Resemblyzer weights at ``src``."""
    path = locate(src)
    saved = load_torch(path)
    state = saved.get("model_state", saved) if isinstance(saved, dict) else None
    if not isinstance(state, dict) or "lstm.weight_ih_l0" not in state:
        raise ConversionError(f"{path}: key 'lstm.weight_ih_l0' is missing: not a Resemblyzer "
                           f"VoiceEncoder checkpoint")
    layers = 1 + max(int(m.group(1)) for k in state
                     if (m := re.fullmatch(r"lstm\.weight_ih_l(\d+)", k)))
    hidden = state["lstm.weight_hh_l0"].shape[1]
    model_cfg = {"name": "ge2e", "num_mels": int(state["lstm.weight_ih_l0"].shape[1]),
                 "hidden_size": int(hidden), "num_layers": layers,
                 "embed_dim": int(state["linear.weight"].shape[0]) if "linear.weight" in state
                 else int(hidden)}
    model = GE2E(**{k: v for k, v in model_cfg.items() if k != "name"})
    load_checked(model, state, path, ignore=TRAINING_ONLY)
    # training (run.sh --init-from) cuts chunks from utterances prepared as the network
    # prepares them at extraction: volume, VAD trimming (FeaturePipeline.training_waveform)
    config = {"features": {"type": "waveform", "prepare": "ge2e"}, "model": model_cfg,
              "loss": {"name": "ge2e_imported"}}
    return model, config, [path]
