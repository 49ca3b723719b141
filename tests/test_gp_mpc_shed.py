"""GP-MPC ``[mpc] shed``: during an event a decided input moves only in the direction declared to shed power,
whatever the twin learned (issue 16, round 15: a twin of another excitation run drove the supply-air setpoint
the wrong way). The synthetic Small Office twin of test_gp_mpc_ensemble, whose power rises with the cooling
setpoint (so it sheds by lowering it); no EnergyPlus."""

from __future__ import annotations

import pytest
from test_gp_mpc_beyond_reach import run_through
from test_gp_mpc_ensemble import mpc_file, twin_file  # noqa: F401

from controllers.base import ControllerConfigError
from controllers.gp_mpc import load_mpc

BASE_C = 24.0  # the base schedule's occupied cooling setpoint


def with_shed(tmp_path, model: str, shed: str):
    path = mpc_file(tmp_path, model)
    path.write_text(path.read_text().replace("[mpc]\n", f"[mpc]\nshed = {{ {shed} }}\n", 1))
    return path


@pytest.mark.parametrize("shed, inside", [("", lambda c: c < BASE_C - 1.5),
                                          ('CoolingSetpoint = "up"', lambda c: c >= BASE_C - 1e-6)])
def test_a_declared_shed_direction_bounds_the_decisions_in_an_event(twin_file, tmp_path, shed, inside):  # noqa: F811
    path, _, frame = twin_file
    if shed:
        with_shed(tmp_path, f'"{path}"', shed)
    controller, event = run_through(tmp_path, frame, 40.0, f'"{path}"', keep_file=bool(shed))
    applied = [d.values["CoolingSetpoint"] for d in controller.decisions if event.begin <= d.time < event.end]
    assert len(applied) == 6 and all(inside(c) for c in applied), applied


@pytest.mark.parametrize("shed, message", [('HeatingSetpoint = "up"', "HeatingSetpoint"),
                                           ('CoolingSetpoint = "higher"', "'higher'")])
def test_a_bad_shed_table_is_a_configuration_error(twin_file, tmp_path, shed, message):  # noqa: F811
    path, _, _ = twin_file
    with pytest.raises(ControllerConfigError, match=message):
        load_mpc(with_shed(tmp_path, f'"{path}"', shed))
