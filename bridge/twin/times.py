"""Times of the twin's historian time base (local standard time, without a UTC offset): parsing them from
the command line and settings, and naming a frame's span in messages."""

from __future__ import annotations

import pandas as pd

from bridge.twin.errors import ModelError


def parse_time(value: pd.Timestamp | str, what: str) -> pd.Timestamp:
    """``value`` (a time or ISO text) as a time of the historian's time base, local standard time
    without a UTC offset; ModelError naming ``what`` for anything else."""
    try:
        time = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        time = pd.NaT
    if pd.isna(time):
        raise ModelError(f"{what}: expected a time (ISO, for example 2025-07-22 or 2025-07-22T06:00), got {value!r}")
    if time.tzinfo is not None:
        raise ModelError(f"{what}: {value!r} has a UTC offset; give the historian's local standard time without one")
    return time


def span(frame: pd.DataFrame) -> str:
    """The time span of ``frame``'s rows, for messages."""
    return f"{frame.index[0]} .. {frame.index[-1]}, {len(frame)} rows" if len(frame) else "no rows"
