"""Pack a Kaldi data dir into tar shards (WeSpeaker layout) and a shard.list.

    python -m pyutils.cli.make_shards [--utts-per-shard 1000] [--shuffle true]
        [--seed 777] DATA_DIR SHARD_DIR

See pyutils.data.shards: members <key>.spk and <key>.wav/.flac, written with
the standard tarfile module.
"""
import argparse
import logging
import sys

from pyutils.data.shards import write_shards

PROG = "make_shards"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("--utts-per-shard", type=int, default=1000)
    parser.add_argument("--shuffle", default="true", choices=["true", "false"])
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("data_dir")
    parser.add_argument("shard_dir")
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:
        return 0 if stop.code == 0 else 1
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        paths = write_shards(args.data_dir, args.shard_dir, args.utts_per_shard,
                             args.shuffle == "true", args.seed)
    except (OSError, ValueError, RuntimeError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    print(f"{PROG}: {len(paths)} shards in {args.shard_dir}/shard.list", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
