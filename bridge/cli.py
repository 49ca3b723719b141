"""``twinbridge``: run, validate and export simulated buildings served over OPC UA."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from bridge.campus import Campus
from bridge.config import CampusConfig, load_config
from bridge.errors import TwinbridgeError
from bridge.historian import buildings_in, load_history, tag_units
from bridge.protocol import CLOCK_MODES, Status
from bridge.validate import validate_campus

if TYPE_CHECKING:
    from bridge.server import TagServer

log = logging.getLogger("twinbridge")
CLIENT_LINGER_S = 3.0  # after a run ends, time connected clients get to read the final state
SIGNALS = (signal.SIGINT, signal.SIGTERM)  # stop the run (or the validation) and clean up


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[asyncio.Event]:
    """An event that SIGINT and SIGTERM set, instead of their default actions, while the block runs."""
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in SIGNALS:
        loop.add_signal_handler(sig, stop_requested.set)
    try:
        yield stop_requested
    finally:
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)


async def _unless_stopped(awaitable: Awaitable, stop_requested: asyncio.Event) -> bool:
    """Await ``awaitable`` unless a stop is requested first, which cancels it (and waits until it has
    cleaned up); True if it completed. An exception it raised is raised."""
    task = asyncio.ensure_future(awaitable)
    stop = asyncio.ensure_future(stop_requested.wait())
    try:
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        task.cancel()
        stop.cancel()
        await asyncio.gather(task, stop, return_exceptions=True)
    if task.cancelled():
        return False
    task.result()
    return True


async def _validate_unless_stopped(config: CampusConfig) -> bool:
    """Validate ``config`` (ValidationError); False if a signal stopped it first."""
    with _stop_on_signals() as stop_requested:
        return await _unless_stopped(validate_campus(config), stop_requested)


async def serve_campus(config: CampusConfig, autostart: bool = True, keep_serving: bool = False) -> Campus | None:
    """Validate, start the campus and the OPC UA server; return when the run ends (or on a signal).
    None if a signal came during the validation, before anything was started."""
    await _check_port_free(config.endpoint)
    with _stop_on_signals() as stop_requested:
        if not await _unless_stopped(validate_campus(config), stop_requested):
            log.info("signal received during validation: stopping")
            return None
        return await _serve(config, stop_requested, autostart, keep_serving)


async def _check_port_free(endpoint: str) -> None:
    """Refuse a run whose OPC UA port is taken before anything starts (OSError naming the endpoint): the
    port is bound as the server will bind it, then let go."""
    url = urlsplit(endpoint)
    try:
        probe = await asyncio.get_running_loop().create_server(asyncio.Protocol, url.hostname, url.port)
    except OSError as exc:
        raise OSError(f"cannot serve OPC UA at {endpoint}: {exc.strerror or exc}") from None
    probe.close()
    await probe.wait_closed()


async def _serve(config: CampusConfig, stop_requested: asyncio.Event, autostart: bool, keep_serving: bool) -> Campus:
    campus = Campus(config)
    server = None
    tracking: list[asyncio.Task] = []
    try:
        if autostart:
            await campus.start()
            await asyncio.wait_for(campus.launched.wait(), config.engine_start_timeout_s)
        # asyncua (~0.35 s of imports) and the address space: while EnergyPlus sizes its models
        from bridge.server import TagServer

        server = TagServer(config.endpoint, config.name, config.period.time_of(0), config.security)
        await server.init()
        await campus.build_address_space(server)
        gc.freeze()  # the address space lives as long as the server: keep it out of every garbage collection
        for building, path in config.tracking:
            tracking.append(await _attach_tracking(server, config, building, path))
        tracking += await _attach_mirrors(server, config, campus)  # stopped with the tracking tasks
        await server.listen()
        campus.serving.set()
        if not autostart:
            log.info("waiting for a client to call %s.Control.Start", config.name)
        if keep_serving:
            await stop_requested.wait()
        else:
            await _unless_stopped(_run_ended(campus), stop_requested)
        if stop_requested.is_set():
            log.info("signal received: stopping")
    finally:
        await _shut_down(campus, server, tracking, linger_s=0.0 if stop_requested.is_set() else CLIENT_LINGER_S)
    return campus


async def _shut_down(campus: Campus, server: TagServer | None, tracking: list[asyncio.Task], linger_s: float) -> None:
    """Stop tracking, the campus and the OPC UA server; each step runs even if one before it failed
    (the failure is logged), so that a broken historian does not leave the server running."""
    async def stop_tracking() -> None:
        for task in tracking:
            task.cancel()
        await asyncio.gather(*tracking, return_exceptions=True)

    final_status = Status.STOPPED if campus.status in (Status.RUNNING, Status.PAUSED) else campus.status
    steps: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        ("tracking", stop_tracking), ("campus", lambda: campus.stop(final_status=final_status))]
    if server is not None:
        steps.append(("OPC UA server", lambda: server.stop(linger_s=linger_s)))
    for what, step in steps:
        try:
            await step()
        except Exception:
            log.exception("stopping the %s failed", what)


async def _attach_tracking(server: TagServer, config: CampusConfig, building: str, path: Path) -> asyncio.Task:
    """Track ``building`` against its live counterpart (docs/tracking.md); status under <Building>.Tracking."""
    from bridge.tracking.attach import attach_tracking

    log.info("tracking %s against the live building of %s", building, path)
    return await attach_tracking(server, config.name, building, path, config.period.step_s)


async def _attach_mirrors(server: TagServer, config: CampusConfig, campus: Campus) -> list[asyncio.Task]:
    """Mirror the live inputs of each building with a ``[buildings.live]`` table (docs/live.md)."""
    from bridge.live.mirror import start_mirror

    return [await start_mirror(server, building, [path for name, path in config.tracking if name == building.name])
            for building in campus.buildings if building.config.live is not None]


async def _run_ended(campus: Campus) -> None:
    await campus.started.wait()
    await campus.done.wait()


def run_campus(config: CampusConfig, autostart: bool = True, keep_serving: bool = False) -> int:
    """Run a campus to its end; exit code 1 if a building faulted (or the run could not start), else 0:
    every building finished, or was stopped on purpose (Control.Stop, a signal)."""
    campus = asyncio.run(serve_campus(config, autostart, keep_serving))
    if campus is None:
        return 1
    statuses = {b.name: str(b.status) for b in campus.buildings}
    log.info("building status: %s; historian: %s", statuses, campus.run_path)
    return 1 if Status.FAULTED in statuses.values() else 0


def _cmd_run(args: argparse.Namespace) -> int:
    config = load_config(args.config).with_overrides(
        endpoint=args.endpoint, clock=args.clock, speed=args.speed, lockstep_timeout_s=args.lockstep_timeout,
        run_dir=Path(args.run_dir).resolve() if args.run_dir else None)
    return run_campus(config, autostart=not args.wait_for_start, keep_serving=args.keep_serving)


def _cmd_validate(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if not asyncio.run(_validate_unless_stopped(config)):
        print("twinbridge: validation stopped by a signal", file=sys.stderr)
        return 1
    for building in config.buildings:
        tagmap = building.tagmap
        print(f"{building.name}: {building.model.name}, {len(tagmap.inputs)} inputs, "
              f"{len(tagmap.outputs)} outputs: OK")
        if building.live is not None:
            print(f"  mirrors {', '.join(m.input for m in building.live.inputs)} from {building.live.endpoint.url}")
    print(f"{config.name}: {len(config.buildings)} building(s), {config.period.steps} steps "
          f"({config.period.start} .. {config.period.end}), clock {config.clock}: valid")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    names = [args.building] if args.building else buildings_in(args.historian)
    out = Path(args.out or Path(args.historian).parent)
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        frame = load_history(args.historian, name)
        units = tag_units(args.historian, name)
        frame = frame.rename(columns=lambda column: f"{column} [{units[column]}]" if units.get(column) else column)
        target = out / f"{name}.{args.format}"
        if args.format == "csv":
            frame.to_csv(target)
        else:
            frame.to_parquet(target)
        print(f"{name}: {len(frame)} rows -> {target}")
    return 0


def _cmd_hash_password(args: argparse.Namespace) -> int:
    """Print the hash of a password for a users file (docs/security.md); the password is read from
    the terminal without echo, or from the first line of standard input when that is not a terminal."""
    import getpass

    from bridge.security.users import hash_password

    password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    print(hash_password(password))
    return 0


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="twinbridge", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run a building or campus file and serve it over OPC UA")
    run.add_argument("config", help="building or campus TOML file (see sims/)")
    run.add_argument("--endpoint", help="OPC UA endpoint, default from the file or opc.tcp://127.0.0.1:4840")
    run.add_argument("--clock", choices=CLOCK_MODES, help="clock mode (overrides the file)")
    run.add_argument("--speed", type=float, help="paced clock: simulated seconds per wall second "
                     f"(default from the file, else {CampusConfig.speed:g})")
    run.add_argument("--lockstep-timeout", type=float, help="lockstep: seconds to wait for a controller "
                     f"(default from the file, else {CampusConfig.lockstep_timeout_s:g})")
    run.add_argument("--run-dir", help="folder for run outputs and the historian")
    run.add_argument("--wait-for-start", action="store_true", help="stay Idle until a client calls Start")
    run.add_argument("--keep-serving", action="store_true", help="keep serving tags after the run ends")
    run.set_defaults(func=_cmd_run)

    validate = commands.add_parser(
        "validate", help="check a building or campus file and its tag maps",
        description="Check a building or campus file without serving it: the file, endpoint, weather files and tag "
                    "maps, and every tag-map name against its model (the first check of a model runs EnergyPlus "
                    "for one day to list its variables; cached). Exit 2 on a problem.")
    validate.add_argument("config", help="building or campus TOML file (see sims/)")
    validate.set_defaults(func=_cmd_validate)

    export = commands.add_parser("export", help="export a run's historian to CSV or Parquet")
    export.add_argument("historian", help="historian.sqlite of a run")
    export.add_argument("--building", help="only this building (default: all)")
    export.add_argument("--format", choices=("csv", "parquet"), default="csv",
                        help="file format, one file per building; column names carry units, e.g. "
                             "'FacilityPower [kW]' (default: %(default)s)")
    export.add_argument("--out", help="output folder (default: beside the historian)")
    export.set_defaults(func=_cmd_export)

    hashing = commands.add_parser(
        "hash-password", help="hash a password for a users file (OPC UA user names)",
        description="Print the PBKDF2 hash of a password for a users file (docs/security.md). The password is read "
                    "from the terminal without echo, or from the first line of standard input when that is not a "
                    "terminal.")
    hashing.set_defaults(func=_cmd_hash_password)
    _add_command_groups(commands, argv or [])
    return parser


# Command groups of the other packages, imported only when used: they pull in scipy, scikit-learn
# and matplotlib, which would otherwise add seconds to every `twinbridge run`.
COMMAND_GROUPS = {
    "campus": ("bridge.generate", "add_campus_commands", "generate a campus file of N reference buildings"),
    "controller": ("controllers.cli", "add_controller_commands", "run a schedule, CSV or GP-MPC controller process"),
    "twin": ("bridge.twin.cli", "add_twin_commands", "Gaussian-process twin: collect, fit, evaluate, serve"),
    "track": ("bridge.tracking.cli", "add_tracking_commands", "track a twin against a live building"),
    "registry": ("bridge.tracking.cli", "add_tracking_commands", "baseline / operational / actual model registry"),
    "mv": ("bridge.tracking.cli", "add_tracking_commands", "measurement and verification reports"),
}


def _command(argv: list[str]) -> str | None:
    return next((arg for arg in argv if not arg.startswith("-")), None)


def _add_command_groups(commands, argv: list[str]) -> None:
    wanted = _command(argv)
    if wanted in COMMAND_GROUPS:
        module, adder, _ = COMMAND_GROUPS[wanted]
        getattr(importlib.import_module(module), adder)(commands)
    for name, (_, _, summary) in COMMAND_GROUPS.items():
        if name not in commands.choices:
            commands.add_parser(name, help=summary)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(argv).parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    if not args.verbose:
        logging.getLogger("asyncua").setLevel(logging.WARNING)
    try:
        return args.func(args)
    except TwinbridgeError as exc:  # every command group's errors of bad input or a failed run: one line
        print(f"twinbridge: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # a file or a port the system refused
        print(f"twinbridge: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C outside ``run`` (which stops on signals itself)
        print("twinbridge: interrupted", file=sys.stderr)
        return 130


def console_main() -> None:
    """Entry point of the ``twinbridge`` script. After ``run``, everything is closed and logged: the
    process ends without tearing down its heap (the OPC UA address space), which takes ~0.4 s."""
    code = main()
    if _command(sys.argv[1:]) == "run":
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    console_main()
