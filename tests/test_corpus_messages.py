"""LibriSpeech's offline message names what works (issue 17, smaller items): the
setting in conf/corpora/librispeech.conf, which run.sh reads, not an option that
run.sh rejects; following it makes stage 0 fetch the subset."""
import subprocess

from tests.conftest import ROOT
from tests.test_run_options import recipe_copy


def stage0(run_sh, tmp_path):
    return subprocess.run([str(run_sh), "--corpus", "librispeech", "--stage", "0",
                           "--stop-stage", "0", "--corpus-root", str(tmp_path / "corpora"),
                           "--data", str(tmp_path / "data"), "--exp", str(tmp_path / "exp")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_missing_subset_message_names_the_setting_that_works(tmp_path):
    (tmp_path / "corpora").mkdir()
    result = stage0(f"{ROOT}/run.sh", tmp_path)
    assert result.returncode != 0
    assert "librispeech_download=true in conf/corpora/librispeech.conf" in result.stderr
    assert "--download true when calling local/prepare_librispeech.py" in result.stderr
    # what the old message led to: an option run.sh does not have
    assert "invalid option" in subprocess.run(
        [f"{ROOT}/run.sh", "--librispeech-download", "true"], capture_output=True,
        text=True).stderr
    # and the setting it names does work: stage 0 now fetches (here: offline)
    recipe = recipe_copy(tmp_path)
    conf = recipe / "conf" / "corpora" / "librispeech.conf"
    conf.write_text(conf.read_text().replace("librispeech_download=false",
                                             "librispeech_download=true")
                    .replace("https://www.openslr.org/resources/12", "http://127.0.0.1:9"))
    fetched = stage0(recipe / "run.sh", tmp_path)
    assert fetched.returncode != 0
    assert "cannot download http://127.0.0.1:9/train-clean-100.tar.gz" in fetched.stderr
