"""bench/backend_sweep.py's own pieces: the paired speaker bootstrap, the selection rule, the
recognition of a run's back-end files and the run's paths (known answers, small inputs)."""
import importlib.util
import json
import os

import numpy as np
import pytest

from pyutils.metrics.bootstrap import speaker_bootstrap_ci, trial_speaker_index
from pyutils.metrics.dcf import compute_min_dcf
from pyutils.metrics.eer import compute_eer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("backend_sweep",
                                               os.path.join(ROOT, "bench", "backend_sweep.py"))
sweep = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sweep)


def all_pairs(num_speakers=8, utts=5, seed=0):
    """Scores, labels and (speaker, speaker) pairs of every unordered pair of utterances."""
    rng = np.random.default_rng(seed)
    spk = np.repeat(np.arange(num_speakers), utts)
    first, second = np.triu_indices(spk.size, k=1)
    labels = (spk[first] == spk[second]).astype(np.int64)
    scores = rng.standard_normal(labels.size) + 1.5 * labels
    return scores, labels, np.stack([spk[first], spk[second]], axis=1)


def eer_metric(scores, labels):
    is_target = labels.astype(bool)
    return compute_eer(scores[is_target], scores[~is_target], presorted=True)[0]


def test_paired_replicates_draw_the_speakers_of_the_project_bootstrap():
    """Replicate by replicate, a's EERs and b's minDCFs are the values the project's
    speaker_bootstrap_ci computes on its replicates (same draws, same redraws)."""
    scores, labels, pairs = all_pairs()
    other = scores + np.random.default_rng(1).standard_normal(scores.size)
    num, side1, side2 = trial_speaker_index(pairs)
    a, b = sweep.paired_replicates(scores, other, labels, num, side1, side2, num_replicates=50)
    assert a.shape == b.shape == (50, 2)
    seen = {"eer": [], "dcf": []}

    def eer(s, l):
        seen["eer"].append(eer_metric(s, l))
        return seen["eer"][-1]

    def dcf(s, l):
        seen["dcf"].append(compute_min_dcf(s, l, 0.01, presorted=True)[0])
        return seen["dcf"][-1]
    speaker_bootstrap_ci(eer, scores, labels, pairs, 50)
    speaker_bootstrap_ci(dcf, other, labels, pairs, 50)
    assert a[:, 0].tolist() == seen["eer"] and b[:, 1].tolist() == seen["dcf"]
    assert len(set(seen["eer"])) > 5                   # the replicates do differ


def test_difference_of_a_monotone_rescoring_is_exactly_zero():
    """Same ranking on every replicate: the paired interval is (0, 0), while each system's
    own interval is wide -- what unpaired intervals cannot show."""
    scores, labels, pairs = all_pairs()
    num, side1, side2 = trial_speaker_index(pairs)
    a, b = sweep.paired_replicates(scores, 3 * scores - 1, labels, num, side1, side2,
                                   num_replicates=40)
    assert sweep.difference_interval(a, b) == [(0.0, 0.0), (0.0, 0.0)]
    assert np.ptp(a[:, 0]) > 0.02
    worse = np.where(labels == 1, scores - 3.0, scores)     # every target scored lower
    a, b = sweep.paired_replicates(scores, worse, labels, num, side1, side2, num_replicates=40)
    (low, high), _ = sweep.difference_interval(a, b)
    assert 0 < low <= high


def test_choose_takes_the_lowest_calibration_eer_then_mindcf_never_eval():
    def row(name, eer, dcf, eval_eer):
        return {"name": name, "calib": {"eer": eer, "min_dcf_0.01": dcf},
                "eval": {"eer": eval_eer, "min_dcf_0.01": 0.0}}
    rows = [row("a", 0.05, 0.5, 0.01), row("b", 0.04, 0.6, 0.09), row("c", 0.04, 0.55, 0.2)]
    assert sweep.choose(rows)["name"] == "c"
    assert sweep.choose(rows[:1])["name"] == "a"


def test_compare_kaldi_text(tmp_path):
    a, b, c, d = (tmp_path / n for n in "abcd")
    a.write_text(" [ 1.0 -2.5 3e-4 ]\n")
    b.write_text(" [ 1.0000000000000002 -2.5 3e-4 ]\n")
    c.write_text(" [ 1.0 -2.5 ]\n")
    d.write_text(" [ 1.5 -2.5 3e-4 ]\n")
    assert sweep.compare_kaldi_text(a, a) == 0.0
    assert sweep.compare_kaldi_text(a, b) == pytest.approx(2.2204e-16 / 2.5, rel=1e-3)
    assert sweep.compare_kaldi_text(a, c) == float("inf")
    assert sweep.compare_kaldi_text(a, d) == pytest.approx(0.5 / 2.5)
    e = tmp_path / "e"
    e.write_text(" < 1.0 -2.5 3e-4 ]\n")
    assert sweep.compare_kaldi_text(a, e) == float("inf")


def test_run_paths_resolve_from_run_info(tmp_path):
    model = tmp_path / "exp" / "so" / "m"
    files = ["embeddings_train_windows/xvector.scp", "embeddings_train_windows/utt2spk",
             "embeddings_train/xvector.scp", "embeddings_calib/xvector.scp",
             "embeddings_eval/xvector.scp", "calibration/trials"]
    for f in files:
        (model / f).parent.mkdir(parents=True, exist_ok=True)
        (model / f).write_text("")
    for f in ["data/so/train/utt2spk", "data/so/calib/utt2spk", "data/so/eval/trials",
              "data/so/eval/utt2spk"]:
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_text("")
    (model / "run_info.json").write_text(json.dumps({
        "model_dir": "exp/so/m", "trials": "data/so/eval/trials",
        "backend_data": "data/so/train", "calibration_data": "data/so/calib"}))
    paths = sweep.run_paths(str(model))
    assert paths["train"]["utterances"] == (f"{model}/embeddings_train/xvector.scp",
                                            f"{tmp_path}/data/so/train/utt2spk")
    assert paths["eval"]["utt2spk"] == f"{tmp_path}/data/so/eval/utt2spk"
    assert paths["calib"] == {"scp": f"{model}/embeddings_calib/xvector.scp",
                              "trials": f"{model}/calibration/trials",
                              "utt2spk": f"{tmp_path}/data/so/calib/utt2spk"}
    os.remove(tmp_path / "data/so/calib/utt2spk")
    with pytest.raises(ValueError, match="data/so/calib/utt2spk"):
        sweep.run_paths(str(model))
