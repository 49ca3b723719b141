"""``twinbridge mv calibrate-model`` and ``twinbridge mv add-bill``: calibration and the monthly cycle.

- ``mv calibrate-model --model IDF --weather EPW --params calibration.toml (--meter FILE | --bills CSV)
  [--holdout-months 3,9] [--registry DIR --role Baseline|Operational] --out DIR``: screening, search,
  calibration.json and plots in ``--out``; registers the calibrated model when ``--registry`` is given.
  Exit 0 when the calibration and hold-out periods pass Guideline 14, else 1.
- ``mv add-bill --registry DIR --bills CSV --weather EPW --log anomalies.sqlite --params calibration.toml``:
  checks every bill of the file not yet in the log against the Operational model (``monthly.py``).

``--model`` and ``--weather`` take ``ref:<name>`` for the reference buildings and weather files.
"""

from __future__ import annotations

import json
from pathlib import Path

from bridge.config import ConfigError, reference_model, reference_weather


def add_calibration_commands(sub) -> None:
    """Add ``calibrate-model`` and ``add-bill`` to the ``mv`` subparsers."""
    calibrate = sub.add_parser("calibrate-model", help="calibrate a model to meter data or bills (Guideline 14)")
    calibrate.add_argument("--model", required=True, help="IDF file, or ref:<reference building>")
    calibrate.add_argument("--weather", required=True, help="EPW of the metered period, or ref:<name>")
    calibrate.add_argument("--params", required=True, help="calibration TOML file (parameters, search settings)")
    data = calibrate.add_mutually_exclusive_group(required=True)
    data.add_argument("--meter", help="interval meter data: historian .sqlite or .csv (15-min or hourly)")
    data.add_argument("--bills", help="monthly bills CSV: start,end,kWh[,peak_kW][,gas_therm]")
    calibrate.add_argument("--column", default="FacilityPower", help="meter column (default FacilityPower)")
    calibrate.add_argument("--kind", choices=("power_kw", "energy_kwh"), default="power_kw")
    calibrate.add_argument("--building", help="building name in a historian file with several")
    calibrate.add_argument("--holdout-months", default="", help="months kept from the search, e.g. 3,9 (choose "
                           "them before looking at results)")
    calibrate.add_argument("--registry", help="register the calibrated model in this registry folder")
    calibrate.add_argument("--role", choices=("Baseline", "Operational"), default="Baseline")
    calibrate.add_argument("--out", default="calibration", help="output folder")
    calibrate.set_defaults(func=_calibrate_model)
    bill = sub.add_parser("add-bill", help="check new bills against the Operational model (monthly cycle)")
    bill.add_argument("--registry", required=True, help="registry folder holding the Operational model")
    bill.add_argument("--bills", required=True, help="bills CSV; bills already in the log are skipped")
    bill.add_argument("--weather", required=True, help="EPW of the billed period, or ref:<name>")
    bill.add_argument("--log", required=True, help="anomaly log SQLite file (created if missing)")
    bill.add_argument("--params", required=True, help="calibration TOML file ([monthly], recalibration parameters)")
    bill.add_argument("--out", default="recalibration", help="folder for a recalibration's outputs")
    bill.set_defaults(func=_add_bill)


def _file(value: str, lookup) -> Path:
    if value.startswith("ref:"):
        return lookup(value[4:])
    path = Path(value)
    if not path.is_file():
        raise ConfigError(f"{value}: file not found")
    return path


def _months(text: str) -> list[int]:
    from bridge.tracking.calibrate import CalibrationError

    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise CalibrationError(f"--holdout-months: expected month numbers like 3,9, got {text!r}") from None


def _calibrate_model(args) -> int:
    from bridge.epw import check_epw
    from bridge.tracking.calibrate import Target, calibrate, month_periods
    from bridge.tracking.calibration_output import refuse_frozen, register_calibrated, write_outputs
    from bridge.tracking.calibration_params import load_calibration_file
    from bridge.tracking.meterdata import load_bills, load_interval
    from bridge.tracking.registry import ModelRegistry
    from bridge.tracking.simulate import edited_idf

    model, weather = _file(args.model, reference_model), _file(args.weather, reference_weather)
    check_epw(weather)
    spec = load_calibration_file(args.params)
    edited_idf(model, spec.edits(spec.nominal()))  # every parameter's edit applies to this model
    registry = ModelRegistry(args.registry) if args.registry else None
    if registry is not None:
        refuse_frozen(registry, args.role)
    measured = load_interval(args.meter, args.column, args.kind, args.building) if args.meter else None
    bills = load_bills(args.bills) if args.bills else None
    probe = Target(hourly_kwh=measured, bills=bills)
    months = _months(args.holdout_months)
    holdout = [period for year in range(probe.start.year, probe.end.year + 1) for period in month_periods(year, months)]
    target = Target(hourly_kwh=measured, bills=bills, holdout=holdout)
    outcome = calibrate(model, weather, spec, target)
    paths = write_outputs(outcome, target, args.out)
    summary = {"values": outcome.values, "status": outcome.status, "calibration": outcome.calibration_metrics,
               "holdout": outcome.holdout_metrics, "simulations": outcome.simulations, "stopped": outcome.stopped}
    print(json.dumps(summary, indent=2, default=str))
    if registry is not None:
        version = register_calibrated(registry, args.role, model, weather, outcome, args.out)
        print(f"registered {version.role} {version.version} ({version.model_file})")
    print(f"calibration: {paths['json']}")
    return 0 if outcome.passes else 1


def _add_bill(args) -> int:
    from bridge.epw import check_epw
    from bridge.tracking.anomalies import AnomalyLog
    from bridge.tracking.calibration_params import load_calibration_file
    from bridge.tracking.meterdata import load_bills
    from bridge.tracking.monthly import MonthlyCycle, recalibrator, simulated_kwh
    from bridge.tracking.registry import ModelRegistry

    weather = _file(args.weather, reference_weather)
    check_epw(weather)
    spec = load_calibration_file(args.params)
    bills = load_bills(args.bills)
    registry = ModelRegistry(args.registry)
    log = AnomalyLog(args.log)
    try:
        tracked = {row["start"] for row in log.bills()}
        cycle = MonthlyCycle(registry, log, weather, spec.monthly.sustained_months,
                             simulated_kwh(spec.search.timesteps_per_hour),
                             recalibrator(registry, spec, weather, Path(args.out)) if spec.monthly.recalibrate else None)
        for bill in bills:
            if bill.start.isoformat() in tracked:
                continue
            check = cycle.add_bill(bill)
            note = f"; recalibration {check.recalibration}" if check.recalibration else ""
            print(f"{bill.start}..{bill.end}: measured {bill.kwh:.0f} kWh, Operational {check.model_version} "
                  f"predicted {check.predicted_kwh:.0f} kWh ({check.deviation_pct:+.1f} %): {check.severity}{note}")
    finally:
        log.close()
    return 0
