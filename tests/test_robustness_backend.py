"""Bad embeddings, speakers and scores through the real CLIs: python -m
pyutils.cli.train_backend, pyutils.cli.compute_metrics and pyutils.cli.filter_short.
Errors name file, line and key; skips are logged and counted in the summary."""
import re
import subprocess
import sys

import kaldiio
import numpy as np
import pytest

from pyutils.backends.plda import Plda, read_matrix
from tests.conftest import ROOT


def cli(module, *args):
    return subprocess.run([sys.executable, "-m", f"pyutils.cli.{module}", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True)


def write_embeddings(tmp_path, name, table):
    """Write with kaldiio directly: the toolkit's own writer refuses NaN."""
    scp = tmp_path / f"{name}.scp"
    with kaldiio.WriteHelper(f"ark,scp:{tmp_path / name}.ark,{scp}") as writer:
        for key in sorted(table):
            writer(key, np.asarray(table[key], dtype=np.float32))
    return scp


@pytest.fixture
def embeddings(tmp_path):
    """4 speakers x 6 utterances of dim 8, one embedding without a speaker, one
    utt2spk speaker (s9) without embeddings."""
    rng = np.random.default_rng(0)
    table = {}
    for s in range(4):
        centre = 3 * rng.normal(size=8)
        for u in range(6):
            table[f"s{s}-u{u}"] = centre + rng.normal(size=8)
    table["zz-orphan"] = rng.normal(size=8)
    utt2spk = tmp_path / "utt2spk"
    utt2spk.write_text("".join(f"{k} {k.split('-')[0]}\n" for k in sorted(table)
                               if not k.startswith("zz")) + "s9-u0 s9\n")
    return table, utt2spk


def train_backend(scp, utt2spk, out, lda_dim=200):
    return cli("train_backend", "--train-scp", scp, "--utt2spk", utt2spk,
               "--lda-dim", lda_dim, "--out-dir", out)


def test_train_backend_counts_skips_and_clips_lda_plda_dim(tmp_path, embeddings):
    table, utt2spk = embeddings
    scp = write_embeddings(tmp_path, "xvector", table)
    out = tmp_path / "backend"
    result = train_backend(scp, utt2spk, out)
    assert result.returncode == 0, result.stderr
    log = result.stderr
    assert f"zz-orphan: skipped (no speaker): not in {utt2spk}" in log
    assert "Training on 24 of 25 embeddings (1 skipped: 1 no speaker)" in log
    assert "24 of 25 utterances and 4 of 5 speakers of utt2spk have an embedding" in log
    assert f"1 utterance(s) of {utt2spk} have no embedding" in log and "'s9-u0'" in log
    assert "1 speaker(s) of" in log and "e.g. 's9'" in log
    # fewer speakers than the requested LDA/PLDA dimension: clipped, with a warning saying why
    assert "LDA dim 200 > num_speakers - 1; using 3" in log
    assert "LDA, and the PLDA trained on its output, get 3 dimensions" in log
    assert read_matrix(str(out / "lda.mat")).shape == (3, 9)
    assert Plda.load(str(out / "plda")).dim == 3
    assert (out / ".done").read_text().startswith("lda_dim=3 plda_dim=3 speakers=4 "
                                                  "utterances=24 skipped=1")


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_train_backend_names_a_non_finite_embedding(tmp_path, embeddings, value):
    table, utt2spk = embeddings
    table["s1-u3"] = table["s1-u3"].copy()
    table["s1-u3"][2] = value
    scp = write_embeddings(tmp_path, "xvector", table)
    lineno = sorted(table).index("s1-u3") + 1
    result = train_backend(scp, utt2spk, tmp_path / "backend")
    assert result.returncode == 1
    assert re.search(rf"train_backend: error: {re.escape(str(scp))}:{lineno}: embedding "
                     rf"'s1-u3' has 1 NaN/inf value\(s\)", result.stderr), result.stderr
    assert not (tmp_path / "backend" / ".done").exists()


def test_train_backend_names_an_embedding_of_another_dimension(tmp_path, embeddings):
    table, utt2spk = embeddings
    table["s2-u1"] = np.ones(5)
    scp = write_embeddings(tmp_path, "xvector", table)
    result = train_backend(scp, utt2spk, tmp_path / "backend")
    assert result.returncode == 1
    assert "embedding 's2-u1' has dimension 5 but 's0-u0' has 8" in result.stderr


def test_train_backend_needs_two_speakers(tmp_path, embeddings):
    table, utt2spk = embeddings
    scp = write_embeddings(tmp_path, "xvector", {k: v for k, v in table.items()
                                                 if k.startswith("s0-")})
    result = train_backend(scp, utt2spk, tmp_path / "backend")
    assert result.returncode == 1
    assert "come from 1 speaker; LDA and PLDA need at least 2" in result.stderr


def test_train_backend_too_little_data_says_what_to_do(tmp_path, embeddings):
    table, utt2spk = embeddings
    rng = np.random.default_rng(1)
    wide = {k: rng.normal(size=40) for k in table}  # 25 vectors < 40 dimensions
    scp = write_embeddings(tmp_path, "xvector", wide)
    result = train_backend(scp, utt2spk, tmp_path / "backend", lda_dim=2)
    assert result.returncode == 1
    assert "too little data: 24 utterances for dimension 40" in result.stderr
    assert "windowed embeddings (backend_window > 0 in conf/backend.conf)" in result.stderr
    assert "a smaller embed_dim" in result.stderr and "lda_dim does not help" in result.stderr
    # cosine-only scoring is no way out: run.sh's stage 5 trains LDA and PLDA whatever it scores
    assert "or score with cosine" not in result.stderr and "nor does backends" in result.stderr
    # windowed vectors (<utt>-<first>-<end> ids, as stage 4 writes): do not suggest windows
    windows = tmp_path / "windows"
    windows.mkdir()
    spk = dict(line.split() for line in open(utt2spk))
    scp = write_embeddings(windows, "xvector", {f"{k}-0000000-0000300": v for k, v in wide.items()
                                                if k in spk})
    (windows / "utt2spk").write_text("".join(f"{k}-0000000-0000300 {spk[k]}\n"
                                             for k in sorted(wide) if k in spk))
    result = train_backend(scp, windows / "utt2spk", tmp_path / "backend2", lda_dim=2)
    assert result.returncode == 1
    assert "windowed embeddings already: a smaller backend_window_shift" in result.stderr


TRIALS = "a-1 a-2 target\na-1 b-1 nontarget\na-2 b-1 nontarget\nb-1 b-2 target\n"


def compute_metrics(tmp_path, trials, scores):
    (tmp_path / "trials").write_text(trials)
    (tmp_path / "scores").write_text(scores)
    return cli("compute_metrics", "--trials", tmp_path / "trials", "--scores",
               f"plda={tmp_path / 'scores'}", "--det-png", tmp_path / "det.png",
               "--results-md", tmp_path / "results.md", "--system", "x")


def test_compute_metrics_names_a_non_finite_score(tmp_path):
    result = compute_metrics(tmp_path, TRIALS, "a-1 a-2 1.5\na-1 b-1 nan\na-2 b-1 -2\n"
                                               "b-1 b-2 inf\n")
    assert result.returncode == 1
    assert (f"compute_metrics: error: {tmp_path / 'scores'}:2: bad score 'nan' for trial "
            f"'a-1 b-1': NaN/inf (non-finite)") in result.stderr
    assert not (tmp_path / "results.md").exists()


def test_compute_metrics_names_trials_with_unknown_utterances(tmp_path):
    scores = "a-1 a-2 1.5\na-1 b-1 -1\na-2 b-1 -2\nb-1 b-2 2\n"
    result = compute_metrics(tmp_path, TRIALS + "a-1 zz-9 nontarget\n", scores)
    assert result.returncode == 1
    assert (f"{tmp_path / 'trials'}:5: trial 'a-1 zz-9' has no score in "
            f"{tmp_path / 'scores'}") in result.stderr
    result = compute_metrics(tmp_path, TRIALS, scores + "zz-9 b-1 0.3\n")
    assert result.returncode == 1
    assert (f"{tmp_path / 'scores'}:5: score for 'zz-9 b-1' which is not a trial in "
            f"{tmp_path / 'trials'}") in result.stderr


def test_compute_metrics_without_target_trials_names_the_files(tmp_path):
    result = compute_metrics(tmp_path, "a-1 b-1 nontarget\na-2 b-1 nontarget\n",
                             "a-1 b-1 0.1\na-2 b-1 0.2\n")
    assert result.returncode == 1
    assert f"{tmp_path / 'scores'} (trials {tmp_path / 'trials'}): compute_eer: no target " \
        "scores" in result.stderr


def test_filter_short_counts_empty_speakers_and_missing_features(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    frames = {"a-1": 50, "a-2": 60, "a-3": 70,          # kept
              "b-1": 5, "b-2": 6,                       # all too short: b has no utterances left
              "c-1": 50, "c-2": 5,                      # one left: too few utterances
              "d-2": 80, "d-3": 90}                     # d-1 has no features (skipped earlier)
    utts = sorted(list(frames) + ["d-1"])
    (data / "utt2spk").write_text("".join(f"{u} {u[0]}\n" for u in utts))
    (data / "utt2num_frames").write_text("".join(f"{u} {frames[u]}\n" for u in sorted(frames)))
    result = cli("filter_short", "--min-len", 10, "--min-num-utts", 2, data)
    assert result.returncode == 0, result.stderr
    log = result.stderr
    assert "d-1: removed (no features)" in log
    assert "b-1: removed (too short): 5 frames < --min-len 10" in log
    assert "b: removed (no utterances left)" in log
    assert "c: removed (too few utterances): 1 utterances < --min-num-utts 2" in log
    assert ("kept 5 of 10 utterances (5 removed: 3 too short, 1 no features, 1 speaker "
            "removed); kept 2 of 4 speakers (2 removed: 1 no utterances left, 1 too few "
            "utterances)") in log
    assert (data / "spk2utt").read_text() == "a a-1 a-2 a-3\nd d-2 d-3\n"

    (data / "utt2spk").write_text("b-1 b\nb-2 b\n")
    result = cli("filter_short", "--min-len", 10, "--min-num-utts", 2, data)
    assert result.returncode == 1
    assert "no utterance survives --min-len 10 and --min-num-utts 2: kept 0 of 2" in result.stderr
