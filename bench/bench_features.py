"""Single-thread speed of the feature front end, in x real time.

Times vectorised MFCC, the kaldi-native-fbank reference, VAD and sliding CMN
on 60 s of 16 kHz noise.  Run: ``.venv/bin/python bench/bench_features.py``.
"""
import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy is imported

import sys  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pyutils.features.cmvn import sliding_cmn  # noqa: E402
from pyutils.features.fbank import FbankComputer  # noqa: E402
from pyutils.features.mfcc import MfccComputer  # noqa: E402
from pyutils.features.vad import compute_vad_energy  # noqa: E402
from tests.kaldi_reference import compute_mfcc_reference  # noqa: E402

SECONDS = 60.0
CONF = {"sample-frequency": 16000, "frame-length": 25, "frame-shift": 10,
        "low-freq": 20, "high-freq": 7600, "num-mel-bins": 30, "num-ceps": 30,
        "snip-edges": False, "dither": 0.0}


def best_time(fn, repeats=5):
    """Fastest of ``repeats`` runs after one warm-up (seconds)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    wave = (np.random.default_rng(0).standard_normal(int(SECONDS * 16000)) * 1000.0
            ).astype(np.float32)
    mfcc = MfccComputer(CONF)
    fbank = FbankComputer({"dither": 0.0, "snip-edges": False})
    feats = mfcc.compute(wave)
    rows = [
        ("MFCC 30-dim (numpy)", lambda: mfcc.compute(wave)),
        ("MFCC 30-dim (knf reference)", lambda: compute_mfcc_reference(wave, CONF)),
        ("MFCC + VAD (numpy)", lambda: compute_vad_energy(mfcc.compute(wave))),
        ("fbank 80-dim (numpy)", lambda: fbank.compute(wave)),
        ("VAD only", lambda: compute_vad_energy(feats)),
        ("sliding CMN (300, center)", lambda: sliding_cmn(feats)),
        ("sliding CMN + norm-vars", lambda: sliding_cmn(feats, norm_vars=True)),
    ]
    print(f"{'stage':32s} {'ms / 60 s':>10s} {'x real time':>12s}")
    for name, fn in rows:
        seconds = best_time(fn)
        print(f"{name:32s} {seconds * 1e3:10.2f} {SECONDS / seconds:12.0f}")


if __name__ == "__main__":
    main()
