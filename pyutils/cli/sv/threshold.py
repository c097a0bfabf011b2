"""Pick and save a new operating point from the package's calibration trials.

    sv threshold -p exp/asc/xvector/package --target-far 0.01        # at most 1 % false alarms
    sv threshold -p PKG --target-frr 0.05 --backend plda --name strict

Reads the calibration trials' scores packaged beside the calibration
(calibration/<backend>.cal_scores, stage 6), picks the lowest score threshold
with at most --target-far false alarms (or the highest with at most
--target-frr misses) on them, and saves it in the package's calibration with
its miss and false-alarm rates and their 95 % intervals, as far_<rate> (or
frr_<rate>, or --name); ``sv verify --threshold far_0.01`` then uses it.
The rates are those of the calibration trials: on another corpus the same
threshold gives other rates (docs/backends.md).
"""
from __future__ import annotations

import json

from pyutils.cli.sv.common import SvError, add_package_options, open_package, resolve_backend
from pyutils.cli.sv.enrolled import point_text


def add_parser(parser) -> None:
    add_package_options(parser, embeds=False)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-far", type=float, help="false-alarm rate to stay under")
    target.add_argument("--target-frr", type=float, help="miss rate to stay under")
    parser.add_argument("--backend", help="cosine or plda (default: cosine)")
    parser.add_argument("--name", help="name of the saved threshold (default far_<rate> / "
                        "frr_<rate>)")
    parser.add_argument("--dry-run", action="store_true", help="print it, save nothing")


def save_point(package, rel: str, name: str, point: dict) -> None:
    """Add threshold ``name`` and its error rates to the package's calibration file and
    its sha256 to the manifest (both written to temporary files first)."""
    from pyutils.deploy.package import MANIFEST, sha256
    from pyutils.utils.fileio import atomic_output
    path, manifest_path = package.path(rel), package.path(MANIFEST)
    with open(path) as src:
        data = json.load(src)
    data.setdefault("thresholds", {})[name] = point["threshold"]
    data.setdefault("operating_points", {})[name] = point
    with open(manifest_path) as src:
        manifest = json.load(src)
    with atomic_output(path) as out:
        json.dump(data, out, indent=1, sort_keys=True)
        out.write("\n")
    manifest["files"][rel]["sha256"] = sha256(path)
    with atomic_output(manifest_path) as out:
        json.dump(manifest, out, indent=1)
        out.write("\n")


def run(args) -> int:
    from pyutils.backends.operating_points import (error_rates_at, pick_threshold, point_name,
                                                   read_cal_scores)
    from pyutils.utils.fileio import TableError
    package = open_package(args.package)
    kind = resolve_backend(package, args.backend)
    rel = package.manifest["calibration"].get(kind)
    if rel is None:
        raise SvError(f"{package.root}: no calibration for '{kind}' (run stage 6, then package)")
    scores_rel = f"calibration/{kind}.cal_scores"
    if scores_rel not in package.manifest["files"]:
        raise SvError(f"{package.root}: no calibration trials' scores ({scores_rel}); rerun "
                      f"stages 6 and 8 with this version to package them")
    try:
        target, nontarget = read_cal_scores(package.path(scores_rel))
        threshold = pick_threshold(target, nontarget, args.target_far, args.target_frr)
    except (TableError, ValueError) as err:
        raise SvError(str(err)) from None
    name = args.name or point_name(args.target_far, args.target_frr)
    if not name or any(c.isspace() for c in name) or name in ("bayes",):
        raise SvError(f"--name '{name}': give a name without whitespace, not 'bayes'")
    point = error_rates_at(threshold, target, nontarget)
    point["picked_for"] = ({"target_far": args.target_far} if args.target_far is not None
                           else {"target_frr": args.target_frr})
    if not args.dry_run:
        try:
            save_point(package, rel, name, point)
        except OSError as err:
            raise SvError(f"{package.path(rel)}: {err}") from None
    print(f"sv threshold: {kind} '{name}' = {threshold:.6g} (score scale)"
          f"{' (not saved: --dry-run)' if args.dry_run else f' saved in {package.path(rel)}'}")
    print(point_text(point))
    return 0
