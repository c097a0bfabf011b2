"""Make a Kaldi data dir from a folder of audio laid out as <root>/<speaker>/.../<file>.

    python -m pyutils.cli.folder_to_data_dir [--trials] [--ext wav,flac,...] AUDIO_ROOT DATA_DIR

The first folder level under AUDIO_ROOT names the speaker (VoxCeleb's
id/video/utt.wav layout works as is).  Utterance ids are
``<speaker>-<relative path with / -> - and the extension dropped>``, so they
start with the speaker id as Kaldi requires; whitespace in a name becomes
``_`` in the id (wav.scp keeps the real path).  Every file is either used or
listed with its reason in DATA_DIR/.unused (not an audio extension, not in a
speaker folder); two files that would get the same id (``a.wav`` and
``a.flac``, or ``sub-b.wav`` and ``sub/b.wav``) are an error naming both, so
no file is dropped silently.  By default every format libsndfile reads is
taken (wav, flac, ogg/opus, mp3, ...: pyutils.data.audio.audio_extensions),
extensions matched case-insensitively; --ext narrows it.  With --trials,
every unordered pair of utterances becomes a trial (fine for a few thousand
utterances).
"""
import argparse
import itertools
import os
import re
import sys

from pyutils.data.audio import audio_extensions
from pyutils.data.formats import utt2spk_to_spk2utt
from pyutils.utils.fileio import write_lines

WHITESPACE = re.compile(r"\s")


class Collision(ValueError):
    """Files that would share an utterance id."""


def scan(root: str, extensions=None):
    """({utt_id: (speaker, absolute path)}, [(path, reason) of unused files])."""
    utts, sources, unused, collisions = {}, {}, [], []
    why = f"not a .{'/.'.join(sorted(extensions))} file" if extensions else \
        "not an audio file libsndfile reads"
    extensions = set(extensions or audio_extensions())
    for entry in sorted(os.listdir(root)):
        spk_dir = os.path.join(root, entry)
        if not os.path.isdir(spk_dir):
            unused.append((os.path.abspath(spk_dir), "not in a speaker folder"))
            continue
        speaker = WHITESPACE.sub("_", entry)
        for dirpath, dirnames, files in os.walk(spk_dir):
            dirnames.sort()
            for name in sorted(files):
                path = os.path.abspath(os.path.join(dirpath, name))
                if os.path.splitext(name)[1].lstrip(".").lower() not in extensions:
                    unused.append((path, why))
                    continue
                rel = os.path.splitext(os.path.relpath(path, spk_dir))[0]
                utt = WHITESPACE.sub("_", f"{speaker}-{rel.replace(os.sep, '-')}")
                if utt in utts:
                    collisions.append(f"{sources[utt]} and {path} would both be '{utt}'")
                    continue
                utts[utt], sources[utt] = (speaker, path), path
    if collisions:
        raise Collision(f"{len(collisions)} utterance id(s) would be shared by two files "
                        f"(rename one of each pair):\n  " + "\n  ".join(collisions))
    return utts, unused


def write_data_dir(utts, out: str, with_trials: bool) -> None:
    os.makedirs(out, exist_ok=True)
    ids = sorted(utts, key=lambda u: u.encode("utf-8"))
    write_lines(os.path.join(out, "wav.scp"), (f"{u} {utts[u][1]}" for u in ids))
    write_lines(os.path.join(out, "utt2spk"), (f"{u} {utts[u][0]}" for u in ids))
    spk2utt = utt2spk_to_spk2utt((u, utts[u][0]) for u in ids)
    write_lines(os.path.join(out, "spk2utt"),
                (f"{s} {' '.join(spk2utt[s])}" for s in sorted(spk2utt)))
    if with_trials:
        write_lines(os.path.join(out, "trials"),
                    (f"{a} {b} {'target' if utts[a][0] == utts[b][0] else 'nontarget'}"
                     for a, b in itertools.combinations(ids, 2)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", action="store_true", help="write all-pairs trials")
    parser.add_argument("--ext", default="", help="audio file extensions to take, e.g. wav,flac "
                        "(default: every format libsndfile reads)")
    parser.add_argument("audio_root")
    parser.add_argument("data_dir")
    args = parser.parse_args(argv)
    try:
        extensions = [e for e in args.ext.lower().replace(".", "").split(",") if e]
        utts, unused = scan(args.audio_root, set(extensions))
    except (ValueError, OSError) as err:
        sys.exit(f"folder_to_data_dir: {err}")
    if not utts:
        sys.exit(f"folder_to_data_dir: no *.{{{','.join(extensions or audio_extensions())}}} "
                 f"files under {args.audio_root}/<speaker>/")
    write_data_dir(utts, args.data_dir, args.trials)
    unused_list = os.path.join(args.data_dir, ".unused")
    write_lines(unused_list, (f"{path}\t{reason}" for path, reason in unused))
    print(f"{args.data_dir}: {len(utts)} utterances of "
          f"{len({s for s, _ in utts.values()})} speakers", file=sys.stderr)
    if unused:
        print(f"folder_to_data_dir: {len(unused)} file(s) not used, listed with the reason in "
              f"{unused_list}:", file=sys.stderr)
        for path, reason in unused[:10]:
            print(f"  {path}: {reason}", file=sys.stderr)


if __name__ == "__main__":
    main()
