"""CSV controller: replays a trajectory of input values, by step or by linear interpolation.

The file (UTF-8, with or without the byte-order mark Excel's "CSV UTF-8" writes) has a ``time``
column (simulation calendar time, ISO 8601: ``2025-07-01 06:00`` or ``2025-07-01T06:00:00``),
strictly increasing, and one column per input tag of the building::

    time,CoolingSetpoint,HeatingSetpoint
    2025-07-01 00:00,27.0,16.0
    2025-07-01 06:00,24.0,21.0

``step``: the value of the last row at or before the time. ``linear``: interpolated between the
rows around the time. Before the first row the first row holds, after the last row the last.
Columns are checked against the browsed tags before the run (unknown or missing column, value
outside the tag's EURange); every error names the file, the row (line number) and the column.
"""

from __future__ import annotations

import bisect
import csv
import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bridge.names import repeated
from controllers.base import ControllerConfigError, InputRange

INTERPOLATIONS = ("step", "linear")
TIME_COLUMN = "time"


@dataclass(frozen=True)
class Trajectory:
    times: tuple[dt.datetime, ...]
    columns: dict[str, tuple[float, ...]]
    lines: tuple[int, ...]  # file line number of each row, for error messages
    interpolation: str = "step"
    path: str = ""

    def values_at(self, time: dt.datetime) -> dict[str, float]:
        """Input values at ``time`` (simulation calendar time)."""
        right = bisect.bisect_right(self.times, time)
        if right == 0:
            return {tag: values[0] for tag, values in self.columns.items()}
        left = right - 1
        if self.interpolation == "step" or right == len(self.times) or self.times[left] == time:
            return {tag: values[left] for tag, values in self.columns.items()}
        fraction = (time - self.times[left]) / (self.times[right] - self.times[left])
        return {tag: values[left] + (values[right] - values[left]) * fraction for tag, values in self.columns.items()}

    def check(self, inputs: Mapping[str, InputRange]) -> None:
        """Columns must be exactly the building's input tags; every value within its tag's EURange."""
        unknown = sorted(set(self.columns) - set(inputs))
        if unknown:
            raise ControllerConfigError(f"{self.path}: row 1 (header): column {unknown[0]!r} is not an input tag "
                                        f"of the building (inputs: {sorted(inputs)})")
        missing = sorted(set(inputs) - set(self.columns))
        if missing:
            raise ControllerConfigError(f"{self.path}: row 1 (header): no column for input tag {missing[0]!r} "
                                        f"(the file must give every input: {sorted(inputs)})")
        for tag, values in self.columns.items():
            limits = inputs[tag]
            for line, value in zip(self.lines, values):
                if not limits.contains(value):
                    raise ControllerConfigError(f"{self.path}: row {line}, column {tag!r}: {value:g} is outside the "
                                                f"tag's EURange [{limits.low:g}, {limits.high:g}] {limits.unit}")


class CsvController:
    """Writes the trajectory's values at every step; ignores the outputs."""

    def __init__(self, trajectory: Trajectory):
        self.trajectory = trajectory

    def check(self, inputs: Mapping[str, InputRange]) -> None:
        self.trajectory.check(inputs)

    def decide(self, sim_time: dt.datetime, outputs: Mapping[str, float]) -> dict[str, float]:
        return self.trajectory.values_at(sim_time)


def load_trajectory(path: str | Path, interpolation: str = "step") -> Trajectory:
    """Parse a trajectory file; raise ControllerConfigError naming the file, row and column of a problem."""
    path = Path(path)
    if interpolation not in INTERPOLATIONS:
        raise ControllerConfigError(f"interpolation must be one of {INTERPOLATIONS}, got {interpolation!r}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:  # -sig: Excel's "CSV UTF-8" starts with a BOM
            reader = csv.reader(handle)
            header = [name.strip() for name in next(reader, [])]
            rows = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    except FileNotFoundError:
        raise ControllerConfigError(f"{path}: trajectory file not found") from None
    except UnicodeDecodeError as exc:
        raise ControllerConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it as "
                                    f"CSV UTF-8") from None
    except csv.Error as exc:  # a NUL character, a field longer than the csv module takes
        raise ControllerConfigError(f"{path}: not a CSV file: {exc}") from None
    except (OSError, ValueError) as exc:  # a folder, no permission, a NUL in the path
        raise ControllerConfigError(f"{path!r}: cannot read the trajectory file: "
                                    f"{getattr(exc, 'strerror', None) or exc}") from None
    if TIME_COLUMN not in header:
        raise ControllerConfigError(f"{path}: row 1 (header): no {TIME_COLUMN!r} column (header is {header})")
    duplicates = repeated(header)
    if duplicates:
        raise ControllerConfigError(f"{path}: row 1 (header): column {duplicates[0]!r} appears more than once")
    if not rows:
        raise ControllerConfigError(f"{path}: no data rows")
    tags = [name for name in header if name != TIME_COLUMN]
    times: list[dt.datetime] = []
    columns: dict[str, list[float]] = {tag: [] for tag in tags}
    for line, row in rows:
        if len(row) != len(header):
            raise ControllerConfigError(f"{path}: row {line}: {len(row)} fields, the header has {len(header)}")
        cells = dict(zip(header, (cell.strip() for cell in row)))
        time = _time(cells[TIME_COLUMN], f"{path}: row {line}, column {TIME_COLUMN!r}")
        if times and time <= times[-1]:
            raise ControllerConfigError(f"{path}: row {line}, column {TIME_COLUMN!r}: {cells[TIME_COLUMN]!r} is not "
                                        f"after the previous row's time {times[-1]}")
        times.append(time)
        for tag in tags:
            columns[tag].append(_number(cells[tag], f"{path}: row {line}, column {tag!r}"))
    return Trajectory(tuple(times), {tag: tuple(v) for tag, v in columns.items()}, tuple(line for line, _ in rows),
                      interpolation, str(path))


def _time(text: str, where: str) -> dt.datetime:
    try:
        time = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ControllerConfigError(f"{where}: cannot read {text!r} as a time (use ISO 8601, "
                                    f"e.g. 2025-07-01 06:00)") from None
    if time.tzinfo is not None:
        raise ControllerConfigError(f"{where}: {text!r} has a time zone; simulation time has none")
    return time


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ControllerConfigError(f"{where}: cannot read {text!r} as a number") from None
    if not math.isfinite(value):
        raise ControllerConfigError(f"{where}: {text!r} is not a finite number")
    return value
