"""GP-MPC's "twin_regression" event baseline (issue 16, round 13; controllers/gp_mpc.py): the per-step mean of
the twin's held baseline and the regression baseline, from a source or the controller's own measurements, and
the fallback to the twin when the regression cannot be made. Small twins on a synthetic Small Office history
(tests/test_gp_mpc_ensemble.py's); no EnergyPlus."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from test_gp_mpc_ensemble import DAY, mpc_file, run_to_entry, twin_file  # noqa: F401 (a fixture)

from bridge.tracking.dr_baseline import regression_baseline
from controllers import gp_mpc
from controllers.base import InputRange
from controllers.gp_mpc import GpMpcController, load_mpc

REGRESSION_KW = 30.0  # the synthetic regression source's baseline


def config_naming_it(tmp_path, path):
    text = mpc_file(tmp_path, f'"{path}"').read_text() + 'baseline = "twin_regression"\n'
    (tmp_path / "mpc.toml").write_text(text)
    config = load_mpc(tmp_path / "mpc.toml")
    assert config.events[0].baseline == "twin_regression"
    return config


def twin_own(controller, event) -> np.ndarray:
    """The twin's own baseline of ``event``: its rollout from the entry history with d fed back."""
    history, future = controller._origins[event]
    model = controller.config.twin.models["FacilityPower"]
    return model.forecast_scenarios(history, [future], with_std=False, offset=controller._offset())[0][0]


def test_an_event_naming_it_tracks_the_mean_of_the_twin_and_the_regression(twin_file, tmp_path):  # noqa: F811
    path, _, frame = twin_file
    config = config_naming_it(tmp_path, path)
    calls = []
    source = lambda event, times: calls.append((event, times)) or np.full(len(times), REGRESSION_KW)
    controller = GpMpcController(config, baselines={"regression": source})
    controller.check({i.tag: InputRange(i.tag, i.min, i.max, i.unit) for i in config.tagmap.inputs})
    for time, row in frame[(frame.index > f"{DAY} 10:00") & (frame.index <= f"{DAY} 11:10")].iterrows():
        controller.decide(time.to_pydatetime(), row.to_dict())
    event = config.events[0]
    assert len(calls) == 1 and calls[0][1][0] == pd.Timestamp(f"{DAY} 11:20")  # once, at entry (11:10), held
    baseline = controller.baselines[event]
    assert list(baseline.index) == list(calls[0][1])
    twin = twin_own(controller, event)
    assert np.abs(twin - REGRESSION_KW).min() > 1.0  # the two differ: the mean is neither
    assert np.allclose(baseline.to_numpy(), 0.5 * (twin + REGRESSION_KW))
    assert event not in controller.baseline_used and controller.baseline_used.get(event, event.baseline) == "twin_regression"
    # what the optimiser tracks in the event: that mean minus the request
    times = list(baseline.index[(baseline.index > event.begin) & (baseline.index <= event.end)])
    reference = controller._reference(times, controller.baselines, np.zeros(len(times)))
    assert np.allclose(reference, baseline.loc[times].to_numpy() - event.curtail_kw)


def test_its_own_regression_from_the_measured_power_and_weather(twin_file, tmp_path, monkeypatch):  # noqa: F811
    """With no source the controller records power, outdoor temperature and humidity and makes the regression
    itself: 2 eligible weekdays here (REGRESSION_DAYS patched), as regression_baseline makes it from the same rows."""
    path, _, frame = twin_file
    monkeypatch.setattr(gp_mpc, "REGRESSION_DAYS", 2)
    config = config_naming_it(tmp_path, path)
    controller = GpMpcController(config)
    controller.check({i.tag: InputRange(i.tag, i.min, i.max, i.unit) for i in config.tagmap.inputs})
    fed = frame[frame.index <= f"{DAY} 11:10"]
    for time, row in fed.iterrows():
        controller.decide(time.to_pydatetime(), row.to_dict())
    event = config.events[0]
    assert event not in controller.baseline_used
    measured = fed[["FacilityPower", "OutdoorTemp", "OutdoorHumidity"]].set_axis(["power", "temperature", "humidity"],
                                                                                 axis=1)
    times = controller.baselines[event].index
    after = pd.date_range(times[0], event.end + gp_mpc.WINDOW, freq="10min")
    weather = controller._weather_at(after)
    forecast = pd.DataFrame({"temperature": weather["Site Outdoor Air Drybulb Temperature"].to_numpy(),
                             "humidity": weather["Site Outdoor Air Relative Humidity"].to_numpy()}, index=after)
    regression = regression_baseline(measured, forecast, event.begin, event.end, times[0] - pd.Timedelta("10min"),
                                     days=2, margin=gp_mpc.WINDOW).kw.reindex(times)
    assert [str(d) for d in regression_baseline(measured, forecast, event.begin, event.end, f"{DAY} 11:10", days=2
                                                ).days] == ["2025-07-01", "2025-07-02"]
    assert np.allclose(controller.baselines[event].to_numpy(), 0.5 * (twin_own(controller, event) + regression))


def test_without_enough_history_it_falls_back_to_the_twin_and_says_so(twin_file, tmp_path, caplog):  # noqa: F811
    path, _, frame = twin_file
    config = config_naming_it(tmp_path, path)
    caplog.set_level(logging.WARNING, logger="controllers.gp_mpc")
    controller, event = run_to_entry(config, frame)
    assert controller.baseline_used[event] == "twin (regression refused)"
    assert np.array_equal(controller.baselines[event].to_numpy(), twin_own(controller, event))
    said = [r.getMessage() for r in caplog.records if "no regression baseline" in r.getMessage()]
    assert len(said) == 1 and "needs 30 eligible days" in said[0] and "twin baseline alone is used" in said[0]
