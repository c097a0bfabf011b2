"""The training marker knows its inputs (issue 7 item 2 / issue 8 item 5), through
steps/train.sh: a changed config or changed data never leaves a stale final.pt
silently; a resume under another config is refused naming the changed keys; an
embed_dim or speaker-count change never reaches a raw size-mismatch traceback;
--force retrains and config.yaml then records the run that was made; a comment or
a runtime-only key changes nothing, and a retraining names the inputs that changed
(issue 17 item 1)."""
import os
import subprocess

import torch
import yaml

from pyutils.training.inputs import changed_keys
from tests.conftest import ROOT
from tests.test_training import make_training_data, write_config


def train_sh(config, data, exp, force=False):
    env = {k: v for k, v in os.environ.items() if k != "SV_ROOT"}
    return subprocess.run(["steps/train.sh", "--cmd", "utils/run.py", "--force",
                           "true" if force else "false", str(config), str(data), str(exp)],
                          cwd=ROOT, env=env, capture_output=True, text=True)


def output(proc, exp):
    log = exp / "log" / "train.log"
    return proc.stdout + proc.stderr + (log.read_text() if log.exists() else "")


def edit(config, section, key, value):
    cfg = yaml.safe_load(config.read_text())
    cfg[section][key] = value
    config.write_text(yaml.safe_dump(cfg))


def test_changed_config_after_training_is_refused_then_retrained_with_force(tmp_path):
    make_training_data(tmp_path)
    config, exp = tmp_path / "c.yaml", tmp_path / "exp"
    write_config(config, epochs=1)
    first = train_sh(config, tmp_path, exp)
    assert first.returncode == 0, output(first, exp)
    again = train_sh(config, tmp_path, exp)
    assert again.returncode == 0 and "is trained with this config" in again.stdout
    mtime = os.path.getmtime(exp / "final.pt")
    # issue 17 item 1: a comment, another key order, runtime-only keys change nothing
    cfg = yaml.safe_load(config.read_text())
    cfg["data"].update(num_workers=0, prefetch_factor=4)
    cfg["training"]["num_threads"] = 2
    config.write_text("# tuned for this machine\n" + yaml.safe_dump(dict(reversed(cfg.items()))))
    kept = train_sh(config, tmp_path, exp)
    assert kept.returncode == 0 and "is trained with this config" in kept.stdout, output(kept, exp)
    edit(config, "optimizer", "lr", 0.2)
    refused = train_sh(config, tmp_path, exp)
    assert refused.returncode != 0
    assert "optimizer.lr: 0.05 -> 0.2" in output(refused, exp)
    assert os.path.getmtime(exp / "final.pt") == mtime          # not silently kept as new
    forced = train_sh(config, tmp_path, exp, force=True)
    assert forced.returncode == 0, output(forced, exp)
    assert yaml.safe_load((exp / "config.yaml").read_text())["optimizer"]["lr"] == 0.2
    assert torch.load(exp / "final.pt", weights_only=False)["config"]["optimizer"]["lr"] == 0.2
    assert train_sh(config, tmp_path, exp).returncode == 0      # now trusted again


def test_changed_data_marker_retrains_from_scratch(tmp_path):
    make_training_data(tmp_path)
    (tmp_path / ".done").write_text("stage 2 run A\n")
    config, exp = tmp_path / "c.yaml", tmp_path / "exp"
    write_config(config, epochs=1)
    assert train_sh(config, tmp_path, exp).returncode == 0
    assert "is trained" in train_sh(config, tmp_path, exp).stdout
    mtime = os.path.getmtime(exp / "final.pt")
    (tmp_path / ".done").write_text("stage 2 run B\n")          # the upstream stage reran
    again = train_sh(config, tmp_path, exp)
    assert again.returncode == 0 and "training again from scratch" in output(again, exp)
    # the message names what changed (issue 17 item 1), not a guess
    assert f"its inputs changed ({tmp_path}/.done)" in output(again, exp)
    assert "resuming" not in output(again, exp)
    assert os.path.getmtime(exp / "final.pt") != mtime
    assert "is trained" in train_sh(config, tmp_path, exp).stdout


def test_resume_under_changed_config_is_refused_naming_the_keys(tmp_path):
    make_training_data(tmp_path)
    config, exp = tmp_path / "c.yaml", tmp_path / "exp"
    write_config(config, epochs=3)
    env = {**os.environ, "PYTHONPATH": ROOT}
    subprocess.run(["python", "-m", "pyutils.cli.train", "--config", str(config), "--data",
                    str(tmp_path), "--exp-dir", str(exp), "--max-epochs", "1"],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    edit(config, "data", "chunks_per_epoch", 64)
    edit(config, "optimizer", "lr", 0.1)
    refused = train_sh(config, tmp_path, exp)
    text = output(refused, exp)
    assert refused.returncode != 0 and "cannot resume" in text
    assert "data.chunks_per_epoch: 32 -> 64" in text and "optimizer.lr: 0.05 -> 0.1" in text
    # config.yaml still states the run the checkpoint belongs to
    assert yaml.safe_load((exp / "config.yaml").read_text())["optimizer"]["lr"] == 0.05
    edit(config, "data", "chunks_per_epoch", 32)
    edit(config, "optimizer", "lr", 0.05)
    resumed = train_sh(config, tmp_path, exp)
    assert resumed.returncode == 0 and "resuming from" in output(resumed, exp)


def test_embed_dim_or_speaker_change_gives_a_message_not_a_size_mismatch(tmp_path):
    make_training_data(tmp_path)
    config, exp = tmp_path / "c.yaml", tmp_path / "exp"
    write_config(config, epochs=3)
    env = {**os.environ, "PYTHONPATH": ROOT}
    base = ["python", "-m", "pyutils.cli.train", "--config", str(config), "--data",
            str(tmp_path), "--exp-dir", str(exp)]
    subprocess.run(base + ["--max-epochs", "1"], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    edit(config, "model", "embed_dim", 16)
    refused = train_sh(config, tmp_path, exp)
    text = output(refused, exp)
    assert refused.returncode != 0 and "model.embed_dim: 32 -> 16" in text
    assert "size mismatch" not in text and "Traceback" not in text
    edit(config, "model", "embed_dim", 32)
    # one speaker more (same config): new data, so the half-done run starts over
    make_training_data(tmp_path, num_spk=4)
    again = train_sh(config, tmp_path, exp)
    text = output(again, exp)
    assert again.returncode == 0 and "starting over" in text and "size mismatch" not in text
    assert torch.load(exp / "final.pt", weights_only=False)["speakers"] == [
        "spk0", "spk1", "spk2", "spk3"]


def test_changed_keys_ignores_runtime_only_keys():
    old = {"training": {"num_threads": 1, "epochs": 3}, "model": {"embed_dim": 8}}
    new = {"training": {"num_threads": 4, "epochs": 3}, "model": {"embed_dim": 8, "x": 1}}
    assert changed_keys(old, new) == ["model.x"]


def test_replaced_pretrained_front_end_changes_the_training_stamp(tmp_path):
    from pyutils.training.inputs import training_inputs
    from pyutils.utils.markers import fingerprint
    front = tmp_path / "wavlm"
    front.mkdir()
    (front / "config.json").write_text('{"hidden_size": 32}')
    (front / "model.safetensors").write_bytes(b"weights-1")
    config = tmp_path / "ssl.yaml"
    config.write_text(yaml.safe_dump({"model": {"name": "ssl", "frontend": {
        "type": "wavlm", "path": str(front)}}}))
    items = training_inputs(str(config), str(tmp_path / "data"))
    assert str(front / "model.safetensors") in items and str(front / "config.json") in items
    before = fingerprint(*items)
    (front / "model.safetensors").write_bytes(b"weights-2")
    assert fingerprint(*items) != before
