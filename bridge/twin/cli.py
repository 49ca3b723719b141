"""The ``twin`` commands: collect training data, fit, evaluate and serve a GP twin.

    twinbridge twin collect sims/large_office.toml --start 07-01 --end 07-28 -o runs/large.db
    twinbridge twin fit runs/large.db --tagmap tagmaps/large_office.toml --until 2025-07-22 -o large.npz
    twinbridge twin evaluate large.npz runs/large.db --from 2025-07-22 --horizon 72 --plot day.png
    twinbridge twin update large.npz runs/live.db --until 2025-07-29 --days 21 -o large-0729.npz --registry reg
    twinbridge twin serve sims/large_office.toml large.npz

``bridge.cli`` registers them with ``add_twin_commands(subparsers)``; each sets ``func``, which
takes the parsed arguments and returns the exit code.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def add_twin_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``twin collect|fit|evaluate|update|serve`` on an argparse subparsers object."""
    twin = subparsers.add_parser("twin", help="data-driven GP twin of a building (see docs/twin.md)")
    commands = twin.add_subparsers(dest="twin_command", required=True)

    collect = commands.add_parser("collect", help="run a building under an excitation controller, record a historian")
    collect.add_argument("config", type=Path, help="building or campus TOML file (first building is used)")
    collect.add_argument("-o", "--output", type=Path, required=True, help="historian file to create (.db)")
    collect.add_argument("--building", help="building name in a campus file (default: the first)")
    collect.add_argument("--start", help="first day MM-DD (default: the file's [run] start)")
    collect.add_argument("--end", help="last day MM-DD, inclusive (default: the file's [run] end)")
    collect.add_argument("--seed", type=int, default=0, help="seed of the random setpoint schedules")
    collect.add_argument("--hold-hours", type=int, nargs=2, default=(1, 4), metavar=("MIN", "MAX"),
                         help="each random level is held MIN..MAX hours (default 1 4)")
    collect.set_defaults(func=_collect)

    fit = commands.add_parser("fit", help="train a GP twin on a historian")
    fit.add_argument("history", type=Path, help="historian file (.db)")
    fit.add_argument("--tagmap", type=Path, required=True, help="tag map of the building")
    fit.add_argument("-o", "--output", type=Path, required=True, help="model file to write (.npz)")
    fit.add_argument("--building", help="building name in the historian (default: the only one)")
    fit.add_argument("--targets", nargs="+", help="output tags to model (default: electric power and zone temperatures)")
    fit.add_argument("--until", help="train on rows before this time (ISO; default: all rows)")
    fit.add_argument("--output-lags", "-l", type=int, default=0, help="lags l of the modelled output (default 0)")
    fit.add_argument("--input-lags", "-m", type=int, default=1, help="lags m of the control inputs (default 1)")
    fit.add_argument("--disturbance-lags", "-p", type=int, default=0, help="lags p of the weather (default 0)")
    fit.add_argument("--lag-step", type=int, default=1,
                     help="timesteps between input and disturbance lags (default 1; 6 = hourly at 10 minutes)")
    fit.add_argument("--no-profile", action="store_true", help="leave out the learnt daily profile feature")
    fit.add_argument("--known-load", action="store_true",
                     help="take the tag map's known load as a known input (docs/twin.md, \"Known load\")")
    fit.add_argument("--n-hyper", type=int, default=500, help="rows for the hyperparameter search (default 500)")
    fit.add_argument("--max-exact", type=int, default=4000, help="exact GP up to this many rows (default 4000)")
    fit.add_argument("--inducing", type=int, default=1000,
                     help="inducing points of the sparse GP beyond --max-exact rows (default 1000)")
    fit.set_defaults(func=_fit)

    evaluate = commands.add_parser("evaluate", help="rolling multi-step forecasts of a twin on held-out data")
    evaluate.add_argument("model", type=Path, help="model file (.npz)")
    evaluate.add_argument("history", type=Path, help="historian file (.db) holding the test span")
    evaluate.add_argument("--building", help="building name in the historian (default: the only one)")
    evaluate.add_argument("--from", dest="test_start", required=True, help="first forecast origin (ISO time)")
    evaluate.add_argument("--horizon", type=int, default=72, help="forecast horizon in steps (default 72 = 12 h)")
    evaluate.add_argument("--every", type=int, default=6, help="steps between origins (default 6 = hourly)")
    evaluate.add_argument("--plot", type=Path, help="PNG of one day's forecast per target (target name is appended)")
    evaluate.add_argument("--plot-day", help="day to plot (YYYY-MM-DD; default: the day after --from)")
    evaluate.add_argument("--allow-overlap", action="store_true",
                          help="evaluate forecasts of rows inside the model's training window too (for another run "
                               "over the same dates; on the training historian they are in-sample figures)")
    evaluate.set_defaults(func=_evaluate)

    update = commands.add_parser("update", help="re-condition a twin on the recent rows of a historian "
                                                "(sliding window, level bias), register it as Operational")
    update.add_argument("model", type=Path, help="model file to update (.npz)")
    update.add_argument("history", type=Path, help="historian file (.db) of the live building")
    update.add_argument("-o", "--output", type=Path, help="model file to write (.npz); with --every: a folder")
    update.add_argument("--building", help="building name in the historian (default: the only one)")
    update.add_argument("--until", help="update on rows before this time (ISO; default: every row)")
    update.add_argument("--days", type=float, help="sliding window in days (default: the model's, 21)")
    update.add_argument("--bias-hours", type=float,
                        help="hours of recent forecasts the level bias is estimated from (whole days, shrunk by "
                             "their day-to-day scatter; default: the model's, 0: no bias correction)")
    update.add_argument("--refit", action="store_true",
                        help="fit hyperparameters, profile and calibration again on the window (default: keep them)")
    update.add_argument("--registry", type=Path, help="registry folder: register the update as an Operational version")
    update.add_argument("--every", help="run as a daemon: update every period (24h, 30m, 1d) on every row so far, "
                                        "writing <model>-<until>.npz into the -o folder")
    update.set_defaults(func=_update)

    serve = commands.add_parser("serve", help="serve a trained twin over OPC UA like the EnergyPlus building")
    serve.add_argument("config", type=Path, help="building or campus TOML file (run period, endpoint, tag map)")
    serve.add_argument("model", type=Path, help="model file (.npz)")
    serve.add_argument("--building", help="building of the file to replace by the twin (default: the first)")
    serve.set_defaults(func=_serve)


def _building(config, name: str | None):
    from bridge.config import ConfigError

    for building in config.buildings:
        if name is None or building.name == name:
            return building
    raise ConfigError(f"{config.path}: no building {name!r} (has {[b.name for b in config.buildings]})")


def engines_for(config, workdir: Path):
    """The engine factory of ``bridge.twin.collect``: a building's engine as a campus run of
    ``config`` makes it (its engine kind and timeouts), over the period asked, working in ``workdir``."""
    from bridge.engines.factory import make_engine

    return lambda building, period: make_engine(building, dataclasses.replace(config, period=period), workdir)


def _collect(args: argparse.Namespace) -> int:
    from bridge.config import ConfigError, load_config, month_day
    from bridge.twin.collect import collect_history, excitation_for

    config = load_config(args.config)
    building = _building(config, args.building)
    year = config.period.start.year
    period = dataclasses.replace(
        config.period,
        start=month_day(args.start, year, "--start") if args.start else config.period.start,
        end=month_day(args.end, year, "--end") if args.end else config.period.end)
    if period.end < period.start:
        raise ConfigError(f"--end: last day {period.end} is before the first day {period.start} "
                          f"(a collection stays within one year)")
    controller = excitation_for(building, seed=args.seed, hold_hours=tuple(args.hold_hours))
    workdir = config.run_dir / f"twin_collect_{building.name}"
    collect_history(building, period, args.output, engines_for(config, workdir), controller)
    print(f"recorded {period.steps} steps of {building.name} ({period.start} .. {period.end}) in {args.output}")
    return 0


def _fit(args: argparse.Namespace) -> int:
    from bridge.historian import load_history, recorded_tagmap
    from bridge.tagmap import TagMapError, load_tagmap, same_building
    from bridge.twin.errors import ModelError
    from bridge.twin.features import feature_sets_for
    from bridge.twin.gp import TwinModel
    from bridge.twin.persist import save_model
    from bridge.twin.times import parse_time, span

    history = load_history(args.history, args.building)
    tagmap = load_tagmap(args.tagmap)
    recorded = recorded_tagmap(args.history, args.building)
    if recorded and not same_building(recorded, tagmap.building):
        raise TagMapError(f"{args.tagmap}: tag map {tagmap.name!r} (floor area {tagmap.floor_area_m2} m2) is not "
                          f"the one {args.history} recorded for its building: {recorded.get('name')!r} (floor area "
                          f"{recorded.get('floor_area_m2')} m2, {recorded.get('tagmap')})")
    if args.until:
        until = parse_time(args.until, "--until")
        if not (history.index < until).any():
            raise ModelError(f"--until {until}: no rows before it to train on (data: {span(history)})")
        history = history[history.index < until]
    for option, count in (("--n-hyper", args.n_hyper), ("--inducing", args.inducing)):
        if count < 1:
            raise ModelError(f"{option} must be at least 1, got {count}")
    feature_sets = feature_sets_for(tagmap, args.targets, args.output_lags, args.input_lags, args.disturbance_lags,
                                    profile=not args.no_profile, lag_step=args.lag_step, known_load=args.known_load)
    twin = TwinModel.from_feature_sets(feature_sets, n_hyper=args.n_hyper, max_exact=args.max_exact,
                                       n_inducing=args.inducing).fit(history)
    save_model(twin, args.output, extra={"history": str(args.history)}, tagmap=tagmap)
    for target, model in twin.models.items():
        print(f"{target}: {model.n_rows_} rows, {model.approximation_}, "
              f"fitted in {model.fit_time_s_:.1f} s{_feedback_gain(model, history)}")
    print(f"wrote {args.output}")
    return 0


def _feedback_gain(model, history) -> str:
    """The model's output-lag sensitivity over its training rows (docs/twin.md), for ``twin fit``'s report."""
    import numpy as np

    if not model.features.output_lag_columns:
        return ""
    s = model.output_lag_sensitivity(model.feature_rows(history).to_numpy(float))
    median, high = np.nanpercentile(s, [50, 95])
    note = "; a fed-back offset is amplified 10x or more on the top 5 % of rows" if high >= 0.9 else ""
    return f"; output-lag sensitivity median {median:.2f}, 95th percentile {high:.2f}{note}"


def _evaluate(args: argparse.Namespace) -> int:
    import pandas as pd

    from bridge.historian import load_history, recorded_tagmap
    from bridge.twin.evaluate import evaluate, plot_day
    from bridge.twin.persist import check_building, load_model
    from bridge.twin.times import parse_time

    start = parse_time(args.test_start, "--from")
    day = parse_time(args.plot_day, "--plot-day") if args.plot_day else start.normalize() + pd.Timedelta(days=1)
    twin = load_model(args.model)
    history = load_history(args.history, args.building)
    recorded = recorded_tagmap(args.history, args.building)
    if recorded is None:
        log.warning("%s records no tag map for its building: cannot check that %s learnt that building",
                    args.history, args.model)
    check_building(twin, recorded, f"the building of {args.history}, tag map", args.model)
    report = {}
    for target, model in twin.models.items():
        result = evaluate(model, history, start, args.horizon, args.every, args.allow_overlap)
        report[target] = {"overall": result["overall"], "last_step": result["last_step"],
                          "in_sample": result["in_sample"]}
        if args.plot:
            plot_day(model, history, day, args.horizon, args.plot.with_name(f"{args.plot.stem}_{target}.png"),
                     allow_overlap=args.allow_overlap)
    print(json.dumps(report, indent=2))
    return 0


def _update(args: argparse.Namespace) -> int:
    import asyncio

    from bridge.historian import load_history
    from bridge.tracking.registry import ModelRegistry
    from bridge.twin.errors import ModelError
    from bridge.twin.update import (
        next_until,
        parse_every,
        update_every,
        update_model_file,
    )

    if args.output is None:
        raise ModelError("twin update needs -o: the model file to write (with --every, a folder)")
    registry = ModelRegistry(args.registry) if args.registry else None
    options = {"days": args.days, "bias_hours": args.bias_hours, "refit": args.refit, "source": str(args.history)}
    load = lambda: load_history(args.history, args.building)
    if args.every:
        every_s = parse_every(args.every)
        if registry is not None:
            registry.refuse_if_frozen_file(args.model)
        asyncio.run(update_every(args.model, load, args.output, every_s, asyncio.Event(), registry, **options))
        return 0
    frame = load()
    until = args.until if args.until else next_until(frame)
    _, figures = update_model_file(args.model, frame, until, args.output, registry, **options)
    print(json.dumps(figures, indent=2))
    print(f"wrote {args.output}" + (f", registered as Operational {registry.current('Operational').version}"
                                    if registry is not None else ""))
    return 0


def _serve(args: argparse.Namespace) -> int:
    from bridge.cli import run_campus  # provided by the lead's bridge/cli.py
    from bridge.config import load_config

    config = load_config(args.config)
    chosen = _building(config, args.building)
    buildings = tuple(dataclasses.replace(b, engine="twin", twin_model=args.model.resolve()) if b is chosen else b
                      for b in config.buildings)
    return run_campus(dataclasses.replace(config, buildings=buildings))
