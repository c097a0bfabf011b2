"""torchrun with 2 CPU processes (gloo) computes what 1 process computes with the
same global batch cut into the same 2 micro-batches (training.micro_batches: 2);
a 2-process run stopped after epoch 1 and resumed with 1 process ends with the
same weights."""
import os
import subprocess

import numpy as np
import pytest
import torch
import yaml

from pyutils.training import checkpoint
from tests.conftest import ROOT
from tests.test_training import make_training_data, write_config


def run_train(config, data, exp, nproc, *extra):
    env = {k: v for k, v in os.environ.items() if k != "SV_ROOT"}
    proc = subprocess.run(["steps/train.sh", "--cmd", "utils/run.py", "--nproc-per-node",
                           str(nproc), *extra, str(config), str(data), str(exp)],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    log = exp / "log" / "train.log"
    assert proc.returncode == 0, proc.stderr + (log.read_text() if log.exists() else "")


def step_losses(exp, epochs):
    return np.concatenate([checkpoint.load(str(exp / "models" / f"epoch_{e}.pt"))["stats"]
                           ["step_losses"] for e in range(1, epochs + 1)])


@pytest.mark.slow
def test_two_processes_match_one_process_with_two_micro_batches(tmp_path):
    make_training_data(tmp_path)
    config = tmp_path / "c.yaml"
    write_config(config, epochs=2)
    cfg = yaml.safe_load(config.read_text())
    cfg["training"]["micro_batches"] = 2
    config.write_text(yaml.safe_dump(cfg))
    run_train(config, tmp_path, tmp_path / "one", 1)
    run_train(config, tmp_path, tmp_path / "two", 2)
    a, b = step_losses(tmp_path / "one", 2), step_losses(tmp_path / "two", 2)
    assert len(a) == 8
    summary = (tmp_path / "two" / "train_summary.json").read_text()
    assert '"processes": 2' in summary
    np.testing.assert_allclose(b, a, rtol=1e-4)
    wa = torch.load(tmp_path / "one" / "final.pt", weights_only=False)["model"]
    wb = torch.load(tmp_path / "two" / "final.pt", weights_only=False)["model"]
    for key in wa:
        torch.testing.assert_close(wb[key], wa[key], rtol=1e-5, atol=1e-5)
    # stopped after epoch 1 with 2 processes, resumed with 1: the same model
    env = {**os.environ, "PYTHONPATH": ROOT}
    subprocess.run(["torchrun", "--standalone", "--nproc-per-node", "2", "-m",
                    "pyutils.cli.train", "--config", str(config), "--data", str(tmp_path),
                    "--exp-dir", str(tmp_path / "mixed"), "--max-epochs", "1"],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    assert not (tmp_path / "mixed" / ".done").exists()
    run_train(config, tmp_path, tmp_path / "mixed", 1)
    wc = torch.load(tmp_path / "mixed" / "final.pt", weights_only=False)["model"]
    for key in wa:
        torch.testing.assert_close(wc[key], wa[key], rtol=1e-5, atol=1e-5)


def test_batch_that_does_not_split_over_the_micro_batches_is_refused(tmp_path):
    from pyutils.training.trainer import train
    make_training_data(tmp_path)
    config = tmp_path / "c.yaml"
    write_config(config, epochs=1)
    cfg = yaml.safe_load(config.read_text())
    cfg["training"]["micro_batches"] = 3
    config.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ValueError, match="must split into training.micro_batches"):
        train(str(config), str(tmp_path), str(tmp_path / "exp"))


@pytest.mark.slow
def test_torchrun_with_one_process_trains_under_ddp_as_one_plain_process(tmp_path):
    """--launcher torchrun --nproc-per-node 1 (the one-GPU path of bench/gpu_check.sh): the
    process group is joined (gloo here, NCCL on a GPU) and the network wrapped in DDP, and
    the run computes what the plain one-process run computes."""
    import json
    make_training_data(tmp_path)
    config = write_config(tmp_path / "c.yaml", epochs=1)
    run_train(config, tmp_path, tmp_path / "plain", 1)
    run_train(config, tmp_path, tmp_path / "ddp", 1, "--launcher", "torchrun")
    plain = json.loads((tmp_path / "plain" / "train_summary.json").read_text())
    ddp = json.loads((tmp_path / "ddp" / "train_summary.json").read_text())
    assert plain["distributed"] is None and plain["processes"] == 1
    assert ddp["distributed"] == "gloo" and ddp["processes"] == 1
    assert "torchrun --standalone --nproc-per-node 1" in (
        tmp_path / "ddp" / "log" / "train.log").read_text().splitlines()[0]
    a, b = step_losses(tmp_path / "plain", 1), step_losses(tmp_path / "ddp", 1)
    assert len(a) == 4
    np.testing.assert_allclose(b, a, rtol=1e-5)


@pytest.mark.parametrize("options, message", [
    (["--launcher", "mpirun"], "--launcher mpirun: expected auto, torchrun or python"),
    (["--launcher", "python", "--nproc-per-node", "2"], "--launcher python runs one process"),
])
def test_launcher_option_is_checked(tmp_path, options, message):
    env = {k: v for k, v in os.environ.items() if k != "SV_ROOT"}
    proc = subprocess.run(["steps/train.sh", *options, "c.yaml", str(tmp_path), str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 1 and message in proc.stderr, proc.stderr
