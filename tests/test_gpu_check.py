"""bench/gpu_check.sh dry-run on a CPU (SV_GPU_CHECK_DEVICE=cpu): every row's logic runs
with gloo in place of NCCL, the rows that need CUDA (fp16) say so, and the torchrun rows,
one process included, train under DistributedDataParallel."""
import os
import re
import subprocess

import pytest

from tests.conftest import ROOT


@pytest.mark.slow
def test_gpu_check_dry_run_on_cpu(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "SV_ROOT"}
    env.update(SV_GPU_CHECK_DEVICE="cpu", SV_GPU_CHECK_MODELS="xvector", CUDA_VISIBLE_DEVICES="")
    result = subprocess.run(["bench/gpu_check.sh", str(tmp_path)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=600)
    out = result.stdout
    assert result.returncode == 0 and out.rstrip().endswith("all checks passed"), out + result.stderr
    rows = [line.split() for line in out.splitlines()[1:-1]]
    assert [r[:5] for r in rows] == [
        ["xvector", "fp32", "python", "1", "none"],
        ["xvector", "fp32", "torchrun", "1", "gloo"],
        ["xvector", "bf16", "python", "1", "none"],
        ["xvector", "fp16", "python", "1", "skipped:"],
        ["xvector", "fp16", "torchrun", "1", "skipped:"],
        ["xvector", "fp32", "torchrun", "2", "gloo"]], out
    assert len(re.findall(r"skipped: no CUDA$", out, re.M)) == 2
    for r in rows:
        if r[4] != "skipped:":
            loss_1, loss_n, cosine = map(float, r[-3:])
            assert loss_n < loss_1 and cosine > 0.9999, r
