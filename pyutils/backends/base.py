"""The back-end interface, the registry of back-ends by config word, and prepared rows.

A back-end maps raw embeddings to prepared rows (:meth:`Backend.prepare`) and
scores pairs of prepared rows (:meth:`Backend.score`).  One whose score is
bilinear, ``score(i, j) = P[i] . P[j] + b[i] + b[j]``, says so in
:meth:`Backend.bilinear_form`; scoring then costs one row-wise dot product per
trial.  A new back-end is one class decorated with ``@register_backend("word")``
(its :meth:`Backend.from_dir` reads what stage 5 wrote) and that word in
``backends=`` of conf/backend.conf.
"""
from __future__ import annotations

import logging
from typing import Callable, Dict, Optional, Tuple, Type

import numpy as np

log = logging.getLogger(__name__)

# The files of a trained back-end dir (stage 5, Kaldi text format).
MEAN_FILE = "mean.vec"
LDA_FILE = "lda.mat"
PLDA_FILE = "plda"

_REGISTRY: Dict[str, Type["Backend"]] = {}


class Backend:
    """Base class: ``prepare`` rows once, ``score`` pairs of prepared rows."""

    name = "backend"

    def prepare(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, dtype=np.float64)

    def score(self, enroll: np.ndarray, test: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def bilinear_form(self, X: np.ndarray) -> Optional[Tuple[np.ndarray, Optional[np.ndarray]]]:
        """``(P, b)`` with ``score(prep[i], prep[j]) == P[i] . P[j] + b[i] + b[j]``
        for raw rows ``X``, ``b`` None when zero; None when not bilinear."""
        return None

    @classmethod
    def from_dir(cls, backend_dir: str, **options) -> "Backend":
        """Build from a stage-5 dir; ``options`` are every back-end's, take yours."""
        raise NotImplementedError


def register_backend(word: str) -> Callable[[Type[Backend]], Type[Backend]]:
    """Class decorator: ``word`` (in conf/backend.conf ``backends=``) builds this class."""
    def add(cls: Type[Backend]) -> Type[Backend]:
        if word in _REGISTRY and _REGISTRY[word] is not cls:
            raise ValueError(f"back-end '{word}' is registered twice")
        _REGISTRY[word] = cls
        cls.name = word
        return cls
    return add


def backend_names() -> Tuple[str, ...]:
    """The registered back-end words, sorted.  The built-in ones are registered by
    then: importing this module runs ``pyutils/backends/__init__.py`` first."""
    return tuple(sorted(_REGISTRY))


def load_backend(kind: str, backend_dir: str, smoothing: float = 0.0, **options) -> Backend:
    """Build the back-end registered as ``kind`` from a train_backend output dir.

    ``smoothing`` is PLDA's (``ivector-copy-plda --smoothing``); other options
    (e.g. ``cosine_mean="none"``) go to the class's :meth:`Backend.from_dir`.
    """
    names = backend_names()
    if kind not in _REGISTRY:
        raise ValueError(f"unknown backend '{kind}' (expected one of {', '.join(names)})")
    return _REGISTRY[kind].from_dir(backend_dir, smoothing=smoothing, **options)


def trusted_bilinear_form(backend, X: np.ndarray):
    """The back-end's bilinear form, or None when a subclass overrides ``score`` or
    ``prepare`` below the class that defined the form (the form would be stale)."""
    method = getattr(backend, "bilinear_form", None)
    if method is None:
        return None
    kind = type(backend)
    owner = next((c for c in kind.__mro__ if "bilinear_form" in vars(c)), None)
    if owner is None or any(getattr(kind, name) is not getattr(owner, name, None)
                            for name in ("score", "prepare")):
        return None
    return method(X)


class PreparedRows:
    """Embeddings prepared once for a back-end: its bilinear form ``(P, bias)`` when it
    has one, else the prepared rows (the generic path)."""

    def __init__(self, X: np.ndarray, backend, double: bool = True):
        self.backend, self.size, self._X = backend, len(X), X
        form = trusted_bilinear_form(backend, X)
        if form is not None and not _form_matches(backend, X, form):
            log.warning("%s: bilinear scores disagree with backend.score; using the "
                        "generic path", type(backend).__name__)
            form = None
        self.P = self.bias = self._prepared = None
        if form is not None:
            self.P, self.bias = form
            self.P = np.ascontiguousarray(self.P, dtype=np.float64)
            if self.bias is None and not double:        # cosine: single precision, as Kaldi
                self.P = self.P.astype(np.float32)

    @property
    def bilinear(self) -> bool:
        return self.P is not None

    @property
    def prepared(self) -> np.ndarray:
        """``backend.prepare`` of every row (computed once, for the generic path)."""
        if self._prepared is None:
            self._prepared = self.backend.prepare(self._X)
        return self._prepared

    def score_matrix(self, rows: np.ndarray, other: "PreparedRows") -> np.ndarray:
        """Scores (double) of ``rows`` of this set against every row of ``other``:
        ``len(rows) x other.size``, so callers pass blocks of rows."""
        if self.bilinear and other.bilinear:
            S = self.P[rows].astype(np.float64) @ other.P.astype(np.float64).T
            if self.bias is not None:
                S += self.bias[rows][:, None] + other.bias[None, :]
            return S
        mine, theirs = self.prepared, other.prepared
        return np.stack([np.asarray(self.backend.score(
            np.repeat(mine[r:r + 1], other.size, axis=0), theirs), dtype=np.float64)
            for r in np.asarray(rows).tolist()])


def _form_matches(backend, X: np.ndarray, form) -> bool:
    """Check the bilinear form against ``backend.score`` on a few pairs (guards refactors)."""
    P, bias = form
    rng = np.random.default_rng(0)
    i, j = rng.integers(0, len(X), 16), rng.integers(0, len(X), 16)
    want = np.asarray(backend.score(backend.prepare(X[i]), backend.prepare(X[j])),
                      dtype=np.float64)
    got = np.einsum("ij,ij->i", P[i], P[j]) + (0.0 if bias is None else bias[i] + bias[j])
    scale = max(1.0, float(np.max(np.abs(want))))
    return bool(np.all(np.abs(got - want) <= 1e-9 * scale))
