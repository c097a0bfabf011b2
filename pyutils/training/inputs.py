"""What a training run depends on, for its completion marker and its resumption.

``exp/<model>/.done`` records the fingerprint (``pyutils.cli.marker``) of the
items below, and ``exp/<model>/inputs.json`` each item's own fingerprint, so a
rerun can say which input changed:

* the training config as parsed, less :data:`RUNTIME_KEYS` (a comment, the
  key order or a speed-only key never retrains);
* the data dir's tables and the markers of the stages that wrote it (they
  change whenever those stages reran);
* for every input but waveform (precomputed, on the fly, shards, label-free),
  the feature, VAD, CMN and VAD-energy configs, named or the defaults that
  training and stages 1-2 fall back to (conf/mfcc.conf, conf/vad.conf,
  conf/cmvn.conf);
* the augmentation's noise and RIR files (paths and sizes, ``$VARs`` expanded);
* a pre-trained front-end's or encoder's (``training.init_from``) files.

``steps/train.sh`` checks the marker with the same items, so shell and
Python agree on "trained".  :func:`changed_keys` compares two configs key by
key, so a refusal can say what changed (``optimizer.lr``, ...).
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import sys
from typing import Dict, List, Optional, Sequence

import yaml

from pyutils.features.pipeline import conf_paths

# Data-dir files whose bytes determine the training data (a missing one
# hashes its name, so it appearing later also changes the stamp).
DATA_FILES = ("utt2spk", "feats.scp", "wav.scp", "segments", "shard.list", ".done",
              ".mfcc_vad.done")
# Files of a pre-trained front-end's directory (model.frontend.path) that decide
# its weights and input normalisation (a missing one hashes its name).
FRONTEND_FILES = ("config.json", "preprocessor_config.json", "model.safetensors",
                  "pytorch_model.bin")
# The one list of keys that change how fast a run goes, never what it computes
# (README: "never invalidates a trained model"): left out of the training stamp
# and of the changed keys a refusal names.
RUNTIME_KEYS = ("data.num_workers", "data.prefetch_factor", "data.worker_nice",
                "data.in_memory", "training.num_threads", "training.device",
                "training.compile")
CONFIG_ITEM, AUGMENT_ITEM = "config: ", "augmentation files: "
RECORD_FILE = "inputs.json"


def runtime_keys(config: Optional[dict]) -> set:
    """:data:`RUNTIME_KEYS` for this config: tar shards are dealt to the loader
    workers, so there ``data.num_workers`` decides the batches (README)."""
    keys = set(RUNTIME_KEYS)
    if str(((config or {}).get("data") or {}).get("format", "raw")) == "shard":
        keys.discard("data.num_workers")
    return keys


def load(config_path: str) -> dict:
    with open(config_path, encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def config_item(config: dict) -> str:
    """The config as the stamp sees it: parsed, keys sorted, runtime keys dropped."""
    kept = copy.deepcopy(config)
    for key in runtime_keys(config):
        *parents, last = key.split(".")
        section = kept
        for name in parents:
            section = section.get(name) if isinstance(section, dict) else None
        if isinstance(section, dict):
            section.pop(last, None)
    return CONFIG_ITEM + json.dumps(kept, sort_keys=True, default=str)


def reads_feature_confs(config: dict) -> bool:
    """Whether the training input depends on the feature configs: every input but
    waveform (on the fly, shards and label-free runs read them; precomputed
    features were made with them, in stages 1-2, and are stamped with them too so
    that a changed config never leaves a model of the old features trusted)."""
    return (config.get("features") or {}).get("type", "mfcc") != "waveform"


def augmentation_item(config: dict) -> List[str]:
    """One item for the noise and RIR files the augmentation draws from, if any."""
    from pyutils.augment.noise import list_audio_files
    aug = config.get("augmentation") or {}
    dirs = []
    for section, key in (("noise", "dirs"), ("reverb", "rir_dirs")):
        options = aug.get(section) or {}
        paths = options.get(key) or []
        for path in [paths] if isinstance(paths, str) else paths:
            dirs.append((os.path.expandvars(str(path)), bool(options.get("recursive", True))))
    if not dirs:
        return []
    digest = hashlib.sha256()
    for path, recursive in dirs:
        digest.update(path.encode() + b"\0")
        try:
            files = list_audio_files(path, recursive)
        except FileNotFoundError:   # training names it; the stamp just differs
            files = []
        for name in files:
            digest.update(f"{name}\0{os.path.getsize(name)}\0".encode())
    return [AUGMENT_ITEM + digest.hexdigest()]


def config_inputs(config_path: str) -> List[str]:
    """The stamp items a config decides: itself, feature configs, augmentation, models."""
    config = load(config_path)
    items = [config_item(config)]
    feats = config.get("features") or {}
    if reads_feature_confs(config):
        items += list(conf_paths(feats).values())   # named, or the pipeline's defaults
    items += augmentation_item(config)
    shard_list = (config.get("data") or {}).get("shard_list")
    if shard_list:
        items.append(str(shard_list))
    frontend = (config.get("model") or {}).get("frontend") or {}
    if frontend.get("path"):   # a replaced checkpoint retrains
        items += [os.path.join(str(frontend["path"]), name) for name in FRONTEND_FILES]
    init_from = (config.get("training") or {}).get("init_from")
    if init_from:   # the pre-trained model and its run's marker (new after every rerun)
        items += [str(init_from), f"{os.path.dirname(str(init_from)) or '.'}/.done"]
    return items


def training_inputs(config_path: str, data_dir: str) -> List[str]:
    """The stamp items of a supervised training run (config first, then the data)."""
    return config_inputs(config_path) + data_inputs(data_dir)


def data_inputs(data_dir: str) -> List[str]:
    return [f"{data_dir}/{name}" for name in DATA_FILES]


def label(item: str) -> str:
    """How a message names a stamp item: its path, or what a string item stands for."""
    for prefix in (CONFIG_ITEM, AUGMENT_ITEM):
        if item.startswith(prefix):
            return prefix.rstrip(": ")
    return item


def item_fingerprints(items: Sequence[str]) -> Dict[str, str]:
    from pyutils.utils.markers import fingerprint
    return {label(item): fingerprint(item) for item in items}


def record_inputs(exp_dir: str, items: Sequence[str]) -> None:
    """``inputs.json``: each stamp item's fingerprint, for :func:`changed_inputs`."""
    from pyutils.utils.fileio import atomic_output
    with atomic_output(os.path.join(exp_dir, RECORD_FILE)) as out:
        json.dump(item_fingerprints(items), out, indent=1)


def changed_inputs(exp_dir: str, items: Sequence[str]) -> Optional[List[str]]:
    """The items whose fingerprint differs from the recorded run's (None: no record)."""
    try:
        with open(os.path.join(exp_dir, RECORD_FILE), encoding="utf-8") as handle:
            recorded = json.load(handle)
    except (OSError, ValueError):
        return None
    now = item_fingerprints(items)
    return [name for name in list(now) + [n for n in recorded if n not in now]
            if recorded.get(name) != now.get(name)]


def _flatten(config, prefix="") -> Dict[str, object]:
    flat = {}
    for key, value in (config or {}).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def changed_keys(old: dict, new: dict, ignore=None) -> List[str]:
    """Dotted keys whose values differ (added or removed keys included), less the
    runtime keys (:func:`runtime_keys` of ``new`` unless ``ignore`` is given)."""
    ignore = runtime_keys(new) if ignore is None else ignore
    a, b = _flatten(old), _flatten(new)
    return sorted(k for k in set(a) | set(b) if k not in ignore and a.get(k) != b.get(k))


def describe_changes(old: dict, new: dict, keys: List[str]) -> str:
    a, b = _flatten(old), _flatten(new)
    return ", ".join(f"{k}: {a.get(k, '(unset)')} -> {b.get(k, '(unset)')}" for k in keys)


if __name__ == "__main__":  # python -m pyutils.training.inputs CONFIG DATA: one item a line
    if len(sys.argv) != 3:
        sys.exit("usage: python -m pyutils.training.inputs <config.yaml> <train-data>")
    print("\n".join(training_inputs(sys.argv[1], sys.argv[2])))
