"""The results page generator on small exp trees written here (known answers)."""
import json
import os
import re
import shutil
import subprocess

import pytest

import yaml

from pyutils.cli import make_results, run_info

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SO762 = {"protocol": "so762-v1", "eval_set": "eval", "corpus": "speechocean762",
         "calibration": "15 held-out speakers (data/calib)"}


def dump(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        if str(path).endswith(".yaml"):
            yaml.safe_dump(value, handle)
        else:
            json.dump(value, handle)


def row(system, backend, eer, half=0.01, **extra):
    """A results.json row: EER ``eer`` with the interval eer +- half."""
    return {"system": system, "backend": backend, "eer": eer,
            "eer_ci": None if half is None else [eer - half, eer + half],
            "min_dcf_0.01": 0.5, "min_dcf_0.01_ci": [0.4, 0.6], "num_trials": 3123750,
            "num_target": 23750, "min_cllr": 0.3, "cllr": 0.35, "act_dcf_0.01": 0.55, **extra}


def config(model="ecapa_c512", seed=42, **extra):
    return {"model": {"name": model}, "loss": {"name": "aam"}, "data": {"chunks_per_epoch": 1536},
            "training": {"epochs": 4, "seed": seed}, **extra}


AUGMENT = {"speed": {"prob": 0.667, "factors": [0.9, 1.1]}, "noise": {"prob": 0.4},
           "reverb": {"prob": 0.0}}


def system(exp, name, rows, cfg, corpus="speechocean762", info=SO762, where=None,
           summary=None, chunks=12288, minutes=16.0):
    """A trained model dir (summary, train_info, config.yaml) and its results in ``where``."""
    model_dir = exp / name
    out = model_dir / where if where else model_dir
    dump(out / "results.json", [{**r, "system": name} for r in rows])
    dump(out / "run_info.json", info)
    dump(model_dir / "config.yaml", cfg)
    if summary is not False:
        dump(model_dir / "train_summary.json", {
            "model": cfg["model"]["name"], "loss": (summary or {}).get("loss", "aam"),
            "chunks": chunks, "epochs": 4, "train_seconds": 60 * minutes, **(summary or {})})
        dump(model_dir / "train_info.json", {"date": "2026-12-06T12:00:00Z", "commit": "abc123",
                                             "machine": "Xeon, 2 CPUs", "corpus": corpus})
    return model_dir


def make_exp(root):
    """so762-v1: an x-vector and an ECAPA (3 seeds), QMF and adaptation rows, label-free
    MoCo as-is and fine-tuned, an imported GE2E as-is and fine-tuned and from scratch, an
    ECAPA trained on ASC (cross-corpus) and one on ASC + speechocean762 (combined)."""
    exp = root / "exp" / "speechocean762"
    sub = [row("", "plda [child-child]", 0.08, subgroup="child-child", scores_backend="plda"),
           row("", "plda [adult-adult]", 0.04, subgroup="adult-adult", scores_backend="plda")]
    system(exp, "ecapa_aug", [row("", "cosine", 0.0983, 0.0125), row("", "plda", 0.0573, 0.0075),
                              row("", "plda_asnorm", 0.0550, 0.0075),
                              row("", "plda_qmf", 0.0580, 0.0075, cllr=0.30,
                                  **{"act_dcf_0.01": 0.52}),
                              row("", "plda_adapt", 0.0500, 0.0075)] + sub,
           config(augmentation=AUGMENT), info={**SO762, "plda_adapt_data": "data/speechocean762/train (unlabelled)"})
    for seed, eer in ((2, 0.0673), (3, 0.0473)):
        system(exp, f"ecapa_aug_seed{seed}", [row("", "cosine", 0.10), row("", "plda", eer, 0.015)],
               config(seed=seed, augmentation=AUGMENT))
    system(exp, "xvector", [row("", "cosine", 0.12, 0.015), row("", "plda", 0.0610, 0.009)] + sub,
           config("xvector", seed=777), summary={"loss": "softmax"})
    moco = system(exp, "ecapa_moco", [row("", "cosine", 0.20), row("", "plda", 0.15)],
                  config(ssl={"method": "moco"}), summary={"loss": "moco", "label_free": "moco"})
    system(exp, "ecapa_moco_ft", [row("", "cosine", 0.11), row("", "plda", 0.0600)],
           config(training={"seed": 42, "init_from": "exp/speechocean762/ecapa_moco/final.pt"}))
    system(exp, "ge2e_asis", [row("", "cosine", 0.0728, 0.02)],    # import_model's: no training
           {"model": {"name": "ge2e"}, "pretrained": {
               "from": ["/x/resemblyzer/pretrained.pt"],
               "converted_by": "pyutils.models.convert.resemblyzer"}}, summary=False)
    system(exp, "ge2e_ft", [row("", "cosine", 0.0500, 0.006)],
           config("ge2e", training={"seed": 1, "init_from": str(exp / "ge2e_asis" / "final.pt")}))
    system(exp, "ge2e_scratch", [row("", "cosine", 0.1500, 0.01)], config("ge2e", seed=3))
    asc = root / "exp" / "asc"
    system(asc, "ecapa_asc", [row("", "plda", 0.20, 0.02), row("", "plda_adapt", 0.16, 0.03),
                              row("", "cosine", 0.25, 0.02)],
           config(seed=5), corpus="asc", where="eval_so762",
           info={**SO762, "eval_set": "eval_so762", "plda_adapt_data": "so762 train"})
    system(asc, "ecapa_both", [row("", "plda", 0.0550, 0.0075)], config(seed=6),
           corpus="asc+speechocean762", where="eval_so762", info={**SO762,
                                                                  "eval_set": "eval_so762"})
    return exp, asc


def section(page, title):
    return page.split(f"### {title}")[1].split("\n### ")[0].split("\n## ")[0]


def line(text, start):
    found = [l for l in text.splitlines() if l.startswith(start)]
    assert found, f"no line starting {start!r} in\n{text}"
    return found[0]


def make_page(tmp_path):
    exp, asc = make_exp(tmp_path)
    (exp / "det_all.png").write_bytes(b"png so762")
    (asc / "det_all_eval_so762.png").write_bytes(b"png asc on so762")
    out = tmp_path / "RESULTS.md"
    assert make_results.main(["--out", str(out), str(exp), str(asc)]) == 0
    return out, out.read_text()


def test_networks_one_row_per_network_with_fixed_and_best_backends(tmp_path):
    _, page = make_page(tmp_path)
    assert page.count("\n## so762-v1 (3,123,750 trials)") == 1    # both exp dirs, one section
    nets = section(page, "Networks")
    assert [l.split(" | ")[0] for l in nets.splitlines() if l.startswith("| ")][1:] == \
        ["| ecapa_aug", "| ge2e_scratch", "| xvector"]   # no seed replicates, label-free,
    #                                        pretrained or other corpora's runs
    ecapa = line(nets, "| ecapa_aug | ecapa_c512 | aam | supervised, from scratch | noise, speed | ")
    assert "| xvector | xvector | softmax | supervised, from scratch | none | " in nets
    assert "| 9.83 [8.58, 11.08] | 5.73 [4.98, 6.48] | plda_adapt | 5.00 [4.25, 5.75] |" in ecapa
    assert "| 12,288 chunks, 4 epochs | 16.0 | Xeon, 2 CPUs | 2026-12-06 | abc123 |" in ecapa
    assert ("With plda, lowest EER: ecapa_aug plda (5.73 %). It is not separated from "
            "xvector plda: those intervals overlap, so those differences are not gains.") in nets
    assert ("With cosine, lowest EER: ecapa_aug cosine (9.83 %). Its 95 % interval separates it "
            "from ge2e_scratch cosine. It is not separated from xvector cosine") in nets


def test_backends_qmf_and_adaptation_tables(tmp_path):
    _, page = make_page(tmp_path)
    backends = section(page, "Back-ends")
    assert "| ecapa_aug | plda_asnorm | 5.50 [4.75, 6.25] |" in backends
    assert "_qmf" not in backends and "_adapt" not in backends
    assert "ecapa_asc" not in backends      # trained on ASC: the cross-corpus table's
    assert "Calibration of the runs trained on this corpus: " in page
    assert ("ecapa_aug, lowest EER: ecapa_aug plda_asnorm (5.50 %). Its 95 % interval separates "
            "it from ecapa_aug cosine. It is not separated from ecapa_aug plda") in backends
    qmf = section(page, "Calibration with quality measures (QMF)")
    assert "| ecapa_aug | plda_qmf | 0.350 | 0.300 | 0.550 | 0.520 |" in qmf
    assert "| 15 held-out speakers (data/calib) | 12,288 chunks, 4 epochs | 16.0 |" in qmf
    assert ("ecapa_aug plda with QMF: EER 5.73 % -> 5.80 %, intervals overlap: not a gain or a "
            "loss; Cllr 0.350 -> 0.300; actual DCF(0.01) 0.550 -> 0.520.") in qmf
    adapt = section(page, "PLDA adaptation")
    assert ("| ecapa_aug | speechocean762 | speechocean762 | plda_adapt_data=data/speechocean762/"
            "train (unlabelled) | plda | 5.73 [4.98, 6.48] | 5.00 [4.25, 5.75] |") in adapt
    assert "| ecapa_asc | asc | speechocean762 | plda_adapt_data=so762 train | plda |" in adapt
    assert "ecapa_asc plda adapted (cross-corpus): EER 20.00 % -> 16.00 %, intervals overlap" \
        in adapt


def test_label_free_and_pretrained_tables_from_config_not_names(tmp_path):
    _, page = make_page(tmp_path)
    free = section(page, "Label-free against supervised")
    assert "| ecapa_moco | ecapa_c512 | label-free (moco), as-is | plda | 15.00" in free
    assert "| ecapa_moco_ft | ecapa_c512 | label-free (moco), fine-tuned with labels | plda |" \
        in free
    assert "| ecapa_aug | ecapa_c512 | supervised, from scratch | plda |" in free
    assert "xvector" not in free and "ge2e" not in free and "ecapa_asc" not in free
    assert ("ecapa_c512 with plda, lowest EER: ecapa_aug (supervised, from scratch) (5.73 %). "
            "Its 95 % interval separates it from ecapa_moco (label-free (moco), as-is). "
            "It is not separated from ecapa_moco_ft") in free
    pre = section(page, "Pretrained: as-is, fine-tuned, from scratch")
    rows = [l for l in pre.splitlines() if l.startswith("| ge2e")]
    assert [r.split(" | ")[2] for r in rows] == [
        "pretrained (resemblyzer), as-is", "pretrained (resemblyzer), fine-tuned",
        "supervised, from scratch"]
    assert "| imported (resemblyzer), no training here | - |" in rows[0]
    assert ("ge2e with cosine, lowest EER: ge2e_ft (pretrained (resemblyzer), fine-tuned) "
            "(5.00 %). Its 95 % interval separates it from ge2e_scratch (supervised, from "
            "scratch). It is not separated from ge2e_asis") in pre


def test_seeds_grouped_with_mean_spread_and_bootstrap_width(tmp_path):
    _, page = make_page(tmp_path)
    seeds = section(page, "Seeds")
    plda = line(seeds, "| ecapa_aug | plda | 2, 3, 42 | ")
    # EERs 6.73, 4.73, 5.73: mean 5.73, sd 1.00, span 4.73-6.73; CI widths 3, 3, 1.5 -> 2.50
    assert "| 5.73 | 1.00 | 4.73-6.73 | 2.50 | 2: 6.73 [5.23, 8.23]; 3: 4.73" in plda
    assert "| 12,288 chunks, 4 epochs | 16.0 |" in plda
    assert ("ecapa_aug plda: 3 seeds span 2.00 EER points, less than the mean width of one "
            "run's bootstrap interval (2.50 points)") in seeds
    assert "xvector" not in seeds


def test_a_run_repeated_with_the_same_seed_is_not_hidden(tmp_path):
    exp = tmp_path / "exp" / "speechocean762"
    for name in ("ecapa", "ecapa_again"):
        system(exp, name, [row("", "plda", 0.06)], config())
    out = tmp_path / "R.md"
    assert make_results.main(["--out", str(out), str(exp)]) == 0
    nets = section(out.read_text(), "Networks")
    assert "| ecapa | " in nets and "| ecapa_again | " in nets
    assert "### Seeds" not in out.read_text()


def test_cross_corpus_and_combined_beside_the_in_domain_network(tmp_path):
    _, page = make_page(tmp_path)
    cross = section(page, "Cross-corpus")
    assert ("| ecapa_asc | asc | speechocean762 | plda_adapt | 16.00 [13.00, 19.00] |"
            in cross)
    assert "| ecapa_aug | speechocean762 | speechocean762 | plda |" in cross
    assert "ecapa_both" not in cross
    assert "plda_adapt_data=so762 train" in cross           # run_info facts, read generically
    both = section(page, "Combined training")
    assert "| ecapa_both | asc + speechocean762 | speechocean762 | plda | 5.50 [4.75, 6.25] |" \
        in both
    assert ("With plda, lowest EER: ecapa_aug plda_adapt (trained on speechocean762) (5.00 %). "
            "It is not separated from ecapa_aug plda") in both
    assert "No model is evaluated on two protocols yet" in page      # no threshold table
    subgroups = section(page, "Subgroups")
    assert "| xvector | plda | 8.00 [7.00, 9.00] | 4.00 [3.00, 5.00] |" in subgroups


def test_results_away_from_their_model_and_an_importer_summary_without_budget(tmp_path):
    exp, _ = make_exp(tmp_path)
    elsewhere = tmp_path / "exp" / "cross"               # results of exp/speechocean762's model
    dump(elsewhere / "so762_on_asc" / "results.json", [row("ecapa_aug", "plda", 0.30, 0.02)])
    dump(elsewhere / "so762_on_asc" / "run_info.json", {
        "protocol": "asc-v1", "eval_set": "eval", "corpus": "asc",
        "model_dir": "exp/speechocean762/ecapa_aug"})
    dump(exp / "ge2e_asis" / "train_summary.json", {"model": "ge2e", "imported": "resemblyzer"})
    out = tmp_path / "R.md"
    assert make_results.main(["--out", str(out), str(exp), str(elsewhere)]) == 0
    page = out.read_text()
    asc = page.split("## asc-v1")[1].split("\n## ")[0]
    assert ("| ecapa_aug | speechocean762 | asc | plda | 30.00 [28.00, 32.00] | 0.500 [0.400, "
            "0.600] | 0.350 | - | 12,288 chunks, 4 epochs | 16.0 |") in section(asc, "Cross-corpus")
    assert "| ge2e_asis | ge2e | pretrained (resemblyzer), as-is |" in section(page, "Pretrained")


def test_det_charts_copied_beside_the_page_and_links_work_without_exp(tmp_path):
    out, page = make_page(tmp_path)
    links = re.findall(r"!\[DET curves\]\(([^)]+)\)", page)
    assert links == ["results/det_speechocean762.png", "results/det_asc_eval_so762.png"]
    clean = tmp_path / "checkout"                   # the page and its folder, without exp/
    clean.mkdir()
    shutil.copy(out, clean / "RESULTS.md")
    shutil.copytree(tmp_path / "results", clean / "results")
    assert (clean / links[1]).read_bytes() == b"png asc on so762"
    assert sorted(os.listdir(clean / "results")) == ["det_asc_eval_so762.png",
                                                     "det_speechocean762.png"]
    # rerun without the asc runs: its chart is no longer linked, so it goes; the other stays
    kept = tmp_path / "results" / "det_speechocean762.png"
    os.utime(kept, (1, 1))
    (tmp_path / "results" / "notes.txt").write_text("not the page's")
    assert make_results.main(["--out", str(out), str(tmp_path / "exp" / "speechocean762")]) == 0
    assert sorted(os.listdir(tmp_path / "results")) == ["det_speechocean762.png", "notes.txt"]
    assert os.path.getmtime(kept) == 1               # identical: not rewritten


def test_threshold_shift_from_calibration_and_evaluation_thresholds(tmp_path):
    exp = tmp_path / "exp" / "speechocean762"
    asc = {**SO762, "protocol": "asc-v1", "eval_set": "eval_asc", "corpus": "asc"}
    model = system(exp, "ecapa", [row("", "plda", 0.06, eer_threshold=-3.5)], config())
    system(exp, "ecapa", [row("", "plda", 0.20, eer_threshold=1.25, **{"act_dcf_0.01": 0.95})],
           config(), where="eval_asc", info=asc)
    dump(model / "calibration" / "plda.json", {"trained_on": "calib", "operating_points": {
        "eer": {"threshold": -4.0, "scale": "score", "p_miss": 0.06, "p_fa": 0.06}}})
    out = tmp_path / "R.md"
    assert make_results.main(["--out", str(out), str(exp)]) == 0
    page = out.read_text()
    table = section(page, "Thresholds")
    assert "| ecapa | plda | so762-v1 | 15 held-out speakers (data/calib) | -4.000 | -3.500 | " \
           "+0.500 | 0.500 | 0.550 | 0.050 |" in table
    assert "| ecapa | plda | asc-v1 | 15 held-out speakers (data/calib) | -4.000 | 1.250 | " \
           "+5.250 | 0.500 | 0.950 | 0.450 |" in table
    assert ("ecapa plda, one calibration (15 held-out speakers (data/calib)) used on asc-v1 "
            "(actual - minimum DCF 0.450, EER threshold 1.250), so762-v1 (actual - minimum DCF "
            "0.050, EER threshold -3.500)") in table


def test_rows_without_intervals_are_not_ranked(tmp_path):
    exp = tmp_path / "exp" / "x"
    system(exp, "a", [row("", "cosine", 0.1, None), row("", "plda", 0.05, None)], config(),
           corpus="x", info={"eval_set": "eval", "corpus": "x"})
    out = tmp_path / "R.md"
    assert make_results.main(["--out", str(out), str(exp)]) == 0
    page = out.read_text()
    assert "## x, eval (3,123,750 trials)" in page
    assert "no speaker-bootstrap interval, so no difference" in page
    assert ("No runs on x, eval answer yet: QMF, PLDA adaptation, label-free, seeds, "
            "pretrained, cross-corpus, combined training, subgroups.") in page


def test_a_row_without_its_backend_is_an_error_naming_the_file(tmp_path, capsys):
    exp = tmp_path / "exp" / "x"
    bad = row("a", "plda", 0.05)
    del bad["backend"]
    dump(exp / "a" / "results.json", [row("a", "cosine", 0.1), bad])
    assert make_results.main(["--out", str(tmp_path / "R.md"), str(exp)]) == 1
    assert f"{exp / 'a' / 'results.json'}: row 2 has no 'backend'" in capsys.readouterr().err
    assert not (tmp_path / "R.md").exists()


def test_no_results_is_an_error(tmp_path, capsys):
    os.makedirs(tmp_path / "exp" / "x")
    assert make_results.main(["--out", str(tmp_path / "R.md"), str(tmp_path / "exp")]) == 1
    assert "no results.json" in capsys.readouterr().err


def test_committed_results_page_links_resolve():
    page = os.path.join(ROOT, "RESULTS.md")
    with open(page, encoding="utf-8") as handle:
        targets = re.findall(r"\]\(([^)\s]+)\)", handle.read())
    local = [t for t in targets if not re.match(r"[a-z]+://", t)]
    assert local, "the page links its DET charts"
    missing = [t for t in local if not os.path.isfile(os.path.join(ROOT, t.split("#")[0]))]
    assert not missing and not any(t.startswith("exp/") for t in local), missing
    charts = sorted(os.path.basename(t) for t in local if t.endswith(".png"))
    assert sorted(os.listdir(os.path.join(ROOT, "results"))) == charts
    try:                                           # committed, so a clean checkout has them
        tracked = subprocess.run(["git", "ls-files", "RESULTS.md", "results"], cwd=ROOT,
                                 capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    assert tracked == ["RESULTS.md"] + [f"results/{c}" for c in charts]


def test_run_info_records_facts_and_keeps_the_training_record(tmp_path):
    summary, info = tmp_path / "train_summary.json", tmp_path / "train_info.json"
    summary.write_text("{}")
    assert run_info.main(["--newer-than", str(summary), str(info), "corpus=asc"]) == 0
    first = json.loads(info.read_text())
    assert first["corpus"] == "asc" and first["machine"] and first["date"].endswith("Z")
    assert run_info.main(["--newer-than", str(summary), str(info), "corpus=other"]) == 0
    assert json.loads(info.read_text())["corpus"] == "asc"          # not overwritten


def test_training_read_from_config_ssl_first_then_init_from(tmp_path):
    from pyutils.metrics.report_runs import ModelFacts, training_label
    dump(tmp_path / "moco" / "config.yaml", config(ssl={"method": "moco"}))
    dump(tmp_path / "dino_from_moco" / "config.yaml", config(
        ssl={"method": "dino"}, training={"init_from": str(tmp_path / "moco" / "final.pt")}))
    dump(tmp_path / "ft" / "config.yaml", config(training={"init_from": "nowhere/final.pt"}))
    moco, dino, ft = (ModelFacts(str(tmp_path / d)) for d in ("moco", "dino_from_moco", "ft"))
    assert training_label(dino, moco) == "label-free (dino), as-is, started from moco"
    assert training_label(ft, None) == "fine-tuned from nowhere/final.pt"
    assert training_label(ft, moco) == "label-free (moco), fine-tuned with labels"


def test_an_imported_model_known_by_its_marker_alone(tmp_path):
    from pyutils.metrics.report_runs import ModelFacts
    model = tmp_path / "ge2e"
    dump(model / "config.yaml", {"model": {"name": "ge2e"}})
    (model / ".done").write_text("abc\nrun 2026-12-06T12:00:00 x\n"
                                 "converted from /m/resemblyzer/pretrained.pt\n")
    facts = ModelFacts(str(model))
    assert (facts.kind, facts.source) == ("imported", "resemblyzer/pretrained.pt")


def test_budget_names_chunks_and_epochs_in_words():
    from pyutils.metrics.report_text import budget
    assert budget({"chunks": 6144, "epochs": 4}) == "6,144 chunks, 4 epochs"
    assert budget({"chunks": 1536, "epochs": 1}) == "1,536 chunks, 1 epoch"
    assert budget({"utterances": 4096}) == "4,096 utterances"
    assert budget({"kind": "imported", "source": "resemblyzer"}) == \
        "imported (resemblyzer), no training here"
