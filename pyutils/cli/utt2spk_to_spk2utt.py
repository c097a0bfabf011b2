"""Convert utt2spk to spk2utt, like Kaldi's utils/utt2spk_to_spk2utt.pl.

    python -m pyutils.cli.utt2spk_to_spk2utt [utt2spk] > spk2utt

Reads the file argument or stdin; speakers come out in order of first
appearance, each with its utterances in input order.
"""
import sys

from pyutils.data.formats import utt2spk_to_spk2utt

PROG = "utt2spk_to_spk2utt"


def _pairs(handle, name):
    for lineno, line in enumerate(handle, 1):
        fields = line.split()
        if len(fields) != 2:
            raise ValueError(f"{name}:{lineno}: expected 'utt spk', got {len(fields)} field(s)")
        yield fields[0], fields[1]


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) > 1 or (args and args[0].startswith("-") and args[0] != "-"):
        print(f"usage: {PROG} [utt2spk] > spk2utt", file=sys.stderr)
        return 1
    try:
        if args and args[0] != "-":
            with open(args[0], encoding="utf-8") as handle:
                spk2utt = utt2spk_to_spk2utt(list(_pairs(handle, args[0])))
        else:
            spk2utt = utt2spk_to_spk2utt(list(_pairs(sys.stdin, "<stdin>")))
    except (OSError, ValueError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    for spk, utts in spk2utt.items():
        sys.stdout.write(f"{spk} {' '.join(utts)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
