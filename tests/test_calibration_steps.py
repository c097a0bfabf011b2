"""steps/make_trials.sh, steps/score_trials.sh (with a normalisation) and
steps/calibrate.sh chained as in stage 6: outputs, skip on rerun, rerun when an
upstream marker or an option changes."""
import json
import os
import subprocess

import numpy as np
import pytest

from pyutils.backends.plda import write_vector
from pyutils.cli.marker import main as marker_main
from pyutils.utils.arkio import write_scp_dict
from tests.conftest import ROOT


def step(name, *args):
    result = subprocess.run([os.path.join(ROOT, "steps", name), *map(str, args)], cwd=ROOT,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result.stdout + result.stderr


@pytest.mark.slow         # 16 step runs: ~15 s on a quiet 2-core machine, 50 s loaded
def test_stage6_calibration_chain_markers(tmp_path):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 6)) * 2
    train = {f"s{s}-u{u}": (centres[s] + rng.normal(size=6)).astype(np.float32)
             for s in range(4) for u in range(4)}
    evals = {f"e{s}-u{u}": (rng.normal(size=6) * 2 + rng.normal(size=6)).astype(np.float32)
             for s in range(3) for u in range(3)}
    for name, table in (("emb_train", train), ("emb_eval", evals)):
        (tmp_path / name).mkdir()
        write_scp_dict(str(tmp_path / name / "x.ark"), str(tmp_path / name / "xvector.scp"),
                       table)
        marker_main(["write", str(tmp_path / name / ".done"), str(tmp_path / name / "xvector.scp")])
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "utt2spk").write_text("".join(f"{u} {u[:2]}\n" for u in sorted(train)))
    utts = sorted(evals)
    (tmp_path / "trials").write_text("".join(
        f"{a} {b} {'target' if a[:2] == b[:2] else 'nontarget'}\n"
        for i, a in enumerate(utts) for b in utts[i + 1:]))
    (tmp_path / "backend").mkdir()
    write_vector(str(tmp_path / "backend" / "mean.vec"), np.zeros(6))
    for f in ("lda.mat", "plda", ".done"):
        (tmp_path / "backend" / f).write_text("unused by cosine\n")

    cal = tmp_path / "calibration"
    opts = ["--backend", "cosine", "--cohort-scp", tmp_path / "emb_train" / "xvector.scp",
            "--norm", "snorm"]

    def chain(prior="0.01"):
        out = step("make_trials.sh", tmp_path / "emb_train", tmp_path / "data", cal / "trials")
        out += step("score_trials.sh", *opts, tmp_path / "backend", tmp_path / "emb_eval",
                    tmp_path / "trials", tmp_path / "scores")
        out += step("score_trials.sh", *opts, tmp_path / "backend", tmp_path / "emb_train",
                    cal / "trials", cal / "sys")
        out += step("calibrate.sh", "--prior", prior, "--system", "cosine_snorm",
                    cal / "trials", cal / "sys", tmp_path / "scores", cal / "sys.json")
        return out

    chain()
    assert len((cal / "trials").read_text().splitlines()) == 16 * 15 // 2
    assert len((tmp_path / "scores" / "llr").read_text().splitlines()) == 36
    data = json.loads((cal / "sys.json").read_text())
    assert data["backend"] == "cosine_snorm" and data["num_trials"] == 120
    assert data["num_target"] == 4 * 6 and "eer" in data["thresholds"]
    llr = [float(l.split()[2]) for l in open(tmp_path / "scores" / "llr")]
    raw = [float(l.split()[2]) for l in open(tmp_path / "scores" / "scores")]
    np.testing.assert_allclose(llr, data["slope"] * np.array(raw) + data["offset"], rtol=1e-6,
                               atol=1e-6)
    again = chain()
    assert "made from the same inputs; kept" in again and again.count("is up to date") == 3
    # an upstream stage reran (new run id in the eval embeddings' marker): eval scores
    # and the calibration rerun; the calibration trials and their scores are kept
    marker_main(["write", str(tmp_path / "emb_eval" / ".done"),
                str(tmp_path / "emb_eval" / "xvector.scp")])
    redo = chain()
    assert redo.count("is up to date") == 1 and f"{cal / 'sys'}/scores is up to date" in redo
    # another prior: only the calibration reruns
    redo = chain(prior="0.1")
    assert redo.count("is up to date") == 2 and "sys.json is up to date" not in redo
    assert json.loads((cal / "sys.json").read_text())["prior"] == 0.1
