"""ECM scenario through real bridge runs: LED retrofit (lighting power halved) recorded in the registry,
savings reported against the frozen Baseline and checked against the two runs' historians."""

import datetime as dt
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from bridge.cli import main
from bridge.config import load_config
from bridge.historian import load_history
from bridge.tracking.runfiles import RunFileError, load_run
from bridge.tracking.registry import ModelRegistry
from bridge.tracking.scenario import write_campus
from conftest import REPO, SIMS, run_bridge

PRE = (dt.date(2025, 7, 22), dt.date(2025, 7, 24))  # pre-retrofit (metered) period
REPORTING = (dt.date(2025, 7, 25), dt.date(2025, 7, 27))
LED = {"edit": "scale_lighting", "factor": 0.5}


def fast_run(tmp_path, name: str, model, reference, period) -> object:
    campus = write_campus(tmp_path / f"{name}.toml", name, {"SmallOffice": model}, reference, *period)
    with run_bridge(campus, tmp_path, "--clock", "fast", keep_serving=False) as bridge:
        assert bridge.wait(timeout_s=240) == 0, bridge.log
        return bridge.historian()


def test_led_retrofit_recorded_and_savings_match_the_runs_within_uncertainty(tmp_path):
    reference = load_config(SIMS / "small_office.toml").buildings[0]
    registry = ModelRegistry(tmp_path / "registry")
    registry.register("Baseline", reference.model, reference.weather)
    registry.freeze()
    registry.register("Actual", reference.model, reference.weather)
    actual = registry.record_ecm("LED retrofit", REPORTING[0].isoformat(), [LED])
    assert (actual.version, actual.ecm["name"], actual.ecm["edits"]) == ("1.1.0", "LED retrofit", [LED])
    assert ModelRegistry(tmp_path / "registry").current("Actual").version == "1.1.0"  # persisted
    baseline = registry.current("Baseline")
    registry.verify("Baseline")

    base_pre = fast_run(tmp_path, "BasePre", registry.model_path(baseline), reference, PRE)
    base_reporting = fast_run(tmp_path, "BaseReporting", registry.model_path(baseline), reference, REPORTING)
    measured = fast_run(tmp_path, "Actual", registry.model_path(actual), reference, REPORTING)
    # Pre-retrofit "meter": the Baseline's own run with 3 % meter noise (the calibration it was frozen on).
    meter = load_history(base_pre, "SmallOffice")[["FacilityPower"]]
    meter["FacilityPower"] *= 1 + np.random.default_rng(3).normal(0, 0.03, len(meter))
    meter.to_csv(tmp_path / "pre_meter.csv", index_label="time")

    out = tmp_path / "report"
    subprocess.run([sys.executable, "-m", "bridge.cli", "mv", "report", "--method", "simulation",
                    "--baseline-run", str(base_reporting), "--measured", str(measured),
                    "--baseline-measured", str(tmp_path / "pre_meter.csv"), "--baseline-predicted", str(base_pre),
                    "--out", str(out)], cwd=REPO, check=True, capture_output=True, timeout=120)
    report = json.loads((out / "savings.json").read_text())
    assert (out / "report.md").is_file() and (out / "cumulative_savings.png").is_file()

    # Directly from the historians, with the energy meter tag (not the power tag the report integrates).
    direct_kwh = (load_history(base_reporting, "SmallOffice")["ElectricityEnergy"].sum()
                  - load_history(measured, "SmallOffice")["ElectricityEnergy"].sum())
    assert direct_kwh > 0
    assert report["avoided_uncertainty_kwh"] > 0
    assert report["avoided_kwh"] == pytest.approx(direct_kwh, abs=report["avoided_uncertainty_kwh"])
    assert 0.05 < report["savings_fraction"] < 0.5  # lighting is a part of the load, not all of it


def test_mv_commands_report_unreadable_data_in_one_line(tmp_path, capsys):
    meter = tmp_path / "meter.txt"
    meter.write_text("time,FacilityPower\n")
    assert main(["mv", "calibrate", "--measured", str(meter), "--predicted", str(meter)]) == 2
    assert capsys.readouterr().err == (f"twinbridge: error: {meter}: expected a historian .sqlite/.db file "
                                        "or a .csv file\n")


def test_meter_csv_with_utc_offsets_across_dst_is_read_in_local_standard_time(tmp_path):
    meter = tmp_path / "meter.csv"
    times = ["2025-11-01 23:00:00-05:00", "2025-11-02 01:00:00-05:00", "2025-11-02 01:00:00-06:00",
             "2025-11-02 02:00:00-06:00"]  # Chicago: daylight-saving time ends at 02:00 CDT
    meter.write_text("time,FacilityPower\n" + "".join(f"{t},{i}\n" for i, t in enumerate(times)), encoding="utf-8-sig")
    frame = load_run(meter)
    assert frame.index.tolist() == [pd.Timestamp(t) for t in ("2025-11-01 22:00", "2025-11-02 00:00",
                                                               "2025-11-02 01:00", "2025-11-02 02:00")]
    assert frame.columns.tolist() == ["FacilityPower"] and frame.index.name == "time"
    for rows, message in [(times[:2], "times with UTC offsets -5 h do not tell the building's standard time"),
                          (["2025-07-01 00:10:00", "noon"], "data row 2: first column must be times")]:
        meter.write_text("time,FacilityPower\n" + "".join(f"{t},1\n" for t in rows))
        with pytest.raises(RunFileError, match=f"{meter}: {message}"):
            load_run(meter)
