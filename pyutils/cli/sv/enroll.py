"""Enrol a speaker from one or more clips into an enrolment store.

    sv enroll -p exp/asc/xvector/package --speaker alice a1.wav a2.wav a3.flac
    sv enroll -p PKG --speaker bob bob_clips/ --store my_store --replace

The speaker model is the mean of the clips' raw embeddings and their count
(Kaldi's ivector-mean + num_utts.ark): PLDA scores it with the count
(ivector-plda-scoring --num-utts), cosine re-normalises the mean.  The store
(default PACKAGE/enrolled) holds spk_xvector.{ark,scp} and num_utts.ark,
readable by Kaldi tools, plus each speaker's clips and total speech seconds.
A clip with less than --min-speech seconds of speech after VAD, unreadable
audio, an empty list or a taken name is a one-line error, and the store is
left as it was.
"""
from __future__ import annotations

from pyutils.cli.sv.common import SvError, add_package_options, list_inputs, open_package
from pyutils.cli.sv.enrolled import (add_store_option, embed_with_durations, min_chunk_seconds,
                                     read_speakers)


def add_parser(parser) -> None:
    add_package_options(parser)
    parser.add_argument("--speaker", required=True, help="the speaker's name (no whitespace)")
    parser.add_argument("clips", nargs="+", help="audio files, folders of audio, or *.scp lists")
    add_store_option(parser)
    parser.add_argument("--replace", action="store_true",
                        help="replace a speaker already enrolled (default: refuse)")
    parser.add_argument("--min-speech", type=float, default=None,
                        help="seconds of speech after VAD each clip needs (default: the "
                             "package's shortest chunk, min_chunk_size frames; below it the "
                             "embedding is mostly padding)")


def run(args) -> int:
    from pyutils.backends.speakers import (Speaker, model_quality, speaker_model,
                                           validate_name, write_store)
    try:
        name = validate_name(args.speaker)
    except ValueError as err:
        raise SvError(f"--speaker: {err}") from None
    package = open_package(args.package)
    path, speakers = read_speakers(package, args)
    if name in speakers and not args.replace:
        raise SvError(f"speaker '{name}' is already enrolled in {path} (from "
                      f"{speakers[name].count} clip(s)); --replace to enrol again")
    items = list_inputs(args.clips, unique=False)
    if not items:
        raise SvError(f"no clips to enrol speaker '{name}' from ({' '.join(args.clips)})")
    vectors, seconds = embed_with_durations(package, items, args, desc="enroll")
    minimum = args.min_speech
    if minimum is None:
        minimum = min_chunk_seconds(package)
    for (_, source), duration in zip(items, seconds):
        if duration < minimum:
            raise SvError(f"{source}: {duration:.2f} s of speech after VAD is too short to "
                          f"enrol (--min-speech {minimum:g}); nothing was enrolled")
    mean, count = speaker_model(vectors)
    speakers[name] = Speaker(mean, count, [s.replace(" ", "_") for _, s in items],
                             model_quality(seconds, vectors))
    try:
        write_store(path, speakers)
    except OSError as err:
        raise SvError(f"enrolment store {path}: {err}") from None
    print(f"sv enroll: '{name}' enrolled from {count} clip(s), {sum(seconds):.1f} s of speech, "
          f"into {path} ({len(speakers)} speaker(s))")
    return 0
