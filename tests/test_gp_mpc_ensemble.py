"""GP-MPC with an ensemble of power twins (issue 16; controllers/gp_mpc.py "Ensemble"): the median
baseline, the one-file configuration, refused files. Small twins fitted on a synthetic Small Office
history; no EnergyPlus."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, TAGMAPS

from bridge.tagmap import load_tagmap
from bridge.twin.features import feature_sets_for
from bridge.twin.gp import TwinModel
from bridge.twin.persist import save_model
from controllers.base import ControllerConfigError, InputRange
from controllers.gp_mpc import (
    GpMpcController,
    closest_member,
    load_mpc,
    median_baseline,
)

BASE_SCHEDULE = REPO / "controllers" / "examples" / "large_office_base_schedule.toml"
DAY = "2025-07-03"  # the event: 13-14 h on the schedule's clock, 12-13 h simulation time
SHIFTS_KW = (7.0, -3.0, 1.0)  # the fake members' baselines: the twin's plus these; median +1, member 2 closest


def synthetic_history(tagmap, days: int = 3) -> pd.DataFrame:
    """``days`` days from Jul 1 at 10-minute steps: power in a daily cycle that follows the cooling setpoint,
    the core zone near 23 degC, the other outputs (weather) random around 25."""
    rng = np.random.default_rng(0)
    index = pd.date_range("2025-07-01 00:10", periods=days * 144, freq="10min")
    frame = pd.DataFrame({item.tag: item.default + rng.normal(size=len(index)) for item in tagmap.inputs}, index=index)
    for item in tagmap.outputs:
        frame[item.tag] = 25 + rng.normal(size=len(index))
    hours = index.hour + index.minute / 60
    frame["FacilityPower"] = 20 + 5 * np.sin(2 * np.pi * hours / 24) + frame["CoolingSetpoint"] - 24 \
        + 0.1 * rng.normal(size=len(index))
    frame["CoreZoneTemp"] = 23 + 0.3 * (frame["CoolingSetpoint"] - 24) + 0.1 * rng.normal(size=len(index))
    return frame


@pytest.fixture(scope="module")
def twin_file(tmp_path_factory):
    """(a twin file of FacilityPower and CoreZoneTemp, one of CoreZoneTemp alone, the synthetic history)."""
    folder = tmp_path_factory.mktemp("ensemble")
    tagmap = load_tagmap(TAGMAPS / "small_office.toml")
    frame = synthetic_history(tagmap)
    feature_sets = feature_sets_for(tagmap, ["FacilityPower", "CoreZoneTemp"], output_lags=1, input_lags=1)
    twin = TwinModel.from_feature_sets(feature_sets, n_hyper=60, max_exact=200, n_inducing=80)
    twin.fit(frame[frame.index < DAY])
    zone_only = TwinModel({"CoreZoneTemp": twin.models["CoreZoneTemp"]})
    return (save_model(twin, folder / "twin.npz", tagmap=tagmap),
            save_model(zone_only, folder / "zone_only.npz", tagmap=tagmap), frame)


def mpc_file(tmp_path, model: str):
    path = tmp_path / "mpc.toml"
    path.write_text(f'schedule = "{BASE_SCHEDULE}"\nmodel = {model}\ntagmap = "{TAGMAPS / "small_office.toml"}"\n'
                    'weather = "ref:usa_il_chicago"\n\n[mpc]\nhorizon_steps = 6\nblocks = 2\n'
                    'decide = ["CoolingSetpoint"]\nbounds = { CoolingSetpoint = [22.0, 27.0] }\n'
                    'comfort = { CoreZoneTemp = [20.0, 27.0] }\n\n'
                    f'[[events]]\ndate = "{DAY}"\nstart = "13:00"\nend = "14:00"\ncurtail_kw = 1.5\n')
    return path


def run_to_entry(config, frame):
    """A controller fed the history up to the event's entry (11:10 with the 1 h horizon); (controller, event)."""
    controller = GpMpcController(config)
    controller.check({i.tag: InputRange(i.tag, i.min, i.max, i.unit) for i in config.tagmap.inputs})
    for time, row in frame[(frame.index > f"{DAY} 10:00") & (frame.index <= f"{DAY} 11:10")].iterrows():
        controller.decide(time.to_pydatetime(), row.to_dict())
    return controller, config.events[0]


def test_median_baseline_and_the_member_closest_to_it():
    made = np.array([[10.0, 20.0, 30.0], [12.0, 18.0, 90.0], [11.0, 25.0, 29.0]])
    assert median_baseline(made).tolist() == [11.0, 20.0, 30.0]
    member, distance = closest_member(made, median_baseline(made))
    assert member == 0 and distance[0] == pytest.approx(np.sqrt(1 / 3))
    assert closest_member(np.array([[1.0], [3.0]]), np.array([2.0]))[0] == 0  # a tie: the first


def test_the_ensemble_tracks_the_median_of_its_members_baselines(twin_file, tmp_path, caplog):
    """Three members, copies of one twin whose baselines are made SHIFTS_KW apart (fake members): the
    event's baseline is the twin's own plus the median shift, the spread at entry is logged, and the
    optimiser rolls out the member closest to the median."""
    path, _, frame = twin_file
    copies = [shutil.copy(path, tmp_path / f"member{k}.npz") for k in range(3)]
    config = load_mpc(mpc_file(tmp_path, "[" + ", ".join(f'"{c}"' for c in copies) + "]"))
    assert [name for name, _ in config.power_members()] == [str(c) for c in copies]
    for (_, model), shift in zip(config.power_members(), SHIFTS_KW):
        made = model.forecast_scenarios
        model.forecast_scenarios = lambda *a, made=made, shift=shift, **k: (made(*a, **k)[0] + shift, None)
    caplog.set_level(logging.INFO, logger="controllers.gp_mpc")
    controller, event = run_to_entry(config, frame)
    history, future = controller._origins[event]
    own = config.power_members()[1][1].forecast_scenarios(history, [future], with_std=False,
                                                           offset=controller._offset(1))[0][0] - SHIFTS_KW[1]
    assert np.allclose(controller.baselines[event].to_numpy(), own + 1.0)
    assert controller.ensemble_entry[event] == {"spread_mean_kw": pytest.approx(10.0), "spread_max_kw": pytest.approx(10.0),
                                                "dynamics_member": 2.0}
    assert controller._dynamics == 2 and set(controller._solvers) == {2}
    said = [r.getMessage() for r in caplog.records if "power twins' entry baselines" in r.getMessage()]
    assert len(said) == 1 and "spread (max - min) mean 10.0 kW" in said[0] and f"rolls out {copies[2]}" in said[0]


def test_one_twin_file_is_the_controller_as_before(twin_file, tmp_path):
    """``model = "f"`` and ``model = ["f"]``: no ensemble, the same decisions, and the baseline is the twin's own
    rollout with its disturbance estimate (nothing of the ensemble's median or spread)."""
    path, _, frame = twin_file
    runs = []
    for model in (f'"{path}"', f'["{path}"]'):
        config = load_mpc(mpc_file(tmp_path, model))
        assert config.ensemble == () and len(config.power_members()) == 1
        runs.append(run_to_entry(config, frame))
    (single, event), (listed, _) = runs
    assert [d.values for d in single.decisions] == [d.values for d in listed.decisions] and single.decisions
    assert single.baselines[event].equals(listed.baselines[event]) and not single.ensemble_entry
    history, future = single._origins[event]
    model = single.config.twin.models["FacilityPower"]
    expected = model.forecast_scenarios(history, [future], with_std=False, offset=single._offset())[0][0]
    assert np.array_equal(single.baselines[event].to_numpy(), expected)


@pytest.mark.parametrize("member, message", [
    ('"missing.npz"', "model 'missing.npz': twin model file not found"),
    ('"garbage.npz"', "model 'garbage.npz': "),
    ('"ZONE"', "has no model of 'FacilityPower' (every file of the ensemble needs one)"),
    ('"TWIN"', "expected a twin file or a list of distinct twin files"),
])
def test_a_bad_file_in_the_ensemble_is_one_clear_error_naming_it(twin_file, tmp_path, member, message):
    path, zone_only, _ = twin_file
    (tmp_path / "garbage.npz").write_bytes(b"not a model")
    member = member.replace("ZONE", str(zone_only)).replace("TWIN", str(path))
    with pytest.raises(ControllerConfigError) as caught:
        load_mpc(mpc_file(tmp_path, f'["{path}", {member}]'))
    text = str(caught.value)
    assert message in text and "mpc.toml" in text and "\n" not in text
    if member != f'"{path}"':
        assert member.strip('"') in text


def test_the_response_gain_scales_the_predicted_response_about_the_base_rollout(twin_file, tmp_path):
    """``response_gain = k``: the optimiser's power at any decisions is base + k (twin - base), base the
    rollout under the base schedule; k = 1 is the twin itself. A gain outside (0, 2] is refused."""
    from controllers.gp_mpc_solver import MpcSolver

    path, _, frame = twin_file
    text = mpc_file(tmp_path, f'"{path}"').read_text()
    predicted = {}
    for gain in (1.0, 0.5):
        (tmp_path / "mpc.toml").write_text(text.replace("[mpc]\n", f"[mpc]\nresponse_gain = {gain}\n"))
        config = load_mpc(tmp_path / "mpc.toml")
        assert config.response_gain == gain
        controller, event = run_to_entry(config, frame)
        history, future = controller._origins[event]
        future = future.iloc[:config.horizon]
        solver = MpcSolver(config, {"CoolingSetpoint": (22.0, 27.0)})
        base = config.twin.models["FacilityPower"].forecast_scenarios(history, [future], with_std=False)[0][0]
        params = solver.parameters(solver.rollout.tables_for(history, future), 0.0, base, np.ones(len(base)),
                                   np.ones(len(base), bool), 50.0, np.array([0.4]),
                                   {"CoreZoneTemp": np.zeros(len(base))}, base)
        at_base = controller._schedule_decisions(list(future.index))
        moved = np.clip(at_base + 0.4, 0.0, 1.0)
        predicted[gain] = [solver.evaluate(x, params)[0] for x in (at_base, moved)]
    (own_base, own_moved), (half_base, half_moved) = predicted[1.0], predicted[0.5]
    assert np.allclose(half_base - own_base, 0.5 * (own_base - own_base), atol=1e-6)
    assert np.allclose(half_moved - own_base, 0.5 * (own_moved - own_base), atol=1e-6)
    assert np.abs(own_moved - own_base).max() > 0.5  # the move does change the twin's power
    (tmp_path / "mpc.toml").write_text(text.replace("[mpc]\n", "[mpc]\nresponse_gain = 0\n"))
    with pytest.raises(ControllerConfigError, match=r"response_gain must be in \(0, 2\], got 0"):
        load_mpc(tmp_path / "mpc.toml")
