"""Merge the per-job tables of a split (scp, utt2num_frames, ...) into one, C-sorted.

    python -m pyutils.cli.merge_tables OUT --nj N "dir/raw_mfcc.JOB.scp"

Fails, naming file and line, on a missing job output or a key seen twice.
Values are kept verbatim (the rest of the line, as Kaldi reads scp files), so
archive paths holding spaces survive.
"""
import argparse
import sys

from pyutils.data.formats import read_scp
from pyutils.utils.fileio import TableError, write_lines


def merge(out: str, pattern: str, nj: int) -> int:
    """Write the union of the job tables to ``out``; return the number of lines."""
    lines = {}
    for job in range(1, nj + 1):
        path = pattern.replace("JOB", str(job))
        for lineno, key, value in read_scp(path, allow_empty=True):
            if key in lines:
                raise TableError(path, lineno, f"key '{key}' also in another job's output")
            lines[key] = f"{key} {value}"
    write_lines(out, (lines[k] for k in sorted(lines, key=lambda k: k.encode("utf-8"))))
    return len(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out")
    parser.add_argument("--nj", type=int, required=True)
    parser.add_argument("pattern", help="per-job path with JOB for the job index")
    args = parser.parse_args(argv)
    try:
        merge(args.out, args.pattern, args.nj)
    except TableError as err:
        sys.exit(f"merge_tables: {err}")


if __name__ == "__main__":
    main()
