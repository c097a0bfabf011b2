"""Import a pretrained speaker model from another toolkit as this toolkit's model directory.

    python -m pyutils.cli.import_model --from resemblyzer SRC OUT_DIR[/final.pt]

``--from``:
  wespeaker    SRC: a model dir with avg_model.pt (or --checkpoint) and config.yaml
  3dspeaker    SRC: a model dir with the .ckpt/.bin and its configuration.yaml (or --config)
  speechbrain  SRC: a model dir with embedding_model.ckpt and hyperparams.yaml
  hf           SRC: a transformers *ForXVector dir (config.json + weights)
  resemblyzer  SRC: pretrained.pt, or the installed resemblyzer package dir

Writes ``final.pt`` (network + the feature config reproducing the source's front-end),
``config.yaml`` and ``.done`` as stage 3 would, so ``./run.sh --stage 4 --exp EXP --model NAME
--train-config OUT_DIR/config.yaml`` and ``sv package --model OUT_DIR/final.pt`` use it
unchanged (docs/pretrained.md).  Nothing is downloaded.  A checkpoint that does not fit is a
one-line error naming the key and both shapes.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import List, Optional

CONVERTERS = {
    "wespeaker": "pyutils.models.convert.wespeaker",
    "3dspeaker": "pyutils.models.convert.threedspeaker",
    "speechbrain": "pyutils.models.convert.speechbrain",
    "resemblyzer": "pyutils.models.convert.resemblyzer",
    "hf": "pyutils.models.ssl.hf_convert",
}


def out_dir(path: str) -> str:
    """OUT_DIR, or the directory of OUT_DIR/final.pt."""
    return os.path.dirname(path) or "." if os.path.basename(path) == "final.pt" else path


def import_model(source: str, src: str, out: str, checkpoint: Optional[str] = None,
                 config: Optional[str] = None) -> str:
    """Convert and write; returns the path of final.pt."""
    module = importlib.import_module(CONVERTERS[source])
    if source == "hf":
        return module.write_model_dir(src, out_dir(out))
    from pyutils.models.convert.common import write_model_dir
    kwargs = {k: v for k, v in (("checkpoint", checkpoint), ("config", config)) if v}
    model, model_config, sources = module.convert(src, **kwargs)
    return write_model_dir(model, model_config, out_dir(out), sources, CONVERTERS[source])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="source", required=True, choices=sorted(CONVERTERS))
    parser.add_argument("src", help="the downloaded model (directory or file)")
    parser.add_argument("out", help="output model directory (or OUT_DIR/final.pt)")
    parser.add_argument("--checkpoint", help="the weights file inside SRC if not the usual name")
    parser.add_argument("--config", help="the source's config file if not the usual name")


def run(args) -> int:
    from pyutils.models.convert.common import ConversionError
    if args.source == "hf" and (args.checkpoint or args.config):
        print("import_model: --checkpoint/--config do not apply to --from hf", file=sys.stderr)
        return 1
    try:
        print(import_model(args.source, args.src, args.out, args.checkpoint, args.config))
    except (ConversionError, OSError, ValueError, KeyError) as err:
        print(f"import_model: error: {err}", file=sys.stderr)
        return 1
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="import_model", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
