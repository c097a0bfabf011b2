"""A pretrained speech encoder + any speaker head: ``model.name: ssl``.

Config (``conf/wavlm_xvector.yaml``)::

    model:
      name: ssl
      frontend: {type: wavlm|wav2vec2|hubert|unispeech_sat, path: DIR, freeze: all|cnn|first_N|none,
                 layer_weights: true, lr: 0.00002}
      head: {name: xvector_hf, ...}     # or xvector, ecapa_c512, resnet34, ... (+ arguments)

The front-end (:mod:`pyutils.models.ssl.encoder`) turns the waveform into
(batch, frames, hidden) features; the head is any of the toolkit's feature
networks built with ``feat_dim = hidden_size``, or ``xvector_hf``
(:mod:`pyutils.models.ssl.xvector_head`, transformers' XVector head).  The
model takes ``input_type = "waveform"`` (16 kHz, int16 scale), so training and
extraction use the raw-waveform path of ``conf/wav2spk.yaml``; their chunk
and window options stay in 10 ms frames (``frame_shift`` = 160 samples),
while the encoder's frames are 20 ms (``frontend.frame_shift``, 320).

A model package stores :meth:`SSLSpeakerModel.self_contained_config`: the
encoder's config.json and preprocessor_config.json inline in place of
``frontend.path``, so the package's model.pt builds without the directory.
"""
from __future__ import annotations

import json
from typing import Optional

import torch
from torch import nn

from pyutils.models.base import EmbeddingNet
from pyutils.models.registry import MODELS, build_network
from pyutils.models.ssl.encoder import SSLFrontend
from pyutils.models.ssl.xvector_head import HFXVectorHead

HEADS = {"xvector_hf": HFXVectorHead}
# heads whose frame layers are unpadded: they need receptive_field input frames
UNPADDED_HEADS = ("xvector", "xvector_hf")
# heads whose pooling takes the unbiased std: they need two frames (one gives NaN)
UNBIASED_STD_HEADS = ("xvector_hf",)


def build_head(name: str, feat_dim: int, **kwargs) -> nn.Module:
    if name in HEADS:
        return HEADS[name](feat_dim=feat_dim, **kwargs)
    if name not in MODELS or getattr(MODELS[name], "input_type", "feats") != "feats":
        known = sorted(set(HEADS) | {n for n, m in MODELS.items()
                                     if getattr(m, "input_type", "feats") == "feats"})
        raise ValueError(f"unknown model.head.name '{name}'; known: {', '.join(known)}")
    return build_network(MODELS[name], feat_dim=feat_dim, **kwargs)


class SSLSpeakerModel(EmbeddingNet):
    """Pretrained encoder -> weighted hidden states -> speaker head -> embedding."""

    input_type = "waveform"

    def __init__(self, feat_dim: Optional[int] = None, frontend: Optional[dict] = None,
                 head: Optional[dict] = None, embed_dim: Optional[int] = None):
        # feat_dim is accepted for the common build_model interface; a waveform has none.
        super().__init__()
        frontend = dict(frontend or {})
        head = dict(head or {"name": "xvector_hf"})
        self.frontend = SSLFrontend(**frontend)
        head_name = head.pop("name", "xvector_hf")
        if embed_dim is not None:
            head.setdefault("embed_dim", embed_dim)
        self.speaker_net = build_head(head_name, self.frontend.output_dim, **head)
        self.embed_dim = self.speaker_net.embed_dim
        self.head_dim = self.speaker_net.head_dim
        self.min_frames = (int(self.speaker_net.receptive_field) if head_name in UNPADDED_HEADS
                           else 1) + (1 if head_name in UNBIASED_STD_HEADS else 0)

    @property
    def head(self) -> nn.Module:
        """The head's classifier-side layers (a property: one name per weight)."""
        return self.speaker_net.head

    # Samples per 10 ms frame: the unit of the chunk and window options of training
    # (data.*_chunk_frames) and extraction (--chunk-size, --window), as for wav2spk.
    # The encoder's own frames are 20 ms: ``frontend.frame_shift`` (320 samples).
    frame_shift = 160

    @property
    def receptive_field(self) -> int:
        """Fewest input samples that give an embedding without padding (two head frames
        for ``xvector_hf``: its unbiased std of one frame is NaN)."""
        return (self.frontend.receptive_field
                + (self.min_frames - 1) * self.frontend.frame_shift)

    def forward(self, waveform: torch.Tensor, lengths: Optional[torch.Tensor] = None
                ) -> torch.Tensor:
        """(batch, samples) int16-scale waveform [+ valid sample counts] -> embeddings.

        Inputs shorter than the receptive field are zero-padded at the end (as
        transformers' padding), so a short utterance still gets an embedding."""
        missing = self.receptive_field - waveform.shape[-1]
        if missing > 0:
            waveform = nn.functional.pad(waveform, (0, missing))
        features, frames = self.frontend(waveform, lengths)
        if frames is None:
            return self.speaker_net(features)
        if not getattr(self.speaker_net, "accepts_lengths", False):
            raise ValueError(f"{type(self.speaker_net).__name__} takes no padding lengths; "
                             f"embed utterances of different lengths one at a time")
        return self.speaker_net(features, frames)

    def self_contained_config(self, model_cfg: dict) -> dict:
        """``model_cfg`` with the encoder's configuration inline (``frontend.encoder_config``:
        its config.json, ``frontend.feature_extractor``: its preprocessor_config.json) in
        place of ``frontend.path``: a model package's config, which builds this network
        (weights from the state dict) with no checkpoint directory present."""
        frontend = {k: v for k, v in (model_cfg.get("frontend") or {}).items() if k != "path"}
        frontend["encoder_config"] = json.loads(self.frontend.model.config.to_json_string(
            use_diff=False))
        frontend["feature_extractor"] = dict(self.frontend.preprocessor)
        return {**model_cfg, "frontend": frontend}

