"""Updates of the GP twin on recent data (bridge/twin/update.py, ``GPModel.update``): a synthetic
historian whose level rises by SHIFT after the training window; no EnergyPlus."""

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bridge.cli import main
from bridge.historian import Historian, load_history
from bridge.tagmap import load_tagmap
from bridge.tracking.registry import FrozenModelError, ModelRegistry
from bridge.twin.features import feature_sets_for
from bridge.twin.gp import TwinModel, shrunk_mean
from bridge.twin.persist import load_model, save_model
from bridge.twin.update import parse_every, update_model_file
from conftest import TAGMAPS

START = dt.datetime(2025, 7, 1)
TRAINED_UNTIL = pd.Timestamp("2025-07-05")  # the model learns Jul 1-4 at the old level
SHIFT_AT = pd.Timestamp("2025-07-05")  # the level is SHIFT higher from here on
SHIFT = 6.0
UPDATE_UNTIL = pd.Timestamp("2025-07-07")  # forecasts of Jul 7 test the update
HORIZON = 12


def write_history(path: Path, tagmap, days: int = 8) -> Path:
    """``days`` days at 10-minute steps: power in a daily cycle that follows the cooling setpoint, SHIFT
    higher from SHIFT_AT; the other outputs (weather among them) random around 25."""
    historian = Historian(path, {"SmallOffice": tagmap})
    rng = np.random.default_rng(0)
    for step in range(days * 144 + 1):
        time = START + dt.timedelta(minutes=10 * step)
        values = {item.tag: item.default + rng.normal() for item in tagmap.inputs}
        level = 20 + 5 * np.sin(2 * np.pi * (time.hour + time.minute / 60) / 24) + values["CoolingSetpoint"] - 24
        level += SHIFT if time >= SHIFT_AT else 0.0
        values.update({item.tag: 25 + rng.normal() for item in tagmap.outputs})  # weather: no shift
        values["FacilityPower"] = level + 0.1 * rng.normal()
        historian.record([("SmallOffice", step, step * 600.0, time, values)])
    historian.close()
    return path


@pytest.fixture(scope="module")
def shifted(tmp_path_factory):
    """(historian file, its DataFrame, model file trained before TRAINED_UNTIL, the tag map)."""
    folder = tmp_path_factory.mktemp("twin_update")
    tagmap = load_tagmap(TAGMAPS / "small_office.toml")
    path = write_history(folder / "history.db", tagmap)
    frame = load_history(path)
    feature_sets = feature_sets_for(tagmap, ["FacilityPower"], output_lags=0, input_lags=0)
    twin = TwinModel.from_feature_sets(feature_sets, n_hyper=100, bias_hours=48, bias_horizon=HORIZON)
    twin.fit(frame[frame.index < TRAINED_UNTIL])
    return path, frame, save_model(twin, folder / "model.npz", tagmap=tagmap), tagmap


def mean_error(model, frame) -> float:
    """Mean of measured - forecast over hourly HORIZON-step forecasts of the day from UPDATE_UNTIL."""
    origins = np.arange(int(np.searchsorted(frame.index, UPDATE_UNTIL)), len(frame) - HORIZON, 6)
    mean, _ = model.forecast(frame, origins, HORIZON)
    rows = origins[:, None] + np.arange(1, HORIZON + 1)[None, :]
    return float(np.mean(frame["FacilityPower"].to_numpy()[rows] - mean))


def test_updated_model_forecasts_follow_the_shift_and_the_old_one_does_not(shifted):
    _, frame, model_path, _ = shifted
    old = load_model(model_path)
    new = old.update(frame, UPDATE_UNTIL)  # default window 21 days: Jul 1-6, 2 of 6 days shifted
    assert new.models["FacilityPower"].training_period_[1] < str(UPDATE_UNTIL)
    assert mean_error(old.models["FacilityPower"], frame) > 0.8 * SHIFT
    assert abs(mean_error(new.models["FacilityPower"], frame)) < 0.2 * SHIFT
    assert old.models["FacilityPower"].bias_ == 0.0  # the old model is unchanged


def test_window_of_recent_days_alone_needs_no_bias(shifted):
    _, frame, model_path, _ = shifted
    twin = load_model(model_path)
    twin.models["FacilityPower"].set_params(update_days=2, bias_hours=0)
    model = twin.update(frame, UPDATE_UNTIL).models["FacilityPower"]
    assert model.training_period_[0] >= str(SHIFT_AT) and model.bias_ == 0.0
    assert abs(mean_error(model, frame)) < 0.2 * SHIFT  # the window (Sat, Sun) has no workday


def test_level_bias_corrects_what_conditioning_on_a_mixed_window_leaves(shifted):
    _, frame, model_path, _ = shifted
    twin = load_model(model_path)
    without = twin.models["FacilityPower"].set_params(bias_hours=0)
    unbiased = without.update(frame, UPDATE_UNTIL)
    biased = without.set_params(bias_hours=48).update(frame, UPDATE_UNTIL)
    assert unbiased.kernel_.theta == pytest.approx(without.kernel_.theta)  # hyperparameters kept
    assert mean_error(unbiased, frame) > 0.2 * SHIFT  # averages old and new days
    assert 0.5 * SHIFT < biased.bias_ < 1.5 * SHIFT  # both shifted days agree: kept whole
    assert abs(mean_error(biased, frame)) < 0.5 * abs(mean_error(unbiased, frame))


def test_level_bias_of_days_that_disagree_is_dropped(shifted):
    """A level that jumps +SHIFT on Jul 5 and -SHIFT on Jul 6 is day-to-day scatter, not a shift: the
    bias is 0 (the mean of the last day alone, the first version's bias, would be -SHIFT), and one day
    alone has no standard error to trust it by."""
    _, frame, model_path, _ = shifted
    model = load_model(model_path).models["FacilityPower"]
    scattered = frame.copy()
    scattered.loc[scattered.index.normalize() == pd.Timestamp("2025-07-06"), "FacilityPower"] -= 2 * SHIFT
    assert model.set_params(bias_hours=24).update(frame, UPDATE_UNTIL).bias_ == 0.0
    assert model.set_params(bias_hours=48).update(scattered, UPDATE_UNTIL).bias_ == 0.0


def test_shrunk_mean_keeps_what_stands_out_of_the_scatter():
    assert shrunk_mean(np.array([5.0, 5.2, 4.8])) == pytest.approx(5.0, rel=0.01)
    assert shrunk_mean(np.array([6.0, -6.0, 4.0])) == 0.0  # mean 1.3, standard error 3.7
    assert shrunk_mean(np.array([6.0])) == 0.0 and shrunk_mean(np.array([])) == 0.0
    assert shrunk_mean(np.array([2.0, 4.0])) == pytest.approx(3.0 * (1 - 1 / 9))  # se^2 = 1, mean 3


def test_bias_survives_save_and_load(shifted, tmp_path):
    _, frame, model_path, _ = shifted
    updated = load_model(model_path).update(frame, UPDATE_UNTIL)
    loaded = load_model(save_model(updated, tmp_path / "updated.npz"))
    assert loaded.models["FacilityPower"].bias_ == updated.models["FacilityPower"].bias_ != 0.0
    expected, _ = updated.predict(frame)["FacilityPower"]
    got, _ = loaded.predict(frame)["FacilityPower"]
    np.testing.assert_allclose(got, expected, rtol=1e-9, equal_nan=True)


def test_each_update_is_a_new_operational_version_with_its_figures(shifted, tmp_path, capsys):
    path, _, model_path, _ = shifted
    registry = tmp_path / "reg"
    for version, until in (("1.0.0", "2025-07-06"), ("1.1.0", "2025-07-07")):
        out = tmp_path / f"model-{until}.npz"
        assert main(["twin", "update", str(model_path), str(path), "--until", until, "--registry", str(registry),
                     "-o", str(out)]) == 0
        current = ModelRegistry(registry).current("Operational")
        assert current.version == version and current.status == "active"
        figures = current.calibration["FacilityPower"]
        assert figures["window"]["end"] < until and figures["window"]["rmse"] < 0.5 * SHIFT
        assert figures["last_day"]["mean_error"] > 0.5 * SHIFT  # the old model missed the shift
        assert load_model(out).metadata["update"]["until"].startswith(until)
    assert [v.status for v in ModelRegistry(registry).versions] == ["superseded", "active"]
    assert "registered as Operational 1.1.0" in capsys.readouterr().out


def test_frozen_baseline_refuses_to_update(shifted, tmp_path, capsys):
    path, _, model_path, _ = shifted
    registry = ModelRegistry(tmp_path / "reg")
    registry.register("Baseline", model_path, path)
    registry.freeze()
    baseline = registry.model_path(registry.current("Baseline"))
    out = tmp_path / "new.npz"
    code = main(["twin", "update", str(baseline), str(path), "--until", "2025-07-07", "--registry",
                 str(tmp_path / "reg"), "-o", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("twinbridge: error: ") and "frozen" in err[0], err
    assert not out.exists() and ModelRegistry(tmp_path / "reg").current("Operational") is None
    with pytest.raises(FrozenModelError):
        update_model_file(model_path, load_history(path), "2025-07-07", out, registry)


@pytest.mark.parametrize("text, seconds", [("24h", 86400), ("30m", 1800), ("1d", 86400), ("600s", 600)])
def test_update_period(text, seconds):
    assert parse_every(text) == seconds


def test_bad_update_input_is_one_line(shifted, tmp_path, capsys):
    path, _, model_path, _ = shifted
    for args in (["--until", "2025-07-07+02:00"], ["--every", "daily"], ["--until", "2025-06-01"]):
        code = main(["twin", "update", str(model_path), str(path), "-o", str(tmp_path / "x.npz"), *args])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and err[0].startswith("twinbridge: error: "), (args, err)


def test_scheduled_update_writes_and_registers_the_newest_model(shifted, tmp_path):
    import asyncio

    from bridge.twin.update import update_every

    path, frame, model_path, _ = shifted
    stop = asyncio.Event()

    def load():  # the daemon's historian read; stop after this round
        stop.set()
        return frame[frame.index < UPDATE_UNTIL]

    registry = ModelRegistry(tmp_path / "reg")
    asyncio.run(asyncio.wait_for(update_every(model_path, load, tmp_path / "out", 3600, stop, registry), 60))
    written, = (tmp_path / "out").glob("*.npz")
    assert written.name == "model-20250707T0000.npz"
    assert ModelRegistry(tmp_path / "reg").current("Operational").version == "1.0.0"
