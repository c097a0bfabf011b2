"""A full disk while writing (a checkpoint, an ark) ends with a message that
says so and names the file, not with torch's 'enforce fail at
inline_container.cc' (issue 7, item 9); nothing half-written is left."""
import os
import subprocess

import numpy as np
import pytest
import torch

from pyutils.training.checkpoint import save
from pyutils.utils.arkio import write_scp_dict
from pyutils.utils.fileio import DiskFullError


@pytest.fixture
def tiny_fs(tmp_path):
    """A 1 MB tmpfs (needs the right to mount; skipped where there is none)."""
    mount = tmp_path / "small"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {result.stderr.strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_checkpoint_on_a_full_disk_names_the_file(tiny_fs):
    path = tiny_fs / "models" / "epoch_3.pt"
    with pytest.raises(DiskFullError) as caught:
        save(str(path), {"model": torch.zeros(1 << 20)})          # 4 MB on 1 MB
    message = str(caught.value)
    assert f"no space left on {tiny_fs}" in message and f"while writing {path}" in message
    assert os.listdir(tiny_fs / "models") == []                   # no temp file left


def test_ark_on_a_full_disk_names_the_file(tiny_fs):
    table = {f"u{i}": np.ones((1000, 30), np.float32) for i in range(20)}   # 2.4 MB
    with pytest.raises(DiskFullError, match=f"no space left on {tiny_fs} .* while writing "
                                            f"{tiny_fs / 'x.ark'}"):
        write_scp_dict(str(tiny_fs / "x.ark"), str(tiny_fs / "x.scp"), table)
    assert os.listdir(tiny_fs) == []
