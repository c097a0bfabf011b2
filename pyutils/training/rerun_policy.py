"""Whether a training run goes on, starts over or is refused, before it starts.

Every training run (:class:`pyutils.training.run.Run`: supervised and
label-free alike) decides the same way:

* a finished run (``.done``) whose config changed is refused, naming the
  changed keys old -> new (``--force`` retrains); one whose other inputs
  changed (an upstream stage reran, a feature config) trains again from
  scratch, naming them, as every other stage reruns;
* epoch checkpoints written from other data are not resumed: the run starts
  over;
* a checkpoint written under another config is refused rather than resumed
  with a schedule it was not trained with.
"""
from __future__ import annotations

import logging
import os
from typing import Optional, Sequence, Tuple

import yaml

from pyutils.training import checkpoint
from pyutils.training.inputs import changed_inputs, changed_keys, describe_changes
from pyutils.utils.markers import matches

logger = logging.getLogger(__name__)

# (where no inputs.json says which input changed: a run of an older version)
DATA_CHANGED = ("the training data, an upstream stage (its marker or tables) or a feature "
                "config changed")


def read_recorded(path: str) -> Optional[dict]:
    """The config a run recorded (``exp/<model>/config.yaml``), or None."""
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def what_changed(recorded_path: str, config: dict, config_path: str,
                 items: Sequence[str] = ()) -> Tuple[bool, str]:
    """Why a finished run's marker no longer matches: (whether the config's keys
    changed, what changed: its keys old -> new, else the inputs that changed)."""
    recorded = read_recorded(recorded_path)
    if recorded is None:
        return True, "no config.yaml records the earlier run"
    keys = changed_keys(recorded, config)
    if keys:
        return True, f"{config_path} changed ({describe_changes(recorded, config, keys)})"
    changed = changed_inputs(os.path.dirname(recorded_path), items)
    if changed:
        return False, f"its inputs changed ({', '.join(changed)})"
    return False, DATA_CHANGED


def is_trained(marker: str, items: Sequence[str]) -> bool:
    """Whether the run is finished with these inputs: its ``.done`` records the
    fingerprint of ``items``.  ``steps/train.sh`` asks the same function, through
    ``python -m pyutils.cli.marker check`` with the same items."""
    return matches(marker, items)


def must_start_over(exp_dir: str, marker: str, config: dict, config_path: str,
                    data_stamp: str, force: bool, data_name: str = "the training data",
                    items: Sequence[str] = ()) -> bool:
    """``force``, or True where the run must start over; raises where it is refused.

    ``marker`` exists but did not match the inputs (``items``; the caller checked): a
    changed config is an error, changed data or feature configs a fresh start.  The
    newest epoch checkpoint of other data is a fresh start too."""
    recorded_path = os.path.join(exp_dir, "config.yaml")
    if os.path.exists(marker) and not force:
        config_changed, why = what_changed(recorded_path, config, config_path, items)
        if config_changed:
            raise ValueError(f"{exp_dir} is trained, but not with these inputs: {why}; "
                             f"rerun with --force true to retrain from scratch")
        logger.warning("%s: %s since it was trained; training again from scratch", exp_dir, why)
        return True
    newest = checkpoint.latest(os.path.join(exp_dir, "models")) if not force else None
    if newest and checkpoint.load(newest).get("data_stamp") not in (None, data_stamp):
        logger.warning("%s was written from other data (%s changed, or an upstream stage "
                       "reran); starting over", newest, data_name)
        return True
    return force


def check_resumable(state: dict, path: str, exp_dir: str, config: dict, config_path: str,
                    data_stamp: str) -> None:
    """Refuse to continue a checkpoint written under another config or other data."""
    theirs = state.get("config") or read_recorded(os.path.join(exp_dir, "config.yaml"))
    keys = changed_keys(theirs, config) if theirs is not None else []
    if keys:
        raise ValueError(f"cannot resume from {path}: {config_path} changed since it was "
                         f"written ({describe_changes(theirs, config, keys)}); restore the "
                         f"config, or rerun with --force true to start over")
    if state.get("data_stamp") not in (None, data_stamp):
        raise ValueError(f"cannot resume from {path}: the training data or an upstream stage "
                         f"changed since it was written; rerun with --force true to start over")
