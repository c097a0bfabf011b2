"""The project's benchmark: one Markdown table of speed and memory on this CPU.

Rows (each group runs in its own subprocess, so its peak RSS is its own):

* ``features``     MFCC + energy VAD (conf/mfcc.conf, conf/vad.conf), 1 thread, x real time,
                   on 60 s of ASC speech (noise if the corpus is missing);
* ``train-<model>`` training throughput in chunks/s, 2 threads: forward + loss + backward +
                   gradient clipping + optimiser/scheduler step, as pyutils.training.trainer,
                   with the model, loss, optimiser and chunk sizes of conf/<model>.yaml
                   (18 classes, the ASC training speakers; random inputs);
* ``extract-<model>`` embedding real-time factor, 1 thread, one 10 s input through
                   pyutils.extraction.extract.embed (compute seconds / audio seconds);
* ``cosine``, ``plda`` trials/s of pyutils.backends.scoring.score_trials on 1M random trials
                   over 2,000 synthetic 512-dim embeddings, parsing and writing included.

Run: ``.venv/bin/python bench/run_bench.py [--quick] [--only GROUP] [--out FILE]``.
``--only`` takes a group name or a prefix (``train``, ``extract``).  ``--quick`` shrinks
every size for a smoke run; its numbers are not comparable with the targets.
"""
import os

# 1 BLAS/OpenMP thread unless the parent asks otherwise (training children get 2); set
# before numpy is imported, as bench/bench_features.py does.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = os.environ.get("BENCH_THREADS", "1")

import argparse  # noqa: E402
import datetime  # noqa: E402
import glob  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from importlib import metadata  # noqa: E402

import numpy as np  # noqa: E402

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
sys.path.insert(0, ROOT)

MODELS = ("xvector", "resnet34", "ecapa_c512", "wav2spk")
GROUPS = (["features"] + [f"train-{m}" for m in MODELS] + [f"extract-{m}" for m in MODELS]
          + ["cosine", "plda"])
NUM_CLASSES = 18          # ASC training speakers (protocol asc-v1)
EXTRACT_SECONDS = 10.0
CORPUS = os.path.join(os.environ.get("SV_CORPUS_ROOT", os.path.join(ROOT, "..", "shared", "corpora")),
                      "asc")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def model_setup(name: str):
    """(config, model, input dim, samples per frame) built as trainer.train does."""
    from pyutils.features.kaldi_conf import read_kaldi_conf
    from pyutils.features.mfcc import FbankComputer, MfccComputer
    from pyutils.models import build_model
    from pyutils.training.trainer import SAMPLES_PER_FRAME, load_config
    config = load_config(os.path.join(ROOT, "conf", f"{name}.yaml"))
    feats = config.get("features", {"type": "mfcc"})
    if feats.get("type", "mfcc") == "waveform":
        feat_dim, unit = 1, SAMPLES_PER_FRAME        # WaveformStore.feat_dim
    elif feats["type"] == "fbank":
        feat_dim, unit = FbankComputer(read_kaldi_conf(os.path.join(ROOT, feats["conf"]))).dim, 1
    else:                                            # stage 1's MFCC
        feat_dim, unit = MfccComputer(read_kaldi_conf(os.path.join(ROOT, "conf/mfcc.conf"))).dim, 1
    model = build_model(config["model"]["name"], feat_dim=feat_dim,
                        **{k: v for k, v in config["model"].items() if k != "name"})
    return config, model, feat_dim, unit


def random_input(batch: int, frames: int, feat_dim: int, unit: int, gen):
    """(batch, frames, dim) features, or (batch, samples) int16-scale waveforms."""
    import torch
    if unit > 1:
        return torch.randn(batch, frames * unit, generator=gen) * 1000.0
    return torch.randn(batch, frames, feat_dim, generator=gen)


def bench_features(quick: bool) -> list:
    from bench_features import best_time  # noqa: E402 (bench/ is sys.path[0])
    from pyutils.features.kaldi_conf import read_kaldi_conf
    from pyutils.features.mfcc import MfccComputer
    from pyutils.features.vad import compute_vad_energy, vad_options_from_conf
    import soundfile
    seconds = 10.0 if quick else 60.0
    files = sorted(glob.glob(os.path.join(CORPUS, "dataset", "**", "*.flac"), recursive=True)
                   + glob.glob(os.path.join(CORPUS, "dataset", "**", "*.wav"), recursive=True))
    clips, total = [], 0
    for path in files:
        samples, rate = soundfile.read(path, dtype="int16")
        if rate == 16000 and samples.ndim == 1:
            clips.append(samples.astype(np.float32))
            total += len(samples)
        if total >= seconds * 16000:
            break
    if total >= seconds * 16000:
        wave, kind = np.concatenate(clips)[:int(seconds * 16000)], "ASC speech"
    else:
        wave = (np.random.default_rng(0).standard_normal(int(seconds * 16000)) * 1000.0
                ).astype(np.float32)
        kind = "noise"
    mfcc = MfccComputer(read_kaldi_conf(os.path.join(ROOT, "conf", "mfcc.conf")))
    vad = vad_options_from_conf(read_kaldi_conf(os.path.join(ROOT, "conf", "vad.conf")))
    took = best_time(lambda: compute_vad_energy(mfcc.compute(wave), **vad), 1 if quick else 5)
    return [{"measurement": f"MFCC {mfcc.dim}-dim + VAD, 1 thread ({seconds:.0f} s of {kind})",
             "value": seconds / took, "unit": "x real time", "target": 500, "higher": True}]


def bench_train(name: str, quick: bool) -> list:
    import torch
    from pyutils.losses import build_loss
    from pyutils.training.chunks import epoch_batches
    from pyutils.training.scheduler import build_optimizer, build_scheduler
    from pyutils.training.loop import train_step
    from pyutils.training.trainer import TrainingNet
    torch.set_num_threads(2)
    torch.manual_seed(0)
    config, model, feat_dim, unit = model_setup(name)
    data, train = config["data"], config["training"]
    batch = min(4, int(data["batch_size"])) if quick else int(data["batch_size"])
    lo, hi = int(data["min_chunk_frames"]), int(data["max_chunk_frames"])
    loss_fn = build_loss(config["loss"]["name"], model.head_dim, NUM_CLASSES,
                         **{k: v for k, v in config["loss"].items() if k != "name"})
    net = TrainingNet(model, loss_fn).train()
    optimizer = build_optimizer(net.parameters(), **config["optimizer"])
    warmup, max_steps = (0, 1) if quick else (1, 20)
    scheduler = build_scheduler(optimizer, warmup + max_steps, **config.get("scheduler", {}))
    grad_clip = float(train.get("grad_clip", 0.0))
    # one chunk length per minibatch, drawn by the trainer's epoch_batches
    lengths = [b[0][2] for b in epoch_batches([hi], lo, hi, 1, warmup + max_steps,
                                              int(train.get("seed", 0)), 1)]
    gen = torch.Generator().manual_seed(0)
    chunks, start = 0, None
    for step, frames in enumerate(lengths):
        if step == warmup:
            start = time.perf_counter()
        inputs = random_input(batch, frames, feat_dim, unit, gen)
        labels = torch.randint(0, NUM_CLASSES, (batch,), generator=gen)
        train_step(net, loss_fn, optimizer, scheduler, inputs, labels, grad_clip)
        chunks += batch if step >= warmup else 0
        if step >= warmup + 2 and time.perf_counter() - start > 30.0:
            break                                    # >= 3 timed steps, ~30 s per model
    rate = chunks / (time.perf_counter() - start)
    size = f"{lo}-{hi}" if lo != hi else f"{lo}"
    what = f"{lo * unit} samples" if unit > 1 else f"{size} frames x {feat_dim}"
    return [{"measurement": f"training {name} ({config['loss']['name']}, batch {batch} x "
                            f"{what}, 2 threads)", "value": rate, "unit": "chunks/s"}]


def bench_extract(name: str, quick: bool) -> list:
    import torch
    from pyutils.extraction.extract import embed, set_threads
    set_threads(1)
    torch.manual_seed(0)
    _, model, feat_dim, unit = model_setup(name)
    model.eval()
    frames = int(EXTRACT_SECONDS * 100)
    gen = torch.Generator().manual_seed(0)
    x = random_input(1, frames, feat_dim, unit, gen)[0].numpy()
    chunk, min_chunk = 10000 * unit, 25 * unit      # steps/extract_embeddings.sh defaults
    embed(model, x, chunk, min_chunk)               # warm-up
    times = []
    for _ in range(1 if quick else 5):
        tick = time.perf_counter()
        embed(model, x, chunk, min_chunk)
        times.append(time.perf_counter() - tick)
    shape = f"{x.shape[0]} samples" if unit > 1 else f"{frames} x {feat_dim}"
    row = {"measurement": f"extraction {name} RTF, 1 thread (10 s: {shape})",
           "value": min(times) / EXTRACT_SECONDS, "unit": "s / s audio", "higher": False}
    if name == "xvector":
        row["target"] = 0.02
    return [row]


def bench_scoring(kind: str, quick: bool) -> list:
    from pyutils.backends.cosine import CosineBackend
    from pyutils.backends.plda import Plda, PldaBackend
    from pyutils.backends.scoring import score_trials
    rng = np.random.default_rng(0)
    num_utts, dim, lda_dim = 2000, 512, 200
    num_trials = 10_000 if quick else 1_000_000
    keys = [f"id{i:05d}-utt" for i in range(num_utts)]
    emb = rng.standard_normal((num_utts, dim)).astype(np.float32)
    table = dict(zip(keys, emb))
    mean = emb.mean(axis=0).astype(np.float64)
    if kind == "cosine":
        backend = CosineBackend(mean)
    else:
        lda = np.hstack([rng.standard_normal((lda_dim, dim)) / np.sqrt(dim),
                         rng.standard_normal((lda_dim, 1)) * 0.01])
        q, _ = np.linalg.qr(rng.standard_normal((lda_dim, lda_dim)))
        psi = np.sort(rng.gamma(2.0, 1.0, lda_dim))[::-1]
        backend = PldaBackend(mean, lda, Plda(np.zeros(lda_dim), q, psi))
    with tempfile.TemporaryDirectory() as tmp:
        trials, out = os.path.join(tmp, "trials"), os.path.join(tmp, "scores")
        i, j = rng.integers(0, num_utts, (2, num_trials))
        label = np.where(rng.random(num_trials) < 0.1, "target", "nontarget")
        with open(trials, "w") as handle:
            handle.writelines(f"{keys[a]} {keys[b]} {c}\n" for a, b, c in zip(i, j, label))
        times = []
        for _ in range(1 if quick else 3):
            tick = time.perf_counter()
            done = score_trials(trials, table, table, backend, out)
            times.append(time.perf_counter() - tick)
        assert done == num_trials, (done, num_trials)
    row = {"measurement": f"{kind} scoring, 1 thread ({num_trials:,} trials, {num_utts:,} x "
                          f"{dim}-dim{', LDA 200' if kind == 'plda' else ''})",
           "value": num_trials / min(times), "unit": "trials/s"}
    if kind == "cosine":
        row["target"] = 1_000_000
    return [row]


def run_group(group: str, quick: bool) -> list:
    if group == "features":
        return bench_features(quick)
    if group in ("cosine", "plda"):
        return bench_scoring(group, quick)
    kind, name = group.split("-", 1)
    return bench_train(name, quick) if kind == "train" else bench_extract(name, quick)


def run_child(group: str, quick: bool) -> list:
    """Run one group in a fresh interpreter; its rows carry that process's peak RSS."""
    env = {**os.environ, "BENCH_THREADS": "2" if group.startswith("train") else "1"}
    cmd = [sys.executable, os.path.abspath(__file__), "--child", group] + (["--quick"] if quick else [])
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        sys.stderr.write(f"[{group}] failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}\n")
        return [{"measurement": group, "value": None, "unit": "error", "rss": None}]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def header() -> str:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as handle:
        mem_kb = int(next(line for line in handle if line.startswith("MemTotal")).split()[1])
    versions = []
    for package in ("torch", "numpy", "scipy", "kaldi-native-fbank"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{package} (missing)")
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"- machine: {cpu}, {os.cpu_count()} cores, {mem_kb / 2**20:.1f} GiB RAM "
            f"(load average at start {load})\n"
            f"- Python {platform.python_version()}, {', '.join(versions)}\n- date: {now}\n")


def fmt(value) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def table(rows: list) -> str:
    lines = ["| measurement | value | unit | target | meets | peak RSS (MB) |",
             "|---|---:|---|---:|---|---:|"]
    for row in rows:
        target, value = row.get("target"), row.get("value")
        if target is None or value is None:
            target_text, meets = "-", "-"
        else:
            higher = row.get("higher", True)
            target_text = (">= " if higher else "<= ") + fmt(target)
            meets = "yes" if (value >= target if higher else value <= target) else "NO"
        rss = "-" if row.get("rss") is None else f"{row['rss']:.0f}"
        lines.append(f"| {row['measurement']} | {fmt(value)} | {row['unit']} | {target_text} "
                     f"| {meets} | {rss} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    parser.add_argument("--only", help=f"one group or prefix: {', '.join(GROUPS)}")
    parser.add_argument("--out", help="also write the report to this file (atomically)")
    parser.add_argument("--child", help=argparse.SUPPRESS)   # internal: run one group here
    args = parser.parse_args()
    if args.child:
        rows = run_group(args.child, args.quick)
        for row in rows:
            row["rss"] = peak_rss_mb()
        print(json.dumps(rows))
        return 0
    groups = [g for g in GROUPS if args.only is None or g == args.only
              or g.startswith(args.only + "-")]
    if not groups:
        parser.error(f"--only {args.only}: no such group ({', '.join(GROUPS)})")
    rows = []
    for group in groups:
        print(f"running {group} ...", file=sys.stderr, flush=True)
        rows += run_child(group, args.quick)
    report = "# Benchmark\n\n" + header()
    if args.quick:
        report += "- **--quick**: smoke-run sizes; the numbers are not comparable with the targets\n"
    report += "\n" + table(rows)
    print(report, end="")
    if args.out:
        from pyutils.utils.fileio import atomic_output
        with atomic_output(args.out) as out:
            out.write(report)
    return 1 if any(row["value"] is None for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
