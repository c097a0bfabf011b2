"""Where and when a stage ran, for the results page: date, commit, machine, and KEY=VALUE facts.

    python -m pyutils.cli.run_info [--newer-than FILE] OUT.json [KEY=VALUE ...]

Writes OUT.json with ``date`` (UTC), ``commit`` (``git describe --always
--dirty`` of this checkout, or null outside git), ``machine`` (CPU model and
count, and the GPUs nvidia-smi lists) and the given facts (corpus, protocol,
evaluation set, calibration data...).  With --newer-than FILE nothing is
written when OUT.json is already newer than FILE (stage 3 records the run that
trained the model, not a later rerun that found it complete).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from typing import Optional

from pyutils.utils.fileio import atomic_output

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(cmd) -> Optional[str]:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20, cwd=ROOT)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 and out.stdout.strip() else None


def commit() -> Optional[str]:
    """``git describe --always --dirty`` of the checkout (a dirty tree says so)."""
    return _run(["git", "describe", "--always", "--dirty", "--abbrev=12"])


def machine() -> str:
    """CPU model x count, plus the GPUs (``nvidia-smi -L``), e.g. 'Intel Xeon ... x 2 CPUs'."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle
                     if line.startswith("model name")]
        model = names[0] if names else model
    except OSError:
        pass
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    text = f"{model}, {cpus} CPUs"
    gpus = _run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"])
    if gpus:
        text += ", GPU " + " + ".join(gpus.splitlines())
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--newer-than", help="skip when OUT is newer than this file")
    parser.add_argument("out")
    parser.add_argument("facts", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args(argv)
    if args.newer_than and os.path.isfile(args.out) and os.path.isfile(args.newer_than) and \
            os.path.getmtime(args.out) >= os.path.getmtime(args.newer_than):
        return 0
    info = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": commit(),
            "machine": machine()}
    for fact in args.facts:
        key, sep, value = fact.partition("=")
        if not sep or not key:
            print(f"run_info: error: expected KEY=VALUE, got '{fact}'", file=sys.stderr)
            return 1
        info[key] = value
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with atomic_output(args.out) as out:
        json.dump(info, out, indent=1)
        out.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
