"""Label-free training wired into stage 3 (issue 12): no labels read, bit-identical
resume of MoCo and DINO, --unlabelled-data, and fine-tuning from the encoder."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from pyutils.cli import train as train_cli
from pyutils.extraction.extract import load_embedding_model
from pyutils.models import build_model
from pyutils.training import checkpoint
from pyutils.training.inputs import training_inputs
from pyutils.training.selfsup.pretrained import encoder_keys, init_encoder
from pyutils.training.selfsup.train import train_label_free
from pyutils.training.trainer import train
from pyutils.utils.arkio import write_scp_dict
from pyutils.utils.fileio import write_lines
from tests.conftest import ROOT

MODEL = {"name": "xvector", "embed_dim": 16, "frame_dims": [16, 16, 16, 16, 32]}


def conf(name):
    return os.path.join(ROOT, "conf", name)


def make_audio_dir(directory, utts=6, seconds=2.0, prefix="u", seed=0):
    """A data dir with only wav.scp: tone bursts in noise (voiced) with pauses (silence)."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    lines = []
    for u in range(utts):
        bursts = (np.sin(2 * np.pi * (1.5 + 0.3 * u) * t) > -0.3).astype(float)
        x = (np.sin(2 * np.pi * (150 + 40 * u) * t) * 8000 + rng.normal(size=t.size) * 2000) \
            * bursts + rng.normal(size=t.size) * 30
        path = directory / f"{prefix}{u}.wav"
        sf.write(str(path), x.astype(np.int16), 16000)
        lines.append(f"{prefix}{u} {path}")
    write_lines(str(directory / "wav.scp"), lines)
    return directory


def make_noise(directory):
    directory.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(5).normal(size=16000 * 3) * 3000
    sf.write(str(directory / "noise.wav"), noise.astype(np.int16), 16000)
    return str(directory)


def write_config(path, method, noise_dir=None, epochs=2, **overrides):
    ssl = ({"method": "moco", "queue_size": 16, "momentum": 0.9, "projection_dim": 8,
            "bn_splits": 2} if method == "moco" else
           {"method": "dino", "out_dim": 32, "hidden_dim": 16, "bottleneck_dim": 8,
            "momentum": 0.9, "num_long": 2, "num_short": 2, "long_frames": 60,
            "short_frames": 30})
    augmentation = {"speed": {"prob": 0.5, "factors": [0.9, 1.1]},
                    "reverb": {"prob": 0.5, "simulate": {"bank_size": 4}}}
    if noise_dir:
        augmentation["noise"] = {"prob": 0.5, "dirs": [noise_dir], "snr": [5, 15]}
    config = {
        "features": {"type": "mfcc", "on_the_fly": True, "conf": conf("mfcc.conf"),
                     "vad_conf": conf("vad.conf"), "cmvn_conf": conf("cmvn.conf"),
                     "vad_feat_conf": conf("mfcc.conf")},
        "model": dict(MODEL), "ssl": ssl, "augmentation": augmentation,
        "data": {"min_chunk_frames": 50, "max_chunk_frames": 50, "batch_size": 4,
                 "chunks_per_epoch": 8},
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        "scheduler": {"name": "exponential", "warmup_steps": 1, "final_lr_ratio": 0.1},
        "training": {"epochs": epochs, "seed": 1, "num_threads": 1},
    }
    for key, value in overrides.items():
        section, name = key.split("__")
        config[section][name] = value
    path.write_text(yaml.safe_dump(config))
    return str(path)


def _states_equal(a, b):
    assert a.keys() == b.keys()
    return all(torch.equal(a[k], b[k]) for k in a)


def test_label_free_stage_opens_neither_utt2spk_nor_spk2utt(tmp_path):
    data = make_audio_dir(tmp_path / "data")
    # the labels are there, readable: the label-free code path must still not open them
    write_lines(str(data / "utt2spk"), [f"u{u} s{u % 2}" for u in range(6)])
    write_lines(str(data / "spk2utt"), ["s0 u0 u2 u4", "s1 u1 u3 u5"])
    config = write_config(tmp_path / "moco.yaml", "moco", epochs=1)
    opened, recording = [], [True]

    def audit(event, args):
        if recording[0] and event == "open" and args and isinstance(args[0], (str, bytes,
                                                                             os.PathLike)):
            opened.append(os.fsdecode(args[0]))
    sys.addaudithook(audit)     # (hooks cannot be removed: this one stops recording below)
    try:
        train_cli.main(["--config", config, "--data", str(data), "--exp-dir",
                        str(tmp_path / "exp")])
    finally:
        recording[0] = False
    seen = list(opened)
    assert any(p.endswith("wav.scp") for p in seen)              # the hook does see opens
    assert not [p for p in seen if os.path.basename(p) in ("utt2spk", "spk2utt")]
    assert (tmp_path / "exp" / ".done").exists()


@pytest.mark.slow     # ~10 s alone, 3 runs of steps/train.sh (27 s on the shared CPU)
def test_label_free_stage_trains_on_wav_scp_alone_through_steps_train_sh(tmp_path):
    data = make_audio_dir(tmp_path / "data")
    extra = make_audio_dir(tmp_path / "more", utts=3, prefix="x", seed=1)
    assert sorted(os.listdir(data)) == sorted([f"u{u}.wav" for u in range(6)] + ["wav.scp"])
    config = write_config(tmp_path / "moco.yaml", "moco", epochs=1)
    exp = tmp_path / "exp"
    env = {**os.environ, "PYTHONPATH": ROOT}
    cmd = ["steps/train.sh", "--unlabelled-data", str(extra), config, str(data), str(exp)]
    first = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr + first.stdout
    summary = json.loads((exp / "train_summary.json").read_text())
    assert summary["label_free"] == "moco" and summary["unlabelled_utterances"] == 9
    assert summary["utterances_seen"] == 8
    assert "moco loss" in (exp / "log" / "train.log").read_text()
    # final.pt is the encoder in the supervised format: extraction loads it unchanged
    model = load_embedding_model(str(exp / "final.pt"))
    assert model(torch.randn(2, 80, 30)).shape == (2, 16)
    # rerun: skipped by its marker (which names no label file)
    again = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    assert again.returncode == 0 and "is trained with this config and data" in again.stdout
    # --unlabelled-data with a supervised config is an error
    supervised = dict(yaml.safe_load(open(config)))
    supervised.pop("ssl")
    supervised["loss"] = {"name": "softmax"}
    (tmp_path / "sup.yaml").write_text(yaml.safe_dump(supervised))
    bad = subprocess.run(["steps/train.sh", "--unlabelled-data", str(extra),
                          str(tmp_path / "sup.yaml"), str(data), str(tmp_path / "e2")],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "needs a label-free config" in bad.stderr


@pytest.mark.parametrize("method", ["moco", "dino"])
def test_resumed_run_is_bit_identical_to_an_uninterrupted_one(tmp_path, method):
    data = str(make_audio_dir(tmp_path / "data"))
    config = write_config(tmp_path / "c.yaml", method, make_noise(tmp_path / "noise"))
    train_label_free(config, data, str(tmp_path / "straight"))
    train_label_free(config, data, str(tmp_path / "resumed"), max_epochs=1)
    assert not (tmp_path / "resumed" / "final.pt").exists()
    train_label_free(config, data, str(tmp_path / "resumed"))
    a, b = (checkpoint.load(str(tmp_path / run / "models" / "epoch_2.pt"))
            for run in ("straight", "resumed"))
    # the whole wrapper: query/key encoders and queue (MoCo), student/teacher/centre (DINO)
    assert _states_equal(a["ssl_state"], b["ssl_state"])
    assert a["stats"]["step_losses"] == b["stats"]["step_losses"]
    state = a["ssl_state"]
    if method == "moco":
        assert int(state["queue_ptr"]) == 0          # 4 batches of 4 keys in a queue of 16
        assert any(k.startswith("encoder_k.") for k in state)
    else:
        assert state["loss.center"].abs().sum() > 0
        assert any(k.startswith("teacher.") for k in state)
    assert _states_equal(checkpoint.load(str(tmp_path / "straight" / "final.pt"))["model"],
                         checkpoint.load(str(tmp_path / "resumed" / "final.pt"))["model"])
    # the encoder learnt (its first layer moved), its classifier-side head did not
    init = build_model(**{"feat_dim": 30, **MODEL})
    final = checkpoint.load(str(tmp_path / "straight" / "final.pt"))["model"]
    first = "frame_layers.0.affine.weight"
    assert not torch.equal(final[first], init.state_dict()[first])
    head = [k for k in final if k.startswith("head.") and "running" not in k
            and "num_batches" not in k]
    assert head and all(torch.equal(final[k], torch.load(
        str(tmp_path / "straight" / "models" / "epoch_1.pt"), weights_only=False)["model"][k])
        for k in head)


def test_config_errors_name_the_problem(tmp_path):
    data = str(make_audio_dir(tmp_path / "data", utts=2))
    bad_queue = write_config(tmp_path / "q.yaml", "moco", ssl__queue_size=10)
    with pytest.raises(ValueError, match="not a multiple of the global batch 4"):
        train_label_free(bad_queue, data, str(tmp_path / "e1"))
    with_loss = yaml.safe_load(open(write_config(tmp_path / "l.yaml", "moco")))
    with_loss["loss"] = {"name": "softmax"}
    (tmp_path / "l.yaml").write_text(yaml.safe_dump(with_loss))
    with pytest.raises(ValueError, match="has no loss: section"):
        train_label_free(str(tmp_path / "l.yaml"), data, str(tmp_path / "e2"))


def _supervised_data(directory, feat_dim=30):
    rng = np.random.default_rng(0)
    feats = {f"spk{s}-u{u}": (rng.normal(size=feat_dim) * 2 + rng.normal(size=(120, feat_dim)))
             .astype(np.float32) for s in range(3) for u in range(3)}
    write_scp_dict(str(directory / "feats.ark"), str(directory / "feats.scp"), feats)
    write_lines(str(directory / "utt2spk"), (f"{u} {u.split('-')[0]}" for u in sorted(feats)))
    return str(directory)


def _fine_tune_config(path, init_from, model=None):
    config = {"model": dict(model or MODEL), "loss": {"name": "softmax"},
              "data": {"min_chunk_frames": 50, "max_chunk_frames": 50, "batch_size": 4,
                       "chunks_per_epoch": 8},
              "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
              "training": {"epochs": 1, "seed": 3, "num_threads": 1, "init_from": init_from}}
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_fine_tuning_loads_exactly_the_encoder_tensors(tmp_path, monkeypatch):
    audio = str(make_audio_dir(tmp_path / "audio"))
    train_label_free(write_config(tmp_path / "moco.yaml", "moco", epochs=1), audio,
                     str(tmp_path / "moco"))
    saved = checkpoint.load(str(tmp_path / "moco" / "final.pt"))
    assert saved["label_free"] == "moco"
    # mark the checkpoint's head tensors: none of them may be loaded
    for key in saved["model"]:
        if key.startswith("head.") and saved["model"][key].is_floating_point():
            saved["model"][key] = torch.full_like(saved["model"][key], 7.0)
    marked = str(tmp_path / "moco" / "marked.pt")
    checkpoint.save(marked, saved)
    data = _supervised_data(tmp_path / "sup")
    captured = {}
    from pyutils.training.selfsup import pretrained

    def spy(model, path, model_config, feat_dim):
        captured["before"] = {k: v.clone() for k, v in model.state_dict().items()}
        captured["keys"] = init_encoder(model, path, model_config, feat_dim)
        captured["after"] = {k: v.clone() for k, v in model.state_dict().items()}
        return captured["keys"]
    monkeypatch.setattr(pretrained, "init_encoder", spy)
    config = _fine_tune_config(tmp_path / "ft.yaml", marked)
    assert marked in training_inputs(config, data)     # the stamp names the model and
    assert str(tmp_path / "moco" / ".done") in training_inputs(config, data)  # its marker
    train(config, data, str(tmp_path / "ft"))
    before, after = captured["before"], captured["after"]
    expected = [k for k in after if not k.startswith("head.")]
    assert sorted(captured["keys"]) == sorted(expected) == sorted(encoder_keys(after))
    for key in after:
        if key.startswith("head."):
            assert torch.equal(after[key], before[key])      # left as initialised
            assert not (after[key] == 7.0).all() or not after[key].is_floating_point()
        else:
            assert torch.equal(after[key], saved["model"][key])   # loaded
    assert (tmp_path / "ft" / ".done").exists()


def test_init_from_refuses_another_architecture(tmp_path):
    audio = str(make_audio_dir(tmp_path / "audio", utts=2))
    train_label_free(write_config(tmp_path / "moco.yaml", "moco", epochs=1,
                                  data__chunks_per_epoch=4), audio, str(tmp_path / "moco"))
    other = build_model(**{"feat_dim": 30, **MODEL, "embed_dim": 8})
    with pytest.raises(ValueError, match="another architecture: model.embed_dim: 16 -> 8"):
        init_encoder(other, str(tmp_path / "moco" / "final.pt"), {**MODEL, "embed_dim": 8}, 30)
    with pytest.raises(ValueError, match="trained on 30-dim input, this data gives 20"):
        init_encoder(build_model(**{"feat_dim": 20, **MODEL}),
                     str(tmp_path / "moco" / "final.pt"), MODEL, 20)
    with pytest.raises(ValueError, match="no checkpoint"):
        init_encoder(other, str(tmp_path / "nothing.pt"), MODEL, 30)


@pytest.mark.slow     # two torchrun processes (gloo): ~40 s on the shared CPU
@pytest.mark.parametrize("method", ["moco", "dino"])
def test_torchrun_two_processes_share_keys_and_centre(tmp_path, method):
    data = make_audio_dir(tmp_path / "data")
    config = write_config(tmp_path / "c.yaml", method, ssl__queue_size=32) if method == "moco" \
        else write_config(tmp_path / "c.yaml", method)
    exp = tmp_path / "exp"
    run = subprocess.run(["steps/train.sh", "--nproc-per-node", "2", config, str(data), str(exp)],
                         cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT}, capture_output=True,
                         text=True)
    assert run.returncode == 0, run.stderr + (exp / "log" / "train.log").read_text()
    assert json.loads((exp / "train_summary.json").read_text())["processes"] == 2
    state = checkpoint.load(str(exp / "models" / "epoch_2.pt"))["ssl_state"]
    if method == "moco":
        # 2 epochs x 2 steps x the GLOBAL batch of 4 keys (2 per rank, gathered) = 16
        assert int(state["queue_ptr"]) == 16
        assert torch.allclose(state["queue"].norm(dim=0), torch.ones(32), atol=1e-5)
    else:
        assert state["loss.center"].abs().sum() > 0
    load_embedding_model(str(exp / "final.pt"))


def test_half_done_run_with_other_unlabelled_data_starts_over(tmp_path, caplog):
    data = str(make_audio_dir(tmp_path / "data", utts=3))
    more = str(make_audio_dir(tmp_path / "more", utts=2, prefix="x", seed=1))
    config = write_config(tmp_path / "c.yaml", "moco")
    exp = str(tmp_path / "exp")
    train_label_free(config, data, exp, max_epochs=1)
    train_label_free(config, data, exp, unlabelled=[more])
    assert "starting over" in caplog.text and "resuming from" not in caplog.text
    assert json.loads((tmp_path / "exp" / "train_summary.json").read_text())[
        "unlabelled_utterances"] == 5
