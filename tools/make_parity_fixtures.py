#!/usr/bin/env python3
"""Reference embeddings computed by the source toolkits' own code, for the importers' parity tests.

Run each source in its own environment (the toolkit installed from the package index, or its
model files from its repository), with the same torch as the toolkit's venv::

    /work/venvs/resemblyzer/bin/python tools/make_parity_fixtures.py resemblyzer
    /work/venvs/parity/bin/python tools/make_parity_fixtures.py wespeaker --src WESPEAKER_CHECKOUT
    /work/venvs/parity/bin/python tools/make_parity_fixtures.py 3dspeaker --src 3DSPEAKER_CHECKOUT
    /work/venvs/speechbrain/bin/python tools/make_parity_fixtures.py speechbrain

Each writes ``tests/fixtures/parity/<source>_*`` (small random-weight networks in the source's
own checkpoint layout, a fixed input and the source's output) and records the versions it used
in ``tests/fixtures/parity/VERSIONS.json``.  This script never imports ``pyutils``: the
references come from the source code alone.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(os.path.dirname(HERE), "tests", "fixtures", "parity")
SOURCES = {"resemblyzer": "parity_resemblyzer", "wespeaker": "parity_wespeaker",
           "3dspeaker": "parity_3dspeaker", "speechbrain": "parity_speechbrain"}


def record_versions(source: str, versions: dict) -> None:
    """Merge ``versions`` (package -> version, plus the commit of a checkout) into VERSIONS.json."""
    path = os.path.join(OUT, "VERSIONS.json")
    table = {}
    if os.path.exists(path):
        with open(path) as handle:
            table = json.load(handle)
    table[source] = {"python": platform.python_version(), **versions}
    with open(path + ".tmp", "w") as handle:
        json.dump(table, handle, indent=1, sort_keys=True)
        handle.write("\n")
    os.replace(path + ".tmp", path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source", choices=sorted(SOURCES))
    parser.add_argument("--src", help="checkout of the source's repository (wespeaker, 3dspeaker)")
    args = parser.parse_args(argv)
    sys.path.insert(0, HERE)
    module = importlib.import_module(SOURCES[args.source])
    os.makedirs(OUT, exist_ok=True)
    versions = module.make(OUT, args.src)
    record_versions(args.source, versions)
    print(f"{args.source}: fixtures in {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
