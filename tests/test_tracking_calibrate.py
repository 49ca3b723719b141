"""Calibration search: a synthetic truth with secret parameter changes and noise, calibrated from the nominal
model, passes Guideline 14 on hold-out data, recovers the changed parameters and reports a no-effect
parameter unidentifiable. Fast versions with a stand-in simulator, then one with EnergyPlus."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bridge.config import reference_model, reference_weather
from bridge.tracking.calibrate import Target, calibrate, month_periods
from bridge.tracking.calibration_output import register_calibrated, write_outputs
from bridge.tracking.calibration_params import load_calibration_file
from bridge.tracking.registry import FrozenModelError, ModelRegistry
from bridge.tracking.scenario import monthly_bills, noisy
from bridge.tracking.simulate import Run, simulate
from tests.conftest import run_cli

PARAMETERS = """
[[parameter]]
name = "lighting"
edit = "scale_lighting"
low = 0.5
high = 1.5
nominal = 1.0

[[parameter]]
name = "plug_loads"
edit = "scale_equipment"
low = 0.5
high = 1.5
nominal = 1.0

[[parameter]]
name = "heating_setback"
edit = "offset_schedule"
argument = "delta"
low = -3.0
high = 3.0
nominal = 0.0
fixed = { name = "HTGSETP_SCH", values = "min" }

[search]
morris_trajectories = 2
max_simulations = {budget}
stop_fraction = 0.1
timesteps_per_hour = 1
"""
SECRET = {"lighting": 0.8, "plug_loads": 1.25, "heating_setback": 0.0}
TOLERANCE = 0.05  # absolute, on factors whose range is 1.0 wide: 5 % of the range


def spec_file(tmp_path: Path, budget: int = 30):
    path = tmp_path / "calibration.toml"
    path.write_text(PARAMETERS.replace("{budget}", str(budget)))
    return load_calibration_file(path)


class StandIn:
    """A simulator without EnergyPlus: hourly energy = base + lighting factor * a lighting profile + plug factor
    * a plug profile (the heating setback does nothing), over the run's days."""

    def __init__(self) -> None:
        self.runs = 0

    def __call__(self, runs, workers):
        self.runs += len(runs)
        return [self.series(run) for run in runs]

    @staticmethod
    def series(run: Run) -> pd.Series:
        index = pd.date_range(str(run.start), str(run.end + dt.timedelta(days=1)), freq="h", inclusive="left")
        hour, weekday = index.hour.to_numpy(), index.day_of_week.to_numpy() < 5
        lights = np.where(weekday & (hour >= 7) & (hour < 19), 8.0, 1.0)
        plugs = np.where(weekday & (hour >= 8) & (hour < 18), 6.0, 3.0)
        factors = {e["edit"]: e.get("factor", 1.0) for e in run.edits}
        seasonal = 2 + np.sin(2 * np.pi * index.day_of_year.to_numpy() / 365)
        return pd.Series(seasonal + factors.get("scale_lighting", 1.0) * lights + factors.get("scale_equipment", 1.0) * plugs,
                         index=index)


def test_calibration_to_hourly_data_recovers_secret_and_flags_no_effect_parameter(tmp_path):
    spec = spec_file(tmp_path)
    truth = StandIn.series(Run(Path("m.idf"), Path("w.epw"), dt.date(2025, 1, 1), dt.date(2025, 4, 30),
                               tuple(spec.edits(SECRET))))
    target = Target(hourly_kwh=noisy(truth, 3, seed=1), holdout=month_periods(2025, [2, 4]))
    simulator = StandIn()
    outcome = calibrate(Path("m.idf"), Path("w.epw"), spec, target, simulator)
    assert outcome.status["heating_setback"].startswith("unidentifiable") and outcome.values["heating_setback"] == 0.0
    assert outcome.status["lighting"] == outcome.status["plug_loads"] == "calibrated"
    for name in ("lighting", "plug_loads"):
        assert outcome.values[name] == pytest.approx(SECRET[name], abs=TOLERANCE)
    assert outcome.passes and outcome.holdout_metrics["monthly"]["cv_rmse_pct"] <= 5.0
    assert abs(outcome.holdout_metrics["monthly"]["nmbe_pct"]) <= 2.0
    assert outcome.simulations == simulator.runs <= 30 and outcome.first_pass["monthly"]["simulations"] >= 1
    paths = write_outputs(outcome, target, tmp_path / "out")
    assert all(path.stat().st_size > 0 for path in paths.values())


def test_bills_cannot_separate_lighting_from_plug_loads(tmp_path):
    """Monthly totals move with lighting and plug loads alike: the fit passes, and says the split is not known."""
    spec = spec_file(tmp_path)
    truth = StandIn.series(Run(Path("m.idf"), Path("w.epw"), dt.date(2025, 1, 1), dt.date(2025, 12, 31),
                               tuple(spec.edits(SECRET))))
    target = Target(bills=monthly_bills(noisy(truth, 2, seed=2)), holdout=month_periods(2025, [3, 8]))
    outcome = calibrate(Path("m.idf"), Path("w.epw"), spec, target, StandIn())
    assert meets_monthly(outcome.calibration_metrics) and meets_monthly(outcome.holdout_metrics)
    assert any(outcome.status[name].startswith("poorly constrained") for name in ("lighting", "plug_loads"))
    assert outcome.status["heating_setback"].startswith("unidentifiable")


def meets_monthly(metrics: dict) -> bool:
    return metrics["monthly"]["passes"] and "hourly" not in metrics


def test_frozen_baseline_is_never_recalibrated(tmp_path):
    model = reference_model("small_office")
    registry = ModelRegistry(tmp_path / "reg")
    registry.register("Baseline", model, reference_weather("usa_il_chicago"))
    registry.freeze()
    spec = spec_file(tmp_path)
    target = Target(hourly_kwh=StandIn.series(Run(model, model, dt.date(2025, 1, 1), dt.date(2025, 1, 31))))
    outcome = calibrate(model, model, spec, target, StandIn())
    with pytest.raises(FrozenModelError, match="cannot calibrate the Baseline"):
        register_calibrated(registry, "Baseline", model, reference_weather("usa_il_chicago"), outcome, tmp_path / "o")
    assert len(registry.versions) == 1
    # the command line refuses before any simulation
    params = tmp_path / "calibration.toml"
    meter = tmp_path / "meter.csv"
    meter.write_text("time,FacilityPower\n2025-07-01 01:00,1\n2025-07-01 02:00,1\n")
    done = run_cli("mv", "calibrate-model", "--model", "ref:small_office", "--weather", "ref:usa_il_chicago",
                   "--params", str(params), "--meter", str(meter), "--registry", str(tmp_path / "reg"),
                   "--role", "Baseline", "--out", str(tmp_path / "cli"))
    assert done.returncode == 2 and "cannot calibrate the Baseline" in done.stderr
    assert not (tmp_path / "cli").exists()


@pytest.mark.engine
def test_energyplus_calibration_of_the_small_office(tmp_path):
    """Two July weeks of hourly data (the second held out) from the Small Office with lighting x 0.8 and plug
    loads x 1.25 and 3 % noise; calibrated from the nominal model at one timestep per hour."""
    model, weather = reference_model("small_office"), reference_weather("usa_il_chicago")
    spec = spec_file(tmp_path, budget=24)
    truth = simulate(Run(model, weather, dt.date(2025, 7, 1), dt.date(2025, 7, 10), tuple(spec.edits(SECRET)), 1))
    target = Target(hourly_kwh=noisy(truth, 3, seed=1), holdout=[(dt.date(2025, 7, 8), dt.date(2025, 7, 10))])
    outcome = calibrate(model, weather, spec, target)
    assert outcome.status["heating_setback"].startswith("unidentifiable")
    for name in ("lighting", "plug_loads"):
        assert outcome.values[name] == pytest.approx(SECRET[name], abs=TOLERANCE), outcome.to_dict()
    assert outcome.holdout_metrics["hourly"]["passes"] and outcome.holdout_metrics["hourly"]["cv_rmse_pct"] < 6
    registry = ModelRegistry(tmp_path / "reg")
    version = register_calibrated(registry, "Baseline", model, weather, outcome, tmp_path / "out")
    assert version.calibration["values"] == outcome.values and version.calibration["edits"] == outcome.edits


def test_a_simulation_that_does_not_finish_in_time_is_killed_and_named():
    """Every calibration run has a time limit: EnergyPlus past it is killed, an EngineFault names the run."""
    from bridge.engines.base import EngineFault

    run = Run(reference_model("small_office"), reference_weather("usa_il_chicago"), dt.date(2025, 1, 1),
              dt.date(2025, 1, 31))
    with pytest.raises(EngineFault, match=r"EnergyPlus did not finish .* within 0.5 s"):
        simulate(run, timeout_s=0.5)
