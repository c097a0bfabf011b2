"""Import another toolkit's pretrained model (WeSpeaker, 3D-Speaker, SpeechBrain, HF, Resemblyzer).

    sv import --from wespeaker ~/models/voxceleb_resnet34 exp/pretrained/resnet34

The same as ``python -m pyutils.cli.import_model`` (docs/pretrained.md); then
``sv package --model exp/pretrained/resnet34/final.pt ...``.
"""
from __future__ import annotations


def add_parser(parser) -> None:
    from pyutils.cli.import_model import add_arguments
    add_arguments(parser)
    parser.add_argument("--quiet", "-q", action="store_true")


def run(args) -> int:
    from pyutils.cli.import_model import run as run_import
    return run_import(args)
