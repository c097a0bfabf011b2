"""Completion markers: one name scheme and one fingerprint for every stage and job.

**Name** (:func:`marker_path`): a marker is named after the output it vouches for.

* ``OUT/.done``: a directory one stage owns (``exp/<model>/`` of training, an
  embeddings, scores, back-end or shards dir, a stage-0 data dir, training
  features ``<data>_no_sil``);
* ``OUT.done``: a file, a job's output prefix or a directory rewritten whole
  (a trial list ``trials.done``, a calibration ``<system>.json.done``, the
  model's ``package.done``, a job's ``xvector.3.scp.done``);
* ``DIR/.<step>.done``: a step that adds files to a directory another stage
  owns (the features of a data dir, ``<data>/.mfcc_vad.done``).

**Content**: line 1 the :func:`fingerprint` of everything that decides the
output (the configs and option values the stage reads, its input tables, and
the markers of the upstream stages whose outputs it reads); line 2 a run id
new at every write, so when an upstream stage reran, the markers that list
its marker no longer match and the stages after it rerun too, even when the
rewritten archives keep their bytes; an optional line 3 a summary.  A stage
is complete only if its marker exists and records the same fingerprint
(:func:`matches`); it writes the marker atomically after every output is in
place (:func:`write`).  Shell scripts do both through
``python -m pyutils.cli.marker check|write MARKER ITEM...``.

**Renamed markers** (:func:`legacy_paths`): a back-end's ``.stamp`` (now ``.done``),
a calibration's ``<system>.done`` (now ``<system>.json.done``) and a trial
list's ``.<trials>.done`` (now ``<trials>.done``) are read once: a legacy
marker that records the same fingerprint is renamed to the new name, so the
stage is not redone.  Stages that list the back-end's marker among their
items (scoring, adaptation, packaging) rerun once, as its path changed.
"""
from __future__ import annotations

import hashlib
import os
import time
import uuid
from typing import Iterable, List, Optional

from pyutils.utils.fileio import write_lines

DONE = ".done"


def marker_path(output: str, step: Optional[str] = None,
                directory: Optional[bool] = None) -> str:
    """The marker of ``output`` under the scheme above: ``DIR/.<step>.done``
    with a ``step``, ``OUT/.done`` for a directory the stage owns, else
    ``OUT.done``.  ``directory`` None: whether ``output`` is an existing directory."""
    output = os.path.normpath(output)
    if step:
        return os.path.join(output, f".{step}{DONE}")
    if directory is None:
        directory = os.path.isdir(output)
    return os.path.join(output, DONE) if directory else output + DONE


def fingerprint(*items: str) -> str:
    """SHA-256 over the given items: a file's path and bytes, or the string itself.

    A job writes its inputs' fingerprint into its completion marker; a rerun
    trusts the outputs only if the fingerprint still matches, so changed
    inputs, options or models are never mistaken for finished work.
    """
    digest = hashlib.sha256()
    for item in items:
        item = str(item)
        digest.update(item.encode("utf-8") + b"\0")
        if os.path.isfile(item):
            with open(item, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


def write_marker(marker: str, stamp: str, info: str = "") -> None:
    """Write a completion marker: ``stamp``, then a run id unique to this run.

    Downstream stages fingerprint this file, so the run id makes every rerun
    of a stage visible to the stages after it.
    """
    run_id = f"run {time.strftime('%Y-%m-%dT%H:%M:%S')} {uuid.uuid4().hex}"
    write_lines(marker, [stamp, run_id] + ([info] if info else []))


def job_done(marker: str, stamp: str) -> bool:
    """True if ``marker`` exists and records ``stamp`` (see :func:`fingerprint`)."""
    try:
        with open(marker, encoding="utf-8") as handle:
            return handle.readline().strip() == stamp
    except FileNotFoundError:
        return False


def done_marker(directory: str, name: str = DONE) -> str:
    """Path of the completion marker of a stage writing into ``directory``."""
    return os.path.join(directory, name)


def is_done(directory: str, name: str = DONE) -> bool:
    """True when the stage writing ``directory`` completed (marker present)."""
    return os.path.exists(done_marker(directory, name))


def mark_done(directory: str, name: str = DONE, info: str = "") -> None:
    """Create the completion marker atomically, after all outputs are in place."""
    write_marker(done_marker(directory, name), info or "done")


def legacy_paths(marker: str) -> List[str]:
    """Where an older version wrote the marker now at ``marker`` (see the module doc)."""
    head, name = os.path.split(marker)
    if name == DONE:                                   # a back-end dir's .stamp
        return [os.path.join(head, ".stamp")]
    if name.endswith(".json" + DONE):                  # a calibration's <system>.done
        return [marker[:-len(".json" + DONE)] + DONE]
    if name.endswith(DONE) and not name.startswith("."):   # a trial list's .<trials>.done
        return [os.path.join(head, "." + name)]
    return []



def matches(marker: str, items: Iterable[str]) -> bool:
    """Whether ``marker`` records the fingerprint of ``items`` (the stage is complete).

    A legacy marker (:func:`legacy_paths`) recording the same fingerprint is
    renamed to ``marker`` first, so a renamed marker does not redo its stage."""
    stamp = fingerprint(*items)
    if job_done(marker, stamp):
        return True
    for old in legacy_paths(marker):
        if job_done(old, stamp):
            os.replace(old, marker)
            return True
    return False


def write(marker: str, items: Iterable[str], info: str = "") -> None:
    """Record that the outputs of ``items`` are complete (after every output is written)."""
    write_marker(marker, fingerprint(*items), info)
