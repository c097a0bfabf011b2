"""bench/backend_sweep.py's own pieces: the selection rule, the recognition of a run's
back-end files and the run's paths (known answers, small inputs; its paired bootstrap is
pyutils.metrics.bootstrap.paired_difference_ci, tested in test_metrics_scale.py)."""
import importlib.util
import json
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("backend_sweep",
                                               os.path.join(ROOT, "bench", "backend_sweep.py"))
sweep = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(sweep)


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
