"""EER, minDCF, trial/score files, results table, DET plot and compute_metrics CLI."""
import os

import numpy as np
import pytest

from pyutils.cli import compute_metrics
from pyutils.metrics.dcf import compute_min_dcf, error_rates
from pyutils.metrics.det import det_points, plot_det
from pyutils.metrics.eer import compute_eer
from pyutils.metrics.results import (evaluate, load_scored_trials, read_scores, read_trials,
                                     write_results_table)
from pyutils.utils.fileio import TableError


def write(path, text):
    path.write_text(text)
    return str(path)


# ---------------------------------------------------------------- EER

@pytest.mark.parametrize("tar, non, eer, threshold", [
    ([3, 4, 5], [0, 1, 2], 0.0, 3.0),                    # perfectly separated
    ([1, 1, 1, 1], [1, 1, 1, 1], 0.75, 1.0),             # fully overlapping: (T-1)/T cap
    ([0, 1], [2, 3], 0.5, 1.0),                          # reversed: capped at (T-1)/T
    ([0.9, 0.2, 0.7, 0.5], [0.8, 0.1, 0.6, 0.3, 0.4], 0.5, 0.7),  # stops at position 2
    ([1, 2, 2, 3], [0, 2, 2, 2], 0.75, 3.0),             # ties are not "below"
    ([5], [1], 0.0, 5.0),                                # a single target never loops
])
def test_eer_hand_computed(tar, non, eer, threshold):
    got_eer, got_threshold = compute_eer(tar, non)
    assert got_eer == eer
    assert got_threshold == pytest.approx(threshold, rel=1e-6)


def kaldi_eer_bruteforce(tar, non):
    """Kaldi's rule restated: first sorted target t_p (p < T-1) such that at most
    floor(N * p / T) non-target scores are >= t_p; EER = p / T."""
    tar, non = np.sort(np.float32(tar)), np.float32(non)
    for p in range(len(tar) - 1):
        if np.sum(non >= tar[p]) <= (len(non) * p) // len(tar):
            return p / len(tar), float(tar[p])
    return (len(tar) - 1) / len(tar), float(tar[-1])


def test_eer_matches_bruteforce_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(200):
        tar = rng.integers(0, 8, rng.integers(1, 15)) + 2.0
        non = rng.integers(0, 8, rng.integers(1, 15)).astype(float)
        assert compute_eer(tar, non) == kaldi_eer_bruteforce(tar, non)


def test_eer_close_to_threshold_sweep_crossing():
    rng = np.random.default_rng(1)
    tar, non = rng.normal(2, 1, 3000), rng.normal(0, 1, 5000)
    thresholds = np.sort(np.concatenate([tar, non]))
    p_miss = np.searchsorted(np.sort(tar), thresholds) / tar.size          # tar < t
    p_fa = 1 - np.searchsorted(np.sort(non), thresholds) / non.size        # non >= t
    i = np.argmin(np.abs(p_miss - p_fa))
    eer, _ = compute_eer(tar, non)
    assert abs(eer - (p_miss[i] + p_fa[i]) / 2) < 2 / tar.size + 2 / non.size


def test_eer_empty_is_error():
    with pytest.raises(ValueError, match="no target"):
        compute_eer([], [1.0])
    with pytest.raises(ValueError, match="no non-target"):
        compute_eer([1.0], [])


# ---------------------------------------------------------------- minDCF

def test_min_dcf_hand_computed():
    scores, labels = [0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]
    # sorted: 0.1(n) 0.35(t) 0.4(n) 0.8(t); fnr = [0, .5, .5, 1]; fpr = [.5, .5, 0, 0]
    # p=0.01: c_det = [.495, .5, .005, .01] -> .005 / c_def .01
    assert compute_min_dcf(scores, labels, 0.01) == (pytest.approx(0.5), 0.4)
    # p=0.5: c_det = [.25, .5, .25, .5]; the first minimum wins
    assert compute_min_dcf(scores, labels, 0.5) == (pytest.approx(0.5), 0.1)
    # c_miss=10, p=0.01: c_det = .1 fnr + .99 fpr = [.495, .545, .05, .1]; c_def = .1
    assert compute_min_dcf(scores, labels, 0.01, c_miss=10) == (pytest.approx(0.5), 0.4)


def test_min_dcf_perfectly_separated_is_zero():
    assert compute_min_dcf([0, 1, 2, 3], [0, 0, 1, 1], 0.01) == (0.0, 1.0)


def test_min_dcf_ties_follow_input_order():
    # All scores tie: the stable sort keeps input order, so order changes the answer.
    # [t n t n]: fnr=[.5,.5,1,1], fpr=[1,.5,.5,0] -> min c_det .01 -> 1.0
    assert compute_min_dcf([1, 1, 1, 1], [1, 0, 1, 0], 0.01)[0] == pytest.approx(1.0)
    # [n t n t]: fnr=[0,.5,.5,1], fpr=[.5,.5,0,0] -> min c_det .005 -> 0.5
    assert compute_min_dcf([1, 1, 1, 1], [0, 1, 0, 1], 0.01)[0] == pytest.approx(0.5)


def test_min_dcf_matches_threshold_sweep_without_ties():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 2, 400)
    scores = rng.normal(labels * 1.5, 1.0)
    tar, non = scores[labels == 1], scores[labels == 0]
    for p in (0.01, 0.001, 0.3):
        best = min(p * np.mean(tar <= t) + (1 - p) * np.mean(non > t) for t in scores)
        assert compute_min_dcf(scores, labels, p)[0] == pytest.approx(best / min(p, 1 - p))


def test_min_dcf_errors():
    with pytest.raises(ValueError, match="p_target"):
        compute_min_dcf([0, 1], [0, 1], 1.0)
    with pytest.raises(ValueError, match="no target"):
        compute_min_dcf([0, 1], [0, 0], 0.01)
    with pytest.raises(ValueError, match="labels"):
        error_rates([0, 1], [0, 2])


# ---------------------------------------------------------------- files and table

TRIALS = "a b target\na c nontarget\nb c nontarget\nc d target\n"
SCORES = "a b 2.0\na c 0.5\nb c -1\nc d 0.1\n"


def test_read_trials_and_scores(tmp_path):
    assert read_trials(write(tmp_path / "t", TRIALS))[:2] == [("a", "b", True), ("a", "c", False)]
    assert read_scores(write(tmp_path / "s", SCORES))[("b", "c")] == -1.0


@pytest.mark.parametrize("text, message", [
    ("a b target\na c maybe\n", "t:2: bad label"),
    ("a b target\na c\n", "t:2: expected at least 3"),
    ("a b target extra\n", "t:1: expected at most 3"),
    ("a b target\na b nontarget\n", "t:2: duplicate trial 'a b'"),
])
def test_read_trials_errors(tmp_path, text, message):
    with pytest.raises(TableError, match=message):
        read_trials(write(tmp_path / "t", text))


def test_read_scores_rejects_non_numbers(tmp_path):
    with pytest.raises(TableError, match="s:1: bad score 'nan'"):
        read_scores(write(tmp_path / "s", "a b nan\n"))


def test_evaluate_joins_by_pair(tmp_path):
    trials = write(tmp_path / "t", TRIALS)
    shuffled = write(tmp_path / "s", "".join(reversed(SCORES.splitlines(True))))
    scores, labels = load_scored_trials(shuffled, trials)  # score-file order, as Kaldi
    assert scores.tolist() == [0.1, -1.0, 0.5, 2.0] and labels.tolist() == [1, 0, 0, 1]
    result = evaluate(shuffled, trials)
    assert result["num_trials"] == 4 and result["num_target"] == 2
    assert result["eer"] == compute_eer([2.0, 0.1], [0.5, -1.0])[0]
    assert result["min_dcf_0.01"] == compute_min_dcf(scores, labels, 0.01)[0]


def test_evaluate_missing_and_extra_scores_name_file_and_line(tmp_path):
    trials = write(tmp_path / "t", TRIALS)
    with pytest.raises(TableError, match=r"t:3: trial 'b c' has no score"):
        evaluate(write(tmp_path / "s1", "a b 1\na c 0\nc d 1\n"), trials)
    with pytest.raises(TableError, match=r"s2:5: score for 'x y' which is not a trial"):
        evaluate(write(tmp_path / "s2", SCORES + "x y 1\n"), trials)


def test_results_table(tmp_path):
    row = {"system": "xvec", "backend": "plda", "eer": 0.03224, "min_dcf_0.01": 0.34921,
           "min_dcf_0.001": 0.5452, "num_trials": 37720, "num_target": 18860}
    path = tmp_path / "results.md"
    text = write_results_table([row], str(path))
    assert path.read_text() == text
    lines = text.splitlines()
    assert lines[0] == "| system | backend | EER (%) | minDCF (p=0.01) | minDCF (p=0.001) | trials |"
    assert lines[2] == "| xvec | plda | 3.224 | 0.3492 | 0.5452 | 37720 |"
    assert os.listdir(tmp_path) == ["results.md"]


# ---------------------------------------------------------------- DET and CLI

def test_det_points_thinned_and_monotone():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 200_000)
    x, y = det_points(rng.normal(labels * 2.0, 1.0), labels)
    assert len(x) < 5000
    assert np.all(np.diff(x) <= 0) and np.all(np.diff(y) >= 0)


def test_plot_det_writes_png_atomically(tmp_path):
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, 1000)
    path = tmp_path / "det.png"
    plot_det({"a": (rng.normal(labels * 2.0, 1), labels),
              "b": (rng.normal(labels * 1.0, 1), labels)}, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path) == ["det.png"]


def test_compute_metrics_cli(tmp_path, capsys):
    trials = write(tmp_path / "trials", TRIALS)
    scores = write(tmp_path / "scores", SCORES)
    out_md, out_png = tmp_path / "r.md", tmp_path / "det.png"
    argv = ["--trials", trials, "--scores", f"cos={scores}", f"plda={scores}",
            "--det-png", str(out_png), "--results-md", str(out_md), "--system", "sys"]
    assert compute_metrics.main(argv) == 0
    printed = capsys.readouterr().out
    assert printed == out_md.read_text() and "| sys | cos |" in printed and "| sys | plda |" in printed
    assert out_png.exists()
    bad = write(tmp_path / "bad_trials", "a b target\na c other\n")
    assert compute_metrics.main(["--trials", bad, "--scores", f"cos={scores}", "--det-png",
                                 str(out_png), "--results-md", str(out_md), "--system", "s"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"compute_metrics: error: {bad}:2: bad label (expected target|nontarget) 'other'"]


def test_compare_systems_joins_results_and_training_summaries(tmp_path, capsys):
    import json
    from pyutils.cli import compare_systems
    trials = write(tmp_path / "trials", TRIALS)
    scores = write(tmp_path / "scores", SCORES)
    for system in ("tdnn", "ecapa"):
        d = tmp_path / "exp" / system
        d.mkdir(parents=True)
        assert compute_metrics.main(["--trials", trials, "--scores", f"cosine={scores}",
                                     "--det-png", str(d / "det.png"), "--results-md",
                                     str(d / "results.md"), "--system", system]) == 0
    (tmp_path / "exp" / "ecapa" / "config.yaml").write_text("features: {type: fbank}\n")
    (tmp_path / "exp" / "ecapa" / "train_summary.json").write_text(json.dumps(
        {"loss": "aam", "parameters": 6191104, "chunks": 12288, "train_seconds": 1230.0,
         "chunks_per_s": 9.99}))
    (tmp_path / "exp" / "mfcc").mkdir()          # not a system: skipped
    capsys.readouterr()
    out = tmp_path / "exp" / "results.md"
    dirs = [str(p) for p in sorted((tmp_path / "exp").iterdir()) if p.is_dir()]
    assert compare_systems.main(["--out", str(out)] + dirs) == 0
    eer = 100 * evaluate(scores, trials)["eer"]
    lines = out.read_text().splitlines()
    assert len(lines) == 4
    rows = json.loads((tmp_path / "exp" / "ecapa" / "results.json").read_text())
    assert lines[2].startswith(f"| ecapa | fbank | aam | cosine | {eer:.3f} | - |")
    assert f"| {rows[0]['min_cllr']:.3f} | - |" in lines[2]     # minCllr; no LLRs: no Cllr
    assert lines[2].endswith("| 6,191,104 | 12,288 | 20.5 | 10.0 |")
    assert lines[3].startswith(f"| tdnn | - | - | cosine | {eer:.3f} |")
    assert lines[3].endswith("| - | - | - | - |")
    assert (tmp_path / "exp" / "det_all.png").stat().st_size > 1000
    all_rows = [r for d in dirs if "mfcc" not in d for r in compare_systems.system_rows(d)]
    assert compare_systems.plot_all(all_rows, str(tmp_path / "d.png")) == 2   # a curve per row
    all_rows[0]["scores_path"] = str(tmp_path / "gone")
    assert compare_systems.plot_all(all_rows, str(tmp_path / "d.png")) == 1
    # a row with a CI and a Cllr shows them
    rows[0].update({"eer_ci": [0.1, 0.25], "cllr": 0.75})
    (tmp_path / "exp" / "ecapa" / "results.json").write_text(json.dumps(rows))
    assert compare_systems.main(["--out", str(out)] + dirs) == 0
    assert "| 10.00-25.00 |" in out.read_text().splitlines()[2]
    assert "| 0.750 |" in out.read_text().splitlines()[2]
    assert compare_systems.main(["--out", str(out), str(tmp_path / "exp" / "mfcc")]) == 1


def test_fuse_scores_weighted_mean_in_first_file_order(tmp_path, capsys):
    from pyutils.cli import fuse_scores
    a = write(tmp_path / "a", "u1 u2 1.0\nu1 u3 -2\nu2 u3 4\n")
    b = write(tmp_path / "b", "u2 u3 0\nu1 u2 3.0\nu1 u3 2\n")     # other order
    out = tmp_path / "fused"
    assert fuse_scores.main(["--out", str(out), a, b]) == 0
    assert out.read_text() == "u1 u2 2\nu1 u3 0\nu2 u3 2\n"
    assert fuse_scores.main(["--out", str(out), "--weights", "3,1", a, b]) == 0
    assert out.read_text() == "u1 u2 1.5\nu1 u3 -1\nu2 u3 3\n"
    short = write(tmp_path / "short", "u1 u2 1\nu1 u3 1\n")
    assert fuse_scores.main(["--out", str(tmp_path / "x"), a, short]) == 1
    assert f"{a}:3: trial 'u2 u3' has no score in {short}" in capsys.readouterr().err
    extra = write(tmp_path / "extra", "u1 u2 1\nu1 u3 1\nu2 u3 1\nu3 u4 1\n")
    assert fuse_scores.main(["--out", str(tmp_path / "x"), a, extra]) == 1
    assert f"{extra}:4: score for 'u3 u4'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
