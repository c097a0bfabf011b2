"""Audio for Kaldi data dirs: wav.scp entries, segments, per-utterance reads, utt2dur.

A wav.scp value is Kaldi's rxfilename: a file path (the rest of the line, so
spaces are allowed) or, when it ends in ``|``, a shell command whose stdout
is the audio.  Samples come back as float64 on the int16 scale (a full-scale
16-bit sample is 32767), as Kaldi's wave reader gives them, so features
match Kaldi's.  Segment times are converted to samples with Kaldi's rounding
(extract-segments: ``int(t * rate + 0.5)``).

Every problem is an :class:`AudioError` whose message names the source and
whose ``reason`` is one of the short labels below; stages that skip bad
utterances count them by reason (:class:`pyutils.data.skipped_items.Skips`).
"""
from __future__ import annotations

import io
import logging
import os
import struct
import subprocess
from collections import OrderedDict
from typing import Dict, Iterator, List, Optional, Tuple, Union

import numpy as np
import soundfile as sf

from pyutils.data.datadir import DataDir, Segment
from pyutils.data.formats import DataDirError
from pyutils.utils.fileio import write_lines

logger = logging.getLogger(__name__)

INT16_SCALE = 32768.0
MAX_OVERSHOOT = 0.5  # seconds a segment may run past the audio (Kaldi's default)


# Reasons an utterance's audio is refused (AudioError.reason).
MISSING = "missing file"            # wav.scp names a file that does not exist
UNREADABLE = "unreadable"           # exists but cannot be opened or decoded
NOT_AUDIO = "not audio"             # not a format libsndfile knows
TRUNCATED = "truncated"             # the header promises more samples than the file has
COMMAND_FAILED = "command failed"   # a wav.scp "cmd |" exited non-zero
EMPTY = "empty audio"               # zero samples
TOO_SHORT = "too short"             # shorter than one frame or --min-duration
WRONG_RATE = "wrong sample rate"    # not the configured rate (and no resampling allowed)
MULTI_CHANNEL = "multi-channel"     # more than one channel and no --channel chosen
NO_CHANNEL = "no such channel"      # --channel=N but the audio has fewer channels
NON_FINITE = "non-finite samples"   # NaN/inf samples (float WAV)
BAD_SEGMENT = "bad segment"         # segment times outside the recording
NO_ENTRY = "no wav.scp entry"       # utterance not in wav.scp / segments

# data-chunk sizes that mean "unknown length" (written by pipes; Kaldi's list)
_STREAM_SIZES = (0, 0xFFFFFFFF, 0x7FFFF000)

# File extensions (lower case, no dot) and the libsndfile format that reads each:
# Ogg Opus/Vorbis (speechocean762's shared copy), MP3 (Common Voice, libsndfile >= 1.1)...
_EXTENSION_FORMATS = {"wav": "WAV", "flac": "FLAC", "ogg": "OGG", "oga": "OGG", "opus": "OGG",
                      "mp3": "MP3", "sph": "NIST", "nist": "NIST", "aiff": "AIFF", "aif": "AIFF",
                      "au": "AU", "w64": "W64", "rf64": "RF64", "caf": "CAF"}


def audio_extensions() -> Tuple[str, ...]:
    """Extensions of the audio files this libsndfile reads (lower case, no dot).

    Folder scans match them case-insensitively (the original speechocean762
    has ``.WAV``); a format the installed libsndfile lacks (MP3 before 1.1.0)
    is left out, so its files are listed as unused rather than failing later.
    """
    known = sf.available_formats()
    return tuple(ext for ext, fmt in _EXTENSION_FORMATS.items() if fmt in known)


def is_audio_file(name: str) -> bool:
    """Whether ``name`` has the extension of a format :func:`audio_extensions` lists."""
    return os.path.splitext(name)[1].lstrip(".").lower() in audio_extensions()


class AudioError(RuntimeError):
    """Audio that cannot be read or does not fit the request; names its source.

    ``reason`` is a short label (see the module constants) for counting.
    """

    def __init__(self, message: str, reason: str = UNREADABLE):
        super().__init__(message)
        self.reason = reason


def _run_pipe(command: str) -> bytes:
    """Run a wav.scp pipe command through /bin/sh, as Kaldi's popen() does."""
    proc = subprocess.run(command, shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stderr = proc.stderr.decode("utf-8", errors="replace").strip()
    if proc.returncode != 0:
        tail = "\n    ".join(stderr.splitlines()[-5:]) or "(no stderr)"
        raise AudioError(f"wav.scp command failed with exit status {proc.returncode}: "
                         f"{command}\n    {tail}", COMMAND_FAILED)
    if stderr:
        logger.debug("stderr of '%s': %s", command, stderr)
    if not proc.stdout:
        raise AudioError(f"wav.scp command produced no audio: {command}", EMPTY)
    return proc.stdout


def stream_mode_wav(data: bytes) -> bytes:
    """Mark a piped WAV with RIFF and data sizes both 0 as "size unknown".

    Writers that cannot seek back leave both sizes 0; Kaldi then reads the
    samples up to EOF ("stream mode") but libsndfile would see none.  The
    sizes are set to 0xFFFFFFFF, which libsndfile reads to EOF too.
    """
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE" or data[4:8] != bytes(4):
        return data
    offset = 12
    while offset + 8 <= len(data):
        tag, size = data[offset:offset + 4], struct.unpack("<I", data[offset + 4:offset + 8])[0]
        if tag == b"data":
            if size != 0:
                return data
            unknown = struct.pack("<I", 0xFFFFFFFF)
            return (data[:4] + unknown + data[8:offset + 4] + unknown + data[offset + 8:])
        offset += 8 + size + (size & 1)
    return data


def _wav_data_shortfall(header: bytes, total_size: int) -> Optional[Tuple[int, int]]:
    """``(promised, present)`` samples of a truncated RIFF/WAVE file, else None.

    ``header`` holds at least the chunks up to the data chunk's header and
    ``total_size`` is the size of the whole file.  Stream-mode sizes (0,
    0xFFFFFFFF, SoX's 0x7FFFF000) mean "unknown" and are never truncated.
    """
    if header[:4] != b"RIFF" or header[8:12] != b"WAVE":
        return None
    offset, block_align = 12, 1
    while offset + 8 <= len(header):
        tag, size = header[offset:offset + 4], struct.unpack("<I", header[offset + 4:offset + 8])[0]
        if tag == b"fmt " and offset + 22 <= len(header):
            block_align = max(1, struct.unpack("<H", header[offset + 20:offset + 22])[0])
        if tag == b"data":
            if size in _STREAM_SIZES:
                return None
            present = total_size - (offset + 8)
            return (size // block_align, present // block_align) if present < size else None
        offset += 8 + size + (size & 1)
    return None


def _check_not_truncated(source: str, header: bytes, total_size: int) -> None:
    shortfall = _wav_data_shortfall(header, total_size)
    if shortfall:
        promised, present = shortfall
        raise AudioError(f"{source}: truncated: the WAV header promises {promised} samples "
                         f"but the file holds {present}", TRUNCATED)


def _decode(handle, source: str) -> Tuple[np.ndarray, int, int]:
    """``(data (frames, channels) float64 in [-1, 1], rate, frames promised)``."""
    try:
        sound = sf.SoundFile(handle)
    except (sf.LibsndfileError, RuntimeError, TypeError) as err:
        text = str(err)
        if "not recognised" in text.lower() or "unknown format" in text.lower():
            raise AudioError(f"cannot read audio from {source}: not an audio file ({text})",
                             NOT_AUDIO) from None
        raise AudioError(f"cannot read audio from {source}: {text}") from None
    with sound:
        try:
            data = sound.read(dtype="float64", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as err:
            raise AudioError(f"cannot read audio from {source}: decoding failed ({err}); "
                             f"the file is truncated or corrupt") from None
        return data, sound.samplerate, sound.frames


def read_wav_scp_entry(value: str, expected_rate: Optional[int] = None,
                       channel: Optional[int] = None) -> Tuple[np.ndarray, int]:
    """Read one wav.scp value; return ``(samples, rate)``, samples 1-D on the int16 scale.

    Any format libsndfile reads works (wav, flac, Ogg Opus/Vorbis, mp3, ...;
    :func:`audio_extensions`), from a file or a pipe.
    Multi-channel audio needs ``channel`` (0-based).  Missing, unreadable,
    non-audio, truncated, zero-length and non-finite audio raise
    :class:`AudioError` with the matching ``reason``; so does a rate other
    than ``expected_rate`` (pass ``None`` to get the file's rate and
    resample or refuse yourself, as :meth:`MfccComputer.prepare_waveform`
    does with ``--allow-downsample``/``--allow-upsample``).
    """
    value = value.strip()
    if value.endswith("|"):
        command = value[:-1].strip()
        source = f"command '{command}'"
        payload = stream_mode_wav(_run_pipe(command))
        header, total_size, handle = payload[:65536], len(payload), io.BytesIO(payload)
    else:
        source = value
        if not os.path.exists(value):
            raise AudioError(f"no such audio file: {value}", MISSING)
        try:
            with open(value, "rb") as probe:
                header = probe.read(65536)
                total_size = os.fstat(probe.fileno()).st_size
        except OSError as err:
            raise AudioError(f"cannot read audio from {source}: {err.strerror or err}") from None
        handle = value
    data, rate, promised = _decode(handle, source)
    _check_not_truncated(source, header, total_size)
    if data.shape[0] < promised < (1 << 62):
        raise AudioError(f"{source}: truncated: the header promises {promised} samples but "
                         f"only {data.shape[0]} could be read", TRUNCATED)
    if data.shape[0] == 0:
        raise AudioError(f"zero-length audio in {source}", EMPTY)
    if expected_rate is not None and rate != expected_rate:
        raise AudioError(f"{source}: sample rate is {rate} Hz, expected {expected_rate} Hz "
                         f"(set --allow-downsample/--allow-upsample in the feature config to "
                         f"resample, or resample it with a sox pipe in wav.scp)", WRONG_RATE)
    channels = data.shape[1]
    if channel is None and channels != 1:
        raise AudioError(f"{source}: has {channels} channels; choose one with --channel=N "
                         f"(0-based) in the feature config", MULTI_CHANNEL)
    if channel is not None and not 0 <= channel < channels:
        raise AudioError(f"{source}: has no channel {channel} (it has {channels})", NO_CHANNEL)
    samples = data[:, channel or 0]
    bad = int(np.count_nonzero(~np.isfinite(samples)))
    if bad:
        raise AudioError(f"{source}: {bad} of {len(samples)} samples are NaN or infinite",
                         NON_FINITE)
    return samples * INT16_SCALE, rate


def cut_segment(samples: np.ndarray, rate: int, start: float, end: float,
                source: str = "audio") -> np.ndarray:
    """Samples ``[int(start*rate+0.5), int(end*rate+0.5))``, as extract-segments cuts.

    An end up to 0.5 s past the audio is clipped; further out, or a start past
    the end, is an error.
    """
    length = len(samples) / rate
    if start > length:
        raise AudioError(f"segment start {start}s is past the end of {source} ({length:.3f}s)",
                         BAD_SEGMENT)
    if end > length + MAX_OVERSHOOT:
        raise AudioError(f"segment end {end}s is more than {MAX_OVERSHOOT}s past the end of "
                         f"{source} ({length:.3f}s)", BAD_SEGMENT)
    first = int(start * rate + 0.5)
    last = min(int(end * rate + 0.5), len(samples))
    if last <= first:
        raise AudioError(f"segment {start}-{end}s of {source} is empty", BAD_SEGMENT)
    return samples[first:last]


def _as_datadir(datadir: Union[DataDir, str]) -> DataDir:
    return datadir if isinstance(datadir, DataDir) else DataDir(datadir)


def _source_of(data: DataDir, utt: str) -> Tuple[str, Optional[Segment]]:
    """The wav.scp key holding ``utt`` and its segment (None: whole recording)."""
    segment = data.segments.get(utt) if data.segments is not None else None
    if data.segments is not None and segment is None:
        raise AudioError(f"utterance '{utt}' is not in {data.file('segments')}", NO_ENTRY)
    recording = segment.recording if segment else utt
    if recording not in data.wav_scp:
        raise AudioError(f"'{recording}' is not in {data.file('wav.scp')}", NO_ENTRY)
    return recording, segment


def load_utterance(datadir: Union[DataDir, str], utt: str, expected_rate: Optional[int] = None,
                   channel: Optional[int] = None) -> Tuple[np.ndarray, int]:
    """Audio of one utterance of a data dir, cut from its recording if segmented."""
    return AudioReader(datadir, expected_rate, channel).read(utt)


class AudioReader:
    """Reads the utterances of a data dir, loading each recording once.

    Iteration groups utterances by recording (first use order) so a
    recording with many segments is read once and then cut; :meth:`read`
    gives random access and keeps the last ``cache_size`` recordings.
    """

    def __init__(self, datadir: Union[DataDir, str], expected_rate: Optional[int] = None,
                 channel: Optional[int] = None, cache_size: int = 1):
        self.data = _as_datadir(datadir)
        self.expected_rate = expected_rate
        self.channel = channel
        self.cache_size = cache_size
        self._cache: "OrderedDict[str, Tuple[np.ndarray, int]]" = OrderedDict()

    def __len__(self) -> int:
        return len(self.data.utts)

    def _recording(self, recording: str) -> Tuple[np.ndarray, int]:
        if recording in self._cache:
            self._cache.move_to_end(recording)
            return self._cache[recording]
        audio = self._load(recording)
        self._cache[recording] = audio
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return audio

    def _load(self, recording: str) -> Tuple[np.ndarray, int]:
        try:
            return read_wav_scp_entry(self.data.wav_scp[recording], self.expected_rate,
                                      self.channel)
        except AudioError as err:
            raise AudioError(f"recording '{recording}': {err}", err.reason) from None

    def _cut(self, utt: str, recording: str, segment: Optional[Segment],
             audio: Tuple[np.ndarray, int]) -> np.ndarray:
        samples, rate = audio
        if segment is None:
            return samples
        try:
            return cut_segment(samples, rate, segment.start, segment.end, f"recording '{recording}'")
        except AudioError as err:
            raise AudioError(f"utterance '{utt}': {err}", err.reason) from None

    def read(self, utt: str) -> Tuple[np.ndarray, int]:
        """``(samples, rate)`` of one utterance."""
        recording, segment = _source_of(self.data, utt)
        audio = self._recording(recording)
        return self._cut(utt, recording, segment, audio), audio[1]

    def __iter__(self) -> Iterator[Tuple[str, np.ndarray, int]]:
        """Yield ``(utt, samples, rate)`` for every utterance, grouped by recording."""
        groups: Dict[str, List[Tuple[str, Optional[Segment]]]] = {}
        for utt in self.data.utts:
            recording, segment = _source_of(self.data, utt)
            groups.setdefault(recording, []).append((utt, segment))
        for recording, members in groups.items():
            audio = self._load(recording)
            for utt, segment in members:
                yield utt, self._cut(utt, recording, segment, audio), audio[1]


def compute_utt2dur(path: str) -> Dict[str, float]:
    """Write ``path/utt2dur`` (seconds) and return it (utils/data/get_utt2dur.sh).

    From segments when present (end - start); else from each wav.scp entry:
    a file's header (soundfile.info, no decoding), a pipe by running it.
    """
    data = DataDir(path)
    durations: Dict[str, float] = {}
    if data.segments is not None:
        durations = {u: seg.end - seg.start for u, seg in data.segments.items()}
    else:
        for utt, value in data.wav_scp.items():
            if value.endswith("|"):
                samples, rate = read_wav_scp_entry(value)
                durations[utt] = len(samples) / rate
            else:
                try:
                    durations[utt] = sf.info(value).duration
                except (RuntimeError, OSError) as err:
                    raise DataDirError(path, [f"wav.scp: utterance '{utt}': cannot read "
                                              f"{value}: {err}"]) from err
    write_lines(os.path.join(path, "utt2dur"),
                (f"{u} {durations[u]:.6g}" for u in sorted(durations)))
    logger.info("get_utt2dur: %s/utt2dur: %d utterances, %.1f h", path, len(durations),
                sum(durations.values()) / 3600)
    return durations
