"""What every importer shares: checked weight loading and the model directory it writes.

An importer turns a source checkpoint into (network, config); :func:`write_model_dir` saves
them as stage 3 would (``final.pt``, ``config.yaml``, ``.done``), so stages 4-8 and ``sv
package`` use the result unchanged.  :func:`load_checked` refuses a checkpoint that does not
fit the network with one line naming the key and both shapes.
"""
from __future__ import annotations

import logging
import os
from typing import Dict, Iterable, Optional

import torch
import yaml

logger = logging.getLogger(__name__)


class ConversionError(ValueError):
    """A checkpoint that cannot be imported (wrong architecture, missing key, other shape)."""


def read_yaml(path: str) -> dict:
    if not os.path.isfile(path):
        raise ConversionError(f"{path}: no such file")
    with open(path) as handle:
        data = yaml.safe_load(handle)
    if not isinstance(data, dict):
        raise ConversionError(f"{path}: not a YAML mapping")
    return data


def load_torch(path: str) -> dict:
    """A checkpoint file's tensors on the CPU (weights only: no code runs on load)."""
    if not os.path.isfile(path):
        raise ConversionError(f"{path}: no such file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:       # pickle/zip errors of many kinds: one line naming the file
        raise ConversionError(f"{path}: not a readable PyTorch checkpoint ({err})") from None


def load_checked(model: torch.nn.Module, state: Dict[str, torch.Tensor], source: str,
                 ignore: Iterable[str] = (), origin: Optional[Dict[str, str]] = None
                 ) -> torch.nn.Module:
    """Load ``state`` into ``model`` strictly; the first mismatch is one error line.

    ``ignore``: prefixes of source keys that are not part of the embedding network
    (a training-only loss, a projection head).  ``origin``: {our key: the source's key}
    when the keys were renamed, so messages name the key as the checkpoint spells it."""
    origin = origin or {}
    ours = model.state_dict()
    ignore = tuple(ignore)
    state = {k: v for k, v in state.items() if not (ignore and k.startswith(ignore))}
    for key, value in state.items():
        name = origin.get(key, key)
        if key not in ours:
            raise ConversionError(f"{source}: unexpected key '{name}' {tuple(value.shape)}: "
                               f"not in the {type(model).__name__} network (another architecture?)")
        if tuple(ours[key].shape) != tuple(value.shape):
            raise ConversionError(f"{source}: key '{name}' has shape {tuple(value.shape)}, the "
                               f"{type(model).__name__} network expects {tuple(ours[key].shape)}")
    missing = [k for k in ours if k not in state and not k.endswith("num_batches_tracked")]
    if missing:
        raise ConversionError(f"{source}: key '{missing[0]}' {tuple(ours[missing[0]].shape)} is "
                           f"missing ({len(missing)} missing in all)")
    model.load_state_dict(state, strict=False)
    return model.eval()


def write_model_dir(model: torch.nn.Module, config: dict, exp_dir: str,
                    sources: Iterable[str], converted_by: str,
                    feat_dim: Optional[int] = None) -> str:
    """``final.pt``, ``config.yaml`` and ``.done`` in ``exp_dir``; returns final.pt's path."""
    from pyutils.training import checkpoint
    from pyutils.utils.fileio import atomic_output
    from pyutils.utils.markers import done_marker, fingerprint, write_marker
    sources = [os.path.abspath(s) for s in sources]
    config = {**config, "pretrained": {"from": sources, "converted_by": converted_by}}
    if feat_dim is None:
        feat_dim = 1 if getattr(model, "input_type", "feats") == "waveform" else int(
            config["features"]["kaldi_options"]["num-mel-bins"])
    os.makedirs(exp_dir, exist_ok=True)
    features = dict(config.get("features") or {})
    options = features.pop("kaldi_options", None)
    if options:                      # the source's front-end as a Kaldi options file
        conf = os.path.join(os.path.abspath(exp_dir), f"{features['type']}.conf")
        with atomic_output(conf) as out:
            out.write(f"# the front-end of {', '.join(sources)} ({converted_by})\n")
            out.writelines(f"--{name}={value}\n" for name, value in options.items())
        features["conf"] = conf
        config = {**config, "features": features}
    final = os.path.join(exp_dir, "final.pt")
    checkpoint.save(final, {"model": model.state_dict(), "config": config, "feat_dim": feat_dim})
    with atomic_output(os.path.join(exp_dir, "config.yaml")) as out:
        yaml.safe_dump(config, out, sort_keys=False)
    write_marker(done_marker(exp_dir), fingerprint(*sources, final),
                 info=f"converted from {', '.join(sources)}")
    logger.info("%s: %d parameters, from %s", final,
                sum(p.numel() for p in model.parameters()), ", ".join(sources))
    return final
