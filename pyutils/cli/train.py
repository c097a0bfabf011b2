"""Train (or resume training) a speaker-embedding network.

    python -m pyutils.cli.train --config conf/xvector.yaml --data data/train_no_sil \\
        --exp-dir exp/xvector

The data dir gives feats.scp (precomputed features) or its audio (wav.scp, for
on-the-fly features and waveform models), and utt2spk.  A config with an ``ssl:``
block trains without labels (MoCo or DINO, :mod:`pyutils.training.selfsup.train`):
then only the audio tables are read, of --data and of each --unlabelled-data dir.
"""
import argparse
import logging
import os
import sys

from pyutils.training.selfsup.inputs import is_label_free
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
    parser.add_argument("--unlabelled-data", default="",
                        help="label-free configs only: more data dirs of audio, DIR[,DIR]")
    args = parser.parse_args(argv)
    setup_logging()
    unlabelled = [d for d in args.unlabelled_data.split(",") if d]
    try:
        if is_label_free(args.config):
            from pyutils.training.selfsup.train import train_label_free
            final = train_label_free(args.config, args.data, args.exp_dir, force=args.force,
                                     max_epochs=args.max_epochs, unlabelled=unlabelled)
        elif unlabelled:
            raise ValueError(f"--unlabelled-data needs a label-free config (an ssl: block); "
                             f"{args.config} trains with speaker labels")
        else:
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
