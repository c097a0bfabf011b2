"""Export the network of a final.pt to ONNX for stage 4's ONNX Runtime engine.

    python -m pyutils.cli.export_onnx --model exp/asc/xvector/final.pt \\
        --out exp/asc/xvector/extract/embedding.onnx

    python -m pyutils.cli.export_onnx --network-part --model exp/pretrained/ge2e/final.pt \
        --out ge2e_network.onnx

The export is checked against PyTorch on two lengths.  A model whose front-end is numpy
(``ge2e``, ``sb_ecapa``; their whole forward does not export) exports the network after
that front-end, whose input is ``model.frontend(wav)``
(:func:`pyutils.deploy.export.export_network_part`: ONNX Runtime on it equals the eager
model within 1e-4); stage 4's ``onnx`` engine runs the front-end in numpy, then that graph.
``--network-part`` insists on that split (an error for a model without one).  A network
that does not export leaves no file and exits 0 with a warning: the extraction then runs on
PyTorch (its log says so).  ``<out>.done`` fingerprints the model, the options and the
exporter (:func:`pyutils.deploy.export.export_method`: its version, opset, torch, and whether
the whole network or a network part exports): the work is skipped when it records the same,
done or failed, and redone when any of them changed.
"""
import argparse
import logging
import os

from pyutils.deploy.export import export_method
from pyutils.extraction.engines import export_for_extraction
from pyutils.extraction.extract import load_model_and_dim
from pyutils.utils.log import setup_logging
from pyutils.utils.markers import matches, write
from pyutils.utils.threads import set_threads

FAILED = "failed: extraction uses PyTorch"


def recorded_failure(marker: str) -> bool:
    """Whether ``marker`` records a failed export (its summary line, after the run id)."""
    with open(marker, encoding="utf-8") as src:
        lines = src.read().splitlines()
    return len(lines) > 2 and lines[2] == FAILED


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--model", required=True, help="final.pt of a training run")
    parser.add_argument("--out", required=True, help="the .onnx file to write")
    parser.add_argument("--min-chunk-size", type=int, default=25)
    parser.add_argument("--network-part", action="store_true",
                        help="a numpy front-end's model (ge2e, sb_ecapa): the network after it")
    parser.add_argument("--stamp-extra", action="append", default=[],
                        help="more inputs for the marker (e.g. the training stage's .done)")
    args = parser.parse_args(argv)
    setup_logging()
    log = logging.getLogger("export_onnx")
    marker = args.out + ".done"
    set_threads(2)
    model, feat_dim = load_model_and_dim(args.model)
    items = [args.model, str(args.min_chunk_size), export_method(model), *args.stamp_extra]
    if matches(marker, items):
        if os.path.exists(args.out):
            log.info("%s matches the model and exporter; export already done", marker)
            return
        if recorded_failure(marker):
            log.info("%s matches the model and exporter; its export failed (PyTorch extracts)",
                     marker)
            return
    if args.network_part:
        if not hasattr(model, "network_part"):
            parser.error(f"--network-part: {args.model} has no numpy front-end to keep outside "
                         f"(export its whole network without --network-part)")
        from pyutils.deploy.export import export_network_part
        worst = export_network_part(model, args.out)
        log.info("exported %s: the network after %s's numpy front-end (max |ONNX - PyTorch| "
                 "%.1e)", args.out, type(model).__name__, worst)
        write(marker, items, "onnx network part")
        return
    path = export_for_extraction(model, feat_dim, args.out, args.min_chunk_size)
    write(marker, items, "onnx" if path else FAILED)


if __name__ == "__main__":
    main()
