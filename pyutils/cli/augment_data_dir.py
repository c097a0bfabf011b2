"""Kaldi-style offline augmentation: a new data dir whose audio is augmented on read.

    python3 -m pyutils.cli.augment_data_dir [--noise-dir D] [--category C] [--snrs 0,5,10,15]
        [--rir-dir D | --simulate-rir] [--suffix -noise] [--seed 123] SRC_DATA DST_DATA

Like Kaldi's steps/data/augment_data_dir.py and reverberate_data_dir.py, no
audio is written: every wav.scp value becomes a pipe that augments the
original on the fly, with all random choices (category, noise files, SNR,
RIR, seed) fixed in the command, e.g.

    rec-noise <original command> | python3 -m pyutils.cli.augment_audio --noise-file F --snr 5 --seed N - |
    rec-noise python3 -m pyutils.cli.augment_audio --noise-file F --snr 5 --seed N /path/rec.wav |

(every file name shell-quoted).  The same SRC, options and ``--seed`` give
the same DST.  The SNR is drawn from ``--snrs`` (Kaldi's list), else uniformly
from the category's range (rounded to 0.01 dB); categories and files come
from :class:`pyutils.augment.NoiseSource` / :class:`RirSource` (MUSAN and
RIRS_NOISES layouts are understood; ``--category`` restricts a MUSAN root to
one of noise, music, babble, as Kaldi makes one dir per kind).  With both
noise and reverb options each copy is reverberated, then noised; run the
tool once per kind for Kaldi's separate copies.

Utterance ids (and, with a segments file, recording ids) get ``--suffix``;
speakers stay.  Copied with the new ids: utt2spk, segments, text, utt2dur,
utt2num_frames, utt2lang, vad.scp (as Kaldi, the clean speech's VAD is
reused: noise and reverb keep the length and time alignment) and reco2dur;
spk2gender as is; spk2utt is rebuilt; utt2uniq maps each copy to its source
utterance (so subsets can keep copies together).  Not copied: feats.scp,
cmvn.scp (features must be computed again) and trials.
"""
from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from typing import Dict, List, Optional

import numpy as np
import soundfile as sf

from pyutils.augment.noise import NoiseSource
from pyutils.augment.reverb import RirSource
from pyutils.data.formats import DataDirError, utt2spk_to_spk2utt
from pyutils.data.subsets import write_tables
from pyutils.data.validate import validate_data_dir
from pyutils.utils.fileio import TableError, read_key_value

logger = logging.getLogger("augment_data_dir")

DEFAULT_DURATION = 30.0  # seconds assumed for a piped recording of unknown length
UTT_TABLES = ("text", "utt2dur", "utt2num_frames", "utt2lang", "vad.scp")
COMMAND = ["python3", "-m", "pyutils.cli.augment_audio"]


def _table(path: str, name: str) -> Optional[Dict[str, str]]:
    file = os.path.join(path, name)
    return read_key_value(file, single_value=False) if os.path.isfile(file) else None


def parse_snrs(text: str) -> List[float]:
    try:
        values = [float(v) for v in text.replace(":", ",").split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--snrs must be numbers separated by ',' or ':', got '{text}'") from None
    if not values:
        raise ValueError("--snrs is empty")
    return values


def _format_snr(snr: float) -> str:
    return f"{snr:g}"


class _Durations:
    """Recording durations (seconds) for choosing foreground noises."""

    def __init__(self, src: str, segments: Optional[Dict[str, str]], wav: Dict[str, str]):
        self.known: Dict[str, float] = {}
        for name in ("reco2dur",) + (("utt2dur",) if segments is None else ()):
            for key, value in (_table(src, name) or {}).items():
                self.known.setdefault(key, float(value))
        for value in (segments or {}).values():
            rec, _, end = value.split()
            self.known[rec] = max(self.known.get(rec, 0.0), float(end))
        self.wav = wav

    def __call__(self, rec: str) -> float:
        if rec in self.known:
            return self.known[rec]
        value = self.wav[rec].strip()
        if not value.endswith("|") and os.path.isfile(value):
            try:
                info = sf.info(value)
                return info.frames / info.samplerate
            except (sf.LibsndfileError, RuntimeError):
                pass
        return DEFAULT_DURATION


def augment_data_dir(src: str, dst: str, suffix: str = "-aug", noise_dirs=(),
                     snrs: Optional[List[float]] = None, category: Optional[str] = None,
                     rir_dirs=(), simulate_rir: bool = False, seed: int = 123,
                     sample_rate: int = 16000, recursive: bool = True) -> int:
    """Write the augmented copy of ``src`` to ``dst``; return the number of utterances."""
    if not suffix or any(c.isspace() for c in suffix):
        raise ValueError("--suffix must be non-empty and without spaces")
    if os.path.abspath(src) == os.path.abspath(dst):
        raise ValueError("SRC_DATA and DST_DATA must differ")
    if not noise_dirs and not rir_dirs and not simulate_rir:
        raise ValueError("nothing to do: give --noise-dir and/or --rir-dir/--simulate-rir")
    if rir_dirs and simulate_rir:
        raise ValueError("give --rir-dir or --simulate-rir, not both")
    validate_data_dir(src, no_feats=True)

    noise = NoiseSource(list(noise_dirs), recursive, sample_rate) if noise_dirs else None
    if noise and category and category not in noise.categories:
        raise ValueError(f"no noise category '{category}' in {list(noise_dirs)}; "
                         f"found: {', '.join(noise.categories)}")
    rirs = RirSource(list(rir_dirs), recursive, sample_rate) if rir_dirs else None
    if noise:
        logger.info("noise: %s", noise)
    if rirs:
        logger.info("reverb: %s", rirs)

    utt2spk = read_key_value(os.path.join(src, "utt2spk"))
    wav = read_key_value(os.path.join(src, "wav.scp"), single_value=False)
    segments = _table(src, "segments")
    durations = _Durations(src, segments, wav)
    rng = np.random.default_rng(seed)

    new_wav = {}
    for rec in sorted(wav):
        options: List[str] = []
        if rirs:
            options += ["--rir-file", rirs.choose(rng)[1]]
        elif simulate_rir:
            options += ["--simulate-rir"]
        if noise:
            cat = noise.categories[category] if category else noise.choose_category(rng)
            snr = float(rng.choice(snrs)) if snrs else round(float(rng.uniform(*cat.snr)), 2)
            num_samples = int(round(durations(rec) * sample_rate))
            for path in cat.choose(rng, num_samples, noise.reader):
                options += ["--noise-file", path]
            options += ["--snr", _format_snr(snr)]
            if cat.mode == "foreground":
                options += ["--noise-mode", "foreground", "--interval", f"{cat.interval:g}"]
        options += ["--seed", str(int(rng.integers(0, 2 ** 31 - 1)))]
        value = wav[rec].strip()
        command = " ".join(shlex.quote(a) for a in COMMAND + options)
        if value.endswith("|"):
            new_wav[rec + suffix] = f"{value[:-1].rstrip()} | {command} - |"
        else:
            new_wav[rec + suffix] = f"{command} {shlex.quote(value)} |"

    def renamed(table: Dict[str, str]) -> List[str]:
        return [f"{key + suffix} {table[key]}" for key in sorted(table)]

    new_utt2spk = {utt + suffix: spk for utt, spk in utt2spk.items()}
    spk2utt = utt2spk_to_spk2utt(sorted(new_utt2spk.items()))
    uniq = _table(src, "utt2uniq") or {}
    lines = {
        "wav.scp": [f"{key} {new_wav[key]}" for key in sorted(new_wav)],
        "utt2spk": [f"{utt} {new_utt2spk[utt]}" for utt in sorted(new_utt2spk)],
        "spk2utt": [f"{spk} {' '.join(spk2utt[spk])}" for spk in sorted(spk2utt)],
        "utt2uniq": [f"{utt + suffix} {uniq.get(utt, utt)}" for utt in sorted(utt2spk)],
    }
    if segments is not None:
        lines["segments"] = []
        for utt in sorted(segments):
            rec, rest = segments[utt].split(None, 1)
            lines["segments"].append(f"{utt + suffix} {rec + suffix} {rest}")
    for name in UTT_TABLES + ("reco2dur",):
        table = _table(src, name)
        if table is not None:
            lines[name] = renamed(table)
    gender = _table(src, "spk2gender")
    if gender is not None:
        lines["spk2gender"] = [f"{spk} {gender[spk]}" for spk in sorted(gender)]
    # C order of the new keys (a suffix can change the order of the old ones)
    lines = {name: sorted(rows, key=lambda row: row.split(None, 1)[0])
             for name, rows in lines.items()}
    write_tables(dst, lines)
    validate_data_dir(dst, no_feats=True)
    return len(new_utt2spk)


def _join_dash_values(argv: List[str]) -> List[str]:
    """``--suffix -noise`` -> ``--suffix=-noise`` (argparse takes ``-noise`` for an option)."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] in ("--suffix", "--snrs") and i + 1 < len(argv):
            out.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python3 -m pyutils.cli.augment_data_dir",
        description="Make an augmented copy of a data dir (wav.scp pipes, Kaldi style).")
    parser.add_argument("--noise-dir", action="append", default=[],
                        help="noise folder or file (MUSAN root understood); repeatable")
    parser.add_argument("--snrs", help="SNRs (dB) to draw from, e.g. 0,5,10,15 "
                                       "(default: the category's range)")
    parser.add_argument("--category", help="only this noise category (noise, music, babble)")
    parser.add_argument("--rir-dir", action="append", default=[],
                        help="RIR folder or file (RIRS_NOISES root understood); repeatable")
    parser.add_argument("--simulate-rir", action="store_true",
                        help="simulate a room per recording (pyroomacoustics)")
    parser.add_argument("--suffix", default="-aug", help="appended to utterance ids")
    parser.add_argument("--seed", type=int, default=123)
    parser.add_argument("--sample-rate", type=int, default=16000,
                        help="rate of the speech (for noise durations)")
    parser.add_argument("--no-recursive", action="store_true",
                        help="only audio files directly in the given folders")
    parser.add_argument("src")
    parser.add_argument("dst")
    args = parser.parse_args(_join_dash_values(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        count = augment_data_dir(args.src, args.dst, args.suffix, args.noise_dir,
                                 parse_snrs(args.snrs) if args.snrs else None, args.category,
                                 args.rir_dir, args.simulate_rir, args.seed, args.sample_rate,
                                 not args.no_recursive)
    except (ValueError, TableError, DataDirError, FileNotFoundError, RuntimeError) as err:
        sys.exit(f"augment_data_dir: {err}")
    logger.info("wrote %s: %d utterances", args.dst, count)


if __name__ == "__main__":
    main()
