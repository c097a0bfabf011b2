"""Label-free views: random segments of unlabelled utterances, each augmented on its own.

A data dir here needs only ``wav.scp`` (and ``segments`` when it has one): the
utterance list comes from ``segments`` or ``wav.scp``, never from ``utt2spk``
or ``spk2utt``, which label-free training must not read.  Several data dirs
(``--unlabelled-data``) are pooled.

Every utterance is kept in memory (int16 scale, float32) at each speed of the
config's ``augmentation.speed.factors`` (plus 1.0), with the energy-VAD
decisions of the clean audio at that speed (as the supervised on-the-fly path
and Kaldi's recipe reuse the clean VAD).  A view of ``frames`` frames is

1. a speed drawn (``speed.prob``), then a random run of ``frames`` *voiced*
   frames, and the audio of the span from its first to its last frame;
2. that audio augmented (noise, reverberation: :class:`pyutils.augment.Augmenter`);
3. its features (MFCC/fbank of the config, dither from the view's generator),
   sliding CMN, the voiced frames kept: exactly ``frames`` rows, what stage 4
   extracts from (CMN'd voiced frames).

Waveform models get ``frames * 160`` raw samples instead (no VAD, no CMN).
Each view draws from its own generator (:func:`view_rng`), a pure function of
(seed, epoch, batch, item, view), so a resumed run and a run with another number
of processes or loader threads see the same views.
"""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import List, Optional, Sequence, Tuple

import numpy as np

from pyutils.data.audio import AudioReader
from pyutils.data.datadir import DataDir
from pyutils.features.kaldi_conf import read_kaldi_conf
from pyutils.features.mfcc import FbankComputer, MfccComputer
from pyutils.features.pipeline import cmn_options, cmn_voiced
from pyutils.features.vad import compute_vad_energy, vad_options_from_conf
from pyutils.augment.speed import speed_perturb
from pyutils.utils.progress import progress

logger = logging.getLogger(__name__)

SAMPLES_PER_FRAME = 160   # waveform models: a "frame" of a crop size is 10 ms at 16 kHz


def unlabelled_utts(data: DataDir) -> List[str]:
    """The utterances of a data dir from ``segments`` or ``wav.scp`` (C order), never utt2spk."""
    table = data.segments if data.has("segments") else data.wav_scp
    return sorted(table)


def view_rng(seed: int, epoch: int, batch: int, item: int, view: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, batch, item, view, 12])


def epoch_plan(lengths: Sequence[int], batch_size: int, num_utts: int, seed: int,
               epoch: int) -> List[List[int]]:
    """The utterance indices of each batch of an epoch, drawn in proportion to
    their voiced length (as the supervised chunks are); a pure function of its
    arguments, so a resumed run sees the same batches."""
    lengths = np.asarray(lengths, dtype=np.float64)
    rng = np.random.default_rng([seed, epoch, 12])
    p = lengths / lengths.sum()
    return [[int(u) for u in rng.choice(len(lengths), size=batch_size, p=p)]
            for _ in range(max(1, num_utts // batch_size))]


class ViewSource:
    """Unlabelled utterances of one or more data dirs, cut and augmented into views."""

    def __init__(self, data_dirs: Sequence[str], features: dict, augmentation: Optional[dict],
                 min_frames: int = 1):
        features = dict(features or {"type": "mfcc"})
        self.kind = features.get("type", "mfcc")
        aug = dict(augmentation or {})
        speed = aug.pop("speed", None) or {}
        self.speed_prob = float(speed.get("prob", 0.0))
        self.speeds = [1.0] + ([float(f) for f in speed.get("factors", [0.9, 1.1])]
                               if self.speed_prob > 0 else [])
        self.augmenter = None
        if any(k in aug for k in ("noise", "reverb")):
            from pyutils.augment import Augmenter
            self.augmenter = Augmenter(aug, sample_rate=16000)
        if self.kind == "waveform":
            self.computer, self.rate = None, 16000
            self.input_type, self.feat_dim = "waveform", 1
        else:
            if self.kind not in ("mfcc", "fbank"):
                raise ValueError(f"features.type must be mfcc, fbank or waveform, got '{self.kind}'")
            if not features.get("on_the_fly", False):
                raise ValueError("label-free training augments the audio of each view: set "
                                 "features.on_the_fly: true (or use a waveform model)")
            computer = {"mfcc": MfccComputer, "fbank": FbankComputer}[self.kind]
            self.computer = computer(read_kaldi_conf(features.get("conf", "conf/mfcc.conf")))
            self.vad_mfcc = MfccComputer(read_kaldi_conf(features.get("vad_feat_conf",
                                                                      "conf/mfcc.conf")))
            self.vad_options = vad_options_from_conf(
                read_kaldi_conf(features.get("vad_conf", "conf/vad.conf")))
            self.cmn = cmn_options(features.get("cmvn_conf", "conf/cmvn.conf"))
            options = self.computer.options
            self.rate = int(options["sample-frequency"])
            self.shift = int(round(self.rate * float(options["frame-shift"]) / 1000))
            self.window = int(round(self.rate * float(options["frame-length"]) / 1000))
            self.snip = bool(options["snip-edges"])
            self.input_type, self.feat_dim = "feats", self.computer.dim
        self.utts: List[Tuple[str, str]] = []   # (data dir, utterance)
        self.audio: List[List[np.ndarray]] = [[] for _ in self.speeds]
        self.voiced: List[List[np.ndarray]] = [[] for _ in self.speeds]
        self.vad: List[List[np.ndarray]] = [[] for _ in self.speeds]
        for data_dir in data_dirs:
            self._load(data_dir)
        if not self.utts:
            raise ValueError(f"no utterances in {', '.join(data_dirs)}")
        # lengths: voiced frames (features) or samples (waveform) of the clean audio
        self.lengths = np.array([len(v) for v in self.voiced[0]]) if self.computer else \
            np.array([len(a) for a in self.audio[0]])
        unit = 1 if self.computer else SAMPLES_PER_FRAME
        short = int(np.sum(self.lengths < min_frames * unit))
        if short:
            logger.warning("%d of %d utterances are shorter than %d frames: their views "
                           "repeat them", short, len(self.utts), min_frames)

    def __len__(self) -> int:
        return len(self.utts)

    def _load(self, data_dir: str, threads: int = 2) -> None:
        """Read every utterance (``threads`` at a time: wav.scp pipes are processes)."""
        data = DataDir(data_dir)
        utts = unlabelled_utts(data)
        expected = None if self.computer else self.rate

        def read(utt):
            return AudioReader(data, expected_rate=expected).read(utt)
        with ThreadPoolExecutor(max_workers=threads) as pool:
            audio = progress(pool.map(read, utts), total=len(utts), desc=f"loading {data_dir}",
                             unit="utt")
            for utt, (samples, rate) in zip(utts, audio):
                self._add(data_dir, utt, samples, rate)

    def _add(self, data_dir: str, utt: str, samples: np.ndarray, rate: int) -> None:
        if self.computer is not None:
            samples = self.computer.prepare_waveform(samples, rate)
        for k, factor in enumerate(self.speeds):
            audio = speed_perturb(samples, factor).astype(np.float32)
            self.audio[k].append(audio)
            if self.computer is not None:
                mask = compute_vad_energy(
                    self.vad_mfcc.compute(audio.astype(np.float64), np.random.default_rng(0)),
                    **self.vad_options)
                self.vad[k].append(mask)
                self.voiced[k].append(np.flatnonzero(mask))
        self.utts.append((data_dir, utt))

    def _speed(self, rng: np.random.Generator) -> int:
        draw, pick = rng.random(), int(rng.integers(1, max(2, len(self.speeds))))
        return pick if len(self.speeds) > 1 and draw < self.speed_prob else 0

    def _augmented(self, samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.augmenter is None:
            return samples.astype(np.float64)
        return self.augmenter(samples.astype(np.float64), rng)

    def view(self, index: int, frames: int, rng: np.random.Generator) -> np.ndarray:
        """One augmented random segment of utterance ``index``: (frames, feat_dim)
        features, or (frames * 160,) samples for waveform models."""
        k = self._speed(rng)
        audio = self.audio[k][index]
        if self.computer is None:
            size = frames * SAMPLES_PER_FRAME
            if len(audio) < size:
                audio = np.tile(audio, -(-size // len(audio)))
            start = int(rng.integers(0, len(audio) - size + 1))
            return self._augmented(audio[start:start + size], rng).astype(np.float32)
        voiced = self.voiced[k][index]
        if len(voiced) >= frames:
            first = int(rng.integers(0, len(voiced) - frames + 1))
            f0, f1 = int(voiced[first]), int(voiced[first + frames - 1])
        else:                                   # too short: the whole utterance, repeated
            f0, f1 = 0, len(self.vad[k][index]) - 1
        end = f1 * self.shift + self.window if self.snip else (f1 + 1) * self.shift
        piece = self._augmented(audio[f0 * self.shift:end], rng)
        feats = self.computer.compute(piece, rng)
        mask = self.vad[k][index][f0:f0 + feats.shape[0]]
        out = cmn_voiced(feats[:len(mask)], mask, self.cmn)
        if out.shape[0] < frames:
            if out.shape[0] == 0:
                raise ValueError(f"{self.utts[index][0]}: utterance '{self.utts[index][1]}' "
                                 f"has no voiced frame")
            out = np.concatenate([out] * (-(-frames // out.shape[0])))
        return out[:frames].astype(np.float32)

    def views(self, batch: Sequence[int], frames: Sequence[int], seed: int, epoch: int,
              batch_index: int, items: Sequence[int]) -> List[np.ndarray]:
        """For each view size in ``frames``, the stacked views of the batch's ``items``
        (global positions in the batch, so every rank draws what one process would)."""
        return [np.stack([self.view(batch[i], size, view_rng(seed, epoch, batch_index, i, v))
                          for i in items]) for v, size in enumerate(frames)]
