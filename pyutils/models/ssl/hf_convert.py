"""A transformers ``WavLMForXVector`` / ``Wav2Vec2ForXVector`` / ``UniSpeechSatForXVector``
checkpoint as a toolkit model.

All three are transformers' ``Wav2Vec2ForXVector`` head (layer-weighted hidden
states -> projector -> TDNN -> mean+std -> embedding) on their own encoder;
UniSpeech-SAT's encoder is transformers' wav2vec2 code (``UniSpeechSatModel``,
post-LN or ``do_stable_layer_norm`` pre-LN as config.json says), so it is the
``unispeech_sat`` front-end.  Its pretraining modules (quantizer, speaker
projection) are not in ``UniSpeechSatForXVector`` checkpoints nor needed.

``load_xvector_checkpoint(DIR)`` builds the toolkit's ``ssl`` model with the
checkpoint's geometry (front-end of ``config.json``'s ``model_type``, frozen;
``xvector_hf`` head with its ``tdnn_dim``/``tdnn_kernel``/``tdnn_dilation``
and ``xvector_output_dim``; layer weights iff ``use_weighted_layer_sum``) and
loads every weight, so ``model(waveform)`` equals transformers'
``.embeddings`` (tested to 1e-5).  Weight mapping::

    wavlm.* / wav2vec2.* / unispeech_sat.*  -> frontend.model.*
    layer_weights             -> frontend.layer_weights  (same softmax)
    projector.*               -> speaker_net.projector.*
    tdnn.i.kernel (Linear over kernel x in_dim, frame-major) -> speaker_net.tdnn.i (Conv1d)
    feature_extractor.*       -> speaker_net.embedding.*  (the embedding)
    classifier.*              -> speaker_net.head.*
    objective.weight          (the AM-softmax classes of its training set: not needed)

A directory that is not a complete XVector checkpoint (a pretrained encoder
without the head, weights of other shapes than its config.json) is a one-line
error naming the first key and both shapes.

``python -m pyutils.models.ssl.hf_convert DIR EXP/MODEL`` writes
``EXP/MODEL/final.pt``, ``config.yaml`` and ``.done`` as stage 3 would, so
``./run.sh --stage 4 --model MODEL --train-config EXP/MODEL/config.yaml --exp EXP``
extracts, scores and evaluates with it (stages 4-7).  ``final.pt`` holds all
weights; extraction reads only the directory's ``config.json`` and
``preprocessor_config.json`` (and the weights once more when it builds the
front-end), so DIR must stay where it is for them; a package of the model
(stage 8) carries DIR's configuration and needs it no more.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Tuple

import yaml

from pyutils.models.convert.common import ConversionError, load_checked
from pyutils.models.ssl.encoder import quiet_transformers, check_checkpoint_dir, read_json
from pyutils.models.ssl.model import SSLSpeakerModel

logger = logging.getLogger(__name__)

# config.json's model_type -> (the toolkit's frontend.type, transformers' XVector class)
XVECTOR_CLASSES = {"wavlm": ("wavlm", "WavLMForXVector"),
                   "wav2vec2": ("wav2vec2", "Wav2Vec2ForXVector"),
                   "unispeech-sat": ("unispeech_sat", "UniSpeechSatForXVector")}


def _kind(path: str) -> str:
    saved = read_json(os.path.join(path, "config.json"))
    kind = saved.get("model_type")
    if kind not in XVECTOR_CLASSES:
        raise ValueError(f"{path}/config.json: model_type '{kind}' has no XVector class "
                         f"(known: {', '.join(XVECTOR_CLASSES)})")
    return kind


def model_config(path: str) -> dict:
    """The toolkit's ``model:`` section for the XVector checkpoint in ``path``."""
    path = os.path.abspath(check_checkpoint_dir(   # absolute: extraction runs anywhere
        path, "wavlm", repo="microsoft/wavlm-base-sv", then="convert it with "
        "`python -m pyutils.models.ssl.hf_convert DIR EXP/MODEL`"))
    frontend_type = XVECTOR_CLASSES[_kind(path)][0]
    saved = read_json(os.path.join(path, "config.json"))
    return {"name": "ssl",
            "frontend": {"type": frontend_type, "path": path, "freeze": "all",
                         "layer_weights": bool(saved.get("use_weighted_layer_sum", False))},
            "head": {"name": "xvector_hf", "tdnn_dim": list(saved["tdnn_dim"]),
                     "tdnn_kernel": list(saved["tdnn_kernel"]),
                     "tdnn_dilation": list(saved["tdnn_dilation"]),
                     "embed_dim": int(saved["xvector_output_dim"])}}


def convert_state_dict(hf_state: dict, prefix: str, tdnn_kernel) -> Tuple[dict, dict]:
    """transformers XVector weights (encoder under ``prefix``, its ``base_model_prefix``)
    -> (the toolkit ``ssl`` model's state dict, {our key: transformers' key})."""
    prefix = f"{prefix}."
    ours, origin = {}, {}
    for key, value in hf_state.items():
        if key.startswith(prefix):
            name = "frontend.model." + key[len(prefix):]
        elif key == "layer_weights":
            name = "frontend.layer_weights"
        elif key.startswith("projector."):
            name = "speaker_net." + key
        elif key.startswith("tdnn.") and ".kernel." in key:
            index, what = key.split(".")[1], key.split(".")[-1]
            name = f"speaker_net.tdnn.{index}.{what}"
            if what == "weight":   # Linear (out, kernel * in), frame-major -> Conv1d (out, in, k)
                kernel = int(tdnn_kernel[int(index)])
                value = value.view(value.shape[0], kernel, -1).transpose(1, 2).contiguous()
        elif key.startswith("feature_extractor."):
            name = "speaker_net.embedding." + key.split(".", 1)[1]
        elif key.startswith("classifier."):
            name = "speaker_net.head." + key.split(".", 1)[1]
        elif key == "objective.weight":
            continue
        else:
            raise ConversionError(f"unexpected weight '{key}' {tuple(value.shape)} in the "
                                  f"XVector checkpoint")
        ours[name], origin[name] = value, key
    return ours, origin


def _load_transformers_xvector(path: str, class_name: str):
    """transformers' own XVector model from ``path``; a checkpoint that does not fill
    it (missing head, other shapes than config.json) is a one-line ConversionError."""
    import transformers
    cls = getattr(transformers, class_name)
    with quiet_transformers():
        model, info = cls.from_pretrained(path, local_files_only=True,
                                          output_loading_info=True, ignore_mismatched_sizes=True)
    if info["mismatched_keys"]:
        key, theirs, expected = min(info["mismatched_keys"], key=lambda item: item[0])
        raise ConversionError(f"{path}: key '{key}' has shape {tuple(theirs)}, the {class_name} "
                              f"of its config.json expects {tuple(expected)}")
    missing = sorted(k for k in info["missing_keys"] if not k.startswith("objective."))
    if missing:
        shape = tuple(model.state_dict()[missing[0]].shape)
        raise ConversionError(f"{path}: key '{missing[0]}' {shape} is missing ({len(missing)} "
                              f"missing in all): not a complete {class_name} checkpoint "
                              f"(a pretrained encoder without the x-vector head?)")
    if info["unexpected_keys"]:
        logger.info("%s: %d weights %s does not use (e.g. %s) left out", path,
                    len(info["unexpected_keys"]), class_name, min(info["unexpected_keys"]))
    return model.eval()


def load_xvector_checkpoint(path: str):
    """(toolkit ``ssl`` model in eval mode, its model config) from a local XVector dir."""
    config = model_config(path)
    class_name = XVECTOR_CLASSES[_kind(config["frontend"]["path"])][1]
    hf_model = _load_transformers_xvector(config["frontend"]["path"], class_name)
    model = SSLSpeakerModel(frontend={**config["frontend"], "load_weights": False},
                            head=config["head"])   # every weight comes from hf_model
    state, origin = convert_state_dict(hf_model.state_dict(), hf_model.base_model_prefix,
                                       config["head"]["tdnn_kernel"])
    load_checked(model, state, config["frontend"]["path"], origin=origin)
    return model.eval(), config


def write_model_dir(path: str, exp_dir: str) -> str:
    """``final.pt``, ``config.yaml`` and ``.done`` in ``exp_dir``; returns final.pt's path."""
    from pyutils.training import checkpoint
    from pyutils.utils.fileio import atomic_output
    from pyutils.utils.markers import done_marker, fingerprint, write_marker
    model, model_cfg = load_xvector_checkpoint(path)
    config = {"features": {"type": "waveform"}, "model": model_cfg,
              "loss": {"name": "am", "scale": 30.0, "margin": 0.4},   # transformers' AMSoftmaxLoss
              "pretrained": {"from": model_cfg["frontend"]["path"],
                             "converted_by": "pyutils.models.ssl.hf_convert"}}
    os.makedirs(exp_dir, exist_ok=True)
    final = os.path.join(exp_dir, "final.pt")
    checkpoint.save(final, {"model": model.state_dict(), "config": config, "feat_dim": 1})
    with atomic_output(os.path.join(exp_dir, "config.yaml")) as out:
        yaml.safe_dump(config, out, sort_keys=False)
    hf_dir = model_cfg["frontend"]["path"]
    files = sorted(os.path.join(hf_dir, name) for name in os.listdir(hf_dir))
    write_marker(done_marker(exp_dir), fingerprint(*files),
                 info=f"converted from {os.path.abspath(hf_dir)}")
    logger.info("%s: %d parameters, from %s", final, model.num_parameters(), hf_dir)
    return final


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Convert a local transformers WavLMForXVector/"
                                     "Wav2Vec2ForXVector/UniSpeechSatForXVector checkpoint into "
                                     "a toolkit model dir (final.pt, config.yaml, .done) for "
                                     "run.sh stages 4-7.")
    parser.add_argument("checkpoint_dir")
    parser.add_argument("exp_dir")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        print(write_model_dir(args.checkpoint_dir, args.exp_dir))
    except (OSError, ValueError) as err:
        print(f"hf_convert: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
