"""run.sh refuses bad options with a clear error and a non-zero exit (issue 7,
item 8), before doing any work."""
import os
import re
import shlex
import shutil
import subprocess
import sys

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
    ("train_filters.conf", "min_len=4OO",
     "min_len in conf/train_filters.conf takes a whole number, got '4OO'"),
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


def option_names(path, stop="help_message="):
    """The variables a defaults block assigns (``name=...`` at the start of a line)."""
    names = []
    for line in open(os.path.join(ROOT, path), encoding="utf-8"):
        if line.startswith(stop):
            break
        match = re.match(r"([a-z][a-z0-9_]*)=", line)
        if match:
            names.append(match.group(1))
    return names


def test_help_lists_every_option_with_its_default_and_a_comment():
    """issue 18 item 2: run.sh's --help is made from its defaults block and the conf files
    it sources before parsing (each of their variables is an option), one line each."""
    result = subprocess.run(["./run.sh", "--help"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0
    lines = {}
    for line in result.stderr.splitlines():
        match = re.match(r"  --([a-z0-9-]+) (\S.*?)\s{2,}(\S.*)$", line)
        if match:
            lines[match.group(1).replace("-", "_")] = (match.group(2), match.group(3))
    names = option_names("run.sh")
    for conf in ("conf/corpora/options.conf", "conf/train_filters.conf", "conf/extract.conf",
                 "conf/backend.conf"):
        names += option_names(conf)
    assert {"stage", "corpus", "nnodes", "reps", "calib_holdout", "min_len", "lda_dim",
            "extract_engine", "plda_adapt_mean_diff_scale"} <= set(names)
    assert len(names) == len(set(names))
    missing = [n for n in names if n not in lines]
    assert not missing, (missing, result.stderr)
    assert lines["lda_dim"][0] == "200" and lines["backends"][0] == '"cosine plda"'
    assert lines["data"][0] == '""'
    # and each one is an option run.sh takes
    bad = subprocess.run(["./run.sh", "--plda-adapt-mean-diff-scale", "x"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert "option --plda-adapt-mean-diff-scale takes a number, got 'x'" in bad.stderr


def plan(tmp_path, config, *args):
    path = tmp_path / "net.yaml"
    path.write_text(config)
    result = subprocess.run([sys.executable, "-m", "pyutils.cli.recipe_plan", "--prog", "run.sh",
                             *args, str(path), "d", "e"], cwd=ROOT, capture_output=True,
                            text=True, timeout=60)
    if result.returncode:
        return result.stderr.strip()
    values = {}
    for line in result.stdout.splitlines():
        name, value = line.split("=", 1)
        values[name] = shlex.split(value.strip("()"))
        if not value.startswith("("):
            values[name] = values[name][0] if values[name] else ""
    return values


def test_recipe_plan_resolves_the_data_of_each_stage(tmp_path):
    mfcc = plan(tmp_path, "model: {name: xvector}\n")
    assert (mfcc["feat_type"], mfcc["feat_conf"], mfcc["input"]) == ("mfcc", "conf/mfcc.conf", "feats")
    assert mfcc["ftrain"] == "d/train" and mfcc["evals"] == ["d/eval"]
    assert mfcc["train_data"] == "d/train_no_sil" and mfcc["make_train_feats"] == "true"
    fbank = plan(tmp_path, "features: {type: fbank, conf: f.conf}\n", "--eval-set", "eval_a",
                 "--eval-set", "eval_b", "--adapt", "d2/x", "--aug", "true")
    assert fbank["fevals"] == ["d/eval_a_fbank", "d/eval_b_fbank"]
    assert (fbank["fcalib"], fbank["fadapt"]) == ("d/calib_fbank", "d2/x_fbank")
    assert fbank["nntrain"] == "d/train_fbank_combined"
    assert fbank["train_data"] == "d/train_fbank_combined_no_sil"
    otf = plan(tmp_path, "features: {type: fbank, on_the_fly: true}\n")
    assert otf["train_data"] == "d/train_fbank" and otf["make_train_feats"] == "false"
    wave = plan(tmp_path, "features: {type: waveform}\ndata: {format: shard}\n")
    assert (wave["input"], wave["ftrain"], wave["train_data"]) == ("waveform", "d/train",
                                                                    "e/shards/train")
    assert plan(tmp_path, "features: {type: fbank, on_the_fly: true}\n", "--aug", "true") == (
        f"run.sh: --aug true needs precomputed features; {tmp_path}/net.yaml augments online "
        f"(its augmentation:)")
    assert plan(tmp_path, "features: {type: plp}\n") == (
        f"run.sh: {tmp_path}/net.yaml: unknown features.type 'plp'")
    assert plan(tmp_path, "data: {utts_per_shard: 0}\n") == (
        f"run.sh: utts_per_shard in {tmp_path}/net.yaml (data.utts_per_shard) must be at "
        f"least 1, got 0")


def test_resolve_data_reads_the_corpora_settings_once():
    """Two corpora: their own evaluation sets and protocols, and so762's corpus_min_len
    lowers conf/train_filters.conf's min_len."""
    result = subprocess.run(["steps/resolve_data.sh", "--corpus", "asc,speechocean762",
                             "--reps", "01", "--min-len", "400", "conf/xvector.yaml", "d", "e",
                             "e/xvector"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "min_len=200" in lines and "evals=(d/eval_asc d/eval_speechocean762)" in lines
    assert "eval_protocols=(asc-custom so762-v1 )" in lines
    bad = subprocess.run(["steps/resolve_data.sh", "--corpus", "asc,nope", "--prog", "x",
                          "conf/xvector.yaml", "d", "e", "e/m"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 1
    assert bad.stderr == "x: --corpus asc,nope: no conf/corpora/nope.conf or local/prepare_nope.py\n"
