"""The training config that continues a trained or imported model: ``run.sh --init-from``.

    python -m pyutils.models.convert.adapt BASE.yaml CHECKPOINT OUT.yaml

OUT is BASE (the recipe: loss, data, optimiser, epochs, ``training.init_head``,
``training.freeze_encoder_epochs``; e.g. conf/adapt.yaml, conf/resnet34_lm.yaml) with the
``model`` and ``features`` sections of CHECKPOINT's own config (the network and the
front-end it was trained or imported with, so ``training.init_from`` fits) and
``training.init_from: CHECKPOINT``.  Written only when its content changes, so a rerun
keeps the training stamp.
"""
from __future__ import annotations

import argparse
import os
import sys

import yaml

from pyutils.utils.fileio import write_text_if_changed


def adapted_config(base_path: str, checkpoint_path: str) -> dict:
    from pyutils.training import checkpoint
    with open(base_path, encoding="utf-8") as handle:
        base = yaml.safe_load(handle) or {}
    if not os.path.isfile(checkpoint_path):
        raise ValueError(f"--init-from {checkpoint_path}: no such file (a final.pt of this "
                         f"toolkit, trained or written by import_model)")
    saved = checkpoint.load(checkpoint_path)
    if not isinstance(saved, dict) or "config" not in saved or "model" not in saved["config"]:
        raise ValueError(f"--init-from {checkpoint_path}: not a final.pt of this toolkit (no "
                         f"config.model); import other toolkits' models first (import_model)")
    theirs = saved["config"]
    config = dict(base)
    config["model"] = theirs["model"]
    config["features"] = theirs.get("features") or base.get("features")
    config["training"] = {**(base.get("training") or {}),
                          "init_from": os.path.abspath(checkpoint_path)}
    return config


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base")
    parser.add_argument("checkpoint")
    parser.add_argument("out")
    args = parser.parse_args(argv)
    try:
        text = yaml.safe_dump(adapted_config(args.base, args.checkpoint), sort_keys=False)
    except (OSError, ValueError, KeyError) as err:
        print(f"adapt: error: {err}", file=sys.stderr)
        return 1
    write_text_if_changed(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
