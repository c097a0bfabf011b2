"""Concatenate audio files and write one 16-bit WAV to stdout (for wav.scp pipes).

    python3 -m pyutils.cli.concat_audio a.flac b.flac ... |

All inputs must share a sample rate and be mono; an error names the file.
"""
import io
import sys

import numpy as np
import soundfile as sf


def main(argv=None):
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        sys.exit("usage: python3 -m pyutils.cli.concat_audio FILE [FILE ...] > out.wav")
    pieces, rate = [], None
    for path in paths:
        try:
            data, this_rate = sf.read(path, dtype="int16", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, OSError) as err:
            sys.exit(f"concat_audio: cannot read {path}: {err}")
        if data.shape[1] != 1:
            sys.exit(f"concat_audio: {path} has {data.shape[1]} channels, expected mono")
        if rate is not None and this_rate != rate:
            sys.exit(f"concat_audio: {path} is {this_rate} Hz, the first file is {rate} Hz")
        rate = this_rate
        pieces.append(data[:, 0])
    buffer = io.BytesIO()
    sf.write(buffer, np.concatenate(pieces), rate, format="WAV", subtype="PCM_16")
    sys.stdout.buffer.write(buffer.getvalue())


if __name__ == "__main__":
    main()
