"""Known-answer tests for Kaldi features: MFCC/fbank vs kaldi-native-fbank,
VAD and sliding CMN vs literal per-frame ports of Kaldi's loops."""
import glob
import os

import numpy as np
import pytest

from pyutils.features.cmvn import select_voiced_frames, sliding_cmn
from pyutils.features.kaldi_conf import read_kaldi_conf
from pyutils.features.fbank import FbankComputer
from pyutils.features.mfcc import MfccComputer
from pyutils.features.vad import compute_vad_energy, vad_options_from_conf
from pyutils.utils.fileio import TableError
from tests.kaldi_reference import compute_fbank_reference, compute_mfcc_reference

SR = 16000
MFCC_CONF = {"sample-frequency": 16000, "frame-length": 25, "frame-shift": 10,
             "low-freq": 20, "high-freq": 7600, "num-mel-bins": 30, "num-ceps": 30,
             "snip-edges": False, "dither": 0.0}
FBANK_CONF = {"sample-frequency": 16000, "num-mel-bins": 80, "snip-edges": False,
              "dither": 0.0}


def _noise(seconds=2.0, seed=0):
    return np.random.default_rng(seed).standard_normal(int(seconds * SR)) * 1000.0


def _sine(seconds=1.0):
    t = np.arange(int(seconds * SR)) / SR
    return np.round(8000.0 * np.sin(2 * np.pi * 440.0 * t))


def _speechlike(seconds=0.7, seed=1):
    """Int16-quantised 120 Hz pulse train through two resonances, with an
    amplitude envelope and background noise: a crude vowel."""
    from scipy.signal import lfilter

    n = int(seconds * SR)
    source = np.zeros(n)
    source[::SR // 120] = 1.0
    for freq, bandwidth in ((700.0, 130.0), (1200.0, 70.0)):
        r = np.exp(-np.pi * bandwidth / SR)
        source = lfilter([1.0], [1.0, -2 * r * np.cos(2 * np.pi * freq / SR), r * r], source)
    envelope = np.sin(np.pi * np.arange(n) / n) ** 2
    rng = np.random.default_rng(seed)
    signal = 3000.0 * envelope * source / np.abs(source).max() + 20.0 * rng.standard_normal(n)
    return np.round(signal)


# Tolerances: kaldi-native-fbank runs in float32, we run in float64.  A pure
# sine has huge spectral dynamic range, so knf's float32 FFT rounding shows up
# in its weak mel bins (~5e-3); broadband signals agree to ~3e-4.
SIGNALS = [(_noise, 1e-3), (_sine, 1e-2), (_speechlike, 1e-3)]


def _without(conf, *names):
    return {k: v for k, v in conf.items() if k not in names}


@pytest.mark.parametrize("make, tol", SIGNALS)
@pytest.mark.parametrize("extra", [{}, {"snip-edges": True}])
def test_mfcc_matches_knf(make, tol, extra):
    wave = make()
    conf = {**MFCC_CONF, **extra}
    ours = MfccComputer(conf).compute(wave)
    ref = compute_mfcc_reference(wave, conf)
    assert ours.dtype == np.float32 and ours.shape == ref.shape
    assert ours.shape[1] == 30
    np.testing.assert_allclose(ours, ref, rtol=0, atol=tol)


@pytest.mark.parametrize("extra", [
    {"window-type": "hamming"}, {"window-type": "hanning"},
    {"window-type": "rectangular"}, {"window-type": "sine"},
    {"window-type": "blackman", "blackman-coeff": 0.4},
    {"raw-energy": False}, {"energy-floor": 2e8},
    {"round-to-power-of-two": False}, {"cepstral-lifter": 0.0},
    {"preemphasis-coefficient": 0.0, "remove-dc-offset": False},
    {"use-energy": False, "high-freq": -400, "low-freq": 0},
    {"sample-frequency": 8000, "high-freq": 3700, "num-mel-bins": 23, "num-ceps": 13,
     "frame-shift": 12.5},
])
def test_mfcc_options_match_knf(extra):
    wave = _speechlike()
    conf = {**MFCC_CONF, **extra}
    np.testing.assert_allclose(MfccComputer(conf).compute(wave),
                               compute_mfcc_reference(wave, conf), rtol=0, atol=1e-3)


@pytest.mark.parametrize("make, tol", SIGNALS)
@pytest.mark.parametrize("extra", [
    {}, {"snip-edges": True}, {"use-energy": True, "raw-energy": False},
    {"use-power": False}, {"window-type": "hamming", "use-energy": True},
])
def test_fbank_matches_knf(make, tol, extra):
    wave = make()
    conf = {**FBANK_CONF, **extra}
    ours = FbankComputer(conf).compute(wave)
    ref = compute_fbank_reference(wave, conf)
    assert ours.shape == ref.shape and ours.shape[1] == 80 + bool(extra.get("use-energy"))
    np.testing.assert_allclose(ours, ref, rtol=0, atol=tol)


def test_fbank_defaults_and_linear_output():
    assert FbankComputer().dim == 80
    wave = _noise(0.5)
    conf = {**FBANK_CONF, "use-log-fbank": False}
    ours, ref = FbankComputer(conf).compute(wave), compute_fbank_reference(wave, conf)
    np.testing.assert_allclose(ours, ref, rtol=1e-3)  # = 1e-3 in the log domain


@pytest.mark.parametrize("snip", [False, True])
@pytest.mark.parametrize("num_samples", [1, 80, 150, 240, 250, 399, 400, 401, 559, 560,
                                         561, 16000, 16079, 16080])
def test_frame_counts_and_edge_frames_match_knf(snip, num_samples):
    wave = np.random.default_rng(num_samples).standard_normal(num_samples) * 1000.0
    conf = {**MFCC_CONF, "snip-edges": snip}
    computer = MfccComputer(conf)
    ref = compute_mfcc_reference(wave, conf)
    assert computer.num_frames(num_samples) == len(ref)
    ours = computer.compute(wave)  # short waves exercise repeated reflection
    assert ours.shape == (len(ref), 30)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-3)


def test_real_speech(asc_root):
    files = sorted(glob.glob(os.path.join(asc_root, "asc", "dataset", "*", "*_NO_*.flac")))[:2]
    assert len(files) == 2, asc_root
    import soundfile

    for path in files:
        wave = soundfile.read(path, dtype="float32")[0] * 32768.0
        np.testing.assert_allclose(MfccComputer(MFCC_CONF).compute(wave),
                                   compute_mfcc_reference(wave, MFCC_CONF),
                                   rtol=0, atol=2e-3)


def test_dither_is_seeded_and_reproducible():
    wave = _noise(0.5)
    conf = {**MFCC_CONF, "dither": 1.0}
    computer = MfccComputer(conf)
    first, again = computer.compute(wave), computer.compute(wave)
    np.testing.assert_array_equal(first, again)
    other = computer.compute(wave, rng=np.random.default_rng(123))
    assert not np.array_equal(first, other)
    clean = MfccComputer(MFCC_CONF).compute(wave)
    assert np.abs(other - clean).max() < 1.0  # dither 1 is tiny next to noise of std 1000
    np.testing.assert_array_equal(other, computer.compute(wave, rng=np.random.default_rng(123)))


def test_rejects_unsupported_options():
    with pytest.raises(ValueError, match="htk-compat"):
        MfccComputer({"htk-compat": True})
    with pytest.raises(ValueError, match="unknown option"):
        MfccComputer({"use-power": False})  # an fbank-only option
    with pytest.raises(ValueError, match="window-type"):
        MfccComputer({"window-type": "kaiser"})
    with pytest.raises(ValueError):
        MfccComputer({"num-ceps": 40, "num-mel-bins": 30})
    MfccComputer({"htk-compat": False, "allow-downsample": True})


def test_empty_waveform_gives_no_frames():
    assert MfccComputer(MFCC_CONF).compute(np.zeros(0)).shape == (0, 30)


# ---------------------------------------------------------------- config files

def test_read_kaldi_conf(tmp_path):
    path = tmp_path / "mfcc.conf"
    path.write_text("# MFCC config\n"
                    "--sample-frequency=16000  # Hz\n"
                    "\n"
                    "--frame_length=25.0\n"
                    "--snip-edges=false\n"
                    "--use-energy=TRUE\n"
                    "--window-type=hamming\n"
                    "--high-freq=-400\n"
                    "--num-ceps=30\n"
                    "--num-ceps=13\n"
                    "--allow-downsample\n")
    assert read_kaldi_conf(str(path)) == {
        "sample-frequency": 16000, "frame-length": 25.0, "snip-edges": False,
        "use-energy": True, "window-type": "hamming", "high-freq": -400,
        "num-ceps": 13, "allow-downsample": True}
    assert MfccComputer(read_kaldi_conf(str(path))).dim == 13


@pytest.mark.parametrize("line", ["sample-frequency=16000", "--=3", "--num ceps=3", "-x=1"])
def test_read_kaldi_conf_errors_name_file_and_line(tmp_path, line):
    path = tmp_path / "bad.conf"
    path.write_text(f"--dither=0\n{line}\n")
    with pytest.raises(TableError, match=r"bad\.conf:2"):
        read_kaldi_conf(str(path))


# ------------------------------------------------------------------------ VAD

def _kaldi_vad_loop(log_energy, threshold, mean_scale, context, proportion):
    """Literal port of Kaldi's ComputeVadEnergy loop (float32 arithmetic)."""
    log_energy = np.asarray(log_energy, dtype=np.float32)
    T = len(log_energy)
    thr = np.float32(threshold)
    if mean_scale != 0.0:
        total = np.float32(log_energy.sum(dtype=np.float64))
        thr += np.float32(mean_scale) * total / np.float32(T)
    out = np.zeros(T, dtype=np.float32)
    for t in range(T):
        num = den = 0
        for t2 in range(t - context, t + context + 1):
            if 0 <= t2 < T:
                den += 1
                if log_energy[t2] > thr:
                    num += 1
        out[t] = 1.0 if np.float32(num) >= np.float32(den) * np.float32(proportion) else 0.0
    return out


@pytest.mark.parametrize("context, proportion, mean_scale", [
    (2, 0.12, 0.5), (0, 0.6, 0.5), (5, 0.5, 0.0), (3, 0.3, 1.0), (40, 0.51, 0.5)])
@pytest.mark.parametrize("num_frames", [1, 3, 57, 400])
def test_vad_matches_kaldi_loop(context, proportion, mean_scale, num_frames):
    rng = np.random.default_rng(num_frames + context)
    feats = rng.normal(12.0, 4.0, size=(num_frames, 3)).astype(np.float32)
    kwargs = dict(energy_threshold=5.5, energy_mean_scale=mean_scale,
                  frames_context=context, proportion_threshold=proportion)
    expected = _kaldi_vad_loop(feats[:, 0], 5.5, mean_scale, context, proportion)
    got = compute_vad_energy(feats, **kwargs)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)


def test_vad_on_silence_tone_silence():
    rng = np.random.default_rng(0)
    silence = lambda: np.round(rng.standard_normal(SR))  # noqa: E731  (1 s, ~int16 LSB)
    loud = np.round(10000.0 * np.sin(2 * np.pi * 300.0 * np.arange(SR) / SR)
                    + 500.0 * rng.standard_normal(SR))
    wave = np.concatenate([silence(), loud, silence()])
    feats = MfccComputer(MFCC_CONF).compute(wave)
    assert len(feats) == 300
    # Frame t covers samples [160t - 120, 160t + 280): frames 99..200 touch the tone.
    energetic = np.zeros(300, dtype=np.float32)
    energetic[99:201] = 1.0
    np.testing.assert_array_equal(compute_vad_energy(feats, frames_context=0), energetic)
    # Context 2 with proportion 0.12 needs 1 energetic frame in +-2: grows by 2.
    widened = np.zeros(300, dtype=np.float32)
    widened[97:203] = 1.0
    np.testing.assert_array_equal(compute_vad_energy(feats), widened)


def test_vad_options_from_conf(tmp_path):
    path = tmp_path / "vad.conf"
    path.write_text("--vad-energy-threshold=5.5\n--vad-energy-mean-scale=0.5\n"
                    "--vad-proportion-threshold=0.12\n--vad-frames-context=2\n")
    assert vad_options_from_conf(read_kaldi_conf(str(path))) == dict(
        energy_threshold=5.5, energy_mean_scale=0.5, frames_context=2,
        proportion_threshold=0.12)
    assert vad_options_from_conf({})["frames_context"] == 0  # Kaldi default
    with pytest.raises(ValueError):
        vad_options_from_conf({"vad-energy-thresh": 3})


# ------------------------------------------------------------------------ CMN

def _kaldi_sliding_cmn_loop(feats, cmn_window, min_window, center, norm_vars):
    """Literal port of Kaldi's SlidingWindowCmnInternal (running float64 sums)."""
    x = np.asarray(feats, dtype=np.float64)
    T, dim = x.shape
    out = np.zeros_like(x)
    last_start = last_end = -1
    cur_sum, cur_sumsq = np.zeros(dim), np.zeros(dim)
    for t in range(T):
        if center:
            start = t - cmn_window // 2
            end = start + cmn_window
        else:
            start, end = t - cmn_window, t + 1
        if start < 0:
            end -= start
            start = 0
        if not center and end > t:
            end = max(t + 1, min_window)
        if end > T:
            start -= end - T
            end = T
            start = max(start, 0)
        if last_start == -1:
            cur_sum = x[start:end].sum(0)
            cur_sumsq = (x[start:end] ** 2).sum(0)
        else:
            if start > last_start:
                assert start == last_start + 1
                cur_sum -= x[last_start]
                cur_sumsq -= x[last_start] ** 2
            if end > last_end:
                assert end == last_end + 1
                cur_sum += x[last_end]
                cur_sumsq += x[last_end] ** 2
        n = end - start
        last_start, last_end = start, end
        out[t] = x[t] - cur_sum / n
        if norm_vars:
            if n == 1:
                out[t] = 0.0
            else:
                var = cur_sumsq / n - cur_sum ** 2 / n ** 2
                out[t] *= np.maximum(var, 1e-10) ** -0.5
    return out.astype(np.float32)


@pytest.mark.parametrize("num_frames", [1, 2, 50, 150, 301, 1000])
@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("norm_vars", [False, True])
@pytest.mark.parametrize("cmn_window, min_window", [(300, 100), (51, 20), (8, 8)])
def test_sliding_cmn_matches_kaldi_loop(num_frames, center, norm_vars, cmn_window, min_window):
    rng = np.random.default_rng(num_frames)
    feats = (rng.normal(size=(num_frames, 4)) * [1.0, 3.0, 10.0, 0.1]
             + [0.0, 50.0, -20.0, 5.0]).astype(np.float32)
    got = sliding_cmn(feats, cmn_window, min_window, center, norm_vars)
    expected = _kaldi_sliding_cmn_loop(feats, cmn_window, min_window, center, norm_vars)
    assert got.dtype == np.float32 and got.shape == feats.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_sliding_cmn_short_utterance_is_global_cmn():
    feats = np.random.default_rng(0).normal(size=(80, 5)).astype(np.float32)
    np.testing.assert_allclose(sliding_cmn(feats), feats - feats.mean(0), atol=1e-5)


def test_select_voiced_frames():
    feats = np.arange(12, dtype=np.float32).reshape(6, 2)
    vad = np.array([0, 1, 1, 0, 1, 0], dtype=np.float32)
    np.testing.assert_array_equal(select_voiced_frames(feats, vad), feats[[1, 2, 4]])
    with pytest.raises(ValueError, match="mismatch"):
        select_voiced_frames(feats, vad[:5])
    with pytest.raises(ValueError, match="voiced"):
        select_voiced_frames(feats, np.zeros(6))
    with pytest.raises(ValueError, match="0 or 1"):
        select_voiced_frames(feats, vad * 2)
    with pytest.raises(ValueError, match="empty"):
        select_voiced_frames(feats[:0], vad[:0])
