"""Keep a user's data dir recoverable when a stage drops utterances from it.

The feature stage removes the utterances whose audio failed from the data dir
(as Kaldi's make_mfcc.sh + fix_data_dir.sh do), so that every later stage sees
a consistent dir.  Unlike Kaldi, the lists the user gave are kept in
``<data>/.orig/`` and every real rerun starts again from them, so fixing the
audio and rerunning brings every utterance back.  ``.orig/LEFT`` records the
lists as the stage left them: if the user has since edited the dir (or
prepared it anew), the edited lists are the originals and the old copy goes
to a numbered backup, never overwritten.

    python -m pyutils.data.original_lists digest DATA [--failed LIST]
        content hash of the original lists (for the stage's marker); with the
        skipped-utterance LIST of the last run, the state of those
        utterances' audio files too, so replacing a broken file reruns
    python -m pyutils.data.original_lists restore DATA   # originals back in place
    python -m pyutils.data.original_lists keep DATA --skipped LIST  # before fixing: save or drop .orig
    python -m pyutils.data.original_lists record DATA    # after fixing: note how the dir was left
    python -m pyutils.data.original_lists copy-lists SRC DST   # lists of SRC into DST
    python -m pyutils.data.original_lists backup DATA FILE...  # move FILEs to .backup/N/
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shlex
import shutil
import sys
from typing import Dict, List, Optional

from pyutils.utils.fileio import write_lines

ORIG = ".orig"
LEFT = "LEFT"
# outputs of the stages, never part of the user's lists
OUTPUTS = {"feats.scp", "vad.scp", "utt2num_frames", "cmvn.scp"}


def list_files(directory: str) -> List[str]:
    """Names of the Kaldi list files of a data dir (not hidden, not outputs)."""
    if not os.path.isdir(directory):
        return []
    return sorted(n for n in os.listdir(directory)
                  if not n.startswith(".") and n not in OUTPUTS
                  and os.path.isfile(os.path.join(directory, n)))


def lists_digest(directory: str) -> str:
    """SHA-256 over the names and bytes of the list files of ``directory``."""
    digest = hashlib.sha256()
    for name in list_files(directory):
        digest.update(name.encode() + b"\0")
        with open(os.path.join(directory, name), "rb") as handle:
            digest.update(hashlib.sha256(handle.read()).digest())
    return digest.hexdigest()


def new_backup_dir(data: str) -> str:
    """Create and return ``<data>/.backup/<N>/``, N one more than the last."""
    root = os.path.join(data, ".backup")
    os.makedirs(root, exist_ok=True)
    numbers = [int(n) for n in os.listdir(root) if n.isdigit()]
    number = max(numbers, default=0) + 1
    while True:
        path = os.path.join(root, str(number))
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            number += 1


def _orig_is_current(data: str) -> bool:
    """True when ``.orig`` exists and the dir is as the last run left it."""
    left = os.path.join(data, ORIG, LEFT)
    if not os.path.isfile(left):
        return False
    with open(left) as handle:
        return handle.read().strip() == lists_digest(data)


def originals_dir(data: str) -> str:
    """Where the user's lists are: ``.orig`` if the dir is as we left it, else the dir.

    A ``.orig`` that no longer applies (the user changed the dir) is moved to
    a numbered backup.
    """
    orig = os.path.join(data, ORIG)
    if _orig_is_current(data):
        return orig
    if os.path.isdir(orig):
        shutil.move(orig, os.path.join(new_backup_dir(data), ORIG))
    return data


def _copy_lists(src: str, dst: str) -> None:
    """Make the list files of ``dst`` those of ``src`` (extra lists removed)."""
    os.makedirs(dst, exist_ok=True)
    wanted = list_files(src)
    for name in set(list_files(dst)) - set(wanted):
        os.remove(os.path.join(dst, name))
    for name in wanted:
        shutil.copyfile(os.path.join(src, name), os.path.join(dst, name) + ".tmp")
        os.replace(os.path.join(dst, name) + ".tmp", os.path.join(dst, name))


def restore(data: str) -> bool:
    """Put the original lists back in ``data``; True if anything was restored."""
    source = originals_dir(data)
    if source == data:
        return False
    _copy_lists(source, data)
    return True


def keep(data: str, dropped: bool) -> None:
    """Call before fixing the dir: save the lists as the originals if utterances
    were dropped (unless saved already), else forget any saved copy."""
    orig = os.path.join(data, ORIG)
    if not dropped:
        if os.path.isdir(orig):
            shutil.rmtree(orig)
        return
    if not os.path.isdir(orig):
        tmp = orig + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        _copy_lists(data, tmp)
        os.replace(tmp, orig)


def record(data: str) -> None:
    """Call after fixing the dir: note how it was left (see ``_orig_is_current``)."""
    orig = os.path.join(data, ORIG)
    if os.path.isdir(orig):
        write_lines(os.path.join(orig, LEFT), [lists_digest(data)])


def audio_files(value: str) -> List[str]:
    """The files a wav.scp value reads: the path itself, or a pipe's file words."""
    value = value.strip()
    if not value.endswith("|"):
        return [value]
    try:
        words = shlex.split(value[:-1])
    except ValueError:
        words = value[:-1].split()
    return [w for w in words if os.sep in w or os.path.exists(w)]


def failed_audio_state(wav_scp: str, skipped: Optional[str]) -> str:
    """Size and mtime of the audio files of the utterances listed in ``skipped``."""
    if not skipped or not os.path.isfile(skipped) or not os.path.isfile(wav_scp):
        return "no-failures"
    failed = {line.split()[0] for line in open(skipped) if line.strip()}
    if not failed:
        return "no-failures"
    wav: Dict[str, str] = {}
    for line in open(wav_scp, encoding="utf-8"):
        fields = line.split(None, 1)
        if len(fields) == 2:
            wav[fields[0]] = fields[1]
    digest = hashlib.sha256()
    for utt in sorted(failed):
        for path in audio_files(wav.get(utt, "")):
            try:
                info = os.stat(path)
                state = f"{path} {info.st_size} {info.st_mtime_ns}"
            except OSError:
                state = f"{path} missing"
            digest.update(state.encode("utf-8", "surrogateescape") + b"\n")
    return digest.hexdigest()


def digest(data: str, failed: Optional[str] = None) -> str:
    """What decides the feature stage's output among the lists: see module doc."""
    source = originals_dir(data)
    state = failed_audio_state(os.path.join(source, "wav.scp"), failed)
    return f"{lists_digest(source)}-{state}"


def copy_lists(src: str, dst: str) -> None:
    """Give ``dst`` the lists of ``src`` without undoing a stage's fix for nothing.

    When ``dst`` was fixed by a stage and ``src`` still holds the lists that
    stage started from, nothing is copied (the stage's marker decides).
    """
    if _orig_is_current(dst) and lists_digest(src) == lists_digest(os.path.join(dst, ORIG)):
        return
    if os.path.isdir(os.path.join(dst, ORIG)):
        shutil.move(os.path.join(dst, ORIG), os.path.join(new_backup_dir(dst), ORIG))
    _copy_lists(src, dst)


def backup(data: str, names: List[str]) -> Optional[str]:
    """Move the named files of ``data`` that exist into a new numbered backup."""
    present = [n for n in names if os.path.isfile(os.path.join(data, n))]
    if not present:
        return None
    target = new_backup_dir(data)
    for name in present:
        os.replace(os.path.join(data, name), os.path.join(target, name))
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="original_lists", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("digest")
    p.add_argument("data")
    p.add_argument("--failed")
    sub.add_parser("restore").add_argument("data")
    p = sub.add_parser("keep")
    p.add_argument("data")
    p.add_argument("--skipped", help="list of dropped utterances (empty: none)")
    sub.add_parser("record").add_argument("data")
    p = sub.add_parser("copy-lists")
    p.add_argument("src")
    p.add_argument("dst")
    p = sub.add_parser("backup")
    p.add_argument("data")
    p.add_argument("names", nargs="*")
    args = parser.parse_args(argv)
    if args.action == "digest":
        print(digest(args.data, args.failed))
    elif args.action == "restore":
        restore(args.data)
    elif args.action == "keep":
        dropped = bool(args.skipped) and os.path.isfile(args.skipped) \
            and os.path.getsize(args.skipped) > 0
        keep(args.data, dropped)
    elif args.action == "record":
        record(args.data)
    elif args.action == "copy-lists":
        copy_lists(args.src, args.dst)
    else:
        where = backup(args.data, args.names)
        if where:
            print(where)
    return 0


if __name__ == "__main__":
    sys.exit(main())
