"""A transformers ``WavLMForXVector`` / ``Wav2Vec2ForXVector`` checkpoint as a toolkit model.

``load_xvector_checkpoint(DIR)`` builds the toolkit's ``ssl`` model with the
checkpoint's geometry (front-end of ``config.json``'s ``model_type``, frozen;
``xvector_hf`` head with its ``tdnn_dim``/``tdnn_kernel``/``tdnn_dilation``
and ``xvector_output_dim``; layer weights iff ``use_weighted_layer_sum``) and
loads every weight, so ``model(waveform)`` equals transformers'
``.embeddings`` (tested to 1e-5).  Weight mapping::

    wavlm.* / wav2vec2.*      -> frontend.model.*
    layer_weights             -> frontend.layer_weights  (same softmax)
    projector.*               -> speaker_net.projector.*
    tdnn.i.kernel (Linear over kernel x in_dim, frame-major) -> speaker_net.tdnn.i (Conv1d)
    feature_extractor.*       -> speaker_net.embedding.*  (the embedding)
    classifier.*              -> speaker_net.head.*
    objective.weight          (the AM-softmax classes of its training set: not needed)

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

import yaml

from pyutils.models.ssl.encoder import check_checkpoint_dir, read_json
from pyutils.models.ssl.model import SSLSpeakerModel

logger = logging.getLogger(__name__)

XVECTOR_CLASSES = {"wavlm": "WavLMForXVector", "wav2vec2": "Wav2Vec2ForXVector"}


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
    kind = _kind(path)
    saved = read_json(os.path.join(path, "config.json"))
    return {"name": "ssl",
            "frontend": {"type": kind, "path": path, "freeze": "all",
                         "layer_weights": bool(saved.get("use_weighted_layer_sum", False))},
            "head": {"name": "xvector_hf", "tdnn_dim": list(saved["tdnn_dim"]),
                     "tdnn_kernel": list(saved["tdnn_kernel"]),
                     "tdnn_dilation": list(saved["tdnn_dilation"]),
                     "embed_dim": int(saved["xvector_output_dim"])}}


def convert_state_dict(hf_state: dict, kind: str) -> dict:
    """transformers XVector weights -> the toolkit ``ssl`` model's state dict."""
    prefix = f"{kind}."
    ours = {}
    for key, value in hf_state.items():
        if key.startswith(prefix):
            ours["frontend.model." + key[len(prefix):]] = value
        elif key == "layer_weights":
            ours["frontend.layer_weights"] = value
        elif key.startswith("projector."):
            ours["speaker_net." + key] = value
        elif key.startswith("tdnn.") and ".kernel." in key:
            index, what = key.split(".")[1], key.split(".")[-1]   # weight: reshaped by the caller
            ours[f"speaker_net.tdnn.{index}.{what}"] = value
        elif key.startswith("feature_extractor."):
            ours["speaker_net.embedding." + key.split(".", 1)[1]] = value
        elif key.startswith("classifier."):
            ours["speaker_net.head." + key.split(".", 1)[1]] = value
        elif key == "objective.weight":
            continue
        else:
            raise ValueError(f"unexpected weight '{key}' in the XVector checkpoint")
    return ours


def load_xvector_checkpoint(path: str):
    """(toolkit ``ssl`` model in eval mode, its model config) from a local XVector dir."""
    import transformers
    config = model_config(path)
    kind = config["frontend"]["type"]
    cls = getattr(transformers, XVECTOR_CLASSES[kind])
    hf_model = cls.from_pretrained(config["frontend"]["path"], local_files_only=True)
    model = SSLSpeakerModel(**{k: v for k, v in config.items() if k != "name"})
    state = convert_state_dict(hf_model.state_dict(), kind)
    for i, layer in enumerate(model.speaker_net.tdnn):     # Linear (out, k*in) -> Conv1d
        weight = state[f"speaker_net.tdnn.{i}.weight"]
        out_dim, in_dim, kernel = layer.weight.shape
        state[f"speaker_net.tdnn.{i}.weight"] = (weight.view(out_dim, kernel, in_dim)
                                                 .transpose(1, 2).contiguous())
    model.load_state_dict(state, strict=True)
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
                                     "Wav2Vec2ForXVector checkpoint into a toolkit model dir "
                                     "(final.pt, config.yaml, .done) for run.sh stages 4-7.")
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
