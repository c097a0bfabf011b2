"""Stages 6-7 at the size of speechocean762 (so762-v1) on synthetic embeddings: time and memory.

Rows (each in its own subprocess, so the peak RSS is its own):

* ``score``   stage 6: pyutils.backends.scoring.score_trials, cosine and cosine + AS-norm
              (top 100 of a 2,200-utterance cohort), 3,123,750 all-pairs trials over
              2,500 eval utterances (125 speakers x 20), 192-dim embeddings, 1 thread;
* ``metrics`` stage 7: pyutils.cli.compute_metrics on those scores, with the speaker
              bootstrap (``--bootstrap`` replicates, default 200 as stage 7) and the DET plot,
              and ``--subgroups`` subgroup lists of a third of the speakers each.

Run: ``.venv/bin/python bench/bench_so762.py [--only score|metrics] [--bootstrap N]
[--speakers S]``.  ``--speakers 25`` is a smoke-sized run (500 utterances, 124,750 trials).
"""
import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = os.environ.get("BENCH_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
UTTS_PER_SPK, DIM, COHORT, TOP_K = 20, 192, 2200, 100


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_eval(tmp: str, speakers: int):
    """Embeddings with a speaker component, utt2spk and all-pairs trials (+ subgroups)."""
    from pyutils.data.corpus import pair_trials
    from pyutils.utils.fileio import write_lines
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((speakers, DIM))
    utts = {f"{(s + 1):05d}{n:04d}": (f"{s + 1:04d}", "") for s in range(speakers)
            for n in range(UTTS_PER_SPK)}
    emb = {u: (centres[int(spk) - 1] + 1.5 * rng.standard_normal(DIM)).astype(np.float32)
           for u, (spk, _) in utts.items()}
    cohort = {f"c{i:05d}": rng.standard_normal(DIM).astype(np.float32) for i in range(COHORT)}
    write_lines(os.path.join(tmp, "trials"), pair_trials(utts))
    write_lines(os.path.join(tmp, "utt2spk"), (f"{u} {s}" for u, (s, _) in sorted(utts.items())))
    third = [u for u, (s, _) in utts.items() if int(s) % 3 == 0]
    write_lines(os.path.join(tmp, "trials_third"), pair_trials({u: utts[u] for u in third}))
    return emb, cohort


def bench_score(speakers: int) -> list:
    from pyutils.backends.cosine import CosineBackend
    from pyutils.backends.scoring import score_trials
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        emb, cohort = make_eval(tmp, speakers)
        backend = CosineBackend(np.zeros(DIM))
        trials = os.path.join(tmp, "trials")
        for name, extra in (("cosine", {}), ("cosine + AS-norm", {"cohort": cohort, "top_k": TOP_K})):
            tick = time.perf_counter()
            n = score_trials(trials, emb, emb, backend, os.path.join(tmp, "scores"), **extra)
            rows.append({"measurement": f"stage 6 {name}: {n:,} trials, {len(emb):,} utts",
                         "seconds": time.perf_counter() - tick})
    return rows


def bench_metrics(speakers: int, bootstrap: int) -> list:
    from pyutils.backends.cosine import CosineBackend
    from pyutils.backends.scoring import score_trials
    from pyutils.cli import compute_metrics
    with tempfile.TemporaryDirectory() as tmp:
        emb, _ = make_eval(tmp, speakers)
        scores = os.path.join(tmp, "cosine", "scores")
        os.makedirs(os.path.dirname(scores))
        n = score_trials(os.path.join(tmp, "trials"), emb, emb, CosineBackend(np.zeros(DIM)),
                         scores)
        tick = time.perf_counter()
        status = compute_metrics.main([
            "--trials", os.path.join(tmp, "trials"), "--system", "bench",
            "--det-png", os.path.join(tmp, "det.png"), "--results-md", os.path.join(tmp, "r.md"),
            "--utt2spk", os.path.join(tmp, "utt2spk"), "--bootstrap", str(bootstrap),
            "--subgroup", f"third={os.path.join(tmp, 'trials_third')}",
            "--scores", f"cosine={scores}"])
        assert status == 0
        return [{"measurement": f"stage 7 one back-end + 1 subgroup: {n:,} trials, speaker "
                                f"bootstrap {bootstrap}, DET", "seconds": time.perf_counter() - tick}]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["score", "metrics"])
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--speakers", type=int, default=125)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        rows = bench_score(args.speakers) if args.child == "score" else \
            bench_metrics(args.speakers, args.bootstrap)
        for row in rows:
            row["rss"] = peak_rss_mb()
        print(json.dumps(rows))
        return 0
    rows = []
    for group in [args.only] if args.only else ["score", "metrics"]:
        cmd = [sys.executable, os.path.abspath(__file__), "--child", group, "--bootstrap",
               str(args.bootstrap), "--speakers", str(args.speakers)]
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        if proc.returncode:
            print(f"{group} failed (exit {proc.returncode})", file=sys.stderr)
            return 1
        rows += json.loads(proc.stdout.strip().splitlines()[-1])
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"# stages 6-7 at so762-v1 size ({os.cpu_count()} cores, load {load})\n\n"
          "| measurement | seconds | peak RSS (MB) |\n|---|---:|---:|")
    for row in rows:
        print(f"| {row['measurement']} | {row['seconds']:.1f} | {row['rss']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
