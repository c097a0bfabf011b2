"""Augment one recording and write a 16-bit WAV to stdout (for wav.scp pipes).

    python3 -m pyutils.cli.augment_audio [--speed F] [--rir-file R | --simulate-rir]
        [--noise-file N ... --snr DB [--noise-mode foreground --interval S]]
        --seed SEED INPUT|- > out.wav

INPUT is a WAV/FLAC file or ``-`` for stdin (a piped WAV, also one of
unknown size).  Steps run in the order speed -> reverb -> noise (as
:class:`pyutils.augment.Augmenter`); the noise files are used as given
(background: each once, at a random offset or tiled, summed; foreground:
in order, cycled, ``--interval`` seconds apart) and the track is scaled to
exactly ``--snr`` dB against the (reverberated) speech.  The only randomness
left (noise offsets, the simulated room) comes from ``--seed``, so the
output is a deterministic function of the arguments.  Samples are clipped to
the int16 range and rounded.  Noise/RIR files at another sample rate are
resampled to the input's.
"""
from __future__ import annotations

import argparse
import io
import sys
from typing import Optional, Sequence

import numpy as np
import soundfile as sf

from pyutils.augment.augmenter import clip_int16, to_int16
from pyutils.augment.noise import INT16_SCALE, AudioFiles, add_noise, noise_track
from pyutils.augment.reverb import RoomSimulator, normalize_rir, reverberate
from pyutils.augment.speed import speed_perturb
from pyutils.data.audio import stream_mode_wav


def augment_samples(samples: np.ndarray, sample_rate: int, *, seed: int = 0,
                    noise_files: Sequence[str] = (), snr: Optional[float] = None,
                    noise_mode: str = "background", interval: float = 1.0,
                    rir_file: Optional[str] = None, simulate_rir: bool = False,
                    speed: Optional[float] = None) -> np.ndarray:
    """What the command computes, in-process: float64 int16-scale samples, clipped."""
    if noise_files and snr is None:
        raise ValueError("--noise-file needs --snr")
    if rir_file and simulate_rir:
        raise ValueError("give --rir-file or --simulate-rir, not both")
    rng = np.random.default_rng(seed)
    reader = AudioFiles(sample_rate)
    out = np.asarray(samples, dtype=np.float64)
    if speed is not None and speed != 1.0:
        out = speed_perturb(out, speed)
    if rir_file:
        out = reverberate(out, normalize_rir(reader.read(rir_file)))
    elif simulate_rir:
        out = reverberate(out, RoomSimulator(sample_rate, bank_size=0).simulate(rng))
    if noise_files:
        track = noise_track(list(noise_files), len(out), rng, reader, noise_mode, interval)
        out = add_noise(out, track, snr)
    return clip_int16(out)


def read_input(source: str):
    """``(samples int16-scale, rate)`` of a file or ``-`` (stdin)."""
    if source == "-":
        handle = io.BytesIO(stream_mode_wav(sys.stdin.buffer.read()))
        name = "stdin"
    else:
        handle, name = source, source
    try:
        data, rate = sf.read(handle, dtype="float64", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, OSError) as err:
        raise ValueError(f"cannot read audio from {name}: {err}") from None
    if data.shape[1] != 1:
        raise ValueError(f"{name} has {data.shape[1]} channels, expected mono")
    if data.shape[0] == 0:
        raise ValueError(f"zero-length audio in {name}")
    return data[:, 0] * INT16_SCALE, rate


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python3 -m pyutils.cli.augment_audio",
        description="Augment one recording; write a 16-bit WAV to stdout.")
    parser.add_argument("--noise-file", action="append", default=[], dest="noise_files",
                        help="noise file (repeat for several: summed, or in sequence)")
    parser.add_argument("--snr", type=float, help="SNR in dB of the whole noise track")
    parser.add_argument("--noise-mode", choices=("background", "foreground"),
                        default="background")
    parser.add_argument("--interval", type=float, default=1.0,
                        help="seconds between foreground noises")
    parser.add_argument("--rir-file", help="room impulse response to convolve with")
    parser.add_argument("--simulate-rir", action="store_true",
                        help="simulate a random room (pyroomacoustics) from --seed")
    parser.add_argument("--speed", type=float, help="speed factor (changes the length)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("input", help="audio file, or - for stdin")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        samples, rate = read_input(args.input)
        out = augment_samples(samples, rate, seed=args.seed, noise_files=args.noise_files,
                              snr=args.snr, noise_mode=args.noise_mode, interval=args.interval,
                              rir_file=args.rir_file, simulate_rir=args.simulate_rir,
                              speed=args.speed)
    except (ValueError, RuntimeError, ImportError, FileNotFoundError) as err:
        sys.exit(f"augment_audio: {err}")
    buffer = io.BytesIO()
    sf.write(buffer, to_int16(out), rate, format="WAV", subtype="PCM_16")
    sys.stdout.buffer.write(buffer.getvalue())


if __name__ == "__main__":
    main()
