"""Issue 21's speed rows of bench/run_bench.py: compiled training, length buckets, profiles.

* ``compile-<model>``: training chunks/s of the same network, loss, optimiser and chunk
  size (conf/<model>.yaml), eager and under ``torch.compile(dynamic=True)`` as
  ``training.compile: true`` runs it, paired in one process: after one eager and one
  compiling step (its seconds are a row), ``REPEATS`` rounds of ``STEPS`` steps of each,
  alternated; the median round and the range, and the ratio against the 1.3x target.
* ``buckets-<model>``: stage 4's extraction of a set of utterances (lengths drawn as read
  speech: 2-8 s of voiced frames) through the eager engine, one utterance at a time
  against length buckets (``--bucket 64 --batch-size 16``; best of 2 passes of each,
  interleaved), whole utterances and 3 s
  windows every 1.5 s (the back-end's), with the share of inputs that found an
  equal-length partner in their bucket.
* ``profile-<model>``: where an eager training step's CPU time goes (torch.profiler over
  ``STEPS`` steps after a warm-up): the operators of the largest self time, one row each,
  and the share of convolutions and matrix products, which operator fusion (what
  ``torch.compile`` adds) does not make faster.
"""
from __future__ import annotations

import statistics
import time

import numpy as np

REPEATS, STEPS = 3, 2
BUCKET = 64               # utterances read ahead (extract --bucket)
UTTERANCES = 96           # of 2-8 s: about 7 minutes of speech
PROFILE_ROWS = 8
HEAVY = ("conv", "mm", "matmul", "linear", "addmm", "bmm", "mkldnn")   # GEMM-bound operators


def _training(name: str, quick: bool, num_classes: int):
    """(TrainingNet, loss, optimiser, scheduler, batch, frames, make batch, grad clip)."""
    import torch
    from run_bench import model_setup, random_input
    from pyutils.losses import build_loss
    from pyutils.training.scheduler import build_optimizer, build_scheduler
    from pyutils.training.trainer import TrainingNet
    torch.set_num_threads(2)
    torch.manual_seed(0)
    config, model, feat_dim, unit = model_setup(name)
    data = config["data"]
    batch = 4 if quick else int(data["batch_size"])
    frames = int(data["max_chunk_frames"]) if not quick else 100
    loss_fn = build_loss(config["loss"]["name"], model.head_dim, num_classes,
                         **{k: v for k, v in config["loss"].items() if k != "name"})
    net = TrainingNet(model, loss_fn).train()
    optimizer = build_optimizer(net, **config["optimizer"])
    scheduler = build_scheduler(optimizer, 1000, **config.get("scheduler", {}))
    gen = torch.Generator().manual_seed(0)

    def make():
        return (random_input(batch, frames, feat_dim, unit, gen),
                torch.randint(0, num_classes, (batch,), generator=gen))
    what = (f"{config['loss']['name']}, batch {batch} x "
            f"{frames * unit if unit > 1 else frames} {'samples' if unit > 1 else 'frames'}"
            f"{'' if unit > 1 else f' x {feat_dim}'}, 2 threads")
    return net, loss_fn, optimizer, scheduler, make, float(
        config["training"].get("grad_clip", 0.0)), batch, what


def bench_compile(name: str, quick: bool, num_classes: int) -> list:
    from pyutils.training.device import compile_training
    from pyutils.training.loop import train_step
    net, loss_fn, optimizer, scheduler, make, clip, batch, what = _training(name, quick,
                                                                           num_classes)
    compiled = compile_training(net, True)
    steps, repeats = (1, 1) if quick else (STEPS, REPEATS)

    def step(which):
        train_step(which, loss_fn, optimizer, scheduler, *make(), clip)

    step(net)                                   # warm-up
    tick = time.perf_counter()
    step(compiled)                              # compiles
    first = time.perf_counter() - tick
    rates = {"eager": [], "compiled": []}
    for _ in range(repeats):
        for mode, which in (("eager", net), ("compiled", compiled)):
            tick = time.perf_counter()
            for _ in range(steps):
                step(which)
            rates[mode].append(steps * batch / (time.perf_counter() - tick))
    from torch._dynamo.utils import counters
    graphs = int(counters["stats"].get("unique_graphs", 0))
    rows = []
    for mode, values in rates.items():
        rows.append({"measurement": f"training {name} {mode} ({what}; {repeats} x {steps} steps, "
                                    f"range {min(values):.3g}-{max(values):.3g})",
                     "value": statistics.median(values), "unit": "chunks/s"})
    rows.append({"measurement": f"training {name}: first compiled step, compilation included "
                                f"({graphs} graph(s) captured; a compiler failure is a warning on stderr "
                                f"and the step runs eagerly)",
                 "value": first, "unit": "s",
                 "higher": False})
    rows.append({"measurement": f"training {name}: compiled / eager chunks/s",
                 "value": statistics.median(rates["compiled"]) / statistics.median(rates["eager"]),
                 "unit": "x", "target": 1.3})
    return rows


def utterance_lengths(count: int, seed: int = 0) -> list:
    """Voiced frames of ``count`` utterances of read speech (2-8 s, log-uniform)."""
    rng = np.random.default_rng(seed)
    return [int(x) for x in np.exp(rng.uniform(np.log(200), np.log(800), count))]


def bench_buckets(name: str, quick: bool) -> list:
    import torch
    from run_bench import model_setup
    from pyutils.extraction.engines import build_embedder
    from pyutils.extraction.extract import windows
    from pyutils.utils.threads import set_threads
    set_threads(1)
    torch.manual_seed(0)
    _, model, feat_dim, unit = model_setup(name)
    model.eval()
    lengths = utterance_lengths(16 if quick else UTTERANCES)
    rng = np.random.default_rng(1)
    utts = [rng.standard_normal((n * unit, feat_dim) if unit == 1 else n * unit)
            .astype(np.float32) for n in lengths]
    embedder = build_embedder("torch", model, 10000 * unit, 25 * unit, 1, "cpu")
    seconds = sum(lengths) / 100.0
    rows = []
    for label, size, shift in (("whole utterances", 0, 0), ("3 s windows every 1.5 s", 300, 150)):
        blocks = [[x[a:b] for x in utts[start:start + BUCKET] for a, b in
                   (windows(x.shape[0], size * unit, shift * unit) if size
                    else [(0, x.shape[0])])] for start in range(0, len(utts), BUCKET)]
        count = sum(len(b) for b in blocks)
        paired = sum(sum([len(y) for y in b].count(len(x)) > 1 for x in b) for b in blocks)
        runs = {"single": lambda: [embedder.embed(x) for b in blocks for x in b],
                "bucketed": lambda: [embedder.embed_many(b, 16) for b in blocks]}
        embedder.embed_many(blocks[0][:4], 2)                    # first-call overheads
        times = {mode: float("inf") for mode in runs}
        for _ in range(1 if quick else 2):                       # interleaved, best of each
            for mode, run in runs.items():
                tick = time.perf_counter()
                run()
                times[mode] = min(times[mode], time.perf_counter() - tick)
        rows.append({"measurement": f"{name}: extraction of {len(utts)} utterances (2-8 s), "
                                    f"{label} ({count} inputs, {paired / count:.0%} with an "
                                    f"equal-length one in their bucket): one at a time / "
                                    f"buckets of {BUCKET} utterances, batches <= 16, 1 thread "
                                    f"(RTF one at a time {times['single'] / seconds:.4g})",
                     "value": times["single"] / times["bucketed"], "unit": "x", "target": 1.5})
    return rows


def bench_profile(name: str, quick: bool, num_classes: int) -> list:
    """The largest self-CPU operators of eager training steps, as rows."""
    from torch.profiler import ProfilerActivity, profile
    from pyutils.training.loop import train_step
    net, loss_fn, optimizer, scheduler, make, clip, batch, what = _training(name, quick,
                                                                           num_classes)
    train_step(net, loss_fn, optimizer, scheduler, *make(), clip)    # warm-up
    steps = 1 if quick else STEPS
    batches = [make() for _ in range(steps)]
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for inputs, labels in batches:
            train_step(net, loss_fn, optimizer, scheduler, inputs, labels, clip)
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    events.sort(key=lambda e: -e.self_cpu_time_total)
    rows = [{"measurement": f"profile {name} eager step ({what}): {e.key} ({e.count // steps} "
                            f"calls a step)", "value": 100.0 * e.self_cpu_time_total / total,
             "unit": "% self CPU"} for e in events[:PROFILE_ROWS]]
    heavy = sum(e.self_cpu_time_total for e in events
                if any(h in e.key.lower() for h in HEAVY))
    rows.append({"measurement": f"profile {name}: convolutions + matrix products (not sped up "
                                f"by fusion)", "value": 100.0 * heavy / total,
                 "unit": "% self CPU"})
    rows.append({"measurement": f"profile {name}: the most any fusion could give (the step "
                                f"reduced to its convolutions and matrix products)",
                 "value": total / max(heavy, 1), "unit": "x"})
    rows.append({"measurement": f"profile {name}: CPU ms per chunk of the step",
                 "value": total / 1000.0 / (steps * batch), "unit": "ms", "higher": False})
    return rows
