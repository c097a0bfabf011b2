"""Stage 7's subgroup rows (so762-v1's adult-adult, child-child, ... lists) and the
per-evaluation-set results of a combined-corpora run in compare_systems."""
import json
import os

import numpy as np

from pyutils.cli import compare_systems, compute_metrics
from pyutils.metrics.eer import compute_eer


def write(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write("".join(line + "\n" for line in lines))


def make_trials(tmp_path):
    """6 speakers x 3 utterances; speakers a-c are 'children', scores noisier for them."""
    rng = np.random.default_rng(0)
    utts = [(f"{s}{n}", s) for s in "abcdef" for n in range(3)]
    trials, scores = [], []
    for i, (u, s) in enumerate(utts):
        for v, t in utts[i + 1:]:
            target = s == t
            noise = 2.0 if s in "abc" and t in "abc" else 0.5
            trials.append(f"{u} {v} {'target' if target else 'nontarget'}")
            scores.append(f"{u} {v} {float(target) * 2 + rng.normal(0, noise):.6f}")
    write(str(tmp_path / "trials"), trials)
    write(str(tmp_path / "scores" / "cosine" / "scores"), scores)
    child = [t for t in trials if t[0] in "abc" and t.split()[1][0] in "abc"]
    write(str(tmp_path / "trials_child-child"), child)
    write(str(tmp_path / "utt2spk"), [f"{u} {s}" for u, s in utts])
    return child, scores


def test_a_subgroup_row_has_the_metrics_of_its_trials_only(tmp_path):
    child, scores = make_trials(tmp_path)
    out = tmp_path / "exp"
    status = compute_metrics.main([
        "--trials", str(tmp_path / "trials"), "--system", "x", "--det-png", str(out / "det.png"),
        "--results-md", str(out / "results.md"), "--utt2spk", str(tmp_path / "utt2spk"),
        "--bootstrap", "20", "--subgroup", f"child-child={tmp_path / 'trials_child-child'}",
        "--scores", f"cosine={tmp_path / 'scores' / 'cosine' / 'scores'}"])
    assert status == 0
    rows = json.load(open(out / "results.json"))
    assert [r["backend"] for r in rows] == ["cosine", "cosine [child-child]"]
    sub = rows[1]
    assert sub["subgroup"] == "child-child" and sub["num_trials"] == len(child) == 36
    pairs = {tuple(t.split()[:2]) for t in child}
    labelled = {tuple(t.split()[:2]): t.split()[2] == "target" for t in child}
    values = [(float(s.split()[2]), labelled[tuple(s.split()[:2])]) for s in scores
              if tuple(s.split()[:2]) in pairs]
    tar = np.array([v for v, t in values if t])
    non = np.array([v for v, t in values if not t])
    assert sub["eer"] == compute_eer(tar, non)[0]
    assert sub["eer"] != rows[0]["eer"] and "eer_ci" in sub
    assert "cosine [child-child]" in (out / "results.md").read_text()


def test_a_subgroup_list_with_a_trial_outside_the_trials_is_an_error(tmp_path, capsys):
    make_trials(tmp_path)
    write(str(tmp_path / "bad"), ["a0 zz9 nontarget"])
    status = compute_metrics.main([
        "--trials", str(tmp_path / "trials"), "--system", "x", "--det-png", str(tmp_path / "d.png"),
        "--results-md", str(tmp_path / "r.md"), "--subgroup", f"g={tmp_path / 'bad'}",
        "--scores", f"cosine={tmp_path / 'scores' / 'cosine' / 'scores'}"])
    assert status == 1 and "'a0 zz9'" in capsys.readouterr().err


def test_compare_systems_reads_a_second_eval_set_with_its_model_summary(tmp_path):
    system = tmp_path / "exp" / "ecapa"
    write(str(system / "config.yaml"), ["features: {type: fbank}"])
    (system / "train_summary.json").write_text(json.dumps(
        {"loss": "aam", "parameters": 1000, "chunks": 64, "train_seconds": 120.0,
         "chunks_per_s": 0.5}))
    os.makedirs(system / "eval_asc")
    (system / "eval_asc" / "results.json").write_text(json.dumps([
        {"system": "ecapa", "backend": "cosine", "eer": 0.1, "min_dcf_0.01": 0.5,
         "min_dcf_0.001": 0.6, "num_trials": 10, "num_target": 2}]))
    out = tmp_path / "results_eval_asc.md"
    assert compare_systems.main(["--out", str(out), str(system / "eval_asc")]) == 0
    row = [line for line in out.read_text().splitlines() if "| ecapa |" in line][0]
    assert "| fbank | aam |" in row and "| 2.0 |" in row      # 120 s = 2.0 min
