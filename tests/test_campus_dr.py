"""Campus demand response: the split at equal marginal cost (hand-computed and properties), the refusal of a
building without a twin, the twin's curtailment curve, and a short closed loop of a two-building campus."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from hypothesis import given, settings, strategies as st

from bridge.historian import load_history
from conftest import REPO, TAGMAPS, run_bridge, run_cli
from controllers.base import ControllerConfigError
from controllers.campus_dr import (CampusCoordinator, CurtailmentCurve, curtailment_curve, load_campus_dr,
                                  remaining_curve, resplit, split_request)
from controllers.loop import LoopOptions
from devtools.fuzz import examples
# session fixtures: a short excited run of the Small Office, a twin trained on it
from test_gp_mpc import base_monday  # noqa: F401
from test_twin_model import small_office, small_office_db, trained  # noqa: F401

BASE_SCHEDULE = REPO / "controllers" / "examples" / "large_office_base_schedule.toml"


def curve(name, kw, cost):
    return CurtailmentCurve(name, tuple(kw), tuple(cost))


def test_split_fills_the_request_from_the_cheapest_marginal_cost():
    # A: 10 kW at 1 per kW, then 10 kW at 3 per kW; B: 10 kW at 2 per kW
    curves = {"A": curve("A", [0, 10, 20], [0, 10, 40]), "B": curve("B", [0, 10], [0, 20])}
    split = split_request(curves, 15.0)
    assert split.shares == pytest.approx({"A": 10.0, "B": 5.0}) and split.marginal_cost == 2.0 and split.feasible
    split = split_request(curves, 25.0)
    assert split.shares == pytest.approx({"A": 15.0, "B": 10.0}) and split.marginal_cost == 3.0
    # beyond the 30 kW the campus can shed: each its capacity, the 10 kW excess in proportion (2:1)
    split = split_request(curves, 40.0)
    assert split.shares == pytest.approx({"A": 20 + 20 / 3, "B": 10 + 10 / 3}) and not split.feasible


def test_a_non_convex_curve_is_used_through_its_convex_hull():
    # the 10 kW point (cost 30) lies above the chord from (0, 0) to (20, 40): marginal cost 2 up to 20 kW
    assert curve("A", [0, 10, 20], [0, 30, 40]).segments() == [(20, 2.0)]
    split = split_request({"A": curve("A", [0, 10, 20], [0, 30, 40]), "B": curve("B", [0, 20], [0, 50])}, 30.0)
    assert split.shares == pytest.approx({"A": 20.0, "B": 10.0})


@st.composite
def curves(draw):
    result = {}
    for i in range(draw(st.integers(1, 4))):
        n = draw(st.integers(0, 5))
        kw = draw(st.lists(st.floats(0.1, 500.0), min_size=n, max_size=n))
        cost = draw(st.lists(st.floats(-100.0, 1e5), min_size=n, max_size=n))
        result[f"B{i}"] = curve(f"B{i}", [0.0, *kw], [0.0, *cost])
    return result


@settings(max_examples=examples(100), deadline=None)
@given(campus=curves(), request=st.floats(0.0, 3000.0))
def test_parts_sum_to_the_request_within_each_capacity(campus, request):
    split = split_request(campus, request)
    assert sum(split.shares.values()) == pytest.approx(request, abs=1e-6)
    assert all(share >= -1e-9 for share in split.shares.values())
    if split.feasible:
        assert all(split.shares[name] <= split.capacity_kw[name] + 1e-6 for name in campus)
    else:
        assert request > sum(split.capacity_kw.values())


def flat(segments) -> list[float]:
    """(kW, cost) segments as one list (pytest >= 9.2's approx takes no nested sequences)."""
    return [value for segment in segments for value in segment]


def test_a_resplit_adds_the_gap_on_what_the_curves_offer_beyond_the_shares():
    # A: 10 kW at 1 per kW, then 10 kW at 3 per kW; B: 10 kW at 2 per kW; C: 30 kW at 0.5 per kW
    curves = {"A": curve("A", [0, 10, 20], [0, 10, 40]), "B": curve("B", [0, 10], [0, 20]),
              "C": curve("C", [0, 30], [0, 15])}
    assert flat(remaining_curve(curves["A"], 5.0).segments()) == pytest.approx([5.0, 1.0, 10.0, 3.0])
    assert flat(remaining_curve(curves["A"], 12.0).segments()) == pytest.approx([8.0, 3.0])
    assert remaining_curve(curves["B"], 10.0).kw == (0.0,)
    # C is short of its share and keeps it; the 8 kW gap: A's 5 kW at 1, then B's 3 kW at 2
    shares, within = resplit(curves, {"A": 5.0, "B": 5.0, "C": 20.0}, 8.0, ["A", "B"])
    assert shares == pytest.approx({"A": 10.0, "B": 8.0, "C": 20.0}) and within
    shares, within = resplit(curves, {"A": 5.0, "B": 5.0, "C": 20.0}, 30.0, ["A", "B"])  # beyond A's 15 and B's 5
    assert sum(shares.values()) == pytest.approx(60.0) and not within


def campus_dr_file(tmp_path, buildings: dict[str, str | None], request: float = 3.0, end: str = "16:00"):
    entries = "".join(f'\n[[buildings]]\nname = "{name}"\n' + (f'mpc = "{mpc}"\n' if mpc else "")
                      for name, mpc in buildings.items())
    path = tmp_path / "campus_dr.toml"
    path.write_text(f'request_kw = {request}\ndate = "2025-07-07"\nstart = "13:00"\nend = "{end}"\n' + entries)
    return path


def test_a_building_without_twin_is_refused(tmp_path):
    path = campus_dr_file(tmp_path, {"Warehouse": None})
    with pytest.raises(ControllerConfigError, match=r"campus_dr.toml: buildings\[0\]: building 'Warehouse' has no twin "
                                                    r".* cannot be forecast"):
        load_campus_dr(path)
    done = run_cli("controller", "campus-dr", "--endpoint", "opc.tcp://127.0.0.1:1", "--config", str(path), timeout_s=120)
    assert done.returncode == 2 and "building 'Warehouse' has no twin" in done.stderr, done.stderr


def mpc_file(tmp_path, model_path, name: str):
    path = tmp_path / f"{name}_mpc.toml"
    path.write_text(f'schedule = "{BASE_SCHEDULE}"\nmodel = "{model_path}"\ntagmap = "{TAGMAPS / "small_office.toml"}"\n'
                    f'weather = "ref:usa_il_chicago"\n\n[mpc]\nhorizon_steps = 6\nblocks = 2\ndecide = ["CoolingSetpoint"]\n'
                    f'bounds = {{ CoolingSetpoint = [22.0, 27.0] }}\ncomfort = {{ CoreZoneTemp = [20.0, 27.0] }}\n')
    return path


def test_the_twin_forecasts_a_curtailment_curve(trained, small_office, tmp_path):  # noqa: F811
    _, model_path = trained
    config = load_campus_dr(campus_dr_file(tmp_path, {"SmallOffice": mpc_file(tmp_path, model_path, "a")}))
    history = small_office[2]
    history = history[history.index <= "2025-07-03 10:00"].iloc[-4:]
    result = curtailment_curve(config.buildings[0], history, dt.timedelta(minutes=10),
                               (dt.datetime(2025, 7, 3, 12), dt.datetime(2025, 7, 3, 15)),
                               {"CoolingSetpoint": (22.0, 27.0)}, dt.date(2025, 7, 1))
    assert result.kw[0] == 0.0 and result.capacity_kw > 0.5  # a warmer zone sheds power
    assert list(result.levels) == sorted(result.levels) and all(c >= 0 for c in result.cost)


def test_a_building_short_of_its_share_has_the_gap_moved_to_the_others(trained, tmp_path):  # noqa: F811
    """The coordinator's review: after REVIEW_STEPS event steps in which OfficeA sheds 0.5 of its
    2 kW and OfficeB its 1 kW, the campus is 1.5 kW short: B's share grows by it (on B's curve), A
    keeps its share, and B's GP-MPC event asks the new share; a gap within 5 % changes nothing."""
    from controllers.base import InputRange
    from controllers.campus_dr import REVIEW_STEPS

    _, model_path = trained
    names = ("OfficeA", "OfficeB")
    coordinator = CampusCoordinator(load_campus_dr(campus_dr_file(tmp_path, {n: mpc_file(tmp_path, model_path, n)
                                                                              for n in names})))
    for name, share in coordinator.buildings.items():
        share.check({i.tag: InputRange(i.tag, i.min, i.max, i.unit) for i in share.building.mpc.tagmap.inputs})
    coordinator.offer(curve("OfficeA", [0, 2, 4], [0, 2, 8]))
    coordinator.offer(curve("OfficeB", [0, 1, 4], [0, 1.5, 6]))  # 1.5 per kW, then 1.5 per kW
    assert coordinator.split.shares == pytest.approx({"OfficeA": 2.0, "OfficeB": 1.0})
    for name, share in coordinator.buildings.items():
        share._start_event(coordinator.split.shares[name])
    event = coordinator.buildings["OfficeA"].current_event
    steps = [event.begin + dt.timedelta(minutes=10 * (k + 1)) for k in range(2 * REVIEW_STEPS)]
    for time in steps[:REVIEW_STEPS]:
        coordinator.review("OfficeA", time, 0.5)
        coordinator.review("OfficeB", time, 1.0)
    b = coordinator.buildings["OfficeB"]
    assert b.share_kw == pytest.approx(2.5) and coordinator.buildings["OfficeA"].share_kw == 2.0
    assert b.mpc.config.events == (b.current_event,) and b.current_event.curtail_kw == pytest.approx(2.5)
    for time in steps[REVIEW_STEPS:]:  # 0.5 + 2.4 kW: within 5 % of the 3 kW request
        coordinator.review("OfficeA", time, 0.5)
        coordinator.review("OfficeB", time, 2.4)
    assert len(coordinator.resplits) == 1


@pytest.mark.engine
def test_campus_closed_loop_splits_and_sheds(trained, base_monday, tmp_path):  # noqa: F811
    """Two Small Offices sharing one twin in one lockstep campus, one coordinator process: the 3 kW
    request (a 1 h event) is split before the event, each building's GP-MPC raises its cooling
    setpoint in the event and the campus draws less than the same day under the base schedule (twice
    test_gp_mpc's base Monday of one Small Office: the same model, weather and schedule)."""
    _, model_path = trained
    names = ("OfficeA", "OfficeB")
    campus = tmp_path / "campus.toml"
    campus.write_text('[campus]\nname = "TestSite"\n\n[run]\nstart = "07-07"\nend = "07-07"\ntimesteps_per_hour = 6\n'
                      + "".join(f'\n[[buildings]]\nname = "{n}"\nmodel = "ref:small_office"\nweather = "ref:usa_il_chicago"\n'
                                f'tagmap = "{TAGMAPS / "small_office.toml"}"\n' for n in names))
    config = load_campus_dr(campus_dr_file(tmp_path, {n: mpc_file(tmp_path, model_path, n) for n in names},
                                           end="14:00"))
    coordinator = CampusCoordinator(config)
    options = LoopOptions(mode="exchange", step_timeout_s=120)
    with run_bridge(campus, tmp_path, "--clock", "lockstep", "--lockstep-timeout", "60", keep_serving=False) as bridge:
        reports = asyncio.run(coordinator.run(bridge.endpoint, None, options))
        assert bridge.wait() == 0 and all(r.final_status == "Finished" for r in reports.values()), bridge.log
        runs = {"dr": {n: load_history(bridge.historian(), n) for n in names},
                "base": {n: base_monday[1] for n in names}}
    split = coordinator.split
    assert split is not None and sum(split.shares.values()) == pytest.approx(3.0)
    event = lambda frame: frame[(frame.index > "2025-07-07 12:00") & (frame.index <= "2025-07-07 13:00")]
    total = {key: sum(event(frame)["FacilityPower"].mean() for frame in run.values()) for key, run in runs.items()}
    assert total["dr"] < total["base"] - 0.5
    for name, share in coordinator.buildings.items():
        assert share.share_kw >= split.shares[name]  # a re-split only raises shares
        if share.share_kw >= 0.5:
            assert share.all_decisions and event(runs["dr"][name])["CoolingSetpoint"].mean() > 24.5


toml_values = st.one_of(st.integers(-10, 1000), st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12),
                        st.sampled_from(['"2025-07-07"', '"13:00"', '"25:00"', '"2025-02-30"']).map(lambda s: s.strip('"')))


@settings(max_examples=examples(50), deadline=None)
@given(values=st.fixed_dictionaries({}, optional={key: toml_values for key in ("request_kw", "date", "start", "end",
                                                                                 "energy_weight", "rebound_hours")}))
def test_any_campus_file_loads_or_is_refused_naming_the_file(tmp_path_factory, values):
    """Whatever the values (numbers, text, impossible dates), a bad campus file is a ControllerConfigError
    naming it, never another exception (here every file ends refused: its building has no twin)."""
    import json

    path = tmp_path_factory.mktemp("campus") / "campus_dr.toml"
    path.write_text("".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items())
                    + '\n[[buildings]]\nname = "Warehouse"\n')
    with pytest.raises(ControllerConfigError, match="campus_dr.toml"):
        load_campus_dr(path)
