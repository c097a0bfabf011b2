"""Label-free views streamed through the supervised streaming path (issue 17.8):
crops of one utterance computed as supervised chunks are, training from a shard dir
and from raw data dirs, and memory flat in the corpus size."""
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from pyutils.data.shards import write_shards
from pyutils.training.data import OnTheFlyFeatures
from pyutils.training.selfsup.data import LabelFreeSource
from pyutils.training.selfsup.train import train_label_free
from pyutils.utils.fileio import write_lines
from tests.test_selfsup_training import conf, make_audio_dir, write_config
from tests.test_training_shards import traced_peak_mb


def no_dither_conf(tmp_path):
    lines = [line for line in open(conf("mfcc.conf")) if "dither" not in line]
    path = tmp_path / "mfcc.conf"
    path.write_text("".join(lines) + "--dither=0\n")
    return str(path)


def features(mfcc_conf):
    return {"type": "mfcc", "on_the_fly": True, "conf": mfcc_conf, "vad_conf": conf("vad.conf"),
            "cmvn_conf": conf("cmvn.conf"), "vad_feat_conf": mfcc_conf}


def batches(source, epoch=1, steps=2, batch=3, seed=1, rank=0, world=1):
    return [[v.clone() for v in views]
            for views, _ in source.epoch_loader(seed, epoch, steps, batch, None, rank, world)]


def run_in(rows, matrix):
    """The offset where ``rows`` is a contiguous run of ``matrix``'s rows, or None."""
    for offset in range(len(matrix) - len(rows) + 1):
        if np.allclose(matrix[offset:offset + len(rows)], rows, atol=1e-4):
            return offset
    return None


def test_views_are_runs_of_one_utterances_voiced_features(tmp_path):
    """Without augmentation or dither, every view is a contiguous run of the CMN'd
    voiced-frame features of the whole utterance (what the supervised on-the-fly
    source computes), and both views of a row come from the same utterance."""
    data = make_audio_dir(tmp_path / "data", utts=3)
    mfcc = no_dither_conf(tmp_path)
    source = LabelFreeSource([str(data)], features(mfcc), None, [50, 30])
    assert source.describe() == "3 utterances" and source.feat_dim == 30
    write_lines(str(data / "utt2spk"), [f"u{u} u{u}" for u in range(3)])   # for the reference
    reference = OnTheFlyFeatures(str(data), "mfcc", mfcc, conf("vad.conf"), conf("cmvn.conf"),
                                 mfcc)
    whole = [reference.features(i) for i in range(3)]
    epoch = batches(source, steps=2, batch=3)
    assert [[tuple(v.shape) for v in views] for views in epoch] == [[(3, 50, 30), (3, 30, 30)]] * 2
    for views in epoch:
        for row in range(3):
            where = [[run_in(v[row].numpy(), w) for w in whole] for v in views]
            utts = [{u for u, offset in enumerate(w) if offset is not None} for w in where]
            assert len(utts[0]) == 1 and utts[0] == utts[1], where
    # an epoch is a function of (seed, epoch): again the same, another epoch differs
    again = batches(source, steps=2, batch=3)
    assert all(torch.equal(a, b) for x, y in zip(epoch, again) for a, b in zip(x, y))
    other = batches(source, epoch=2, steps=2, batch=3)
    assert not all(torch.equal(a, b) for x, y in zip(epoch, other) for a, b in zip(x, y))


def test_each_view_is_augmented_on_its_own_and_waveform_views_are_samples(tmp_path):
    data = make_audio_dir(tmp_path / "data", utts=2)
    aug = {"reverb": {"prob": 1.0, "simulate": {"bank_size": 4}}}
    source = LabelFreeSource([str(data)], features(conf("mfcc.conf")), aug, [40, 40])
    views = batches(source, steps=1, batch=2)[0]
    assert not torch.equal(views[0], views[1])
    waves = LabelFreeSource([str(data)], {"type": "waveform"}, None, [50, 20])
    assert waves.input_type == "waveform" and waves.feat_dim == 1
    shapes = [tuple(v.shape) for v in batches(waves, steps=1, batch=2)[0]]
    assert shapes == [(2, 8000), (2, 3200)]
    with pytest.raises(ValueError, match="on_the_fly"):
        LabelFreeSource([str(data)], {"type": "mfcc"}, None, [50])


def shard_dir(tmp_path, data, name="shards", per_shard=2):
    """Pack a data dir of unlabelled audio (wav.scp only: shards without .spk members)."""
    write_shards(str(data), str(tmp_path / name), utts_per_shard=per_shard)
    return str(tmp_path / name)


def test_label_free_training_runs_from_a_shard_dir_and_from_raw_data_dirs(tmp_path):
    """Fails on the old code: it read every dir's wav.scp into RAM, and a shard dir
    has none (TableError .../shards/wav.scp: file not found)."""
    shards = shard_dir(tmp_path, make_audio_dir(tmp_path / "data", utts=4))
    raw = str(make_audio_dir(tmp_path / "more", utts=3, prefix="x", seed=1))
    config = write_config(tmp_path / "c.yaml", "moco", epochs=1, data__num_workers=1)
    train_label_free(config, shards, str(tmp_path / "from_shards"))
    summary = json.loads((tmp_path / "from_shards" / "train_summary.json").read_text())
    assert summary["unlabelled_shards"] == 2 and summary["unlabelled_utterances"] == 0
    assert summary["utterances_seen"] == 8
    train_label_free(config, shards, str(tmp_path / "pooled"), unlabelled=[raw])
    summary = json.loads((tmp_path / "pooled" / "train_summary.json").read_text())
    assert summary["unlabelled_shards"] == 2 and summary["unlabelled_utterances"] == 3
    dino = write_config(tmp_path / "d.yaml", "dino", epochs=1)
    train_label_free(dino, raw, str(tmp_path / "from_raw"))
    for run in ("from_shards", "pooled", "from_raw"):
        assert (tmp_path / run / ".done").exists() and (tmp_path / run / "final.pt").exists()


def tiny_corpus(directory, n):
    """n one-second utterances (tone bursts in noise), wav.scp only."""
    directory.mkdir(parents=True)
    rng = np.random.default_rng(0)
    t = np.arange(16000)
    lines = []
    for i in range(n):
        x = 6000 * np.sin(t * 0.02 * (1 + i % 7)) * ((t // 4000) % 2 == 0) \
            + rng.normal(0, 30, 16000)
        path = directory / f"u{i:05d}.wav"
        sf.write(str(path), x.astype(np.int16), 16000)
        lines.append(f"u{i:05d} {path}")
    write_lines(str(directory / "wav.scp"), lines)
    return directory


@pytest.mark.slow     # ~6 s of CPU: 2,100 tiny wav files written and packed
def test_memory_stays_flat_in_the_corpus_size(tmp_path):
    """Peak traced memory of the label-free source over the same 4 batches, from 100 vs
    2,000 one-second utterances (64 MB of audio as float32 at 2,000), from a raw data
    dir and from a shard dir.  Fails on the old code: it loaded every utterance (at
    every speed) into RAM, and could not read the shard dir at all."""
    feats = features(conf("mfcc.conf"))
    peaks = {}
    for n in (100, 2000):
        raw = tiny_corpus(tmp_path / f"raw{n}", n)
        shards = shard_dir(tmp_path, raw, name=f"shards{n}", per_shard=100)
        for kind, data_dir in (("raw", str(raw)), ("shard", shards)):
            peaks[kind, n] = traced_peak_mb(lambda: LabelFreeSource(
                [data_dir], feats, None, [50, 50], shuffle_buffer_size=20).epoch_loader(
                    1, 1, 4, 8, None))
    print({k: round(v, 1) for k, v in peaks.items()})
    for kind in ("raw", "shard"):
        assert peaks[kind, 2000] - peaks[kind, 100] < 8, peaks
