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
* ``loader-<model>`` paired rows measured in one process, interleaved and repeated
                   (median of the repeats): training chunks/s with random inputs in memory
                   (compute only) beside the real loader (pyutils.training.loader) on ASC
                   audio: precomputed features, and on-the-fly features with the
                   augmentation of conf/ecapa_c512_aug.yaml (speed, noise, simulated
                   reverb) in ``BENCH_LOADER_WORKERS`` (default 1) worker processes,
                   with ``data.worker_nice`` ``BENCH_LOADER_NICE`` (default 10) and 0; the
                   ratios loader / compute-only, and CPU ms per chunk of the training step
                   and of the featurisation (whole utterance vs chunk span) are rows too;
                   ``BENCH_LOADER_STEPS`` (8) timed steps per row, ``BENCH_LOADER_REPEATS`` (3);
* ``engines-<model>`` stage 4's extraction engines (pyutils.extraction.engines) on one 10 s
                   input of every network of the zoo: eager PyTorch, torch.compile and ONNX
                   Runtime, at 1 and 2 threads (best of the repeats, with their range), the
                   speed-up ratios, and 20 windows of 300 frames batched (16) vs one at a time;
* ``compile-<model>``, ``buckets-<model>``, ``profile-<model>`` (bench/bench_speed.py):
                   eager vs compiled training chunks/s (paired, repeated); one-at-a-time vs
                   length-bucketed extraction; where an eager training step's time goes;
* ``cosine``, ``plda`` trials/s of pyutils.backends.scoring.score_trials on 1M random trials
                   over 2,000 synthetic 512-dim embeddings, parsing and writing included.

Run: ``.venv/bin/python bench/run_bench.py [--quick] [--only GROUP] [--out FILE]``.
``--only`` takes group names or prefixes (``train``, ``extract``), comma-separated.  ``--quick`` shrinks
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
LOADER_MODELS = ("xvector", "ecapa_c512")
ENGINE_MODELS = ("xvector", "resnet34", "ecapa_c512", "wav2spk", "campplus", "eres2net")
SPEED_MODELS = ("ecapa_c512", "resnet34")     # issue 21's training targets
BUCKET_MODELS = ("xvector", "ecapa_c512")
GROUPS = (["features"] + [f"train-{m}" for m in MODELS] + [f"loader-{m}" for m in LOADER_MODELS]
          + [f"extract-{m}" for m in MODELS] + [f"engines-{m}" for m in ENGINE_MODELS]
          + [f"{kind}-{m}" for kind in ("compile", "profile") for m in SPEED_MODELS]
          + [f"buckets-{m}" for m in BUCKET_MODELS] + ["cosine", "plda"])
NUM_CLASSES = 18          # ASC training speakers (protocol asc-v1)
EXTRACT_SECONDS = 10.0
CORPUS = os.path.join(os.environ.get("SV_CORPUS_ROOT", os.path.join(ROOT, "..", "shared", "corpora")),
                      "asc")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def model_setup(name: str):
    """(config, model, input dim, samples per frame) built as trainer.train does."""
    from pyutils.features.kaldi_conf import read_kaldi_conf
    from pyutils.features.fbank import FbankComputer
    from pyutils.features.mfcc import MfccComputer
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
    from pyutils.training.chunk_sampling import epoch_batches
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


def asc_data_dir(out: str, speakers: int, reps: int) -> str:
    """A data dir of ASC utterances (protocol asc-v1: one speaker's clips of one
    repetition over 10 keywords, ~10 s), written as wav files under ``out``."""
    import soundfile
    from pyutils.utils.fileio import write_lines
    keywords = sorted(os.listdir(os.path.join(CORPUS, "dataset")))[:10]
    wav, utt2spk = [], []
    os.makedirs(os.path.join(out, "wav"), exist_ok=True)
    for s in range(1, speakers + 1):
        spk = f"{s:08d}"
        for r in range(1, reps + 1):
            clips = [soundfile.read(os.path.join(CORPUS, "dataset", k, f"{spk}_NO_{r:02d}.flac"),
                                    dtype="int16")[0] for k in keywords]
            utt = f"{spk}-r{r:02d}-g0"
            path = os.path.join(out, "wav", f"{utt}.wav")
            soundfile.write(path, np.concatenate(clips), 16000)
            wav.append(f"{utt} {path}")
            utt2spk.append(f"{utt} {spk}")
    write_lines(os.path.join(out, "wav.scp"), wav)
    write_lines(os.path.join(out, "utt2spk"), utt2spk)
    return out


def bench_loader(name: str, quick: bool) -> list:
    """Paired rows: compute-only vs the real loader (precomputed; on-the-fly + augmentation)."""
    import torch
    from pyutils.augment import Augmenter
    from pyutils.losses import build_loss
    from pyutils.training.data import (OnTheFlyFeatures, PrecomputedFeatures, read_utt2spk,
                                       speed_versions)
    from pyutils.training.loader import BatchPlan, ChunkLoader
    from pyutils.training.loop import train_step
    from pyutils.training.scheduler import build_optimizer, build_scheduler
    from pyutils.training.trainer import TrainingNet, load_config
    from pyutils.utils.arkio import write_scp_dict
    os.environ.setdefault("SV_CORPUS_ROOT", os.path.dirname(CORPUS))
    torch.set_num_threads(2)
    torch.manual_seed(0)
    config, model, feat_dim, _ = model_setup(name)
    aug_cfg = load_config(os.path.join(ROOT, "conf", "ecapa_c512_aug.yaml"))["augmentation"]
    data_cfg, train_cfg = config["data"], config["training"]
    batch = 4 if quick else int(data_cfg["batch_size"])
    lo, hi = int(data_cfg["min_chunk_frames"]), int(data_cfg["max_chunk_frames"])
    steps, repeats = (2, 1) if quick else (int(os.environ.get("BENCH_LOADER_STEPS", "8")),
                                           int(os.environ.get("BENCH_LOADER_REPEATS", "3")))
    workers = int(os.environ.get("BENCH_LOADER_WORKERS", "1"))
    nice = int(os.environ.get("BENCH_LOADER_NICE", "10"))     # data.worker_nice
    kind = config.get("features", {}).get("type", "mfcc")
    conf = lambda n: os.path.join(ROOT, "conf", n)  # noqa: E731
    feat_conf = conf("fbank.conf") if kind == "fbank" else conf("mfcc.conf")
    tmp = tempfile.mkdtemp(prefix="bench_loader_")
    data = asc_data_dir(tmp, 3 if quick else 18, 1 if quick else 2)
    utt2spk = read_utt2spk(data)
    clean = OnTheFlyFeatures(data, kind, feat_conf, conf("vad.conf"), conf("cmvn.conf"),
                             conf("mfcc.conf"))
    write_scp_dict(os.path.join(tmp, "feats.ark"), os.path.join(tmp, "feats.scp"),
                   {clean.utts[i]: clean.features(i) for i in range(len(clean))})
    precomputed = PrecomputedFeatures(os.path.join(tmp, "feats.scp"), utt2spk)
    speeds, prob = speed_versions(aug_cfg.get("speed"))
    augmenter = Augmenter({k: v for k, v in aug_cfg.items() if k != "speed"}, 16000)
    augmented = OnTheFlyFeatures(data, kind, feat_conf, conf("vad.conf"), conf("cmvn.conf"),
                                 conf("mfcc.conf"), augmenter=augmenter, speeds=speeds,
                                 speed_prob=prob)
    num_classes = augmented.num_classes
    loss_fn = build_loss(config["loss"]["name"], model.head_dim, num_classes,
                         **{k: v for k, v in config["loss"].items() if k != "name"})
    net = TrainingNet(model, loss_fn).train()
    optimizer = build_optimizer(net.parameters(), **config["optimizer"])
    total_steps = 4 * repeats * (steps + 2) + 10
    scheduler = build_scheduler(optimizer, total_steps, **config.get("scheduler", {}))
    grad_clip = float(train_cfg.get("grad_clip", 0.0))
    seed = int(train_cfg.get("seed", 0))
    chunks = (steps + 2) * batch
    plans = {key: BatchPlan(src.lengths, lo, hi, batch, chunks, seed, prior=src.version_prior)
             for key, src in (("pre", precomputed), ("fly", augmented))}
    loaders = {"pre": ChunkLoader(precomputed, plans["pre"], 0),
               "fly": ChunkLoader(augmented, plans["fly"], workers, worker_nice=nice),
               "fly0": ChunkLoader(augmented, plans["fly"], workers)}
    gen = torch.Generator().manual_seed(0)

    def compute_batches(epoch):                # the chunk lengths the loaders' plans draw
        plans["pre"].set_epoch(epoch)
        for chunk_list in plans["pre"].global_batches():
            frames = chunk_list[0][2]
            yield (random_input(batch, frames, feat_dim, 1, gen),
                   torch.randint(0, num_classes, (batch,), generator=gen))

    cpu = []                                   # training process CPU s per chunk

    def timed(batches) -> float:
        count, start = 0, None
        for step, (inputs, labels) in enumerate(batches):
            if step == 2:                      # after the first batches (workers warm)
                start, cpu_start = time.perf_counter(), time.process_time()
            train_step(net, loss_fn, optimizer, scheduler, inputs, labels, grad_clip)
            count += len(labels) if step >= 2 else 0
        cpu.append((time.process_time() - cpu_start) / count)
        return count / (time.perf_counter() - start)

    rates = {"compute": [], "pre": [], "fly": [], "fly0": []}
    cpu_compute = []
    for repeat in range(repeats):
        for key in rates:                      # interleaved: the machine's load hits all alike
            epoch = repeat + 1
            batches = (compute_batches(epoch) if key == "compute"
                       else loaders[key].epoch(epoch))
            rates[key].append(timed(batches))
            if key == "compute":
                cpu_compute.append(cpu[-1])
            print(f"[loader-{name}] repeat {repeat + 1}: {key} {rates[key][-1]:.1f} chunks/s",
                  file=sys.stderr, flush=True)
    median = {k: float(np.median(v)) for k, v in rates.items()}
    # CPU time per chunk of the featurisation in one thread (what a worker spends; robust
    # to a shared machine): the whole utterance then cut (before issue 8) vs the chunk span
    from threadpoolctl import threadpool_limits
    from pyutils.training.loader import item_rng
    specs = [spec for chunk_list in list(plans["fly"])[:2] for spec in chunk_list]

    def cpu_ms(cut) -> float:
        tick = time.thread_time()
        for spec in specs:
            cut(spec, item_rng(seed, spec.epoch, spec.batch, spec.item))
        return (time.thread_time() - tick) / len(specs) * 1e3
    with threadpool_limits(limits=1):
        cpu_ms(lambda c, r: augmented.chunk(c.index, c.offset, c.length, r))  # RIR bank built
        span_ms = cpu_ms(lambda c, r: augmented.chunk(c.index, c.offset, c.length, r))
        whole_ms = cpu_ms(lambda c, r: augmented.features(c.index, r)
                          [c.offset:c.offset + c.length])
    spread = {k: f"{min(v):.3g}-{max(v):.3g}" for k, v in rates.items()}
    size = f"{lo}-{hi}" if lo != hi else f"{lo}"
    what = f"batch {batch} x {size} frames x {feat_dim}, 2 threads"
    fly_text = (f"on-the-fly {kind} + speed {prob:g} + noise {aug_cfg['noise']['prob']:g} + "
                f"simulated reverb {aug_cfg['reverb']['prob']:g}, {workers} worker(s)")
    ratio = lambda key: 100.0 * median[key] / median["compute"]  # noqa: E731
    rows = [
        {"measurement": f"training {name} compute only ({what}; random inputs; "
                        f"{repeats} repeats {spread['compute']})",
         "value": median["compute"], "unit": "chunks/s"},
        {"measurement": f"training {name} with the loader: precomputed {kind} "
                        f"(in memory, in-process; {spread['pre']})",
         "value": median["pre"], "unit": "chunks/s"},
        {"measurement": f"training {name} with the loader: {fly_text}, worker_nice {nice} "
                        f"({spread['fly']})",
         "value": median["fly"], "unit": "chunks/s"},
        {"measurement": f"training {name} with the loader: the same, worker_nice 0 "
                        f"({spread['fly0']})",
         "value": median["fly0"], "unit": "chunks/s"},
        {"measurement": f"{name}: precomputed loader / compute only",
         "value": ratio("pre"), "unit": "%"},
        {"measurement": f"{name}: on-the-fly augmented loader (worker_nice {nice}) / compute only",
         "value": ratio("fly"), "unit": "%"},
        {"measurement": f"{name}: on-the-fly augmented loader (worker_nice 0) / compute only",
         "value": ratio("fly0"), "unit": "%"},
    ]
    if name == "ecapa_c512":
        rows[-2]["target"] = 85
    rows += [
        {"measurement": f"{name}: CPU per chunk of the training step, compute only "
                        f"(2 threads together)", "value": 1e3 * float(np.median(cpu_compute)),
         "unit": "ms"},
        {"measurement": f"{name}: CPU per chunk of {fly_text.split(', ')[0]}, 1 thread: "
                        f"whole utterance then cut", "value": whole_ms, "unit": "ms"},
        {"measurement": f"{name}: the same, on the chunk's span (this loader)",
         "value": span_ms, "unit": "ms"},
    ]
    import shutil
    shutil.rmtree(tmp, ignore_errors=True)
    return rows


def bench_extract(name: str, quick: bool) -> list:
    import torch
    from pyutils.extraction.extract import embed
    from pyutils.utils.threads import set_threads
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


def _best_of(run, repeats: int):
    """(best, worst) wall seconds of ``repeats`` calls of ``run`` after one warm-up call."""
    run()
    times = []
    for _ in range(repeats):
        tick = time.perf_counter()
        run()
        times.append(time.perf_counter() - tick)
    return min(times), max(times)


def bench_engines(name: str, quick: bool) -> list:
    """Extraction RTF per engine and thread count; batched vs single windows."""
    from pyutils.extraction.engines import build_embedder, export_for_extraction
    from pyutils.utils.threads import set_threads
    import torch
    torch.manual_seed(0)
    _, model, feat_dim, unit = model_setup(name)
    model.eval()
    gen = torch.Generator().manual_seed(0)
    x = random_input(1, int(EXTRACT_SECONDS * 100), feat_dim, unit, gen)[0].numpy()
    chunk, min_chunk = 10000 * unit, 25 * unit
    repeats = 1 if quick else 5
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tick = time.perf_counter()
        onnx = export_for_extraction(model, feat_dim, os.path.join(tmp, "embedding.onnx"))
        rows.append({"measurement": f"{name}: ONNX export + check, once per model",
                     "value": time.perf_counter() - tick, "unit": "s", "higher": False})
        for threads in (1, 2):
            set_threads(threads)
            rtf = {}
            for engine in ("torch", "compiled", "onnx"):
                if engine == "onnx" and onnx is None:
                    continue
                embedder = build_embedder(engine, model, chunk, min_chunk, threads, "cpu", onnx)
                tick = time.perf_counter()
                embedder.embed(x)                       # compiles (compiled), warms up
                first = time.perf_counter() - tick
                best, worst = _best_of(lambda: embedder.embed(x), repeats)
                rtf[engine] = best / EXTRACT_SECONDS
                rows.append({"measurement": f"{name}: extraction RTF, {engine}, {threads} thread(s) "
                                            f"(10 s input; best of {repeats}, worst "
                                            f"{worst / EXTRACT_SECONDS:.4g}; first call {first:.1f} s)",
                             "value": rtf[engine], "unit": "s / s audio", "higher": False})
            for engine in ("compiled", "onnx"):
                if engine in rtf:
                    rows.append({"measurement": f"{name}: eager / {engine} RTF, {threads} thread(s)",
                                 "value": rtf["torch"] / rtf[engine], "unit": "x",
                                 "target": 1.5})
        set_threads(1)
        windows = [random_input(1, 300, feat_dim, unit, gen)[0].numpy() for _ in range(20)]
        embedder = build_embedder("torch", model, chunk, min_chunk, 1, "cpu")
        single, _ = _best_of(lambda: embedder.embed_many(windows, 1), repeats)
        batched, _ = _best_of(lambda: embedder.embed_many(windows, 16), repeats)
        rows.append({"measurement": f"{name}: 20 windows of 3 s, one at a time / batched by 16 "
                                    f"(torch, 1 thread)", "value": single / batched, "unit": "x"})
    return rows


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
    if kind == "loader":
        return bench_loader(name, quick)
    if kind == "engines":
        return bench_engines(name, quick)
    if kind in ("compile", "buckets", "profile"):
        import bench_speed  # noqa: E402 (bench/ is sys.path[0])
        return (bench_speed.bench_buckets(name, quick) if kind == "buckets" else
                getattr(bench_speed, f"bench_{kind}")(name, quick, NUM_CLASSES))
    return bench_train(name, quick) if kind == "train" else bench_extract(name, quick)


def run_child(group: str, quick: bool) -> list:
    """Run one group in a fresh interpreter; its rows carry that process's peak RSS."""
    env = {**os.environ, "BENCH_THREADS": "2" if group.startswith(("train", "compile", "profile"))
           else "1"}
    if group.startswith("loader"):    # 2 training threads; workers limit themselves to 1
        env["BENCH_THREADS"] = "2"
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
    wanted = None if args.only is None else args.only.split(",")
    groups = [g for g in GROUPS if wanted is None
              or any(g == w or g.startswith(w + "-") for w in wanted)]
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
