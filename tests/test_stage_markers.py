"""One marker mechanism for every stage (issue 7, item 1), and what the feature
stage writes: a changed feature config reruns every stage that reads the
features, although the rewritten archives keep their byte offsets (feats.scp
and vad.scp byte-identical); outputs honour the umask; temp files of killed
writers are removed; too-short audio is a counted skip by default.
"""
import os
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
import yaml

from pyutils.training.trainer import train
from pyutils.utils.arkio import load_scp_dict
from pyutils.utils.fileio import write_lines
from tests.conftest import ROOT
from tests.test_robustness_audio import RATE, read_lines, tone, write_data_dir

STEPS = os.path.join(ROOT, "steps")


def step(name, *args):
    return subprocess.run([os.path.join(STEPS, name), *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True)


def ok(result):
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """Audio of 4 speakers -> features -> training features -> a small model."""
    root = tmp_path_factory.mktemp("chain")
    audio = root / "audio"
    audio.mkdir()
    entries = {}
    for s in range(4):
        for u in range(3):
            path = audio / f"s{s}u{u}.wav"
            # loudness rising over 40 dB: the VAD threshold decides where speech starts
            ramp = np.logspace(-2, 0, 2 * RATE)
            x = tone(2 * RATE, seed=10 * s + u, freqs=(200.0 * (s + 1), 1300.0)) * ramp
            sf.write(path, x.astype(np.int16), RATE)
            entries[f"s{s}-u{u}"] = str(path)
    data = root / "data"
    write_data_dir(data, entries)
    utts = sorted(entries)
    write_lines(str(data / "trials"), (f"{a} {b} {'target' if a[:2] == b[:2] else 'nontarget'}"
                                       for i, a in enumerate(utts) for b in utts[i + 1:]))
    vad = root / "vad.conf"
    shutil.copy(os.path.join(ROOT, "conf", "vad.conf"), vad)
    ok(step("make_mfcc_vad.sh", "--nj", 2, "--vad-config", vad, data, root / "log", root / "mfcc"))
    ok(step("prepare_feats_for_egs.sh", "--nj", 2, "--min-len", 50, "--min-num-utts", 2,
            data, root / "data_no_sil", root / "log", root / "mfcc"))
    config = {
        "model": {"name": "xvector", "embed_dim": 8, "frame_dims": [32, 32, 32, 32, 64]},
        "loss": {"name": "softmax"},
        "data": {"min_chunk_frames": 40, "max_chunk_frames": 60, "batch_size": 8,
                 "chunks_per_epoch": 16},
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        "scheduler": {"name": "exponential", "warmup_steps": 1, "final_lr_ratio": 0.1},
        "training": {"epochs": 1, "seed": 3, "num_threads": 1},
    }
    (root / "model.yaml").write_text(yaml.safe_dump(config))
    model = train(str(root / "model.yaml"), str(root / "data_no_sil"), str(root / "exp"))
    return root, data, vad, model


def downstream(root, data, model):
    """Stages 2, 4, 5 and 6 on the chain; returns their stdout."""
    exp = root / "exp"
    return [
        ok(step("prepare_feats_for_egs.sh", "--nj", 2, "--min-len", 50, "--min-num-utts", 2,
                data, root / "data_no_sil", root / "log", root / "mfcc")),
        ok(step("extract_embeddings.sh", "--nj", 2, model, data, exp / "emb")),
        ok(step("train_backend.sh", "--lda-dim", 3, "--plda-em-iters", 2, exp / "emb", data,
                exp / "backend")),
        ok(step("score_trials.sh", "--backend", "plda", exp / "backend", exp / "emb",
                data / "trials", exp / "scores")),
    ]


SKIPPED = ["is complete", "is complete", "is complete", "is up to date"]


def test_changed_vad_config_reruns_every_stage_that_reads_the_features(chain):
    root, data, vad, model = chain
    first = downstream(root, data, model)      # stage 2 ran already, in the fixture
    assert [s in out for s, out in zip(SKIPPED, first)] == [True, False, False, False]
    # a rerun skips each stage
    assert all(s in out for s, out in zip(SKIPPED, downstream(root, data, model)))
    feats_scp, vad_scp = (data / "feats.scp").read_bytes(), (data / "vad.scp").read_bytes()
    vad_before = load_scp_dict(str(data / "vad.scp"))
    emb_before = load_scp_dict(str(root / "exp" / "emb" / "xvector.scp"))
    scores_before = (root / "exp" / "scores" / "scores").read_text()

    vad.write_text(vad.read_text().replace("--vad-energy-threshold=5.5",
                                           "--vad-energy-threshold=8.0"))
    out = ok(step("make_mfcc_vad.sh", "--nj", 2, "--vad-config", vad, data, root / "log",
                  root / "mfcc"))
    assert "already has features" not in out
    # the archives were rewritten at the same offsets: the scp files alone show nothing
    assert (data / "feats.scp").read_bytes() == feats_scp
    assert (data / "vad.scp").read_bytes() == vad_scp
    vad_after = load_scp_dict(str(data / "vad.scp"))
    assert any(not np.array_equal(vad_after[u], vad_before[u]) for u in vad_before)

    second = downstream(root, data, model)
    assert not any(s in out for s, out in zip(SKIPPED, second)), second
    # and the job markers did not vouch for their old outputs either
    for log in os.listdir(root / "exp" / "emb" / "log"):
        assert "job already done" not in (root / "exp" / "emb" / "log" / log).read_text()
    emb_after = load_scp_dict(str(root / "exp" / "emb" / "xvector.scp"))
    assert any(not np.allclose(emb_after[u], emb_before[u]) for u in emb_before)
    assert (root / "exp" / "scores" / "scores").read_text() != scores_before
    # removing one stage's outputs reruns that stage and the ones after it only
    shutil.rmtree(root / "exp" / "backend")
    third = downstream(root, data, model)
    assert [s in out for s, out in zip(SKIPPED, third)] == [True, True, False, False]


def test_outputs_honour_the_umask_and_stale_temp_files_go(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    entries = {}
    for u in range(2):
        entries[f"s0-u{u}"] = str(audio / f"{u}.wav")
        sf.write(entries[f"s0-u{u}"], tone(RATE, seed=u), RATE)
    data = tmp_path / "data"
    write_data_dir(data, entries)
    mfcc = tmp_path / "mfcc"
    mfcc.mkdir()
    stale = mfcc / ".raw_mfcc_data.1.ark.k1ll3d.tmp"   # what a SIGKILLed job leaves
    stale.write_bytes(b"\0" * 1000)
    result = subprocess.run(["bash", "-c", 'umask 022 && exec "$@"', "-",
                             os.path.join(STEPS, "make_mfcc_vad.sh"), "--nj", "1",
                             str(data), str(tmp_path / "log"), str(mfcc)],
                            cwd=ROOT, capture_output=True, text=True)
    ok(result)
    assert not stale.exists()
    for path in (mfcc / "raw_mfcc_data.1.ark", mfcc / "raw_mfcc_data.1.scp",
                 data / "feats.scp", data / ".mfcc_vad.done"):
        assert oct(path.stat().st_mode & 0o777) == oct(0o644), path
    assert not [n for n in os.listdir(mfcc) if n.endswith(".tmp")]


def test_too_short_audio_is_a_counted_skip_with_the_default_config(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    entries = {"s0-long": str(audio / "long.wav"), "s0-short": str(audio / "short.wav")}
    sf.write(entries["s0-long"], tone(RATE), RATE)
    sf.write(entries["s0-short"], tone(RATE // 5), RATE)     # 0.2 s
    data = tmp_path / "data"
    write_data_dir(data, entries)
    result = step("make_mfcc_vad.sh", "--nj", 1, data, tmp_path / "log", tmp_path / "mfcc")
    out = ok(result)
    assert "done 1 of 2 utterances (1 failed: 1 too short)" in out
    assert read_lines(tmp_path / "log" / "skipped_data")[0].startswith("s0-short")
    assert [l.split()[0] for l in read_lines(data / "utt2spk")] == ["s0-long"]
