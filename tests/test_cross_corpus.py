"""Cross-corpus evaluation (run.sh --eval-corpus) and the threshold shift of stage 7.

Known answers: thresholds set on hand-made calibration scores, applied to evaluation
scores shifted by a known amount, give error counts one can count by eye; the recipe's
plan and stage-0 copy of another corpus's evaluation set.
"""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from pyutils.backends.calibration import LinearCalibration, save_calibration
from pyutils.backends.operating_points import binomial_interval, write_cal_scores
from pyutils.backends.threshold_shift import parse_targets, threshold_shift
from pyutils.cli import threshold_shift as shift_cli
from tests.conftest import ROOT

CAL_TARGET = np.arange(10, 101, 10, dtype=float)       # 10, 20 .. 100
CAL_NONTARGET = np.arange(-50, 50, dtype=float)         # -50 .. 49
SHIFT = 10.0                                            # the eval corpus scores 10 higher


def write_system(tmp_path, name="cosine", qmf_entry=None, trials=None):
    """calibration/<name>.json (llr = score / 10 - 2; thresholds at 65.95 raw = 4.595 llr,
    and 30 as 'eer') and its .cal_scores, targets and non-targets interleaved."""
    caldir = tmp_path / "calibration"
    caldir.mkdir(exist_ok=True)
    scores = np.concatenate([CAL_TARGET, CAL_NONTARGET])
    labels = np.concatenate([np.ones(10), np.zeros(100)]).astype(int)
    order = np.argsort(np.arange(110) % 11, kind="stable")   # any order: kept in the file
    write_cal_scores(str(caldir / f"{name}.cal_scores"), scores[order], labels[order])
    bayes = math.log(99)
    info = {"trained_on": str(trials or tmp_path / "cal_trials")}
    if qmf_entry is not None:
        info["qmf"] = qmf_entry
    save_calibration(str(caldir / f"{name}.json"), LinearCalibration([0.1], -2.0, 0.01),
                     {"bayes_p0.01": 10 * (bayes + 2.0), "bayes_p0.01_llr": bayes, "eer": 30.0},
                     **info)
    return str(caldir / f"{name}.json")


def rates(misses, targets, fas, nontargets):
    return {"p_miss": misses / targets, "p_miss_ci": list(binomial_interval(misses, targets)),
            "p_fa": fas / nontargets, "p_fa_ci": list(binomial_interval(fas, nontargets)),
            "num_target": targets, "num_nontarget": nontargets}


def test_thresholds_of_the_calibration_trials_measured_on_shifted_eval_trials(tmp_path):
    cal_json = write_system(tmp_path)
    eval_scores = np.concatenate([CAL_TARGET, CAL_NONTARGET]) + SHIFT
    labels = np.concatenate([np.ones(10), np.zeros(100)])
    shift = threshold_shift(cal_json, eval_scores, labels, parse_targets("far=0.01 frr=0.2"))
    points = shift["points"]
    # the LLR threshold with a raw-score twin is the same decision: reported once
    assert set(points) == {"bayes_p0.01", "eer", "far_0.01", "frr_0.2"}
    eer = points["eer"]
    assert (eer["threshold"], eer["scale"]) == (30.0, "score")
    # calibration: targets 10, 20 missed; non-targets 30 .. 49 accepted
    assert eer["intended"] == rates(2, 10, 20, 100)
    # eval (+10): target 20 missed; non-targets 30 .. 59 accepted
    assert eer["measured"] == rates(1, 10, 30, 100)
    bayes = points["bayes_p0.01"]
    assert bayes["threshold"] == pytest.approx(10 * (math.log(99) + 2.0))   # 65.95
    assert bayes["intended"] == rates(6, 10, 0, 100)                       # 10 .. 60 missed
    assert bayes["measured"] == rates(5, 10, 0, 100)                       # 20 .. 60 missed
    far = points["far_0.01"]                                   # just above 48: 49 accepted
    assert 48 < far["threshold"] < 48 + 1e-9
    assert far["intended"] == rates(4, 10, 1, 100)
    assert far["measured"] == rates(3, 10, 11, 100)            # 49 .. 59: 11 false alarms
    assert 58 < far["threshold_on_eval"] < 58 + 1e-9           # the eval trials' own 1 %
    frr = points["frr_0.2"]
    assert frr["threshold"] == 30.0 and frr["threshold_on_eval"] == 40.0
    assert frr["intended"]["p_miss"] == 0.2 and frr["measured"]["p_miss"] == 0.1
    assert shift["calibration"] == cal_json
    assert shift["calibration_trials"] == str(tmp_path / "cal_trials")


def test_qmf_thresholds_on_the_qmf_llrs(tmp_path):
    """QMF llr = score + 2 log(min dur): the calibration trials' QMF LLRs are recomputed
    from the stored scores and the calibration utterances' durations."""
    e = math.e
    # (utt1, utt2, label, score, min duration)
    cal = [("a1", "b1", "target", 4.0, 1.0), ("a2", "b2", "nontarget", 0.0, 1.0),
           ("a3", "b3", "target", 5.0, 1.0), ("a4", "b4", "nontarget", 4.0, e),
           ("a5", "b5", "target", 3.0, e), ("a6", "b6", "nontarget", 2.0, e),
           ("a7", "b7", "target", 6.0, e), ("a8", "b8", "nontarget", 3.0, 1.0)]
    # QMF LLRs: targets 4, 5, 5, 8; non-targets 0, 6, 4, 3
    trials = tmp_path / "cal_trials"
    trials.write_text("".join(f"{a} {b} {lab}\n" for a, b, lab, _, _ in cal))
    quality = tmp_path / "embeddings_calib"
    quality.mkdir()
    (quality / "utt2speech_dur").write_text(
        "".join(f"{a} {d}\n{b} 20\n" for a, b, _, _, d in cal))
    entry = {"measures": ["dur"], "weights": [1.0, 2.0, 0.0], "bias": 0.0, "prior": 0.01,
             "quality_dir": str(quality), "thresholds": {"bayes_p0.01_llr": math.log(99)}}
    cal_json = write_system(tmp_path, "plda", entry, trials)
    write_cal_scores(cal_json.replace(".json", ".cal_scores"), [c[3] for c in cal],
                     [c[2] == "target" for c in cal])
    eval_llr = np.array([5.0, 4.0, 3.0, 5.0, 0.0])
    labels = np.array([1, 1, 1, 0, 0])
    points = threshold_shift(cal_json, eval_llr, labels, parse_targets("far=0.25"),
                             qmf=True)["points"]
    assert set(points) == {"bayes_p0.01_llr", "far_0.25_llr"}
    bayes = points["bayes_p0.01_llr"]
    assert bayes["scale"] == "llr"
    assert bayes["intended"] == rates(1, 4, 1, 4)      # target llr 4 missed; non-target 6
    assert bayes["measured"] == rates(2, 3, 1, 2)
    assert 4.0 < points["far_0.25_llr"]["threshold"] < 4.0 + 1e-9
    # stored scores not of these trials (another order): refused
    write_cal_scores(cal_json.replace(".json", ".cal_scores"), [c[3] for c in cal][::-1],
                     [c[2] == "target" for c in cal][::-1])
    with pytest.raises(ValueError, match="does not hold the scores"):
        threshold_shift(cal_json, eval_llr, labels, qmf=True)


def test_targets_are_checked():
    assert parse_targets("far=0.01, frr=0.05") == [("far", 0.01), ("frr", 0.05)]
    assert parse_targets("") == []
    for bad in ("far=1", "fa=0.1", "frr=x", "far"):
        with pytest.raises(ValueError, match="expected far=RATE or frr=RATE"):
            parse_targets(bad)


def test_cli_merges_the_shift_into_the_rows_of_results_json(tmp_path, capsys):
    write_system(tmp_path)
    trials = tmp_path / "trials"
    scores = tmp_path / "scores" / "cosine"
    scores.mkdir(parents=True)
    values = np.concatenate([CAL_TARGET, CAL_NONTARGET]) + SHIFT
    pairs = [(f"e{i}", f"t{i}") for i in range(110)]
    trials.write_text("".join(f"{a} {b} {'target' if i < 10 else 'nontarget'}\n"
                              for i, (a, b) in enumerate(pairs)))
    (scores / "scores").write_text("".join(f"{a} {b} {v}\n" for (a, b), v in zip(pairs, values)))
    (scores / "llr").write_text("".join(f"{a} {b} {v / 10 - 2}\n"
                                        for (a, b), v in zip(pairs, values)))
    results = tmp_path / "results.json"
    rows = [{"backend": "cosine", "eer": 0.1}, {"backend": "cosine [g]", "subgroup": "g"}]
    results.write_text(json.dumps(rows))
    args = ["--trials", str(trials), "--scores-dir", str(tmp_path / "scores"),
            "--calibration-dir", str(tmp_path / "calibration"), "--targets", "far=0.01",
            "--results", str(results), "--table", str(tmp_path / "shift.md")]
    assert shift_cli.main(args + ["cosine"]) == 0
    merged = json.loads(results.read_text())
    assert merged[0]["eer"] == 0.1 and "threshold_shift" not in merged[1]
    assert merged[0]["threshold_shift"]["points"]["eer"]["measured"] == rates(1, 10, 30, 100)
    table = (tmp_path / "shift.md").read_text()
    assert "| cosine | eer | 30 (score) | 20.00 [" in table and "| 30.00 [" in table
    # a calibration with a negative slope keeps its Bayes threshold on the LLR only: the
    # eval LLRs (llr = 2 - score / 10) are read for it; accepted when score <= -25.95
    save_calibration(str(tmp_path / "calibration" / "neg.json"),
                     LinearCalibration([-0.1], 2.0, 0.01),
                     {"bayes_p0.01_llr": math.log(99), "eer": 30.0}, trained_on="cal")
    os.link(tmp_path / "calibration" / "cosine.cal_scores",
            tmp_path / "calibration" / "neg.cal_scores")
    (tmp_path / "scores" / "neg").mkdir()
    (tmp_path / "scores" / "neg" / "scores").write_text((scores / "scores").read_text())
    (tmp_path / "scores" / "neg" / "llr").write_text("".join(
        f"{a} {b} {2 - v / 10}\n" for (a, b), v in zip(pairs, values)))
    assert shift_cli.main(args + ["neg"]) == 0
    kept = json.loads(results.read_text())[0]["threshold_shift"]    # no 'neg' row: unchanged
    assert set(kept["points"]) == {"bayes_p0.01", "eer", "far_0.01"}
    assert shift_cli.main(args[:-4] + ["--table", str(tmp_path / "neg.md"), "neg"]) == 0
    neg = (tmp_path / "neg.md").read_text()
    # calibration: non-targets -50 .. -26 accepted (25); eval (+10): -40 .. -26 (15)
    assert "| neg | bayes_p0.01_llr | 4.595 (llr) | 100.00 [69.15, 100.00] | 25.00 [" in neg
    assert "| 100.00 [69.15, 100.00] | 15.00 [" in neg
    # a system stage 6 did not calibrate: one line naming the file, results.json unchanged
    before = results.read_text()
    assert shift_cli.main(args + ["plda"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (f"threshold_shift: error: {tmp_path}/calibration/plda.json: no calibration "
                   f"of system 'plda' (run stage 6)")
    assert results.read_text() == before


# ------------------------------------------------------------------ the recipe's side

def test_resolve_data_plans_the_eval_corpus_set_beside_the_source_sets():
    result = subprocess.run(["steps/resolve_data.sh", "--corpus", "speechocean762",
                             "--eval-corpus", "asc", "--eval-data", "d_on_asc",
                             "--adapt-data", "d_on_asc/adapt", "conf/ecapa_c512_aug_so762.yaml",
                             "d", "e_on_asc", "e_on_asc/m"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "evals=(d_on_asc/eval)" in lines and "fevals=(d_on_asc/eval_fbank)" in lines
    assert "train=d/train" in lines and "calib=d/calib" in lines   # the source's sets
    assert "fadapt=d_on_asc/adapt_fbank" in lines
    assert "eval_corpora=(asc )" in lines and "eval_protocols=(asc-v1 )" in lines
    bad = subprocess.run(["steps/resolve_data.sh", "--eval-corpus", "nope", "--prog", "x",
                          "conf/xvector.yaml", "d", "e", "e/m"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert (bad.returncode, bad.stderr) == (1, "x: --eval-corpus nope: no conf/corpora/nope.conf\n")


def fake_prepared(path, speakers, utts=2, trials=True):
    """A prepared data dir (lists only) with features a stage added."""
    path.mkdir(parents=True)
    utt_ids = [f"{s}-{u}" for s in speakers for u in range(utts)]
    (path / "wav.scp").write_text("".join(f"{u} /audio/{u}.wav\n" for u in utt_ids))
    (path / "utt2spk").write_text("".join(f"{u} {u.split('-')[0]}\n" for u in utt_ids))
    (path / "spk2utt").write_text("".join(
        f"{s} {' '.join(u for u in utt_ids if u.startswith(s + '-'))}\n" for s in speakers))
    (path / "feats.scp").write_text("".join(f"{u} /elsewhere/feats.ark:1\n" for u in utt_ids))
    if trials:
        (path / "trials").write_text(f"{utt_ids[0]} {utt_ids[1]} target\n"
                                     f"{utt_ids[0]} {utt_ids[-1]} nontarget\n")
        (path / "trials_g").write_text(f"{utt_ids[0]} {utt_ids[1]} target\n")


def test_stage0_copies_the_eval_corpus_sets_without_their_features(tmp_path):
    other = tmp_path / "data" / "asc"
    fake_prepared(other / "eval", ["s19", "s20"])
    fake_prepared(other / "train", ["s1", "s2"], trials=False)
    xdata = tmp_path / "data" / "so_on_asc"
    cmd = ["steps/prepare_cross_corpus.sh", "--adapt-data", str(other / "train"), "asc",
           str(other), str(xdata)]
    result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for name in ("trials", "trials_g", "utt2spk", "wav.scp"):
        assert (xdata / "eval" / name).read_text() == (other / "eval" / name).read_text()
    assert not (xdata / "eval" / "feats.scp").exists()
    assert (xdata / "adapt" / "utt2spk").read_text() == (other / "train" / "utt2spk").read_text()
    assert not (xdata / "adapt" / "feats.scp").exists()
    # adapting to the evaluation set itself is refused
    cmd[2] = str(other / "eval")
    bad = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "is the evaluation set itself" in bad.stderr


def test_link_model_links_the_source_and_refuses_a_missing_one(tmp_path):
    src, dst = tmp_path / "exp" / "so" / "m", tmp_path / "exp" / "so_on_asc" / "m"
    bad = subprocess.run(["steps/link_model.sh", str(src), str(dst)], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and f"{src}/final.pt not found" in bad.stderr
    (src / "embeddings_train").mkdir(parents=True)
    (src / "embeddings_train" / ".done").write_text("x")
    (src / "final.pt").write_text("weights")
    (src / "train_summary.json").write_text("{}")
    ok = subprocess.run(["steps/link_model.sh", str(src), str(dst)], cwd=ROOT,
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert os.readlink(dst / "final.pt") == "../../so/m/final.pt"
    assert (dst / "embeddings_train" / ".done").read_text() == "x"
    assert (dst / "train_summary.json").is_symlink() and not (dst / "embeddings_calib").exists()
    again = subprocess.run(["steps/link_model.sh", str(src), str(dst)], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr     # a rerun keeps its links


@pytest.mark.slow
def test_cross_corpus_run_evaluates_a_source_network_on_another_data_dir(tmp_path, asc_root):
    """run.sh --eval-corpus on ASC slices: a network of the source run (random weights,
    no training), the eval set and unlabelled train set of another prepared data dir;
    stages 0-7 write only under <exp>_on_asc and <data>_on_asc."""
    sys.path.insert(0, os.path.join(ROOT, "tests"))
    from deploy_helpers import tiny_model_dir
    data, exp, other = tmp_path / "data", tmp_path / "exp", tmp_path / "other"
    source = ["./run.sh", "--corpus-root", asc_root, "--data", str(data), "--exp", str(exp),
              "--train-speakers", "1-4", "--eval-speakers", "19-20", "--reps", "01,02",
              "--nj", "1"]
    run = lambda *args: subprocess.run([*source, *args], cwd=ROOT, capture_output=True,
                                       text=True, timeout=1200)
    assert run("--stop-stage", "1").returncode == 0
    tiny_model_dir(str(exp / "xvector"), calibrated=False)
    result = run("--stage", "4", "--stop-stage", "4")
    assert result.returncode == 0, result.stderr[-2000:]
    prep = subprocess.run(["steps/prepare_data.sh", "--corpus", "asc", "--corpus-root", asc_root,
                           "--train-speakers", "5-7", "--eval-speakers", "21-23", "--reps",
                           "01,02", str(other)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert prep.returncode == 0, prep.stderr
    before = sorted(os.walk(exp / "xvector"))
    other_eval = sorted(os.listdir(other / "eval"))
    cross = run("--eval-corpus", "asc", "--eval-data", str(other),
                "--plda-adapt-data", str(other / "train"))
    assert cross.returncode == 0, cross.stdout[-2000:] + cross.stderr[-3000:]
    assert sorted(os.walk(exp / "xvector")) == before          # the source is only read
    assert sorted(os.listdir(other / "eval")) == other_eval    # nor the other corpus's data
    out = tmp_path / "exp_on_asc" / "xvector"
    utts = len(open(other / "eval" / "utt2spk").readlines())
    assert len(open(out / "embeddings_eval" / "xvector.scp").readlines()) == utts
    assert os.path.islink(out / "embeddings_train") and os.path.islink(out / "final.pt")
    rows = {r["backend"]: r for r in json.load(open(out / "results.json"))}
    assert {"cosine", "plda", "cosine_adapt", "plda_adapt", "plda_adapt_asnorm"} <= set(rows)
    for row in rows.values():
        points = row["threshold_shift"]["points"]
        assert {"bayes_p0.01", "eer", "far_0.01", "frr_0.05"} <= set(points)
        assert points["eer"]["measured"]["num_nontarget"] + points["eer"]["measured"][
            "num_target"] == utts * (utts - 1) // 2
    info = json.load(open(out / "run_info.json"))
    assert (info["train_corpus"], info["eval_corpus"], info["protocol"]) == ("asc", "asc",
                                                                            "asc-custom")
    assert info["backend_data"] == f"{data}/train" and info["model_dir"] == str(exp / "xvector")
    assert info["plda_adapt_data"] == str(other / "train")
    assert info["calibration_data"] == f"{data}/train"
    assert info["trials"] == f"{tmp_path}/data_on_asc/eval/trials"
    assert "| plda_adapt | far_0.01 |" in cross.stdout     # the shift table is printed
