"""The whole recipe, ./run.sh stages 0-7, on a slice of the real ASC corpus.

6 training and 4 evaluation speakers, 3 repetitions (72 + 48 utterances of
about 10 s, 1,128 trials), a narrow x-vector for speed.  Checks every
stage's outputs and the numbers that a deterministic configuration gives,
pinned as the parity tests pin theirs; then that a rerun skips every stage,
and that removing one stage's outputs reruns that stage and the ones after
it, and nothing before.
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
    # affine batch norm, the configuration this test has always run (the Kaldi non-affine
    # default gave cosine 20.8 %, AS-norm 22.0 %, PLDA 22.7 % and PLDA + AS-norm 34.1 % on
    # this slice, unpinned, on 2026-12-02: 4 eval speakers, inside its noise)
    config["model"]["bn_affine"] = True
    config["data"].update(chunks_per_epoch=512, batch_size=32, min_chunk_frames=100,
                          max_chunk_frames=200)
    config["scheduler"].update(warmup_steps=10)
    # deterministic: seeded, one intra-op thread (a thread count changes the float
    # summation order), deterministic algorithms
    config["training"].update(epochs=6, seed=777, num_threads=1, deterministic=True)
    path.write_text(yaml.safe_dump(config))
    return str(path)


# The same float operations in the same order on any x86-64 machine with AVX2: one
# BLAS/OpenMP thread in every numpy and torch process (LDA, PLDA, scoring), whatever the
# core count, and every library's kernels pinned to the AVX2 level (the libraries pick
# AVX-512 kernels, with other roundings, where the CPU has them): PyTorch's own kernels,
# its MKL (conditional numerical reproducibility) and oneDNN, numpy's OpenBLAS.
PINNED_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
              "PYTHONHASHSEED": "0", "ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2",
              "ONEDNN_MAX_CPU_ISA": "AVX2", "OPENBLAS_CORETYPE": "Haswell"}


def run_recipe(tmp_path, asc_root, *extra):
    cmd = ["./run.sh", "--corpus-root", asc_root, "--data", str(tmp_path / "data"),
           "--exp", str(tmp_path / "exp"), "--train-speakers", "1-6",
           "--eval-speakers", "19-22", "--reps", "01,02,03", "--nj", "2",
           "--train-config", tiny_config(tmp_path / "tiny.yaml"), *extra]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, **PINNED_ENV})


# {backend: (EER %, minDCF p=0.01)} of the pinned run (tiny_config, PINNED_ENV, run.sh
# --nj 2): re-pinned 2026-12-06 after the statistics pooling's variance became the mean
# squared deviation (x-vector training follows another path: before, 18.561 / 19.697 / 18.561
# / 20.833 %); three runs gave these to the printed digit (a 2-core AMD EPYC, AVX2).
# Chance is 50 %.
EXPECTED = {"cosine": (15.152, 0.9356), "cosine_asnorm": (24.621, 0.9508),
            "plda": (21.591, 0.9962), "plda_asnorm": (21.212, 0.7689)}
# The run is bit-reproducible under PINNED_ENV with requirements.txt's versions (measured on
# this machine; the pins are there to give the same bits on any AVX2 x86-64 one), so the
# numbers are exact, and a moved number is a change in what the recipe computes.  The
# tolerances leave room for rounding-level changes in the back-end and no more: one trial
# crossing a neighbour moves the EER by up to 0.38 points (a target: 264 of them) or 0.12 (a
# non-target: 864), and minDCF(p=0.01) by 0.115 per false alarm (99/864) -- so about four
# target trials, or one false alarm.  (The old bounds, EER < 24-32 % and minDCF < 1, sat about
# 6 points above the numbers and passed a minDCF of 0.9962 by 0.004.)  Anything upstream of the
# embeddings moves the numbers chaotically, as mere changes of float rounding showed: the
# AVX-512 kernels (PINNED_ENV's ISA pins left out) gave cosine 16.67 %, AS-norm 19.70 %,
# PLDA 21.59 %, PLDA + AS-norm 20.08 %, and with 2 training threads as well 17.80, 18.56,
# 25.76 and 25.76 % (minDCF up to 1.0): up to 7 points from these.  After a deliberate
# change there, rerun twice and re-pin.
EER_TOLERANCE = 1.5
DCF_TOLERANCE = 0.12


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
    for backend, (eer, min_dcf) in EXPECTED.items():
        got_eer, got_dcf = rows[backend]
        assert abs(got_eer - eer) <= EER_TOLERANCE and abs(got_dcf - min_dcf) <= DCF_TOLERANCE, (
            f"{backend}: EER {got_eer} %, minDCF {got_dcf}; pinned: {eer} %, {min_dcf}. All "
            f"rows: {rows} (after a deliberate change, run the test twice and re-pin EXPECTED)")
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
