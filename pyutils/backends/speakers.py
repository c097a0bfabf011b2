"""Speaker models: the mean embedding and its count, stored and scored as Kaldi does.

A speaker enrolled from ``n`` utterances is ``ivector-mean`` of their raw
embeddings and ``n`` (``num_utts.ark``).  PLDA scores it as
``ivector-plda-scoring --num-utts``: the mean goes through mean subtraction,
LDA and length norm, then Kaldi's TransformIvector and LogLikelihoodRatio with
``n`` (the more utterances, the more the model trusts the mean).  Cosine
centres and re-normalises the raw mean, so one stored model serves every
back-end (the mean of unit-length embeddings would differ from it only in
weighting loud and quiet clips; we keep Kaldi's raw mean).

The store is the format stage 4 writes beside the embeddings (one code path
for the recipe's speaker means and ``sv enroll``), readable by Kaldi tools::

    spk_xvector.ark, spk_xvector.scp   mean embedding per speaker (binary float vectors)
    num_utts.ark                       "speaker count" text lines (Kaldi ark,t)
    spk2utt                            the clips of each speaker (sv enroll)
    spk2speech_dur, spk2magnitude      total speech seconds, mean embedding magnitude (QMF)

:func:`write_store` writes the new store beside the old one and swaps the two
directories by two renames: a reader sees the old store or the new one, never a
mix (an update killed between the renames leaves the old store aside, and
:func:`read_store` puts it back).
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from pyutils.utils.fileio import TableError, read_table, write_lines

MEANS, NUM_UTTS, SPK2UTT = "spk_xvector", "num_utts.ark", "spk2utt"
QUALITY = {"dur": "spk2speech_dur", "mag": "spk2magnitude"}


def speaker_model(vectors: Sequence[np.ndarray]) -> Tuple[np.ndarray, int]:
    """``(mean, count)`` of utterance embeddings, as ivector-mean (float32 out)."""
    if len(vectors) == 0:
        raise ValueError("a speaker model needs at least one embedding")
    stacked = np.stack([np.ravel(v) for v in vectors]).astype(np.float64)
    return stacked.mean(axis=0).astype(np.float32), len(vectors)


@dataclass
class Speaker:
    mean: np.ndarray
    count: int
    utts: List[str] = field(default_factory=list)
    quality: Dict[str, float] = field(default_factory=dict)   # "dur", "mag"


def read_store(store: str) -> Dict[str, Speaker]:
    """The speakers of a store (or of a stage-4 embeddings dir with spk_xvector.scp).

    A missing store is an empty one (after restoring the old store an update
    interrupted between its two renames left aside); a speaker without a count is a
    TableError."""
    import glob

    import kaldiio
    left = sorted(glob.glob(os.path.abspath(store.rstrip("/")) + ".old-*"))
    if left and not os.path.isdir(store):
        os.replace(left[-1], store)
    ark = os.path.join(store, MEANS + ".ark")
    if not os.path.isfile(ark):
        return {}
    means = {k: np.asarray(v, dtype=np.float32).ravel() for k, v in kaldiio.load_ark(ark)}
    counts_path = os.path.join(store, NUM_UTTS)
    counts: Dict[str, int] = {}
    for lineno, (spk, n) in read_table(counts_path, 2, 2):
        if not n.isdigit() or int(n) < 1:
            raise TableError(counts_path, lineno, f"count '{n}' is not a positive integer")
        counts[spk] = int(n)
    speakers = {}
    for spk, mean in means.items():
        if spk not in counts:
            raise TableError(counts_path, None, f"speaker '{spk}' of {ark} has no count")
        speakers[spk] = Speaker(mean, counts[spk])
    spk2utt = os.path.join(store, SPK2UTT)
    if os.path.isfile(spk2utt):
        for _, (spk, *utts) in read_table(spk2utt, 2):
            if spk in speakers:
                speakers[spk].utts = utts
    for measure, name in QUALITY.items():
        path = os.path.join(store, name)
        if os.path.isfile(path):
            for _, (spk, value) in read_table(path, 2, 2):
                if spk in speakers:
                    speakers[spk].quality[measure] = float(value)
    return speakers


def write_store(store: str, speakers: Mapping[str, Speaker]) -> None:
    """Write ``speakers`` as the store ``store``, replacing it whole (see module doc)."""
    from pyutils.utils.arkio import ArkScpWriter
    store = os.path.abspath(store.rstrip("/"))
    tmp = f"{store}.tmp-{os.getpid()}"
    old = f"{store}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        keys = sorted(speakers)
        with ArkScpWriter(os.path.join(tmp, MEANS + ".ark"), os.path.join(tmp, MEANS + ".scp")) \
                as writer:
            for spk in keys:
                writer.write(spk, np.asarray(speakers[spk].mean, dtype=np.float32))
        scp = os.path.join(tmp, MEANS + ".scp")
        with open(scp) as src:       # point the scp at the ark's final place
            lines = [line.replace(os.path.join(tmp, MEANS + ".ark"),
                                  os.path.join(store, MEANS + ".ark"), 1) for line in src]
        write_lines(scp, (line.rstrip("\n") for line in lines))
        write_lines(os.path.join(tmp, NUM_UTTS), (f"{s} {speakers[s].count}" for s in keys))
        write_lines(os.path.join(tmp, SPK2UTT), (" ".join([s] + speakers[s].utts) for s in keys
                                                 if speakers[s].utts))
        for measure, name in QUALITY.items():
            write_lines(os.path.join(tmp, name),
                        (f"{s} {speakers[s].quality[measure]:.6g}" for s in keys
                         if measure in speakers[s].quality))
        if os.path.isdir(store):
            os.replace(store, old)
        os.replace(tmp, store)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------- scoring

def score_models(backend, means: np.ndarray, counts: Sequence[int], test: np.ndarray
                 ) -> np.ndarray:
    """Scores ``(speakers, tests)`` of speaker models (raw means and counts) against raw
    test embeddings; PLDA uses the counts (Kaldi ``--num-utts``), others the mean."""
    means = np.atleast_2d(np.asarray(means, dtype=np.float64))
    test = np.atleast_2d(np.asarray(test, dtype=np.float64))
    counts = np.asarray(counts, dtype=np.float64).ravel()
    if len(counts) != len(means):
        raise ValueError(f"{len(means)} speaker means but {len(counts)} counts")
    if hasattr(backend, "score_models"):
        return backend.score_models(means, counts, test)
    enroll, probe = backend.prepare(means), backend.prepare(test)
    return np.stack([np.asarray(backend.score(np.repeat(enroll[i:i + 1], len(probe), axis=0),
                                              probe), dtype=np.float64)
                     for i in range(len(enroll))])


def score_model_trials(trials_path: str, models: Mapping[str, np.ndarray],
                       counts: Mapping[str, int], tests: Mapping[str, np.ndarray], backend,
                       out_path: str) -> int:
    """``utt1 utt2 score`` lines (atomically, trial order) for trials whose ``utt1`` is a
    speaker model (``models`` means, ``counts``: num_utts.ark) and ``utt2`` a test
    embedding: ``ivector-plda-scoring --num-utts`` for PLDA.  Returns the trial count."""
    from pyutils.utils.fileio import atomic_output
    pairs = []
    for lineno, fields in read_table(trials_path, 2, 3):
        for key, table, what in ((fields[0], models, "speaker model"),
                                 (fields[1], tests, "test embedding")):
            if key not in table:
                raise TableError(trials_path, lineno, f"'{key}' has no {what}")
        if fields[0] not in counts:
            raise TableError(trials_path, lineno, f"speaker model '{fields[0]}' has no count "
                                                  f"in num_utts")
        pairs.append((fields[0], fields[1]))
    spk = sorted({a for a, _ in pairs})
    utt = sorted({b for _, b in pairs})
    row, col = {k: i for i, k in enumerate(spk)}, {k: i for i, k in enumerate(utt)}
    test_matrix = np.stack([np.ravel(tests[u]) for u in utt]) if utt else np.zeros((0, 0))
    S = np.zeros((len(spk), len(utt)))
    for start in range(0, len(spk), 256):         # bounded memory: 256 models at a time
        block = spk[start:start + 256]
        S[start:start + len(block)] = score_models(
            backend, np.stack([np.ravel(models[k]) for k in block]),
            [counts[k] for k in block], test_matrix)
    with atomic_output(out_path) as out:
        out.writelines(f"{a} {b} {S[row[a], col[b]]:.8g}\n" for a, b in pairs)
    return len(pairs)


def model_quality(durations: Sequence[float], embeddings: Sequence[np.ndarray]
                  ) -> Dict[str, float]:
    """A model's QMF measures: total speech seconds, mean embedding magnitude."""
    return {"dur": float(np.sum(durations)),
            "mag": float(np.mean([np.linalg.norm(np.ravel(e)) for e in embeddings]))}


def validate_name(name: Optional[str]) -> str:
    """A speaker name usable as a Kaldi key: non-empty, no whitespace."""
    if not name or any(c.isspace() for c in name):
        raise ValueError(f"speaker name '{name}' must be non-empty without whitespace "
                         f"(it is a Kaldi table key)")
    return name
