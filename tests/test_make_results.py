"""The results page generator on small json files written here (known answers)."""
import json
import os

from pyutils.cli import make_results, run_info


def dump(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        json.dump(value, handle)


def row(system, backend, eer, ci, **extra):
    return {"system": system, "backend": backend, "eer": eer, "eer_ci": ci,
            "min_dcf_0.01": 0.5, "min_dcf_0.01_ci": [0.4, 0.6], "min_dcf_0.001": 0.7,
            "num_trials": 3123750, "num_target": 23750, "min_cllr": 0.3, "cllr": 0.35,
            "act_dcf_0.01": 0.55, **extra}


def make_exp(root):
    exp = root / "exp" / "speechocean762"
    systems = {
        "ecapa_c512_aug": ("ecapa_c512", "aam", [row("ecapa_c512_aug", "cosine", 0.0983, [0.085, 0.11]),
                                                 row("ecapa_c512_aug", "plda", 0.0573, [0.050, 0.065])]),
        "xvector": ("tdnn", "softmax", [row("xvector", "cosine", 0.12, [0.105, 0.135]),
                                        row("xvector", "plda", 0.0610, [0.052, 0.070])]),
        "ecapa_c512_moco": ("ecapa_c512", "moco", [row("ecapa_c512_moco", "cosine", 0.20, [0.18, 0.22]),
                                                   row("ecapa_c512_moco", "plda", 0.15, [0.13, 0.17])]),
    }
    for name, (model, loss, rows) in systems.items():
        rows += [row(name, "plda [child-child]", 0.08, [0.07, 0.09], subgroup="child-child",
                     scores_backend="plda"),
                 row(name, "plda [adult-adult]", 0.04, [0.03, 0.05], subgroup="adult-adult",
                     scores_backend="plda")]
        dump(exp / name / "results.json", rows)
        dump(exp / name / "train_summary.json", {"model": model, "loss": loss, "chunks": 12288,
                                                "epochs": 4, "train_seconds": 960.0})
        dump(exp / name / "train_info.json", {"date": "2026-12-06T12:00:00Z", "commit": "abc123",
                                             "machine": "Xeon, 2 CPUs",
                                             "corpus": "speechocean762"})
        dump(exp / name / "run_info.json", {"protocol": "so762-v1", "eval_set": "eval",
                                           "calibration": "15 held-out speakers (data/calib)"})
    return exp


def test_page_has_one_table_per_question_with_the_numbers_of_the_json(tmp_path):
    exp = make_exp(tmp_path)
    (exp / "det_all.png").write_bytes(b"png")
    out = tmp_path / "RESULTS.md"
    assert make_results.main(["--out", str(out), str(exp)]) == 0
    page = out.read_text()
    assert "## so762-v1, eval (3,123,750 trials)" in page
    for title in ("### Networks (supervised)", "### Back-ends", "### Label-free against supervised",
                  "### Subgroups"):
        assert title in page
    networks = page.split("### Networks")[1].split("###")[0]
    assert "ecapa_c512_moco" not in networks                  # label-free: its own table
    line = [l for l in networks.splitlines() if l.startswith("| ecapa_c512_aug | ecapa_c512 | aam | plda")][0]
    assert "5.73 [5.00, 6.50]" in line and "0.500 [0.400, 0.600]" in line
    assert "12,288 chunks, 4 epochs | 16.0 | Xeon, 2 CPUs | 2026-12-06 | abc123" in line
    # generated reading: plda, best ecapa 5.00-6.50 overlaps xvector 5.20-7.00
    assert ("Lowest EER: ecapa_c512_aug plda (5.73 %). It is not separated from xvector plda"
            in networks)
    # cosine: ecapa 8.5-11 is separated from xvector 10.5-13.5? they overlap -> not separated
    assert "Lowest EER: ecapa_c512_aug cosine (9.83 %). It is not separated from xvector cosine" \
        in networks
    label_free = page.split("### Label-free")[1].split("###")[0]
    assert "| ecapa_c512_moco | label-free | plda" in label_free
    assert "| ecapa_c512_aug | labels | plda" in label_free and "xvector" not in label_free
    assert "separates it from ecapa_c512_moco plda" in label_free
    subgroups = page.split("### Subgroups")[1]
    assert "| system | backend | child-child | adult-adult |" in subgroups
    assert "| xvector | plda | 8.00 [7.00, 9.00] | 4.00 [3.00, 5.00] |" in subgroups
    assert ("Trained on: speechocean762. Calibration: 15 held-out speakers (data/calib)."
            in page)
    assert "![DET curves](exp/speechocean762/det_all.png)" in page


def test_a_second_eval_set_is_its_own_section_and_rows_without_intervals_say_so(tmp_path):
    exp = tmp_path / "exp" / "asc+speechocean762"
    dump(exp / "ecapa" / "train_summary.json", {"model": "ecapa_c512", "loss": "aam",
                                               "chunks": 100, "train_seconds": 60.0})
    for name in ("eval_asc", "eval_speechocean762"):
        rows = [row("ecapa", "cosine", 0.1, None), row("ecapa", "plda", 0.05, None)]
        dump(exp / "ecapa" / name / "results.json", rows)
        dump(exp / "ecapa" / name / "run_info.json", {"protocol": name[5:], "eval_set": name,
                                                     "date": "2026-12-07T00:00:00Z"})
    out = tmp_path / "RESULTS.md"
    assert make_results.main(["--out", str(out), str(exp)]) == 0
    page = out.read_text()
    assert "## asc, eval_asc" in page and "## speechocean762, eval_speechocean762" in page
    assert "100 chunks | 1.0 | - | 2026-12-07 | -" in page
    assert "no speaker-bootstrap interval, so no difference" in page


def test_no_results_is_an_error(tmp_path, capsys):
    os.makedirs(tmp_path / "exp" / "x")
    assert make_results.main(["--out", str(tmp_path / "R.md"), str(tmp_path / "exp")]) == 1
    assert "no results.json" in capsys.readouterr().err


def test_run_info_records_facts_and_keeps_the_training_record(tmp_path):
    summary, info = tmp_path / "train_summary.json", tmp_path / "train_info.json"
    summary.write_text("{}")
    assert run_info.main(["--newer-than", str(summary), str(info), "corpus=asc"]) == 0
    first = json.loads(info.read_text())
    assert first["corpus"] == "asc" and first["machine"] and first["date"].endswith("Z")
    assert run_info.main(["--newer-than", str(summary), str(info), "corpus=other"]) == 0
    assert json.loads(info.read_text())["corpus"] == "asc"          # not overwritten
