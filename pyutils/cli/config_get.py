"""Print one value of a training YAML for shell scripts: a dotted key, with a default.

    python -m pyutils.cli.config_get conf/resnet34.yaml features.type mfcc
"""
import sys

import yaml


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3):
        sys.exit("usage: python -m pyutils.cli.config_get CONFIG KEY [DEFAULT]")
    try:
        with open(args[0], encoding="utf-8") as handle:
            value = yaml.safe_load(handle)
    except (OSError, yaml.YAMLError) as err:
        sys.exit(f"config_get: {args[0]}: {err}")
    for part in args[1].split("."):
        if not isinstance(value, dict) or part not in value:
            if len(args) == 3:
                print(args[2])
                return
            sys.exit(f"config_get: {args[0]} has no key '{args[1]}'")
        value = value[part]
    print(str(value).lower() if isinstance(value, bool) else value)


if __name__ == "__main__":
    main()
