"""Merge the per-job tables of a split (scp, utt2num_frames, ...) into one, C-sorted.

    python -m pyutils.cli.merge_tables OUT --nj N "dir/raw_mfcc.JOB.scp"

Fails, naming file and line, on a missing job output or a key seen twice.
"""
import argparse
import sys

from pyutils.utils.fileio import TableError, read_table, write_lines


def merge(out: str, pattern: str, nj: int) -> int:
    """Write the union of the job tables to ``out``; return the number of lines."""
    lines = {}
    for job in range(1, nj + 1):
        path = pattern.replace("JOB", str(job))
        for lineno, fields in read_table(path, min_fields=2):
            if fields[0] in lines:
                raise TableError(path, lineno, f"key '{fields[0]}' also in another job's output")
            lines[fields[0]] = " ".join(fields)
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
