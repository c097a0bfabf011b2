"""The results page: tables generated from runs' json files, one table per question.

Every number comes from a run's files: ``results.json`` (stage 7: metrics,
speaker-bootstrap intervals, subgroup rows), ``train_summary.json`` (stage 3:
budget and training time), ``train_info.json`` / ``run_info.json``
(pyutils.cli.run_info: machine, date, commit, corpus, protocol, evaluation
set, calibration data).  :func:`collect` reads an experiment dir into rows
grouped by (protocol, evaluation set); :func:`render` writes a Markdown page
with, per group, the networks, the back-ends, label-free against supervised
training and the subgroups, each followed by generated sentences saying
which differences the 95 % intervals separate and which they do not.
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence, Tuple

from pyutils.utils.fileio import read_json

LABEL_FREE = ("moco", "dino")          # ssl methods (train_summary "loss" of label-free runs)
Key = Tuple[str, str]                  # (protocol, evaluation set)


def _json(path: str):
    return read_json(path) if os.path.isfile(path) else None


def _result_dirs(exp_dir: str) -> List[str]:
    """System dirs with results.json, and their evaluation-set subdirs that have one."""
    found = []
    for name in sorted(os.listdir(exp_dir)):
        system = os.path.join(exp_dir, name)
        if not os.path.isdir(system):
            continue
        for candidate in [system] + [os.path.join(system, s) for s in sorted(os.listdir(system))]:
            if os.path.isfile(os.path.join(candidate, "results.json")):
                found.append(candidate)
    return found


def collect(exp_dirs: Sequence[str]) -> Dict[Key, List[dict]]:
    """Rows of every result under ``exp_dirs``, enriched with their run's facts."""
    groups: Dict[Key, List[dict]] = {}
    for exp_dir in exp_dirs:
        for where in _result_dirs(exp_dir):
            model_dir = where
            if not any(os.path.isfile(os.path.join(where, f))
                       for f in ("train_summary.json", "config.yaml")):
                model_dir = os.path.dirname(where)
            summary = _json(os.path.join(model_dir, "train_summary.json")) or {}
            trained = _json(os.path.join(model_dir, "train_info.json")) or {}
            run = _json(os.path.join(where, "run_info.json")) or {}
            protocol = run.get("protocol") or run.get("corpus") or os.path.basename(
                os.path.normpath(exp_dir))
            eval_set = run.get("eval_set") or (
                os.path.basename(where) if where != model_dir else "eval")
            key = (protocol, eval_set)
            for row in _json(os.path.join(where, "results.json")):
                groups.setdefault(key, []).append({
                    **row, "model": summary.get("model"), "loss": summary.get("loss"),
                    "chunks": summary.get("chunks"), "epochs": summary.get("epochs"),
                    "utterances": summary.get("utterances"),
                    "train_seconds": summary.get("train_seconds"),
                    "machine": trained.get("machine") or run.get("machine"),
                    "date": (trained.get("date") or run.get("date") or "")[:10] or None,
                    "commit": trained.get("commit") or run.get("commit"),
                    "calibration": run.get("calibration"),
                    "trained_on": trained.get("corpus") or run.get("train_data"),
                    "exp_dir": exp_dir})
    return groups


# ------------------------------------------------------------------ cells

def _ci(row: dict, key: str, scale: float, fmt: str) -> str:
    value, ci = row.get(key), row.get(f"{key}_ci")
    if value is None:
        return "-"
    text = format(scale * value, fmt)
    return text + (f" [{format(scale * ci[0], fmt)}, {format(scale * ci[1], fmt)}]" if ci else "")


def _num(value, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _budget(row: dict) -> str:
    if row.get("chunks") is not None:
        epochs = f", {row['epochs']} epochs" if row.get("epochs") is not None else ""
        return f"{row['chunks']:,} chunks{epochs}"
    if row.get("utterances") is not None:
        return f"{row['utterances']:,} utterances"
    return "-"


def _run_cells(row: dict) -> str:
    minutes = None if row.get("train_seconds") is None else row["train_seconds"] / 60.0
    return (f"{_budget(row)} | {_num(minutes, '.1f')} | {row.get('machine') or '-'} | "
            f"{row.get('date') or '-'} | {row.get('commit') or '-'}")


RUN_HEADER = "budget | training (min) | machine | date | commit"


def _table(header: str, lines: List[str]) -> str:
    columns = header.count("|") + 1
    return (f"| {header} |\n|" + "---|" * columns + "\n"
            + "".join(f"| {line} |\n" for line in lines))


# ---------------------------------------------------------------- reading

def _overlaps(a, b) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def reading(rows: List[dict], label, lead: str = "Lowest EER") -> str:
    """Plain sentences: the best EER and which rows its 95 % interval separates."""
    rows = [r for r in rows if r.get("eer") is not None]
    if len(rows) < 2:
        return ""
    best = min(rows, key=lambda r: r["eer"])
    text = f"{lead}: {label(best)} ({100 * best['eer']:.2f} %)."
    if not best.get("eer_ci") or any(not r.get("eer_ci") for r in rows):
        return text + (" Some rows have no speaker-bootstrap interval, so no difference "
                       "in this table can be called a gain.\n\n")
    others = [r for r in rows if r is not best]
    apart = [label(r) for r in others if not _overlaps(r["eer_ci"], best["eer_ci"])]
    close = [label(r) for r in others if _overlaps(r["eer_ci"], best["eer_ci"])]
    if apart:
        text += f" Its 95 % interval separates it from {', '.join(apart)}."
    if close:
        text += (f" It is not separated from {', '.join(close)}: those intervals overlap, "
                 f"so those differences are not gains.")
    widths = [100 * (r["eer_ci"][1] - r["eer_ci"][0]) for r in rows]
    return text + f" Interval widths: {min(widths):.2f}-{max(widths):.2f} EER points.\n\n"


# ----------------------------------------------------------------- tables

def _full(rows: List[dict]) -> List[dict]:
    return [r for r in rows if not r.get("subgroup")]


def _label_free(row: dict) -> bool:
    name = f"{row.get('system', '')} {row.get('loss') or ''}".lower()
    return any(method in name for method in LABEL_FREE)


def _system_label(row: dict) -> str:
    return f"{row['system']} {row['backend']}"


def networks_table(rows: List[dict], backends: Sequence[str]) -> str:
    chosen = [r for r in _full(rows) if r["backend"] in backends and not _label_free(r)]
    if not chosen:
        return ""
    lines = [f"{r['system']} | {r.get('model') or '-'} | {r.get('loss') or '-'} | {r['backend']} | "
             f"{_ci(r, 'eer', 100, '.2f')} | {_ci(r, 'min_dcf_0.01', 1, '.3f')} | "
             f"{_num(r.get('cllr'), '.3f')} | {_run_cells(r)}" for r in chosen]
    return ("### Networks (supervised), back-ends " + ", ".join(backends) + "\n\n"
            + _table("system | network | loss | backend | EER (%) [95% CI] | minDCF(0.01) "
                     "[95% CI] | Cllr | " + RUN_HEADER, lines) + "\n"
            + "".join(reading([r for r in chosen if r["backend"] == b], _system_label)
                      for b in backends))


def backends_table(rows: List[dict]) -> str:
    full = _full(rows)
    if len({r["backend"] for r in full}) < 2:
        return ""
    lines = [f"{r['system']} | {r['backend']} | {_ci(r, 'eer', 100, '.2f')} | "
             f"{_ci(r, 'min_dcf_0.01', 1, '.3f')} | {_num(r.get('min_cllr'), '.3f')} | "
             f"{_num(r.get('cllr'), '.3f')} | {_num(r.get('act_dcf_0.01'), '.3f')} | "
             f"{_run_cells(r)}" for r in full]
    text = "".join(reading([r for r in full if r["system"] == s], _system_label)
                   for s in dict.fromkeys(r["system"] for r in full))
    return ("### Back-ends\n\n" + _table(
        "system | backend | EER (%) [95% CI] | minDCF(0.01) [95% CI] | minCllr | Cllr | "
        "actual DCF(0.01) | " + RUN_HEADER, lines) + "\n" + text)


def label_free_table(rows: List[dict], backends: Sequence[str]) -> str:
    full = [r for r in _full(rows) if r["backend"] in backends]
    free = [r for r in full if _label_free(r)]
    if not free:
        return ""
    models = {r.get("model") for r in free}
    chosen = [r for r in full if _label_free(r) or r.get("model") in models]
    lines = [f"{r['system']} | {'label-free' if r.get('loss') in LABEL_FREE else 'labels'} | "
             f"{r['backend']} | {_ci(r, 'eer', 100, '.2f')} | {_ci(r, 'min_dcf_0.01', 1, '.3f')} | "
             f"{_run_cells(r)}" for r in chosen]
    return ("### Label-free against supervised training\n\n" + _table(
        "system | training labels | backend | EER (%) [95% CI] | minDCF(0.01) [95% CI] | "
        + RUN_HEADER, lines) + "\n"
        + "".join(reading([r for r in chosen if r["backend"] == b], _system_label)
                  for b in backends))


def subgroups_table(rows: List[dict]) -> str:
    subs = [r for r in rows if r.get("subgroup")]
    if not subs:
        return ""
    groups = list(dict.fromkeys(r["subgroup"] for r in subs))
    cells: Dict[Tuple[str, str], Dict[str, dict]] = {}
    for r in subs:
        cells.setdefault((r["system"], r.get("scores_backend") or r["backend"]), {})[
            r["subgroup"]] = r
    lines = []
    for (system, backend), by_group in cells.items():
        first = next(iter(by_group.values()))
        lines.append(f"{system} | {backend} | " + " | ".join(
            _ci(by_group[g], "eer", 100, ".2f") if g in by_group else "-" for g in groups)
            + f" | {_run_cells(first)}")
    text = "".join(reading(list(by_group.values()), lambda r: r["subgroup"],
                           f"{system} {backend}, lowest EER in subgroup")
                   for (system, backend), by_group in cells.items())
    return ("### Subgroups (EER %, 95% CI)\n\n" + _table(
        "system | backend | " + " | ".join(groups) + " | " + RUN_HEADER, lines) + "\n" + text)


def render(groups: Dict[Key, List[dict]], backends: Sequence[str], out_dir: str) -> str:
    """The Markdown page: per (protocol, evaluation set) its tables and DET chart."""
    parts = ["# Results\n\nGenerated by `python -m pyutils.cli.make_results` from the runs' "
             "`results.json`, `train_summary.json` and `*_info.json`; do not edit by hand. "
             "EERs carry speaker-bootstrap 95 % intervals: a difference inside them is not "
             "a gain.\n"]
    for (protocol, eval_set), rows in sorted(groups.items()):
        trials = rows[0].get("num_trials")
        calib = {r.get("calibration") for r in rows} - {None}
        trained = {r.get("trained_on") for r in rows} - {None}
        parts.append(f"\n## {protocol}, {eval_set}" + (f" ({trials:,} trials)" if trials else "")
                     + "\n\n" + (f"Trained on: {', '.join(sorted(trained))}. " if trained else "")
                     + (f"Calibration: {', '.join(sorted(calib))}." if calib else "") + "\n\n")
        for table in (networks_table(rows, backends), backends_table(rows),
                      label_free_table(rows, backends), subgroups_table(rows)):
            if table:
                parts.append(table + "\n")
        det = _det_chart(rows[0]["exp_dir"], eval_set)
        if det:
            parts.append(f"DET curves of every system: ![DET curves]"
                         f"({os.path.relpath(det, out_dir)})\n")
    return "".join(parts)


def _det_chart(exp_dir: str, eval_set: str) -> Optional[str]:
    suffix = "" if eval_set == "eval" else f"_{eval_set}"
    path = os.path.join(exp_dir, f"det_all{suffix}.png")
    return path if os.path.isfile(path) else None
