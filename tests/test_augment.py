"""Augmentation: noise at exact SNRs, MUSAN / RIRS_NOISES layouts, reverb, speed,
the Augmenter config, and the offline (wav.scp pipe) data-dir stage."""
import os
import shlex
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from pyutils.augment import (Augmenter, NoiseSource, RirSource, add_noise, noise_track,
                             reverberate, speed_perturb, speed_speaker_label, to_int16)
from pyutils.augment.noise import AudioFiles
from pyutils.augment.reverb import RoomSimulator
from pyutils.cli import augment_audio
from pyutils.data.audio import AudioReader, read_wav_scp_entry
from pyutils.data.datadir import DataDir
from pyutils.data.validate import validate_data_dir
from pyutils.utils.fileio import write_lines
from tests.conftest import ROOT, corpus_root

RATE = 16000


def _snr(clean, noisy):
    return 10 * np.log10(np.mean(clean ** 2) / np.mean((noisy - clean) ** 2))


def _speech(seconds=1.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    return 4000 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)) \
        + rng.normal(0, 200, len(t))


def _write(path, samples, rate=RATE):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sf.write(path, np.clip(np.round(samples), -32768, 32767).astype(np.int16), rate)
    return str(path)


def _noise_file(path, seconds, seed, rate=RATE):
    return _write(path, np.random.default_rng(seed).normal(0, 3000, int(seconds * rate)), rate)


# --------------------------------------------------------------------------
# Noise
# --------------------------------------------------------------------------

@pytest.mark.parametrize("snr", [0.0, 5.0, 12.5, -3.0])
def test_noise_keeps_length_and_hits_snr_exactly(tmp_path, snr):
    _noise_file(tmp_path / "n" / "short.wav", 0.3, 1)
    _noise_file(tmp_path / "n" / "sub" / "long.flac", 3.0, 2)
    source = NoiseSource(tmp_path / "n", sample_rate=RATE)
    assert list(source.categories) == ["noise"] and len(source.categories["noise"].files) == 2
    clean = _speech()
    rng = np.random.default_rng(7)
    for _ in range(4):  # both files get picked
        noisy = source.add(clean, rng, snr=snr)
        assert noisy.shape == clean.shape
        assert abs(_snr(clean, noisy) - snr) < 0.01


def test_drawn_snr_is_in_range_and_exact(tmp_path):
    _noise_file(tmp_path / "n" / "a.wav", 0.5, 1)
    source = NoiseSource(str(tmp_path / "n"), snr=[3, 7])
    clean = _speech()
    track, snr, category = source.sample(len(clean), np.random.default_rng(0))
    assert category == "noise" and 3 <= snr <= 7
    assert abs(_snr(clean, add_noise(clean, track, snr)) - snr) < 0.01


def test_short_noise_is_tiled_and_long_noise_cut_at_random_offset(tmp_path):
    short = np.random.default_rng(3).normal(0, 1000, 4000)
    long = np.random.default_rng(4).normal(0, 1000, 40000)
    short_path = _write(str(tmp_path / "short.wav"), short)
    long_path = _write(str(tmp_path / "long.wav"), long)
    reader = AudioFiles(RATE)
    tiled = reader.segment(short_path, 10000, np.random.default_rng(0))
    stored = np.round(short)
    np.testing.assert_allclose(tiled, np.concatenate([stored, stored, stored[:2000]]))
    offsets = set()
    for seed in range(3):
        cut = reader.segment(long_path, 16000, np.random.default_rng(seed))
        start = int(np.argmax(np.all(
            np.lib.stride_tricks.sliding_window_view(np.round(long), 16)[:, :] == cut[:16],
            axis=1)))
        np.testing.assert_allclose(cut, np.round(long)[start:start + 16000])
        offsets.add(start)
    assert len(offsets) > 1


def test_noise_at_another_rate_is_resampled(tmp_path):
    _noise_file(tmp_path / "n8k.wav", 1.0, 5, rate=8000)
    source = NoiseSource(str(tmp_path / "n8k.wav"), sample_rate=RATE)
    clean = _speech(0.5)
    noisy = source.add(clean, np.random.default_rng(0), snr=10)
    assert noisy.shape == clean.shape and abs(_snr(clean, noisy) - 10) < 0.01


def test_real_background_noise_folder():
    folder = os.path.join(corpus_root(), "asc", "background_noise")
    if not os.path.isdir(folder):
        pytest.skip(f"{folder} not found")
    source = NoiseSource(folder, sample_rate=RATE)
    assert list(source.categories) == ["noise"]
    assert len(source.categories["noise"].files) >= 2
    clean = _speech(2.0)
    rng = np.random.default_rng(1)
    for snr in (0.0, 10.0):
        noisy = source.add(clean, rng, snr=snr)
        assert noisy.shape == clean.shape and abs(_snr(clean, noisy) - snr) < 0.01


def _musan(root):
    for i in range(3):
        _noise_file(os.path.join(root, "noise", "free-sound", f"noise-{i}.wav"), 0.4, i)
        _noise_file(os.path.join(root, "music", "fma", f"music-{i}.wav"), 0.6, 10 + i)
        _noise_file(os.path.join(root, "speech", "librivox", f"speech-{i}.wav"), 0.7, 20 + i)
    write_lines(os.path.join(root, "README"), ["not audio"])
    return root


def test_musan_layout_gives_kaldi_categories(tmp_path):
    source = NoiseSource(_musan(str(tmp_path / "musan")), sample_rate=RATE)
    cats = source.categories
    assert sorted(cats) == ["babble", "music", "noise"]
    assert all(len(c.files) == 3 for c in cats.values())
    assert all("/speech/" in f for f in cats["babble"].files)
    assert (cats["noise"].snr, cats["noise"].mode, cats["noise"].interval) == \
        ((0.0, 15.0), "foreground", 1.0)
    assert (cats["music"].snr, cats["music"].num_noises) == ((5.0, 15.0), (1, 1))
    assert (cats["babble"].snr, cats["babble"].num_noises) == ((13.0, 20.0), (3, 7))
    rng = np.random.default_rng(0)
    counts = {len(cats["babble"].choose(rng, RATE, source.reader)) for _ in range(50)}
    assert counts <= set(range(3, 8)) and len(counts) > 2
    clean = _speech(3.0)
    for name in cats:
        track, snr, category = source.sample(len(clean), rng, category=name)
        assert category == name and cats[name].snr[0] <= snr <= cats[name].snr[1]
        assert abs(_snr(clean, add_noise(clean, track, snr)) - snr) < 0.01
        if name == "noise":  # 0.4 s noises with 1 s of silence between them
            assert np.all(track[int(0.4 * RATE) + 1:int(1.4 * RATE) - 1] == 0)
            assert np.any(track[int(1.4 * RATE) + 10:int(1.8 * RATE) - 10] != 0)


def test_foreground_track_places_noises_interval_apart(tmp_path):
    a = _noise_file(tmp_path / "a.wav", 0.25, 1)
    track = noise_track([a], RATE, np.random.default_rng(0), AudioFiles(RATE),
                        mode="foreground", interval=0.25)
    on = np.abs(track) > 0
    assert on[:4000].all() and not on[4000:8000].any() and on[8000:12000].all()
    assert not on[12000:].any()


def test_plain_folder_with_noise_subfolder_is_not_musan(tmp_path):
    _noise_file(tmp_path / "bg" / "noise" / "x.wav", 0.2, 0)
    assert list(NoiseSource(str(tmp_path / "bg")).categories) == ["noise"]


# --------------------------------------------------------------------------
# Reverberation
# --------------------------------------------------------------------------

def _rir(seed=0, delay=20, length=3000):
    rng = np.random.default_rng(seed)
    tail = rng.normal(0, 1, length) * np.exp(-np.arange(length) / 600.0) * 0.3
    tail[:delay + 1] = 0
    tail[delay] = 1.0
    return tail


def _rirs_noises(root):
    for room in ("smallroom", "mediumroom", "largeroom"):
        for r in (1, 2):
            for k in (1, 2):
                _write(os.path.join(root, "simulated_rirs", room, f"Room{r:03d}",
                                    f"Room{r:03d}-{k:05d}.wav"), 20000 * _rir(r * 10 + k))
        write_lines(os.path.join(root, "simulated_rirs", room, "rir_list"), ["list"])
    real = os.path.join(root, "real_rirs_isotropic_noises")
    _write(os.path.join(real, "RVB2014_type1_rir_largeroom1_near_angla.wav"), 20000 * _rir(5))
    _write(os.path.join(real, "air_type1_air_binaural_lecture_0_1.wav"), 20000 * _rir(6))
    _noise_file(os.path.join(real, "RVB2014_type1_noise_largeroom1_1.wav"), 0.2, 7)
    _noise_file(os.path.join(root, "pointsource_noises", "noise-free-sound-0001.wav"), 0.2, 8)
    return root


def test_rirs_noises_layout_gives_categories(tmp_path):
    source = RirSource(_rirs_noises(str(tmp_path / "RIRS_NOISES")), sample_rate=RATE)
    assert sorted(source.categories) == ["largeroom", "mediumroom", "real", "smallroom"]
    assert all(len(source.categories[r]) == 4
               for r in ("smallroom", "mediumroom", "largeroom"))
    real = [os.path.basename(p) for p in source.categories["real"]]
    assert sorted(real) == ["RVB2014_type1_rir_largeroom1_near_angla.wav",
                            "air_type1_air_binaural_lecture_0_1.wav"]
    # Kaldi egs/voxceleb/v2: small and medium rooms, equally
    assert source.weights == {"largeroom": 0.0, "mediumroom": 1.0, "real": 0.0, "smallroom": 1.0}
    rng = np.random.default_rng(0)
    picked = {source.choose(rng)[0] for _ in range(40)}
    assert picked == {"smallroom", "mediumroom"}
    rir = source.sample(rng)
    assert abs(np.sum(rir ** 2) - 1) < 1e-9
    sim = RirSource(str(tmp_path / "RIRS_NOISES" / "simulated_rirs"), weights={"largeroom": 1})
    assert sorted(sim.categories) == ["largeroom", "mediumroom", "smallroom"]
    assert {sim.choose(rng)[0] for _ in range(10)} == {"largeroom"}
    plain = RirSource(str(tmp_path / "RIRS_NOISES" / "simulated_rirs" / "smallroom" / "Room001"))
    assert list(plain.categories) == ["rir"] and len(plain.categories["rir"]) == 2


def test_reverb_unit_impulse_returns_input():
    clean = _speech(0.5)
    for rir in (np.array([1.0]), np.array([0.0, 0.0, 1.0, 0.0, 0.0])):
        out = reverberate(clean, rir)
        assert out.shape == clean.shape
        np.testing.assert_allclose(out, clean, atol=1e-6)


def test_reverb_keeps_length_power_and_alignment():
    clean = np.random.default_rng(0).normal(0, 3000, RATE)  # white: sharp autocorrelation
    out = reverberate(clean, _rir(delay=200))
    assert out.shape == clean.shape
    assert np.mean(out ** 2) == pytest.approx(np.mean(clean ** 2), rel=1e-9)
    lags = np.arange(-50, 51)
    corr = [np.dot(np.roll(out, -lag)[100:-100], clean[100:-100]) for lag in lags]
    assert lags[int(np.argmax(corr))] == 0  # aligned on the direct path, not delayed


def test_room_simulator():
    pytest.importorskip("pyroomacoustics")
    sim = RoomSimulator(RATE, room_size=((3, 4), (3, 4), (2.5, 3)), rt60=(0.2, 0.3),
                        max_order=8, bank_size=0)
    rir = sim.simulate(np.random.default_rng(0))
    assert np.isfinite(rir).all() and abs(np.sum(rir ** 2) - 1) < 1e-9
    again = sim.simulate(np.random.default_rng(0))
    np.testing.assert_array_equal(rir, again)
    clean = _speech(0.5)
    assert reverberate(clean, rir).shape == clean.shape


# --------------------------------------------------------------------------
# Speed
# --------------------------------------------------------------------------

@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_speed_changes_length_and_frequency_by_factor(factor):
    n = RATE
    tone = 8000 * np.sin(2 * np.pi * 500 * np.arange(n) / RATE)
    out = speed_perturb(tone, factor)
    assert abs(len(out) - n / factor) <= 1
    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    peak = np.argmax(spectrum) * RATE / len(out)
    assert abs(peak - 500 * factor) <= RATE / len(out)


def test_speed_speaker_label():
    assert speed_speaker_label(3, 0, 10) == 3
    assert speed_speaker_label(3, 1, 10) == 13
    assert speed_speaker_label(3, 2, 10) == 23
    with pytest.raises(ValueError):
        speed_speaker_label(10, 1, 10)


# --------------------------------------------------------------------------
# Augmenter
# --------------------------------------------------------------------------

def test_augmenter_from_config(tmp_path):
    _noise_file(tmp_path / "noise" / "a.wav", 0.5, 1)
    rir_dir = _rirs_noises(str(tmp_path / "RIRS_NOISES"))
    config = {"noise": {"prob": 1.0, "dirs": [str(tmp_path / "noise")], "snr": [5, 5]},
              "reverb": {"prob": 1.0, "rir_dirs": [rir_dir]},
              "speed": {"prob": 0.0, "factors": [0.9, 1.1]}}
    aug = Augmenter(config, RATE)
    clean = _speech(1.0)
    result = aug.apply(clean, np.random.default_rng(3))
    assert result.waveform.shape == clean.shape and result.speed_index == 0
    assert result.applied == ["reverb", "noise:noise"]
    again = aug(clean, np.random.default_rng(3))
    np.testing.assert_array_equal(result.waveform, again)
    assert aug.num_classes(7) == 7

    off = Augmenter({"noise": {"prob": 0.0}, "reverb": {"prob": 0.0}}, RATE)
    np.testing.assert_array_equal(off(clean, np.random.default_rng(0)), clean)

    only_noise = Augmenter({"noise": {"prob": 1.0, "dirs": [str(tmp_path / "noise")],
                                      "snr": [8, 8]}}, RATE)
    noisy = only_noise(clean, np.random.default_rng(0))
    assert abs(_snr(clean, noisy) - 8) < 0.01

    loud = np.full(RATE // 4, 30000.0)
    out = only_noise(loud, np.random.default_rng(0))
    assert out.max() <= 32767 and out.min() >= -32768 and out.max() == 32767

    speed = Augmenter({"speed": {"prob": 1.0}}, RATE)
    result = speed.apply(clean, np.random.default_rng(0))
    assert result.speed_index in (1, 2)
    assert abs(len(result.waveform) - len(clean) / [0.9, 1.1][result.speed_index - 1]) <= 1
    assert speed.num_classes(7) == 21


def test_augmenter_rejects_bad_config(tmp_path):
    with pytest.raises(ValueError):
        Augmenter({"noise": {"prob": 0.5}})  # no dirs
    with pytest.raises(ValueError):
        Augmenter({"noise": {"prob": 0.5, "dir": ["x"]}})
    with pytest.raises(ValueError):
        Augmenter({"reverb": {"prob": 2.0}})
    with pytest.raises(ValueError):
        Augmenter({"echo": {}})
    _noise_file(tmp_path / "n" / "a.wav", 0.1, 0)
    with pytest.raises(ValueError):
        Augmenter({"noise": {"prob": 1, "dirs": [str(tmp_path / "n")],
                             "categories": {"noise": {"loudness": 3}}}})
    with pytest.raises(ValueError):
        Augmenter({"noise": {"prob": 1, "dirs": [str(tmp_path / "n")],
                             "categories": {"music": {"snr": [1, 2]}}}})


def test_augmenter_with_simulated_rooms():
    pytest.importorskip("pyroomacoustics")
    aug = Augmenter({"reverb": {"prob": 1.0, "simulate": {
        "bank_size": 2, "max_order": 6, "room_size": [[3, 4], [3, 4], [2.5, 3]]}}}, RATE)
    clean = _speech(0.5)
    out = aug(clean, np.random.default_rng(0))
    assert out.shape == clean.shape and not np.allclose(out, clean)


# --------------------------------------------------------------------------
# Offline augmentation (wav.scp pipes)
# --------------------------------------------------------------------------

@pytest.fixture
def pipe_env(monkeypatch):
    """wav.scp pipes run `python3 -m pyutils...`: this venv's python, this checkout."""
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep
                       + os.environ.get("PATH", ""))
    monkeypatch.setenv("PYTHONPATH", ROOT)
    monkeypatch.setenv("LC_ALL", "C")
    return dict(os.environ)


def _source_dir(tmp_path):
    """Data dir with a file name holding a space and a quote, and a pipe entry."""
    audio = tmp_path / "my audio"
    clean = {"spk1-a": _speech(0.8, 1), "spk1-b": _speech(0.6, 2), "spk2-c": _speech(0.7, 3)}
    paths = {utt: _write(str(audio / f"{utt} it's.wav"), x) for utt, x in clean.items()}
    data = tmp_path / "data" / "train"
    write_lines(str(data / "wav.scp"), [
        f"spk1-a {paths['spk1-a']}",
        f"spk1-b cat {shlex.quote(paths['spk1-b'])} |",
        f"spk2-c {paths['spk2-c']}"])
    write_lines(str(data / "utt2spk"), ["spk1-a spk1", "spk1-b spk1", "spk2-c spk2"])
    write_lines(str(data / "spk2utt"), ["spk1 spk1-a spk1-b", "spk2 spk2-c"])
    write_lines(str(data / "utt2num_frames"), ["spk1-a 78", "spk1-b 58", "spk2-c 68"])
    write_lines(str(data / "vad.scp"), ["spk1-a v.ark:1", "spk1-b v.ark:2", "spk2-c v.ark:3"])
    write_lines(str(data / "feats.scp"), ["spk1-a f.ark:1", "spk1-b f.ark:2", "spk2-c f.ark:3"])
    write_lines(str(data / "trials"), ["spk1-a spk1-b target", "spk1-a spk2-c nontarget"])
    return str(data), {utt: np.round(x) for utt, x in clean.items()}


def _augment_audio_args(value):
    tokens = shlex.split(value)
    start = tokens.index("pyutils.cli.augment_audio") + 1
    assert tokens[-1] == "|"
    return augment_audio.build_parser().parse_args(tokens[start:-1])


def test_offline_noise_stage_pipes_match_in_process(tmp_path, pipe_env):
    data, clean = _source_dir(tmp_path)
    noise_dir = tmp_path / "noise dir"
    noise_path = _noise_file(noise_dir / "fan 'quiet' \"n\".wav", 0.5, 9)
    dst = str(tmp_path / "data" / "train_noise")
    proc = subprocess.run([sys.executable, "-m", "pyutils.cli.augment_data_dir",
                           "--noise-dir", str(noise_dir), "--snrs", "0,5,10,15",
                           "--suffix", "-noise", "--seed", "4", data, dst],
                          cwd=ROOT, env=pipe_env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    validate_data_dir(dst, no_feats=True)
    out = DataDir(dst)
    assert out.utt2spk == {"spk1-a-noise": "spk1", "spk1-b-noise": "spk1",
                           "spk2-c-noise": "spk2"}
    assert out.spk2utt == {"spk1": ["spk1-a-noise", "spk1-b-noise"], "spk2": ["spk2-c-noise"]}
    assert out.utt2num_frames == {"spk1-a-noise": 78, "spk1-b-noise": 58, "spk2-c-noise": 68}
    assert out.vad_scp["spk1-b-noise"] == "v.ark:2"
    for absent in ("trials", "feats.scp"):
        assert not os.path.exists(os.path.join(dst, absent))
    assert out.wav_scp["spk1-b-noise"].startswith("cat ")
    assert " | python3 -m pyutils.cli.augment_audio " in out.wav_scp["spk1-b-noise"]
    for utt, value in out.wav_scp.items():
        source_utt = utt[:-len("-noise")]
        args = _augment_audio_args(value)
        assert args.noise_files == [noise_path] and args.snr in (0, 5, 10, 15)
        assert args.input == ("-" if source_utt == "spk1-b" else
                              str(tmp_path / "my audio" / f"{source_utt} it's.wav"))
        piped, rate = read_wav_scp_entry(value, expected_rate=RATE)
        expected = augment_audio.augment_samples(clean[source_utt], rate, seed=args.seed,
                                                 noise_files=args.noise_files, snr=args.snr)
        np.testing.assert_array_equal(piped.astype(np.int16), to_int16(expected))
        assert abs(_snr(clean[source_utt], piped) - args.snr) < 0.05
    rerun = subprocess.run([sys.executable, "-m", "pyutils.cli.augment_data_dir",
                            "--noise-dir", str(noise_dir), "--snrs", "0,5,10,15",
                            "--suffix", "-noise", "--seed", "4", data, str(tmp_path / "again")],
                           cwd=ROOT, env=pipe_env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    with open(os.path.join(dst, "wav.scp")) as a, open(tmp_path / "again" / "wav.scp") as b:
        assert a.read() == b.read()  # deterministic given the seed


def test_offline_reverb_stage_with_segments_via_step_script(tmp_path, pipe_env):
    rec = _speech(2.0, 5)
    wav = _write(str(tmp_path / "rec one.wav"), rec)
    data = tmp_path / "seg"
    write_lines(str(data / "wav.scp"), [f"rec1 {wav}"])
    write_lines(str(data / "segments"), ["spk1-rec1-0 rec1 0.00 0.90", "spk1-rec1-1 rec1 1.0 1.8"])
    write_lines(str(data / "utt2spk"), ["spk1-rec1-0 spk1", "spk1-rec1-1 spk1"])
    write_lines(str(data / "spk2utt"), ["spk1 spk1-rec1-0 spk1-rec1-1"])
    write_lines(str(data / "reco2dur"), ["rec1 2.0"])
    rir_dir = _rirs_noises(str(tmp_path / "RIRS_NOISES"))
    dst = tmp_path / "seg_reverb"
    env = dict(pipe_env, SV_ROOT=ROOT)
    proc = subprocess.run([os.path.join(ROOT, "steps", "augment_data_dir.sh"),
                           "--rir-dir", rir_dir, "--suffix", "-reverb", str(data), str(dst)],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    validate_data_dir(str(dst), no_feats=True)
    out = DataDir(str(dst))
    assert sorted(out.wav_scp) == ["rec1-reverb"]
    assert out.segments["spk1-rec1-1-reverb"].recording == "rec1-reverb"
    assert out.segments["spk1-rec1-1-reverb"].start == 1.0
    assert open(dst / "reco2dur").read() == "rec1-reverb 2.0\n"
    assert open(dst / "utt2uniq").read().split() == ["spk1-rec1-0-reverb", "spk1-rec1-0",
                                                     "spk1-rec1-1-reverb", "spk1-rec1-1"]
    args = _augment_audio_args(out.wav_scp["rec1-reverb"])
    assert "/simulated_rirs/smallroom/" in args.rir_file or \
        "/simulated_rirs/mediumroom/" in args.rir_file
    samples, _ = AudioReader(str(dst)).read("spk1-rec1-1-reverb")
    expected = to_int16(augment_audio.augment_samples(np.round(rec), RATE, seed=args.seed,
                                                      rir_file=args.rir_file))
    np.testing.assert_array_equal(samples.astype(np.int16), expected[16000:28800])


def test_noise_dirs_expand_environment_variables(tmp_path, monkeypatch):
    """$SV_CORPUS_ROOT in a config's noise dirs (run.sh exports it); unset is an error."""
    (tmp_path / "asc" / "background_noise").mkdir(parents=True)
    sf.write(str(tmp_path / "asc" / "background_noise" / "n.wav"),
                    np.ones(16000, dtype=np.int16), 16000)
    config = {"noise": {"prob": 1.0, "dirs": ["$SV_CORPUS_ROOT/asc/background_noise"],
                        "snr": [5, 5]}}
    monkeypatch.setenv("SV_CORPUS_ROOT", str(tmp_path))
    assert Augmenter(config).noise is not None
    monkeypatch.delenv("SV_CORPUS_ROOT")
    with pytest.raises(ValueError, match=r"noise\.dirs.*unset environment variable"):
        Augmenter(config)
