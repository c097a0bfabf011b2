"""The results page's cells and generated sentences.

Cells format a run's numbers (a value with its 95 % interval, the budget, the run's
machine, date and commit).  The readings are plain sentences computed from the numbers: which
differences the speaker-bootstrap intervals separate and which they do not.  A difference
inside the intervals is never called a gain; a number without an interval is never ranked.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence

RUN_HEADER = "budget | training (min) | machine | date | commit"


def ci(row: dict, key: str, scale: float, fmt: str) -> str:
    """``value [low, high]`` of ``row[key]`` and ``row[key + '_ci']``; '-' when absent."""
    value, interval = row.get(key), row.get(f"{key}_ci")
    if value is None:
        return "-"
    text = format(scale * value, fmt)
    if interval:
        text += f" [{format(scale * interval[0], fmt)}, {format(scale * interval[1], fmt)}]"
    return text


def eer(row: Optional[dict]) -> str:
    return "-" if row is None else ci(row, "eer", 100, ".2f")


def dcf(row: Optional[dict]) -> str:
    return "-" if row is None else ci(row, "min_dcf_0.01", 1, ".3f")


def num(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def budget(row: dict) -> str:
    """Chunks seen in training (and epochs); an imported model had no training here."""
    if row.get("kind") == "imported":
        return f"imported ({row.get('source') or '?'}), no training here"
    if row.get("chunks") is not None:
        n = row.get("epochs")
        epochs = "" if n is None else f", {n} epoch{'' if n == 1 else 's'}"
        return f"{row['chunks']:,} chunks{epochs}"
    if row.get("utterances") is not None:
        return f"{row['utterances']:,} utterances"
    return "-"


def run_cells(row: dict) -> str:
    minutes = None if row.get("train_seconds") is None else row["train_seconds"] / 60.0
    return (f"{budget(row)} | {num(minutes, '.1f')} | {row.get('machine') or '-'} | "
            f"{row.get('date') or '-'} | {row.get('commit') or '-'}")


def table(title: str, header: str, lines: Sequence[str], text: str = "") -> str:
    """A '### title' Markdown table followed by its reading."""
    columns = header.count("|") + 1
    return (f"### {title}\n\n| {header} |\n|" + "---|" * columns + "\n"
            + "".join(f"| {line} |\n" for line in lines) + "\n" + text)


def overlaps(a, b) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def _width(row: dict) -> float:
    return 100 * (row["eer_ci"][1] - row["eer_ci"][0])


def reading(rows: List[dict], label: Callable[[dict], str], lead: str = "Lowest EER") -> str:
    """Plain sentences: the lowest EER and which rows its 95 % interval separates."""
    rows = [r for r in rows if r.get("eer") is not None]
    if len(rows) < 2:
        return ""
    best = min(rows, key=lambda r: r["eer"])
    text = f"{lead}: {label(best)} ({100 * best['eer']:.2f} %)."
    if any(not r.get("eer_ci") for r in rows):
        return text + (" Some rows have no speaker-bootstrap interval, so no difference "
                       "in this table can be called a gain.\n\n")
    others = [r for r in rows if r is not best]
    apart = [label(r) for r in others if not overlaps(r["eer_ci"], best["eer_ci"])]
    close = [label(r) for r in others if overlaps(r["eer_ci"], best["eer_ci"])]
    if apart:
        text += f" Its 95 % interval separates it from {', '.join(apart)}."
    if close:
        text += (f" It is not separated from {', '.join(close)}: those intervals overlap, "
                 f"so those differences are not gains.")
    widths = [_width(r) for r in rows]
    return text + f" Interval widths: {min(widths):.2f}-{max(widths):.2f} EER points.\n\n"


def pair_reading(before: dict, after: dict, what: str) -> str:
    """One sentence on a paired change (QMF, adaptation, fine-tuning): EER before and after,
    separated by the intervals or not; Cllr and actual DCF said as numbers, not ranked
    unless they carry intervals too."""
    if before.get("eer") is None or after.get("eer") is None:
        return ""
    text = (f"{what}: EER {100 * before['eer']:.2f} % -> {100 * after['eer']:.2f} %")
    if before.get("eer_ci") and after.get("eer_ci"):
        text += (", intervals overlap: not a gain or a loss" if overlaps(
            before["eer_ci"], after["eer_ci"]) else ", separated by the 95 % intervals")
    else:
        text += " (no interval: not ranked)"
    for key, name in (("cllr", "Cllr"), ("act_dcf_0.01", "actual DCF(0.01)")):
        if before.get(key) is not None and after.get(key) is not None:
            text += f"; {name} {before[key]:.3f} -> {after[key]:.3f}"
            if before.get(f"{key}_ci") and after.get(f"{key}_ci"):
                text += (" (intervals overlap)" if overlaps(before[f"{key}_ci"],
                                                            after[f"{key}_ci"]) else
                         " (separated)")
    return text + ".\n"


def seed_reading(label: str, eers: Sequence[float], widths: Sequence[float]) -> str:
    """Seed spread against the bootstrap interval: which of the two dominates."""
    spread = 100 * (max(eers) - min(eers))
    width = sum(widths) / len(widths) if widths else None
    text = f"{label}: {len(eers)} seeds span {spread:.2f} EER points"
    if width is None:
        return text + " (no bootstrap interval to set beside it).\n"
    side = ("less than" if spread < width else "at least")
    return (text + f", {side} the mean width of one run's bootstrap interval "
            f"({width:.2f} points): " + ("the trial sampling, not the seed, bounds what this "
                                         "table can rank" if spread < width else
                                         "the seed moves the EER as much as the trials do; "
                                         "compare systems by their seed means") + ".\n")
