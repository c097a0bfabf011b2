"""Stages 5-7 at the size of speechocean762 (so762-v1) on synthetic embeddings: time and memory.

The sizes of so762-v1 (conf/corpora/speechocean762.conf): 2,500 eval utterances
(125 speakers x 20), all 3,123,750 pairs as trials (23,750 target), 110 training
speakers (34 utterances each), 15 held-out calibration speakers (44,850 calibration
trials), 192-dim embeddings.  Each row group runs in its own process (its peak RSS
is its own), at 1 thread, through the code the stage runs:

* ``backend``   stage 5: pyutils.cli.train_backend (mean, LDA 109, PLDA 10 EM iterations);
* ``score``     stage 6: pyutils.backends.scoring.score_trials, cosine, cosine + AS-norm
                (top 100 of the 3,740 training embeddings) and PLDA, 3.1 M trials each;
* ``calibrate`` stage 6: pyutils.cli.calibrate, linear and duration QMF calibration fitted on
                the calibration trials, both applied to the 3.1 M eval scores (LLR files);
* ``metrics``   stage 7: pyutils.cli.compute_metrics on one system (scores and LLRs) with four
                subgroup lists (each half of the speakers: 1.56 M trials), the speaker
                bootstrap (``--bootstrap`` replicates, 200 as stage 7) and the DET plot;
* ``det``       the DET plot alone (pyutils.metrics.det.plot_det), four systems of 3.1 M trials
                on one chart, as stage 7 draws them.

The data are made once, by a process of their own.  Each row gives the wall time, the
CPU time of the process (the compute alone when other jobs share the CPU) and its peak
RSS (which includes what the row needs first: the back-end, the scores); the header
gives the load average.

Run: ``.venv/bin/python bench/bench_so762.py [--only GROUP ...] [--bootstrap N]
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
UTTS_PER_SPK, DIM, TOP_K = 20, 192, 100
TRAIN_SPEAKERS, TRAIN_UTTS, CALIB_SPEAKERS = 110, 34, 15
GROUPS = ("backend", "score", "calibrate", "metrics", "det")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class Timer:
    """Wall and CPU seconds of a block of code."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def _speaker_set(rng, prefix: str, speakers: int, utts: int, centres=None):
    """``{utt: embedding}``, ``{utt: speaker}`` of speakers with a speaker component."""
    centres = rng.standard_normal((speakers, DIM)) if centres is None else centres
    emb, utt2spk = {}, {}
    for s in range(speakers):
        for n in range(utts):
            utt = f"{prefix}{s + 1:04d}{n:04d}"
            emb[utt] = (centres[s] + 1.5 * rng.standard_normal(DIM)).astype(np.float32)
            utt2spk[utt] = f"{prefix}{s + 1:04d}"
    return emb, utt2spk


def _write_set(tmp: str, name: str, emb: dict, utt2spk: dict, trials: bool,
               durations=None) -> str:
    """``tmp/name``: xvector.{ark,scp}, utt2spk, utt2speech_dur, and all-pairs trials."""
    import kaldiio

    from pyutils.backends.trials import pair_trials
    from pyutils.utils.fileio import write_lines
    out = os.path.join(tmp, name)
    os.makedirs(out, exist_ok=True)
    with kaldiio.WriteHelper(f"ark,scp:{out}/xvector.ark,{out}/xvector.scp") as writer:
        for utt in sorted(emb):
            writer(utt, emb[utt])
    write_lines(os.path.join(out, "utt2spk"), (f"{u} {utt2spk[u]}" for u in sorted(utt2spk)))
    if durations is not None:
        write_lines(os.path.join(out, "utt2speech_dur"),
                    (f"{u} {durations[u]:.6g}" for u in sorted(durations)))
    if trials:
        write_lines(os.path.join(out, "trials"),
                    (" ".join(t) for t in pair_trials({u: utt2spk[u] for u in emb})))
    return out


def data_dirs(tmp: str) -> dict:
    return {"train": f"{tmp}/train", "calib": f"{tmp}/calib", "eval": f"{tmp}/eval", "tmp": tmp}


def make_data(tmp: str, speakers: int) -> dict:
    """Synthetic train, calib and eval sets (so762-v1's sizes, ``speakers`` eval speakers)."""
    rng = np.random.default_rng(0)
    _write_set(tmp, "train", *_speaker_set(rng, "t", TRAIN_SPEAKERS, TRAIN_UTTS), trials=False)
    calib_emb, calib_spk = _speaker_set(rng, "c", CALIB_SPEAKERS, UTTS_PER_SPK)
    eval_emb, eval_spk = _speaker_set(rng, "e", speakers, UTTS_PER_SPK)
    dur = {u: float(rng.uniform(1.6, 20.0)) for u in list(calib_emb) + list(eval_emb)}
    _write_set(tmp, "calib", calib_emb, calib_spk, True, dur)
    _write_set(tmp, "eval", eval_emb, eval_spk, True, dur)
    write_subgroups(data_dirs(tmp))
    return data_dirs(tmp)


def train_backend(data: dict) -> str:
    from pyutils.cli import train_backend as cli
    out = os.path.join(data["tmp"], "backend")
    assert cli.main(["--train-scp", f"{data['train']}/xvector.scp", "--utt2spk",
                     f"{data['train']}/utt2spk", "--lda-dim", "200", "--out-dir", out]) == 0
    return out


def score(data: dict, backend_name: str, backend_dir: str, which: str, out: str, **extra) -> int:
    from pyutils.backends.base import load_backend
    from pyutils.backends.embeddings import load_embeddings
    from pyutils.backends.scoring import score_trials
    emb = load_embeddings(f"{data[which]}/xvector.scp")
    backend = load_backend(backend_name, backend_dir, 0.0, cosine_mean="train")
    return score_trials(f"{data[which]}/trials", emb, emb, backend, out, **extra)


def bench_backend(data: dict) -> list:
    with Timer() as t:
        train_backend(data)
    return [("stage 5 back-end: mean, LDA, PLDA on 3,740 training embeddings", t)]


def bench_score(data: dict) -> list:
    from pyutils.backends.embeddings import load_embeddings
    backend = train_backend(data)
    cohort = load_embeddings(f"{data['train']}/xvector.scp")
    rows = []
    for name, backend_name, extra in (("cosine", "cosine", {}),
                                      ("cosine + AS-norm", "cosine",
                                       {"cohort": cohort, "top_k": TOP_K}),
                                      ("PLDA", "plda", {})):
        with Timer() as t:
            n = score(data, backend_name, backend, "eval", os.path.join(data["tmp"], "s"),
                      **extra)
        rows.append((f"stage 6 scoring, {name}: {n:,} trials", t))
    return rows


def bench_calibrate(data: dict) -> list:
    from pyutils.cli import calibrate
    backend, tmp = train_backend(data), data["tmp"]
    n = score(data, "plda", backend, "eval", f"{tmp}/scores")
    score(data, "plda", backend, "calib", f"{tmp}/cal_scores")
    with Timer() as t:
        assert calibrate.main([
            "--trials", f"{data['calib']}/trials", "--cal-scores", f"{tmp}/cal_scores",
            "--calibration", f"{tmp}/cal.json", "--scores", f"{tmp}/scores", "--out-llr",
            f"{tmp}/llr", "--system", "plda", "--qmf", "dur", "--cal-quality", data["calib"],
            "--eval-quality", data["eval"], "--qmf-out-dir", f"{tmp}/qmf"]) == 0
    return [(f"stage 6 calibration, linear + QMF: fit on 44,850 trials, LLRs of {n:,}", t)]


SUBGROUPS = ("even", "odd", "first-half", "second-half")


def _subgroups(data: dict) -> list:
    """``--subgroup`` options of the four subgroup lists :func:`write_subgroups` made."""
    return [a for name in SUBGROUPS for a in ("--subgroup", f"{name}={data['eval']}/trials_{name}")]


def write_subgroups(data: dict) -> None:
    """Four subgroup lists (all pairs of half the speakers each), as so762-v1's four."""
    from pyutils.utils.fileio import write_lines
    with open(f"{data['eval']}/trials") as src:
        lines = src.read().splitlines()
    spk = {u: s for u, s in (line.split() for line in open(f"{data['eval']}/utt2spk"))}
    number = {s: i for i, s in enumerate(sorted(set(spk.values())))}
    count = len(number)
    tests = {"even": lambda i: i % 2 == 0, "odd": lambda i: i % 2 == 1,
             "first-half": lambda i: i < count // 2, "second-half": lambda i: i >= count // 2}
    for name, keep in tests.items():
        write_lines(f"{data['eval']}/trials_{name}",
                    (line for line in lines if keep(number[spk[line.split()[0]]])
                     and keep(number[spk[line.split()[1]]])))


def bench_metrics(data: dict, bootstrap: int) -> list:
    from pyutils.cli import compute_metrics
    backend, tmp = train_backend(data), data["tmp"]
    n = score(data, "plda", backend, "eval", f"{tmp}/scores")
    score(data, "plda", backend, "calib", f"{tmp}/cal_scores")
    from pyutils.cli import calibrate
    assert calibrate.main(["--trials", f"{data['calib']}/trials", "--cal-scores",
                           f"{tmp}/cal_scores", "--calibration", f"{tmp}/cal.json",
                           "--scores", f"{tmp}/scores", "--out-llr", f"{tmp}/llr"]) == 0
    subgroups = _subgroups(data)
    with Timer() as t:
        assert compute_metrics.main([
            "--trials", f"{data['eval']}/trials", "--system", "bench", "--det-png",
            f"{tmp}/det.png", "--results-md", f"{tmp}/r.md", "--utt2spk",
            f"{data['eval']}/utt2spk", "--bootstrap", str(bootstrap), *subgroups,
            "--scores", f"plda={tmp}/scores", "--llr", f"plda={tmp}/llr"]) == 0
    return [(f"stage 7 metrics, one system ({n:,} trials) + 4 subgroups, speaker bootstrap "
             f"{bootstrap}, Cllr, DET", t)]


def bench_det(data: dict) -> list:
    from pyutils.metrics.det import plot_det
    from pyutils.metrics.results import TrialList
    backend, tmp = train_backend(data), data["tmp"]
    trials, curves = TrialList(f"{data['eval']}/trials"), {}
    for name, backend_name in (("cosine", "cosine"), ("plda", "plda")):
        score(data, backend_name, backend, "eval", f"{tmp}/{name}")
        scores, labels = trials.join(f"{tmp}/{name}")
        curves[name], curves[f"{name} x 0.5"] = (scores, labels), (0.5 * scores + 1, labels)
    with Timer() as t:
        plot_det(curves, f"{tmp}/det.png")
    return [(f"DET plot: {len(curves)} systems x {len(scores):,} trials on one chart", t)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=GROUPS)
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--speakers", type=int, default=125)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:       # one group in a process of its own, on the data of --data
        if args.child == "data":
            make_data(args.data, args.speakers)
            return 0
        with tempfile.TemporaryDirectory(dir=args.data) as tmp:
            data = dict(data_dirs(args.data), tmp=tmp)
            bench = globals()[f"bench_{args.child}"]
            rows = bench(data, args.bootstrap) if args.child == "metrics" else bench(data)
        print(json.dumps([{"measurement": m, "wall": t.wall, "cpu": t.cpu, "rss": peak_rss_mb()}
                          for m, t in rows]))
        return 0
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    rows = []
    with tempfile.TemporaryDirectory() as data:   # made once, by a process of its own
        for group in ["data"] + (args.only or list(GROUPS)):
            cmd = [sys.executable, os.path.abspath(__file__), "--child", group, "--bootstrap",
                   str(args.bootstrap), "--speakers", str(args.speakers), "--data", data]
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            if proc.returncode:
                print(f"{proc.stderr}{group} failed (exit {proc.returncode})", file=sys.stderr)
                return 1
            if group != "data":
                rows += json.loads(proc.stdout.strip().splitlines()[-1])
    end = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"# stages 5-7 at so762-v1 size ({args.speakers} eval speakers; {os.cpu_count()} "
          f"cores; load average 1/5/15 min {load} at the start, {end} at the end)\n\n"
          "| measurement | wall (s) | CPU (s) | peak RSS (MB) |\n|---|---:|---:|---:|")
    for row in rows:
        print(f"| {row['measurement']} | {row['wall']:.1f} | {row['cpu']:.1f} | "
              f"{row['rss']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
