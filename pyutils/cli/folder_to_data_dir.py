"""Make a Kaldi data dir from a folder of audio laid out as <root>/<speaker>/.../<file>.

    python -m pyutils.cli.folder_to_data_dir [--trials] [--ext wav,flac] AUDIO_ROOT DATA_DIR

The first folder level under AUDIO_ROOT names the speaker (VoxCeleb's
id/video/utt.wav layout works as is).  Utterance ids are
``<speaker>-<relative path with / -> - and the extension dropped>``, so they
start with the speaker id as Kaldi requires; a path holding whitespace cannot
be an id and is an error naming the file.  With --trials, every unordered
pair of utterances becomes a trial (fine for a few thousand utterances).
"""
import argparse
import itertools
import os
import sys

from pyutils.data.datadir import utt2spk_to_spk2utt
from pyutils.utils.fileio import write_lines


def scan(root: str, extensions):
    """{utt_id: (speaker, absolute path)} for every audio file under root."""
    utts = {}
    for speaker in sorted(os.listdir(root)):
        spk_dir = os.path.join(root, speaker)
        if not os.path.isdir(spk_dir):
            continue
        for dirpath, _, files in os.walk(spk_dir):
            for name in files:
                if os.path.splitext(name)[1].lstrip(".").lower() not in extensions:
                    continue
                path = os.path.abspath(os.path.join(dirpath, name))
                rel = os.path.splitext(os.path.relpath(path, spk_dir))[0]
                utt = f"{speaker}-{rel.replace(os.sep, '-')}"
                if any(c.isspace() for c in utt):
                    raise ValueError(f"{path}: whitespace in the speaker folder or file name "
                                     f"cannot be part of a Kaldi utterance id; rename it")
                utts[utt] = (speaker, path)
    return utts


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
    parser.add_argument("--ext", default="wav,flac", help="audio file extensions to take")
    parser.add_argument("audio_root")
    parser.add_argument("data_dir")
    args = parser.parse_args(argv)
    try:
        utts = scan(args.audio_root, set(args.ext.lower().split(",")))
    except (ValueError, OSError) as err:
        sys.exit(f"folder_to_data_dir: {err}")
    if not utts:
        sys.exit(f"folder_to_data_dir: no *.{{{args.ext}}} files under {args.audio_root}/<speaker>/")
    write_data_dir(utts, args.data_dir, args.trials)
    print(f"{args.data_dir}: {len(utts)} utterances of "
          f"{len({s for s, _ in utts.values()})} speakers", file=sys.stderr)


if __name__ == "__main__":
    main()
