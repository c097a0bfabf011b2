"""sv enroll / verify --speaker / identify / threshold against a tiny packaged model, with a
calibration that carries error rates, QMF and the calibration trials' scores."""
import json
import math
import os

import numpy as np
import pytest
import soundfile as sf

from deploy_helpers import CONF, asc_clip, tiny_model_dir
from test_sv_cli import sv

# LLR = 10 * score - 5 (linear); QMF: 8 * score + 0.5 log d_min + 0.25 log d_max - 5
QMF = {"measures": ["dur"], "weights": [8.0, 0.5, 0.25], "bias": -5.0, "prior": 0.01,
       "operating_points": {"bayes_p0.01_llr": {
           "threshold": 4.595, "scale": "llr", "p_miss": 0.5, "p_miss_ci": [0.4, 0.6],
           "p_fa": 0.001, "p_fa_ci": [0.0, 0.01], "num_target": 100, "num_nontarget": 1000}}}


def calibration(qmf=False):
    from pyutils.backends.operating_points import error_rates_at
    target = np.linspace(0.3, 1.0, 40)
    nontarget = np.linspace(-0.5, 0.6, 200)
    data = {"backend": "cosine", "weights": [10.0], "offset": -5.0, "prior": 0.01,
            "thresholds": {"eer": 0.5, "min_dcf_p0.01": 0.8},
            "operating_points": {"eer": error_rates_at(0.5, target, nontarget)}}
    if qmf:
        data["qmf"] = QMF
    return data, target, nontarget


def build(root, qmf=False):
    from pyutils.backends.operating_points import write_cal_scores
    from pyutils.deploy.package_build import build_package
    model_dir = tiny_model_dir(str(root), calibrated=False)
    os.makedirs(os.path.join(model_dir, "calibration"))
    data, target, nontarget = calibration(qmf)
    with open(os.path.join(model_dir, "calibration", "cosine.json"), "w") as out:
        json.dump(data, out)
    write_cal_scores(os.path.join(model_dir, "calibration", "cosine.cal_scores"),
                     np.concatenate([target, nontarget]),
                     [1] * len(target) + [0] * len(nontarget))
    out = os.path.join(str(root), "package")
    build_package(os.path.join(model_dir, "final.pt"), out, os.path.join(CONF, "mfcc.conf"),
                  os.path.join(CONF, "vad.conf"), os.path.join(CONF, "cmvn.conf"),
                  backend_dir=os.path.join(model_dir, "backend"),
                  calibration_dir=os.path.join(model_dir, "calibration"), export=False)
    return out


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    return build(tmp_path_factory.mktemp("pkg"))


def embed(package, clip, tmp_path, name="e"):
    assert sv("embed", "-p", package, "-q", clip, "-o", tmp_path / f"{name}.npy").returncode == 0
    return np.load(tmp_path / f"{name}.npy")[0].astype(np.float64)


def ok(result):
    assert result.returncode == 0, result.stderr
    return result


def test_enroll_stores_the_mean_and_count_and_verify_scores_it(package, asc_root, tmp_path):
    from pyutils.backends.speakers import read_store, score_models
    from pyutils.deploy.package import Package
    clips = [asc_clip(asc_root, 21, k) for k in ("backward", "cancel")]
    store = tmp_path / "store"
    out = ok(sv("enroll", "-p", package, "-q", "--speaker", "alice", "--store", store, *clips))
    assert "'alice' enrolled from 2 clip(s)" in out.stdout
    e = [embed(package, c, tmp_path, f"e{i}") for i, c in enumerate(clips)]
    alice = read_store(str(store))["alice"]
    assert alice.count == 2
    assert np.array_equal(alice.mean, np.mean(np.float32(e).astype(np.float64), axis=0)
                          .astype(np.float32))
    test = asc_clip(asc_root, 21, "down")
    t = embed(package, test, tmp_path, "t")
    got = json.loads(ok(sv("verify", "-p", package, "-q", "--json", "--store", store,
                           "--speaker", "alice", test)).stdout)
    mean = alice.mean.astype(np.float64)
    assert got["score"] == pytest.approx(mean @ t / np.linalg.norm(mean) / np.linalg.norm(t),
                                         abs=1e-6)
    assert got["llr"] == pytest.approx(10 * got["score"] - 5, abs=1e-6)
    plda = json.loads(ok(sv("verify", "-p", package, "-q", "--json", "--store", store,
                            "--speaker", "alice", "--backend", "plda", test)).stdout)
    backend = Package(package).backend("plda")
    assert plda["score"] == pytest.approx(
        score_models(backend, mean[None], [2], t[None])[0, 0], abs=1e-6)
    # the same two clips as enrolment files give the same PLDA score (count 2 too)
    files = json.loads(ok(sv("verify", "-p", package, "-q", "--json", "--backend", "plda",
                             *clips, test)).stdout)
    assert files["score"] == pytest.approx(plda["score"], abs=1e-5)


def test_verify_prints_the_error_rates_of_the_threshold(package, asc_root):
    clip = asc_clip(asc_root, 21)
    text = ok(sv("verify", "-p", package, "-q", clip, clip)).stdout
    # eer threshold 0.5: 12 of the 40 targets (0.3..1.0) lie below it, 19 of the 200
    # non-targets (-0.5..0.6) at or above it
    assert "at this threshold: 30.00 % misses" in text and "9.50 % false alarms" in text
    assert "false alarms" in text and "on 240 held-out calibration trials (40 target" in text
    assert "at this threshold" not in ok(sv("verify", "-p", package, "-q", clip, clip,
                                            "--threshold", "0.3")).stdout


def test_identify_ranks_enrolled_speakers_and_says_none_below_the_threshold(package, asc_root,
                                                                           tmp_path):
    store = tmp_path / "store"
    a, b = asc_clip(asc_root, 21), asc_clip(asc_root, 25)
    ok(sv("enroll", "-p", package, "-q", "--speaker", "alice", "--store", store, a))
    ok(sv("enroll", "-p", package, "-q", "--speaker", "bob", "--store", store, b))
    got = json.loads(ok(sv("identify", "-p", package, "-q", "--json", "--store", store,
                           a)).stdout)
    assert [r["speaker"] for r in got["ranked"]] == ["alice", "bob"]
    assert got["ranked"][0]["score"] == pytest.approx(1.0, abs=1e-6)   # its own clip
    assert got["ranked"][0]["llr"] == pytest.approx(5.0, abs=1e-5)
    assert got["identified"] == "alice" and got["error_rates"]["num_target"] == 40
    none = json.loads(ok(sv("identify", "-p", package, "-q", "--json", "--store", store, a,
                            "--threshold", "1.5")).stdout)
    assert none["identified"] == "none"
    text = ok(sv("identify", "-p", package, "-q", "--store", store, a, "--top", "1")).stdout
    assert "1. alice: score 1" in text and "2. bob" not in text and "identified: alice" in text


def test_bad_inputs_are_one_line_errors_and_leave_the_store_as_it_was(package, asc_root,
                                                                      tmp_path):
    store = tmp_path / "store"
    clip = asc_clip(asc_root, 21)
    ok(sv("enroll", "-p", package, "-q", "--speaker", "alice", "--store", store, clip))
    before = {f: (store / f).read_bytes() for f in os.listdir(store)}

    def fails(*args, says):
        result = sv(*args)
        assert result.returncode == 1 and says in result.stderr, result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
        assert {f: (store / f).read_bytes() for f in os.listdir(store)} == before
        assert sorted(os.listdir(tmp_path)).count("store") == 1 and not [
            f for f in os.listdir(tmp_path) if f.startswith("store.")]

    fails("verify", "-p", package, "-q", "--store", store, "--speaker", "carol", clip,
          says="speaker 'carol' is not enrolled")
    fails("enroll", "-p", package, "-q", "--store", store, "--speaker", "alice", clip,
          says="already enrolled")
    empty = tmp_path / "empty"
    empty.mkdir()
    fails("enroll", "-p", package, "-q", "--store", store, "--speaker", "bob", empty,
          says="no audio files")
    (tmp_path / "none.scp").write_text("")
    fails("enroll", "-p", package, "-q", "--store", store, "--speaker", "bob",
          tmp_path / "none.scp", says="none.scp: empty file")
    samples, rate = sf.read(clip)
    short = tmp_path / "short.wav"
    sf.write(short, samples[:int(0.3 * rate)], rate)     # under conf/mfcc.conf's min-duration
    fails("enroll", "-p", package, "-q", "--store", store, "--speaker", "bob", clip, short,
          says="short.wav: 0.300 s is shorter than --min-duration=0.5")
    fails("enroll", "-p", package, "-q", "--store", store, "--speaker", "bob", clip,   # 0.44 s
          "--min-speech", "0.6", says="s of speech after VAD is too short to enrol "
                                      "(--min-speech 0.6)")
    fails("enroll", "-p", package, "-q", "--store", store, "--speaker", "b o b", clip,
          says="whitespace")
    fails("identify", "-p", package, "-q", "--store", tmp_path / "nobody", clip,
          says="no speakers enrolled")


def test_threshold_picks_and_saves_an_operating_point(tmp_path, asc_root):
    from pyutils.deploy.package import Package
    package = build(tmp_path)
    out = ok(sv("threshold", "-p", package, "-q", "--target-far", "0.1"))
    assert "'far_0.1'" in out.stdout and "10.00 % false alarms" in out.stdout
    calibration = Package(package).calibration("cosine")     # sha256 still verifies
    point = calibration.operating_points["far_0.1"]
    assert point["p_fa"] == 0.1 and point["num_nontarget"] == 200
    # 20 of 200 non-targets (-0.5..0.6 evenly) lie above the threshold
    assert 0.4834 < calibration.thresholds["far_0.1"] < 0.4946
    clip = asc_clip(asc_root, 21)
    text = ok(sv("verify", "-p", package, "-q", clip, clip, "--threshold", "far_0.1")).stdout
    assert "10.00 % false alarms" in text
    frr = ok(sv("threshold", "-p", package, "-q", "--target-frr", "0.25", "--dry-run")).stdout
    assert "not saved" in frr and "frr_0.25" not in Package(package).calibration("cosine").thresholds
    bad = sv("threshold", "-p", package, "-q", "--target-far", "2")
    assert bad.returncode == 1 and "[0, 1)" in bad.stderr


def test_verify_applies_the_packaged_qmf(tmp_path, asc_root):
    package = build(tmp_path, qmf=True)
    from pyutils.deploy.package import Package
    clip = asc_clip(asc_root, 21)
    frames = len(Package(package).frontend()(clip, "00000021_NO_01"))   # the id seeds dither
    got = json.loads(ok(sv("verify", "-p", package, "-q", "--json", clip, clip)).stdout)
    seconds = frames * 0.01
    assert got["speech_seconds"]["test"] == pytest.approx(seconds)
    assert got["calibration"] == "QMF"
    assert got["llr"] == pytest.approx(8 * got["score"] + 0.75 * math.log(seconds) - 5, abs=1e-5)
    bayes = json.loads(ok(sv("verify", "-p", package, "-q", "--json", clip, clip,
                             "--threshold", "bayes")).stdout)
    assert bayes["threshold"] == pytest.approx(math.log(99))
    assert bayes["decision"] == ("accept" if bayes["llr"] >= math.log(99) else "reject")
    assert bayes["error_rates"]["p_fa"] == 0.001
    # an enrolled speaker carries its total speech seconds: identify's LLR is QMF's too
    store = tmp_path / "store"
    ok(sv("enroll", "-p", package, "-q", "--speaker", "alice", "--store", store, clip))
    got = json.loads(ok(sv("identify", "-p", package, "-q", "--json", "--store", store,
                           clip)).stdout)
    top = got["ranked"][0]
    assert top["llr"] == pytest.approx(8 * top["score"] + 0.75 * math.log(seconds) - 5,
                                       abs=1e-5)
