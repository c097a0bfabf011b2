"""Extraction real-time factor at 1 thread: PyTorch against ONNX Runtime, per network.

Each network of conf/<model>.yaml (random weights; speed does not depend on them) is
exported as the package does (pyutils.deploy.export: torch.export -> ONNX, dynamic
axes), then one 10 s input (1,000 frames; wav2spk: 160,000 samples) is embedded by
pyutils.deploy's TorchEmbedder and OnnxEmbedder, both with one intra-op thread and
the recipe's chunking; the best of ``--repeats`` runs is the RTF: CPU seconds of the
process per second of audio (with one thread, the compute alone, so the number holds on a
shared machine; the wall-clock RTF is printed beside it).  Features are not included: they
are numpy code shared by both runtimes.
Also printed: WeSpeaker's published ONNX Runtime RTFs at 1 thread (their
runtime/onnxruntime README, other hardware) for the networks they list.

Run: ``.venv/bin/python bench/bench_export.py [--models xvector ecapa_c512] [--repeats 5]``
"""
import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(BENCH_DIR))
sys.path.insert(0, BENCH_DIR)

MODELS = ("xvector", "resnet34", "ecapa_c512", "wav2spk", "campplus", "eres2net")
SECONDS = 10.0
# WeSpeaker runtime/onnxruntime README, RTF with 1 thread (their hardware, not this one).
WESPEAKER_ORT_RTF = {"ecapa_c512": 0.0184, "resnet34": 0.0607, "campplus": 0.0230}


def best_time(fn, repeats: int):
    """(best wall seconds, best CPU seconds of this process) over ``repeats`` runs.

    With one thread the CPU time is the compute alone; on a shared machine the wall time
    also holds the time other processes had the core."""
    fn()                                    # warm-up (allocations, ORT graph optimisation)
    wall, cpu = [], []
    for _ in range(repeats):
        tick, tock = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - tick)
        cpu.append(time.process_time() - tock)
    return min(wall), min(cpu)


def bench_model(name: str, repeats: int, workdir: str) -> dict:
    import torch

    from pyutils.deploy.export import export_onnx
    from pyutils.deploy.runtime import OnnxEmbedder
    from pyutils.deploy.torch_runtime import TorchEmbedder
    from run_bench import model_setup, random_input
    torch.manual_seed(0)
    _, model, feat_dim, unit = model_setup(name)
    model.eval()
    path = os.path.join(workdir, f"{name}.onnx")
    tick = time.perf_counter()
    export_onnx(model, path, feat_dim)
    export_seconds = time.perf_counter() - tick
    x = random_input(1, int(SECONDS * 100), feat_dim, unit, torch.Generator().manual_seed(0))[0]
    x = x.numpy()
    chunk, min_chunk = 10000 * unit, 25 * unit
    torch_embedder = TorchEmbedder(model, chunk, min_chunk, num_threads=1)
    onnx_embedder = OnnxEmbedder(path, chunk, min_chunk, num_threads=1)
    wall_torch, cpu_torch = best_time(lambda: torch_embedder.embed(x), repeats)
    wall_onnx, cpu_onnx = best_time(lambda: onnx_embedder.embed(x), repeats)
    shape = f"{x.shape[0]} samples" if unit > 1 else f"{x.shape[0]} x {feat_dim}"
    return {"model": name, "input": shape, "torch": cpu_torch / SECONDS,
            "onnx": cpu_onnx / SECONDS, "torch_wall": wall_torch / SECONDS,
            "onnx_wall": wall_onnx / SECONDS, "export_s": export_seconds,
            "onnx_mb": os.path.getsize(path) / 1e6}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import numpy
    import onnxruntime
    import torch
    print(f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"Python {platform.python_version()}, torch {torch.__version__}, onnxruntime "
          f"{onnxruntime.__version__}, numpy {numpy.__version__}\n")
    print("| network | input (10 s) | PyTorch RTF | ONNX Runtime RTF | ONNX / PyTorch | "
          "WeSpeaker ONNX Runtime RTF (published, other hardware) | wall-clock RTF PyTorch / "
          "ONNX | ONNX export (s) | ONNX size (MB) |\n|---|---|---:|---:|---:|---:|---|---:|---:|")
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.models:
            row = bench_model(name, args.repeats, workdir)
            published = WESPEAKER_ORT_RTF.get(name)
            print(f"| {name} | {row['input']} | {row['torch']:.4f} | {row['onnx']:.4f} | "
                  f"{row['onnx'] / row['torch']:.2f} | "
                  f"{f'{published:.4f}' if published else '-'} | "
                  f"{row['torch_wall']:.4f} / {row['onnx_wall']:.4f} | {row['export_s']:.0f} | "
                  f"{row['onnx_mb']:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
