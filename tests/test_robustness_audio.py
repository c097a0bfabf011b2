"""Bad audio through the real feature stage (steps/make_mfcc_vad.sh) and bad
features through the training-feature job (python -m pyutils.cli.prepare_feats):
every bad input is either a clear error naming file/line/utterance, or a skip
that is logged (utterance + source named), counted by reason in the stage's
summary line and listed; nothing disappears silently."""
import os
import re
import subprocess
import sys

import kaldiio
import numpy as np
import soundfile as sf

from pyutils.features.spectral import resample_waveform
from pyutils.utils.arkio import load_scp_dict
from tests.conftest import ROOT

RATE = 16000


def tone(n, rate=RATE, seed=0, freqs=(300.0, 1100.0, 2500.0)):
    """Voiced-looking int16 signal: a few sinusoids plus a little noise."""
    t = np.arange(n) / rate
    x = sum(3000 * np.sin(2 * np.pi * f * t + k) for k, f in enumerate(freqs))
    return (x + np.random.default_rng(seed).normal(0, 30, n)).astype(np.int16)


def write_data_dir(data, entries):
    """entries: {utt: wav.scp value}; speaker = the part before the first '-'."""
    os.makedirs(data, exist_ok=True)
    utts = sorted(entries)
    with open(os.path.join(data, "wav.scp"), "w") as out:
        out.writelines(f"{u} {entries[u]}\n" for u in utts)
    with open(os.path.join(data, "utt2spk"), "w") as out:
        out.writelines(f"{u} {u.split('-')[0]}\n" for u in utts)
    spk2utt = {}
    for u in utts:
        spk2utt.setdefault(u.split("-")[0], []).append(u)
    with open(os.path.join(data, "spk2utt"), "w") as out:
        out.writelines(f"{s} {' '.join(us)}\n" for s, us in sorted(spk2utt.items()))


def make_mfcc(data, tmp_path, nj=2, mfcc_config=None):
    cmd = [os.path.join(ROOT, "steps", "make_mfcc_vad.sh"), "--nj", str(nj)]
    if mfcc_config:
        cmd += ["--mfcc-config", str(mfcc_config)]
    cmd += [str(data), str(tmp_path / "log"), str(tmp_path / "mfcc")]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)


def job_logs(tmp_path):
    logdir = tmp_path / "log"
    return "".join((logdir / f).read_text() for f in sorted(os.listdir(logdir))
                   if f.endswith(".log"))


def read_lines(path):
    with open(path) as handle:
        return handle.read().splitlines()


def bad_audio_dir(tmp_path):
    """4 good utterances and one of each kind of bad audio; returns (data, expected)."""
    audio = tmp_path / "audio"
    audio.mkdir()

    def wav(name, samples, rate=RATE, **kw):
        path = str(audio / name)
        sf.write(path, samples, rate, **kw)
        return path

    entries = {f"s{s}-good{u}": wav(f"good{s}{u}.wav", tone(RATE, seed=10 * s + u))
               for s in range(2) for u in range(2)}
    expected = {}

    def bad(utt, value, reason):
        entries[utt] = value
        expected[utt] = reason

    bad("s0-empty", wav("empty.wav", np.zeros(0, np.int16)), "empty audio")
    bad("s0-short", wav("short.wav", tone(50)), "too short")
    bad("s0-rate8k", wav("rate8k.wav", tone(8000, 8000), 8000), "wrong sample rate")
    bad("s0-rate32k", wav("rate32k.wav", tone(32000, 32000), 32000), "wrong sample rate")
    bad("s0-stereo", wav("stereo.wav", np.stack([tone(RATE), tone(RATE, seed=1)], 1)),
        "multi-channel")
    text = audio / "notes.wav"
    text.write_text("this is a text file, not audio\n")
    bad("s1-text", str(text), "not audio")
    bad("s1-missing", str(audio / "no-such.wav"), "missing file")
    (audio / "dir.wav").mkdir()
    bad("s1-dir", str(audio / "dir.wav"), "unreadable")
    if os.geteuid() != 0:  # root reads mode-000 files anyway
        locked = wav("locked.wav", tone(RATE))
        os.chmod(locked, 0)
        bad("s1-locked", locked, "unreadable")
    flac = wav("cut.flac", tone(2 * RATE), format="FLAC")
    with open(flac, "r+b") as handle:
        handle.truncate(os.path.getsize(flac) // 2)
    bad("s1-flac", flac, "unreadable")
    bad("s1-pipe", "sh -c 'echo boom >&2; exit 3' |", "command failed")
    trunc = wav("trunc.wav", tone(RATE))
    with open(trunc, "r+b") as handle:
        handle.truncate(44 + RATE)  # header + half of the samples
    bad("s1-trunc", trunc, "truncated")
    bad("s1-nan", wav("nan.wav", np.full(RATE, np.nan, np.float32), subtype="FLOAT"),
        "non-finite samples")
    data = tmp_path / "data"
    write_data_dir(data, entries)
    return data, entries, expected


def test_bad_audio_is_skipped_logged_counted_and_listed(tmp_path):
    data, entries, expected = bad_audio_dir(tmp_path)
    result = make_mfcc(data, tmp_path)
    assert result.returncode == 0, result.stderr

    # the step's summary gives the counts per reason
    total, done = len(entries), len(entries) - len(expected)
    summary = result.stdout.strip().splitlines()[-1]
    assert f"done {done} of {total} utterances ({len(expected)} failed: " in summary, summary
    counts = {}
    for reason in expected.values():
        counts[reason] = counts.get(reason, 0) + 1
    for reason, n in counts.items():
        assert re.search(rf"[(:,] {n} {reason}[,)]", summary), (reason, summary)
    assert counts["unreadable"] >= 2 and counts["wrong sample rate"] == 2

    # the list of failed utterances, one reason each
    listed = dict(line.split(" ", 1) for line in read_lines(tmp_path / "log" / "skipped_data"))
    assert listed == expected

    # every skip is logged naming the utterance, the reason and its audio
    logs = job_logs(tmp_path)
    for utt, reason in expected.items():
        line = next((x for x in logs.splitlines() if f"{utt}: failed ({reason})" in x), None)
        assert line is not None, (utt, logs)
        source = entries[utt].rstrip("| ")
        assert source in line or source in logs, (utt, line)
    assert "set --allow-upsample=true" in logs and "set --allow-downsample=true" in logs
    assert "has 2 channels; choose one with --channel=N" in logs
    assert "exit status 3" in logs and "boom" in logs
    assert "the WAV header promises 16000 samples but the file holds 8000" in logs
    assert "16000 of 16000 samples are NaN or infinite" in logs

    # features only for the good ones; the data dir is fixed, the user's lists kept
    good = sorted(set(entries) - set(expected))
    assert sorted(load_scp_dict(str(data / "feats.scp"))) == good
    assert [line.split()[0] for line in read_lines(data / "utt2spk")] == good
    assert len(read_lines(data / ".orig" / "utt2spk")) == total
    assert len(read_lines(data / ".backup" / "1" / "utt2spk")) == total
    assert f"kept {done} of {total} utterances" in result.stderr

    # a rerun is skipped as a whole
    again = make_mfcc(data, tmp_path)
    assert again.returncode == 0 and "already has features" in again.stdout


def test_resampling_channel_and_min_duration_options(tmp_path):
    """--allow-upsample/--allow-downsample resample (scipy resample_poly), --channel
    picks a channel, --min-duration skips (counted) shorter audio."""
    conf = tmp_path / "mfcc.conf"
    conf.write_text(open(os.path.join(ROOT, "conf", "mfcc.conf")).read()
                    + "--dither=0\n--allow-upsample=true\n--allow-downsample=true\n"
                      "--channel=1\n--min-duration=0.5\n")
    audio = tmp_path / "audio"
    audio.mkdir()
    left, right = tone(RATE, seed=1), tone(RATE, seed=2, freqs=(500.0, 1700.0))
    entries = {}
    for utt, samples, rate in (("a-r16k", np.stack([left, right], 1), RATE),
                               ("a-r8k", np.stack([tone(8000, 8000)] * 2, 1), 8000),
                               ("a-r32k", np.stack([tone(32000, 32000)] * 2, 1), 32000),
                               ("b-mono", right, RATE),
                               ("b-short", np.stack([tone(4000)] * 2, 1), RATE)):
        entries[utt] = str(audio / f"{utt}.wav")
        sf.write(entries[utt], samples, rate)
    data = tmp_path / "data"
    write_data_dir(data, entries)
    result = make_mfcc(data, tmp_path, nj=1, mfcc_config=conf)
    assert result.returncode == 0, result.stderr
    assert "done 3 of 5 utterances (2 failed: 1 no such channel, 1 too short)" in result.stdout
    logs = job_logs(tmp_path)
    assert "b-mono: failed (no such channel)" in logs and "has no channel 1 (it has 1)" in logs
    assert "b-short: failed (too short)" in logs and "shorter than --min-duration=0.5" in logs
    frames = dict(line.split() for line in read_lines(data / "utt2num_frames"))
    assert frames == {"a-r16k": "100", "a-r32k": "100", "a-r8k": "100"}
    feats = load_scp_dict(str(data / "feats.scp"))
    # channel 1 of the stereo file gives the features of that channel alone
    from pyutils.features.kaldi_conf import read_kaldi_conf
    from pyutils.features.mfcc import MfccComputer
    expected = MfccComputer(read_kaldi_conf(str(conf))).compute(right.astype(np.float64))
    np.testing.assert_allclose(feats["a-r16k"], expected, rtol=1e-5, atol=1e-4)


def test_resampled_audio_matches_audio_recorded_at_the_rate():
    n = 3 * RATE
    for rate in (8000, 32000, 44100):
        t = np.arange(int(n * rate / RATE)) / rate
        x = np.sin(2 * np.pi * 440 * t) + 0.5 * np.sin(2 * np.pi * 1234 * t)
        y = resample_waveform(x, rate, RATE)
        ref = np.sin(2 * np.pi * 440 * np.arange(n) / RATE) \
            + 0.5 * np.sin(2 * np.pi * 1234 * np.arange(n) / RATE)
        assert abs(len(y) - n) <= 1
        middle = slice(RATE // 4, n - RATE // 4)  # away from the filter's edge effects
        np.testing.assert_allclose(y[middle], ref[middle], atol=5e-3)  # filter ripple


def test_job_with_no_usable_audio_fails_naming_the_reasons(tmp_path):
    text = tmp_path / "x.wav"
    text.write_text("not audio")
    data = tmp_path / "data"
    write_data_dir(data, {"a-1": str(tmp_path / "gone.wav"), "a-2": str(text)})
    result = make_mfcc(data, tmp_path, nj=1)
    assert result.returncode == 1
    assert "job 1 failed" in result.stderr
    assert "no utterance could be processed (2 failed: 1 missing file, 1 not audio)" \
        in result.stderr, result.stderr
    assert not (tmp_path / "data" / ".mfcc_vad.done").exists()


def test_non_finite_features_are_an_error_naming_the_utterance(tmp_path):
    """prepare_feats (stage 2's job): NaN/inf input features stop the job naming the
    scp line and utterance; an utterance with no voiced frame is a counted skip."""
    rng = np.random.default_rng(0)
    feats = {f"u{i}": rng.normal(size=(40, 5)).astype(np.float32) for i in range(3)}
    vad = {k: (np.arange(40) % 2).astype(np.float32) for k in feats}
    vad["u2"][:] = 0
    feats_scp, vad_scp = tmp_path / "feats.scp", tmp_path / "vad.scp"
    with kaldiio.WriteHelper(f"ark,scp:{tmp_path}/v.ark,{vad_scp}") as writer:
        for key in sorted(vad):
            writer(key, vad[key])

    def run(table, name):
        with kaldiio.WriteHelper(f"ark,scp:{tmp_path}/{name}.ark,{feats_scp}") as writer:
            for key in sorted(table):
                writer(key, table[key])
        return subprocess.run([sys.executable, "-m", "pyutils.cli.prepare_feats",
                               "--cmvn-config", os.path.join(ROOT, "conf", "cmvn.conf"),
                               str(feats_scp), str(vad_scp), str(tmp_path / name)],
                              cwd=ROOT, capture_output=True, text=True)

    ok = run(feats, "ok")
    assert ok.returncode == 0, ok.stderr
    assert "u2: skipped (no voiced frames)" in ok.stderr
    assert "done 2 of 3 utterances (1 skipped: 1 no voiced frames)" in ok.stderr
    assert read_lines(tmp_path / "ok.skipped") == ["u2 no voiced frames"]

    feats["u1"][7, 3] = np.nan
    bad = run(feats, "bad")
    assert bad.returncode == 1
    assert re.search(rf"{re.escape(str(feats_scp))}:2: utterance 'u1': features at "
                     r"'.*bad\.ark:\d+' hold 1 NaN/inf value", bad.stderr), bad.stderr
    assert not (tmp_path / "bad.scp").exists()


def test_step_summary_fails_when_an_utterance_is_lost_without_a_reason(tmp_path):
    """The check steps/make_mfcc_vad.sh runs on its merged skip list."""
    listed = tmp_path / "skipped"
    listed.write_text("a-1 unreadable\na-2 too short\n")

    def summary(total, done):
        return subprocess.run([sys.executable, "-m", "pyutils.data.skipped_items", "--total", str(total),
                               "--done", str(done), "--verb", "failed", str(listed)],
                              cwd=ROOT, capture_output=True, text=True)

    ok = summary(5, 3)
    assert ok.returncode == 0
    assert ok.stdout.strip() == "done 3 of 5 utterances (2 failed: 1 too short, 1 unreadable)"
    lost = summary(6, 3)
    assert lost.returncode == 1
    assert "3 done + 2 failed != 6 utterances: 1 lost without a reason" in lost.stderr
