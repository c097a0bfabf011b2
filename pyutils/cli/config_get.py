"""Print one value of a training YAML for shell scripts: a dotted key, with a default.

    python -m pyutils.cli.config_get conf/resnet34.yaml features.type mfcc
"""
import sys

import yaml

MISSING = object()


def lookup(config: dict, key: str, default=MISSING) -> str:
    """The value at a dotted key as the shell sees it (booleans as true/false);
    ``default`` when a part is missing, KeyError without one."""
    value = config
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            if default is MISSING:
                raise KeyError(key)
            return default
        value = value[part]
    return str(value).lower() if isinstance(value, bool) else str(value)


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3):
        sys.exit("usage: python -m pyutils.cli.config_get CONFIG KEY [DEFAULT]")
    try:
        with open(args[0], encoding="utf-8") as handle:
            value = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError) as err:
        sys.exit(f"config_get: {args[0]}: {err}")
    try:
        print(lookup(value, args[1], *args[2:]))
    except KeyError:
        sys.exit(f"config_get: {args[0]} has no key '{args[1]}'")


if __name__ == "__main__":
    main()
