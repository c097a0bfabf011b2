"""Progress in logs is plain periodic lines, never tqdm's carriage returns
(issue 7, item 9); a terminal still gets the live bar."""
import io
import os

from tqdm import tqdm

from pyutils.utils.progress import PlainProgress, progress
from tests.test_stage_markers import ok, step
from tests.test_robustness_audio import RATE, tone, write_data_dir

import soundfile as sf


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_plain_lines_off_a_terminal_and_a_bar_on_one():
    log = io.StringIO()
    bar = progress(range(5), desc="extract", unit="utt", interval=0.0, stream=log)
    assert isinstance(bar, PlainProgress)
    bar.set_postfix(loss="1.25")
    assert list(bar) == [0, 1, 2, 3, 4]
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue()
    assert len(lines) == 5            # one per item at interval 0; the end's is the last one's
    assert lines[-1].split(" progress ")[1].startswith("extract: 5/5 utt (100%), ")
    assert lines[-1].endswith("loss=1.25") and " utt/s, " in lines[-1]
    quiet = io.StringIO()
    assert list(progress(range(3), interval=3600, stream=quiet)) == [0, 1, 2]
    assert len(quiet.getvalue().splitlines()) == 1      # only the final line
    assert isinstance(progress(range(3), stream=Terminal()), tqdm)


def test_feature_job_logs_hold_no_carriage_returns(tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    entries = {}
    for u in range(3):
        entries[f"s0-u{u}"] = str(audio / f"{u}.wav")
        sf.write(entries[f"s0-u{u}"], tone(RATE, seed=u), RATE)
    write_data_dir(tmp_path / "data", entries)
    out = ok(step("make_mfcc_vad.sh", "--nj", 1, tmp_path / "data", tmp_path / "log",
                  tmp_path / "mfcc"))
    assert "progress in" in out and "make_mfcc_vad_data.*.log" in out
    log = (tmp_path / "log" / "make_mfcc_vad_data.1.log").read_text()
    assert "\r" not in log
    assert "progress features: 3/3 utt (100%)" in log
