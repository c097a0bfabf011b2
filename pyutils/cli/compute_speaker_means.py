"""Average utterance embeddings per speaker (Kaldi ivector-mean).

    python -m pyutils.cli.compute_speaker_means data/eval/spk2utt DIR/xvector.scp DIR
"""
import argparse
import sys

from pyutils.extraction.speaker_means import speaker_means
from pyutils.utils.fileio import TableError
from pyutils.utils.log import setup_logging


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("spk2utt")
    parser.add_argument("embeddings_scp")
    parser.add_argument("out_dir", help="writes spk_xvector.{ark,scp} and num_utts.ark")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        speaker_means(args.spk2utt, args.embeddings_scp, args.out_dir)
    except (TableError, ValueError) as err:
        sys.exit(f"compute_speaker_means: {err}")


if __name__ == "__main__":
    main()
