"""Per-speaker mean embeddings, as Kaldi's ivector-mean (spk_xvector.ark, num_utts.ark)."""
from __future__ import annotations

import logging
from typing import Dict

import numpy as np

from pyutils.utils.arkio import ArkScpWriter, load_scp_dict
from pyutils.utils.fileio import read_table, write_lines

logger = logging.getLogger(__name__)


def speaker_means(spk2utt: str, embeddings_scp: str, out_dir: str) -> Dict[str, int]:
    """Write spk_xvector.{ark,scp} and num_utts.ark; speakers whose utterances
    all lack an embedding are skipped and counted (as ivector-mean warns)."""
    vectors = load_scp_dict(embeddings_scp)
    counts: Dict[str, int] = {}
    missing_spk = 0
    with ArkScpWriter(f"{out_dir}/spk_xvector.ark", f"{out_dir}/spk_xvector.scp") as writer:
        for _, (spk, *utts) in read_table(spk2utt, min_fields=2):
            found = [vectors[u] for u in utts if u in vectors]
            if not found:
                logger.warning("speaker %s: no embeddings for any of its %d utterances",
                               spk, len(utts))
                missing_spk += 1
                continue
            writer.write(spk, np.mean(np.stack(found), axis=0))
            counts[spk] = len(found)
    write_lines(f"{out_dir}/num_utts.ark", (f"{s} {n}" for s, n in sorted(counts.items())))
    logger.info("speaker means for %d speakers (%d without embeddings)", len(counts), missing_spk)
    return counts
