"""Extract one embedding per utterance (one job of steps/extract_embeddings.sh).

    python -m pyutils.cli.extract_embeddings --model exp/xvector/final.pt \\
        --feats-scp data/eval/split2/1/feats.scp --vad-scp data/eval/split2/1/vad.scp \\
        --cmvn-config conf/cmvn.conf --ark DIR/xvector.1.ark --scp DIR/xvector.1.scp

A waveform model reads the audio instead: ``--data-dir data/eval/split2/1``.

Skips the job when its completion marker (<scp>.done) records the same model,
features and options.
"""
import argparse
import logging
import os
import sys

from pyutils.data.audio import AudioError
from pyutils.extraction.extract import extract
from pyutils.features.pipeline import cmn_options
from pyutils.utils.fileio import TableError, write_lines
from pyutils.utils.log import setup_logging
from pyutils.utils.markers import fingerprint, job_done


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--model", required=True, help="final.pt of a training run")
    parser.add_argument("--feats-scp", help="raw features (before CMN); feature models")
    parser.add_argument("--vad-scp", help="energy VAD decisions; feature models")
    parser.add_argument("--cmvn-config", help="conf/cmvn.conf; feature models")
    parser.add_argument("--data-dir", help="data dir whose audio a waveform model reads")
    parser.add_argument("--stamp-extra", action="append", default=[],
                        help="more inputs for the job's marker (a file: its bytes; repeatable), "
                             "e.g. the upstream stage's marker")
    parser.add_argument("--ark", required=True)
    parser.add_argument("--scp", required=True)
    parser.add_argument("--chunk-size", type=int, default=10000)
    parser.add_argument("--min-chunk-size", type=int, default=25)
    parser.add_argument("--num-threads", type=int, default=1)
    parser.add_argument("--window", type=int, default=0,
                        help="embed sliding windows of this many voiced frames (0: whole utterance)")
    parser.add_argument("--window-shift", type=int, default=0, help="window shift (default: --window)")
    parser.add_argument("--engine", default="torch", choices=("torch", "compiled", "onnx"),
                        help="what runs the network (pyutils.extraction.engines)")
    parser.add_argument("--onnx-path", help="--engine onnx: the exported network "
                        "(exported here when missing)")
    parser.add_argument("--batch-size", type=int, default=1,
                        help="equal-length windows of one utterance per forward pass")
    parser.add_argument("--bucket", type=int, default=0,
                        help=">1: equal-length inputs (utterances, windows) of this many "
                        "consecutive utterances share batches of --batch-size (length buckets)")
    parser.add_argument("--device", default="cpu",
                        help="auto, cpu, cuda or cuda:N (the checkpoint loads on any of them)")
    args = parser.parse_args(argv)
    setup_logging()
    marker = args.scp + ".done"
    inputs = ([args.data_dir + "/wav.scp", args.data_dir + "/segments", args.data_dir + "/utt2spk"]
              if args.data_dir
              else [args.feats_scp, args.vad_scp, args.cmvn_config])
    stamp = fingerprint(args.model, *inputs,
                        f"{args.chunk_size} {args.min_chunk_size} {args.window} {args.window_shift}",
                        f"engine={args.engine} batch={args.batch_size}"
                        + (f" bucket={args.bucket}" if args.bucket > 1 else ""),
                        *([args.onnx_path] if args.engine == "onnx" else []),
                        *args.stamp_extra)
    if job_done(marker, stamp):
        logging.getLogger("extract").info("%s matches the inputs; job already done", marker)
        return
    try:
        counts = extract(args.model, args.feats_scp, args.vad_scp, args.ark, args.scp,
                         cmn_options(args.cmvn_config) if args.cmvn_config else None,
                         args.chunk_size, args.min_chunk_size, args.num_threads, args.window,
                         args.window_shift, data_dir=args.data_dir, device=args.device,
                         engine=args.engine, onnx_path=args.onnx_path, batch_size=args.batch_size,
                         bucket=args.bucket)
    except (TableError, ValueError, FileNotFoundError, AudioError) as err:
        logging.getLogger("extract").error("%s", err)
        sys.exit(1)
    write_lines(marker, [stamp, f"done={counts['done']} skipped={counts['skipped']} "
                                f"padded={counts['padded']}"])


if __name__ == "__main__":
    main()
