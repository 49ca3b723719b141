"""The GP twin's known load (issue 16): the scheduled part of a power (lights and plugs: facility minus
HVAC power) as a known input, its future from its own daily profile, on a small synthetic building."""

import json

import numpy as np
import pandas as pd
import pytest

from bridge.tagmap import TagMapError, load_tagmap
from bridge.twin.features import FeatureSet, feature_sets_for
from bridge.twin.gp import GPModel, TwinModel
from bridge.twin.persist import load_model, save_model

ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]
ORIGIN = pd.Timestamp("2025-07-10 12:00")  # a Thursday; the schedule steps +50 kW at 15:00 and -50 kW at 16:00


def synthetic(days: int = 12, seed: int = 0) -> pd.DataFrame:
    """10-minute rows: Power = lights (a fixed daily schedule, kW) + Hvac (10 kW/K of outdoor temperature
    above 15 degC plus a slowly drifting AR(1) term)."""
    index = pd.date_range("2025-07-01 00:10", periods=days * 144, freq="10min")
    middle = index - pd.Timedelta(minutes=5)
    hour = (middle.hour + middle.minute / 60).to_numpy()
    rng = np.random.default_rng(seed)
    outdoor = 24 + np.repeat(rng.normal(0, 3, days), 144) + 6 * np.sin(2 * np.pi * (hour - 9) / 24)
    lights = np.where((hour >= 15) & (hour < 16), 150.0, np.where((hour >= 8) & (hour < 18), 100.0, 20.0))
    drift = np.zeros(len(index))
    for i in range(1, len(index)):
        drift[i] = 0.98 * drift[i - 1] + rng.normal(0, 5)
    hvac = 10 * (outdoor - 15) + drift
    return pd.DataFrame({"Power": lights + hvac, "Hvac": hvac, "Outdoor": outdoor, "Setpoint": 24.0}, index=index)


def fitted(frame: pd.DataFrame, known_load: tuple[str, ...]) -> GPModel:
    """A small GP of Power without time features (only the known load can tell the time of day)."""
    features = FeatureSet("Power", ("Setpoint",), ("Outdoor",), output_lags=1, time_features=False,
                          known_load=known_load)
    return GPModel(features, n_hyper=200, max_iter=50, calibrate=False).fit(frame[frame.index < "2025-07-10"])


def forecast(model: GPModel, frame: pd.DataFrame) -> pd.Series:
    """6 h from ORIGIN, the future without the power tags (as a controller's base future)."""
    origin = int(np.searchsorted(frame.index, ORIGIN))
    future = frame.iloc[origin + 1:origin + 37].drop(columns=["Power", "Hvac"])
    return pd.Series(model.forecast_scenarios(frame.iloc[:origin + 1], [future], with_std=False)[0][0], future.index)


@pytest.fixture(scope="module")
def frame():
    return synthetic()


@pytest.fixture(scope="module")
def known(frame):
    return fitted(frame, ("Power", "-Hvac"))


def test_the_known_load_carries_the_schedule_step_the_plain_twin_misses(frame, known):
    plain = fitted(frame, ())
    for model, carried in ((known, True), (plain, False)):
        mean = forecast(model, frame)
        up = mean["2025-07-10 15:10"] - mean["2025-07-10 15:00"]
        down = mean["2025-07-10 16:10"] - mean["2025-07-10 16:00"]
        if carried:
            assert up == pytest.approx(50, abs=5) and down == pytest.approx(-50, abs=5)
        else:
            assert abs(up) < 25 and abs(down) < 25
    assert known.load_profile_.shape == (3, 144) and known.features.columns[-3:] == [
        "known_load[t]", "known_load[t-1]", "Power[t-1]"]


def test_a_measured_known_load_is_used_and_a_missing_one_is_its_profile(frame, known):
    rows = frame.iloc[1000:1010]
    measured = known.feature_rows(rows)["known_load[t]"].to_numpy()
    assert np.allclose(measured, (rows["Power"] - rows["Hvac"]).to_numpy())
    assert np.allclose(known.feature_rows(rows.drop(columns=["Hvac"]))["known_load[t]"], measured)  # weekdays alike
    changed = rows.assign(Hvac=rows["Hvac"] - 7.0)
    assert np.allclose(known.feature_rows(changed)["known_load[t]"], measured + 7.0)


def test_a_known_load_twin_round_trips_and_old_files_still_load(frame, known, tmp_path):
    path = save_model(TwinModel({"Power": known}), tmp_path / "known.npz")
    again = load_model(path).models["Power"]
    assert again.features == known.features and np.array_equal(again.load_profile_, known.load_profile_)
    assert np.allclose(forecast(again, frame), forecast(known, frame), atol=1e-9)
    # a file written before the known load: no such fields in its features
    plain = fitted(frame.iloc[:1000], ())
    old = save_model(TwinModel({"Power": plain}), tmp_path / "old.npz")
    with np.load(old) as data:
        arrays = {name: data[name] for name in data.files}
    meta = json.loads(str(arrays.pop("metadata")))
    for key in ("known_load", "known_load_lags"):
        del meta["targets"]["Power"]["features"][key]
    with open(old, "wb") as handle:
        np.savez(handle, metadata=np.array(json.dumps(meta)), **arrays)
    loaded = load_model(old).models["Power"]
    assert loaded.features.known_load == () and loaded.load_profile_ is None
    assert np.allclose(loaded.predict(frame.iloc[1000:1010])[0], plain.predict(frame.iloc[1000:1010])[0], equal_nan=True)


def test_the_tag_map_declares_the_known_load(tmp_path):
    tagmap = load_tagmap(ROOT / "tagmaps/large_office.toml")
    power, zone = feature_sets_for(tagmap, ["FacilityPower", "CoreMidTemp"], known_load=True)
    assert power.known_load == ("FacilityPower", "-HvacPower") and zone.known_load == ()
    assert feature_sets_for(tagmap, ["FacilityPower"])[0].known_load == ()  # opt in
    text = (ROOT / "tagmaps/large_office.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace('known_load = ["FacilityPower", "-HvacPower"]', 'known_load = ["FacilityPower", "-Lights"]'))
    with pytest.raises(TagMapError, match=r"bad.toml: outputs\[0\].*known_load names \['-Lights'\]"):
        load_tagmap(bad)
    bad.write_text(text.replace('known_load = ["FacilityPower", "-HvacPower"]', 'known_load = "HvacPower"'))
    with pytest.raises(TagMapError, match="known_load must be a list of output tags"):
        load_tagmap(bad)
