"""Trial lists, score files and the results table.

Trials are ``utt1 utt2 target|nontarget`` lines and scores ``utt1 utt2 score``
lines.  Scores are joined to trials by the ``(utt1, utt2)`` pair; a trial
without a score, a score without a trial, or a repeated pair is an error that
names the file and line (Kaldi's compute_min_dcf.py also refuses unknown
pairs, but silently drops unscored trials; we do not).
"""
from __future__ import annotations

import json
import math
from typing import Callable, Dict, Iterable, List, Mapping, Tuple

import numpy as np

from pyutils.metrics.dcf import compute_min_dcf
from pyutils.metrics.eer import compute_eer
from pyutils.utils.fileio import TableError, atomic_output, read_table

Pair = Tuple[str, str]
_LABELS = {"target": True, "nontarget": False}
_LABEL_WHAT = "label (expected target|nontarget)"
_HEADER = ("| system | backend | EER (%) | minDCF (p=0.01) | minDCF (p=0.001) | trials |\n"
           "|---|---|---|---|---|---|\n")


def _read_pair_table(path: str, parse: Callable[[str], object],
                     what: str) -> Dict[Pair, Tuple[object, int]]:
    """Read ``utt1 utt2 value`` lines into ``{pair: (value, lineno)}``."""
    table: Dict[Pair, Tuple[object, int]] = {}
    for lineno, (utt1, utt2, field) in read_table(path, min_fields=3, max_fields=3):
        try:
            value = parse(field)
        except _NonFinite:
            raise TableError(path, lineno, f"bad {what} '{field}' for trial '{utt1} {utt2}': "
                                           f"NaN/inf (non-finite)") from None
        except ValueError:
            raise TableError(path, lineno, f"bad {what} '{field}'") from None
        if (utt1, utt2) in table:
            raise TableError(path, lineno, f"duplicate trial '{utt1} {utt2}' "
                             f"(first on line {table[(utt1, utt2)][1]})")
        table[(utt1, utt2)] = (value, lineno)
    return table


def _parse_label(field: str) -> bool:
    if field not in _LABELS:
        raise ValueError(field)
    return _LABELS[field]


class _NonFinite(ValueError):
    """A NaN or infinite score."""


def _parse_score(field: str) -> float:
    value = float(field)
    if not math.isfinite(value):
        raise _NonFinite(field)
    return value


def read_trials(path: str) -> List[Tuple[str, str, bool]]:
    """Return ``[(utt1, utt2, is_target)]`` in file order."""
    table = _read_pair_table(path, _parse_label, _LABEL_WHAT)
    return [(utt1, utt2, label) for (utt1, utt2), (label, _) in table.items()]


def read_score_lines(path: str) -> Dict[Pair, Tuple[float, int]]:
    """Return ``{(utt1, utt2): (score, line number)}`` in file order."""
    return _read_pair_table(path, _parse_score, "score")


def read_scores(path: str) -> Dict[Pair, float]:
    """Return ``{(utt1, utt2): score}`` in file order."""
    return {pair: score for pair, (score, _) in read_score_lines(path).items()}


class TrialList:
    """A parsed trial list that score files are joined against (parsed once)."""

    def __init__(self, path: str):
        self.path = path
        self._table = _read_pair_table(path, _parse_label, _LABEL_WHAT)

    def has(self, pair: Pair) -> bool:
        """Whether ``(utt1, utt2)`` is a trial of the list."""
        return pair in self._table

    def join(self, score_path: str) -> Tuple[np.ndarray, np.ndarray]:
        """Return ``(scores, labels)`` in score-file order.

        compute_min_dcf.py collects scores in score-file order and its stable
        sort keeps that order among tied scores, so we do the same.
        """
        values, labels, _ = self.join_with_pairs(score_path)
        return values, labels

    def join_with_pairs(self, score_path: str) -> Tuple[np.ndarray, np.ndarray, List[Pair]]:
        """:meth:`join` plus the ``(utt1, utt2)`` pairs in score-file order (one read
        of the score file where the caller needs both)."""
        scores = _read_pair_table(score_path, _parse_score, "score")
        for pair, (_, lineno) in self._table.items():
            if pair not in scores:
                raise TableError(self.path, lineno, f"trial '{pair[0]} {pair[1]}' "
                                 f"has no score in {score_path}")
        values = np.empty(len(scores))
        labels = np.empty(len(scores), dtype=np.int64)
        for i, (pair, (score, lineno)) in enumerate(scores.items()):
            if pair not in self._table:
                raise TableError(score_path, lineno, f"score for '{pair[0]} {pair[1]}' "
                                 f"which is not a trial in {self.path}")
            values[i] = score
            labels[i] = self._table[pair][0]
        return values, labels, list(scores)


def load_scored_trials(score_path: str, trials_path: str) -> Tuple[np.ndarray, np.ndarray]:
    """Join scores to trials; return ``(scores, labels)`` in score-file order."""
    return TrialList(trials_path).join(score_path)


def summarize(scores: np.ndarray, labels: np.ndarray) -> Dict[str, float]:
    """EER (fraction), minDCF at p=0.01 and p=0.001, and trial counts."""
    is_target = np.asarray(labels).astype(bool)
    eer, _ = compute_eer(scores[is_target], scores[~is_target])
    return {
        "eer": eer,
        "min_dcf_0.01": compute_min_dcf(scores, labels, 0.01)[0],
        "min_dcf_0.001": compute_min_dcf(scores, labels, 0.001)[0],
        "num_trials": int(len(scores)),
        "num_target": int(is_target.sum()),
    }


def evaluate(score_path: str, trials_path: str) -> Dict[str, float]:
    """Metrics of one score file against the trial list (see :func:`summarize`)."""
    return summarize(*load_scored_trials(score_path, trials_path))


def format_results_table(rows: Iterable[Mapping[str, object]]) -> str:
    """Markdown table; each row has system, backend, eer, min_dcf_*, num_trials."""
    lines = [f"| {row['system']} | {row['backend']} | {100 * row['eer']:.3f} | "
             f"{row['min_dcf_0.01']:.4f} | {row['min_dcf_0.001']:.4f} | {row['num_trials']} |\n"
             for row in rows]
    return _HEADER + "".join(lines)


def write_results_table(rows: Iterable[Mapping[str, object]], path: str) -> str:
    """Atomically write the Markdown results table; returns its text."""
    text = format_results_table(rows)
    with atomic_output(path) as out:
        out.write(text)
    return text


def write_results_json(rows: Iterable[Mapping[str, object]], path: str) -> None:
    """Atomically write the rows of the results table as a JSON list."""
    with atomic_output(path) as out:
        json.dump([dict(row) for row in rows], out, indent=1)
        out.write("\n")
