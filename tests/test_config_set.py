"""run.sh --train-overrides: a training config with values changed on the command line
(pyutils/cli/config_set.py, steps/resolve_data.sh)."""
import os
import subprocess

import pytest
import yaml

from pyutils.cli.config_set import apply_overrides, main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE = {"training": {"seed": 42, "epochs": 4}, "data": {"chunks_per_epoch": 1536},
        "augmentation": {"speed": {"factors": [0.9, 1.1]}}}


def test_values_are_read_as_yaml_and_the_base_is_not_changed():
    out = apply_overrides(BASE, ["training.seed=2", "augmentation.speed.factors=[0.95, 1.05]",
                                 "data.chunks_per_epoch=768"])
    assert out == {"training": {"seed": 2, "epochs": 4}, "data": {"chunks_per_epoch": 768},
                   "augmentation": {"speed": {"factors": [0.95, 1.05]}}}
    assert BASE["training"]["seed"] == 42 and BASE["data"]["chunks_per_epoch"] == 1536


@pytest.mark.parametrize("override, message", [
    ("training.sed=2", "base.yaml has no key 'training.sed' (a typo? +training.sed=... adds it)"),
    ("trainin.seed=2", "base.yaml has no section 'trainin' (+trainin.seed=... adds one)"),
    ("training.seed.x=1", "base.yaml has no section 'training.seed'"),
    ("training.seed", "expected KEY=VALUE"),
])
def test_a_key_the_config_does_not_have_is_an_error(override, message):
    with pytest.raises(ValueError, match="^override '" + override.replace(".", r"\.")):
        apply_overrides(BASE, [override], source="base.yaml")
    with pytest.raises(ValueError) as err:
        apply_overrides(BASE, [override], source="base.yaml")
    assert message in str(err.value)


def test_a_plus_adds_a_key_or_a_section():
    out = apply_overrides(BASE, ["+training.init_from=exp/a/final.pt", "+loss.margin=0.3"])
    assert out["training"] == {"seed": 42, "epochs": 4, "init_from": "exp/a/final.pt"}
    assert out["loss"] == {"margin": 0.3}


def test_the_output_is_rewritten_only_when_it_changes(tmp_path):
    base, out = tmp_path / "base.yaml", tmp_path / "m" / "override_config.yaml"
    base.write_text(yaml.safe_dump(BASE))
    assert main([str(base), str(out), "training.seed=2"]) == 0
    assert yaml.safe_load(out.read_text())["training"]["seed"] == 2
    os.utime(out, (1, 1))
    assert main([str(base), str(out), "training.seed=2"]) == 0
    assert os.stat(out).st_mtime == 1          # same content: untouched, the stamp stays
    assert main([str(base), str(out), "training.seed=3"]) == 0
    assert yaml.safe_load(out.read_text())["training"]["seed"] == 3
    assert main([str(base), str(out), "training.sed=3"]) == 1


def test_resolve_data_trains_with_the_overridden_config(tmp_path):
    model_dir = tmp_path / "xvector_seed2"
    result = subprocess.run(["steps/resolve_data.sh", "--overrides", "training.seed=2 data.batch_size=16",
                             "conf/xvector.yaml", "d", "e", str(model_dir)],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"train_config={model_dir}/override_config.yaml" in result.stdout.splitlines()
    config = yaml.safe_load((model_dir / "override_config.yaml").read_text())
    with open(os.path.join(ROOT, "conf/xvector.yaml")) as handle:
        base = yaml.safe_load(handle)
    assert config["training"]["seed"] == 2 and config["data"]["batch_size"] == 16
    assert config["model"] == base["model"] and base["training"]["seed"] != 2
    bad = subprocess.run(["steps/resolve_data.sh", "--overrides", "training.sed=2", "--prog", "run.sh",
                          "conf/xvector.yaml", "d", "e", str(model_dir)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    assert "training.sed" in bad.stderr and "run.sh: --train-overrides" in bad.stderr
