"""What a label-free training run depends on (its ``.done`` stamp), without labels.

Like :mod:`pyutils.training.inputs`, but over every data dir the run pools
(the training dir and the ``--unlabelled-data`` dirs), and without
``utt2spk``/``spk2utt``/``feats.scp``: the run reads the audio tables (or a shard
dir's ``shard.list``) only.
The upstream stages' markers in each dir are included, and the feature
configs the views are computed with (their defaults when the config names none).

    python -m pyutils.training.selfsup.inputs CONFIG DATA [UNLABELLED_DATA ...]
"""
from __future__ import annotations

import sys
from typing import List, Sequence

import yaml

from pyutils.features.pipeline import conf_paths

DATA_FILES = ("wav.scp", "segments", "shard.list", ".done", ".mfcc_vad.done")


def data_inputs(data_dirs: Sequence[str]) -> List[str]:
    return [f"{d}/{name}" for d in data_dirs for name in DATA_FILES]


def label_free_inputs(config_path: str, data_dirs: Sequence[str]) -> List[str]:
    """Stamp items: the config, each data dir's audio tables and markers, feature configs."""
    with open(config_path, encoding="utf-8") as handle:
        config = yaml.safe_load(handle) or {}
    items = [config_path] + data_inputs(data_dirs)
    return items + list(conf_paths(config.get("features")).values())


def is_label_free(config_path: str) -> bool:
    with open(config_path, encoding="utf-8") as handle:
        return bool((yaml.safe_load(handle) or {}).get("ssl"))


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: python -m pyutils.training.selfsup.inputs CONFIG DATA [UNLABELLED ...]")
    print("\n".join(label_free_inputs(sys.argv[1], sys.argv[2:])))
