"""Shared fixtures: project root, the ASC corpus location."""
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def corpus_root() -> str:
    """$SV_CORPUS_ROOT, else ../shared/corpora beside the checkout (as run.sh)."""
    return os.environ.get("SV_CORPUS_ROOT") or os.path.join(os.path.dirname(ROOT), "shared", "corpora")


@pytest.fixture
def asc_root():
    path = corpus_root()
    if not os.path.isdir(os.path.join(path, "asc", "dataset")):
        pytest.skip(f"ASC corpus not found under {path}")
    return path
