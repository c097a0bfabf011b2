"""A training YAML with some values changed on the command line: ``run.sh --train-overrides``.

    python -m pyutils.cli.config_set BASE.yaml OUT.yaml training.seed=2 data.chunks_per_epoch=768

Each ``KEY=VALUE`` sets a dotted key of BASE; VALUE is read as YAML (``2`` an int, ``true`` a
boolean, ``[0.9, 1.1]`` a list).  A key BASE does not have is an error naming it (a typo
would otherwise train another system than the one asked for); ``+KEY=VALUE`` adds one, as
Hydra does.  OUT is written atomically and only when its content changes, so a rerun keeps
the training stamp (which fingerprints the parsed config, overrides included).
"""
from __future__ import annotations

import argparse
import sys

import yaml

from pyutils.utils.fileio import write_text_if_changed


def apply_overrides(config: dict, overrides: list[str], source: str = "config") -> dict:
    """``config`` with each ``[+]KEY=VALUE`` of ``overrides`` set (a deep copy)."""
    config = yaml.safe_load(yaml.safe_dump(config)) or {}
    for item in overrides:
        add = item.startswith("+")
        key, sep, text = item.lstrip("+").partition("=")
        if not sep or not key:
            raise ValueError(f"override '{item}': expected KEY=VALUE (e.g. training.seed=2)")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ValueError(f"override '{item}': VALUE is not YAML: {err}") from None
        node, parts = config, key.split(".")
        for depth, part in enumerate(parts[:-1]):
            if not isinstance(node.get(part), dict):
                if part in node or not add:
                    raise ValueError(f"override '{item}': {source} has no section "
                                     f"'{'.'.join(parts[:depth + 1])}' (+{key}=... adds one)")
                node[part] = {}
            node = node[part]
        if parts[-1] not in node and not add:
            raise ValueError(f"override '{item}': {source} has no key '{key}' "
                             f"(a typo? +{key}=... adds it)")
        node[parts[-1]] = value
    return config


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base")
    parser.add_argument("out")
    parser.add_argument("overrides", nargs="*", metavar="[+]KEY=VALUE")
    args = parser.parse_args(argv)
    try:
        with open(args.base, encoding="utf-8") as handle:
            base = yaml.safe_load(handle) or {}
        config = apply_overrides(base, args.overrides, source=args.base)
    except (OSError, ValueError, yaml.YAMLError) as err:
        print(f"config_set: error: {err}", file=sys.stderr)
        return 1
    text = (f"# {args.base} with {' '.join(args.overrides)} (pyutils.cli.config_set)\n"
            + yaml.safe_dump(config, sort_keys=False))
    write_text_if_changed(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
