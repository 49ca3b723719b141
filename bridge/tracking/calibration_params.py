"""The calibration file (TOML): the parameters a calibration may vary, how it searches, the monthly cycle.

Each ``[[parameter]]`` is a named model edit of ``faults.EDITS`` with one numeric argument varied over a
range; a calibrated model is the IDF plus the list of edits at the found values (``Parameters.edits``),
applied with ``faults.apply_edit`` like a fault or an ECM::

    [[parameter]]
    name = "plug_loads"              # unique; reported under this name
    edit = "scale_equipment"         # a faults.EDITS edit
    argument = "factor"              # the argument varied (default "factor")
    low = 0.5
    high = 1.5
    nominal = 1.0                    # the uncalibrated model's value (default: the middle of the range)
    fixed = { }                      # the edit's other arguments, e.g. { name = "CLGSETP_SCH", values = "max" }

    [search]                         # all optional
    workers = 2                      # EnergyPlus runs at a time
    morris_trajectories = 4          # Morris screening: trajectories * (parameters + 1) runs
    screening_threshold_pct = 1.0    # a parameter moving no aggregate by this much is not identifiable
    max_simulations = 120            # the whole search's budget, screening included
    stop_fraction = 0.33             # stop once CV(RMSE) and |NMBE| are below this fraction of Guideline 14's limits
    timesteps_per_hour = 4

    [monthly]                        # the monthly bill cycle (monthly.py)
    sustained_months = 3             # consecutive bills at >= 5 % deviation before a recalibration is proposed
    recalibrate = false              # true: run it and register the next Operational version

Any problem (unknown key, a range with low >= high, a nominal outside it, an unknown edit or argument)
is a ``CalibrationFileError`` naming the file and the key.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from pathlib import Path

from bridge.errors import TwinbridgeError
from bridge.names import repeated
from bridge.tomlfile import Table, read_toml
from bridge.tracking.faults import EDITS


class CalibrationFileError(TwinbridgeError, ValueError):
    """A calibration file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Parameter:
    """One calibration parameter: ``edit`` with ``argument`` in [low, high] (``fixed``: its other arguments)."""

    name: str
    edit: str
    argument: str
    low: float
    high: float
    nominal: float
    fixed: dict = field(default_factory=dict)

    def edit_at(self, value: float) -> dict:
        """The ``apply_edit`` dict of this parameter at ``value``."""
        return {"edit": self.edit, **self.fixed, self.argument: float(value)}

    def to_unit(self, value: float) -> float:
        return (value - self.low) / (self.high - self.low)

    def from_unit(self, unit: float) -> float:
        return self.low + unit * (self.high - self.low)


@dataclass(frozen=True)
class SearchSettings:
    workers: int = 2
    morris_trajectories: int = 4
    screening_threshold_pct: float = 1.0
    max_simulations: int = 120
    stop_fraction: float = 0.33
    timesteps_per_hour: int = 4
    seed: int = 1


@dataclass(frozen=True)
class MonthlySettings:
    sustained_months: int = 3
    recalibrate: bool = False


@dataclass(frozen=True)
class CalibrationFile:
    path: Path
    parameters: tuple[Parameter, ...]
    search: SearchSettings = SearchSettings()
    monthly: MonthlySettings = MonthlySettings()

    def edits(self, values: dict[str, float]) -> list[dict]:
        """The model edits at ``values`` (parameter name -> value); a parameter not given is at its nominal."""
        return [p.edit_at(values.get(p.name, p.nominal)) for p in self.parameters]

    def nominal(self) -> dict[str, float]:
        return {p.name: p.nominal for p in self.parameters}


def load_calibration_file(path: str | Path) -> CalibrationFile:
    """Read and check a calibration file (see the module docstring)."""
    path = Path(path)
    root = Table(read_toml(path, CalibrationFileError, "calibration file"), str(path), CalibrationFileError)
    root.check_keys(("parameter", "search", "monthly"))
    parameters = tuple(_parameter(entry) for entry in root.tables("parameter"))
    if not parameters:
        raise CalibrationFileError(f"{path}: no [[parameter]] tables: a calibration needs at least one parameter")
    names = [p.name for p in parameters]
    duplicates = repeated(names)
    if duplicates:
        raise CalibrationFileError(f"{path}: parameter names must be unique, repeated: {duplicates}")
    return CalibrationFile(path, parameters, _search(root.table("search")), _monthly(root.table("monthly")))


def _parameter(entry: Table) -> Parameter:
    entry.check_keys(("name", "edit", "argument", "low", "high", "nominal", "fixed"))
    name, edit = entry.text("name"), entry.text("edit")
    where = f"{entry.where} ({name})"
    if edit not in EDITS:
        raise CalibrationFileError(f"{where}: unknown edit {edit!r}; known: {sorted(EDITS)}")
    argument = entry.text("argument", "factor")
    accepted = set(inspect.signature(EDITS[edit]).parameters) - {"idf", "start"}
    fixed = entry.values.get("fixed", {})
    if not isinstance(fixed, dict):
        raise CalibrationFileError(f"{where}: 'fixed' must be a table of the edit's other arguments, got {fixed!r}")
    for key in (argument, *fixed):
        if key not in accepted:
            raise CalibrationFileError(f"{where}: edit {edit!r} takes no argument {key!r} (it takes {sorted(accepted)})")
    if argument in fixed:
        raise CalibrationFileError(f"{where}: {argument!r} is the varied argument and cannot also be fixed")
    low, high = entry.number("low"), entry.number("high")
    if not low < high:
        raise CalibrationFileError(f"{where}: 'low' ({low}) must be below 'high' ({high})")
    nominal = entry.number("nominal", (low + high) / 2)
    if not low <= nominal <= high:
        raise CalibrationFileError(f"{where}: 'nominal' ({nominal}) must be within [low, high] = [{low}, {high}]")
    return Parameter(name, edit, argument, low, high, nominal, dict(fixed))


def _search(table: Table) -> SearchSettings:
    defaults = SearchSettings()
    table.check_keys(("workers", "morris_trajectories", "screening_threshold_pct", "max_simulations",
                      "stop_fraction", "timesteps_per_hour", "seed"))
    settings = SearchSettings(
        workers=table.integer("workers", defaults.workers),
        morris_trajectories=table.integer("morris_trajectories", defaults.morris_trajectories),
        screening_threshold_pct=table.number("screening_threshold_pct", defaults.screening_threshold_pct),
        max_simulations=table.integer("max_simulations", defaults.max_simulations),
        stop_fraction=table.number("stop_fraction", defaults.stop_fraction),
        timesteps_per_hour=table.integer("timesteps_per_hour", defaults.timesteps_per_hour),
        seed=table.integer("seed", defaults.seed))
    for key, value, ok in (("workers", settings.workers, settings.workers >= 1),
                           ("morris_trajectories", settings.morris_trajectories, settings.morris_trajectories >= 2),
                           ("screening_threshold_pct", settings.screening_threshold_pct,
                            settings.screening_threshold_pct >= 0),
                           ("max_simulations", settings.max_simulations, settings.max_simulations >= 1),
                           ("stop_fraction", settings.stop_fraction, 0 < settings.stop_fraction <= 1),
                           ("timesteps_per_hour", settings.timesteps_per_hour,
                            settings.timesteps_per_hour in (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60))):
        if not ok:
            raise CalibrationFileError(f"{table.where}: {key!r} out of range, got {value!r}")
    return settings


def _monthly(table: Table) -> MonthlySettings:
    table.check_keys(("sustained_months", "recalibrate"))
    settings = MonthlySettings(table.integer("sustained_months", 3), table.flag("recalibrate", False))
    if settings.sustained_months < 1:
        raise CalibrationFileError(f"{table.where}: 'sustained_months' must be >= 1, got {settings.sustained_months}")
    return settings
