"""Export the network of a final.pt to ONNX for stage 4's ONNX Runtime engine.

    python -m pyutils.cli.export_onnx --model exp/asc/xvector/final.pt \\
        --out exp/asc/xvector/extract/embedding.onnx

The export is checked against PyTorch on two lengths.  A network that does not
export leaves no file and exits 0 with a warning: the extraction then runs on
PyTorch (its log says so).  Skips the work when ``<out>.done`` records the same model.
"""
import argparse
import logging
import os

from pyutils.extraction.engines import export_for_extraction
from pyutils.extraction.extract import load_model_and_dim
from pyutils.utils.fileio import write_lines
from pyutils.utils.log import setup_logging
from pyutils.utils.markers import fingerprint, job_done
from pyutils.utils.threads import set_threads


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--model", required=True, help="final.pt of a training run")
    parser.add_argument("--out", required=True, help="the .onnx file to write")
    parser.add_argument("--min-chunk-size", type=int, default=25)
    parser.add_argument("--stamp-extra", action="append", default=[],
                        help="more inputs for the marker (e.g. the training stage's .done)")
    args = parser.parse_args(argv)
    setup_logging()
    log = logging.getLogger("export_onnx")
    marker = args.out + ".done"
    stamp = fingerprint(args.model, str(args.min_chunk_size), *args.stamp_extra)
    if job_done(marker, stamp):
        log.info("%s matches the model; export already done", marker)
        return
    set_threads(2)
    model, feat_dim = load_model_and_dim(args.model)
    path = export_for_extraction(model, feat_dim, args.out, args.min_chunk_size)
    write_lines(marker, [stamp, "onnx" if path else "failed: extraction uses PyTorch"])


if __name__ == "__main__":
    main()
