"""Train (or resume training) a speaker-embedding network.

    python -m pyutils.cli.train --config conf/xvector.yaml --data data/train_no_sil \\
        --exp-dir exp/xvector

The data dir gives feats.scp (precomputed features) or its audio (wav.scp, for
on-the-fly features and waveform models), and utt2spk.
"""
import argparse
import logging
import os
import sys

from pyutils.training.trainer import train
from pyutils.utils.fileio import TableError
from pyutils.utils.log import setup_logging


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--config", required=True, help="training YAML (conf/<model>.yaml)")
    parser.add_argument("--data", required=True, help="training data dir")
    parser.add_argument("--exp-dir", required=True)
    parser.add_argument("--force", action="store_true", help="retrain from scratch")
    parser.add_argument("--max-epochs", type=int, default=None,
                        help="stop after this epoch (the run stays resumable)")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        final = train(args.config, args.data, args.exp_dir,
                      force=args.force, max_epochs=args.max_epochs)
    except (TableError, ValueError, OSError) as err:   # OSError: DiskFullError too
        logging.getLogger("train").error("%s", err)
        sys.exit(1)
    if os.path.isfile(final):
        logging.getLogger("train").info("model: %s", final)
    else:
        logging.getLogger("train").info(
            "stopped after epoch %d (--max-epochs); %s is written when the last epoch is done: "
            "rerun without --max-epochs to continue", args.max_epochs, final)


if __name__ == "__main__":
    main()
