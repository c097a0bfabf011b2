"""The runs behind the results page: every ``results.json`` row with the facts of its run.

A system dir (``EXP/NAME``, or an evaluation-set subdir ``EXP/NAME/SET``) holds stage 7's
``results.json`` (metrics, speaker-bootstrap intervals, subgroup rows) and ``run_info.json``
(machine, date, commit, protocol, the evaluation corpus, training and calibration data, and
whatever other facts a stage records); its model dir holds ``train_summary.json`` (budget,
training time), ``train_info.json`` (when, where and on which corpus it was trained),
``config.yaml`` (the ``ssl:`` block of label-free training, ``training.seed``,
``training.init_from`` of fine-tuning, the ``pretrained:`` block import_model writes) and
``calibration/<backend>.json`` (the operating points of the calibration trials).
:func:`collect` reads them into flat rows; every field is read defensively, so a run of an
older or newer version (a field missing or added) still gives its row.
"""
from __future__ import annotations

import json
import os
import re
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import yaml

from pyutils.utils.fileio import read_json

LABEL_FREE = ("moco", "dino")
SEED_SUFFIX = re.compile(r"_seed\d+$")
# run_info.json keys the tables show in their own columns; the others are listed as facts
KNOWN_FACTS = {"date", "commit", "machine", "corpus", "eval_set", "protocol", "train_data",
               "calibration", "trials", "train_corpus", "train_corpora", "eval_corpus",
               "model_dir"}


def _json(path: str):
    return read_json(path) if os.path.isfile(path) else None


def _yaml(path: str) -> dict:
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        try:
            data = yaml.safe_load(handle)
        except yaml.YAMLError as err:
            raise ValueError(f"{path}: not valid YAML ({err})") from None
    return data if isinstance(data, dict) else {}


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


def _model_dir(where: str) -> str:
    model_files = ("train_summary.json", "config.yaml", "final.pt", "train_info.json")
    if any(os.path.isfile(os.path.join(where, f)) for f in model_files):
        return where
    return os.path.dirname(where)


def recipe_root(exp_dir: str) -> str:
    """The recipe dir above ``exp_dir`` (``ROOT/exp/<corpus>``): relative paths that runs
    record (``training.init_from``, ``model_dir``) start there."""
    return os.path.dirname(os.path.dirname(os.path.abspath(exp_dir)))


def _model_dir_of(exp_dir: str, where: str) -> str:
    """The model dir of a result dir: the ``model_dir`` that its run_info.json names (results
    written away from the model, e.g. another corpus's evaluation), else the dir itself or
    its parent (an evaluation-set subdir)."""
    named = (_json(os.path.join(where, "run_info.json")) or {}).get("model_dir")
    for candidate in ((os.path.join(recipe_root(exp_dir), str(named)), str(named))
                      if named else ()):
        if os.path.isdir(candidate):
            return os.path.abspath(candidate)
    return os.path.abspath(_model_dir(where))


def corpora(value) -> Tuple[str, ...]:
    """A corpus fact as a sorted tuple: 'asc+speechocean762', 'asc speechocean762' or a list."""
    if not value:
        return ()
    items = value if isinstance(value, (list, tuple)) else re.split(r"[+,\s]+", str(value))
    return tuple(sorted({str(i) for i in items if str(i)}))


def _first(*values):
    return next((v for v in values if v not in (None, "", [], {})), None)


class ModelFacts:
    """What one model dir says about its training (read once, shared by its rows)."""

    def __init__(self, model_dir: str):
        self.dir = model_dir
        self.config = _yaml(os.path.join(model_dir, "config.yaml"))
        self.summary = _json(os.path.join(model_dir, "train_summary.json")) or {}
        self.trained = _json(os.path.join(model_dir, "train_info.json")) or {}
        training = self.config.get("training") or {}
        self.seed = training.get("seed")
        if self.seed is None:
            match = re.search(r"_seed(\d+)$", os.path.basename(model_dir))
            self.seed = int(match.group(1)) if match else None
        self.init_from = _first(training.get("init_from"), self.summary.get("init_from"),
                                self.trained.get("init_from"))
        ssl = self.config.get("ssl") or {}
        self.method = _first(ssl.get("method") if isinstance(ssl, dict) else None,
                             self.summary.get("label_free"),
                             self.summary.get("loss") if self.summary.get("loss") in LABEL_FREE
                             else None)
        pretrained = _first(self.config.get("pretrained"), self.summary.get("pretrained"),
                            self.summary.get("imported"), self.trained.get("pretrained"),
                            _converted_from(os.path.join(model_dir, ".done")))
        self.source = _source_name(pretrained) if pretrained else None
        augment = self.config.get("augmentation") or {}
        self.augmentation = ", ".join(k for k, v in augment.items()
                                      if isinstance(v, dict) and v.get("prob", 1) > 0) or None

    @property
    def kind(self) -> str:
        """label-free | fine-tuned | imported | supervised (label-free first: a label-free
        run continued from another model is still label-free)."""
        if self.method:
            return "label-free"
        if self.init_from:
            return "fine-tuned"
        if self.source and not self.trained_here:
            return "imported"
        return "supervised"

    @property
    def trained_here(self) -> bool:
        """A training run wrote this summary (an importer's summary, if any, has no budget)."""
        return any(self.summary.get(k) is not None for k in ("chunks", "train_seconds",
                                                             "utterances_seen"))

    def seed_key(self, train_corpora: Tuple[str, ...]) -> str:
        """Identical for runs that differ only by ``training.seed`` (and their dir name)."""
        if not self.config:
            return SEED_SUFFIX.sub("", os.path.basename(self.dir))
        config = json.loads(json.dumps(self.config, default=str))
        (config.get("training") or {}).pop("seed", None)
        return json.dumps([config, train_corpora, self.trained.get("train_data")],
                          sort_keys=True)


def _converted_from(marker: str) -> Optional[str]:
    """The source import_model's ``.done`` names ('converted from SRC, ...'), if any."""
    if not os.path.isfile(marker):
        return None
    with open(marker, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith("converted from "):
                return line[len("converted from "):].split(",")[0].strip()
    return None


def _source_name(pretrained) -> str:
    """'resemblyzer' from import_model's ``pretrained: {converted_by: ...convert.resemblyzer}``."""
    if isinstance(pretrained, dict):
        name = _first(pretrained.get("source"), pretrained.get("name"),
                      pretrained.get("converted_by"), pretrained.get("from"))
    else:
        name = pretrained
    if isinstance(name, (list, tuple)):
        name = name[0] if name else "?"
    name = str(name)
    if "/" in name:                 # a path: its file with the folder naming the model
        parts = os.path.normpath(name).split(os.sep)
        name = "/".join(parts[-2:]) if "." in parts[-1] else parts[-1]
    return name.rsplit(".", 1)[-1] if name.startswith("pyutils.") else name


def _parent(facts: ModelFacts, exp_dir: str, known: Dict[str, ModelFacts]) -> Optional[ModelFacts]:
    """The model dir that ``training.init_from`` names: from the recipe root above
    ``exp_dir`` (exp/<corpus>) or as written (absolute, or from the current dir), else the
    collected model dir whose path ends like it."""
    path = str(facts.init_from)
    target = os.path.dirname(path) if path.endswith(".pt") else path
    for candidate in (os.path.join(recipe_root(exp_dir), target), target):
        if os.path.isdir(candidate):
            candidate = os.path.abspath(candidate)
            return known.get(candidate) or ModelFacts(candidate)
    tail = os.path.normpath(target).split(os.sep)[-2:]
    for where, other in known.items():
        if where.split(os.sep)[-len(tail):] == tail:
            return other
    return None


def training_label(facts: ModelFacts, parent: Optional[ModelFacts]) -> str:
    """How the network was trained, in words: the label-free and pretrained tables' key."""
    kind = facts.kind
    if kind == "label-free":
        return f"label-free ({facts.method}), as-is" + (
            f", started from {os.path.basename(parent.dir) if parent else facts.init_from}"
            if facts.init_from else "")
    if kind == "imported":
        return f"pretrained ({facts.source}), as-is"
    if kind == "supervised":
        return "supervised, from scratch"
    if parent is None:
        return f"fine-tuned from {facts.init_from}"
    if parent.kind == "label-free":
        return f"label-free ({parent.method}), fine-tuned with labels"
    if parent.kind == "imported":
        return f"pretrained ({parent.source}), fine-tuned"
    return f"{os.path.basename(parent.dir)}, fine-tuned"


def collect(exp_dirs: Sequence[str]) -> Dict[str, List[dict]]:
    """Rows of every result under ``exp_dirs``, grouped by protocol (else evaluation set)."""
    places = [(exp_dir, where, _model_dir_of(exp_dir, where))
              for exp_dir in exp_dirs for where in _result_dirs(exp_dir)]
    known = {model_dir: ModelFacts(model_dir) for _, _, model_dir in places}
    groups: Dict[str, List[dict]] = {}
    for exp_dir, where, model_dir in places:
        facts = known[model_dir]
        parent = _parent(facts, exp_dir, known) if facts.init_from else None
        run = _json(os.path.join(where, "run_info.json")) or {}
        summary, trained = facts.summary, facts.trained
        eval_set = run.get("eval_set") or (
            os.path.basename(where) if os.path.abspath(where) != model_dir else "eval")
        eval_set = str(eval_set)
        eval_corpus = _first(run.get("eval_corpus"), run.get("corpus"))
        train = corpora(_first(run.get("train_corpora"), run.get("train_corpus"),
                               trained.get("train_corpora"), trained.get("train_corpus"),
                               trained.get("corpus")))
        section = _first(run.get("protocol"), eval_corpus and f"{eval_corpus}, {eval_set}",
                         f"{os.path.basename(os.path.normpath(exp_dir))}, {eval_set}")
        base = {
            "model": _first(summary.get("model"), (facts.config.get("model") or {}).get("name")),
            "loss": summary.get("loss"), "chunks": summary.get("chunks"),
            "epochs": summary.get("epochs"), "utterances": summary.get("utterances"),
            "train_seconds": summary.get("train_seconds"),
            "machine": _first(trained.get("machine"), run.get("machine")),
            "date": (_first(trained.get("date"), run.get("date")) or "")[:10] or None,
            "commit": _first(trained.get("commit"), run.get("commit")),
            "calibration": run.get("calibration"), "kind": facts.kind,
            "training": training_label(facts, parent), "seed": facts.seed,
            "augmentation": facts.augmentation,
            "seed_key": facts.seed_key(train), "train_corpora": train,
            "eval_corpus": eval_corpus, "eval_set": eval_set, "train_data": run.get("train_data"),
            "facts": {k: v for k, v in run.items() if k not in KNOWN_FACTS and v not in ("", None)},
            "model_dir": model_dir, "exp_dir": exp_dir, "source": facts.source}
        for row in _results(os.path.join(where, "results.json")):
            groups.setdefault(section, []).append({**row, **base})
    for rows in groups.values():
        mark_seed_groups(rows)
    return groups


def _results(path: str) -> List[dict]:
    """Stage 7's rows; a row without its system or back-end is an error naming the file."""
    rows = read_json(path)
    if not isinstance(rows, list):
        raise ValueError(f"{path}: expected a list of result rows")
    for number, row in enumerate(rows, 1):
        missing = [k for k in ("system", "backend") if not isinstance(row, dict) or k not in row]
        if missing:
            raise ValueError(f"{path}: row {number} has no '{missing[0]}'")
    return rows


def mark_seed_groups(rows: Iterable[dict]) -> None:
    """``seeds``: the seeds of the runs sharing a row's seed key (several = a seed group);
    ``seed_rep``: the row that stands for its group in the other tables (the dir without a
    ``_seedN`` suffix, else the lowest seed); runs repeated with the same seed all stand."""
    rows = list(rows)
    members: Dict[str, Dict[str, Optional[int]]] = {}
    for row in rows:
        members.setdefault(row["seed_key"], {})[row["model_dir"]] = row.get("seed")
    for row in rows:
        group = members[row["seed_key"]]
        row["seeds"] = sorted({s for s in group.values() if s is not None})
        plain = [d for d in group if not SEED_SUFFIX.search(d)]
        rep = min(plain or group, key=lambda d: (group[d] is None, group[d] or 0, d))
        row["seed_rep"] = len(row["seeds"]) < 2 or row["model_dir"] == rep
        row["seed_name"] = SEED_SUFFIX.sub("", os.path.basename(rep))


def calibration_point(row: dict, point: str = "eer") -> Optional[dict]:
    """The operating point ``point`` of the row's calibration (``calibration/<backend>.json``,
    else of its back-end without the ``_qmf`` suffix), with the file's ``trained_on``."""
    backend = row.get("scores_backend") or row["backend"]
    for name in (backend, re.sub(r"_qmf$", "", backend)):
        data = _json(os.path.join(row["model_dir"], "calibration", f"{name}.json"))
        if isinstance(data, dict) and point in (data.get("operating_points") or {}):
            return {**data["operating_points"][point], "trained_on": data.get("trained_on")}
    return None
