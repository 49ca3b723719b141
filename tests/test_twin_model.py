"""GP twin on a short historian of the Small Office, recorded once per session with EnergyPlus."""

import asyncio
import dataclasses
import datetime as dt
import io
import json
import re

import numpy as np
import pytest

from bridge.config import load_config
from bridge.engines import twin as twin_engine
from bridge.engines.twin import TwinEngine, std_tag
from bridge.realtime import open_period
from bridge.historian import load_history
from bridge.tagmap import load_tagmap
from bridge.twin.cli import engines_for
from bridge.twin.collect import collect_history, excitation_for
from bridge.twin.evaluate import evaluate
from bridge.twin.features import feature_sets_for
from bridge.twin.gp import TwinModel
from bridge.twin.persist import ModelFileError, check_compatible, load_model, save_model
from conftest import run_cli

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
TEST_START = "2025-07-04 00:00"


@pytest.fixture(scope="session")
def small_office_db(tmp_path_factory):
    """(config, period, historian file) of the Small Office, Jul 1-4, 10-minute steps, excited."""
    config = load_config(ROOT / "sims/small_office.toml")
    period = dataclasses.replace(config.period, start=dt.date(2025, 7, 1), end=dt.date(2025, 7, 4))
    folder = tmp_path_factory.mktemp("twin_collect")
    building = config.buildings[0]
    engines = engines_for(dataclasses.replace(config, engine_start_timeout_s=120, engine_step_timeout_s=30),
                          folder / "work")
    path = collect_history(building, period, folder / "history.db", engines, excitation_for(building, seed=1))
    return config, period, path


@pytest.fixture(scope="session")
def small_office(small_office_db):
    """(config, period, history DataFrame) of the same historian."""
    config, period, path = small_office_db
    return config, period, load_history(path)


@pytest.fixture(scope="session")
def trained(small_office, tmp_path_factory):
    """A twin of power and one zone temperature trained on Jul 1-3, saved to a file."""
    config, _, history = small_office
    tagmap = config.buildings[0].tagmap
    feature_sets = feature_sets_for(tagmap, ["FacilityPower", "CoreZoneTemp"], output_lags=1, input_lags=1)
    twin = TwinModel.from_feature_sets(feature_sets, n_hyper=200, max_exact=300, n_inducing=150)
    twin.fit(history[history.index < TEST_START])
    path = save_model(twin, tmp_path_factory.mktemp("twin_model") / "small.npz", tagmap=tagmap)
    return twin, path


def test_collected_history_has_excited_inputs(small_office):
    config, period, history = small_office
    assert len(history) == period.steps + 1
    for item in config.buildings[0].tagmap.inputs:
        assert history[item.tag].nunique() > 3, item.tag
        assert history[item.tag].between(item.min, item.max).all(), item.tag
    assert (history["HeatingSetpoint"] < history["CoolingSetpoint"]).all()


def test_predictions_are_finite_with_positive_std(trained, small_office):
    twin, _ = trained
    history = small_office[2]
    for target, (mean, std) in twin.predict(history).items():
        assert np.isfinite(mean[1:]).all() and (std[1:] > 0).all(), target
    model = twin.models["FacilityPower"]
    assert model.approximation_ == "inducing points (DTC, 150)" and len(model.x_train_) > 300


def test_save_load_round_trip_gives_identical_predictions(trained, small_office):
    twin, path = trained
    loaded = load_model(path)
    history = small_office[2]
    for target in twin.targets:
        mean, std = twin.models[target].predict(history)
        mean2, std2 = loaded.models[target].predict(history)
        np.testing.assert_allclose(mean2, mean, rtol=1e-10, equal_nan=True)
        np.testing.assert_allclose(std2, std, rtol=1e-10, equal_nan=True)
    assert loaded.metadata["targets"]["FacilityPower"]["features"]["output_lags"] == 1
    assert "scikit-learn" in loaded.metadata["versions"]


def _rewritten(path, change):
    """The bytes of model file ``path`` saved again after ``change(arrays, metadata)``."""
    with np.load(path, allow_pickle=False) as data:
        arrays = dict(data)
    meta = json.loads(str(arrays.pop("metadata")))
    change(arrays, meta)
    buffer = io.BytesIO()
    np.savez(buffer, metadata=np.array(json.dumps(meta)), **arrays)
    return buffer.getvalue()


def _flipped(raw: bytes, at: float) -> bytes:
    damaged = bytearray(raw)
    damaged[int(len(raw) * at)] ^= 0xFF
    return bytes(damaged)


CORRUPTIONS = {  # name: (bytes of the damaged file from (path, raw bytes), expected message)
    "truncated": (lambda path, raw: raw[: len(raw) // 2], "not a twin model file"),
    "empty": (lambda path, raw: b"", "not a twin model file"),
    "flipped byte": (lambda path, raw: _flipped(raw, 1 / 3), "entry 'm0_.*' cannot be read"),
    "no targets": (lambda path, raw: _rewritten(path, lambda a, m: m.pop("targets")), "no 'targets'"),
    "no n_rows": (lambda path, raw: _rewritten(path, lambda a, m: m["targets"]["FacilityPower"].pop("n_rows")),
                  "'FacilityPower'.*lacks 'n_rows'"),
    "missing array": (lambda path, raw: _rewritten(path, lambda a, m: a.pop("m0_x_train")),
                      "'FacilityPower'.*'m0_x_train' is missing"),
    "short theta": (lambda path, raw: _rewritten(path, lambda a, m: a.update(m0_theta=a["m0_theta"][:-1])),
                    r"'m0_theta' has shape"),
    "small profile": (lambda path, raw: _rewritten(path, lambda a, m: a.update(m0_profile=a["m0_profile"][:, :10])),
                      r"'m0_profile' has shape \(3, 10\), expected \(3, 144\)"),
    "small std_scale": (lambda path, raw: _rewritten(path, lambda a, m: a.update(m1_std_scale=a["m1_std_scale"][:1])),
                        r"'CoreZoneTemp'.*'m1_std_scale' has shape"),
    "narrow x_train": (lambda path, raw: _rewritten(path, lambda a, m: a.update(m0_x_train=a["m0_x_train"][:, 1:])),
                       r"'m0_x_train' has shape"),
    "text y_train": (lambda path, raw: _rewritten(path, lambda a, m: a.update(m0_y_train=a["m0_y_train"].astype(str))),
                     "'m0_y_train' holds <U"),
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_damaged_model_file_gives_model_file_error(trained, tmp_path, corruption):
    _, path = trained
    damage, message = CORRUPTIONS[corruption]
    bad = tmp_path / "bad.npz"
    bad.write_bytes(damage(path, path.read_bytes()))
    with pytest.raises(ModelFileError, match=f"{bad}: .*{message}"):
        load_model(bad)


def test_model_refused_for_building_without_its_tags(trained):
    twin, path = trained
    large = load_tagmap(ROOT / "tagmaps/large_office.toml")  # has no CoreZoneTemp output
    with pytest.raises(ModelFileError, match="CoreZoneTemp"):
        check_compatible(twin, large, path)


def test_model_refused_for_another_building_with_the_same_tags(trained, small_office):
    """The model records the building it learnt; a tag map with the same tags but another name or
    floor area (another building) is refused, naming both."""
    _, path = trained
    twin = load_model(path)
    tagmap = small_office[0].buildings[0].tagmap
    check_compatible(twin, tagmap, path)
    for other in (dataclasses.replace(tagmap, name="Small office B"), dataclasses.replace(tagmap, floor_area_m2=46320.0)):
        with pytest.raises(ModelFileError, match=f"model learnt building '{tagmap.name}' .*not tag map '{other.name}'"):
            check_compatible(twin, other, path)


def test_rolling_forecast_evaluation(trained, small_office):
    twin, _ = trained
    result = evaluate(twin.models["FacilityPower"], small_office[2], TEST_START, horizon=12, every=6)
    assert result["origins"] > 10
    assert len(result["per_step"]["rmse"]) == 12
    assert 0 <= result["overall"]["coverage95"] <= 1
    assert np.isfinite(result["overall"]["rmse"])


def run_twin(path, config, period, cooling_c):
    """Mean predicted power and the first sample of a one-day twin run at a constant cooling setpoint."""
    async def run():
        building = config.buildings[0]
        engine = TwinEngine("Twin", path, building.weather, building.tagmap, period)
        first = await engine.start()
        inputs = {**building.tagmap.defaults, "CoolingSetpoint": cooling_c}
        samples = []
        while (sample := await asyncio.wait_for(engine.step(inputs), 10)) is not None:
            samples.append(sample)
        await engine.stop()
        return first, samples
    return asyncio.run(run())


def test_twin_engine_answers_setpoint_in_physical_direction(trained, small_office):
    _, path = trained
    config, _, _ = small_office
    day = dataclasses.replace(config.period, start=dt.date(2025, 7, 7), end=dt.date(2025, 7, 7))  # a Monday
    first, cool = run_twin(path, config, day, 22.0)
    _, warm = run_twin(path, config, day, 27.0)
    assert first.sim_time_s == 0.0
    assert len(cool) == day.steps and cool[1].sim_time_s == 2 * day.step_s
    assert std_tag("FacilityPower") in first.outputs and first.outputs[std_tag("FacilityPower")] > 0
    engine = TwinEngine("Twin", path, config.buildings[0].weather, config.buildings[0].tagmap, day)
    published = [o.tag for o in engine.published_tagmap.outputs]
    assert set(engine.std_tags) <= set(published) and set(first.outputs) == set(published)
    occupied = slice(9 * 6, 17 * 6)
    power = lambda samples: np.mean([s.outputs["FacilityPower"] for s in samples[occupied]])
    assert power(warm) < power(cool)
    assert np.isfinite(cool[0].outputs["OutdoorTemp"])


def test_twin_engine_without_lags_runs_from_new_year(small_office, tmp_path):
    config, _, history = small_office
    tagmap = config.buildings[0].tagmap
    twin = TwinModel.from_feature_sets(feature_sets_for(tagmap, ["FacilityPower"]), n_hyper=100,
                                       max_exact=200).fit(history)
    path = save_model(twin, tmp_path / "static.npz")
    day = dataclasses.replace(config.period, start=dt.date(2025, 1, 1), end=dt.date(2025, 1, 1))
    first, samples = run_twin(path, config, day, 24.0)
    assert len(samples) == day.steps
    assert all(np.isfinite(s.outputs["FacilityPower"]) for s in samples)


def test_twin_engine_runs_a_day_ending_new_years_eve(trained, small_office):
    _, path = trained
    config, _, _ = small_office
    day = dataclasses.replace(config.period, start=dt.date(2025, 12, 31), end=dt.date(2025, 12, 31))
    first, samples = run_twin(path, config, day, 24.0)
    assert len(samples) == day.steps
    assert all(np.isfinite(s.outputs["FacilityPower"]) and np.isfinite(s.outputs["OutdoorTemp"]) for s in samples)


def test_fit_and_evaluate_from_the_command_line(small_office_db, tmp_path):
    """``twinbridge twin fit`` then ``twin evaluate --plot``, as separate processes; the inducing-point
    path is forced with --max-exact below the row count."""
    _, _, history = small_office_db
    model = tmp_path / "cli.npz"
    fit = run_cli("twin", "fit", str(history), "--tagmap", "tagmaps/small_office.toml", "--targets", "FacilityPower",
               "-l", "1", "--until", TEST_START, "--max-exact", "200", "--inducing", "100", "--n-hyper", "100",
               "-o", str(model))
    assert fit.returncode == 0, fit.stderr
    assert "inducing points (DTC, 100)" in fit.stdout and model.exists()
    assert re.search(r"output-lag sensitivity median -?\d\.\d\d, 95th percentile -?\d\.\d\d", fit.stdout), fit.stdout
    evaluated = run_cli("twin", "evaluate", str(model), str(history), "--from", TEST_START, "--horizon", "12",
                     "--plot", str(tmp_path / "day.png"), "--plot-day", "2025-07-04")
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    assert 0 < report["FacilityPower"]["overall"]["rmse"] < 1e4
    assert (tmp_path / "day_FacilityPower.png").stat().st_size > 10_000
    refused = run_cli("twin", "fit", str(history), "--tagmap", "tagmaps/large_office.toml",
                      "-o", str(tmp_path / "x.npz"))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    # the historian records its building's tag map: another one is refused before any tag is looked up
    assert "twinbridge: error: tagmaps/large_office.toml: tag map 'Large office'" in refused.stderr
    assert "recorded for its building: 'Small office'" in refused.stderr



def test_scenario_forecasts_equal_forecasts_on_the_joined_frame(trained, small_office):
    """What an MPC evaluates (one history, several futures, one batch) is the plain forecast of each."""
    twin, _ = trained
    history = small_office[2]
    model = twin.models["FacilityPower"]
    origin, horizon = 200, 12
    future = history.iloc[origin + 1:origin + 1 + horizon].drop(columns=[model.features.target])
    warmer = future.assign(CoolingSetpoint=future["CoolingSetpoint"] + 2.0)
    mean, std = model.forecast_scenarios(history.iloc[:origin + 1], [future, warmer])
    expected_mean, expected_std = model.forecast(history, np.array([origin]), horizon)
    np.testing.assert_allclose(mean[0], expected_mean[0], rtol=1e-12)
    np.testing.assert_allclose(std[0], expected_std[0], rtol=1e-9)  # batched solves: last-bit differences
    assert not np.allclose(mean[1], mean[0])  # the second scenario is its own


def test_twin_engine_window_slides_without_changing_a_forecast(trained, small_office, monkeypatch):
    """A twin holds a window of steps at a time (a realtime run of years stays small); sliding it every
    10 steps gives the forecasts of one window over the whole day, across New Year."""
    _, path = trained
    config, _, _ = small_office
    days = dataclasses.replace(config.period, start=dt.date(2025, 12, 31), end=dt.date(2026, 1, 1))
    _, whole = run_twin(path, config, days, 24.0)
    monkeypatch.setattr(twin_engine, "WINDOW_STEPS", 10)
    _, slid = run_twin(path, config, days, 24.0)
    assert len(slid) == len(whole) == days.steps
    assert [s.outputs for s in slid] == [s.outputs for s in whole]
    assert [s.sim_time_s for s in slid] == [s.sim_time_s for s in whole]


def test_twin_engine_runs_open_ended_with_a_small_table(trained, small_office):
    """A realtime period of 20 years: the engine's table stays one window long."""
    _, path = trained
    config, _, _ = small_office
    building = config.buildings[0]
    period = open_period(dt.date(2025, 12, 31), 20, 6)

    async def run():
        engine = TwinEngine("Twin", path, building.weather, building.tagmap, period)
        await engine.start()
        sizes = []
        for _ in range(200):
            sample = await engine.step(building.tagmap.defaults)
            sizes.append(len(engine._table))
        return sample, sizes

    sample, sizes = asyncio.run(run())
    assert sample.sim_time_s == 200 * period.step_s and np.isfinite(sample.outputs["FacilityPower"])
    assert max(sizes) <= twin_engine.WINDOW_STEPS + 10
