"""The whole recipe, ./run.sh stages 0-7, on a slice of the real ASC corpus.

6 training and 4 evaluation speakers, 3 repetitions (72 + 48 utterances of
about 10 s, 1,128 trials), a narrow x-vector for speed.  Checks every
stage's outputs and that both back-ends are far better than chance; then
that a rerun skips every stage, and that removing one stage's outputs reruns
that stage and the ones after it, and nothing before.
"""
import os
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def tiny_config(path):
    with open(os.path.join(ROOT, "conf", "xvector.yaml")) as handle:
        config = yaml.safe_load(handle)
    config["model"].update(embed_dim=64, frame_dims=[128, 128, 128, 128, 256])
    # the bounds below were observed with affine batch norm (reproduced exactly on
    # 2026-12-02); the Kaldi non-affine default gave cosine 20.8 %, AS-norm 22.0 %, PLDA
    # 22.7 % and PLDA + AS-norm 34.1 % on this slice (4 eval speakers: inside its noise,
    # but past one bound), so this test keeps the run it was calibrated on
    config["model"]["bn_affine"] = True
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
    """{backend: (EER %, minDCF p=0.01)} from results.md, columns found by header."""
    rows, header = {}, None
    for line in open(path):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None and "backend" in cells:
            header = cells
            continue
        if header and len(cells) == len(header) and not set(cells[0]) <= set("-: "):
            row = dict(zip(header, cells))
            eer = row["EER (%)"].split()[0]
            dcf = row["minDCF (p=0.01)"].split()[0]
            rows[row["backend"]] = (float(eer), float(dcf))
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
    rows = results_rows(exp / "results.md")
    assert {"cosine", "plda", "cosine_asnorm", "plda_asnorm"} <= set(rows), rows
    # observed on this slice (2-core CPU, 2026-12-01): cosine 17.8 %, AS-norm 18.6 %,
    # PLDA 25.8 % (4 training speakers' LDA); chance is 50 %. The bounds allow about
    # 6 points of machine-to-machine spread, no more.
    assert rows["cosine"][0] < 24.0 and rows["cosine_asnorm"][0] < 25.0, rows
    assert rows["plda"][0] < 32.0 and rows["plda_asnorm"][0] < 32.0, rows
    for backend, (eer, min_dcf) in rows.items():
        assert 0.0 < eer < 33.0 and 0.0 < min_dcf < 1.0, (backend, eer, min_dcf)
    assert "| plda |" in result.stdout           # run.sh prints the table

    # a rerun skips every stage
    again = run_recipe(tmp_path, asc_root)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "is trained" in again.stdout and "resuming" not in again.stderr
    assert results_rows(exp / "results.md") == rows

    # the back-end's outputs removed: stages 5-7 rerun, stages 0-4 are skipped
    shutil.rmtree(exp / "backend")
    redo = run_recipe(tmp_path, asc_root)
    assert redo.returncode == 0, redo.stderr[-3000:]
    out = redo.stdout
    assert out.count("already has features") == 2 and "is trained" in out
    for emb in ("embeddings_train", "embeddings_eval", "embeddings_train_windows"):
        assert f"{exp / emb} is complete" in out, emb
    assert f"{exp / 'backend'} is complete" not in out
    assert "is up to date" not in out                    # every score file rewritten
    assert (exp / "backend" / "plda").exists()
    assert results_rows(exp / "results.md") == rows      # the same numbers again
