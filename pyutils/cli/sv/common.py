"""What the ``sv`` subcommands share: options, inputs, the package, the embedding loop."""
from __future__ import annotations

import argparse
import logging
import os
import re
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np

from pyutils.data.audio import AudioError, audio_extensions
from pyutils.utils.fileio import TableError
from pyutils.utils.progress import progress

logger = logging.getLogger("sv")

AUDIO_EXTENSIONS = tuple(f".{ext}" for ext in audio_extensions())  # what libsndfile reads


class SvError(RuntimeError):
    """A user-facing error: printed as one line, exit status 1."""


def add_package_options(parser: argparse.ArgumentParser, embeds: bool = True) -> None:
    parser.add_argument("--package", "-p", required=True,
                        help="model package dir (exp/<model>/package) or its .tar.gz")
    parser.add_argument("--quiet", "-q", action="store_true", help="warnings and errors only")
    if not embeds:
        return
    parser.add_argument("--runtime", choices=("torch", "onnx"), default="torch",
                        help="network runtime: PyTorch, or ONNX Runtime (needs no PyTorch)")
    parser.add_argument("--num-threads", type=int, default=1, help="intra-op threads")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N for torch)")
    parser.add_argument("--batch-size", type=int, default=16,
                        help="utterances read and embedded together (equal lengths share a "
                             "forward pass)")
    rate = parser.add_mutually_exclusive_group()
    rate.add_argument("--resample", dest="resample", action="store_true", default=None,
                      help="resample audio at another rate to the model's")
    rate.add_argument("--no-resample", dest="resample", action="store_false",
                      help="refuse audio at another rate (default: as the package's "
                           "feature config says; the recipe's refuses)")


def open_package(path: str):
    from pyutils.deploy.package import Package, PackageError
    try:
        return Package(path)
    except (PackageError, OSError, ValueError) as err:
        raise SvError(str(err)) from None


def _key_of(relative: str) -> str:
    """An utterance id from a path: no extension, '/' -> '-', whitespace -> '_'."""
    stem = os.path.splitext(relative)[0]
    return re.sub(r"\s+", "_", stem.replace(os.sep, "-"))


def list_inputs(paths: Sequence[str], unique: bool = True) -> List[Tuple[str, str]]:
    """(key, wav.scp value) for audio files, folders of audio (recursive) and ``*.scp`` lists;
    ``unique``: two inputs with one id are an error (they would overwrite each other)."""
    from pyutils.data.formats import read_scp
    items: List[Tuple[str, str]] = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(os.path.relpath(os.path.join(d, f), path)
                           for d, _, names in os.walk(path) for f in names
                           if f.lower().endswith(AUDIO_EXTENSIONS))
            if not found:
                raise SvError(f"{path}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) in it")
            items += [(_key_of(rel), os.path.join(path, rel)) for rel in found]
        elif path.endswith(".scp"):
            try:
                items += [(key, value) for _, key, value in read_scp(path)]
            except (TableError, OSError) as err:
                raise SvError(str(err)) from None
        else:
            items.append((_key_of(os.path.basename(path)), path))
    seen = {}
    for key, source in items if unique else ():
        if key in seen:
            raise SvError(f"'{seen[key]}' and '{source}' get the same id '{key}'; rename one "
                          f"or list them in a wav.scp")
        seen[key] = source
    return items


def embed_items(package, items: Sequence[Tuple[str, str]], args, desc: str = "embed",
                skip_errors: bool = False, frontend=None
                ) -> Tuple[List[str], List[np.ndarray], List[str]]:
    """Embed ``(key, source)`` items: (keys, embeddings, failure messages).

    ``frontend(source, key)`` gives the network input (default: the package's
    front-end reading audio files).  Unusable audio is an :class:`SvError`
    naming it, or with ``skip_errors`` a logged and counted skip (as the
    recipe's feature stage does)."""
    frontend = frontend or package.frontend(args.resample)
    embedder = make_embedder(package, args)
    keys: List[str] = []
    vectors: List[np.ndarray] = []
    failed: List[str] = []
    batch_keys: List[str] = []
    batch: List[np.ndarray] = []

    def flush() -> None:
        vectors.extend(embedder.embed_many(batch, args.batch_size))
        keys.extend(batch_keys)
        batch.clear()
        batch_keys.clear()

    shown = items if getattr(args, "quiet", False) else progress(items, total=len(items),
                                                                 desc=desc, unit="utt")
    for key, source in shown:
        try:
            batch.append(frontend(source, key))
            batch_keys.append(key)
        except AudioError as err:
            if not skip_errors:
                raise SvError(str(err)) from None
            logger.warning("%s: skipped: %s", key, err)
            failed.append(f"{key} {err.reason}")
        if len(batch) >= max(1, args.batch_size):
            flush()
    flush()
    return keys, vectors, failed


def make_embedder(package, args):
    from pyutils.deploy.package import PackageError
    try:
        return package.embedder(args.runtime, args.num_threads, args.device)
    except PackageError as err:     # the package's fault (no export, old layout), not the device's
        raise SvError(str(err)) from None
    except (RuntimeError, ValueError) as err:
        message = str(err)
        if "--device" not in message:
            message = f"--device {args.device}: {message}"
        raise SvError(message) from None


def mean_embedding(vectors: Iterable[np.ndarray]) -> np.ndarray:
    """Enrolment model of several utterances: the mean embedding (Kaldi ivector-mean)."""
    return np.mean(np.stack(list(vectors)), axis=0)


def resolve_backend(package, name: Optional[str]) -> str:
    """``--backend`` or the package's first back-end (cosine when present)."""
    if name:
        return name
    if not package.backends:
        raise SvError(f"{package.root}: the package has no back-end files; rebuild it with "
                      f"--backend-dir")
    return "cosine" if "cosine" in package.backends else package.backends[0]


def open_backend(package, kind):
    """The package's back-end ``kind``; its errors become one-line SvErrors."""
    from pyutils.deploy.package import PackageError
    try:
        return package.backend(kind)
    except (PackageError, ValueError, OSError) as err:
        raise SvError(str(err)) from None
