"""Which stages a changed config reruns, through ./run.sh on tiny data (issue 17,
item 2): each config a stage reads (mfcc.conf, fbank.conf, cmvn.conf, vad.conf,
backend.conf, the training YAML) reruns that stage and the stages after it, and
nothing else; a comment or a runtime-only key in the YAML reruns nothing.  For an
MFCC x-vector on precomputed features, and for an fbank network with features
on the fly (whose training reads conf/cmvn.conf by default).

A stage "ran" when one of its completion markers was rewritten (each write has a
new run id).  The recipe runs from a copy with its own conf/ (tests.test_run_options.
recipe_copy), stages 0-6 (stage 7 is a report that always runs)."""
import os
import subprocess

import numpy as np
import pytest
import soundfile as sf
import yaml

from tests.test_robustness_audio import RATE, tone
from tests.test_run_options import recipe_copy

pytestmark = pytest.mark.slow

TINY = {
    "model": {"name": "xvector", "embed_dim": 8, "frame_dims": [16, 16, 16, 16, 32]},
    "loss": {"name": "softmax"},
    "data": {"min_chunk_frames": 40, "max_chunk_frames": 60, "batch_size": 8,
             "chunks_per_epoch": 16},
    "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
    "scheduler": {"name": "exponential", "warmup_steps": 1, "final_lr_ratio": 0.1},
    "training": {"epochs": 1, "seed": 3, "num_threads": 1},
}
ON_THE_FLY = {**TINY, "features": {"type": "fbank", "conf": "conf/fbank.conf",
                                   "on_the_fly": True}}


def edit(path, old, new):
    text = path.read_text()
    assert old in text, (path, old)
    path.write_text(text.replace(old, new))


def set_option(path, name, value):
    """Set ``--name=value`` in a Kaldi-style conf (or ``name=value`` in a shell conf)."""
    text = path.read_text()
    prefix = f"--{name}=" if f"--{name}=" in text else f"{name}="
    lines = text.splitlines()
    hits = [i for i, line in enumerate(lines) if line.startswith(prefix)]
    assert len(hits) == 1, (path, name)
    old = lines[hits[0]].split("#")[0].strip()
    assert old != f"{prefix}{value}", (path, name, value)   # a real change
    lines[hits[0]] = f"{prefix}{value}"
    path.write_text("\n".join(lines) + "\n")


def stage_of(path, model):
    """The stage that writes a marker (relative to the test dir)."""
    parts = path.split(os.sep)
    if parts[0] == "data":
        if len(parts) == 2:
            return 0
        return 2 if parts[1].endswith("_no_sil") else 1
    if parts[1] != model:
        return None
    if len(parts) == 3:
        return 3
    return {"embeddings_train": 4, "embeddings_eval": 4, "backend": 5}.get(parts[2], 6)


class Recipe:
    def __init__(self, root):
        self.root = root
        self.recipe = recipe_copy(root)
        self.conf = self.recipe / "conf"
        edit(self.conf / "train_filters.conf", "min_len=400", "min_len=50")
        edit(self.conf / "train_filters.conf", "min_num_utts=8", "min_num_utts=2")
        backend = self.conf / "backend.conf"
        edit(backend, 'backends="cosine plda"', 'backends="plda"')
        edit(backend, 'score_norms="asnorm"', 'score_norms=""')
        edit(backend, "backend_window=300", "backend_window=0")
        for config, name in ((TINY, "tiny.yaml"), (ON_THE_FLY, "otf.yaml")):
            (root / name).write_text(yaml.safe_dump(config))
        corpus = root / "corpora" / "my_corpus"
        for part, speakers in (("train", range(4)), ("eval", range(4, 7))):
            for s in speakers:
                os.makedirs(corpus / part / f"spk{s}")
                for u in range(3):
                    ramp = np.logspace(-2, 0, 2 * RATE)   # VAD decides where speech starts
                    x = tone(2 * RATE, seed=10 * s + u, freqs=(150.0 * (s + 1), 1300.0)) * ramp
                    sf.write(corpus / part / f"spk{s}" / f"u{u}.wav", x.astype(np.int16), RATE)

    def markers(self):
        found = {}
        for top in ("data", "exp"):
            for dirpath, _, files in os.walk(self.root / top):
                for name in files:
                    if name.endswith(".done"):
                        path = os.path.join(dirpath, name)
                        found[os.path.relpath(path, self.root)] = open(path).read()
        return found

    def run(self, model, *extra, ok=True):
        """./run.sh stages 0-6 of ``model``; the set of stages that ran."""
        before = self.markers()
        result = subprocess.run(
            [str(self.recipe / "run.sh"), "--corpus", "folder", "--corpus-root",
             str(self.root / "corpora"), "--data", str(self.root / "data"), "--exp",
             str(self.root / "exp"), "--model", model, "--train-config",
             str(self.root / f"{model}.yaml"), "--stop-stage", "6", "--nj", "1", *extra],
            cwd=self.root, capture_output=True, text=True, timeout=900)
        assert (result.returncode == 0) == ok, result.stdout[-3000:] + result.stderr[-3000:]
        after = self.markers()
        ran = {stage_of(p, model) for p in after if after[p] != before.get(p)}
        self.output = result.stdout + result.stderr
        return ran - {None}


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    return Recipe(tmp_path_factory.mktemp("reruns"))


ALL = {0, 1, 2, 3, 4, 5, 6}


def test_precomputed_mfcc_model(recipe):
    conf = recipe.conf
    assert recipe.run("tiny") == ALL
    assert recipe.run("tiny") == set()
    set_option(conf / "fbank.conf", "num-mel-bins", 64)   # not read
    assert recipe.run("tiny") == set()
    config = yaml.safe_load((recipe.root / "tiny.yaml").read_text())
    config["data"]["num_workers"] = 0
    (recipe.root / "tiny.yaml").write_text("# a comment\n" + yaml.safe_dump(config))
    assert recipe.run("tiny") == set()
    set_option(conf / "backend.conf", "lda_dim", 2)
    assert recipe.run("tiny") == {5, 6}
    set_option(conf / "cmvn.conf", "cmn-window", 100)
    assert recipe.run("tiny") == {2, 3, 4, 5, 6}
    set_option(conf / "vad.conf", "vad-energy-threshold", 7.0)
    assert recipe.run("tiny") == {1, 2, 3, 4, 5, 6}
    set_option(conf / "mfcc.conf", "low-freq", 40)
    assert recipe.run("tiny") == {1, 2, 3, 4, 5, 6}
    config["training"]["epochs"] = 2                # a real change: refused, named
    (recipe.root / "tiny.yaml").write_text(yaml.safe_dump(config))
    assert recipe.run("tiny", ok=False) == set()
    assert "training.epochs: 1 -> 2" in recipe.output
    assert recipe.run("tiny", "--force", "true") == {3, 4, 5, 6}


def test_on_the_fly_fbank_model(recipe):
    conf = recipe.conf
    first = recipe.run("otf")                       # stage 0 too when this test runs alone
    assert first - {0} == {1, 3, 4, 5, 6}           # no stage 2: features on the fly
    assert recipe.run("otf") == set()
    set_option(conf / "cmvn.conf", "cmn-window", 200)
    assert recipe.run("otf") == {3, 4, 5, 6}        # issue 17 item 2: training too
    assert "its inputs changed (conf/cmvn.conf)" in open(
        recipe.root / "exp" / "otf" / "log" / "train.log").read()
    set_option(conf / "fbank.conf", "num-mel-bins", 40)
    assert recipe.run("otf") == {1, 3, 4, 5, 6}
    set_option(conf / "backend.conf", "plda_em_iters", 3)
    assert recipe.run("otf") == {5, 6}
