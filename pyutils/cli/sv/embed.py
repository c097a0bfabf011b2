"""Embeddings of audio files, a folder of audio or a wav.scp, to ark/scp or .npy.

    sv embed -p exp/asc/xvector/package a.wav b.flac -o emb.ark    # emb.ark + emb.scp
    sv embed -p PKG audio_folder/ -o emb.npy                       # (N, dim) + emb.keys
    sv embed -p PKG data/eval/wav.scp -o emb.ark --runtime onnx    # no PyTorch needed

Ids: a file's name without extension; in a folder, its relative path with
'/' -> '-'; in a wav.scp, its key (the recipe's features and embeddings for
the same id are reproduced).  Unusable audio stops with an error naming it,
or with --skip-errors is skipped, logged and listed in <output>.skipped.
"""
from __future__ import annotations

import os

import numpy as np

from pyutils.cli.sv.common import SvError, add_package_options, embed_items, list_inputs, open_package
from pyutils.utils.fileio import atomic_output, write_lines


def add_parser(parser) -> None:
    add_package_options(parser)
    parser.add_argument("inputs", nargs="+", help="audio files, folders, or *.scp lists")
    parser.add_argument("--output", "-o", required=True,
                        help="OUT.ark (+ OUT.scp, Kaldi binary vectors) or OUT.npy "
                             "(+ OUT.keys, one id per row)")
    parser.add_argument("--skip-errors", action="store_true",
                        help="skip unusable audio (listed in OUT.skipped) instead of stopping")


def write_embeddings(path: str, keys, vectors) -> None:
    """ark/scp or npy + keys, atomically."""
    from pyutils.utils.arkio import ArkScpWriter
    base, ext = os.path.splitext(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if ext == ".ark":
        with ArkScpWriter(path, base + ".scp") as writer:
            for key, vector in zip(keys, vectors):
                writer.write(key, vector)
    elif ext == ".npy":
        matrix = np.stack(vectors) if vectors else np.zeros((0, 0), np.float32)
        with atomic_output(path, "wb") as out:
            np.save(out, matrix.astype(np.float32))
        write_lines(base + ".keys", keys)
    else:
        raise SvError(f"--output {path}: give a .ark or .npy name")


def run(args) -> int:
    if os.path.splitext(args.output)[1] not in (".ark", ".npy"):
        raise SvError(f"--output {args.output}: give a .ark or .npy name")
    package = open_package(args.package)
    items = list_inputs(args.inputs)
    keys, vectors, failed = embed_items(package, items, args, skip_errors=args.skip_errors)
    if not keys:
        raise SvError(f"none of the {len(items)} inputs could be embedded")
    write_embeddings(args.output, keys, vectors)
    if args.skip_errors:
        write_lines(os.path.splitext(args.output)[0] + ".skipped", failed)
    print(f"sv embed: {len(keys)} embeddings of dimension {vectors[0].size} in {args.output} "
          f"({len(failed)} skipped; runtime {args.runtime})")
    return 0
