"""What the recipe's stages read and write, from the network's training config, once.

    python -m pyutils.cli.recipe_plan [--eval-set NAME]... [--eval-data DIR] [--aug true]
        [--adapt DIR] CONFIG DATA EXP

Prints shell assignments (values quoted) that run.sh sources through
steps/resolve_data.sh, so that no stage decides them again:

* the network's input: ``features.type`` (mfcc | fbank | waveform), ``features.conf``,
  ``features.on_the_fly``, ``data.format`` (raw | shard), ``data.utts_per_shard``;
* the data dirs of each stage: the sets of stage 0 (``train``, ``evals``, ``calib``,
  ``adapt``), their feature dirs (fbank features live in copies named ``<set>_fbank``;
  MFCC features in the sets themselves; waveform networks read the audio), the set the
  network trains on (``nntrain``: with ``--aug true`` the training set plus augmented
  copies), and stage 3's ``train_data`` (stage 2's ``<nntrain>_no_sil``, the feature dir
  when features are made on the fly or the input is audio, or the shards).

The evaluation sets are ``--eval-data``/NAME (default DATA/NAME; cross-corpus runs
evaluate another corpus's set).  ``calib`` is ``DATA/calib`` whether or not stage 0
held out calibration speakers: a stage uses it when it exists.  A config the recipe cannot run is a one-line error.
"""
from __future__ import annotations

import argparse
import os
import shlex
import sys

import yaml

from pyutils.cli.config_get import lookup

FEATURE_TYPES = ("mfcc", "fbank", "waveform")


class PlanError(ValueError):
    """A training config or option combination the recipe cannot run."""


def plan(config: dict, config_path: str, data: str, exp: str, eval_sets: list[str],
         aug: bool = False, adapt: str = "", eval_data: str = "") -> dict:
    """{shell variable: value or list of values} for run.sh's stages."""
    feat_type = lookup(config, "features.type", "mfcc")
    on_the_fly = lookup(config, "features.on_the_fly", "false")
    utts_per_shard = lookup(config, "data.utts_per_shard", "1000")
    what = f"utts_per_shard in {config_path} (data.utts_per_shard)"
    if not utts_per_shard.isdigit():
        raise PlanError(f"{what} takes a whole number, got '{utts_per_shard}'")
    if int(utts_per_shard) < 1:
        raise PlanError(f"{what} must be at least 1, got {utts_per_shard}")
    if feat_type not in FEATURE_TYPES:
        raise PlanError(f"{config_path}: unknown features.type '{feat_type}'")
    train, calib = f"{data}/train", f"{data}/calib"
    evals = [f"{eval_data or data}/{name}" for name in eval_sets]
    # fbank features live in copies of the sets; MFCC ones in the sets; waveform: the audio
    suffix = "_fbank" if feat_type == "fbank" else ""
    ftrain = train + suffix
    precomputed = feat_type != "waveform" and on_the_fly != "true"
    if aug and not precomputed:
        raise PlanError(f"--aug true needs precomputed features; {config_path} augments "
                        f"online (its augmentation:)")
    nntrain = f"{ftrain}_combined" if aug else ftrain
    data_format = lookup(config, "data.format", "raw")
    shards = f"{exp}/shards/{os.path.basename(ftrain)}"
    if data_format == "shard":
        train_data = shards
    else:
        train_data = f"{nntrain}_no_sil" if precomputed else ftrain
    return {
        "feat_type": feat_type,
        "feat_conf": lookup(config, "features.conf", "conf/mfcc.conf"),
        "on_the_fly": on_the_fly,
        "data_format": data_format,
        "utts_per_shard": utts_per_shard,
        "input": "waveform" if feat_type == "waveform" else "feats",
        "train": train, "evals": evals, "calib": calib, "adapt": adapt,
        "ftrain": ftrain, "fevals": [e + suffix for e in evals], "fcalib": calib + suffix,
        "fadapt": adapt + suffix if adapt else "",
        "nntrain": nntrain,
        "make_train_feats": "true" if precomputed else "false",   # stage 2's CMN + VAD
        "shards": shards,
        "train_data": train_data,
    }


def shell_lines(values: dict) -> list[str]:
    """``name=value`` (a list as a bash array), every value quoted."""
    lines = []
    for name, value in values.items():
        if isinstance(value, list):
            lines.append(f"{name}=({' '.join(shlex.quote(v) for v in value)})")
        else:
            lines.append(f"{name}={shlex.quote(value)}")
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(prog="recipe_plan", description=__doc__.split("\n")[0])
    parser.add_argument("config")
    parser.add_argument("data", help="the recipe's data dir ($data)")
    parser.add_argument("exp", help="the recipe's output dir ($exp)")
    parser.add_argument("--eval-set", action="append", default=[], dest="eval_sets",
                        help="an evaluation set's name under DATA (repeatable; default eval)")
    parser.add_argument("--eval-data", default="", help="the dir of the evaluation sets "
                        "(default DATA)")
    parser.add_argument("--aug", choices=("true", "false"), default="false")
    parser.add_argument("--adapt", default="", help="the back-end's in-domain data dir")
    parser.add_argument("--prog", default="recipe_plan", help="the name in error messages")
    args = parser.parse_args(argv)
    try:
        with open(args.config, encoding="utf-8") as handle:
            config = yaml.safe_load(handle) or {}
    except (OSError, yaml.YAMLError) as err:
        sys.exit(f"{args.prog}: {args.config}: {err}")
    try:
        values = plan(config, args.config, args.data, args.exp, args.eval_sets or ["eval"],
                      aug=args.aug == "true", adapt=args.adapt, eval_data=args.eval_data)
    except PlanError as err:
        sys.exit(f"{args.prog}: {err}")
    print("\n".join(shell_lines(values)))


if __name__ == "__main__":
    main()
