"""One set of data dirs from the prepared data dirs of several corpora.

Training on several corpora at once (``run.sh --corpus asc,speechocean762``):
each corpus is prepared on its own (stage 0 of that corpus, its calibration
hold-out included), then its ids get the prefix ``<corpus>-`` on utterances
and speakers (Kaldi's ``copy_data_dir.sh --utt-prefix/--spk-prefix``), the
training and calibration sets are combined (``combine_data.sh``), and each
corpus keeps its own evaluation set and trials as ``eval_<corpus>`` (with
its subgroup lists ``trials_<group>``), so results stay per evaluation set.
"""
from __future__ import annotations

import glob
import logging
import os
import shutil
from typing import List, Sequence, Tuple

from pyutils.data.corpus import CorpusError
from pyutils.data.holdout import check_disjoint
from pyutils.data.subsets import combine_data, copy_data_dir
from pyutils.utils.fileio import read_table, write_lines

logger = logging.getLogger(__name__)


def _copy_extras(src: str, dst: str, prefix: str) -> None:
    """Prefix the tables copy_data_dir does not know: trials_<group> (both ids) and spk2age."""
    for path in sorted(glob.glob(os.path.join(src, "trials_*"))):
        write_lines(os.path.join(dst, os.path.basename(path)),
                    (f"{prefix}{a} {prefix}{b} {label}"
                     for _, (a, b, label) in read_table(path, 3, 3)))
    ages = os.path.join(src, "spk2age")
    if os.path.isfile(ages):
        write_lines(os.path.join(dst, "spk2age"),
                    (f"{prefix}{spk} {age}" for _, (spk, age) in read_table(ages, 2, 2)))


def combine_corpora(out: str, corpora: Sequence[Tuple[str, str]]) -> List[str]:
    """Write ``out/train``, ``out/calib`` (when any corpus has one) and
    ``out/eval_<name>`` from ``[(name, prepared dir)]``; returns the eval dirs."""
    names = [name for name, _ in corpora]
    if len(set(names)) != len(names) or len(names) < 2:
        raise CorpusError(f"combine_corpora: give two or more distinct corpora, got {names}")
    parts = os.path.join(out, ".parts")
    for old in [parts, os.path.join(out, "train"), os.path.join(out, "calib")] + \
            glob.glob(os.path.join(out, "eval_*")):
        shutil.rmtree(old, ignore_errors=True)
    trains, calibs, evals = [], [], []
    for name, src in corpora:
        prefix = f"{name}-"
        for part, into in (("train", trains), ("calib", calibs)):
            if os.path.isfile(os.path.join(src, part, "utt2spk")):
                into.append(os.path.join(parts, name, part))
                copy_data_dir(os.path.join(src, part), into[-1], prefix, prefix)
        if not os.path.isfile(os.path.join(src, "eval", "trials")):
            raise CorpusError(f"{src}/eval/trials: not found (is {name} prepared?)")
        evals.append(os.path.join(out, f"eval_{name}"))
        copy_data_dir(os.path.join(src, "eval"), evals[-1], prefix, prefix)
        _copy_extras(os.path.join(src, "eval"), evals[-1], prefix)
    if len(trains) != len(corpora):
        raise CorpusError(f"every corpus needs a train set: {trains}")
    combine_data(os.path.join(out, "train"), trains)
    sets = [("training", os.path.join(out, "train"))]
    if calibs:
        combine_data(os.path.join(out, "calib"), calibs)
        sets.append(("calibration", os.path.join(out, "calib")))
    check_disjoint(sets + [(f"evaluation ({os.path.basename(e)})", e) for e in evals])
    shutil.rmtree(parts)
    logger.info("combined %s into %s: train, %s%s", ", ".join(names), out,
                "calib, " if calibs else "", ", ".join(os.path.basename(e) for e in evals))
    return evals
