"""The results page's tables about systems on one protocol: networks, back-ends, QMF, PLDA
adaptation, subgroups, and thresholds across evaluation sets.

Every function takes the rows of one section (:func:`pyutils.metrics.report_runs.collect`)
and returns a Markdown table with its generated reading, or '' when no run answers its
question.  Back-end names are stage 6's ``<backend>[_adapt][_<norm>][_qmf]``.
"""
from __future__ import annotations

import re
from typing import Dict, List, Optional, Sequence, Tuple

from pyutils.metrics import report_text as T
from pyutils.metrics.report_runs import calibration_point


def full(rows: List[dict]) -> List[dict]:
    """Full-trial-list rows (not subgroups) of the runs that stand for their seed group."""
    return [r for r in rows if not r.get("subgroup") and r.get("seed_rep", True)]


def domain(row: dict) -> str:
    """in-domain | cross-corpus | combined, from the training corpora and the eval corpus
    (in-domain when either is unknown)."""
    train, target = row.get("train_corpora") or (), row.get("eval_corpus")
    if not train or not target:
        return "in-domain"
    if target not in train:
        return "cross-corpus"
    return "combined" if len(train) > 1 else "in-domain"


def family(row: dict) -> str:
    """label-free | pretrained | supervised: which training question a run answers."""
    training = row.get("training") or ""
    if training.startswith("label-free"):
        return "label-free"
    if training.startswith("pretrained"):
        return "pretrained"
    return "supervised"


def plain(backend: str) -> bool:
    return not re.search(r"(_adapt|_qmf)(_|$)", backend)


def by_system(rows: List[dict]) -> Dict[Tuple[str, str], Dict[str, dict]]:
    """{(system, model dir): {backend: row}} in order of appearance."""
    systems: Dict[Tuple[str, str], Dict[str, dict]] = {}
    for r in rows:
        systems.setdefault((r["system"], r["model_dir"]), {})[r["backend"]] = r
    return systems


def label(row: dict) -> str:
    return f"{row['system']} {row['backend']}"


def best(backends: Dict[str, dict]) -> Optional[dict]:
    scored = [r for r in backends.values() if r.get("eer") is not None]
    return min(scored, key=lambda r: r["eer"]) if scored else None


def networks_table(rows: List[dict], backends: Sequence[str]) -> str:
    """(a) One row per supervised network trained on this corpus: the fixed back-ends and
    its best one."""
    chosen = [r for r in full(rows) if family(r) == "supervised" and domain(r) == "in-domain"]
    systems = by_system(chosen)
    if not systems:
        return ""
    lines, bests = [], []
    for by_backend in systems.values():
        first, top = next(iter(by_backend.values())), best(by_backend)
        bests.append(top)
        lines.append(f"{first['system']} | {first.get('model') or '-'} | {first.get('loss') or '-'}"
                     f" | {first['training']} | {first.get('augmentation') or 'none'} | "
                     + " | ".join(T.eer(by_backend.get(b)) for b in backends)
                     + f" | {top['backend'] if top else '-'} | {T.eer(top)} | {T.dcf(top)} | "
                     f"{T.run_cells(first)}")
    header = ("system | network | loss | training | augmentation (on the fly) | "
              + " | ".join(f"{b} EER (%)" for b in backends)
              + " | best back-end | its EER (%) [95% CI] | its minDCF(0.01) [95% CI] | "
              + T.RUN_HEADER)
    text = "".join(T.reading([s[b] for s in systems.values() if b in s], label,
                             f"With {b}, lowest EER") for b in backends)
    text += T.reading([b for b in bests if b], label, "Each network with its best back-end, "
                      "lowest EER")
    return T.table("Networks (supervised, trained on this corpus)", header, lines, text)


def backends_table(rows: List[dict]) -> str:
    """(b) Each network's back-ends (with score normalisation; QMF, adaptation and runs
    trained on other corpora have their own tables)."""
    in_domain = [r for r in full(rows) if domain(r) == "in-domain"]
    systems = {k: {b: r for b, r in v.items() if plain(b)}
               for k, v in by_system(in_domain).items()}
    systems = {k: v for k, v in systems.items() if len(v) >= 2}
    if not systems:
        return ""
    lines = [f"{r['system']} | {r['backend']} | {T.eer(r)} | {T.dcf(r)} | "
             f"{T.num(r.get('min_cllr'), '.3f')} | {T.num(r.get('cllr'), '.3f')} | "
             f"{T.num(r.get('act_dcf_0.01'), '.3f')} | {T.run_cells(r)}"
             for v in systems.values() for r in v.values()]
    text = "".join(T.reading(list(v.values()), label, f"{k[0]}, lowest EER")
                   for k, v in systems.items())
    return T.table("Back-ends", "system | backend | EER (%) [95% CI] | minDCF(0.01) [95% CI] | "
                   "minCllr | Cllr | actual DCF(0.01) | " + T.RUN_HEADER, lines, text)


def _pairs(rows: List[dict], marker: str, strip) -> List[Tuple[dict, dict]]:
    """(without, with) row pairs of one system: ``marker`` in the back-end name or not."""
    pairs = []
    for by_backend in by_system(full(rows)).values():
        for name, after in by_backend.items():
            if marker in name and strip(name) in by_backend:
                pairs.append((by_backend[strip(name)], after))
    return pairs


def qmf_table(rows: List[dict]) -> str:
    """Calibration with quality measures (``_qmf``) against linear calibration of the same
    scores: Cllr and actual DCF (calibration), EER and minDCF (should not move)."""
    pairs = _pairs(rows, "_qmf", lambda b: re.sub(r"_qmf$", "", b))
    if not pairs:
        return ""
    lines = [f"{a['system']} | {b['backend']} | {T.num(a.get('cllr'), '.3f')} | "
             f"{T.num(b.get('cllr'), '.3f')} | {T.num(a.get('act_dcf_0.01'), '.3f')} | "
             f"{T.num(b.get('act_dcf_0.01'), '.3f')} | {T.num(b.get('min_cllr'), '.3f')} | "
             f"{T.eer(a)} | {T.eer(b)} | {b.get('calibration') or '-'} | {T.run_cells(a)}"
             for a, b in pairs]
    text = "".join(T.pair_reading(a, b, f"{a['system']} {a['backend']} with QMF")
                   for a, b in pairs)
    return T.table("Calibration with quality measures (QMF)",
                   "system | backend | Cllr linear | Cllr QMF | actual DCF(0.01) linear | "
                   "actual DCF(0.01) QMF | minCllr | EER (%) linear | EER (%) QMF | calibrated on"
                   " | " + T.RUN_HEADER,
                   lines, text + "\n")


def _adapt_facts(row: dict) -> str:
    facts = {k: v for k, v in (row.get("facts") or {}).items() if "adapt" in k}
    return "; ".join(f"{k}={v}" for k, v in facts.items()) or "-"


def corpora_text(value) -> str:
    return " + ".join(value) if value else "-"


def adaptation_table(rows: List[dict]) -> str:
    """Unsupervised PLDA adaptation (``_adapt``) against the same back-end unadapted."""
    pairs = _pairs(rows, "_adapt", lambda b: b.replace("_adapt", "", 1))
    if not pairs:
        return ""
    lines = [f"{a['system']} | {corpora_text(a.get('train_corpora'))} | "
             f"{a.get('eval_corpus') or '-'} | {_adapt_facts(b)} | {a['backend']} | "
             f"{T.eer(a)} | {T.eer(b)} | {T.dcf(a)} | {T.dcf(b)} | "
             f"{T.num(a.get('cllr'), '.3f')} | {T.num(b.get('cllr'), '.3f')} | {T.run_cells(a)}"
             for a, b in pairs]
    text = "".join(T.pair_reading(a, b, f"{a['system']} {a['backend']} adapted "
                                  f"({domain(a)})") for a, b in pairs)
    return T.table("PLDA adaptation to the evaluation domain",
                   "system | trained on | evaluated on | adaptation | backend | EER (%) "
                   "unadapted | EER (%) adapted | minDCF(0.01) unadapted | minDCF(0.01) "
                   "adapted | Cllr unadapted | Cllr adapted | " + T.RUN_HEADER, lines,
                   text + "\n")


def subgroups_table(rows: List[dict]) -> str:
    """(e) EER per subgroup trial list (e.g. so762-v1's adult-adult, child-child...)."""
    subs = [r for r in rows if r.get("subgroup") and r.get("seed_rep", True)]
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
            T.eer(by_group.get(g)) for g in groups) + f" | {T.run_cells(first)}")
    text = "".join(T.reading(list(by_group.values()), lambda r: r["subgroup"],
                             f"{system} {backend}, lowest EER in subgroup")
                   for (system, backend), by_group in cells.items())
    return T.table("Subgroups (EER %, 95% CI)", "system | backend | " + " | ".join(groups)
                   + " | " + T.RUN_HEADER, lines, text)


def thresholds_table(sections: Dict[str, List[dict]], backends: Sequence[str]) -> str:
    """A threshold set on calibration trials, used on each evaluation set of one model
    (models evaluated on several protocols): the EER threshold of the calibration trials
    beside the evaluation set's own (where stage 7 records ``eer_threshold``), and what the
    calibrated decisions cost there (actual - minimum DCF)."""
    by_model: Dict[Tuple[str, str], list] = {}
    for section, rows in sorted(sections.items()):
        for r in full(rows):
            if r["backend"] in backends:
                lost = (None if r.get("act_dcf_0.01") is None or r.get("min_dcf_0.01") is None
                        else r["act_dcf_0.01"] - r["min_dcf_0.01"])
                by_model.setdefault((r["model_dir"], r["backend"]), []).append((section, r, lost))
    by_model = {k: v for k, v in by_model.items() if len({s for s, _, _ in v}) >= 2}
    lines = []
    for seen in by_model.values():
        for section, r, lost in seen:
            point = calibration_point(r)
            own = r.get("eer_threshold")
            shift = None if point is None or own is None else own - point["threshold"]
            lines.append(f"{r['system']} | {r['backend']} | {section} | "
                         f"{r.get('calibration') or '-'} | "
                         f"{T.num(point and point['threshold'], '.3f')} | {T.num(own, '.3f')} | "
                         f"{T.num(shift, '+.3f')} | {T.num(r.get('min_dcf_0.01'), '.3f')} | "
                         f"{T.num(r.get('act_dcf_0.01'), '.3f')} | {T.num(lost, '.3f')} | "
                         f"{T.run_cells(r)}")
    if not lines:
        return ""
    text = ""
    for (_, backend), seen in by_model.items():
        text += (f"{seen[0][1]['system']} {backend}, one calibration ("
                 f"{seen[0][1].get('calibration') or '?'}) used on " + ", ".join(
                     f"{s} (actual - minimum DCF {T.num(lost, '.3f')}"
                     + (f", EER threshold {r['eer_threshold']:.3f}"
                        if r.get("eer_threshold") is not None else "") + ")"
                     for s, r, lost in seen)
                 + ". These costs have no interval: they are read as numbers, not ranked.\n")
    blank = any(r.get("eer_threshold") is None for v in by_model.values() for _, r, _ in v)
    return T.table("Thresholds: calibration trials against each evaluation set",
                   "system | backend | evaluated on | calibrated on | EER threshold, calibration"
                   " | EER threshold, evaluation | shift | minDCF(0.01) | actual DCF(0.01) | "
                   "actual - min | " + T.RUN_HEADER, lines, text + ("\n" if text else "")
                   + ("A '-' evaluation threshold: stage 7 did not record `eer_threshold` "
                      "in results.json.\n\n" if blank else ""))
