"""Run KPIs: the core BOPTEST key performance indicators, computed from a run's historian.

Definitions follow BOPTEST (Blum et al. 2021, "Building optimization testing framework (BOPTEST)
for simulation-based benchmarking of control strategies in buildings", Journal of Building
Performance Simulation 14(5)); docs/kpis.md gives each formula and how it maps to the historian.

Integration: a historian row holds, for step k, the outputs at the end of the step. EnergyPlus
reports zone-timestep averages for the rates the tag maps use, so each row's value is held over
its step ``[t - step_s, t]`` (rectangle rule); energy from the power tags then equals the energy
EnergyPlus reports. Prices and emission factors are taken at the start of each step.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bridge.historian import load_history
from bridge.tagmap import TagMap

DEFAULT_PRICE_USD_PER_KWH = 0.12  # placeholder flat tariff; pass the site's own
DEFAULT_EMISSIONS_KG_PER_KWH = 0.40  # placeholder grid factor; pass the site's own
PEAK_WINDOW_S = 900.0  # BOPTEST peak demand: 15-minute averages

Profile = float | Callable[[dt.datetime], float]  # $/kWh or kgCO2/kWh, constant or by time


@dataclass(frozen=True)
class TimeOfUse:
    """A rate by hour of day: ``periods`` of (start_hour, end_hour, rate), ``default`` elsewhere.
    With ``weekdays_only`` the periods apply Monday to Friday and weekends take the default."""

    periods: tuple[tuple[float, float, float], ...]
    default: float
    weekdays_only: bool = True

    def __call__(self, time: dt.datetime) -> float:
        if self.weekdays_only and time.weekday() >= 5:
            return self.default
        hour = time.hour + time.minute / 60 + time.second / 3600
        for start_h, end_h, rate in self.periods:
            if start_h <= hour < end_h:
                return rate
        return self.default

    def describe(self) -> dict:
        return {"kind": "time_of_use", "periods": [list(p) for p in self.periods], "default": self.default,
                "weekdays_only": self.weekdays_only}


def compute_kpis(historian_path: str | Path, tagmaps: Mapping[str, TagMap],
                 price: Profile = DEFAULT_PRICE_USD_PER_KWH, emissions: Profile = DEFAULT_EMISSIONS_KG_PER_KWH,
                 wall_time_s: float | None = None) -> dict:
    """KPIs of every building in ``tagmaps`` (keyed by building name) and of the campus as a whole.

    ``price`` in $/kWh and ``emissions`` in kgCO2/kWh: a number or a callable of the (simulation)
    time, e.g. ``TimeOfUse``. ``wall_time_s``: measured wall seconds of the run (controllers plus
    exchange plus simulation), for the computational time ratio; None leaves the ratio out.
    Per-m2 values are None when a tag map has no ``floor_area_m2``; a KPI whose tags (role or
    comfort band) are absent from the tag map is None.
    """
    if not tagmaps:
        raise ValueError(f"{historian_path}: no buildings given to compute KPIs for")
    series = {name: _BuildingSeries.load(historian_path, name, tagmap) for name, tagmap in tagmaps.items()}
    buildings = {name: s.kpis(price, emissions) for name, s in series.items()}
    campus = _campus_kpis(list(series.values()), price, emissions)
    longest = max(series.values(), key=lambda s: len(s.end_s))
    simulated_s = float(longest.durations_s.sum())
    campus["time_ratio"] = wall_time_s / simulated_s if wall_time_s is not None and simulated_s > 0 else None
    return {
        "reference": "BOPTEST core KPIs (Blum et al. 2021, J. Building Performance Simulation 14(5)); docs/kpis.md",
        "historian": str(historian_path),
        "period": {"start": longest.starts[0].isoformat(), "end": longest.ends[-1].isoformat(),
                   "steps": len(longest.ends), "step_s": float(longest.durations_s[0]), "simulated_s": simulated_s},
        "price_usd_per_kwh": _describe(price),
        "emissions_kgco2_per_kwh": _describe(emissions),
        "wall_time_s": wall_time_s,
        "campus": campus,
        "buildings": buildings,
    }


def summary(campus: Mapping) -> str:
    """One log line of a campus's KPIs; a KPI the run could not compute (None: e.g. no complete
    15-minute window for the peak) shows as n/a, not as 0."""
    shown = lambda key, form: "n/a" if campus.get(key) is None else format(campus[key], form)
    return (f"energy {shown('energy_total_kwh', '.1f')} kWh, peak {shown('peak_electric_kw', '.1f')} kW, "
            f"discomfort {shown('thermal_discomfort_kh_per_zone', '.2f')} K.h/zone, "
            f"time ratio {shown('time_ratio', '.2g')}")


def write_kpis_json(path: str | Path, kpis: Mapping) -> Path:
    """Write ``compute_kpis`` output as JSON (NaN written as null); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(kpis), indent=2) + "\n")
    return path


@dataclass(frozen=True)
class _BuildingSeries:
    """One building's historian rows as arrays: step intervals, powers (kW) and zone temperatures (degC)."""

    name: str
    floor_area_m2: float | None
    starts: list[dt.datetime]
    ends: list[dt.datetime]
    end_s: np.ndarray  # simulation seconds at the end of each step
    durations_s: np.ndarray
    electric_kw: np.ndarray | None
    hvac_kw: np.ndarray | None
    zones: dict[str, tuple[np.ndarray, tuple[float, float]]]

    @classmethod
    def load(cls, historian_path: str | Path, name: str, tagmap: TagMap) -> "_BuildingSeries":
        frame = load_history(historian_path, name)
        if frame.empty:
            raise ValueError(f"{historian_path}: building {name!r} has no recorded steps")
        end_s = frame["sim_time_s"].to_numpy(float)
        step_s = float(np.median(end_s / frame["step"].to_numpy(float)))
        ends = [t.to_pydatetime() for t in frame.index]
        return cls(name, tagmap.floor_area_m2, [t - dt.timedelta(seconds=step_s) for t in ends], ends, end_s,
                   np.full(len(frame), step_s), _power(frame, tagmap, "electric_power"),
                   _power(frame, tagmap, "hvac_electric_power"),
                   {o.tag: (frame[o.tag].to_numpy(float), o.comfort) for o in tagmap.outputs if o.comfort})

    def kpis(self, price: Profile, emissions: Profile) -> dict:
        hours = self.durations_s / 3600.0
        discomfort = {zone: float(np.nansum(_deviation_k(temp, band) * hours))
                      for zone, (temp, band) in self.zones.items()}
        values = {
            "floor_area_m2": self.floor_area_m2,
            "thermal_discomfort_kh_per_zone": sum(discomfort.values()) / len(discomfort) if discomfort else None,
            "thermal_discomfort_kh": discomfort,
            **_energy_kpis(self.electric_kw, self.hvac_kw, self.starts, self.end_s, self.durations_s, price, emissions),
        }
        return _per_m2(values, self.floor_area_m2)


def _campus_kpis(series: list[_BuildingSeries], price: Profile, emissions: Profile) -> dict:
    """Campus KPIs: discomfort averaged over all zones; energy, peak, cost, emissions of the summed power."""
    longest = max(series, key=lambda s: len(s.end_s))  # a building that faulted early has fewer rows
    zone_kh = [float(np.nansum(_deviation_k(t, band) * s.durations_s / 3600.0))
               for s in series for t, band in s.zones.values()]
    electric = _sum_aligned(series, "electric_kw", longest.end_s)
    hvac = _sum_aligned(series, "hvac_kw", longest.end_s)
    areas = [s.floor_area_m2 for s in series]
    area = sum(areas) if all(areas) else None
    values = {
        "floor_area_m2": area,
        "thermal_discomfort_kh_per_zone": sum(zone_kh) / len(zone_kh) if zone_kh else None,
        **_energy_kpis(electric, hvac, longest.starts, longest.end_s, longest.durations_s, price, emissions),
    }
    return _per_m2(values, area)


def _energy_kpis(electric_kw: np.ndarray | None, hvac_kw: np.ndarray | None, starts: list[dt.datetime],
                 end_s: np.ndarray, durations_s: np.ndarray, price: Profile, emissions: Profile) -> dict:
    hours = durations_s / 3600.0
    values: dict[str, float | None] = {"energy_hvac_kwh": float(np.nansum(hvac_kw * hours)) if hvac_kw is not None
                                       else None}
    if electric_kw is None:
        return values | {"energy_total_kwh": None, "peak_electric_kw": None, "cost_usd": None, "emissions_kgco2": None}
    energy_kwh = electric_kw * hours
    return values | {
        "energy_total_kwh": float(np.nansum(energy_kwh)),
        "peak_electric_kw": peak_demand_kw(electric_kw, end_s, durations_s),
        "cost_usd": float(np.nansum(energy_kwh * _rates(price, starts))),
        "emissions_kgco2": float(np.nansum(energy_kwh * _rates(emissions, starts))),
    }


def peak_demand_kw(power_kw: np.ndarray, end_s: np.ndarray, durations_s: np.ndarray,
                   window_s: float = PEAK_WINDOW_S) -> float | None:
    """Highest average power over clock-aligned windows of ``window_s`` (0:00-0:15, 0:15-0:30, ...),
    each step's power held over its interval; None when the run is shorter than one window."""
    starts_s = end_s - durations_s
    edges = np.concatenate([[starts_s[0]], end_s])
    cumulative_kws = np.concatenate([[0.0], np.cumsum(np.nan_to_num(power_kw) * durations_s)])
    first = math.ceil(edges[0] / window_s - 1e-9) * window_s
    windows = np.arange(first, edges[-1] - window_s + 1e-6, window_s)
    if len(windows) == 0:
        return None
    energy = np.interp(windows + window_s, edges, cumulative_kws) - np.interp(windows, edges, cumulative_kws)
    return float(np.max(energy / window_s))


def _power(frame: pd.DataFrame, tagmap: TagMap, role: str) -> np.ndarray | None:
    """Sum of the power tags (kW) with ``role``; None when the tag map has none."""
    tags = [o.tag for o in tagmap.outputs if o.role == role]
    if not tags:
        return None
    return frame[tags].sum(axis=1, min_count=1).to_numpy(float)


def _sum_aligned(series: list[_BuildingSeries], field: str, end_s: np.ndarray) -> np.ndarray | None:
    arrays = [(s.end_s, getattr(s, field)) for s in series if getattr(s, field) is not None]
    if not arrays:
        return None
    total = pd.concat([pd.Series(v, index=t) for t, v in arrays], axis=1).sum(axis=1, min_count=1)
    return total.reindex(end_s).to_numpy(float)


def _deviation_k(temp_c: np.ndarray, band: tuple[float, float]) -> np.ndarray:
    """Kelvin outside the comfort band [low, high] (0 inside)."""
    low, high = band
    return np.maximum(0.0, np.maximum(temp_c - high, low - temp_c))


def _rates(profile: Profile, starts: list[dt.datetime]) -> np.ndarray:
    if callable(profile):
        return np.array([profile(t) for t in starts], float)
    return np.full(len(starts), float(profile))


def _per_m2(values: dict, area_m2: float | None) -> dict:
    """Add ``<kpi>_per_m2`` for the extensive KPIs (BOPTEST normalises by floor area)."""
    for key in ("energy_total_kwh", "energy_hvac_kwh", "peak_electric_kw", "cost_usd", "emissions_kgco2"):
        value = values.get(key)
        values[f"{key}_per_m2"] = value / area_m2 if value is not None and area_m2 else None
    return values


def _describe(profile: Profile) -> float | dict | str:
    if isinstance(profile, TimeOfUse):
        return profile.describe()
    return float(profile) if not callable(profile) else getattr(profile, "__name__", "callable")


def _clean(value):
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(value) else float(value)
    return value
