"""Command-line subcommands of tracking and M&V, registered on the twinbridge parser.

``add_tracking_commands(subparsers)`` adds:

- ``track run CONFIG``: compare a live building with its twin over OPC UA (tracking TOML file);
  ``track anomalies DB`` lists the anomaly log and each pair's latest calibration view;
  ``track investigate DB ID --note``.
- ``registry --dir DIR {list,show,register,freeze,record-ecm,history}``: the model registry.
- ``mv calibrate``: Guideline 14 CV(RMSE)/NMBE of a model run against meter data.
- ``mv report``: avoided energy (calibrated simulation, TOWT regression or a CalTRACK 2.0 method) as JSON, CSV,
  Markdown+PNG; the meter data of a period may come in several files (a year per file, ...).
- ``mv calibrate-model`` and ``mv add-bill``: calibration and the monthly cycle (``calibration_cli``).

Data files are historian SQLite files (``.sqlite``/``.db``, choose the building with ``--building``)
or CSV files whose first column is the time (local standard time; see ``runfiles.load_run`` for UTC offsets).
Every command sets ``func`` (as bridge/cli.py dispatches: ``args.func(args)``), returning an exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
from pathlib import Path

from bridge.errors import TwinbridgeError
from bridge.tracking.anomalies import AnomalyLog
from bridge.tracking.caltrack import METHODS as CALTRACK_METHODS
from bridge.tracking.caltrack_data import BaselineDisqualified, Sufficiency, sufficiency_flags
from bridge.tracking.guideline14 import calibration
from bridge.tracking.registry import ROLES, ModelRegistry
from bridge.tracking.runfiles import load_run, load_runs, require_column
from bridge.tracking.savings import (
    BaselineFit,
    TowtModel,
    avoided_energy,
    hourly_energy_kwh,
    hourly_mean,
    simulated_baseline,
)


class MvOptionError(TwinbridgeError, ValueError):
    """An ``mv`` command's options that do not go together; the message names the missing option."""


def add_tracking_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``track``, ``registry`` and ``mv`` on the main parser's subparsers."""
    for add in (_add_track, _add_registry, _add_mv):
        add(subparsers)


# --- track -------------------------------------------------------------------------------------
def _add_track(subparsers) -> argparse.ArgumentParser:
    track = subparsers.add_parser("track", help="compare a live building with its twin; anomaly log",
                                  description="Track deviation between a live building and its twin (docs/tracking.md).")
    sub = track.add_subparsers(dest="track_command", required=True)
    run = sub.add_parser("run", help="subscribe to live and twin over OPC UA and raise alerts")
    run.add_argument("config", help="tracking TOML file")
    run.add_argument("--duration", type=float, help="stop after this many seconds (default: run until Ctrl-C)")
    run.add_argument("--step-s", type=float, help="twin step length in s (default: from the twin timestamps)")
    run.set_defaults(func=_track_run)
    anomalies = sub.add_parser("anomalies", help="list the anomaly log")
    anomalies.add_argument("db", help="anomaly log SQLite file")
    anomalies.add_argument("--open", action="store_true", help="only rows not yet investigated")
    anomalies.set_defaults(func=_track_anomalies)
    investigate = sub.add_parser("investigate", help="mark an anomaly investigated")
    investigate.add_argument("db", help="anomaly log SQLite file")
    investigate.add_argument("id", type=int, help="anomaly id (see 'track anomalies')")
    investigate.add_argument("--note", default="", help="what was found")
    investigate.set_defaults(func=_track_investigate)
    return track


def _track_run(args) -> int:
    from bridge.tracking.config import load_tracking_config
    from bridge.tracking.live import LiveLink, default_sinks
    from bridge.tracking.sinks import calibration_text

    config = load_tracking_config(args.config)
    step = dt.timedelta(seconds=args.step_s) if args.step_s else None
    link = LiveLink(config, default_sinks(config), step)
    try:
        asyncio.run(link.run(args.duration))
    except KeyboardInterrupt:
        pass
    for name, tracker in link.trackers.items():
        print(f"{name}: compared {tracker.compared} steps, {tracker.gaps} gaps, state {tracker.state.name.lower()}, "
              f"latest deviation {json.dumps({k: round(v, 2) for k, v in tracker.latest_pct.items()})}")
        view = link.calibrations[name].latest
        if view is not None:
            print(f"  {calibration_text(view)}")
    return 0


def _track_anomalies(args) -> int:
    from bridge.tracking.sinks import calibration_text

    anomaly_log = AnomalyLog(args.db, "ro")
    for row in anomaly_log.rows(open_only=args.open):
        flag = "investigated" if row.investigated else "OPEN"
        deviation = "n/a" if row.deviation_pct is None else f"{row.deviation_pct:+.1f} %"  # a stale-data alarm has none
        print(f"{row.id:5d} {row.time} {row.signal}/{row.granularity} {row.severity:7s} "
              f"predicted {row.predicted} actual {row.actual} ({deviation}) {flag} {row.note or ''}")
    views = anomaly_log.latest_calibration()
    if views:
        print("latest calibration view (hourly, Guideline 14, rolling window):")
    for view in views:
        print(f"  {view.time} {calibration_text(view)}")
    return 0


def _track_investigate(args) -> int:
    AnomalyLog(args.db, "rw").mark_investigated(args.id, args.note)
    print(f"anomaly {args.id} marked investigated")
    return 0


# --- registry ----------------------------------------------------------------------------------
def _add_registry(subparsers) -> argparse.ArgumentParser:
    registry = subparsers.add_parser("registry", help="Baseline / Operational / Actual model versions",
                                     description="Model registry (JSON file + read-only model copies).")
    registry.add_argument("--dir", default="registry", help="registry folder (default: ./registry)")
    sub = registry.add_subparsers(dest="registry_command", required=True)
    sub.add_parser("list", help="current version of every role").set_defaults(func=_registry_list)
    show = sub.add_parser("show", help="every field of a role's current version")
    show.add_argument("role", choices=ROLES)
    show.set_defaults(func=_registry_show)
    register = sub.add_parser("register", help="register a new version of a role from a model file")
    register.add_argument("role", choices=ROLES)
    register.add_argument("model", help="IDF file (copied into the registry)")
    register.add_argument("weather", help="EPW file")
    register.add_argument("--version", help="default: 1.0.0, or the next minor version")
    register.add_argument("--calibration", help="JSON file of calibration metrics (e.g. from 'mv calibrate --json')")
    register.add_argument("--notes", default="")
    register.set_defaults(func=_registry_register)
    sub.add_parser("freeze", help="freeze the Baseline (irreversible)").set_defaults(func=_registry_freeze)
    ecm = sub.add_parser("record-ecm", help="apply an ECM to the Actual model: next minor version")
    ecm.add_argument("name", help="ECM name, e.g. 'LED retrofit'")
    ecm.add_argument("date", help="implementation date YYYY-MM-DD")
    ecm.add_argument("--edit", action="append", required=True, type=json.loads,
                     help='model edit as JSON, repeatable: \'{"edit": "scale_lighting", "factor": 0.5}\'')
    ecm.add_argument("--notes", default="")
    ecm.set_defaults(func=_registry_record_ecm)
    history = sub.add_parser("history", help="registry events, oldest first")
    history.add_argument("role", nargs="?", choices=ROLES)
    history.set_defaults(func=_registry_history)
    return registry


def _registry_list(args) -> int:
    registry = ModelRegistry(args.dir)
    for role in ROLES:
        v = registry.current(role)
        print(f"{role:12s} " + ("(none)" if v is None else f"{v.version:8s} {v.status:10s} {v.model_file}"
                                + (f"  ECM: {v.ecm['name']} ({v.ecm['date']})" if v.ecm else "")))
    return 0


def _registry_show(args) -> int:
    version = ModelRegistry(args.dir).current(args.role)
    print(json.dumps(None if version is None else version.__dict__, indent=2, default=str))
    return 0


def _registry_register(args) -> int:
    metrics = json.loads(Path(args.calibration).read_text()) if args.calibration else None
    v = ModelRegistry(args.dir).register(args.role, args.model, args.weather, args.version, metrics, notes=args.notes)
    print(f"registered {v.role} {v.version} ({v.model_file})")
    return 0


def _registry_freeze(args) -> int:
    v = ModelRegistry(args.dir).freeze()
    print(f"Baseline {v.version} frozen at {v.frozen_at}")
    return 0


def _registry_record_ecm(args) -> int:
    v = ModelRegistry(args.dir).record_ecm(args.name, args.date, args.edit, args.notes)
    print(f"Actual {v.version}: ECM {args.name!r} on {args.date} ({v.model_file})")
    return 0


def _registry_history(args) -> int:
    for event in ModelRegistry(args.dir).history(args.role):
        print(f"{event['time']} {event['action']:10s} {event['role']} {event['version']}  {event['detail']}")
    return 0


# --- mv ----------------------------------------------------------------------------------------
def _add_mv(subparsers) -> argparse.ArgumentParser:
    mv = subparsers.add_parser("mv", help="measurement & verification: calibration and savings reports",
                               description="ASHRAE Guideline 14 calibration and savings (docs/tracking.md).")
    sub = mv.add_subparsers(dest="mv_command", required=True)
    calibrate = sub.add_parser("calibrate", help="Guideline 14 CV(RMSE) and NMBE of a model run against meter data")
    _data_arguments(calibrate)
    calibrate.add_argument("--predicted", required=True, help="the model's run over the metered period")
    calibrate.add_argument("--json", help="also write the results to this JSON file")
    calibrate.set_defaults(func=_mv_calibrate)
    report = sub.add_parser("report", help="avoided energy with uncertainty: JSON, CSV, Markdown + PNG")
    _data_arguments(report, several=True)
    report.add_argument("--method", choices=("simulation", "towt", *CALTRACK_METHODS), default="simulation",
                        help="caltrack-*: CalTRACK 2.0 hourly, daily or billing (calendar-month bills of the meter "
                        "data) methods with their data-sufficiency rules (docs/tracking.md)")
    report.add_argument("--baseline-run", help="simulation: the frozen Baseline run with the reporting weather")
    report.add_argument("--baseline-measured", nargs="+", metavar="FILE",
                        help="towt, caltrack-*: pre-retrofit meter data (energy and temperature), one or more files; "
                        "simulation: pre-retrofit meter data for the uncertainty (with --baseline-predicted)")
    report.add_argument("--baseline-predicted", help="simulation: Baseline run over the pre-retrofit period")
    report.add_argument("--temperature-column", default="OutdoorTemp",
                        help="towt, caltrack-*: outdoor temperature, degC")
    report.add_argument("--confidence", type=float, default=0.9)
    report.add_argument("--out", default="mv_report", help="output folder")
    report.set_defaults(func=_mv_report)
    from bridge.tracking.calibration_cli import add_calibration_commands

    add_calibration_commands(sub)
    return mv


def _data_arguments(parser, several: bool = False) -> None:
    parser.add_argument("--measured", required=True, nargs="+" if several else None, metavar="FILE",
                        help="meter data: historian .sqlite or .csv" + (", one or more files" if several else ""))
    parser.add_argument("--column", default="FacilityPower", help="compared column (default FacilityPower)")
    parser.add_argument("--kind", choices=("power_kw", "energy_kwh"), default="power_kw",
                        help="the column holds mean power (kW) or energy per interval (kWh)")
    parser.add_argument("--building", help="building name in a historian file with several")


def _mv_calibrate(args) -> int:
    """Exit 0 only if every granularity was computed and passes; a granularity that could not be computed
    is written as ``{"error": ..., "passes": false}``."""
    measured = hourly_energy_kwh(load_run(args.measured, args.building), args.column, args.kind)
    predicted = hourly_energy_kwh(load_run(args.predicted, args.building), args.column, args.kind)
    results = {}
    for granularity in ("hourly", "monthly"):
        try:
            results[granularity] = calibration(measured, predicted, granularity).to_dict()
        except ValueError as exc:
            results[granularity] = {"error": str(exc), "passes": False}
            print(f"twinbridge: mv calibrate: {granularity} not computed: {exc}", file=sys.stderr)
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0 if all(r["passes"] for r in results.values()) else 1


def _mv_report(args) -> int:
    reporting = load_runs(args.measured, args.building)
    require_column(reporting, args.column, "--column", args.measured)
    measured = hourly_energy_kwh(reporting, args.column, args.kind)
    extra: dict = {}
    if args.method == "simulation":
        if not args.baseline_run:
            raise MvOptionError("mv report --method simulation needs --baseline-run")
        if bool(args.baseline_measured) != bool(args.baseline_predicted):
            raise MvOptionError("mv report --method simulation: --baseline-measured and --baseline-predicted go "
                                "together (the Baseline's fit to pre-retrofit meter data, for the uncertainty)")
        adjusted = simulated_baseline(load_run(args.baseline_run, args.building), args.column, args.kind)
        fit = None
        if args.baseline_measured:
            pre_measured = hourly_energy_kwh(load_runs(args.baseline_measured, args.building), args.column, args.kind)
            pre_predicted = hourly_energy_kwh(load_run(args.baseline_predicted, args.building), args.column, args.kind)
            fit = BaselineFit.of(pre_measured, pre_predicted)
            extra["baseline_calibration"] = calibration(pre_measured, pre_predicted, "hourly").to_dict()
    else:
        if not args.baseline_measured:
            raise MvOptionError(f"mv report --method {args.method} needs --baseline-measured")
        pre = load_runs(args.baseline_measured, args.building)
        require_column(pre, args.column, "--column", args.baseline_measured)
        pre_energy = hourly_energy_kwh(pre, args.column, args.kind)
        pre_temperature = hourly_mean(require_column(pre, args.temperature_column, "--temperature-column",
                                                     args.baseline_measured))
        temperature = hourly_mean(require_column(reporting, args.temperature_column, "--temperature-column",
                                                 args.measured))
        if args.method == "towt":
            model = TowtModel().fit(pre_energy, pre_temperature)
            adjusted = model.predict(temperature)
            fit = model.fit_stats
            extra["towt_fit"] = fit.__dict__ | {"knots_c": model.knots_c}
            extra["data_flags"] = sufficiency_flags(pre_energy, pre_temperature, temperature)
            for flag in extra["data_flags"]:
                print(f"twinbridge: warning: towt: {flag}", file=sys.stderr)
        else:
            return _caltrack_report(args, pre_energy, pre_temperature, measured, temperature)
    result = avoided_energy(adjusted, measured, args.method, fit, args.confidence)
    return _write(args, result, extra)


def _write(args, result, extra: dict) -> int:
    from bridge.tracking.report import write_report

    paths = write_report(result, args.out, f"Savings report ({args.method})", extra)
    print(json.dumps(result.summary(), indent=2, default=str))
    if result.uncertainty_warning:
        print(f"twinbridge: warning: {result.uncertainty_warning}", file=sys.stderr)
    print(f"report: {paths['markdown']}", file=sys.stderr)
    return 0


def _caltrack_report(args, pre_energy, pre_temperature, measured, temperature) -> int:
    """A CalTRACK method's report; a disqualified baseline writes its reasons to savings.json and fails (exit 2)."""
    from bridge.tracking.caltrack import caltrack_savings

    report = caltrack_savings(args.method, pre_energy, pre_temperature, measured, temperature, args.confidence)
    for warning in report.warnings:
        print(f"twinbridge: warning: {warning}", file=sys.stderr)
    if report.savings is None:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "savings.json").write_text(json.dumps(report.summary(), indent=2, default=str))
        raise BaselineDisqualified(Sufficiency(args.method, tuple(report.disqualified)))
    extra = {key: value for key, value in report.summary().items() if key in ("disqualified", "warnings",
                                                                            "sufficiency", "model", "guideline14")}
    return _write(args, report.savings, {"caltrack": extra})
