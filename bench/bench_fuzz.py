"""The property-based tests (Hypothesis) of the parsers and write paths, run longer than CI runs them.

CI runs each property with a small example count (tests/, ``devtools.fuzz.examples``); this runs the
same properties (``pytest -m property``) with ``TWINBRIDGE_FUZZ_SCALE`` times as many examples (default
50): the ExternalInterface packet decoder, the write guard, the EPW reader, the TOML loaders (campus,
tag map, schedule, GP-MPC, tracking) and the CSV trajectory reader. A property holds when no example
raised anything but the project's own errors. Figures: passing examples per property, property tests
failed (target 0), wall time.

    python bench/bench_fuzz.py [--scale 50]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.results_io import figure, write_results  # noqa: E402
from devtools.fuzz import SCALE_VARIABLE  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
PROPERTY_FILES = ("tests/test_packet_faults.py", "tests/test_write_guard.py", "tests/test_epw.py",
                  "tests/test_loaders_properties.py")
STATISTICS = re.compile(r"^\S+::(\w+)\S*:$.*?- (\d+) passing examples, (\d+) failing examples", re.M | re.S)
OUTCOME = re.compile(r"^(PASSED|FAILED|ERROR) \S+::(\S+)", re.M)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=50, help="times the CI example counts (default 50)")
    args = parser.parse_args()
    started = time.monotonic()
    command = [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "-m", "property",
               "--timeout", "7200", "--hypothesis-show-statistics", *PROPERTY_FILES]
    env = os.environ | {SCALE_VARIABLE: str(args.scale)}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    wall_s = time.monotonic() - started
    outcomes = OUTCOME.findall(result.stdout)
    failed = [name for outcome, name in outcomes if outcome != "PASSED"]
    figures = {}
    for name, passing, failing in STATISTICS.findall(result.stdout):
        figures[f"{name}_passing_examples"] = figure(int(passing), "examples")
        print(f"{name}: {passing} passing examples, {failing} failing")
    figures["property_tests"] = figure(len(outcomes), "tests")
    figures["property_tests_failed"] = figure(len(failed), "tests", "0")
    figures["wall_s"] = figure(wall_s, "s")
    for name in failed:
        print(f"FAILED {name}")
    if failed:
        print(result.stdout[-5000:])
    write_results("fuzz", figures, notes=f"property tests of tests/ (pytest -m property) at {args.scale}x their CI "
                                         "example counts; a test fails when any example raises anything but the "
                                         "project's own errors or breaks the property. Properties nested in "
                                         "parametrized tests (one per loader) report no statistics of their own.")


if __name__ == "__main__":
    main()
