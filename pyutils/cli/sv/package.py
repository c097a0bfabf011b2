"""Build a model package (weights, configs, back-end, calibration, ONNX + TorchScript).

    sv package --model exp/asc/xvector/final.pt --backend-dir exp/asc/xvector/backend \\
        --calibration-dir exp/asc/xvector/calibration exp/asc/xvector/package

steps/package_model.sh (stage 8 of run.sh) runs this with the recipe's configs.
"""
from __future__ import annotations

import json
import os

from pyutils.cli.sv.common import SvError
from pyutils.features.pipeline import DEFAULT_CONFS


def add_parser(parser) -> None:
    parser.add_argument("out_dir", help="the package directory to write")
    parser.add_argument("--model", required=True, help="final.pt of a training run")
    parser.add_argument("--backend-dir", help="stage 5 output: mean.vec, lda.mat, plda")
    parser.add_argument("--calibration-dir", help="<backend>.json calibrations (optional)")
    parser.add_argument("--mfcc-config", default=DEFAULT_CONFS["mfcc"])
    parser.add_argument("--fbank-config", default=None,
                        help="fbank models (default: the training config's features.conf)")
    parser.add_argument("--vad-config", default=DEFAULT_CONFS["vad"])
    parser.add_argument("--cmvn-config", default=DEFAULT_CONFS["cmvn"])
    parser.add_argument("--cosine-mean", choices=("train", "none"), default="train",
                        help="conf/backend.conf's cosine centring (train: subtract mean.vec)")
    parser.add_argument("--chunk-size", type=int, default=10000)
    parser.add_argument("--min-chunk-size", type=int, default=25)
    parser.add_argument("--no-export", dest="export", action="store_false",
                        help="skip the ONNX and TorchScript exports")
    parser.add_argument("--archive", action="store_true", help="also write OUT_DIR.tar.gz")
    parser.add_argument("--quiet", "-q", action="store_true")


def run(args) -> int:
    from pyutils.deploy.package import export_summary
    from pyutils.deploy.package_build import build_package
    for option in ("model", "mfcc_config", "vad_config", "cmvn_config"):
        if not os.path.isfile(getattr(args, option)):
            raise SvError(f"--{option.replace('_', '-')} {getattr(args, option)}: no such file")
    try:
        manifest = build_package(args.model, args.out_dir, args.mfcc_config, args.vad_config,
                                 args.cmvn_config, args.fbank_config, args.backend_dir,
                                 args.calibration_dir, args.export, args.chunk_size,
                                 args.min_chunk_size, args.archive, args.cosine_mean)
    except (OSError, ValueError, KeyError) as err:
        raise SvError(str(err)) from None
    exports = export_summary(manifest)
    print(f"sv package: {args.out_dir}: {manifest['model']['name']} "
          f"({manifest['model']['input_type']}, {manifest['features']['type']}), back-ends: "
          f"{', '.join(manifest['backends']) or 'none'}, calibrated: "
          f"{', '.join(manifest['calibration']) or 'none'}, exports: {exports}")
    print(json.dumps({k: v["what"] for k, v in manifest["files"].items()}, indent=1))
    return 0
