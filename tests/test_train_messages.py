"""What training tells the user (issue 7, item 9): --max-epochs says that no
final.pt was written yet, the training log holds plain progress lines (no
tqdm carriage returns), and steps/train.sh says where the progress is."""
import os
import subprocess
import sys

import yaml

from tests.conftest import ROOT
from tests.test_extraction_resume import write_data_dir

CONFIG = {
    "model": {"name": "xvector", "embed_dim": 8, "frame_dims": [16, 16, 16, 16, 32]},
    "loss": {"name": "softmax"},
    "data": {"min_chunk_frames": 40, "max_chunk_frames": 60, "batch_size": 4,
             "chunks_per_epoch": 8},
    "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
    "scheduler": {"name": "exponential", "warmup_steps": 1, "final_lr_ratio": 0.1},
    "training": {"epochs": 2, "seed": 3, "num_threads": 1},
}


def test_max_epochs_says_no_final_model_yet_and_logs_are_plain(tmp_path):
    write_data_dir(str(tmp_path / "train"), {f"spk{s}": [200] * 3 for s in range(2)},
                   with_vad=False)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(CONFIG))
    first = subprocess.run([sys.executable, "-m", "pyutils.cli.train", "--config",
                            str(tmp_path / "c.yaml"), "--data", str(tmp_path / "train"),
                            "--exp-dir", str(tmp_path / "exp"), "--max-epochs", "1"],
                           cwd=ROOT, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert not (tmp_path / "exp" / "final.pt").exists()
    assert "stopped after epoch 1 (--max-epochs)" in first.stderr
    assert "model: " not in first.stderr
    assert "\r" not in first.stderr and "progress epoch 1/2: 2/2 batch (100%)" in first.stderr
    rest = subprocess.run([os.path.join(ROOT, "steps", "train.sh"), str(tmp_path / "c.yaml"),
                           str(tmp_path / "train"), str(tmp_path / "exp")],
                          cwd=ROOT, capture_output=True, text=True)
    assert rest.returncode == 0, rest.stderr
    assert f"progress in {tmp_path / 'exp' / 'log' / 'train.log'}" in rest.stdout
    log = (tmp_path / "exp" / "log" / "train.log").read_text()
    assert "\r" not in log and "progress epoch 2/2: 2/2 batch (100%)" in log
    assert (tmp_path / "exp" / "final.pt").exists()
