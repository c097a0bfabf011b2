"""Reading wav.scp entries and utterances (files, pipes, segments)."""
import os
import shlex

import numpy as np
import pytest
import soundfile as sf

from pyutils.data import audio
from pyutils.data.audio import (AudioError, AudioReader, cut_segment, load_utterance,
                                read_wav_scp_entry)

RATE = 16000


def int16_signal(n=RATE, seed=0):
    signal = np.random.default_rng(seed).integers(-32768, 32768, n).astype(np.int16)
    signal[:2] = (-32768, 32767)
    return signal


def write(path, data, rate=RATE, fmt="WAV"):
    sf.write(str(path), data, rate, format=fmt, subtype="PCM_16")
    return str(path)


@pytest.mark.parametrize("fmt,ext", [("WAV", "wav"), ("FLAC", "flac")])
def test_files_read_exactly_on_int16_scale(tmp_path, fmt, ext):
    signal = int16_signal()
    path = write(tmp_path / f"a.{ext}", signal, fmt=fmt)
    samples, rate = read_wav_scp_entry(path, RATE)
    assert rate == RATE and samples.dtype == np.float64 and samples.ndim == 1
    np.testing.assert_array_equal(samples, signal.astype(np.float64))


def test_pipe_and_paths_with_spaces(tmp_path):
    signal = int16_signal(seed=1)
    path = write(tmp_path / "my file.flac", signal, fmt="FLAC")
    plain, _ = read_wav_scp_entry(f"  {path} ", RATE)
    piped, _ = read_wav_scp_entry(f"cat {shlex.quote(path)} |", RATE)
    np.testing.assert_array_equal(plain, signal)
    np.testing.assert_array_equal(piped, signal)


@pytest.mark.parametrize("size", [0, 0xFFFFFFFF])
def test_pipe_in_stream_mode_reads_to_eof(tmp_path, size):
    """Piped WAVs may leave RIFF and data sizes unknown (0 or all ones), as Kaldi allows."""
    signal = int16_signal(500, seed=6)
    data = bytearray(open(write(tmp_path / "a.wav", signal), "rb").read())
    at = data.index(b"data")
    data[4:8] = data[at + 4:at + 8] = size.to_bytes(4, "little")
    (tmp_path / "stream.wav").write_bytes(bytes(data))
    samples, _ = read_wav_scp_entry(f"cat {tmp_path / 'stream.wav'} |", RATE)
    np.testing.assert_array_equal(samples, signal)


def test_failing_pipe_names_command_and_stderr(tmp_path):
    missing = tmp_path / "missing.wav"
    with pytest.raises(AudioError) as err:
        read_wav_scp_entry(f"cat {missing} |")
    message = str(err.value)
    assert f"cat {missing}" in message and "exit status 1" in message
    assert "No such file or directory" in message
    with pytest.raises(AudioError, match="cannot read audio from command 'echo hello'"):
        read_wav_scp_entry("echo hello |")
    with pytest.raises(AudioError, match="produced no audio"):
        read_wav_scp_entry("true |")
    with pytest.raises(AudioError, match="no such audio file"):
        read_wav_scp_entry(str(missing))


def test_rate_channels_and_empty_audio(tmp_path):
    path = write(tmp_path / "a8k.wav", int16_signal(800), rate=8000)
    with pytest.raises(AudioError, match=f"{path}: sample rate is 8000 Hz, expected 16000 Hz"):
        read_wav_scp_entry(path, RATE)
    assert read_wav_scp_entry(path)[1] == 8000

    left, right = int16_signal(100, seed=2), int16_signal(100, seed=3)
    stereo = write(tmp_path / "st.wav", np.stack([left, right], axis=1))
    with pytest.raises(AudioError, match="has 2 channels"):
        read_wav_scp_entry(stereo, RATE)
    np.testing.assert_array_equal(read_wav_scp_entry(stereo, RATE, channel=1)[0], right)
    with pytest.raises(AudioError, match="has no channel 2"):
        read_wav_scp_entry(stereo, RATE, channel=2)

    empty = write(tmp_path / "empty.wav", np.zeros(0, dtype=np.int16))
    with pytest.raises(AudioError, match="zero-length audio"):
        read_wav_scp_entry(empty, RATE)


def test_cut_segment_uses_kaldi_rounding():
    samples = np.arange(RATE, dtype=np.float64)  # 1 s
    np.testing.assert_array_equal(cut_segment(samples, RATE, 0.1, 0.25), samples[1600:4000])
    assert cut_segment(samples, RATE, 0.00003, 0.5)[0] == 0    # 0.48 samples -> 0
    assert cut_segment(samples, RATE, 0.00004, 0.5)[0] == 1    # 0.64 samples -> 1
    assert len(cut_segment(samples, RATE, 0.9, 1.3)) == 1600   # small overshoot clipped
    with pytest.raises(AudioError, match="more than 0.5s past the end"):
        cut_segment(samples, RATE, 0.9, 1.6)
    with pytest.raises(AudioError, match="past the end"):
        cut_segment(samples, RATE, 1.2, 1.3)


def _segmented_dir(tmp_path):
    rec_x = int16_signal(2 * RATE, seed=4)
    rec_y = int16_signal(RATE, seed=5)
    x = write(tmp_path / "rec x.wav", rec_x)
    y = write(tmp_path / "y.flac", rec_y, fmt="FLAC")
    data = tmp_path / "data"
    data.mkdir()
    (data / "wav.scp").write_text(f"recX {x}\nrecY cat {shlex.quote(y)} |\n")
    (data / "segments").write_text("recX-a recX 0.0 0.5\nrecX-b recX 1.25 2.0\n"
                                   "recY-a recY 0.1 0.2\n")
    (data / "utt2spk").write_text("recX-a s1\nrecX-b s1\nrecY-a s2\n")
    (data / "spk2utt").write_text("s1 recX-a recX-b\ns2 recY-a\n")
    return str(data), rec_x, rec_y


def test_load_utterance_with_and_without_segments(tmp_path):
    data, rec_x, rec_y = _segmented_dir(tmp_path)
    samples, rate = load_utterance(data, "recX-b", RATE)
    assert rate == RATE
    np.testing.assert_array_equal(samples, rec_x[20000:32000])
    np.testing.assert_array_equal(load_utterance(data, "recY-a")[0], rec_y[1600:3200])
    with pytest.raises(AudioError, match="'nope' is not in .*segments"):
        load_utterance(data, "nope")

    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "wav.scp").write_text(f"u1 {tmp_path / 'rec x.wav'}\n")
    (plain / "utt2spk").write_text("u1 s1\n")
    np.testing.assert_array_equal(load_utterance(str(plain), "u1", RATE)[0], rec_x)


def test_audio_reader_loads_each_recording_once(tmp_path, monkeypatch):
    data, rec_x, rec_y = _segmented_dir(tmp_path)
    calls = []
    real = audio.read_wav_scp_entry
    monkeypatch.setattr(audio, "read_wav_scp_entry",
                        lambda value, *args: calls.append(value) or real(value, *args))
    got = {utt: (samples, rate) for utt, samples, rate in AudioReader(data, RATE)}
    assert len(calls) == 2
    assert list(got) == ["recX-a", "recX-b", "recY-a"]
    np.testing.assert_array_equal(got["recX-a"][0], rec_x[:8000])
    np.testing.assert_array_equal(got["recY-a"][0], rec_y[1600:3200])

    reader = AudioReader(data, RATE)
    calls.clear()
    for utt in ("recX-a", "recX-b", "recY-a"):
        np.testing.assert_array_equal(reader.read(utt)[0], got[utt][0])
    assert len(calls) == 2 and len(reader) == 3


def test_audio_reader_errors_name_the_recording(tmp_path):
    data, _, _ = _segmented_dir(tmp_path)
    with open(os.path.join(data, "wav.scp"), "a") as out:
        out.write("recZ false |\n")
    with open(os.path.join(data, "segments"), "a") as out:
        out.write("recZ-a recZ 0 1\n")
    with open(os.path.join(data, "utt2spk"), "a") as out:
        out.write("recZ-a s3\n")
    with pytest.raises(AudioError, match="recording 'recZ': wav.scp command failed"):
        list(AudioReader(data, RATE))
