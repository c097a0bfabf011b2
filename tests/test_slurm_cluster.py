"""utils/slurm.py through a real single-node Slurm cluster (slurmctld + slurmd + munge).

The fixture starts the daemons from the Debian packages (installed by .ci/run)
with a generated slurm.conf under a temporary directory and stops them by
their pid files.  Where the packages are missing the tests skip and say so.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import ROOT

SLURM = os.path.join(ROOT, "utils", "slurm.py")
DAEMONS = ["/usr/sbin/munged", "/usr/sbin/slurmctld", "/usr/sbin/slurmd"]

SLURM_CONF = """\
ClusterName=svtest
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
AuthType=auth/munge
AuthInfo=socket={sock}
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=5
KillWait=2
NodeName=localhost NodeAddr=127.0.0.1 CPUs=8 RealMemory=16000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.3)
    raise RuntimeError(f"Slurm test cluster: {what} not ready after {timeout} s")


def stop_by_pidfile(path):
    try:
        pid = int(open(path).read().strip())
    except (OSError, ValueError):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def cannot_run(reason):
    """Skip, or fail where SV_REQUIRE_SLURM is set (CI): there the cluster tests must run."""
    if os.environ.get("SV_REQUIRE_SLURM"):
        pytest.fail(f"SV_REQUIRE_SLURM is set (CI) but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    missing = [p for p in DAEMONS if not os.path.exists(p)] + \
        [c for c in ("sbatch", "sinfo", "scancel", "munge") if not shutil.which(c)]
    if missing:
        cannot_run("Slurm is not installed here (apt-get install slurmctld slurmd slurm-client "
                   f"munge; .ci/run does): missing {', '.join(missing)}")
    if os.geteuid() != 0:
        cannot_run("the single-node Slurm test cluster needs root (slurmd runs jobs as users)")
    d = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool", "munge"):
        (d / sub).mkdir()
    os.chmod(d / "munge", 0o755)
    port = 17000 + os.getpid() % 2000
    conf = d / "slurm.conf"
    sock = d / "munge" / "munge.socket"
    conf.write_text(SLURM_CONF.format(d=d, sock=sock, ctld_port=port, d_port=port + 1))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    key = "/etc/munge/munge.key"
    started = []
    try:
        subprocess.run(["/usr/sbin/munged", "--force", f"--socket={sock}", f"--key-file={key}",
                        f"--pid-file={d}/munged.pid", f"--log-file={d}/munged.log",
                        f"--seed-file={d}/munge/seed"], check=True, env=env)
        started.append(d / "munged.pid")
        check = subprocess.run(f"munge -n -S {sock} | unmunge -S {sock}", shell=True, env=env,
                               capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"munge -n | unmunge failed: {check.stderr}")
        subprocess.run(["/usr/sbin/slurmctld", "-f", str(conf)], check=True, env=env)
        started.append(d / "slurmctld.pid")
        subprocess.run(["/usr/sbin/slurmd", "-f", str(conf)], check=True, env=env)
        started.append(d / "slurmd.pid")

        def idle():
            out = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True,
                                 text=True).stdout
            return out.strip() in ("idle", "mix")
        wait_for(idle, 60, "node localhost idle")
    except (OSError, subprocess.CalledProcessError, RuntimeError) as err:
        for pidfile in reversed(started):
            stop_by_pidfile(pidfile)
        cannot_run(f"the single-node Slurm test cluster did not start: {err} (logs in {d})")
    try:
        yield env
    finally:
        for pidfile in reversed(started):
            stop_by_pidfile(pidfile)


def test_required_cluster_fails_a_run_that_cannot_start_it(tmp_path):
    """SV_REQUIRE_SLURM=1 (CI): a non-root run fails, it does not skip (without it: skips).
    Slurm is made to look installed, so the root check is the one that answers."""
    runner = ("import os, shutil, sys, pytest\n"
              "os.geteuid = lambda: 1000\n"
              "shutil.which = lambda *a, **k: '/bin/true'\n"
              "class Installed:\n"
              "    def pytest_collection_modifyitems(self, items):\n"
              "        for item in items:\n"
              "            item.module.DAEMONS = []\n"
              "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', '-rs',\n"
              "                      'tests/test_slurm_cluster.py::test_cluster_up'],\n"
              "                     plugins=[Installed()]))\n")
    answers = {}
    for required in ("1", ""):
        env = {**os.environ, "SV_REQUIRE_SLURM": required}
        answers[required] = subprocess.run([sys.executable, "-c", runner], cwd=ROOT, env=env,
                                           capture_output=True, text=True, timeout=120)
    out = answers["1"].stdout
    assert answers["1"].returncode == 1 and "1 error" in out, out
    assert "SV_REQUIRE_SLURM is set (CI) but the single-node Slurm test cluster needs root" in out
    assert answers[""].returncode == 0 and "1 skipped" in answers[""].stdout, answers[""].stdout


def test_cluster_up(cluster):
    out = subprocess.run(["sinfo", "-h", "-o", "%n %t"], env=cluster, capture_output=True,
                         text=True).stdout
    assert out.split() == ["localhost", "idle"]


def slurm(env, cwd, *args, **kw):
    return subprocess.run([sys.executable, SLURM, *map(str, args)], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120, **kw)


def test_array_of_four_tasks_succeeds_with_kaldi_logs(cluster, tmp_path):
    result = slurm(cluster, tmp_path, "JOB=1:4", tmp_path / "log" / "ok.JOB.log",
                   "echo", "task", "JOB")
    assert result.returncode == 0, result.stderr
    for j in range(1, 5):
        text = (tmp_path / "log" / f"ok.{j}.log").read_text()
        assert text.startswith(f"# echo task {j}\n# Started at ") and f"\ntask {j}\n" in text
        assert re.search(r"^# Accounting: time=\d+ threads=1$", text, re.M)
        assert "# Ended (code 0) at" in text


def test_failing_task_three_is_named_with_its_log(cluster, tmp_path):
    result = slurm(cluster, tmp_path, "JOB=1:4", tmp_path / "f.JOB.log", "sh", "-c",
                   "echo error in task JOB >&2; test JOB -ne 3")
    assert result.returncode == 1
    assert "1 / 4 failed (job 3)" in result.stderr and "f.3.log" in result.stderr
    assert "error in task 3" in result.stderr
    assert "# Ended (code 1)" in (tmp_path / "f.3.log").read_text()


def test_rerun_whose_submission_fails_is_not_read_as_the_old_success(cluster, tmp_path):
    log = tmp_path / "r.JOB.log"
    assert slurm(cluster, tmp_path, "JOB=1:2", log, "true").returncode == 0
    # the same step again, now refused by sbatch (a partition that does not exist)
    env = {**cluster, "SLURM_EXTRA_ARGS": "--partition=nosuchpartition"}
    bad = slurm(env, tmp_path, "JOB=1:2", log, "false")
    assert bad.returncode == 1 and "sbatch failed" in bad.stderr, bad.stderr


def test_max_jobs_run_one_never_overlaps(cluster, tmp_path):
    script = "date +%s.%N; sleep 1; date +%s.%N"
    result = slurm(cluster, tmp_path, "--max-jobs-run", 1, "JOB=1:3", tmp_path / "m.JOB.log",
                   "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    spans = []
    for j in (1, 2, 3):
        stamps = [float(x) for x in (tmp_path / f"m.{j}.log").read_text().split("\n")
                  if re.fullmatch(r"\d+\.\d+", x)]
        spans.append(tuple(stamps))
    spans.sort()
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), spans


def test_job_killed_by_scancel_fails_with_a_message(cluster, tmp_path):
    log = tmp_path / "c.log"
    proc = subprocess.Popen([sys.executable, SLURM, str(log), "sleep", "60"], env=cluster,
                            cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: log.exists(), 30, "the job's log")
    subprocess.run(["scancel", "--name=c.log"], env=cluster, check=True)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "wrote no exit status" in err and "job 1" in err, err


@pytest.mark.slow
def test_recipe_stage_through_slurm_is_byte_identical_to_local(cluster, tmp_path, asc_root):
    """MFCC + VAD of a small ASC slice, then extraction, with each runner: same bytes
    (the stage markers aside, which name their own paths)."""
    import yaml
    from pyutils.training.trainer import train
    from tests.test_extraction_resume import write_data_dir
    data = tmp_path / "asc"
    subprocess.run([sys.executable, os.path.join(ROOT, "local", "prepare_asc.py"), "--corpus-root",
                    asc_root, "--reps", "01", "--train-speakers", "1-2", "--eval-speakers", "19-20",
                    "--python", sys.executable, str(data)], check=True, capture_output=True)
    model_dir = tmp_path / "model"
    write_data_dir(str(model_dir / "train"), {f"spk{s}": [260] * 4 for s in range(3)},
                   with_vad=False)
    config = {
        "model": {"name": "xvector", "embed_dim": 16, "frame_dims": [32, 32, 32, 32, 64]},
        "loss": {"name": "softmax"},
        "data": {"min_chunk_frames": 50, "max_chunk_frames": 80, "batch_size": 8,
                 "chunks_per_epoch": 8},
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        "scheduler": {"name": "exponential", "warmup_steps": 1, "final_lr_ratio": 0.1},
        "training": {"epochs": 1, "seed": 3, "num_threads": 1},
    }
    (model_dir / "c.yaml").write_text(yaml.safe_dump(config))
    model = train(str(model_dir / "c.yaml"), str(model_dir / "train"), str(model_dir / "exp"))
    outputs = {}
    for runner in ("utils/run.py", "utils/slurm.py"):
        name = runner.split("/")[1].split(".")[0]
        work = tmp_path / name
        shutil.copytree(data / "eval", work / "eval")
        for step in (["steps/make_mfcc_vad.sh", "--nj", "2", "--cmd", runner, work / "eval",
                      work / "log", work / "mfcc"],
                     ["steps/extract_embeddings.sh", "--nj", "2", "--cmd", runner, model,
                      work / "eval", work / "emb"]):
            result = subprocess.run([str(w) for w in step], cwd=ROOT, env=cluster,
                                    capture_output=True, text=True, timeout=300)
            assert result.returncode == 0, (runner, result.stdout, result.stderr)
        files = {}
        for sub in ("mfcc", "emb", "eval"):
            for path in sorted((work / sub).glob("*")):
                if path.is_file() and not path.name.startswith(".") and path.suffix in (".ark", ".scp", "") and "log" not in path.name:
                    files[f"{sub}/{path.name}"] = path.read_bytes().replace(str(work).encode(), b"W")
        outputs[name] = files
    assert outputs["run"].keys() == outputs["slurm"].keys() and outputs["run"]
    assert any(k.startswith("emb/") and k.endswith(".ark") for k in outputs["run"])
    for key in outputs["run"]:
        assert outputs["run"][key] == outputs["slurm"][key], key


# --- stage 3 (training) through Slurm: the GPUs asked for follow the config's device ---

FAKE_SBATCH = """#!/usr/bin/env bash
# records its arguments and refuses (the test reads what would have been asked for)
echo "$*" >> "$FAKE_SBATCH_LOG"; echo "sbatch: fake: not submitted" >&2; exit 1
"""


def tiny_config(path, device=None):
    """A training config of seconds (an x-vector of a few thousand weights, 1 epoch)."""
    import yaml
    training = {"epochs": 1, "seed": 3, "num_threads": 1}
    if device:
        training["device"] = device
    path.write_text(yaml.safe_dump({
        "model": {"name": "xvector", "embed_dim": 16, "frame_dims": [32, 32, 32, 32, 64]},
        "loss": {"name": "softmax"},
        "data": {"min_chunk_frames": 50, "max_chunk_frames": 80, "batch_size": 8,
                 "chunks_per_epoch": 16},
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        "scheduler": {"name": "exponential", "warmup_steps": 1, "final_lr_ratio": 0.1},
        "training": training}))
    return path


@pytest.mark.parametrize("device, nproc, sinfo_gres, override, gres", [
    ("cpu", 1, "gpu:4", None, None),          # a CPU config asks for no GPU
    ("cuda", 2, "(null)", None, "gpu:2"),     # one GPU per process
    (None, 1, "gpu:4(S:0)", None, "gpu:1"),   # auto on a cluster with GPUs
    (None, 1, "(null)", None, None),          # auto on a cluster without
    ("cuda", 1, "gpu:4", "0", None),          # SV_SLURM_GPUS overrides the config
    ("cpu", 1, "(null)", "3", "gpu:3"),
])
def test_training_job_asks_for_the_gpus_of_the_config_device(tmp_path, device, nproc,
                                                              sinfo_gres, override, gres):
    """cmd.sh's $cuda_cmd + steps/train.sh, with a fake sbatch (and sinfo) recording the request."""
    from tests.test_training import make_training_data
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "sbatch").write_text(FAKE_SBATCH)
    (fake / "sinfo").write_text(f"#!/bin/sh\necho '{sinfo_gres}'\n")
    for tool in ("sbatch", "sinfo"):
        (fake / tool).chmod(0o755)
    make_training_data(tmp_path)
    config = tiny_config(tmp_path / "c.yaml", device)
    env = {k: v for k, v in os.environ.items() if k not in ("SV_ROOT", "SV_SLURM_GPUS")}
    env.update(PATH=f"{fake}:{env['PATH']}", FAKE_SBATCH_LOG=str(tmp_path / "sbatch.args"),
               SV_LAUNCHER="slurm", **({"SV_SLURM_GPUS": override} if override else {}))
    script = (f'. ./cmd.sh && steps/train.sh --cmd "$cuda_cmd" --nproc-per-node {nproc} '
              f'{config} {tmp_path} {tmp_path / "exp"}')
    result = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0 and "sbatch: fake: not submitted" in result.stderr
    asked = (tmp_path / "sbatch.args").read_text()
    assert asked.startswith("--export=ALL ") and "--mem-per-cpu 8G" in asked, asked
    found = re.findall(r"--gres=(\S+)", asked)
    assert found == ([gres] if gres else []), asked


@pytest.mark.parametrize("device", ["cpu", None])
def test_stage_3_trains_through_the_cluster(cluster, tmp_path, device):
    """./run.sh --stage 3 with SV_LAUNCHER=slurm on a cluster without GPUs: a CPU config
    (and one with the default device, auto) trains; the old cmd.sh asked for --gres=gpu:1,
    which this cluster refuses (Invalid generic resource specification)."""
    from tests.test_training import make_training_data
    data = tmp_path / "data"
    (data / "train_no_sil").mkdir(parents=True)
    make_training_data(data / "train_no_sil")
    config = tiny_config(tmp_path / "tiny.yaml", device)
    env = {k: v for k, v in cluster.items() if k not in ("SV_ROOT", "SV_SLURM_GPUS")}
    env["SV_LAUNCHER"] = "slurm"
    result = subprocess.run(["./run.sh", "--stage", "3", "--stop-stage", "3", "--data", data,
                             "--exp", tmp_path / "exp", "--model", "tiny", "--train-config",
                             config], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    exp = tmp_path / "exp" / "tiny"
    log = exp / "log" / "train.log"
    assert result.returncode == 0, result.stdout + result.stderr + (
        log.read_text() if log.exists() else "")
    assert (exp / ".done").exists() and (exp / "final.pt").exists()
    assert (exp / "log" / "q" / "done.train.log.1").read_text().strip() == "0"  # ran as a job
    text = log.read_text()
    assert text.startswith("# ") and "# Ended (code 0)" in text and "epoch 1/1" in text
