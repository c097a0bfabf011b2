"""The page of bench/backend_sweep.py: each model's table, its check against the run, the
choice of the calibration trials, and the run's header (machine, load, commit, command)."""
import datetime
import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _ci(row: dict, key: str, scale: float, fmt: str) -> str:
    low, high = row[f"{key}_ci"]
    value, low, high = (format(scale * x, fmt) for x in (row[key], low, high))
    return f"{value} [{low}-{high}]"


def _vs_run(row: dict, default) -> str:
    if "calib_vs_run" not in row:
        return "-"
    diff = 100 * (row["calib"]["eer"] - default["calib"]["eer"])
    return f"{diff:+.2f} {_delta(row['calib_vs_run'][0], 100, '.2f')}"


def _delta(interval, scale: float, fmt: str) -> str:
    low, high = interval
    return f"[{format(scale * low, '+' + fmt)}, {format(scale * high, '+' + fmt)}]"


def model_section(result: dict) -> str:
    """One model's table, its check against the run and its choice, in Markdown."""
    rows, name = result["rows"], os.path.basename(result["model"])
    default = None if result["default"] is None else rows[result["default"]]
    chosen = rows[result["chosen"]]
    lines = [f"## {name}\n", f"`{result['model']}`\n",
             "| vectors | LDA dim | back-end trained on | calib EER (%) [95 % CI] | calib minDCF "
             "(0.01) [CI] | calib EER minus the run's (points) [paired CI] | eval EER (%) "
             "[95 % CI] | eval minDCF (0.01) [CI] | wall (s) | CPU (s) |",
             "|---|---:|---|---|---|---|---|---|---:|---:|"]
    for row in rows:
        marks = (" (run)" if row is default else "") + (" **(chosen)**" if row is chosen else "")
        fields = dict(f.split("=", 1) for f in row["marker"].split() if "=" in f)
        wall = row["train_s"] + sum(row[f"{w}_{s}_s"] for w in ("calib", "eval")
                                    for s in ("score", "metrics"))
        lines.append(f"| {row['vectors']}{marks} | {fields.get('lda_dim', row['lda_dim'])} | "
                     f"{int(fields.get('utterances', 0)):,} vectors, {fields.get('speakers', '?')} "
                     f"speakers | {_ci(row['calib'], 'eer', 100, '.2f')} | "
                     f"{_ci(row['calib'], 'min_dcf_0.01', 1, '.3f')} | {_vs_run(row, default)} | "
                     f"{_ci(row['eval'], 'eer', 100, '.2f')} | "
                     f"{_ci(row['eval'], 'min_dcf_0.01', 1, '.3f')} | {wall:.0f} | "
                     f"{row['cpu_s']:.0f} |")
    text = "\n".join(lines) + "\n\n"
    run = result["run_plda"]
    if default is None:
        text += ("- **Check against the run: no row's back-end files equal the run's backend/** "
                 "(other lda_dim, plda_em_iters or vectors there); the rows are not comparable "
                 "with its results.json.\n")
    else:
        same = run is not None and all(default["eval"][k] == run[k]
                                       for k in ("eer", "min_dcf_0.01"))
        diff = default["run_rel_diff"]
        files = "byte for byte" if diff == 0 else (
            f"equal to {diff:.1g} of the largest value: the last digits, 1 BLAS thread here")
        text += (f"- Check against the run: the row {default['vectors']}, LDA {default['lda_dim']} "
                 f"trains the run's back-end (backend/: mean.vec, lda.mat, plda {files}), and its "
                 f"eval EER {100 * default['eval']['eer']:.3f} % and minDCF "
                 f"{default['eval']['min_dcf_0.01']:.4f} "
                 + ("equal results.json's plda row exactly.\n" if same else
                    f"differ from results.json's plda row (EER "
                    f"{'-' if run is None else format(100 * run['eer'], '.3f')} %).\n"))
    text += (f"- Chosen on the calibration trials (lowest calibration EER): **{chosen['vectors']}, "
             f"LDA {chosen['lda_dim']}**")
    if default is None or chosen is default:
        text += (" = the run's setting.\n" if chosen is default else ".\n")
        return text
    separated = {}
    for which in ("calib", "eval"):
        eer_i, dcf_i = result[f"paired_{which}"]
        separated[which] = eer_i[1] < 0 or eer_i[0] > 0
        text += (f"; minus the run's setting on the {which} trials: EER "
                 f"{100 * (chosen[which]['eer'] - default[which]['eer']):+.2f} points, paired "
                 f"95 % CI {_delta(eer_i, 100, '.2f')}, minDCF "
                 f"{chosen[which]['min_dcf_0.01'] - default[which]['min_dcf_0.01']:+.4f} "
                 f"{_delta(dcf_i, 1, '.4f')}")
    text += (". The paired calibration interval of the EER difference "
             + ("excludes 0" if separated["calib"] else "holds 0: the calibration trials do "
                "not separate the chosen setting from the run's") + "; on eval it "
             + ("excludes 0" if separated["eval"] else "holds 0") +
             f" (paired intervals: {result['paired_calib_s'] + result['paired_eval_s']:.0f} s).\n")
    return text


def summary(results: list) -> str:
    """One line per model: the calibration trials' choice and whether it is the run's setting."""
    lines = []
    for result in results:
        rows = result["rows"]
        chosen = rows[result["chosen"]]
        name = f"{os.path.basename(result['model'])}: {chosen['vectors']}, LDA {chosen['lda_dim']}"
        if result["default"] is None:
            lines.append(f"- {name} (the run's setting is not among the rows)")
        elif result["chosen"] == result["default"]:
            lines.append(f"- {name}, the run's setting")
        else:
            (low, high), _ = result["paired_calib"]
            lines.append(f"- {name}, not the run's setting, but the calibration EER difference "
                         f"to it holds 0 ({_delta((low, high), 100, '.2f')} points)"
                         if low <= 0 <= high else f"- {name}: calibration EER "
                         f"{_delta((low, high), 100, '.2f')} points from the run's setting")
    return ("Choice of the calibration trials per model (details under each model):\n\n"
            + "\n".join(lines) + "\n")


def header(argv: list, load: str, took: float) -> str:
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short=12", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "unknown"
    if subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                      capture_output=True, text=True).stdout.strip():
        commit += "-dirty"
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    end = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"- machine: {os.cpu_count()} cores, 1 thread, niced (load average 1/5/15 min {load} "
            f"at the start, {end} at the end: other jobs shared the CPU, wall times are upper "
            f"bounds)\n- date: {now}; commit {commit}; total wall time {took:.0f} s\n"
            f"- command: `bench/backend_sweep.py {' '.join(argv)}`\n")


INTRO = """# Back-end sweep: LDA dimension x back-end training vectors (LDA + PLDA)

Generated by `bench/backend_sweep.py` (its docstring has the method); do not edit by hand.
Each row trains stage 5's mean + LDA + PLDA (`pyutils.cli.train_backend`, 10 EM iterations)
on one model's training embeddings -- `windows`: 3 s windows every 1.5 s
(`backend_window=300`, the default), `utterances`: one embedding per utterance
(`backend_window=0`) -- and scores with stage 6's code the trials of the held-out calibration
speakers (`calibration/trials`) and the eval trials; EER and minDCF (p=0.01) are stage 7's, with
speaker-bootstrap 95 % intervals (seed fixed). The setting is chosen on the calibration trials
only (lowest EER), never on eval. Each row's difference to the run's setting on the calibration
trials has a paired bootstrap interval (both settings on the same drawn speakers), and so has
the chosen row's on eval. A difference whose interval holds 0 is not a gain. `wall` and `CPU`
are training + scoring + metrics of the row, one thread, on a CPU shared with other jobs (the
CPU seconds are the row's own).
"""
