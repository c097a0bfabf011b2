"""What a training run depends on, for its completion marker and its resumption.

``exp/<model>/.done`` records the fingerprint (``pyutils.cli.stamp``) of the
items below: the training config, the data dir's tables, the markers of the
stages that wrote the data dir (they change whenever those stages reran), the
feature configs an on-the-fly config names, and a pre-trained front-end's or
encoder's files.  ``steps/train.sh`` checks the marker with the same items, so
shell and Python agree on "trained".

:func:`changed_keys` compares two configs key by key, so a refusal can say
what changed (``optimizer.lr``, ``data.chunks_per_epoch``, ...).
"""
from __future__ import annotations

import os
import sys
from typing import Dict, List

import yaml

# Data-dir files whose bytes determine the training data (a missing one
# hashes its name, so it appearing later also changes the stamp).
DATA_FILES = ("utt2spk", "feats.scp", "wav.scp", "segments", ".done", ".mfcc_vad.done")
# Files of a pre-trained front-end's directory (model.frontend.path) that decide
# its weights and input normalisation (a missing one hashes its name).
FRONTEND_FILES = ("config.json", "preprocessor_config.json", "model.safetensors",
                  "pytorch_model.bin")
# Keys that change how fast a run goes, never what it computes.
RUNTIME_KEYS = {"training.num_threads", "data.in_memory", "data.num_workers",
                "data.prefetch_factor", "data.worker_nice", "training.device"}


def training_inputs(config_path: str, data_dir: str) -> List[str]:
    """The stamp items of a training run (config first, then the data)."""
    items = [config_path] + data_inputs(data_dir)
    with open(config_path, encoding="utf-8") as handle:
        config = yaml.safe_load(handle) or {}
    feats = config.get("features") or {}
    for key in ("conf", "vad_conf", "cmvn_conf", "vad_feat_conf"):
        if feats.get(key):
            items.append(str(feats[key]))
    frontend = (config.get("model") or {}).get("frontend") or {}
    if frontend.get("path"):   # a replaced checkpoint retrains
        items += [os.path.join(str(frontend["path"]), name) for name in FRONTEND_FILES]
    init_from = (config.get("training") or {}).get("init_from")
    if init_from:   # the pre-trained model and its run's marker (new after every rerun)
        items += [str(init_from), f"{os.path.dirname(str(init_from)) or '.'}/.done"]
    return items


def data_inputs(data_dir: str) -> List[str]:
    return [f"{data_dir}/{name}" for name in DATA_FILES]


def _flatten(config, prefix="") -> Dict[str, object]:
    flat = {}
    for key, value in (config or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def changed_keys(old: dict, new: dict, ignore=RUNTIME_KEYS) -> List[str]:
    """Dotted keys whose values differ (added or removed keys included)."""
    a, b = _flatten(old), _flatten(new)
    return sorted(k for k in set(a) | set(b) if k not in ignore and a.get(k) != b.get(k))


def describe_changes(old: dict, new: dict, keys: List[str]) -> str:
    a, b = _flatten(old), _flatten(new)
    return ", ".join(f"{k}: {a.get(k, '(unset)')} -> {b.get(k, '(unset)')}" for k in keys)


if __name__ == "__main__":  # python -m pyutils.training.inputs CONFIG DATA: one item a line
    if len(sys.argv) != 3:
        sys.exit("usage: python -m pyutils.training.inputs <config.yaml> <train-data>")
    print("\n".join(training_inputs(sys.argv[1], sys.argv[2])))
