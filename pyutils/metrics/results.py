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
from typing import Callable, Dict, Iterable, List, Mapping, NamedTuple, Tuple

import numpy as np

from pyutils.metrics.dcf import compute_min_dcf
from pyutils.metrics.eer import compute_eer
from pyutils.metrics.pair_table import PairTable, read_pair_table
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


class ScoredTrials(NamedTuple):
    """Scores joined to their trials, in score-file order: ``first``/``second`` are
    utterance codes into ``names``."""
    scores: np.ndarray
    labels: np.ndarray
    first: np.ndarray
    second: np.ndarray
    names: List[str]


class TrialList:
    """A parsed trial list that score files are joined against (parsed once).

    Files in the common layout are read into integer-coded arrays
    (:mod:`pyutils.metrics.pair_table`); anything else, and every error, goes
    through the plain reader, which gives the same values or names the file and line.
    """

    def __init__(self, path: str):
        self.path = path
        self.table = read_pair_table(path, labels=True)
        self._plain = (_read_pair_table(path, _parse_label, _LABEL_WHAT)
                       if self.table is None else None)

    def _plain_table(self) -> Dict[Pair, Tuple[object, int]]:
        if self._plain is None:
            self._plain = _read_pair_table(self.path, _parse_label, _LABEL_WHAT)
        return self._plain

    def has(self, pair: Pair) -> bool:
        """Whether ``(utt1, utt2)`` is a trial of the list."""
        return pair in self._plain_table()

    def join(self, score_path: str) -> Tuple[np.ndarray, np.ndarray]:
        """Return ``(scores, labels)`` in score-file order.

        compute_min_dcf.py collects scores in score-file order and its stable
        sort keeps that order among tied scores, so we do the same.
        """
        joined = self.join_codes(score_path)
        return joined.scores, joined.labels

    def join_codes(self, score_path: str) -> ScoredTrials:
        """The scores of ``score_path`` with their labels and utterance codes."""
        if self.table is not None:
            scores = read_pair_table(score_path, labels=False, vocab=self.table.vocab)
            if scores is not None and len(scores) == len(self.table):
                rows = self.table.rows_of(scores)
                if rows is not None:
                    return ScoredTrials(scores.values, self.table.values[rows].astype(np.int64),
                                        scores.first, scores.second, self.table.vocab.names)
        values, labels, pairs = self.join_with_pairs(score_path)
        table = PairTable.from_pairs(score_path, pairs, values)
        return ScoredTrials(values, labels, table.first, table.second, table.vocab.names)

    def subset(self, path: str):
        """The trial list ``path``, checked to be a subset of this list (else an error),
        for :meth:`subset_mask`: sorted pair keys, or (plain reader) a set of pairs."""
        if self.table is not None:
            subset = read_pair_table(path, labels=True, vocab=self.table.vocab)
            if subset is not None and self.table.rows_of(subset) is not None:
                return subset.sorted_keys()[0]
        pairs = {(utt1, utt2) for utt1, utt2, _ in read_trials(path)}
        outside = [p for p in pairs if not self.has(p)]
        if outside:
            raise ValueError(f"{path}: {len(outside)} trial(s) are not in {self.path}, e.g. "
                             f"'{outside[0][0]} {outside[0][1]}'")
        return pairs

    def subset_mask(self, joined: ScoredTrials, subset) -> np.ndarray:
        """Which of ``joined``'s trials are in ``subset`` (from :meth:`subset`)."""
        if isinstance(subset, np.ndarray) and joined.names is self.table.vocab.names:
            wanted = joined.first.astype(np.int64) * len(joined.names) + joined.second
            pos = np.minimum(np.searchsorted(subset, wanted), subset.size - 1)
            return subset[pos] == wanted
        if isinstance(subset, np.ndarray):      # a plain join of a fast trial list
            names = np.asarray(self.table.vocab.names, dtype=object)
            first, second = np.divmod(subset, len(names))
            subset = set(zip(names[first].tolist(), names[second].tolist()))
        names = np.asarray(joined.names, dtype=object)
        return np.fromiter((pair in subset for pair in zip(names[joined.first].tolist(),
                                                           names[joined.second].tolist())),
                           dtype=bool, count=len(joined.first))

    def join_with_pairs(self, score_path: str) -> Tuple[np.ndarray, np.ndarray, List[Pair]]:
        """:meth:`join` plus the ``(utt1, utt2)`` pairs in score-file order, by the
        plain reader (Python objects per trial: small lists, and the errors)."""
        table = self._plain_table()
        scores = _read_pair_table(score_path, _parse_score, "score")
        for pair, (_, lineno) in table.items():
            if pair not in scores:
                raise TableError(self.path, lineno, f"trial '{pair[0]} {pair[1]}' "
                                 f"has no score in {score_path}")
        values = np.empty(len(scores))
        labels = np.empty(len(scores), dtype=np.int64)
        for i, (pair, (score, lineno)) in enumerate(scores.items()):
            if pair not in table:
                raise TableError(score_path, lineno, f"score for '{pair[0]} {pair[1]}' "
                                 f"which is not a trial in {self.path}")
            values[i] = score
            labels[i] = table[pair][0]
        return values, labels, list(scores)


def load_scored_trials(score_path: str, trials_path: str) -> Tuple[np.ndarray, np.ndarray]:
    """Join scores to trials; return ``(scores, labels)`` in score-file order."""
    return TrialList(trials_path).join(score_path)


def summarize(scores: np.ndarray, labels: np.ndarray) -> Dict[str, float]:
    """EER (fraction), minDCF at p=0.01 and p=0.001, and trial counts."""
    scores = np.asarray(scores, dtype=np.float64)
    order = np.argsort(scores, kind="stable")      # one stable sort serves all three
    scores, labels = scores[order], np.asarray(labels)[order]
    is_target = labels.astype(bool)
    eer, _ = compute_eer(scores[is_target], scores[~is_target], presorted=True)
    return {
        "eer": eer,
        "min_dcf_0.01": compute_min_dcf(scores, labels, 0.01, presorted=True)[0],
        "min_dcf_0.001": compute_min_dcf(scores, labels, 0.001, presorted=True)[0],
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
