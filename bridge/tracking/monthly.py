"""The monthly cycle of the Operational model: each new bill is checked against it.

For a bill (``meterdata.Bill``) the current **Operational** model runs over the bill's period with the
weather of that period (``simulate``); the deviation ``100 (measured - predicted) / predicted`` is
classified with the tracking thresholds (``deviation.Thresholds``: < 5 % ok, 5-10 % warning, >= 10 %
alert), stored as a row of the anomaly log's ``bills`` table (the tracking record) and, when warning
or alert, as an anomaly (granularity "monthly"). When the last ``sustained_months`` bills all deviate
by 5 % or more (a sustained deviation), a recalibration is proposed, once per such run of bills; with
``recalibrate = true`` it is run on those bills (``calibrate``, the Operational model as the starting
point) and registers the next Operational version. The frozen Baseline is never touched: with no
Operational model registered the cycle refuses to start.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bridge.tracking.anomalies import AnomalyLog
from bridge.tracking.calibration_params import CalibrationFile
from bridge.tracking.deviation import Alert, Thresholds, deviation_pct
from bridge.tracking.meterdata import Bill
from bridge.tracking.registry import ModelRegistry, RegistryError
from bridge.tracking.simulate import Run, simulate

SIGNAL = "Electricity:Facility (bills)"
Predictor = Callable[[Path, Path, Bill], float]  # (model, weather, bill) -> predicted kWh
Recalibrator = Callable[[Sequence[Bill]], str]  # bills of the sustained deviation -> registered version


@dataclass(frozen=True)
class BillCheck:
    bill: Bill
    predicted_kwh: float
    deviation_pct: float
    severity: str  # "ok", "warning" or "alert"
    model_version: str
    recalibration: str  # "", "proposed" or "registered Operational X.Y.Z"


def simulated_kwh(timesteps_per_hour: int = 4) -> Predictor:
    """A predictor running EnergyPlus over the bill's days (its facility electricity, kWh)."""
    def predict(model: Path, weather: Path, bill: Bill) -> float:
        return float(simulate(Run(model, weather, bill.start, bill.end, (), timesteps_per_hour)).sum())
    return predict


class MonthlyCycle:
    """Checks bills against the registry's current Operational model (module docstring)."""

    def __init__(self, registry: ModelRegistry, log: AnomalyLog, weather: Path, sustained_months: int = 3,
                 predictor: Predictor | None = None, recalibrator: Recalibrator | None = None,
                 thresholds: Thresholds | None = None):
        self.registry, self.log, self.weather = registry, log, Path(weather)
        self.sustained_months, self.thresholds = sustained_months, thresholds or Thresholds()
        self.predictor = predictor or simulated_kwh()
        self.recalibrator = recalibrator

    def add_bill(self, bill: Bill) -> BillCheck:
        operational = self.registry.current("Operational")
        if operational is None:
            raise RegistryError(f"no Operational model in {self.registry.folder}: the monthly cycle runs and "
                                "recalibrates the Operational model only (the frozen Baseline never changes); "
                                "register one first")
        predicted = self.predictor(self.registry.model_path(operational), self.weather, bill)
        deviation = deviation_pct(predicted, bill.kwh)
        severity = self.thresholds.level(deviation).name.lower()
        row = {"start": bill.start.isoformat(), "end": bill.end.isoformat(), "measured_kwh": bill.kwh,
               "predicted_kwh": predicted, "deviation_pct": deviation, "severity": severity,
               "model_version": operational.version, "recalibration": ""}
        self.log.record_bill(row)
        if severity != "ok":
            self.log.record(Alert(dt.datetime.combine(bill.end, dt.time()) + dt.timedelta(days=1), SIGNAL, "monthly",
                                  severity, True, predicted, bill.kwh, bill.kwh - predicted, deviation,
                                  f"bill {bill.start}..{bill.end}: {deviation:+.1f} % against Operational "
                                  f"{operational.version}"))
        streak = self._streak()
        recalibration = ""
        if len(streak) == self.sustained_months:
            recalibration = "proposed"
            if self.recalibrator is not None:
                recalibration = f"registered Operational {self.recalibrator(streak)}"
            self.log.set_bill_recalibration(row["start"], recalibration)
        return BillCheck(bill, predicted, deviation, severity, operational.version, recalibration)

    def _streak(self) -> list[Bill]:
        """The latest run of consecutive bills at >= the warning threshold, against the current version."""
        streak: list[Bill] = []
        for row in reversed(self.log.bills()):
            if row["severity"] == "ok" or row["recalibration"].startswith("registered"):
                break
            streak.insert(0, Bill(dt.date.fromisoformat(row["start"]), dt.date.fromisoformat(row["end"]),
                                  row["measured_kwh"]))
        return streak


def recalibrator(registry: ModelRegistry, spec: CalibrationFile, weather: Path, folder: Path) -> Recalibrator:
    """Recalibrate the current Operational model to the bills of a sustained deviation and register the next
    Operational version (``calibrate``; no hold-out: the run of bills is short)."""
    def run(bills: Sequence[Bill]) -> str:
        from bridge.tracking.calibrate import Target, calibrate
        from bridge.tracking.calibration_output import register_calibrated, write_outputs

        current = registry.current("Operational")
        assert current is not None
        model = registry.model_path(current)
        target = Target(bills=list(bills))
        outcome = calibrate(model, weather, spec, target)
        out = folder / f"recalibration-{bills[0].start}"
        write_outputs(outcome, target, out)
        return register_calibrated(registry, "Operational", model, weather, outcome, out,
                                   notes=f"recalibrated to bills {bills[0].start}..{bills[-1].end}").version
    return run

