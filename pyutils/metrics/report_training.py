"""The results page's tables about how a network was trained, on one protocol: label-free
against supervised, seeds, pretrained models (as-is / fine-tuned / from scratch), and the
training corpora (cross-corpus, combined).

Which table a run belongs to comes from its files (pyutils.metrics.report_runs): the
``ssl:`` block and ``training.init_from`` of its config.yaml, import_model's ``pretrained:``
block, ``training.seed``, and the training and evaluation corpora of train_info.json and
run_info.json.
"""
from __future__ import annotations

import statistics
from typing import Dict, List, Sequence

from pyutils.metrics import report_text as T
from pyutils.metrics.report_tables import corpora_text, domain, family, full


def _training_rows(rows: List[dict], backends: Sequence[str], which: str) -> List[dict]:
    """Rows of the ``which`` family (label-free or pretrained) and the supervised runs of
    the same networks, trained on this corpus, with the given back-ends."""
    chosen = [r for r in full(rows) if r["backend"] in backends and domain(r) == "in-domain"]
    models = {r.get("model") for r in chosen if family(r) == which}
    if not models:
        return []
    return sorted((r for r in chosen if r.get("model") in models
                   and family(r) in (which, "supervised")),
                  key=lambda r: (backends.index(r["backend"]), r.get("model") or "",
                                 family(r) == "supervised", r["training"]))


def _training_table(title: str, rows: List[dict], backends: Sequence[str]) -> str:
    lines = [f"{r['system']} | {r.get('model') or '-'} | {r['training']} | {r['backend']} | "
             f"{T.eer(r)} | {T.dcf(r)} | {T.run_cells(r)}" for r in rows]
    text = "".join(T.reading([r for r in rows if r["backend"] == b and r.get("model") == m],
                             lambda r: f"{r['system']} ({r['training']})",
                             f"{m} with {b}, lowest EER")
                   for b in backends for m in dict.fromkeys(r.get("model") for r in rows))
    return T.table(title, "system | network | training | backend | EER (%) [95% CI] | "
                   "minDCF(0.01) [95% CI] | " + T.RUN_HEADER, lines, text)


def label_free_table(rows: List[dict], backends: Sequence[str]) -> str:
    """(c) MoCo/DINO as-is and fine-tuned with labels, against supervised training of the
    same network."""
    chosen = _training_rows(rows, backends, "label-free")
    return _training_table("Label-free against supervised training", chosen, backends) \
        if chosen else ""


def pretrained_table(rows: List[dict], backends: Sequence[str]) -> str:
    """(f) An imported pretrained model as-is, fine-tuned on this corpus, and the same
    network trained from scratch here."""
    chosen = _training_rows(rows, backends, "pretrained")
    return _training_table("Pretrained: as-is, fine-tuned, from scratch", chosen, backends) \
        if chosen else ""


def seeds_table(rows: List[dict], backends: Sequence[str]) -> str:
    """(d) Runs that differ only by ``training.seed``: mean EER, the seed spread (sd,
    min-max) and the mean bootstrap interval of one run."""
    groups: Dict[tuple, List[dict]] = {}
    for r in rows:
        if not r.get("subgroup") and len(r.get("seeds") or ()) >= 2 and r["backend"] in backends:
            groups.setdefault((r["seed_key"], r["backend"]), []).append(r)
    lines, text = [], ""
    for (_, backend), members in groups.items():
        members = sorted(members, key=lambda r: (r.get("seed") is None, r.get("seed") or 0))
        eers = [r["eer"] for r in members if r.get("eer") is not None]
        if len(eers) < 2:
            continue
        widths = [100 * (r["eer_ci"][1] - r["eer_ci"][0]) for r in members if r.get("eer_ci")]
        widths = widths if len(widths) == len(members) else []
        rep = next((r for r in members if r.get("seed_rep")), members[0])
        minutes = [r["train_seconds"] / 60 for r in members if r.get("train_seconds") is not None]
        name = f"{rep['seed_name']} {backend}"
        lines.append(
            f"{rep['seed_name']} | {backend} | {', '.join(str(r.get('seed')) for r in members)} | "
            f"{100 * statistics.mean(eers):.2f} | {100 * statistics.stdev(eers):.2f} | "
            f"{100 * min(eers):.2f}-{100 * max(eers):.2f} | "
            f"{T.num(statistics.mean(widths) if widths else None, '.2f')} | "
            + "; ".join(f"{r.get('seed')}: {T.eer(r)}" for r in members)
            + f" | {T.budget(rep)} | {T.num(statistics.mean(minutes) if minutes else None, '.1f')}"
            f" | {rep.get('machine') or '-'} | {rep.get('date') or '-'} | "
            f"{rep.get('commit') or '-'}")
        text += T.seed_reading(name, eers, widths)
    if not lines:
        return ""
    return T.table("Seeds: the same run with other training seeds",
                   "system | backend | seeds | mean EER (%) | seed sd | seed min-max | mean "
                   "bootstrap CI width | each seed's EER (%) [95% CI] | budget (each) | "
                   "training (min, mean) | machine | date | commit", lines, text + "\n")


def _corpus_table(title: str, rows: List[dict], which: str, backends: Sequence[str]) -> str:
    """Rows of the ``which`` domain with the supervised in-domain rows of the same networks
    beside."""
    keep = [r for r in full(rows) if r["backend"].replace("_adapt", "", 1) in backends]
    models = {r.get("model") for r in keep if domain(r) == which}
    if not models:
        return ""
    chosen = sorted((r for r in keep if r.get("model") in models
                     and (domain(r) == which or (domain(r) == "in-domain"
                                                 and family(r) == "supervised"))),
                    key=lambda r: (r["backend"].replace("_adapt", "", 1), r.get("model") or "",
                                   domain(r) != "in-domain", r["backend"]))
    lines = [f"{r['system']} | {corpora_text(r.get('train_corpora'))} | "
             f"{r.get('eval_corpus') or '-'} | {r['backend']} | {T.eer(r)} | {T.dcf(r)} | "
             f"{T.num(r.get('cllr'), '.3f')} | "
             + ("; ".join(f"{k}={v}" for k, v in (r.get("facts") or {}).items()) or "-")
             + f" | {T.run_cells(r)}" for r in chosen]
    text = "".join(T.reading([r for r in chosen if r["backend"].replace("_adapt", "", 1) == b],
                             lambda r: f"{r['system']} {r['backend']} (trained on "
                                       f"{corpora_text(r.get('train_corpora'))})",
                             f"With {b}, lowest EER")
                   for b in backends)
    return T.table(title, "system | trained on | evaluated on | backend | EER (%) [95% CI] | "
                   "minDCF(0.01) [95% CI] | Cllr | other facts of the run | " + T.RUN_HEADER,
                   lines, text)


def cross_corpus_table(rows: List[dict], backends: Sequence[str]) -> str:
    """(g) Networks trained on another corpus than the evaluated one (with and without PLDA
    adaptation), beside the same networks trained on this corpus."""
    return _corpus_table("Cross-corpus: trained on another corpus", rows, "cross-corpus",
                         backends)


def combined_table(rows: List[dict], backends: Sequence[str]) -> str:
    """(h) Networks trained on several corpora (this one among them), beside the same
    networks trained on this corpus alone."""
    return _corpus_table("Combined training: several corpora", rows, "combined", backends)

