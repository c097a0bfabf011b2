"""steps/ scripts (issue 17): each checks its numeric options where it parses
them (utils/parse_options.sh: an option takes its default's type; check_int and
check_number for ranges), with a one-line error; and each works when called
from any directory, not only from the recipe's (its utils/, conf/ defaults)."""
import os
import subprocess

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import ROOT

STEPS = os.path.join(ROOT, "steps")


def call(cwd, script, *args):
    env = {k: v for k, v in os.environ.items() if k != "SV_ROOT"}   # as a user's shell
    return subprocess.run([os.path.join(STEPS, script), *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("script, args, message", [
    ("make_shards.sh", ["--utts-per-shard", "many", "d", "s"],
     "option --utts-per-shard takes a whole number, got 'many'"),
    ("make_shards.sh", ["--utts-per-shard", "0", "d", "s"],
     "--utts-per-shard must be at least 1, got 0"),
    ("make_mfcc_vad.sh", ["--nj", "0", "d", "l", "f"], "--nj must be at least 1, got 0"),
    ("prepare_feats_for_egs.sh", ["--min-len", "2.5", "a", "b", "l", "f"],
     "option --min-len takes a whole number, got '2.5'"),
    ("extract_embeddings.sh", ["--num-threads", "0", "m", "d", "o"],
     "--num-threads must be at least 1, got 0"),
    ("train.sh", ["--nproc-per-node", "abc", "c.yaml", "d", "e"],
     "--nproc-per-node takes a whole number, got 'abc'"),
    ("train.sh", ["--nnodes", "2", "--node-rank", "2", "c.yaml", "d", "e"],
     "--node-rank must be at most 1, got 2"),
    ("train_backend.sh", ["--lda-dim", "x", "e", "d", "b"],
     "option --lda-dim takes a whole number, got 'x'"),
    ("score_trials.sh", ["--top-k", "0", "b", "e", "t", "s"], "--top-k must be at least 1, got 0"),
    ("calibrate.sh", ["--prior", "1.5", "t", "c", "e", "j"],
     "--prior takes a number between 0 and 1 (exclusive), got '1.5'"),
    ("make_trials.sh", ["--max-trials", "-1", "e", "d", "t"],
     "option --max-trials takes a whole number, got '-1'"),
])
def test_bad_numbers_are_one_line_errors(tmp_path, script, args, message):
    result = call(tmp_path, script, *args)
    assert result.returncode == 1
    assert result.stderr == f"{STEPS}/{script}: {message}\n"     # one line, no shell error
    assert os.listdir(tmp_path) == []                  # nothing done


def test_steps_work_from_any_directory(tmp_path):
    """From a directory without utils/ or conf/: the toolkit's own are used."""
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    data.mkdir()
    lines = []
    for u in range(2):
        sf.write(tmp_path / f"u{u}.wav", (rng.normal(size=16000) * 3000).astype(np.int16), 16000)
        lines.append(f"s1-u{u} {tmp_path}/u{u}.wav")
    (data / "wav.scp").write_text("\n".join(lines) + "\n")
    (data / "utt2spk").write_text("s1-u0 s1\ns1-u1 s1\n")
    (data / "spk2utt").write_text("s1 s1-u0 s1-u1\n")
    shards = call(tmp_path, "make_shards.sh", "--utts-per-shard", 1, "data", "shards")
    assert shards.returncode == 0, shards.stderr
    assert len((tmp_path / "shards" / "shard.list").read_text().split()) == 2
    feats = call(tmp_path, "make_mfcc_vad.sh", "--nj", 1, "data", "log", "mfcc")
    assert feats.returncode == 0, feats.stderr
    assert len((data / "feats.scp").read_text().splitlines()) == 2
    assert (data / ".mfcc_vad.done").exists()
    assert sorted(os.listdir(tmp_path)) == ["data", "log", "mfcc", "shards", "u0.wav", "u1.wav"]
