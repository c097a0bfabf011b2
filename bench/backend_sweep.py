"""LDA + PLDA back-end sweep: LDA dimension x back-end training vectors, on real embeddings.

For each trained model dir (read-only; a run of ./run.sh with held-out calibration speakers,
e.g. exp/speechocean762/ecapa_c512_so762), stage 5 and 6's own code
(pyutils.cli.train_backend.train, pyutils.backends.scoring.score_trials) trains mean + LDA(dim)
+ PLDA for every ``--lda-dims`` x ``--vectors``:

* ``windows``    the windowed training embeddings (embeddings_train_windows: backend_window=300,
                 shift 150 in conf/backend.conf, the default);
* ``utterances`` one embedding per training utterance (embeddings_train: backend_window=0);

scores the held-out calibration speakers' trials (calibration/trials, as stage 6) and the eval
trials (run_info.json's), and reports EER and minDCF(p=0.01) with stage 7's code
(pyutils.metrics.results.summarize, the speaker bootstrap of pyutils.cli.compute_metrics, 200
replicates, seed fixed) for both.

Selection rule (fixed before the numbers): the setting with the lowest EER on the CALIBRATION
trials (held-out training speakers; minDCF(0.01) breaks ties), never on eval. Its difference to
the run's own setting (the row whose back-end files equal the run's backend/, normally windows
and 109 = lda_dim 200 clipped to speakers - 1) comes with a paired speaker-bootstrap interval (the
same speakers drawn for both settings in each replicate, as pyutils.metrics.bootstrap draws
them): on the calibration trials, and on eval beside it.  A difference whose interval holds 0 is
not a gain.  The row of the run's setting is found and checked against the run: its back-end
files number by number (to 1e-9 of their largest value: the number of BLAS threads changes
the summation order, so the last digits; at OMP_NUM_THREADS=2 so762's run was matched byte
for byte), its eval EER and minDCF against results.json's ``plda`` row.

Run (idle CPU: ``OMP_NUM_THREADS=1 nice -n 19``)::

    .venv/bin/python bench/backend_sweep.py MODEL_DIR... [--lda-dims 32,64,96,109]
        [--vectors windows,utterances] [--bootstrap 200] [--work-dir exp/backend_sweep]
        [--out docs/benchmark-backend.md]

Prints the page (bench/backend_sweep_page.py) and writes it (``--out``) and ``<work-dir>/sweep.json``; ``--report-from
A/sweep.json B/sweep.json`` writes one page from several saved sweeps, computing nothing.
"""
import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))   # the page module beside this one
from backend_sweep_page import INTRO, header, model_section, summary  # noqa: E402
VECTORS = ("windows", "utterances")
BACKEND_FILES = ("mean.vec", "lda.mat", "plda")
P_TARGET = 0.01
RUN_RTOL = 1e-9       # the run's back-end files, number by number (compare_kaldi_text)


def run_paths(model_dir: str) -> dict:
    """The inputs of one run, from its run_info.json: the recipe root is ``model_dir`` less
    run_info's ``model_dir``; every path is checked to exist (else a ValueError naming it)."""
    from pyutils.utils.fileio import read_json
    info = read_json(os.path.join(model_dir, "run_info.json"))
    model = os.path.abspath(model_dir)
    rel = os.path.normpath(info["model_dir"])
    if not model.endswith(os.sep + rel):
        raise ValueError(f"{model_dir}/run_info.json: model_dir '{rel}' is not the end of {model}")
    root = model[:-len(rel) - 1]
    trials = os.path.join(root, info["trials"])
    calib_data = os.path.join(root, info.get("calibration_data") or "no-calibration-data")
    train_data = os.path.join(root, info["backend_data"])
    windows, utts = f"{model}/embeddings_train_windows", f"{model}/embeddings_train"
    paths = {
        "name": os.path.basename(model), "model": model,
        "train": {"windows": (f"{windows}/xvector.scp", f"{windows}/utt2spk"),
                  # train_backend.sh: the embeddings dir's utt2spk, else the data dir's
                  "utterances": (f"{utts}/xvector.scp",
                                 f"{utts}/utt2spk" if os.path.isfile(f"{utts}/utt2spk")
                                 else f"{train_data}/utt2spk")},
        "calib": {"scp": f"{model}/embeddings_calib/xvector.scp",
                  "trials": f"{model}/calibration/trials", "utt2spk": f"{calib_data}/utt2spk"},
        "eval": {"scp": f"{model}/embeddings_eval/xvector.scp", "trials": trials,
                 "utt2spk": os.path.join(os.path.dirname(trials), "utt2spk")},
        "results": f"{model}/results.json", "backend": f"{model}/backend"}
    needed = [p for pair in paths["train"].values() for p in pair] + \
        [paths[s][k] for s in ("calib", "eval") for k in ("scp", "trials", "utt2spk")]
    missing = [p for p in needed if not os.path.isfile(p)]
    if missing:
        raise ValueError(f"{model_dir}: missing {missing[0]} (a run with held-out calibration "
                         f"speakers and windowed back-end embeddings is needed)")
    return paths


def compare_kaldi_text(path_a: str, path_b: str) -> float:
    """The largest difference between the numbers of two Kaldi text files (mean.vec, lda.mat,
    plda) token by token, relative to the largest magnitude in them; 0.0 when byte-identical,
    inf when their layouts (tokens other than numbers, counts) differ.  A retrain with another
    number of BLAS threads differs in the last digits (summation order), so a run's back-end
    is recognised to a tolerance."""
    with open(path_a) as a, open(path_b) as b:
        tokens_a, tokens_b = a.read().split(), b.read().split()
    if len(tokens_a) != len(tokens_b):
        return float("inf")
    worst = scale = 0.0
    for x, y in zip(tokens_a, tokens_b):
        try:
            u, v = float(x), float(y)
        except ValueError:
            if x != y:
                return float("inf")
            continue
        worst, scale = max(worst, abs(u - v)), max(scale, abs(u), abs(v))
    return worst / scale if worst else 0.0


def choose(rows: list) -> dict:
    """The selection rule: the lowest calibration EER, ties by calibration minDCF(0.01), then
    the first row (the grid order). Never looks at eval."""
    return min(rows, key=lambda r: (r["calib"]["eer"], r["calib"]["min_dcf_0.01"]))


class TrialSet:
    """One trial list, its embeddings and speakers, parsed and loaded once."""

    def __init__(self, spec: dict):
        from pyutils.backends.embeddings import load_embeddings
        from pyutils.metrics.results import TrialList
        from pyutils.utils.fileio import read_key_value
        self.path = spec["trials"]
        self.embeddings = load_embeddings(spec["scp"])
        self.trials = TrialList(self.path)
        self.utt2spk = read_key_value(spec["utt2spk"])

    def evaluate(self, score_path: str, replicates: int) -> dict:
        """Stage 7's numbers of one score file (pyutils.cli.compute_metrics' steps)."""
        from pyutils.cli.compute_metrics import add_error_bars, by_score
        from pyutils.metrics.bootstrap import speaker_sides
        from pyutils.metrics.results import summarize
        joined = self.trials.join_codes(score_path)
        ranked, _ = by_score(joined)
        row = summarize(ranked.scores, ranked.labels)
        speaker_of = [self.utt2spk.get(utt, utt) for utt in joined.names]
        add_error_bars(row, ranked.scores, ranked.labels,
                       speaker_sides(ranked.first, ranked.second, speaker_of), replicates)
        return row

    def paired(self, path_a: str, path_b: str, replicates: int) -> list:
        """Paired 95 % intervals of (EER, minDCF) of score file b minus a."""
        from pyutils.metrics.bootstrap import paired_difference_ci, speaker_sides
        a, b = self.trials.join_codes(path_a), self.trials.join_codes(path_b)
        if not (np.array_equal(a.first, b.first) and np.array_equal(a.second, b.second)):
            raise ValueError(f"{path_a} and {path_b} list the trials in different orders")
        sides = speaker_sides(a.first, a.second, [self.utt2spk.get(u, u) for u in a.names])
        return list(paired_difference_ci(a.scores, b.scores, a.labels, *sides,
                                         num_replicates=replicates, p_target=P_TARGET))


def sweep_model(paths: dict, dims: list, vectors: list, args, trial_sets: dict) -> dict:
    """Every setting's row of one model, the run check and the choice."""
    from pyutils.backends.base import load_backend
    from pyutils.backends.scoring import score_trials
    from pyutils.cli.train_backend import train
    from pyutils.utils.fileio import read_json
    from pyutils.utils.markers import done_marker
    sets = {}
    for which in ("calib", "eval"):
        key = (paths[which]["trials"], paths[which]["scp"])
        if key not in trial_sets:
            trial_sets[key] = TrialSet(paths[which])
        sets[which] = trial_sets[key]
    rows = []
    for kind in vectors:
        scp, utt2spk = paths["train"][kind]
        for dim in dims:
            out = os.path.join(args.work_dir, paths["name"], f"{kind}_lda{dim}")
            row = {"vectors": kind, "lda_dim": dim, "dir": out}
            cpu, start = time.process_time(), time.perf_counter()
            train(scp, utt2spk, dim, args.plda_em_iters, f"{out}/backend")
            row["train_s"] = time.perf_counter() - start
            with open(done_marker(f"{out}/backend")) as done:   # "lda_dim=.. utterances=.."
                row["marker"] = done.readline().strip()
            backend = load_backend("plda", f"{out}/backend")
            for which, trial_set in sets.items():
                start = time.perf_counter()
                score_trials(trial_set.path, trial_set.embeddings, trial_set.embeddings,
                             backend, f"{out}/{which}_scores")
                scored = time.perf_counter()
                row[which] = trial_set.evaluate(f"{out}/{which}_scores", args.bootstrap)
                row[f"{which}_score_s"] = scored - start
                row[f"{which}_metrics_s"] = time.perf_counter() - scored
            row["run_rel_diff"] = max(compare_kaldi_text(f"{out}/backend/{f}",
                                                         f"{paths['backend']}/{f}")
                                      for f in BACKEND_FILES)
            row["same_as_run"] = row["run_rel_diff"] <= RUN_RTOL
            row["cpu_s"] = time.process_time() - cpu
            rows.append(row)
            print(f"{paths['name']} {kind} lda {dim}: calib EER {100 * row['calib']['eer']:.2f} %"
                  f", eval EER {100 * row['eval']['eer']:.2f} % "
                  f"({row['cpu_s']:.0f} s CPU)",
                  file=sys.stderr, flush=True)
    run_plda = next((r for r in read_json(paths["results"]) if r["backend"] == "plda"), None)
    default = next((r for r in rows if r["same_as_run"]), None)
    chosen = choose(rows)
    result = {"model": paths["model"], "rows": rows, "run_plda": run_plda,
              "default": None if default is None else rows.index(default),
              "chosen": rows.index(chosen)}
    if default is not None and chosen is not default:
        for which in ("calib", "eval"):
            start = time.perf_counter()
            result[f"paired_{which}"] = sets[which].paired(f"{default['dir']}/{which}_scores",
                                                           f"{chosen['dir']}/{which}_scores",
                                                           args.bootstrap)
            result[f"paired_{which}_s"] = time.perf_counter() - start
    for row in rows if default is not None else []:     # cheap: the calibration trials
        if row is not default:
            row["calib_vs_run"] = sets["calib"].paired(f"{default['dir']}/calib_scores",
                                                       f"{row['dir']}/calib_scores", args.bootstrap)
    return result


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model_dirs", nargs="*", help="trained runs (read only)")
    parser.add_argument("--lda-dims", default="32,64,96,109",
                        help="comma-separated; a dim above speakers - 1 is clipped, as stage 5")
    parser.add_argument("--vectors", default=",".join(VECTORS),
                        help=f"comma-separated back-end training vectors: {', '.join(VECTORS)}")
    parser.add_argument("--plda-em-iters", type=int, default=10,
                        help="conf/backend.conf's plda_em_iters")
    parser.add_argument("--bootstrap", type=int, default=200, help="replicates (stage 7: 200)")
    parser.add_argument("--work-dir", default=os.path.join(ROOT, "exp", "backend_sweep"))
    parser.add_argument("--out", help="write the page here too (e.g. docs/benchmark-backend.md)")
    parser.add_argument("--report-from", nargs="+", metavar="SWEEP_JSON",
                        help="compute nothing: one page from these saved sweeps "
                             "(<work-dir>/sweep.json of earlier runs, each with its header)")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    dims = [int(d) for d in args.lda_dims.split(",")]
    vectors = args.vectors.split(",")
    unknown = [v for v in vectors if v not in VECTORS]
    if unknown or not dims or min(dims) < 1:
        parser.error(f"--vectors: one of {', '.join(VECTORS)}; --lda-dims: positive integers")
    if bool(args.model_dirs) == bool(args.report_from):
        parser.error("give model dirs to sweep, or --report-from saved sweeps, not both")
    from pyutils.utils.fileio import atomic_output, read_json
    saved = os.path.join(args.work_dir, "sweep.json")
    if args.report_from:
        sweeps = [read_json(path) for path in args.report_from]
    else:
        load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
        start = time.perf_counter()
        trial_sets, results = {}, []
        try:
            for model_dir in args.model_dirs:
                results.append(sweep_model(run_paths(model_dir), dims, vectors, args, trial_sets))
        except (ValueError, OSError) as err:
            print(f"backend_sweep: error: {err}", file=sys.stderr)
            return 1
        sweep = {"header": header(argv, load, time.perf_counter() - start), "models": results}
        with atomic_output(saved) as out:
            json.dump(sweep, out, indent=1)
        sweeps = [sweep]
    page = (INTRO + "\n" + summary([r for sweep in sweeps for r in sweep["models"]])
            + "".join("\n" + sweep["header"] + "\n"
                      + "\n".join(model_section(r) for r in sweep["models"]) for sweep in sweeps))
    print(page, end="")
    if args.out:
        with atomic_output(args.out) as out:
            out.write(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
