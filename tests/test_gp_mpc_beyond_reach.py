"""GP-MPC: a request beyond what the building gives within its bounds and comfort band is said so, per
decision, once in the log, and in the event's report (issue 16, "say so when a request is beyond the
building"). The synthetic Small Office twin of test_gp_mpc_ensemble (its power rises 1 kW per K of
cooling setpoint, bounds 22-27 degC from a base of 24: at most about 2 kW to shed); no EnergyPlus."""

from __future__ import annotations

import logging

import pytest
from test_gp_mpc_ensemble import DAY, mpc_file, run_to_entry, twin_file  # noqa: F401

from bridge.tracking.dr_event import event_report
from controllers.gp_mpc import Decision, load_mpc


def run_through(tmp_path, frame, curtail_kw: float, model: str, keep_file: bool = False):
    """The controller decided from 10:00 to 15:10 of DAY (event 12-13 h simulation time) on the synthetic
    history, asked ``curtail_kw``; (controller, event). ``keep_file``: the MPC file already in ``tmp_path``."""
    path = tmp_path / "mpc.toml" if keep_file else mpc_file(tmp_path, model)
    path.write_text(path.read_text().replace("curtail_kw = 1.5", f"curtail_kw = {curtail_kw}"))
    config = load_mpc(path)
    controller, event = run_to_entry(config, frame)
    for time, row in frame[(frame.index > f"{DAY} 11:10") & (frame.index <= f"{DAY} 15:10")].iterrows():
        controller.decide(time.to_pydatetime(), row.to_dict())
    return controller, event


def test_a_decision_is_beyond_reach_only_at_its_limits_and_clearly_short():
    at = Decision(None, {}, True, 5, 0.1, shortfall_kw=6.0, at_limit=True)
    assert at.beyond_reach(100.0) and not at.beyond_reach(200.0)  # 6 kW short is > 5 % of 100, < 5 % of 200
    assert not Decision(None, {}, True, 5, 0.1, shortfall_kw=60.0, at_limit=False).beyond_reach(100.0)
    assert not Decision(None, {}, True, 5, 0.1, shortfall_kw=-10.0, at_limit=True).beyond_reach(100.0)


@pytest.mark.parametrize("curtail_kw, beyond", [(1.0, False), (40.0, True)])
def test_a_request_beyond_the_bounds_is_said_so_once_and_reported(twin_file, tmp_path, caplog,  # noqa: F811
                                                                   curtail_kw, beyond):
    path, _, frame = twin_file
    caplog.set_level(logging.WARNING, logger="controllers.gp_mpc")
    controller, event = run_through(tmp_path, frame, curtail_kw, f'"{path}"')
    inside = [d for d in controller.decisions if event.begin <= d.time < event.end]
    assert len(inside) == 6
    said = [r.getMessage() for r in caplog.records if "beyond reach" in r.getMessage()]
    report = controller.event_reports[event]
    assert report.event_decisions == 6
    if beyond:  # 40 kW from a twin that gives about 2: the setpoint sits at its lower bound, short every step
        assert all(d.at_limit and d.values["CoolingSetpoint"] == pytest.approx(22.0, abs=0.01) for d in inside)
        assert all(d.shortfall_kw > 30.0 for d in inside)
        assert report.beyond_reach_decisions == 6 and report.as_figures()["beyond_reach_share"]["value"] == 1.0
        assert len(said) == 1 and "40 kW is beyond reach" in said[0]
    else:  # 1 kW is inside the bounds: the optimum is interior, nothing is said
        assert not any(d.beyond_reach(curtail_kw) for d in inside)
        assert report.beyond_reach_decisions == 0 and report.as_figures()["beyond_reach_share"]["value"] == 0.0
        assert said == []


def test_a_report_without_the_controllers_count_has_no_beyond_reach_figure(twin_file):  # noqa: F811
    _, _, frame = twin_file
    power = frame["FacilityPower"]
    report = event_report(power, f"{DAY} 12:00", f"{DAY} 13:00", 1.0, power + 1.0)
    assert report.event_decisions == 0 and "beyond_reach_share" not in report.as_figures()
