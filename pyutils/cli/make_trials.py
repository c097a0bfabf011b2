"""A trial list over every pair of a data dir's utterances (e.g. calibration trials).

    python -m pyutils.cli.make_trials --utt2spk data/asc/train/utt2spk \
        --keys-scp exp/asc/xvector/embeddings_train/xvector.scp --out trials

Writes ``utt1 utt2 target|nontarget`` for every unordered pair (first id <
second in C order) of the utterances in ``--utt2spk`` that also have a line in
``--keys-scp`` (when given); ``--max-trials N`` keeps a fixed-seed sample of N
pairs.  Stage 6 calibrates each system on such a list over the training
utterances.  Written atomically; fails when the list has no target or no
non-target trial.
"""
from __future__ import annotations

import argparse
import sys

from pyutils.backends.trials import pair_trials
from pyutils.utils.fileio import TableError, atomic_output, read_key_value, read_table


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--utt2spk", required=True)
    parser.add_argument("--keys-scp", help="keep only utterances with a line here")
    parser.add_argument("--max-trials", type=int, default=0, help="0: every pair")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    try:
        utt2spk = read_key_value(args.utt2spk)
        if args.keys_scp:
            keys = {fields[0] for _, fields in read_table(args.keys_scp, 2)}
            utt2spk = {u: s for u, s in utt2spk.items() if u in keys}
        trials = pair_trials(utt2spk, args.max_trials, args.seed)
        labels = {label for _, _, label in trials}
        if labels != {"target", "nontarget"}:
            raise ValueError(f"{args.utt2spk}: the trial list has only {labels.pop()} trials "
                             f"(it needs speakers with 2+ utterances and 2+ speakers)")
        with atomic_output(args.out) as out:
            out.writelines(f"{a} {b} {label}\n" for a, b, label in trials)
    except (TableError, ValueError, OSError) as err:
        print(f"make_trials: error: {err}", file=sys.stderr)
        return 1
    num_target = sum(label == "target" for _, _, label in trials)
    print(f"make_trials: {len(trials)} trials ({num_target} target) of {len(utt2spk)} "
          f"utterances -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
