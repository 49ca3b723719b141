"""Run KPIs from a run's historian: facility-level figures, and BOPTEST's core KPIs under their own names.

BOPTEST: Blum et al. 2021, "Building optimization testing framework (BOPTEST) for simulation-based
benchmarking of control strategies in buildings", Journal of Building Performance Simulation 14(5),
and its ``kpis/kpi_calculator.py``. The facility-level figures (``energy_total_kwh``, ``peak_electric_kw``,
``thermal_discomfort_kh_per_zone``, ...) take whole-facility electricity and one fixed comfort band per
zone; BOPTEST's (``BoptestKpi``: ``tdis_tot``, ``ener_tot``, ...) take HVAC equipment and every fuel,
time-varying occupied/unoccupied bands over every zone, and a price and an emission factor per energy
vector. docs/kpis.md gives each formula, how it maps to the historian and every remaining difference.

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
from bridge.protocol import BoptestKpi
from bridge.tagmap import TagMap

DEFAULT_PRICE_USD_PER_KWH = 0.12  # placeholder flat tariff; pass the site's own
DEFAULT_EMISSIONS_KG_PER_KWH = 0.40  # placeholder grid factor; pass the site's own
DEFAULT_GAS_PRICE_USD_PER_KWH = 0.024  # BOPTEST multizone_office_complex_air (Chicago), PriceGasPower
DEFAULT_GAS_EMISSIONS_KG_PER_KWH = 0.18108  # the same test case's EmissionsGasPower
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


@dataclass(frozen=True)
class Tariffs:
    """Price ($/kWh) and emission factor (kgCO2/kWh) of each energy vector: a number or a callable of the
    (simulation) time, e.g. ``TimeOfUse``. BOPTEST prices every vector; its electricity price scenario
    (constant, dynamic, highly dynamic) is the kind of ``electricity_price`` (``price_scenario``)."""

    electricity_price: Profile = DEFAULT_PRICE_USD_PER_KWH
    electricity_emissions: Profile = DEFAULT_EMISSIONS_KG_PER_KWH
    gas_price: Profile = DEFAULT_GAS_PRICE_USD_PER_KWH
    gas_emissions: Profile = DEFAULT_GAS_EMISSIONS_KG_PER_KWH

    @property
    def price_scenario(self) -> str:
        """BOPTEST's name for the electricity price: constant (a number), dynamic (time of use), highly_dynamic."""
        if not callable(self.electricity_price):
            return "constant"
        return "dynamic" if isinstance(self.electricity_price, TimeOfUse) else "highly_dynamic"


def compute_kpis(historian_path: str | Path, tagmaps: Mapping[str, TagMap],
                 price: Profile = DEFAULT_PRICE_USD_PER_KWH, emissions: Profile = DEFAULT_EMISSIONS_KG_PER_KWH,
                 wall_time_s: float | None = None, gas_price: Profile = DEFAULT_GAS_PRICE_USD_PER_KWH,
                 gas_emissions: Profile = DEFAULT_GAS_EMISSIONS_KG_PER_KWH, time_rat: float | None = None) -> dict:
    """KPIs of every building in ``tagmaps`` (keyed by building name) and of the campus as a whole.

    ``price`` and ``gas_price`` in $/kWh, ``emissions`` and ``gas_emissions`` in kgCO2/kWh: a number or
    a callable of the (simulation) time, e.g. ``TimeOfUse``. ``wall_time_s``: measured wall seconds of
    the run (controllers plus exchange plus simulation), for twinbridge's time ratio; None leaves it
    out. ``time_rat``: BOPTEST's time ratio as the controller measured it (``LoopReport.time_rat``):
    the bridge cannot tell a controller's time from the network's; None leaves it out.
    Per-m2 values are None when a tag map has no ``floor_area_m2``; a KPI whose tags (role or
    comfort band) are absent from the tag map is None.
    """
    if not tagmaps:
        raise ValueError(f"{historian_path}: no buildings given to compute KPIs for")
    tariffs = Tariffs(price, emissions, gas_price, gas_emissions)
    series = {name: _BuildingSeries.load(historian_path, name, tagmap) for name, tagmap in tagmaps.items()}
    buildings = {name: s.kpis(tariffs) for name, s in series.items()}
    campus = _campus_kpis(list(series.values()), tariffs)
    longest = max(series.values(), key=lambda s: len(s.end_s))
    simulated_s = float(longest.durations_s.sum())
    campus["time_ratio"] = wall_time_s / simulated_s if wall_time_s is not None and simulated_s > 0 else None
    for values in (campus, *buildings.values()):
        values[BoptestKpi.TIME_RAT] = time_rat
    return {
        "reference": "BOPTEST core KPIs (Blum et al. 2021, J. Building Performance Simulation 14(5)); docs/kpis.md",
        "historian": str(historian_path),
        "period": {"start": longest.starts[0].isoformat(), "end": longest.ends[-1].isoformat(),
                   "steps": len(longest.ends), "step_s": float(longest.durations_s[0]), "simulated_s": simulated_s},
        "price_usd_per_kwh": _describe(price),
        "emissions_kgco2_per_kwh": _describe(emissions),
        "gas_price_usd_per_kwh": _describe(gas_price),
        "gas_emissions_kgco2_per_kwh": _describe(gas_emissions),
        "price_scenario": tariffs.price_scenario,
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
            f"time ratio {shown('time_ratio', '.2g')}; BOPTEST {BoptestKpi.TDIS_TOT} "
            f"{shown(BoptestKpi.TDIS_TOT, '.2f')} K.h/zone, {BoptestKpi.ENER_TOT} {shown(BoptestKpi.ENER_TOT, '.3f')} "
            f"kWh/m2, {BoptestKpi.PELE_TOT} {shown(BoptestKpi.PELE_TOT, '.4f')} kW/m2")


def write_kpis_json(path: str | Path, kpis: Mapping) -> Path:
    """Write ``compute_kpis`` output as JSON (NaN written as null); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(kpis), indent=2) + "\n")
    return path


@dataclass(frozen=True)
class _BuildingSeries:
    """One building's historian rows as arrays: step intervals, powers (kW) and zone temperatures (degC):
    ``zones`` those with a fixed band, ``banded`` BOPTEST's (temperature, lower, upper limit at each step),
    ``unbanded`` the zone temperatures without BOPTEST's bands."""

    name: str
    floor_area_m2: float | None
    starts: list[dt.datetime]
    ends: list[dt.datetime]
    end_s: np.ndarray  # simulation seconds at the end of each step
    durations_s: np.ndarray
    electric_kw: np.ndarray | None
    hvac_kw: np.ndarray | None
    gas_kw: np.ndarray | None
    zones: dict[str, tuple[np.ndarray, tuple[float, float]]]
    banded: dict[str, tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]]
    unbanded: tuple[str, ...]

    @classmethod
    def load(cls, historian_path: str | Path, name: str, tagmap: TagMap) -> "_BuildingSeries":
        frame = load_history(historian_path, name)
        if frame.empty:
            raise ValueError(f"{historian_path}: building {name!r} has no recorded steps")
        end_s = frame["sim_time_s"].to_numpy(float)
        step_s = float(np.median(end_s / frame["step"].to_numpy(float)))
        ends = [t.to_pydatetime() for t in frame.index]
        starts = [t - dt.timedelta(seconds=step_s) for t in ends]
        zones = [o for o in tagmap.outputs if o.role == "zone_temperature" or o.bands]
        return cls(name, tagmap.floor_area_m2, starts, ends, end_s,
                   np.full(len(frame), step_s), _power(frame, tagmap, "electric_power"),
                   _power(frame, tagmap, "hvac_electric_power"), _power(frame, tagmap, "hvac_gas_power"),
                   {o.tag: (frame[o.tag].to_numpy(float), o.comfort) for o in tagmap.outputs if o.comfort},
                   {o.tag: (frame[o.tag].to_numpy(float), o.bands.limits(starts)) for o in zones if o.bands},
                   tuple(o.tag for o in zones if not o.bands))

    def kpis(self, tariffs: Tariffs) -> dict:
        hours = self.durations_s / 3600.0
        discomfort = {zone: float(np.nansum(_deviation_k(temp, band) * hours))
                      for zone, (temp, band) in self.zones.items()}
        values = {
            "floor_area_m2": self.floor_area_m2,
            "thermal_discomfort_kh_per_zone": sum(discomfort.values()) / len(discomfort) if discomfort else None,
            "thermal_discomfort_kh": discomfort,
            **_energy_kpis(self.electric_kw, self.hvac_kw, self.starts, self.end_s, self.durations_s,
                           tariffs.electricity_price, tariffs.electricity_emissions),
        }
        return _per_m2(values, self.floor_area_m2) | _boptest_kpis([self], self, tariffs, self.floor_area_m2)

    def boptest_discomfort_kh(self) -> dict[str, float]:
        """K.h outside BOPTEST's occupied/unoccupied band of each banded zone."""
        hours = self.durations_s / 3600.0
        return {zone: float(np.nansum(_deviation_k(temp, limits) * hours)) for zone, (temp, limits) in self.banded.items()}


def _campus_kpis(series: list[_BuildingSeries], tariffs: Tariffs) -> dict:
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
        **_energy_kpis(electric, hvac, longest.starts, longest.end_s, longest.durations_s,
                       tariffs.electricity_price, tariffs.electricity_emissions),
    }
    return _per_m2(values, area) | _boptest_kpis(series, longest, tariffs, area)


def _boptest_kpis(series: list[_BuildingSeries], longest: _BuildingSeries, tariffs: Tariffs,
                  area_m2: float | None) -> dict:
    """BOPTEST's core KPIs of ``series`` (one building, or a campus's buildings summed on ``longest``'s steps).

    tdis_tot: K.h outside each zone's occupied/unoccupied band, summed over zones, divided by the number of
    zones (None unless every zone temperature has BOPTEST's bands). ener_tot, cost_tot, emis_tot: the HVAC
    electric and gas powers integrated over the run, each vector at its own price and emission factor, per
    m2 of floor. pele_tot, pgas_tot: the highest clock-aligned 15-minute mean of each vector, per m2.
    pdih_tot and idis_tot: None (no district heating, no CO2 outputs). Per-zone figures in ``tdis_kh``;
    the zones left out of tdis_tot in ``tdis_unbanded_zones``.
    """
    zones = {f"{s.name}.{zone}" if len(series) > 1 else zone: kh
             for s in series for zone, kh in s.boptest_discomfort_kh().items()}
    unbanded = [f"{s.name}.{zone}" if len(series) > 1 else zone for s in series for zone in s.unbanded]
    values: dict = {BoptestKpi.TDIS_TOT: sum(zones.values()) / len(zones) if zones and not unbanded else None,
                    BoptestKpi.IDIS_TOT: None, BoptestKpi.PDIH_TOT: None}
    hvac = _sum_aligned(series, "hvac_kw", longest.end_s)
    gas = _sum_aligned(series, "gas_kw", longest.end_s)
    vectors = [(power, price, factor) for power, price, factor in (
        (hvac, tariffs.electricity_price, tariffs.electricity_emissions),
        (gas, tariffs.gas_price, tariffs.gas_emissions)) if power is not None]
    hours = longest.durations_s / 3600.0
    per_m2 = (lambda value: None if value is None else value / area_m2) if area_m2 and hvac is not None else (
        lambda value: None)
    peak = lambda power: None if power is None else peak_demand_kw(power, longest.end_s, longest.durations_s)
    energy = [np.nan_to_num(power) * hours for power, _, _ in vectors]
    values |= {
        BoptestKpi.ENER_TOT: per_m2(sum(float(e.sum()) for e in energy)),
        BoptestKpi.COST_TOT: per_m2(sum(float(np.sum(e * _rates(price, longest.starts)))
                                        for e, (_, price, _) in zip(energy, vectors))),
        BoptestKpi.EMIS_TOT: per_m2(sum(float(np.sum(e * _rates(factor, longest.starts)))
                                        for e, (_, _, factor) in zip(energy, vectors))),
        BoptestKpi.PELE_TOT: per_m2(peak(hvac)),
        BoptestKpi.PGAS_TOT: per_m2(peak(gas)),
        "energy_hvac_gas_kwh": None if gas is None else float(np.nansum(gas * hours)),
        "tdis_kh": zones,
        "tdis_unbanded_zones": unbanded,
    }
    return values


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


def _deviation_k(temp_c: np.ndarray, band: tuple[float | np.ndarray, float | np.ndarray]) -> np.ndarray:
    """Kelvin outside the comfort band [low, high] (0 inside); low and high fixed or one per step."""
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
