"""One exception root and one error path for every command group (bridge/errors.py, bridge/cli.py ``main``)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import bridge
import controllers
from bridge.cli import main
from bridge.errors import TwinbridgeError
from controllers.base import ControllerError


def project_modules():
    for package in (bridge, controllers):
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if info.name.endswith(("energyplus_api_child", "eplus_child")):
                continue  # child-process entry points
            yield importlib.import_module(info.name)


def test_every_project_exception_derives_from_the_root():
    loose = []
    for module in project_modules():
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, Exception) and obj.__module__ == module.__name__
                    and not name.startswith("_") and not issubclass(obj, TwinbridgeError)):
                loose.append(f"{module.__name__}.{name}")
    assert loose == []


@pytest.mark.parametrize("argv", [
    ["validate", "no/such/campus.toml"],
    ["export", "no/such/historian.sqlite"],
    ["twin", "evaluate", "no/such/model.npz", "no/such/history.db", "--from", "2025-07-01"],
    ["mv", "report", "--measured", "no/such/meter.csv"],
    ["track", "anomalies", "no/such/anomalies.db"],
    ["controller", "schedule", "--endpoint", "opc.tcp://127.0.0.1:1", "--building", "B", "--config", "no/such/s.toml"],
])
def test_bad_input_to_any_command_group_is_one_line_and_exit_2(argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("twinbridge: error: "), err


def test_a_failed_run_exits_1_and_ctrl_c_130(monkeypatch, capsys):
    import bridge.cli as cli

    def fail(args):
        raise ControllerError("SmallOffice: no new step within 600 s")

    def interrupt(args):
        raise KeyboardInterrupt

    for func, code, line in ((fail, 1, "twinbridge: error: SmallOffice: no new step within 600 s"),
                             (interrupt, 130, "twinbridge: interrupted")):
        monkeypatch.setattr(cli, "_cmd_validate", func)
        assert main(["validate", "anything.toml"]) == code
        assert capsys.readouterr().err.strip() == line
