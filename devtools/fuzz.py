"""How hard the property-based tests (Hypothesis) try: their example counts are sized for CI, and
``TWINBRIDGE_FUZZ_SCALE`` multiplies them for a longer run (bench/bench_fuzz.py)."""

from __future__ import annotations

import os

SCALE_VARIABLE = "TWINBRIDGE_FUZZ_SCALE"


def examples(ci_count: int) -> int:
    """``ci_count`` examples, times ``$TWINBRIDGE_FUZZ_SCALE`` (a whole number >= 1, default 1)."""
    return ci_count * max(1, int(os.environ.get(SCALE_VARIABLE, "1")))
