"""Command line: write (or reuse) the mini world and print its calibration statistics.

    python -m relabel.data --out data/ [--seed 0] [--preview] [--set n_train=2000 --set difficulty=1]
"""
from __future__ import annotations

import argparse
import sys

from relabel.configs import ConfigError, parse_overrides

from .world_config import make_config
from .world import ensure_world, format_stats, load_stats


def _parse_knob(text: str) -> tuple[str, object]:
    try:
        return next(iter(parse_overrides([text]).items()))
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m relabel.data", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder that holds mini worlds (one subfolder per world)")
    parser.add_argument("--seed", type=int, default=0, help="world seed (default 0)")
    parser.add_argument("--preview", action="store_true", help="also write <world>/preview.png with boxes drawn")
    parser.add_argument("--set", type=_parse_knob, action="append", default=[], metavar="KNOB=VALUE",
                        help="override a WorldConfig knob, e.g. --set difficulty=1 --set label_rule=largest")
    args = parser.parse_args(argv)
    knobs = dict(args.set)
    try:
        make_config(**knobs)
    except (ValueError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        world = ensure_world(args.out, args.seed, preview=args.preview, **knobs)
    except (RuntimeError, FileNotFoundError) as err:  # an incomplete world folder, a missing bundled photo
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(format_stats(load_stats(world)))
    print(f"statistics saved to {world / 'stats.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
