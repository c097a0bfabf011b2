"""Held-out calibration speakers: move some training speakers into a calibration set.

Calibration fitted on trials of the training utterances is over-confident by
construction (the network has seen those speakers); stage 6 calibrates on
trials of speakers that neither the network nor the back-end saw.  Any
corpus can give some: :func:`hold_out_speakers` takes N speakers (spread
evenly over the C-sorted list, :func:`pyutils.data.corpus.spaced_speakers`)
or a given list out of the training dir into the calibration dir, and
refuses any speaker or utterance the evaluation dirs also hold.
"""
from __future__ import annotations

import logging
import os
import shutil
from typing import Iterable, List, Optional, Sequence

from pyutils.data.corpus import CorpusError, c_sorted, spaced_speakers
from pyutils.data.subsets import subset_data_dir
from pyutils.utils.fileio import read_table

logger = logging.getLogger(__name__)


def _utt2spk(data_dir: str) -> dict:
    path = os.path.join(data_dir, "utt2spk")
    return {utt: spk for _, (utt, spk) in read_table(path, 2, 2)}


def check_disjoint(named_dirs: Sequence[tuple]) -> None:
    """Error naming the first speaker or utterance that two of ``(name, dir)`` share."""
    tables = [(name, _utt2spk(d)) for name, d in named_dirs]
    for i, (first, a) in enumerate(tables):
        for second, b in tables[i + 1:]:
            for what, x, y in (("speaker", set(a.values()), set(b.values())),
                               ("utterance", set(a), set(b))):
                both = c_sorted(x & y)
                if both:
                    raise CorpusError(f"the {first} and {second} sets share {len(both)} "
                                      f"{what}(s), e.g. '{both[0]}': calibration and "
                                      f"evaluation need speakers nobody trained on")


def hold_out_speakers(train: str, calib: str, num: int = 0,
                      speakers: Optional[Iterable[str]] = None,
                      eval_dirs: Sequence[str] = ()) -> List[str]:
    """Move ``num`` speakers (or the listed ``speakers``) from ``train`` to ``calib``.

    ``train`` is rewritten without them (built beside it, swapped in) and
    ``calib`` holds exactly them; returns the held-out speakers.  A listed
    speaker that ``train`` lacks is an error, as is an overlap of the
    calibration set with any of ``eval_dirs``.
    """
    if (num > 0) == (speakers is not None):
        raise CorpusError("give either a number of speakers or a list, not both")
    train_speakers = set(_utt2spk(train).values())
    if speakers is not None:
        held = c_sorted(set(speakers))
        unknown = [s for s in held if s not in train_speakers]
        if unknown:
            raise CorpusError(f"calibration speaker '{unknown[0]}' is not a training speaker "
                              f"of {train} ({len(unknown)} unknown)")
        if not held or len(held) >= len(train_speakers):
            raise CorpusError(f"cannot hold out {len(held)} of {len(train_speakers)} speakers "
                              f"of {train} (at least one must stay)")
    else:
        held = spaced_speakers(train_speakers, num)
    rest = c_sorted(train_speakers - set(held))
    tmp = train.rstrip("/") + ".holdout.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(calib, ignore_errors=True)
    subset_data_dir(train, calib, spk_list=held)
    subset_data_dir(train, tmp, spk_list=rest)
    check_disjoint([("training", tmp), ("calibration", calib)]
                   + [(f"evaluation ({d})", d) for d in eval_dirs])
    shutil.rmtree(train)
    os.replace(tmp, train)
    logger.info("held out %d of %d training speakers for calibration into %s",
                len(held), len(train_speakers), calib)
    return held
