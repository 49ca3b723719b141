"""``twinbridge controller schedule|csv|gp-mpc|campus-dr``: run a controller process against a bridge endpoint."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from collections.abc import Callable

from bridge.protocol import Status
from bridge.security.settings import PASSWORD_VARIABLE, ClientSecurity
from controllers.base import Controller
from controllers.csv_trajectory import INTERPOLATIONS, CsvController, load_trajectory
from controllers.loop import ENDED, MODES, LoopOptions, LoopReport, run_controller
from controllers.schedule import ScheduleController, load_schedule


def add_controller_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``controller schedule``, ``controller csv`` and ``controller gp-mpc`` on the twinbridge command line."""
    controller = subparsers.add_parser("controller", help="run a controller against a bridge over OPC UA")
    kinds = controller.add_subparsers(dest="controller", required=True)
    schedule = kinds.add_parser("schedule", help="occupied/setback setpoints, holidays, demand-response events")
    _common(schedule, "schedule TOML file (see controllers/examples/)")
    schedule.set_defaults(func=_cmd_schedule)
    trajectory = kinds.add_parser("csv", help="replay a CSV trajectory of input values")
    _common(trajectory, "CSV file: a 'time' column and one column per input tag")
    trajectory.add_argument("--interpolation", choices=INTERPOLATIONS, default="step",
                            help="step: hold the last row; linear: interpolate between rows (default step)")
    trajectory.set_defaults(func=_cmd_csv)
    mpc = kinds.add_parser("gp-mpc", help="model-predictive demand response on a trained GP twin (docs/controllers.md)")
    _common(mpc, "GP-MPC TOML file (see controllers/examples/large_office_gp_mpc.toml)")
    mpc.set_defaults(func=_cmd_gp_mpc)
    campus = kinds.add_parser("campus-dr", help="a campus demand-response request split across buildings with GP twins, "
                                                "one GP-MPC per building (docs/controllers.md)")
    _common(campus, "campus demand-response TOML file (see controllers/examples/campus_dr.toml)", building=False)
    campus.set_defaults(func=_cmd_campus_dr)


def _common(parser: argparse.ArgumentParser, config_help: str, building: bool = True) -> None:
    parser.add_argument("--endpoint", required=True, help="bridge endpoint, e.g. opc.tcp://127.0.0.1:4840")
    if building:
        parser.add_argument("--building", required=True, help="building name (browse name under the campus)")
    parser.add_argument("--campus", help="campus name (default: the campus that has the building)")
    parser.add_argument("--config", required=True, help=config_help)
    parser.add_argument("--mode", choices=MODES, default="lockstep",
                        help="lockstep: OutputReady/InputReady handshake; exchange: lockstep with one Control.Exchange "
                             "call per step; paced: act every --period seconds (default lockstep)")
    parser.add_argument("--period", type=float, default=1.0, help="paced: wall seconds between actions (default 1)")
    parser.add_argument("--poll", type=float, default=0.001,
                        help="lockstep: wall seconds between the first reads while waiting for OutputReady (default 0.001)")
    parser.add_argument("--poll-max", type=float, default=0.05,
                        help="lockstep: the poll interval doubles up to this many seconds while a wait lasts (default 0.05)")
    parser.add_argument("--step-timeout", type=float, default=600.0,
                        help="give up when the bridge shows no new step for this many seconds (default 600)")
    parser.add_argument("--reconnect-timeout", type=float, default=120.0,
                        help="give up when the bridge stays unreachable this many seconds (default 120)")
    parser.add_argument("--security", default="",
                        help="secured bridge: 'policy,mode,certificate,private_key[,server_certificate]', e.g. "
                             "'Basic256Sha256,SignAndEncrypt,ctl.der,ctl_key.pem' (missing files are created)")
    parser.add_argument("--user", default="", help=f"user name; the password is read from ${PASSWORD_VARIABLE}")


def _cmd_schedule(args: argparse.Namespace) -> int:
    return _run(args, lambda: ScheduleController(load_schedule(args.config)))


def _cmd_csv(args: argparse.Namespace) -> int:
    return _run(args, lambda: CsvController(load_trajectory(args.config, args.interpolation)))


def _cmd_gp_mpc(args: argparse.Namespace) -> int:
    """As the other controllers; then one JSON line per reported event on stdout (its report,
    bridge/tracking/dr_event.py, against the baseline it used: ``LoopReport.event_reports``)."""
    from controllers.gp_mpc import GpMpcController, load_mpc  # casadi and the twin: only when used

    return _run(args, lambda: GpMpcController(load_mpc(args.config)), _print_event_reports)


def _print_event_reports(report: LoopReport, **keys: str) -> None:
    for event in report.event_reports:
        print(json.dumps({**keys, **event.as_record()}), flush=True)


def _cmd_campus_dr(args: argparse.Namespace) -> int:
    from controllers.campus_dr import CampusCoordinator, load_campus_dr  # scipy and the twins: only when used

    coordinator = CampusCoordinator(load_campus_dr(args.config))
    _quiet(args)
    security = ClientSecurity(args.security, args.user)
    security.check()
    reports = asyncio.run(coordinator.run(args.endpoint, args.campus, _options(args), security))
    if coordinator.split is not None:
        print(f"campus request {coordinator.split.request_kw:g} kW: "
              + ", ".join(f"{name} {kw:.1f} kW" for name, kw in coordinator.split.shares.items())
              + ("" if coordinator.split.feasible else " (beyond the forecast capacity within comfort)"))
    for time, shares in coordinator.resplits:
        print(f"re-split at {time:%Y-%m-%d %H:%M}: " + ", ".join(f"{name} {kw:.1f} kW" for name, kw in shares.items()))
    for name, report in reports.items():
        _print_event_reports(report, building=name)
    return 0 if all(r.final_status in (Status.FINISHED, ENDED) for r in reports.values()) else 1


def _quiet(args: argparse.Namespace) -> None:
    if not getattr(args, "verbose", False):
        # asyncua logs tracebacks when it closes a session the bridge already dropped; the loop reports drops itself.
        logging.getLogger("asyncua").setLevel(logging.CRITICAL)


def _options(args: argparse.Namespace) -> LoopOptions:
    return LoopOptions(mode=args.mode, period_s=args.period, poll_s=args.poll, poll_max_s=args.poll_max,
                       step_timeout_s=args.step_timeout, reconnect_timeout_s=args.reconnect_timeout)


def _run(args: argparse.Namespace, make: Callable[[], Controller],
         then: Callable[[LoopReport], None] | None = None) -> int:
    """Exit code 0 when the building finished (or its run ended and the bridge closed), 1 when it stopped or
    faulted. A loop that gave up (ControllerError, exit 1), a configuration error (exit 2) and Ctrl-C (130)
    are reported by bridge/cli.py's ``main`` in one line, as for every command."""
    _quiet(args)
    controller = make()
    options = _options(args)
    security = ClientSecurity(args.security, args.user)
    security.check()  # a configuration error, before any connection
    # Ctrl-C: asyncio.run cancels the loop, which closes its connection on the way out (bridge/cli.py reports it)
    report = asyncio.run(run_controller(controller, args.endpoint, args.building, args.campus, options, security))
    if then is not None:
        then(report)
    return 0 if report.final_status in (Status.FINISHED, ENDED) else 1
