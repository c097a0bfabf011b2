"""Self-supervised speech models (WavLM, wav2vec 2.0, HuBERT, UniSpeech-SAT) as a front-end.

``SSLFrontend`` wraps a Hugging Face ``transformers`` encoder loaded from a
*local* directory (``save_pretrained`` output or a ``huggingface-cli
download``): it never touches the network, and a missing or incomplete
directory is a :class:`PretrainedModelMissing` error that says how to get it.

What it computes, for a (batch, samples) 16 kHz waveform on the toolkit's
int16 scale (what ``WaveformStore`` and extraction give):

* ``x / 32768`` (transformers models take [-1, 1] floats), then, if the saved
  feature extractor says ``do_normalize``, zero mean and unit variance per
  utterance over its valid samples (``Wav2Vec2FeatureExtractor``'s
  ``zero_mean_unit_var_norm``: population variance + 1e-7), padding zeroed;
* the encoder with all hidden states (the CNN output projected, then every
  transformer layer: ``num_hidden_layers + 1`` tensors).  A padding mask goes
  to the encoder only for ``feat_extract_norm == "layer"`` models; "group"
  models (wav2vec2-base, HuBERT-base, WavLM-base, UniSpeech-SAT-base) were trained on zero-padded
  input without one, as the transformers documentation says;
* with ``layer_weights`` a learnable softmax-weighted sum of those hidden
  states, initialised uniform (zero logits, as s3prl's ``Featurizer``);
  without, the last hidden state.

Without a directory: ``encoder_config`` and ``feature_extractor`` (the
contents of the checkpoint's config.json and preprocessor_config.json) build
the encoder with untrained weights, for a model whose state dict holds them
all (a model package: :meth:`SSLSpeakerModel.self_contained_config`).

Output: (batch, frames, hidden_size) features at a 20 ms shift (the product
of the CNN strides, 320 samples), plus per-utterance frame counts when
``lengths`` were given.

Freezing (``freeze``): ``none`` fine-tunes everything; ``cnn`` freezes the
convolutional feature encoder (transformers' ``freeze_feature_encoder``);
``first_N`` freezes the CNN, the feature projection, the positional
convolution and the first N transformer layers; ``all`` freezes the whole
encoder, keeps it in eval mode (no dropout, layer drop or time masking) and
runs it without autograd.  The layer weights are never frozen.  ``lr`` gives
the encoder's trainable parameters their own learning rate
(:meth:`separate_lr`, read by ``pyutils.training.scheduler.build_optimizer``).
"""
from __future__ import annotations

import json
import os
import re
from typing import Optional, Sequence, Tuple

import torch
from torch import nn

INT16_SCALE = 32768.0
SAMPLE_RATE = 16000
# type -> (transformers model class, config model_type values it loads)
FRONTENDS = {
    "wavlm": ("WavLMModel", ("wavlm",)),
    "wav2vec2": ("Wav2Vec2Model", ("wav2vec2",)),
    "hubert": ("HubertModel", ("hubert",)),
    # transformers' UniSpeechSatModel is its Wav2Vec2Model code (feature encoder, projection,
    # positional conv, post- or pre-LN "stable" encoder), with masked_spec_embed always present
    "unispeech_sat": ("UniSpeechSatModel", ("unispeech-sat",)),
}
REFERENCE_CHECKPOINT = {"wavlm": "microsoft/wavlm-base-plus", "wav2vec2": "facebook/wav2vec2-base",
                        "hubert": "facebook/hubert-base-ls960",
                        "unispeech_sat": "microsoft/unispeech-sat-base-plus"}
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")


class PretrainedModelMissing(FileNotFoundError):
    """The local checkpoint directory of a pretrained model is missing or incomplete."""


def how_to_get(path: str, repo: str, then: str = "set frontend.path to it in the model config"
               ) -> str:
    return (f"download it on a machine with internet access: "
            f"`huggingface-cli download {repo} --local-dir {path}` (or "
            f"`save_pretrained` of the model and its feature extractor), copy the directory "
            f"here and {then}; models are never downloaded by the toolkit")


def check_checkpoint_dir(path: Optional[str], kind: str = "wavlm", repo: Optional[str] = None,
                         then: str = "set frontend.path to it in the model config") -> str:
    """The expanded ``path`` if it holds config.json, weights and
    preprocessor_config.json; a :class:`PretrainedModelMissing` naming what lacks
    and how to get it (``repo``: the checkpoint to suggest, ``then``: what to do next)."""
    repo = repo or REFERENCE_CHECKPOINT.get(kind, "microsoft/wavlm-base-plus")
    if not path:
        raise PretrainedModelMissing(f"model.frontend.path is not set: the {kind} front-end "
                                     f"needs a local checkpoint directory; "
                                     f"{how_to_get('<dir>', repo, then)}")
    path = os.path.expanduser(os.path.expandvars(str(path)))
    if not os.path.isdir(path):
        what = ("an XVector checkpoint" if "hf_convert" in then
                else f"model.frontend.path of the {kind} front-end")
        raise PretrainedModelMissing(f"{path}: no such directory ({what}); "
                                     f"{how_to_get(path, repo, then)}")
    missing = [name for name in ("config.json", "preprocessor_config.json")
               if not os.path.isfile(os.path.join(path, name))]
    if not any(os.path.isfile(os.path.join(path, name)) for name in WEIGHT_FILES):
        missing.append("model.safetensors (or pytorch_model.bin)")
    if missing:
        raise PretrainedModelMissing(f"{path}: incomplete checkpoint directory, missing "
                                     f"{', '.join(missing)}; {how_to_get(path, repo, then)}")
    return path


def read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except ValueError as err:
        raise PretrainedModelMissing(f"{path}: not valid JSON ({err}); the checkpoint "
                                     f"directory is damaged, download it again") from None


def conv_geometry(kernels: Sequence[int], strides: Sequence[int]) -> Tuple[int, int]:
    """(receptive field, shift) in samples of a stack of unpadded strided convolutions."""
    field, shift = 1, 1
    for kernel, stride in zip(kernels, strides):
        field += (kernel - 1) * shift
        shift *= stride
    return field, shift


def load_encoder(kind: str, path: str, load_weights: bool = True):
    """(transformers encoder, its config, the saved preprocessor_config.json) from
    ``path``, local files only."""
    if kind not in FRONTENDS:
        raise ValueError(f"unknown frontend.type '{kind}' (known: {', '.join(FRONTENDS)})")
    path = check_checkpoint_dir(path, kind)
    saved = read_json(os.path.join(path, "config.json"))
    preprocessor = read_json(os.path.join(path, "preprocessor_config.json"))
    _check_saved(kind, saved, preprocessor, f"{path}/config.json", path)
    if not load_weights:
        return encoder_from_config(kind, saved, preprocessor)
    import transformers
    cls = getattr(transformers, FRONTENDS[kind][0])
    with quiet_transformers():
        model = cls.from_pretrained(path, local_files_only=True)
    return model, model.config, preprocessor


def encoder_from_config(kind: str, saved: dict, preprocessor: dict):
    """(encoder with untrained weights, its config, ``preprocessor``) from the
    contents of a checkpoint's config.json and preprocessor_config.json: no files, so
    a model package carries them (``encoder_config``, ``feature_extractor``) and its
    state dict gives the weights."""
    if kind not in FRONTENDS:
        raise ValueError(f"unknown frontend.type '{kind}' (known: {', '.join(FRONTENDS)})")
    _check_saved(kind, saved, preprocessor, "frontend.encoder_config", "frontend.feature_extractor")
    import transformers
    cls = getattr(transformers, FRONTENDS[kind][0])
    with quiet_transformers():
        model = cls(cls.config_class.from_dict(dict(saved)))
    return model, model.config, preprocessor


def _check_saved(kind: str, saved: dict, preprocessor: dict, config_name: str,
                 preprocessor_name: str) -> None:
    if saved.get("model_type") not in FRONTENDS[kind][1]:
        raise ValueError(f"{config_name}: model_type '{saved.get('model_type')}' is not a "
                         f"{kind} model; set frontend.type to match the checkpoint")
    rate = int(preprocessor.get("sampling_rate", SAMPLE_RATE))
    if rate != SAMPLE_RATE:
        raise ValueError(f"{preprocessor_name}: the model takes {rate} Hz audio; the toolkit's "
                         f"waveform front-ends take {SAMPLE_RATE} Hz")


class quiet_transformers:
    """transformers' warnings and progress bars off (a *ForXVector checkpoint's head keys
    are "unexpected" in the encoder: hf_convert loads them)."""

    def __enter__(self):
        import transformers
        self.verbosity = transformers.logging.get_verbosity()
        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()

    def __exit__(self, *exc):
        import transformers
        transformers.logging.set_verbosity(self.verbosity)
        transformers.logging.enable_progress_bar()


class SSLFrontend(nn.Module):
    """A transformers speech encoder -> (softmax-weighted) hidden states; see the module doc."""

    def __init__(self, type: str = "wavlm", path: Optional[str] = None, freeze: str = "none",
                 layer_weights: bool = True, lr: Optional[float] = None,
                 load_weights: bool = True, encoder_config: Optional[dict] = None,
                 feature_extractor: Optional[dict] = None):
        super().__init__()
        self.kind = type
        if encoder_config is not None:    # a package's model: no directory, weights follow
            self.model, config, self.preprocessor = encoder_from_config(
                type, encoder_config, feature_extractor or {})
        else:
            self.model, config, self.preprocessor = load_encoder(type, path, load_weights)
        self.do_normalize = bool(self.preprocessor.get("do_normalize", True))
        self.use_padding_mask = getattr(config, "feat_extract_norm", "group") == "layer"
        self.num_layers = int(config.num_hidden_layers) + 1   # + the CNN/projection output
        self.output_dim = int(config.hidden_size)
        self.receptive_field, self.frame_shift = conv_geometry(config.conv_kernel,
                                                               config.conv_stride)
        self.layer_weights = (nn.Parameter(torch.zeros(self.num_layers)) if layer_weights
                              else None)
        self.lr = None if lr is None else float(lr)
        self.freeze = str(freeze)
        self._apply_freeze(self.freeze)

    def _apply_freeze(self, freeze: str) -> None:
        model = self.model
        match = re.fullmatch(r"first_(\d+)", freeze)
        if freeze == "none":
            return
        if freeze == "all":
            for param in model.parameters():
                param.requires_grad_(False)
            return
        if freeze != "cnn" and not match:
            raise ValueError(f"frontend.freeze must be all, cnn, first_N or none, got '{freeze}'")
        frozen = [model.feature_extractor]
        if match:
            count = int(match.group(1))
            layers = model.encoder.layers
            if count > len(layers):
                raise ValueError(f"frontend.freeze {freeze}: the model has {len(layers)} layers")
            frozen += [model.feature_projection, model.encoder.pos_conv_embed, *layers[:count]]
            if not getattr(model.config, "do_stable_layer_norm", False):
                frozen.append(model.encoder.layer_norm)   # applied before the first layer
            if getattr(model, "masked_spec_embed", None) is not None:
                model.masked_spec_embed.requires_grad_(False)
        for module in frozen:
            for param in module.parameters():
                param.requires_grad_(False)

    @property
    def frozen(self) -> bool:
        return self.freeze == "all"

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen:
            self.model.eval()      # a frozen encoder: no dropout, layer drop or masking
        return self

    def separate_lr(self):
        """(learning rate, trainable encoder parameters) when ``lr`` is set, else None."""
        if self.lr is None:
            return None
        return self.lr, [p for p in self.model.parameters() if p.requires_grad]

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Encoder frames of inputs of ``lengths`` samples (transformers' formula)."""
        return self.model._get_feat_extract_output_lengths(lengths)

    def normalise(self, waveform: torch.Tensor, lengths: Optional[torch.Tensor]) -> torch.Tensor:
        """int16 scale -> [-1, 1]; zero mean, unit variance per utterance if ``do_normalize``."""
        x = waveform.float() / INT16_SCALE
        if not self.do_normalize:
            return x
        if lengths is None:
            mean = x.mean(dim=1, keepdim=True)
            var = x.var(dim=1, unbiased=False, keepdim=True)
            return (x - mean) / torch.sqrt(var + 1e-7)
        valid = torch.arange(x.shape[1], device=x.device)[None] < lengths[:, None]
        count = lengths[:, None].to(x.dtype)
        mean = (x * valid).sum(dim=1, keepdim=True) / count
        var = (((x - mean) * valid) ** 2).sum(dim=1, keepdim=True) / count
        return torch.where(valid, (x - mean) / torch.sqrt(var + 1e-7), torch.zeros_like(x))

    def weights(self) -> Optional[torch.Tensor]:
        """The softmax of the layer weights (None without layer weighting)."""
        return None if self.layer_weights is None else torch.softmax(self.layer_weights, dim=0)

    def forward(self, waveform: torch.Tensor, lengths: Optional[torch.Tensor] = None):
        """(batch, samples) -> ((batch, frames, hidden) features, frame counts or None)."""
        x = self.normalise(waveform, lengths)
        mask = None
        if lengths is not None and self.use_padding_mask:
            mask = (torch.arange(x.shape[1], device=x.device)[None] < lengths[:, None]).long()
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.frozen):
            out = self.model(x, attention_mask=mask, output_hidden_states=True)
        if self.layer_weights is None:
            features = out.last_hidden_state
        else:
            stacked = torch.stack(out.hidden_states, dim=0)          # (layers, B, T, H)
            features = (self.weights().view(-1, 1, 1, 1) * stacked).sum(dim=0)
        frames = self.frame_lengths(lengths) if lengths is not None else None
        return features, frames
