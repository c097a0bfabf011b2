"""DET curves (miss vs. false-alarm rate on normal-deviate axes) as a PNG.

Uses matplotlib's Agg canvas directly, so no display or global backend is
needed, and writes the PNG through :func:`atomic_output`.
"""
from __future__ import annotations

from typing import Dict, NamedTuple, Sequence, Tuple, Union

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy.special import ndtri

from pyutils.metrics.dcf import error_rates
from pyutils.metrics.eer import compute_eer
from pyutils.utils.fileio import atomic_output

_TICKS = np.array([0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6])
_LIMITS = ndtri([0.0005, 0.6])
_CLIP = 1e-6  # rates of exactly 0 or 1 would map to -inf/+inf
_GRID = 0.005  # deviate-space resolution used to thin long curves


def det_points(scores: Sequence[float], labels: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
    """Return ``(fa_deviates, miss_deviates)`` along the DET curve, thinned.

    A DET curve is monotone, so keeping one point per ``_GRID`` cell keeps its
    shape with a few thousand points even for millions of trials.  Being monotone,
    the curve visits each cell in one run of points: the first point of each run
    is the first point in its cell, found in one pass (no sort of the cells).
    """
    fnrs, fprs, _ = error_rates(scores, labels)
    x = ndtri(np.clip(fprs, _CLIP, 1 - _CLIP))
    y = ndtri(np.clip(fnrs, _CLIP, 1 - _CLIP))
    cell_x, cell_y = np.round(x / _GRID), np.round(y / _GRID)
    first = np.ones(x.size, dtype=bool)
    first[1:] = (cell_x[1:] != cell_x[:-1]) | (cell_y[1:] != cell_y[:-1])
    keep = np.flatnonzero(first)
    return x[keep], y[keep]


class DetCurve(NamedTuple):
    """What the plot needs of one system: its thinned points and its EER."""
    x: np.ndarray
    y: np.ndarray
    eer: float


def det_curve(scores: Sequence[float], labels: Sequence[int]) -> DetCurve:
    """The :class:`DetCurve` of scored trials (a few thousand points: keep this, not the
    millions of scores, when plotting many systems)."""
    x, y = det_points(scores, labels)
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    eer, _ = compute_eer(scores[labels], scores[~labels])
    return DetCurve(x, y, eer)


def plot_det(curves: Dict[str, Union[DetCurve, Tuple[Sequence[float], Sequence[int]]]],
             path: str) -> None:
    """Plot one DET curve per ``name -> (scores, labels)`` (or its :class:`DetCurve`)
    with its EER marked."""
    if not curves:
        raise ValueError("plot_det: no curves to plot")
    many = len(curves) > 6        # the legend goes beside the axes, styles cycle
    fig = Figure(figsize=(10, 6) if many else (6, 6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    styles = ("-", "--", ":", "-.")
    for index, (name, curve) in enumerate(curves.items()):
        x, y, eer = curve if isinstance(curve, DetCurve) else det_curve(*curve)
        line, = ax.plot(x, y, styles[(index // 10) % len(styles)], linewidth=1.2,
                        label=f"{name} (EER {100 * eer:.2f}%)")
        deviate = ndtri(np.clip(eer, _CLIP, 1 - _CLIP))
        ax.plot([deviate], [deviate], "o", color=line.get_color())
    tick_positions = ndtri(_TICKS)
    tick_labels = [f"{100 * t:g}" for t in _TICKS]
    ax.set_xticks(tick_positions, tick_labels)
    ax.set_yticks(tick_positions, tick_labels)
    ax.set_xlim(*_LIMITS)
    ax.set_ylim(*_LIMITS)
    ax.set_xlabel("False alarm rate (%)")
    ax.set_ylabel("Miss rate (%)")
    ax.grid(True, alpha=0.4)
    if many:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize="small")
    else:
        ax.legend(loc="upper right")
    with atomic_output(path, "wb") as out:
        fig.savefig(out, format="png", dpi=100, bbox_inches="tight")
