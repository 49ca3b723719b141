"""The ``twin`` commands on bad input: one line ``twinbridge: error: ...`` and exit code 2, never a
traceback or figures that are not what they say (synthetic historian, no EnergyPlus)."""

import ast
import asyncio
import dataclasses
import datetime as dt
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from bridge.cli import main
from bridge.config import load_config
from bridge.historian import Historian
from bridge.tagmap import load_tagmap
from bridge.twin.collect import collect
from bridge.twin.persist import load_model
from conftest import SIMS, TAGMAPS

START = dt.datetime(2025, 7, 1)
UNTIL = "2025-07-03"  # the model learns Jul 1-2, the test span is Jul 3


def write_history(path: Path, tagmap, days: int = 3) -> Path:
    """A historian of ``days`` days at 10-minute steps: a daily power cycle that follows the cooling setpoint."""
    historian = Historian(path, {"SmallOffice": tagmap})
    rng = np.random.default_rng(0)
    for step in range(days * 144 + 1):
        time = START + dt.timedelta(minutes=10 * step)
        values = {item.tag: item.default + rng.normal() for item in tagmap.inputs}
        level = 20 + 5 * np.sin(2 * np.pi * (time.hour + time.minute / 60) / 24) + values["CoolingSetpoint"] - 24
        values.update({item.tag: level + 0.1 * rng.normal() for item in tagmap.outputs})
        historian.record([("SmallOffice", step, step * 600.0, time, values)])
    historian.close()
    return path


def twinbridge(capsys, *args: str) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``twinbridge args`` through the CLI's main function."""
    code = main([str(arg) for arg in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code: int, err: str, *words: str) -> None:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("twinbridge: error: "), err
    for word in words:
        assert word in lines[0], (word, lines[0])


@pytest.fixture(scope="module")
def small_office(tmp_path_factory):
    """(historian, model trained on its rows before UNTIL) of a synthetic Small Office."""
    folder = tmp_path_factory.mktemp("twin_cli")
    history = write_history(folder / "history.db", load_tagmap(TAGMAPS / "small_office.toml"))
    model = folder / "model.npz"
    assert main(["twin", "fit", str(history), "--tagmap", str(TAGMAPS / "small_office.toml"), "--targets",
                 "FacilityPower", "-l", "1", "--until", UNTIL, "--n-hyper", "50", "-o", str(model)]) == 0
    return history, model


def evaluate(capsys, small_office, *args: str, history: Path | None = None, model: Path | None = None):
    return twinbridge(capsys, "twin", "evaluate", model or small_office[1], history or small_office[0],
                      "--horizon", "12", *args)


def test_evaluate_after_the_training_window_reports_out_of_sample_figures(capsys, small_office):
    code, out, err = evaluate(capsys, small_office, "--from", UNTIL)
    assert code == 0, err
    report = json.loads(out)["FacilityPower"]
    assert report["in_sample"] is False and report["overall"]["n"] > 0


def test_window_after_the_data_is_refused_in_one_line(capsys, small_office):
    code, _, err = evaluate(capsys, small_office, "--from", "2025-08-01")
    assert_one_line_error(code, err, "no forecast origin", "2025-07-04 00:00:00, 433 rows")


@pytest.mark.parametrize("option, value, words", [
    ("--from", "notatime", ("--from: expected a time", "'notatime'")),
    ("--from", "NaT", ("--from: expected a time",)),
    ("--from", "2025-07-03T00:00+02:00", ("--from", "UTC offset")),
    ("--plot-day", "someday", ("--plot-day: expected a time",)),
    ("--horizon", "0", ("horizon must be at least 1",)),
    ("--every", "0", ("every must be at least 1",)),
])
def test_unreadable_time_or_window_is_refused_in_one_line(capsys, small_office, tmp_path, option, value, words):
    args = {"--from": UNTIL, "--plot": str(tmp_path / "day.png"), option: value}
    code, _, err = evaluate(capsys, small_office, *[item for pair in args.items() for item in pair])
    assert_one_line_error(code, err, *words)


@pytest.mark.parametrize("start", ["2025-06-01", "2025-07-02 12:00"])
def test_window_reaching_into_the_training_rows_is_refused(capsys, small_office, start):
    """Starting before the data (or inside the training span) would evaluate the rows the model
    learnt and report in-sample figures as test figures."""
    code, _, err = evaluate(capsys, small_office, "--from", start)
    assert_one_line_error(code, err, "trained on (2025-07-01T00:10:00 .. 2025-07-02T23:50:00)",
                          "--allow-overlap")
    code, out, err = evaluate(capsys, small_office, "--from", start, "--allow-overlap")
    assert code == 0, err
    assert json.loads(out)["FacilityPower"]["in_sample"] is True


def test_plot_of_a_training_day_is_refused(capsys, small_office, tmp_path):
    code, _, err = evaluate(capsys, small_office, "--from", UNTIL, "--plot", tmp_path / "day.png",
                            "--plot-day", "2025-07-02")
    assert_one_line_error(code, err, "forecasts of 2025-07-02", "trained on")
    assert not list(tmp_path.glob("*.png"))


def test_model_of_another_building_is_refused(capsys, small_office, tmp_path):
    """Same tags, another building (tag map name): the historian records its building's tag map."""
    tagmap = load_tagmap(TAGMAPS / "small_office.toml")
    other = write_history(tmp_path / "other.db", dataclasses.replace(tagmap, name="Small office B"))
    code, _, err = evaluate(capsys, small_office, "--from", UNTIL, history=other)
    assert_one_line_error(code, err, "model learnt building 'Small office'", "'Small office B'")
    code, _, err = twinbridge(capsys, "twin", "fit", other, "--tagmap", TAGMAPS / "small_office.toml",
                              "-o", tmp_path / "x.npz")
    assert_one_line_error(code, err, "tag map 'Small office'", "recorded for its building: 'Small office B'")
    assert not (tmp_path / "x.npz").exists()


def _saved(path: Path, save, *args, **arrays) -> None:
    """``save`` (np.save, np.savez) to a handle: given a path, NumPy would append its own suffix."""
    with open(path, "wb") as handle:
        save(handle, *args, **arrays)


NOT_MODELS = {  # name: writer of a file that is not a model
    "text": lambda path: path.write_text("hello\n"),
    "npy array": lambda path: _saved(path, np.save, np.arange(3.0)),
    "pickle": lambda path: path.write_bytes(pickle.dumps({"targets": {}})),
    "historian": lambda path: write_history(path, load_tagmap(TAGMAPS / "small_office.toml"), days=1),
    "pickled metadata": lambda path: _saved(path, np.savez, metadata=np.array([{"a": 1}], dtype=object)),
}


@pytest.mark.parametrize("kind", list(NOT_MODELS))
def test_file_that_is_not_a_model_is_named_in_one_line(capsys, small_office, tmp_path, kind):
    path = tmp_path / "model.npz"
    NOT_MODELS[kind](path)
    code, _, err = evaluate(capsys, small_office, "--from", UNTIL, model=path)
    assert_one_line_error(code, err, str(path))
    assert "allow_pickle" not in err


def test_historian_that_is_not_one_is_named(capsys, small_office, tmp_path):
    path = tmp_path / "history.db"
    path.write_text("not a database\n")
    code, _, err = evaluate(capsys, small_office, "--from", UNTIL, history=path)
    assert_one_line_error(code, err, f"{path}: not a historian file")


@pytest.mark.parametrize("args, words", [
    (("--until", "notatime"), ("--until: expected a time",)),
    (("--until", "2025-07-03T00:00+02:00"), ("--until", "UTC offset")),
    (("--until", "2025-06-01"), ("no rows before it", "2025-07-01 00:00:00 ..")),
    (("--inducing", "0", "--max-exact", "10"), ("--inducing must be at least 1",)),
])
def test_fit_refuses_bad_times_and_empty_windows(capsys, small_office, tmp_path, args, words):
    code, _, err = twinbridge(capsys, "twin", "fit", small_office[0], "--tagmap", TAGMAPS / "small_office.toml",
                              "--targets", "FacilityPower", "-o", tmp_path / "x.npz", *args)
    assert_one_line_error(code, err, *words)


@pytest.mark.parametrize("args, words", [
    (("--start", "xx"), ("--start: expected a date as 'MM-DD'",)),
    (("--start", "02-30"), ("--start",)),
    (("--start", "07-05", "--end", "07-01"), ("--end: last day 2025-07-01 is before the first day 2025-07-05",)),
])
def test_collect_refuses_bad_days_before_starting_an_engine(capsys, tmp_path, args, words):
    code, _, err = twinbridge(capsys, "twin", "collect", SIMS / "small_office.toml", "-o", tmp_path / "c.db", *args)
    assert_one_line_error(code, err, *words)
    assert not (tmp_path / "c.db").exists()


class FailingEngine:
    """An engine that cannot start."""

    async def start(self):
        raise RuntimeError("no engine today")

    async def stop(self) -> None:
        pass


def test_collect_whose_engine_fails_to_start_leaves_no_historian(tmp_path):
    """Else the empty file is in the way of the next attempt ("already exists (not overwriting)")."""
    config = load_config(SIMS / "small_office.toml")
    period = dataclasses.replace(config.period, start=dt.date(2025, 7, 1), end=dt.date(2025, 7, 1))
    path = tmp_path / "c.db"
    with pytest.raises(RuntimeError, match="no engine today"):
        asyncio.run(collect(config.buildings[0], period, path, lambda building, period: FailingEngine()))
    assert not path.exists()


def test_twin_package_imports_neither_engines_nor_the_command_line():
    """Collection takes an engine factory; only the twin's own cli.py may import the bridge's CLI
    and engines."""
    package = Path(__file__).resolve().parents[1] / "bridge" / "twin"
    for path in sorted(package.glob("*.py")):
        if path.name == "cli.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                assert not name.startswith(("bridge.engines", "bridge.cli", "controllers")), (path.name, name)


def test_fit_takes_the_tag_maps_known_load_when_told_to(tmp_path):
    text = (TAGMAPS / "small_office.toml").read_text()
    declaration = 'role = "electric_power"\nknown_load = ["FacilityPower", "-HvacPower"]'
    declared = text.replace('role = "electric_power"', declaration, 1)
    assert declared != text
    tagmap_file = tmp_path / "small_office.toml"
    tagmap_file.write_text(declared)
    history = write_history(tmp_path / "history.db", load_tagmap(tagmap_file))
    known = {}
    for label, extra in (("with", ["--known-load"]), ("without", [])):
        model = tmp_path / f"{label}.npz"
        assert main(["twin", "fit", str(history), "--tagmap", str(tagmap_file), "--targets", "FacilityPower",
                     "--until", UNTIL, "--n-hyper", "50", "-o", str(model), *extra]) == 0
        known[label] = load_model(model).models["FacilityPower"].features.known_load
    assert known == {"with": ("FacilityPower", "-HvacPower"), "without": ()}
