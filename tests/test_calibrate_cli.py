"""Calibration trials over training utterances, the calibrate CLI (fit on calibration
trials, thresholds, LLRs of the eval scores) and the trained fusion."""
import json
import math

import numpy as np
import pytest

from pyutils.backends.calibration import load_calibration
from pyutils.backends.trials import pair_trials
from pyutils.cli import calibrate, fuse_scores, make_trials
from pyutils.metrics.dcf import compute_min_dcf
from pyutils.metrics.eer import compute_eer


def test_pair_trials_every_pair_in_c_order():
    utt2spk = {"b-1": "b", "a-2": "a", "a-1": "a", "B-1": "B"}
    assert pair_trials(utt2spk) == [
        ("B-1", "a-1", "nontarget"), ("B-1", "a-2", "nontarget"), ("B-1", "b-1", "nontarget"),
        ("a-1", "a-2", "target"), ("a-1", "b-1", "nontarget"), ("a-2", "b-1", "nontarget")]
    big = {f"s{i % 7}-u{i:03d}": f"s{i % 7}" for i in range(60)}
    sample = pair_trials(big, max_trials=500, seed=3)
    assert len(sample) == 500 and sample == pair_trials(big, max_trials=500, seed=3)
    assert set(sample) < set(pair_trials(big)) and sample == sorted(sample)
    with pytest.raises(ValueError, match="at least 2 utterances"):
        pair_trials({"x": "s"})


def test_make_trials_cli_keeps_utterances_with_embeddings(tmp_path, capsys):
    (tmp_path / "utt2spk").write_text("a1 a\na2 a\nb1 b\nb2 b\nc1 c\n")
    (tmp_path / "x.scp").write_text("a1 x.ark:1\na2 x.ark:2\nb1 x.ark:3\n")
    out = tmp_path / "trials"
    assert make_trials.main(["--utt2spk", str(tmp_path / "utt2spk"), "--keys-scp",
                             str(tmp_path / "x.scp"), "--out", str(out)]) == 0
    assert out.read_text() == "a1 a2 target\na1 b1 nontarget\na2 b1 nontarget\n"
    (tmp_path / "one").write_text("a1 a\nb1 b\n")
    assert make_trials.main(["--utt2spk", str(tmp_path / "one"), "--out", str(tmp_path / "t2")]) == 1
    assert "only nontarget trials" in capsys.readouterr().err


def simulated(tmp_path, name, rng, n, slope, offset, noise_system=False):
    """Trials and the scores of two systems: A with llr = slope * s + offset, B noise."""
    labels = rng.random(n) < 0.2
    llr_true = np.where(labels, rng.normal(3.0, math.sqrt(6.0), n), rng.normal(-3.0, math.sqrt(6.0), n))
    pairs = [(f"e{i:05d}", f"t{i:05d}") for i in range(n)]
    (tmp_path / f"{name}.trials").write_text("".join(
        f"{a} {b} {'target' if l else 'nontarget'}\n" for (a, b), l in zip(pairs, labels)))
    a = (llr_true - offset) / slope                  # system A's raw scores
    (tmp_path / f"{name}.A").write_text("".join(f"{p} {q} {s!r}\n" for (p, q), s in
                                                 zip(pairs, a.tolist())))
    (tmp_path / f"{name}.B").write_text("".join(f"{p} {q} {s!r}\n" for (p, q), s in
                                                 zip(pairs, rng.normal(size=n).tolist())))
    return labels, a


def test_calibrate_cli_fits_saves_thresholds_and_writes_llrs(tmp_path):
    """Scores whose true LLR is 4 s - 2 (classes N(+-3, 6) in LLR: a well
    calibrated LLR), so the fit recovers the map; thresholds from the calibration
    trials; LLRs of other (eval) scores are that map, in the eval file's order."""
    rng = np.random.default_rng(0)
    labels, a = simulated(tmp_path, "cal", rng, 20000, slope=4.0, offset=-2.0)
    (tmp_path / "eval").write_text("x y 1.5\nx z -0.25\n")
    json_path = tmp_path / "cal.json"
    assert calibrate.main(["--trials", str(tmp_path / "cal.trials"), "--cal-scores",
                           str(tmp_path / "cal.A"), "--calibration", str(json_path),
                           "--scores", str(tmp_path / "eval"), "--out-llr",
                           str(tmp_path / "llr"), "--system", "cosine", "--prior", "0.5"]) == 0
    cal, thresholds, info = load_calibration(str(json_path))
    assert cal.weights[0] == pytest.approx(4.0, rel=0.05)
    assert cal.bias == pytest.approx(-2.0, abs=0.15)
    assert info["backend"] == "cosine" and info["trained_on"] == str(tmp_path / "cal.trials")
    assert info["num_trials"] == 20000 and info["num_target"] == int(labels.sum())
    assert thresholds["eer"] == compute_eer(a[labels], a[~labels])[1]
    assert thresholds["min_dcf_p0.5"] == compute_min_dcf(a, labels, 0.5)[1]
    assert thresholds["bayes_p0.5_llr"] == 0.0
    assert thresholds["bayes_p0.5"] == pytest.approx(-cal.bias / cal.weights[0])
    lines = [line.split() for line in open(tmp_path / "llr")]
    assert [l[:2] for l in lines] == [["x", "y"], ["x", "z"]]
    assert [float(l[2]) for l in lines] == pytest.approx([cal.weights[0] * 1.5 + cal.bias,
                                                          cal.weights[0] * -0.25 + cal.bias])
    # default prior 0.01: Bayes threshold log(99) on the LLR
    assert calibrate.main(["--trials", str(tmp_path / "cal.trials"), "--cal-scores",
                           str(tmp_path / "cal.A"), "--calibration", str(json_path)]) == 0
    assert json.loads(json_path.read_text())["thresholds"]["bayes_p0.01_llr"] == \
        pytest.approx(math.log(99))


def test_calibrate_cli_errors_name_file_and_line(tmp_path, capsys):
    rng = np.random.default_rng(1)
    simulated(tmp_path, "cal", rng, 50, 1.0, 0.0)
    short = tmp_path / "short"
    short.write_text("".join((tmp_path / "cal.A").read_text().splitlines(True)[:-1]))
    args = ["--trials", str(tmp_path / "cal.trials"), "--calibration", str(tmp_path / "j")]
    assert calibrate.main(args + ["--cal-scores", str(short)]) == 1
    assert f"{tmp_path / 'cal.trials'}:50: trial 'e00049 t00049' has no score" in \
        capsys.readouterr().err
    assert not (tmp_path / "j").exists()
    assert calibrate.main(args + ["--cal-scores", str(tmp_path / "cal.A"), "--scores",
                                  str(tmp_path / "cal.A"), str(tmp_path / "cal.B"),
                                  "--out-llr", str(tmp_path / "l")]) == 1
    assert "one of each per system" in capsys.readouterr().err


def test_trained_fusion_weights_the_informative_system(tmp_path):
    """A carries the LLR, B is noise: the fusion trained on calibration trials
    gives B almost no weight and reproduces A's calibration."""
    rng = np.random.default_rng(2)
    simulated(tmp_path, "cal", rng, 20000, slope=2.0, offset=1.0)
    simulated(tmp_path, "ev", rng, 300, slope=2.0, offset=1.0)
    out, json_path = tmp_path / "fused", tmp_path / "fusion.json"
    assert fuse_scores.main(["--out", str(out), "--trials", str(tmp_path / "cal.trials"),
                             "--cal-scores", str(tmp_path / "cal.A"), str(tmp_path / "cal.B"),
                             "--calibration", str(json_path), "--prior", "0.5",
                             str(tmp_path / "ev.A"), str(tmp_path / "ev.B")]) == 0
    fusion, thresholds, info = load_calibration(str(json_path))
    assert fusion.weights[0] == pytest.approx(2.0, rel=0.05)
    assert abs(fusion.weights[1]) < 0.05
    assert info["systems"] == [str(tmp_path / "ev.A"), str(tmp_path / "ev.B")]
    assert {"eer_llr", "min_dcf_p0.5_llr", "bayes_p0.5_llr"} == set(thresholds)
    ev_a = np.array([float(l.split()[2]) for l in open(tmp_path / "ev.A")])
    ev_b = np.array([float(l.split()[2]) for l in open(tmp_path / "ev.B")])
    got = np.array([float(l.split()[2]) for l in open(out)])
    np.testing.assert_allclose(got, fusion.weights[0] * ev_a + fusion.weights[1] * ev_b
                               + fusion.bias, rtol=1e-6, atol=1e-6)
