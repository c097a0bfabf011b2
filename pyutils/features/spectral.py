"""Vectorised Kaldi framing, windowing and mel filterbank (shared by MFCC/fbank).

Re-implements ``feat/feature-window.cc`` and ``feat/mel-computations.cc``
with whole-utterance numpy operations: frames are strided views of the
waveform (edge frames reflected exactly as Kaldi's ``ExtractWindow``), one
rfft transforms a block of frames and one matmul applies the mel bank.
Everything runs in float64, so results sit within float32 rounding of Kaldi.
"""
from __future__ import annotations

import math
from typing import Dict, Iterator, Mapping, Optional, Tuple

import numpy as np

FLOAT_EPS = float(np.finfo(np.float32).eps)  # Kaldi's log floor
DITHER_SEED = 0  # dither noise seed when the caller passes no generator

# Kaldi's FrameExtractionOptions and MelBanksOptions defaults.
FRAME_DEFAULTS: Dict[str, object] = {
    "sample-frequency": 16000.0,
    "frame-length": 25.0,
    "frame-shift": 10.0,
    "dither": 1.0,
    "preemphasis-coefficient": 0.97,
    "remove-dc-offset": True,
    "window-type": "povey",
    "round-to-power-of-two": True,
    "blackman-coeff": 0.42,
    "snip-edges": True,
    "num-mel-bins": 23,
    "low-freq": 20.0,
    "high-freq": 0.0,
    # Kaldi's FrameExtractionOptions: audio at another rate than
    # --sample-frequency is an error unless resampling that way is allowed.
    "allow-downsample": False,
    "allow-upsample": False,
}

# Options the compute-*-feats programs accept that do not change the features
# of one waveform (the program, not the computer, applies --channel and
# --min-duration: see pyutils.cli.compute_mfcc_vad; VTLN cut-offs matter only
# when warping).
IGNORED_OPTIONS = frozenset({
    "min-duration", "channel",
    "output-format", "vtln-low", "vtln-high", "debug-mel", "max-feature-vectors",
})

# Options accepted only at their default value (other values unsupported).
FIXED_OPTIONS: Dict[str, object] = {
    "htk-compat": False, "vtln-warp": 1.0, "subtract-mean": False, "htk-mode": False,
}

WINDOW_TYPES = ("povey", "hamming", "hanning", "rectangular", "sine", "blackman")


def resolve_options(options: Mapping[str, object],
                    defaults: Mapping[str, object]) -> Dict[str, object]:
    """Merge ``options`` over ``defaults`` coercing each value to the default's type.

    Unknown names raise ``ValueError`` (Kaldi rejects unknown options too);
    names in :data:`FIXED_OPTIONS` raise unless given their default value.
    """
    resolved = dict(defaults)
    for name, value in options.items():
        if name in FIXED_OPTIONS:
            if _coerce(name, value, FIXED_OPTIONS[name]) != FIXED_OPTIONS[name]:
                raise ValueError(f"--{name}={value} is not supported")
        elif name in IGNORED_OPTIONS:
            continue
        elif name not in defaults:
            raise ValueError(f"unknown option --{name}")
        else:
            resolved[name] = _coerce(name, value, defaults[name])
    if resolved["window-type"] not in WINDOW_TYPES:
        raise ValueError(f"invalid --window-type={resolved['window-type']}")
    return resolved


def _coerce(name: str, value: object, default: object) -> object:
    """Convert ``value`` to the type of ``default`` as Kaldi's option parser would."""
    if isinstance(default, bool):
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        text = str(value).lower()
        if text in ("true", "t", "1", ""):
            return True
        if text in ("false", "f", "0"):
            return False
    elif isinstance(default, int):
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return int(value)
        if isinstance(value, str) and value.lstrip("+-").isdigit():
            return int(value)
    elif isinstance(default, float):
        if not isinstance(value, bool):
            try:
                return float(value)
            except (TypeError, ValueError):
                pass
    else:
        return str(value)
    raise ValueError(f"bad value for --{name}: {value!r}")


class SampleRateError(ValueError):
    """Audio at another rate than --sample-frequency, and resampling not allowed."""


def resample_waveform(waveform: np.ndarray, from_rate: float, to_rate: float) -> np.ndarray:
    """Resample with a polyphase anti-aliasing filter (scipy ``resample_poly``).

    Kaldi's ``ResampleWaveform`` uses a windowed-sinc filter instead, so the
    samples agree with Kaldi's only to within the two filters' difference.
    Rates must be whole numbers of Hz.
    """
    if from_rate != int(from_rate) or to_rate != int(to_rate) or from_rate <= 0 or to_rate <= 0:
        raise SampleRateError(f"cannot resample {from_rate} Hz to {to_rate} Hz: rates must be "
                              f"positive whole numbers")
    from scipy.signal import resample_poly  # imported here: costs ~1 s, rarely needed

    from_rate, to_rate = int(from_rate), int(to_rate)
    if from_rate == to_rate:
        return np.asarray(waveform, dtype=np.float64)
    common = math.gcd(from_rate, to_rate)
    return resample_poly(np.asarray(waveform, dtype=np.float64), to_rate // common,
                         from_rate // common)


def check_sample_rate(rate: float, opts: Mapping[str, object]) -> bool:
    """True if audio at ``rate`` must be resampled to --sample-frequency.

    Raises :class:`SampleRateError` (naming the option to set) when the rate
    differs and --allow-downsample / --allow-upsample does not allow it, as
    Kaldi's ``OfflineFeatureTpl::ComputeFeatures`` does.
    """
    target = float(opts["sample-frequency"])
    if float(rate) == target:
        return False
    if rate > target and not opts["allow-downsample"]:
        raise SampleRateError(f"sample rate is {rate:g} Hz but --sample-frequency={target:g}; "
                              f"set --allow-downsample=true in the feature config to resample")
    if rate < target and not opts["allow-upsample"]:
        raise SampleRateError(f"sample rate is {rate:g} Hz but --sample-frequency={target:g}; "
                              f"set --allow-upsample=true in the feature config to resample")
    return True


def _samples(sample_frequency: float, milliseconds: float) -> int:
    """Kaldi's ``static_cast<int32>(samp_freq * 0.001 * ms)`` with float inputs."""
    return int(float(np.float32(sample_frequency)) * 0.001
               * float(np.float32(milliseconds)))


def window_function(window_type: str, length: int, blackman_coeff: float) -> np.ndarray:
    """Kaldi's ``FeatureWindowFunction`` (float64, ``a = 2*pi/(N-1)``)."""
    arg = 2.0 * np.pi / (length - 1) * np.arange(length, dtype=np.float64)
    if window_type == "hanning":
        return 0.5 - 0.5 * np.cos(arg)
    if window_type == "sine":
        return np.sin(0.5 * arg)
    if window_type == "hamming":
        return 0.54 - 0.46 * np.cos(arg)
    if window_type == "povey":
        return (0.5 - 0.5 * np.cos(arg)) ** 0.85
    if window_type == "rectangular":
        return np.ones(length)
    return blackman_coeff - 0.5 * np.cos(arg) + (0.5 - blackman_coeff) * np.cos(2 * arg)


def mel_scale(freq: np.ndarray) -> np.ndarray:
    """Kaldi's mel scale, ``1127 ln(1 + f/700)``."""
    return 1127.0 * np.log1p(np.asarray(freq, dtype=np.float64) / 700.0)


def mel_banks(num_bins: int, padded_size: int, sample_frequency: float,
              low_freq: float, high_freq: float) -> np.ndarray:
    """Triangular mel weights, shape ``(padded_size // 2 + 1, num_bins)``.

    As Kaldi's ``MelBanks``: triangles are linear in mel, FFT bins
    ``0 .. padded/2 - 1`` take part (the Nyquist row stays zero), and a
    non-positive ``high_freq`` is an offset from Nyquist.
    """
    if num_bins < 3:
        raise ValueError("must have at least 3 mel bins")
    if padded_size % 2:
        raise ValueError(f"padded window size {padded_size} must be even")
    nyquist = 0.5 * sample_frequency
    high = high_freq if high_freq > 0.0 else nyquist + high_freq
    if not (0.0 <= low_freq < nyquist and 0.0 < high <= nyquist and high > low_freq):
        raise ValueError(f"bad values: low-freq {low_freq} and high-freq {high}"
                         f" vs. nyquist {nyquist}")
    num_fft_bins = padded_size // 2
    fft_mel = mel_scale(sample_frequency / padded_size * np.arange(num_fft_bins))[:, None]
    mel_low, mel_high = mel_scale(low_freq), mel_scale(high)
    delta = (mel_high - mel_low) / (num_bins + 1)
    left = mel_low + np.arange(num_bins) * delta
    center = mel_low + np.arange(1, num_bins + 1) * delta
    right = mel_low + np.arange(2, num_bins + 2) * delta
    rising = (fft_mel > left) & (fft_mel <= center)
    falling = (fft_mel > center) & (fft_mel < right)
    weights = np.where(rising, (fft_mel - left) / (center - left),
                       np.where(falling, (right - fft_mel) / (right - center), 0.0))
    if not (rising | falling).any(axis=0).all():
        raise ValueError("empty mel bin: --num-mel-bins is too large")
    return np.vstack([weights, np.zeros((1, num_bins))])


class SpectralFrontend:
    """Kaldi framing + mel energies for a resolved option dict.

    ``mel_energies`` yields, block by block, the mel-weighted power (or
    magnitude) spectrum and the log energy Kaldi would put in column 0.
    """

    def __init__(self, opts: Mapping[str, object], use_power: bool = True,
                 raw_energy: bool = True, block_frames: int = 1000):
        sample_frequency = float(opts["sample-frequency"])
        self.frame_length = _samples(sample_frequency, float(opts["frame-length"]))
        self.frame_shift = _samples(sample_frequency, float(opts["frame-shift"]))
        if self.frame_length < 2 or self.frame_shift < 1:
            raise ValueError("frame length / shift too short for the sample rate")
        self.padded_size = (1 << (self.frame_length - 1).bit_length()
                            if opts["round-to-power-of-two"] else self.frame_length)
        self.snip_edges = bool(opts["snip-edges"])
        self.dither = float(opts["dither"])
        self.remove_dc = bool(opts["remove-dc-offset"])
        self.preemph = float(opts["preemphasis-coefficient"])
        if not 0.0 <= self.preemph <= 1.0:
            raise ValueError("--preemphasis-coefficient must be in [0, 1]")
        self.window = window_function(str(opts["window-type"]), self.frame_length,
                                      float(opts["blackman-coeff"]))
        self.banks = mel_banks(int(opts["num-mel-bins"]), self.padded_size,
                               sample_frequency, float(opts["low-freq"]),
                               float(opts["high-freq"]))
        self.use_power = use_power
        self.raw_energy = raw_energy
        self.block_frames = block_frames

    def num_frames(self, num_samples: int) -> int:
        """Kaldi's ``NumFrames(num_samples, opts, flush=true)``."""
        if self.snip_edges:
            if num_samples < self.frame_length:
                return 0
            return 1 + (num_samples - self.frame_length) // self.frame_shift
        return (num_samples + self.frame_shift // 2) // self.frame_shift

    def frames(self, waveform: np.ndarray) -> np.ndarray:
        """Read-only ``(num_frames, frame_length)`` view of the raw frames.

        With ``snip-edges=false`` frames are centred on ``shift*f + shift/2``
        and samples outside the signal are mirrored (``-1 -> 0``,
        ``n -> n-1``, repeatedly if needed), as in Kaldi's ``ExtractWindow``.
        """
        n = len(waveform)
        count = self.num_frames(n)
        if count == 0:
            return np.zeros((0, self.frame_length), dtype=waveform.dtype)
        first = 0 if self.snip_edges else self.frame_shift // 2 - self.frame_length // 2
        end = first + (count - 1) * self.frame_shift + self.frame_length
        if first < 0 or end > n:
            lo, hi = min(first, 0), max(end, n)
            waveform = np.concatenate([waveform[_reflect(np.arange(lo, 0), n)],
                                       waveform,
                                       waveform[_reflect(np.arange(n, hi), n)]])
            first -= lo
        view = np.lib.stride_tricks.sliding_window_view(waveform, self.frame_length)
        return view[first::self.frame_shift][:count]

    def sample_span(self, num_samples: int, start: int, stop: int) -> Tuple[int, int]:
        """The samples ``[first, last)`` that frames ``start..stop-1`` of a
        ``num_samples`` waveform read (edge reflections included): a chunk's
        features need only these."""
        first = 0 if self.snip_edges else self.frame_shift // 2 - self.frame_length // 2
        lo = first + start * self.frame_shift
        hi = first + (stop - 1) * self.frame_shift + self.frame_length
        return max(lo, 0), min(hi, num_samples)

    def mel_energies(self, waveform: np.ndarray, rng: np.random.Generator,
                     start: int = 0, stop: Optional[int] = None
                     ) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
        """Yield ``(mel, log_energy)`` float64 blocks covering frames ``start..stop-1``
        (default: all frames).

        ``rng`` supplies the dither noise, drawn independently per frame as
        Kaldi does (overlapping samples get different noise in each frame).
        A frame's values do not depend on the range asked for, except for
        its dither draws.
        """
        frames = self.frames(np.asarray(waveform))[start:stop]
        for start in range(0, len(frames), self.block_frames):
            yield self._process(frames[start:start + self.block_frames], rng)

    def _process(self, raw: np.ndarray, rng: np.random.Generator
                 ) -> Tuple[np.ndarray, np.ndarray]:
        """Kaldi's ``ProcessWindow`` + power spectrum + mel bank on a block."""
        x = raw.astype(np.float64)
        if self.dither != 0.0:
            x += rng.standard_normal(x.shape) * self.dither
        if self.remove_dc:
            x -= x.mean(axis=1, keepdims=True)
        if self.raw_energy:
            log_energy = _log_energy(x)
        if self.preemph != 0.0:
            x[:, 1:] -= self.preemph * x[:, :-1]
            x[:, 0] *= 1.0 - self.preemph
        x *= self.window
        if not self.raw_energy:
            log_energy = _log_energy(x)
        spectrum = np.fft.rfft(x, n=self.padded_size)
        power = np.square(spectrum.real) + np.square(spectrum.imag)
        if not self.use_power:
            np.sqrt(power, out=power)
        return power @ self.banks, log_energy


class KaldiFeature:
    """Shared driver of MFCC and fbank: option handling, frame count, blockwise computation."""

    defaults: Mapping[str, object] = {}

    def __init__(self, options: Optional[Mapping[str, object]] = None):
        self.options = resolve_options(options or {}, self.defaults)
        self.frontend = SpectralFrontend(
            self.options, use_power=bool(self.options.get("use-power", True)),
            raw_energy=bool(self.options["raw-energy"]))
        floor = float(self.options["energy-floor"])
        self.log_energy_floor = np.log(floor) if floor > 0.0 else None

    def num_frames(self, num_samples: int) -> int:
        """Number of frames Kaldi outputs for ``num_samples`` samples."""
        return self.frontend.num_frames(num_samples)

    def prepare_waveform(self, waveform: np.ndarray, sample_rate: float) -> np.ndarray:
        """The waveform at --sample-frequency: as is, resampled, or refused.

        Another rate is a :class:`SampleRateError` unless --allow-downsample
        / --allow-upsample allows the conversion (Kaldi's semantics).
        """
        if check_sample_rate(sample_rate, self.options):
            return resample_waveform(waveform, sample_rate, float(self.options["sample-frequency"]))
        return np.asarray(waveform)

    def compute(self, waveform: np.ndarray, rng: Optional[np.random.Generator] = None,
                sample_rate: Optional[float] = None, frames: Optional[tuple] = None
                ) -> np.ndarray:
        """Features of a 1-D waveform in int16 scale, ``(num_frames, dim)`` float32.

        Dither noise comes from ``rng``; without one a generator seeded with
        :data:`DITHER_SEED` is used so the output is reproducible.  With
        ``sample_rate``, audio at another rate than --sample-frequency is
        resampled or refused (:meth:`prepare_waveform`); without it the
        waveform is taken to be at --sample-frequency.  ``frames=(start, stop)``
        computes only those frames (a training chunk's), equal to the rows of
        the whole result but for the dither draws.
        """
        if sample_rate is not None:
            waveform = self.prepare_waveform(waveform, sample_rate)
        waveform = np.asarray(waveform)
        if waveform.ndim != 1:
            raise ValueError(f"expected a 1-D waveform, got shape {waveform.shape}")
        if rng is None:
            rng = np.random.default_rng(DITHER_SEED)
        start, stop = frames if frames is not None else (0, self.num_frames(len(waveform)))
        out = np.empty((max(0, stop - start), self.dim), dtype=np.float32)
        row = 0
        for mel, log_energy in self.frontend.mel_energies(waveform, rng, start, stop):
            if self.log_energy_floor is not None:
                np.maximum(log_energy, self.log_energy_floor, out=log_energy)
            out[row:row + len(mel)] = self._finish(mel, log_energy)
            row += len(mel)
        return out

    def _finish(self, mel: np.ndarray, log_energy: np.ndarray) -> np.ndarray:
        raise NotImplementedError


def _log_energy(x: np.ndarray) -> np.ndarray:
    """``log(max(sum(x^2), FLT_EPSILON))`` per row."""
    return np.log(np.maximum(np.einsum("ij,ij->i", x, x), FLOAT_EPS))


def _reflect(index: np.ndarray, n: int) -> np.ndarray:
    """Kaldi's repeated mirror of out-of-range sample indices into ``[0, n)``."""
    period = index % (2 * n)
    return np.where(period >= n, 2 * n - 1 - period, period)
