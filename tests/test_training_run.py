"""The training skeleton (pyutils.training.run, issue 18 item 4): one Run sets up,
resumes, runs the epochs and finishes any kind of training that plugs in a small
Training object; "trained" is decided by one function, the one steps/train.sh
asks through ``python -m pyutils.cli.marker check``.  A toy regression trains
here in milliseconds: no features, no speaker data."""
import json
import os
import subprocess
import sys

import pytest
import torch
import yaml

from pyutils.training import checkpoint
from pyutils.training.run import Run, Training, rates, totals
from pyutils.training.rerun_policy import is_trained
from pyutils.utils.markers import fingerprint, write_marker
from tests.conftest import ROOT

CONFIG = {"model": {"name": "toy"}, "data": {"batch_size": 4, "chunks_per_epoch": 12},
          "optimizer": {"name": "sgd", "lr": 0.1}, "training": {"epochs": 3, "seed": 5,
                                                                "average_last": 2}}


class Toy(Training):
    """A linear regression on random batches: every step draws from torch's RNG, so a
    resume that does not restore the RNG states gives other weights."""

    def build(self, run):
        self.net = torch.nn.Linear(3, 1)
        self.optimizer = torch.optim.SGD(self.net.parameters(), lr=run.config["optimizer"]["lr"])
        self.scheduler = run.scheduler_for(self.optimizer, int(run.data_cfg["batch_size"]))

    def load_state(self, run, state):
        self.net.load_state_dict(state["model"])

    def run_epoch(self, run, epoch):
        losses = []
        for _ in range(int(run.data_cfg["chunks_per_epoch"]) // int(run.data_cfg["batch_size"])):
            x = torch.randn(4, 3)
            loss = ((self.net(x).squeeze(1) - x.sum(1)) ** 2).mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.scheduler.step()
            losses.append(float(loss.detach()))
        return {"loss": sum(losses) / len(losses), "seconds": 0.5, "chunks": 12}

    def networks_state(self):
        return {"model": self.net.state_dict()}

    def shape(self):
        return {"feat_dim": 3}

    def final_fields(self):
        return {"feat_dim": 3, "speakers": []}

    def summary(self, run, stats):
        seconds, chunks = totals(stats, "chunks")
        return {"epochs": run.epochs, "chunks": chunks, **rates(seconds, chunks),
                "final_loss": stats[-1]["loss"]}


@pytest.fixture
def inputs(tmp_path):
    config_path = tmp_path / "toy.yaml"
    config_path.write_text(yaml.safe_dump(CONFIG))
    data = tmp_path / "utt2spk"
    data.write_text("a s\n")
    return str(config_path), [str(config_path), str(data)], fingerprint(str(data))


def run(inputs, exp, **kwargs):
    config_path, items, data_stamp = inputs
    return Run(Toy(), config_path, str(exp), items, data_stamp, **kwargs)


def test_a_plugged_in_training_writes_the_run_and_resumes_bit_identically(inputs, tmp_path):
    whole = run(inputs, tmp_path / "whole").train()
    assert run(inputs, tmp_path / "parts").train(max_epochs=1) == str(tmp_path / "parts/final.pt")
    assert not os.path.exists(tmp_path / "parts/final.pt")      # stopped after epoch 1
    assert os.listdir(tmp_path / "parts/models") == ["epoch_1.pt"]
    run(inputs, tmp_path / "parts").train()                      # resumes at epoch 2

    for exp in ("whole", "parts"):
        assert sorted(os.listdir(tmp_path / exp)) == [
            ".done", "config.yaml", "final.pt", "inputs.json", "models", "train_summary.json"]
        assert yaml.safe_load(open(tmp_path / exp / "config.yaml")) == CONFIG
    a, b = checkpoint.load(whole), checkpoint.load(str(tmp_path / "parts/final.pt"))
    assert set(a) == {"model", "config", "feat_dim", "speakers"}
    for name in a["model"]:
        assert torch.equal(a["model"][name], b["model"][name]), name
    # final.pt: the average of the last 2 epochs' weights
    epochs = [checkpoint.load(checkpoint.epoch_path(str(tmp_path / "whole/models"), e))["model"]
              for e in (2, 3)]
    assert torch.allclose(a["model"]["weight"], (epochs[0]["weight"] + epochs[1]["weight"]) / 2)
    last = checkpoint.load(checkpoint.epoch_path(str(tmp_path / "whole/models"), 3))
    assert {"model", "optimizer", "scheduler", "epoch", "rng", "stats", "config", "data_stamp",
            "feat_dim"} == set(last) and last["epoch"] == 3
    summary = json.load(open(tmp_path / "whole/train_summary.json"))
    assert summary["chunks"] == 36 and summary["train_seconds"] == 1.5
    assert summary["chunks_per_s"] == 24.0
    assert summary == json.load(open(tmp_path / "parts/train_summary.json"))


def test_a_finished_run_is_skipped_and_a_resume_under_another_config_refused(inputs, tmp_path,
                                                                             caplog):
    run(inputs, tmp_path / "exp").train()
    before = os.path.getmtime(tmp_path / "exp/final.pt")
    with caplog.at_level("INFO"):
        run(inputs, tmp_path / "exp").train()
    assert "is complete (.done matches config and data); skipping" in caplog.text
    assert os.path.getmtime(tmp_path / "exp/final.pt") == before

    run(inputs, tmp_path / "half").train(max_epochs=1)
    config_path = inputs[0]
    with open(config_path, "w") as out:
        yaml.safe_dump({**CONFIG, "optimizer": {"name": "sgd", "lr": 0.2}}, out)
    with pytest.raises(ValueError, match=r"cannot resume from .*epoch_1.pt: .* \(optimizer.lr: "
                                         r"0.1 -> 0.2"):
        run(inputs, tmp_path / "half").train()
    run(inputs, tmp_path / "half", force=True).train()          # --force starts over
    assert checkpoint.load(str(tmp_path / "half/final.pt"))["config"]["optimizer"]["lr"] == 0.2


def stamp_check(marker, items):
    """What steps/train.sh asks: ``python -m pyutils.cli.marker check``."""
    return subprocess.run([sys.executable, "-m", "pyutils.cli.marker", "check", marker, *items],
                          cwd=ROOT).returncode == 0


def test_trained_is_one_decision_for_steps_train_sh_and_the_trainer(inputs, tmp_path):
    _, items, _ = inputs
    marker = str(tmp_path / ".done")
    assert not is_trained(marker, items) and not stamp_check(marker, items)
    write_marker(marker, fingerprint(*items), info="epochs=3")
    assert is_trained(marker, items) and stamp_check(marker, items)
    with open(items[1], "a") as out:     # the data changed
        out.write("b s\n")
    assert not is_trained(marker, items) and not stamp_check(marker, items)
