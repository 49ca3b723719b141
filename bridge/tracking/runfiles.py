"""The data files of a run that tracking and M&V read: a historian SQLite file or a CSV whose first column is
the time (local standard time, or times with UTC offsets across a daylight-saving change), one or several
files of one period (``load_runs``)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import numpy as np
import pandas as pd

from bridge.errors import TwinbridgeError


class RunFileError(TwinbridgeError, ValueError):
    """A data file ``load_run`` cannot read; the message names the file."""


UNIT_SUFFIX = re.compile(r" \[[^\]]*\]$")  # "FacilityPower [kW]": a column of `twinbridge export`


def load_run(path: str | Path, building: str | None = None) -> pd.DataFrame:
    """A run's rows indexed by time: a historian SQLite file or a CSV whose first column is the time (``_times``);
    a column named with its unit (``twinbridge export``) is read under the tag's name."""
    path = Path(path)
    if path.suffix.lower() in (".sqlite", ".db", ".sqlite3"):
        from bridge.historian import load_history

        return load_history(path, building)
    if path.suffix.lower() == ".csv":
        try:
            frame = pd.read_csv(path, index_col=0)
        except ValueError as exc:  # not CSV text (pandas' parser and decoding errors are ValueErrors)
            raise RunFileError(f"{path}: {exc}") from None
        frame.index = _times(frame.index, path) if len(frame) else pd.DatetimeIndex([], name=frame.index.name)
        return frame.rename(columns=lambda column: UNIT_SUFFIX.sub("", str(column)))
    raise RunFileError(f"{path}: expected a historian .sqlite/.db file or a .csv file")


def load_runs(paths: list[str | Path], building: str | None = None) -> pd.DataFrame:
    """Several data files of one period (``load_run`` each) as one run in time order. A time in two files with the
    same values is kept once; with different values it is an error naming both files."""
    frames = [(path, load_run(path, building)) for path in paths]
    frames = [(path, frame) for path, frame in frames if len(frame)] or frames[:1]  # a header-only file adds nothing
    if len(frames) == 1:
        return frames[0][1]
    stamped = pd.concat([frame.assign(_file=str(path)) for path, frame in frames]).sort_index(kind="stable")
    repeated = stamped[stamped.index.duplicated(keep=False)]
    if not repeated.empty:
        values = repeated.drop(columns="_file")
        clash = values.groupby(level=0).nunique(dropna=False).gt(1).any(axis=1)
        if clash.any():
            time = clash.index[clash.to_numpy()][0]
            files = sorted(set(repeated.loc[[time], "_file"]))
            raise RunFileError(f"{' and '.join(files)}: time {time} appears with different values")
    return stamped[~stamped.index.duplicated(keep="first")].drop(columns="_file")


def require_column(frame: pd.DataFrame, column: str, what: str, paths: list[str] | str) -> pd.Series:
    """A column of loaded data files, or an error naming the files, the option and the columns they have."""
    if column not in frame.columns:
        names = paths if isinstance(paths, str) else ", ".join(str(p) for p in paths)
        raise RunFileError(f"{names}: no column {column!r} ({what}); the data have {list(frame.columns)}")
    return frame[column]


def _times(column: pd.Index, path: Path) -> pd.DatetimeIndex:
    """A CSV's first column in the twin's time base: the building's local standard time, without offset.
    Times with UTC offsets (a meter's export) are converted when the file crosses a daylight-saving change:
    of its two offsets, one hour apart, the smaller is standard time. One offset throughout could be either:
    an error, as is a file mixing times with and without an offset."""
    if not pd.api.types.is_string_dtype(column):
        raise RunFileError(f"{path}: first column must be times, got {column[:1].tolist()}")
    try:
        times = pd.to_datetime(column, errors="coerce")
    except ValueError:  # several UTC offsets: pandas will not choose one
        times = pd.to_datetime(column, utc=True, errors="coerce")
    bad = np.flatnonzero(pd.isna(times))
    if bad.size:
        raise RunFileError(f"{path}: data row {bad[0] + 1}: first column must be times (all with or all without "
                           f"a UTC offset), got {column[bad[0]]!r}")
    if times.tz is None:
        return times
    offsets = sorted({pd.Timestamp(text).utcoffset() for text in column})
    if len(offsets) != 2 or offsets[1] - offsets[0] != dt.timedelta(hours=1):
        hours = ", ".join(f"{offset / dt.timedelta(hours=1):+g} h" for offset in offsets)
        raise RunFileError(f"{path}: times with UTC offsets {hours} do not tell the building's standard time, the "
                           f"twin's time base (only a file across a daylight-saving change does): give local standard "
                           f"time without an offset")
    return (times.tz_convert("UTC") + offsets[0]).tz_localize(None)
