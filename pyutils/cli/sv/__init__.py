"""``sv``: use a packaged model (``exp/<model>/package``) outside the recipe.

    sv embed   --package P AUDIO... | FOLDER | wav.scp  -o emb.ark|emb.npy   embeddings
    sv verify  --package P ENROL... TEST                    score, LLR, accept/reject
    sv enroll  --package P --speaker NAME CLIP...           store a speaker model
    sv verify  --package P --speaker NAME TEST              against an enrolled speaker
    sv identify --package P TEST                            best enrolled speakers, or none
    sv threshold --package P --target-far 0.01              save a new operating point
    sv score   --package P --trials T --enroll-scp E.scp    trials -> scores (back-ends)
    sv eval    --package P DATA_DIR OUT_DIR                 features, embeddings, scores, metrics
    sv package --model final.pt --backend-dir B OUT         build a package (stage 8)
    sv import  --from wespeaker|3dspeaker|speechbrain|hf|resemblyzer SRC OUT   a pretrained model

``python -m pyutils.cli`` is the same command.  ``--runtime onnx`` runs the
network with ONNX Runtime and needs no PyTorch.  Errors are one line naming
the file, and a non-zero exit.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional

from pyutils.cli.sv import (embed, enroll, evaluate, identify, importer, package, score, threshold,
                           verify)
from pyutils.cli.sv.common import SvError

COMMANDS = {"embed": embed, "verify": verify, "score": score, "eval": evaluate,
            "package": package, "enroll": enroll, "identify": identify, "threshold": threshold,
            "import": importer}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sv", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module in COMMANDS.items():
        module.add_parser(sub.add_parser(name, help=module.__doc__.split("\n")[0],
                                         description=module.__doc__,
                                         formatter_class=argparse.RawDescriptionHelpFormatter))
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return COMMANDS[args.command].run(args) or 0
    except SvError as err:
        print(f"sv {args.command}: error: {err}", file=sys.stderr)
        return 1
