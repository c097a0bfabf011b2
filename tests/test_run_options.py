"""run.sh refuses bad options with a clear error and a non-zero exit (issue 7,
item 8), before doing any work."""
import os
import shutil
import subprocess

import pytest

from tests.conftest import ROOT


def run(tmp_path, *args):
    return subprocess.run(["./run.sh", "--data", str(tmp_path / "data"),
                           "--exp", str(tmp_path / "exp"), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, message", [
    (["--stage", "abc"], "--stage takes a whole number, got 'abc'"),
    (["--stop-stage", "2x"], "--stop-stage takes a whole number, got '2x'"),
    (["--stage", "9"], "--stage 9: the stages are 0-8"),
    (["--stage", "5", "--stop-stage", "2"], "--stop-stage 2 is before --stage 5"),
    (["--nj", "0"], "--nj must be at least 1"),
    # issue 17 item 3: every number is checked up front, each with a one-line error
    (["--nproc-per-node", "abc"], "option --nproc-per-node takes a whole number, got 'abc'"),
    (["--nproc-per-node", "0"], "--nproc-per-node must be at least 1, got 0"),
    (["--nnodes", "two"], "option --nnodes takes a whole number, got 'two'"),
    (["--nnodes", "0"], "--nnodes must be at least 1, got 0"),
    (["--node-rank", "-1"], "option --node-rank takes a whole number, got '-1'"),
    (["--node-rank", "1"], "--node-rank must be at most 0, got 1"),
    (["--nnodes", "2", "--node-rank", "1"], "--nnodes 2 needs --rdzv-endpoint HOST:PORT"),
    (["--nj", "1.5"], "option --nj takes a whole number, got '1.5'"),
    (["--lda-dim", "x"], "option --lda-dim takes a whole number, got 'x'"),
    (["--backend-window", "-3"], "option --backend-window takes a whole number, got '-3'"),
    (["--calibration-prior", "2"], "--calibration-prior takes a number between 0 and 1"),
    (["--calibration-prior", "high"], "option --calibration-prior takes a number, got 'high'"),
    (["--force", "maybe"], "option --force takes true or false, got 'maybe'"),
    (["--force=yes"], "option --force takes true or false, got 'yes'"),
    (["--no-such-option", "1"], "invalid option --no-such-option"),
    (["stray"], "unexpected argument 'stray'"),
])
def test_bad_options_are_errors(tmp_path, args, message):
    result = run(tmp_path, *args)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert "line " not in result.stderr          # no shell error messages
    assert not (tmp_path / "data").exists() and not (tmp_path / "exp").exists()


def test_a_large_stop_stage_is_accepted(tmp_path):
    """Kaldi users type --stop-stage 100 for "to the end": it passes every check
    (the run stops later, at the missing training config, before any work)."""
    result = run(tmp_path, "--stop-stage", "100", "--train-config", str(tmp_path / "none.yaml"))
    assert result.returncode != 0
    assert result.stderr.strip() == (f"./run.sh: no training config {tmp_path}/none.yaml "
                                     f"(--model/--train-config)")


def recipe_copy(tmp_path):
    """The recipe with its own conf/ (the rest linked): run.sh reads conf/ beside it."""
    recipe = tmp_path / "recipe"
    recipe.mkdir()
    for name in os.listdir(ROOT):
        if name in ("conf", "run.sh", "data", "exp") or name.startswith(".git"):
            continue
        os.symlink(os.path.join(ROOT, name), recipe / name)
    shutil.copytree(os.path.join(ROOT, "conf"), recipe / "conf")
    shutil.copy(os.path.join(ROOT, "run.sh"), recipe / "run.sh")
    return recipe


@pytest.mark.parametrize("conf, line, message", [
    ("backend.conf", "lda_dim=abc", "lda_dim in conf/backend.conf takes a whole number, got 'abc'"),
    ("backend.conf", "asnorm_top_k=0",
     "asnorm_top_k in conf/backend.conf must be at least 1, got 0"),
    ("backend.conf", "calibration_prior=1.5",
     "calibration_prior in conf/backend.conf takes a number between 0 and 1"),
    ("backend.conf", "backend_window_shift=0",
     "backend_window_shift in conf/backend.conf must be at least 1, got 0"),
    ("feats.conf", "min_len=4OO", "min_len in conf/feats.conf takes a whole number, got '4OO'"),
])
def test_numbers_of_the_conf_files_are_checked_up_front(tmp_path, conf, line, message):
    recipe = recipe_copy(tmp_path)
    with open(recipe / "conf" / conf, "a") as handle:
        handle.write(line + "\n")
    result = subprocess.run([str(recipe / "run.sh"), "--data", str(tmp_path / "data"),
                             "--exp", str(tmp_path / "exp")],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert f"run.sh: {message}" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "data").exists() and not (tmp_path / "exp").exists()


def test_overlapping_speaker_sets_are_refused(tmp_path, asc_root):
    result = run(tmp_path, "--corpus-root", asc_root, "--stop-stage", "0",
                 "--train-speakers", "1-6", "--eval-speakers", "5-8")
    assert result.returncode != 0
    assert "--train-speakers and --eval-speakers overlap: 2 speaker(s) in both, e.g. 5" \
        in result.stderr, result.stderr
    bad = run(tmp_path, "--corpus-root", asc_root, "--stop-stage", "0", "--eval-speakers", "30-19")
    assert bad.returncode != 0 and "speaker range '30-19'" in bad.stderr
