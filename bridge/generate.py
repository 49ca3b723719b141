"""``twinbridge campus generate N``: a campus file of N DOE reference buildings, for scale tests and demos.

Each building is drawn (with ``--seed``) from the reference models that have a tag map in tagmaps/;
the file runs one July day in fast mode and is accepted by ``twinbridge validate``.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from bridge.config import EXECUTORS

TAGMAPS = Path(__file__).resolve().parent.parent / "tagmaps"
# building type: (reference model, tag map file, name prefix)
BUILDING_TYPES = (
    ("ref:small_office", "small_office.toml", "SmallOffice"),
    ("ref:medium_office", "medium_office.toml", "MediumOffice"),
    ("ref:large_office", "large_office.toml", "LargeOffice"),
    ("ref:standalone_retail", "retail.toml", "Retail"),
    ("ref:warehouse", "warehouse.toml", "Warehouse"),
)


def campus_toml(count: int, seed: int = 0, name: str = "GeneratedCampus", executor: str = "local") -> str:
    """The text of a campus file of ``count`` buildings of types drawn uniformly with ``seed``."""
    if count < 1:
        raise ValueError(f"a campus needs at least one building, got {count}")
    draw = random.Random(seed)
    width = len(str(count))
    lines = [f"# {count} DOE reference buildings drawn with seed {seed} (twinbridge campus generate)",
             "[campus]", f'name = "{name}"', *([f'executor = "{executor}"'] if executor != "local" else []), "",
             "[run]", 'start = "07-01"', 'end = "07-01"', "timesteps_per_hour = 6", 'clock = "fast"', ""]
    for index in range(1, count + 1):
        model, tagmap, prefix = draw.choice(BUILDING_TYPES)
        lines += ["[[buildings]]", f'name = "{prefix}{index:0{width}d}"', f'model = "{model}"',
                  f'tagmap = "{(TAGMAPS / tagmap).as_posix()}"', ""]
    return "\n".join(lines)


def _cmd_generate(args: argparse.Namespace) -> int:
    text = campus_toml(args.count, args.seed, args.name, args.executor)
    if args.out:
        Path(args.out).write_text(text)
        print(f"{args.out}: {args.count} building(s)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _count(value: str) -> int:
    count = int(value)
    if count < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {count}")
    return count


def add_campus_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``campus generate`` on an argparse subparsers object."""
    campus = subparsers.add_parser("campus", help="generate a campus file of N reference buildings")
    commands = campus.add_subparsers(dest="campus_command", required=True)
    generate = commands.add_parser("generate", help="write a campus file of N DOE reference buildings")
    generate.add_argument("count", type=_count, help="number of buildings")
    generate.add_argument("--out", help="file to write (default: standard output)")
    generate.add_argument("--seed", type=int, default=0, help="seed of the drawing of building types (default 0)")
    generate.add_argument("--name", default="GeneratedCampus", help="campus name (default GeneratedCampus)")
    generate.add_argument("--executor", choices=EXECUTORS, default="local", help="[campus] executor (default local)")
    generate.set_defaults(func=_cmd_generate)
