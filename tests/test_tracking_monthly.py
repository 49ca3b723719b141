"""The monthly cycle: a year of bills with a fault from mid-July raises a warning in July, alerts from August,
and proposes a recalibration after three deviating bills (September), none before; a configured recalibration
registers the next Operational version; the frozen Baseline is never used nor recalibrated. The year uses
precomputed monthly predictions; one test runs the real engine through ``twinbridge mv add-bill``."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from bridge.config import reference_model, reference_weather
from bridge.tracking.anomalies import AnomalyLog
from bridge.tracking.meterdata import Bill
from bridge.tracking.monthly import MonthlyCycle
from bridge.tracking.registry import ModelRegistry, RegistryError
from tests.conftest import run_cli

YEAR = 2025
PREDICTED = {month: 4000.0 + 300 * abs(month - 7) for month in range(1, 13)}  # the Operational model's months (kWh)
FAULT_PCT = 15.0  # plug loads and more, from July 16


def year_of_bills() -> list[Bill]:
    """Calendar-month bills: the prediction (+ 1 % of meter noise, alternating) until July 15, then + 15 %."""
    bills = []
    for month in range(1, 13):
        start = dt.date(YEAR, month, 1)
        end = dt.date(YEAR + (month == 12), month % 12 + 1, 1) - dt.timedelta(days=1)
        days = (end - start).days + 1
        faulted_days = 0 if month < 7 else days - 15 if month == 7 else days
        kwh = PREDICTED[month] * (1 + (-1) ** month * 0.01 + FAULT_PCT / 100 * faulted_days / days)
        bills.append(Bill(start, end, kwh, None, None, month + 1))
    return bills


def registry_with_operational(folder: Path, frozen_baseline: bool = True) -> ModelRegistry:
    registry = ModelRegistry(folder)
    model, weather = reference_model("small_office"), reference_weather("usa_il_chicago")
    registry.register("Baseline", model, weather)
    if frozen_baseline:
        registry.freeze()
    registry.register("Operational", model, weather)
    return registry


def predictor(model: Path, weather: Path, bill: Bill) -> float:
    return PREDICTED[bill.start.month]


def test_fault_from_july_warns_then_alerts_then_proposes_a_recalibration(tmp_path):
    registry = registry_with_operational(tmp_path / "reg")
    log = AnomalyLog(tmp_path / "anomalies.sqlite")
    cycle = MonthlyCycle(registry, log, reference_weather("usa_il_chicago"), sustained_months=3, predictor=predictor)
    checks = [cycle.add_bill(bill) for bill in year_of_bills()]
    assert [c.severity for c in checks] == ["ok"] * 6 + ["warning"] + ["alert"] * 5
    assert [c.recalibration for c in checks] == [""] * 8 + ["proposed"] + [""] * 3  # September, once
    assert checks[6].deviation_pct == pytest.approx(100 * (1.0 - 0.01 + 0.15 * 16 / 31) - 100, abs=0.01)
    anomalies = log.rows()
    assert [(a.time[:10], a.severity, a.granularity) for a in anomalies[:2]] == [
        ("2025-08-01", "warning", "monthly"), ("2025-09-01", "alert", "monthly")]
    assert len(anomalies) == 6 and len(log.bills()) == 12
    assert [row["recalibration"] for row in log.bills()][8] == "proposed"
    assert [v.role for v in registry.versions] == ["Baseline", "Operational"]  # proposed, not run
    with pytest.raises(Exception, match="already tracked"):
        cycle.add_bill(year_of_bills()[0])


def test_configured_recalibration_registers_the_next_operational_version(tmp_path):
    registry = registry_with_operational(tmp_path / "reg")
    calls: list[list[Bill]] = []

    def recalibrate(bills):
        calls.append(list(bills))
        return registry.register("Operational", registry.model_path(registry.current("Operational")),
                                 reference_weather("usa_il_chicago")).version

    def recalibrated_predictor(model: Path, weather: Path, bill: Bill) -> float:  # version 1.1.0 has learnt the fault
        return PREDICTED[bill.start.month] * (1 + FAULT_PCT / 100 if model.name == "operational-1.1.0.idf" else 1)

    log = AnomalyLog(tmp_path / "anomalies.sqlite")
    cycle = MonthlyCycle(registry, log, reference_weather("usa_il_chicago"), 3, recalibrated_predictor, recalibrate)
    checks = [cycle.add_bill(bill) for bill in year_of_bills()]
    assert [c.recalibration for c in checks][8] == "registered Operational 1.1.0"
    assert [b.start.month for b in calls[0]] == [7, 8, 9] and len(calls) == 1
    assert [(c.model_version, c.severity) for c in checks[9:]] == [("1.1.0", "ok")] * 3  # against the new version
    baseline = registry.current("Baseline")
    assert baseline.status == "frozen" and baseline.version == "1.0.0"


def test_frozen_baseline_alone_is_not_tracked_nor_recalibrated(tmp_path):
    registry = ModelRegistry(tmp_path / "reg")
    registry.register("Baseline", reference_model("small_office"), reference_weather("usa_il_chicago"))
    registry.freeze()
    cycle = MonthlyCycle(registry, AnomalyLog(tmp_path / "a.sqlite"), reference_weather("usa_il_chicago"),
                         predictor=predictor)
    with pytest.raises(RegistryError, match=r"no Operational model .*\(the frozen Baseline never changes\)"):
        cycle.add_bill(year_of_bills()[0])


@pytest.mark.engine
def test_add_bill_runs_the_operational_model_with_energyplus(tmp_path):
    """Two 3-day bills through the command line: the first as the model predicts it, the second 20 % higher than
    the same days of a 6-day run (its own 3-day run, warmed up on Jul 4, differs by a few %)."""
    registry_with_operational(tmp_path / "reg")
    from bridge.tracking.simulate import Run, simulate

    model, weather = reference_model("small_office"), reference_weather("usa_il_chicago")
    week = simulate(Run(model, weather, dt.date(2025, 7, 1), dt.date(2025, 7, 6), (), 1))
    first, second = float(week[:"2025-07-03"].sum()), float(week["2025-07-04":].sum())
    bills = tmp_path / "bills.csv"
    bills.write_text(f"start,end,kWh\n2025-07-01,2025-07-03,{first:.3f}\n2025-07-04,2025-07-06,{second * 1.2:.3f}\n")
    params = tmp_path / "calibration.toml"
    params.write_text('[[parameter]]\nname = "plugs"\nedit = "scale_equipment"\nlow = 0.5\nhigh = 1.5\n'
                      '[search]\ntimesteps_per_hour = 1\n[monthly]\nsustained_months = 1\n')
    done = run_cli("mv", "add-bill", "--registry", str(tmp_path / "reg"), "--bills", str(bills), "--weather",
                   "ref:usa_il_chicago", "--log", str(tmp_path / "log.sqlite"), "--params", str(params))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    deviations = [float(line.split("(")[1].split(" %")[0]) for line in lines]
    assert lines[0].endswith("): ok") and abs(deviations[0]) < 1.0
    assert lines[1].endswith("): alert; recalibration proposed") and 14.0 < deviations[1] < 26.0
    again = run_cli("mv", "add-bill", "--registry", str(tmp_path / "reg"), "--bills", str(bills), "--weather",
                    "ref:usa_il_chicago", "--log", str(tmp_path / "log.sqlite"), "--params", str(params))
    assert again.returncode == 0 and again.stdout == ""  # both bills already tracked
