"""Per-speaker mean embeddings, as Kaldi's ivector-mean (spk_xvector.ark, num_utts.ark).

The model of each speaker is :func:`pyutils.backends.speakers.speaker_model`, the
one ``sv enroll`` stores: the same files, read back by ``read_store``.
"""
from __future__ import annotations

import logging
from typing import Dict

from pyutils.backends.speakers import MEANS, NUM_UTTS, speaker_model
from pyutils.utils.arkio import ArkScpWriter, load_scp_dict
from pyutils.utils.fileio import read_table, write_lines

logger = logging.getLogger(__name__)


def speaker_means(spk2utt: str, embeddings_scp: str, out_dir: str) -> Dict[str, int]:
    """Write spk_xvector.{ark,scp} and num_utts.ark; speakers whose utterances
    all lack an embedding are skipped and counted (as ivector-mean warns)."""
    vectors = load_scp_dict(embeddings_scp)
    counts: Dict[str, int] = {}
    missing_spk = 0
    with ArkScpWriter(f"{out_dir}/{MEANS}.ark", f"{out_dir}/{MEANS}.scp") as writer:
        for _, (spk, *utts) in read_table(spk2utt, min_fields=2):
            found = [vectors[u] for u in utts if u in vectors]
            if not found:
                logger.warning("speaker %s: no embeddings for any of its %d utterances",
                               spk, len(utts))
                missing_spk += 1
                continue
            mean, counts[spk] = speaker_model(found)
            writer.write(spk, mean)
    write_lines(f"{out_dir}/{NUM_UTTS}", (f"{s} {n}" for s, n in sorted(counts.items())))
    logger.info("speaker means for %d speakers (%d without embeddings)", len(counts), missing_spk)
    return counts
