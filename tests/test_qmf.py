"""QMF calibration: known generating models, and the recipe's calibrate CLI with --qmf."""
import json
import math
import os

import numpy as np
import pytest

from pyutils.backends.calibration import LinearCalibration
from pyutils.backends.qmf import (QmfCalibration, pair_features, parse_measures, read_quality,
                                  trial_features, write_quality)
from pyutils.metrics.cllr import cllr


def duration_shifted_trials(n, rng, mu=2.0, sigma=1.0, shift=1.5):
    """Scores whose level moves with the shorter side's log duration (1.6..20 s, as
    speechocean762): s = y + shift * log(d_min), y ~ N(+-mu, sigma^2).  The true LLR is
    (2 mu / sigma^2) * (s - shift * log d_min): linear in (s, log d_min, log d_max)."""
    labels = rng.random(n) < 0.5
    d1 = np.exp(rng.uniform(math.log(1.6), math.log(20), n))
    d2 = np.exp(rng.uniform(math.log(1.6), math.log(20), n))
    y = np.where(labels, mu, -mu) + sigma * rng.standard_normal(n)
    scores = y + shift * np.log(np.minimum(d1, d2))
    features = trial_features(["dur"], {"dur": d1}, {"dur": d2})
    return scores, features, labels.astype(int)


def write_trial_dir(tmp_path, part, n, rng):
    """<tmp_path>/<part>/{trials,scores,utt2speech_dur} of ``n`` duration-shifted trials;
    returns (the dir, the labels, the durations)."""
    scores, features, labels = duration_shifted_trials(n, rng)
    d = tmp_path / part
    d.mkdir()
    durs = {}
    with open(d / "trials", "w") as trials, open(d / "scores", "w") as out:
        for i in range(n):
            a, b = f"{part}{i}a", f"{part}{i}b"
            durs[a], durs[b] = math.exp(features[i, 0]), math.exp(features[i, 1])
            trials.write(f"{a} {b} {'target' if labels[i] else 'nontarget'}\n")
            out.write(f"{a} {b} {scores[i]:.8g}\n")
    write_quality(str(d), "dur", durs)
    return d, labels, durs


def test_trial_features_are_log_min_and_max_of_the_two_sides():
    f = trial_features(["dur", "mag"], {"dur": [2.0, 10.0], "mag": [3.0, 1.0]},
                       {"dur": [5.0, 0.0], "mag": [4.0, 2.0]})
    assert np.allclose(f, [[math.log(2), math.log(5), 3, 4],
                           [math.log(0.01), math.log(10), 1, 2]])


def test_qmf_recovers_the_generating_model():
    rng = np.random.default_rng(0)
    scores, features, labels = duration_shifted_trials(40000, rng)
    model = QmfCalibration.fit(scores, features, labels, ["dur"], prior=0.5)
    w_score, w_min, w_max = model.weights
    assert w_score == pytest.approx(4.0, abs=0.15)          # 2 mu / sigma^2
    assert w_min == pytest.approx(-6.0, abs=0.3)            # -shift * 2 mu / sigma^2
    assert w_max == pytest.approx(0.0, abs=0.15)
    assert model.bias == pytest.approx(0.0, abs=0.15)


def test_qmf_cllr_beats_linear_calibration_on_held_out_trials():
    rng = np.random.default_rng(1)
    train = duration_shifted_trials(20000, rng)
    test = duration_shifted_trials(20000, rng)
    linear = LinearCalibration.fit(train[0], train[2], 0.5)
    qmf = QmfCalibration.fit(*train[:2], train[2], ["dur"], 0.5)
    c_linear = cllr(linear(test[0]), test[2])
    c_qmf = cllr(qmf(*test[:2]), test[2])
    true = cllr(4.0 * (test[0] - 1.5 * test[1][:, 0]), test[2])
    assert c_qmf < c_linear - 0.1
    assert c_qmf == pytest.approx(true, abs=0.01)


def test_qmf_round_trips_through_its_json_entry_and_refuses_bad_ones():
    model = QmfCalibration(["dur", "mag"], [1.0, 0.5, -0.25, 0.1, 0.2], -3.0, 0.01)
    again = QmfCalibration.from_dict(json.loads(json.dumps(model.to_dict())))
    f = np.array([[0.1, 1.0, 2.0, 3.0]])
    assert again([2.0], f)[0] == model([2.0], f)[0] == pytest.approx(2 + .05 - .25 + .2 + .6 - 3)
    with pytest.raises(ValueError, match="weights"):
        QmfCalibration.from_dict({"measures": ["dur"], "weights": [1.0], "bias": 0})
    with pytest.raises(ValueError, match="unknown quality measure 'snr'"):
        parse_measures("dur,snr")


def test_quality_tables_round_trip_and_name_missing_utterances(tmp_path):
    write_quality(str(tmp_path), "dur", {"a": 2.5, "b": 10.0})
    q = read_quality(str(tmp_path), ["dur"])
    assert q == {"dur": {"a": 2.5, "b": 10.0}}
    f = pair_features(["dur"], q, q, [("a", "b")])
    assert np.allclose(f, [[math.log(2.5), math.log(10)]])
    with pytest.raises(ValueError, match="'c' has no utt2speech_dur"):
        pair_features(["dur"], q, q, [("a", "c")])
    with pytest.raises(ValueError, match="utt2magnitude"):
        read_quality(str(tmp_path), ["mag"])


def test_calibrate_cli_fits_qmf_writes_its_llrs_and_error_rates(tmp_path):
    from pyutils.cli import calibrate
    rng = np.random.default_rng(2)
    dirs = {}
    for part, n in (("cal", 3000), ("eval", 2000)):
        d, labels, durs = write_trial_dir(tmp_path, part, n, rng)
        dirs[part] = (d, labels)
    cal, ev = dirs["cal"][0], dirs["eval"][0]
    json_path = tmp_path / "cosine.json"
    assert calibrate.main(["--trials", str(cal / "trials"), "--cal-scores", str(cal / "scores"),
                           "--calibration", str(json_path), "--scores", str(ev / "scores"),
                           "--out-llr", str(ev / "llr"), "--prior", "0.5", "--qmf", "dur",
                           "--cal-quality", str(cal), "--eval-quality", str(ev),
                           "--qmf-out-dir", str(tmp_path / "cosine_qmf")]) == 0
    data = json.loads(json_path.read_text())
    assert data["qmf"]["measures"] == ["dur"] and len(data["qmf"]["weights"]) == 3
    assert data["qmf"]["cllr_train"] < data["cllr_train"] - 0.1
    point = data["operating_points"]["eer"]
    assert 0 < point["p_miss"] < 0.5 and point["p_miss_ci"][0] <= point["p_miss"] <= \
        point["p_miss_ci"][1] and point["num_target"] == int(dirs["cal"][1].sum())
    assert (tmp_path / "cosine.cal_scores").read_text().count("\n") == 3000
    eval_labels = dirs["eval"][1]
    llr_linear = np.array([float(l.split()[2]) for l in open(ev / "llr")])
    llr_qmf = np.array([float(l.split()[2]) for l in open(tmp_path / "cosine_qmf" / "llr")])
    assert cllr(llr_qmf, eval_labels) < cllr(llr_linear, eval_labels) - 0.1


def test_stage4_quality_measures_from_vad_and_embeddings(tmp_path):
    """utt2speech_dur = voiced frames x 10 ms; utt2magnitude = L2 norm of the raw embedding."""
    from pyutils.cli import quality_measures
    from pyutils.utils.arkio import write_scp_dict
    write_scp_dict(str(tmp_path / "vad.ark"), str(tmp_path / "vad.scp"),
                   {"u1": np.array([0, 1, 1, 1, 0], np.float32),
                    "u2": np.ones(250, np.float32), "u3": np.ones(3, np.float32)})
    emb = tmp_path / "emb"
    write_scp_dict(str(emb / "xvector.ark"), str(emb / "xvector.scp"),
                   {"u1": np.array([3, 4], np.float32), "u2": np.array([1, 0], np.float32)})
    assert quality_measures.main([str(emb), "--vad-scp", str(tmp_path / "vad.scp")]) == 0
    assert (emb / "utt2speech_dur").read_text() == "u1 0.03\nu2 2.5\n"
    assert (emb / "utt2magnitude").read_text() == "u1 5\nu2 1\n"
    (tmp_path / "vad2.scp").write_text("u1 " + (tmp_path / "vad.scp").read_text().split()[1] + "\n")
    assert quality_measures.main([str(emb), "--vad-scp", str(tmp_path / "vad2.scp")]) == 1


def test_calibrate_step_with_qmf_as_stage6_runs_it(tmp_path):
    """steps/calibrate.sh --qmf dur: the JSON's qmf entry, <eval>_qmf/{scores,llr}, the
    calibration trials' scores; a rerun skips; a changed duration table reruns."""
    import subprocess

    from conftest import ROOT
    from pyutils.cli.marker import main as marker_main
    rng = np.random.default_rng(4)
    for part, n in (("cal", 400), ("eval", 200)):
        d, labels, durs = write_trial_dir(tmp_path, part, n, rng)
        write_quality(str(d), "mag", {k: 1.0 for k in durs})
        marker_main(["write", str(d / ".done"), str(d / "scores")])
    cmd = [os.path.join(ROOT, "steps", "calibrate.sh"), "--system", "cosine", "--qmf", "dur",
           "--cal-quality", str(tmp_path / "cal"), "--eval-quality", str(tmp_path / "eval"),
           str(tmp_path / "cal" / "trials"), str(tmp_path / "cal"), str(tmp_path / "eval"),
           str(tmp_path / "cosine.json")]
    run = lambda: subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    first = run()
    assert first.returncode == 0, first.stderr
    assert json.loads((tmp_path / "cosine.json").read_text())["qmf"]["measures"] == ["dur"]
    assert len(open(tmp_path / "eval_qmf" / "llr").readlines()) == 200
    assert (tmp_path / "eval_qmf" / "scores").read_text() == \
        (tmp_path / "eval_qmf" / "llr").read_text()
    assert len(open(tmp_path / "cosine.cal_scores").readlines()) == 400
    assert "up to date" in run().stdout
    write_quality(str(tmp_path / "eval"), "dur", {k: 5.0 for k in
                                                  read_quality(str(tmp_path / "eval"), ["dur"])["dur"]})
    again = run()
    assert again.returncode == 0 and "up to date" not in again.stdout
