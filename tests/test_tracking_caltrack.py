"""CalTRACK 2.0 methods on synthetic data with a known answer, their sufficiency rules, and `mv report` input."""

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.cli import main
from bridge.tracking.caltrack import caltrack_savings
from bridge.tracking.caltrack_daily import BillingModel, DailyModel, monthly_bills
from bridge.tracking.caltrack_data import BaselineDisqualified
from bridge.tracking.caltrack_hourly import HourlyModel, bin_features, valid_bins
from bridge.tracking.runfiles import RunFileError, load_runs


def weather(start: str, days: int, seed: int = 0) -> pd.Series:
    """Hourly outdoor temperature (degC): a seasonal cycle, a daily cycle and noise."""
    index = pd.date_range(start, periods=days * 24, freq="h")
    rng = np.random.default_rng(seed)
    season = -12 * np.cos(2 * np.pi * (index.day_of_year.to_numpy() - 15) / 365)
    return pd.Series(10 + season + 4 * np.sin(2 * np.pi * (index.hour - 9) / 24) + rng.normal(0, 2, len(index)), index)


def daily_use(temperature: pd.Series, noise: float = 3.0, seed: int = 1) -> pd.Series:
    """Hourly kWh whose days follow 100 + 8 HDD(12 degC) + 5 CDD(20 degC) kWh per day (24 equal hours)."""
    t = temperature.resample("D").mean()
    upd = 100 + 8 * np.maximum(12 - t, 0) + 5 * np.maximum(t - 20, 0)
    upd = upd + np.random.default_rng(seed).normal(0, noise, len(t))
    return pd.Series(np.repeat(upd.to_numpy() / 24, 24), temperature.index)


def test_daily_model_recovers_a_known_change_point_model():
    temperature = weather("2025-01-01", 365)
    model = DailyModel().fit(daily_use(temperature), temperature)
    fit = model.fit_
    assert fit.kind == "hdd_cdd" and fit.n_params == 3
    assert fit.intercept == pytest.approx(100, abs=2) and fit.beta_hdd == pytest.approx(8, rel=0.05)
    assert fit.heating_bp_c == pytest.approx(12, abs=0.6) and fit.cooling_bp_c == pytest.approx(20, abs=1.2)
    checks = model.guideline14_
    assert abs(checks["daily"]["nmbe_pct"]) < 1e-6 and checks["monthly"]["passes"]
    new = weather("2026-01-01", 365, seed=5)
    truth = daily_use(new, noise=0).resample("D").sum()
    assert model.predict(new).sum() == pytest.approx(truth.sum(), rel=0.005)


def test_daily_model_without_weather_dependence_is_flat():
    temperature = weather("2025-01-01", 365)
    flat = pd.Series(5.0, temperature.index) * (1 + np.random.default_rng(2).normal(0, 0.01, len(temperature)))
    model = DailyModel().fit(flat, temperature)
    # the grid search may pick a slope by chance (61 balance points, no p-value screen in 2.0), never a large one
    predicted = model.predict(weather("2026-01-01", 365, seed=6))
    assert predicted.mean() == pytest.approx(120, rel=0.005) and predicted.std() < 0.005 * 120


def test_daily_model_keeps_a_positive_slope_that_is_not_significant():
    """CalTRACK 2.0 3.4.3.2 qualifies a candidate on signs alone (2.0 removed 1.0's p < 0.1 screen). Hand-computed:
    HDD(15 degC) x = 1..12 K-day, use = 100 + 0.1 x + 0.8 e with e = +-1 orthogonal to 1 and x, so OLS gives exactly
    mu = 100, beta_H = 0.1; SS_res = 12 x 0.64 = 7.68, S_xx = 143, t = 0.1 / sqrt(0.768 / 143) = 1.36 (p = 0.20 on
    10 degrees of freedom: the 1.0 screen rejected it), adjusted R^2 = 1 - 0.768 / ((1.43 + 7.68) / 11) = 0.073 > 0,
    the intercept-only model's 0: the HDD model is selected."""
    x = np.arange(1.0, 13.0)
    e = np.array([1, -1, -1, 1] * 3, float)
    days = pd.date_range("2025-01-01", periods=12, freq="D")
    daily = pd.DataFrame({"kwh": 100 + 0.1 * x + 0.8 * e, "temp_c": 15 - x}, index=days)
    fit = DailyModel(heating_bp_range_c=(15.0, 15.0), fit_cdd=False).fit_daily(daily).fit_
    assert fit.kind == "hdd_only" and fit.heating_bp_c == 15.0
    assert fit.intercept == pytest.approx(100) and fit.beta_hdd == pytest.approx(0.1)
    assert fit.adj_r2 == pytest.approx(1 - 0.768 / (9.11 / 11))


def test_billing_model_fits_calendar_month_bills_weighted_by_days():
    temperature = weather("2025-01-01", 365)
    bills = monthly_bills(daily_use(temperature, noise=0))
    assert len(bills) == 12 and bills["kwh"].sum() == pytest.approx(daily_use(temperature, noise=0).sum())
    model = BillingModel().fit(bills, temperature)
    assert model.fit_.beta_hdd == pytest.approx(8, rel=0.1) and model.guideline14_["billing"]["passes"]
    assert model.predict(bills, temperature).sum() == pytest.approx(bills["kwh"].sum(), rel=0.005)


@pytest.mark.parametrize("days, gap_days, reason", [
    (300, 0, "baseline spans 300 days, CalTRACK 2.2.1.1 needs 365"),
    (365, 38, "38 days without consumption or temperature, CalTRACK 2.2.1.2 allows 37"),
    (365, 37, None),
])
def test_daily_baseline_length_and_missing_days(days, gap_days, reason):
    temperature = weather("2025-01-01", days)
    use = daily_use(temperature)
    use = use[(use.index < "2025-03-01") | (use.index >= pd.Timestamp("2025-03-01") + pd.Timedelta(days=gap_days))]
    if reason is None:
        assert DailyModel().fit(use, temperature).sufficiency_.details["missing_days"] == 37
        return
    with pytest.raises(BaselineDisqualified, match=reason) as caught:
        DailyModel().fit(use, temperature)
    assert not caught.value.sufficiency.qualified


def test_a_day_counts_with_half_its_hours_and_zero_electricity_is_missing():
    temperature = weather("2025-01-01", 365)
    use = daily_use(temperature, noise=0)
    use[(use.index.month == 2) & (use.index.hour < 12)] = 0.0  # half of each February day: kept, filled
    use[(use.index.month == 3) & (use.index.hour < 13)] = np.nan  # 13 hours missing: March days are missing
    model = DailyModel().fit(use, temperature)
    assert model.sufficiency_.details["missing_days"] == 31
    assert DailyModel.measured(use, temperature)["2025-02-10"] == pytest.approx(24 * use["2025-02-10 12:00"])


def test_reporting_temperatures_beyond_the_baseline_are_flagged():
    temperature = weather("2025-01-01", 365)
    hot = weather("2026-01-01", 365) + 15
    report = caltrack_savings("caltrack-daily", daily_use(temperature), temperature, daily_use(hot), hot)
    assert report.savings is not None and any("CalTRACK 3.7.5.2" in w for w in report.warnings)


def test_temperature_bins_merge_sparse_bins():
    # 30 hours below 30 degF, 5 in the 30-45 degF bin (merged with its upper neighbour), the rest above 90 degF
    t = np.concatenate([np.full(30, -5.0), np.full(5, 3.0), np.full(40, 10.0), np.full(40, 35.0)])
    assert valid_bins(t, (-1.11, 7.22, 12.78, 18.33, 23.89, 32.22), 20) == pytest.approx([-1.11, 12.78])
    features = bin_features(np.array([-5.0, 3.0, 40.0]), [-1.11, 12.78])
    assert features.sum(axis=1) == pytest.approx([-5.0, 3.0, 40.0])  # the features add up to the temperature


def hourly_office(temperature: pd.Series, lighting: float = 1.0) -> pd.Series:
    index = temperature.index
    occupied = (index.day_of_week < 5) & (index.hour >= 8) & (index.hour < 18)
    t = temperature.to_numpy()
    return pd.Series(5 + 10 * lighting * occupied + 0.5 * np.maximum(t - 18, 0) * occupied
                     + 0.3 * np.maximum(10 - t, 0), index)


def test_hourly_model_month_needs_its_neighbours_and_predicts_the_known_load():
    temperature = weather("2025-01-01", 90)  # January to March: only February has both neighbours
    model = HourlyModel().fit(hourly_office(temperature), temperature)
    assert model.sufficiency_.details["months_with_model"] == ["Feb"]
    february = temperature["2025-02"] + np.random.default_rng(3).normal(0, 1, len(temperature["2025-02"]))
    assert model.predict(february).sum() == pytest.approx(hourly_office(february).sum(), rel=0.005)
    assert model.guideline14_["hourly"]["passes"] and model.n_params_ > 168
    with pytest.raises(BaselineDisqualified, match="needs Mar, for which the baseline has no model"):
        model.predict(temperature["2025-03"])


def test_hourly_month_under_90_percent_of_hours_has_no_model():
    temperature = weather("2025-01-01", 90)
    use = hourly_office(temperature)
    use = use[~((use.index.month == 1) & (use.index.day <= 4))]  # 4 of 31 days: 87 % of January
    with pytest.raises(BaselineDisqualified, match="no calendar month has over 90 %"):
        HourlyModel().fit(use, temperature)


def test_six_month_baseline_gives_no_figure_by_any_caltrack_method():
    temperature = weather("2025-07-01", 184)
    reporting = weather("2026-01-01", 365, seed=4)
    for method in ("caltrack-daily", "caltrack-billing", "caltrack-hourly"):
        report = caltrack_savings(method, hourly_office(temperature), temperature,
                                  hourly_office(reporting, 0.5), reporting)
        assert report.savings is None and report.disqualified, method
        assert report.summary()["savings"] is None


# --- mv report input -------------------------------------------------------------------------
def meter_csvs(tmp_path, split: str = "2025-01-01") -> tuple[list[str], str]:
    """Three weeks of end-stamped hourly power spanning New Year, split into two files, and a reporting file."""
    hours = pd.date_range("2024-12-18 01:00", periods=24 * 21, freq="h")
    temperature = 5 + 5 * np.sin(2 * np.pi * (hours.hour - 9) / 24)
    occupied = (hours.day_of_week < 5) & (hours.hour >= 8) & (hours.hour < 18)
    frame = pd.DataFrame({"FacilityPower [kW]": 20 + 10 * occupied + np.maximum(10 - temperature, 0),
                          "OutdoorTemp [degC]": temperature}, index=pd.Index(hours, name="time"))
    frame[frame.index < split].to_csv(tmp_path / "pre_2024.csv")
    frame[frame.index >= split].to_csv(tmp_path / "pre_2025.csv")
    (frame[-24 * 7:] * [0.9, 1.0]).set_axis(hours[-24 * 7:] + pd.Timedelta(days=7)).rename_axis("time").to_csv(
        tmp_path / "post.csv")
    return [str(tmp_path / "pre_2024.csv"), str(tmp_path / "pre_2025.csv")], str(tmp_path / "post.csv")


def test_mv_report_takes_a_baseline_of_several_files_across_calendar_years(tmp_path, capsys):
    baseline, reporting = meter_csvs(tmp_path)
    code = main(["mv", "report", "--method", "towt", "--baseline-measured", *baseline, "--measured", reporting,
                 "--out", str(tmp_path / "two")])
    assert code == 0
    two = json.loads((tmp_path / "two" / "savings.json").read_text())
    pd.concat([pd.read_csv(p, index_col=0) for p in baseline]).to_csv(tmp_path / "whole.csv")
    assert main(["mv", "report", "--method", "towt", "--baseline-measured", str(tmp_path / "whole.csv"),
                 "--measured", reporting, "--out", str(tmp_path / "one")]) == 0
    one = json.loads((tmp_path / "one" / "savings.json").read_text())
    assert two["avoided_kwh"] == pytest.approx(one["avoided_kwh"]) and two["towt_fit"]["n"] == 24 * 21
    assert two["avoided_kwh"] == pytest.approx(two["measured_kwh"] / 9, rel=0.02)  # the post file is 90 % of use


def test_mv_report_towt_flags_a_short_baseline_and_temperatures_it_never_saw(tmp_path, capsys):
    """The hand-written TOWT reported a 6-month baseline's figure with no warning; it now says what CalTRACK's
    sufficiency rules would disqualify, on stderr and in savings.json."""
    baseline, reporting = meter_csvs(tmp_path)
    hot = pd.read_csv(reporting, index_col=0)
    hot["OutdoorTemp [degC]"] += 30.0  # far beyond the baseline's 0-10 degC
    hot.to_csv(reporting)
    assert main(["mv", "report", "--method", "towt", "--baseline-measured", *baseline, "--measured", reporting,
                 "--out", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err
    assert "twinbridge: warning: towt: baseline spans 21 days, CalTRACK 2.2.1.1 needs 365" in err
    assert "leave the baseline's" in err
    flags = json.loads((tmp_path / "r" / "savings.json").read_text())["data_flags"]
    assert len(flags) == 2


def test_mv_report_wrong_temperature_column_is_a_one_line_error(tmp_path, capsys):
    baseline, reporting = meter_csvs(tmp_path)
    code = main(["mv", "report", "--method", "towt", "--baseline-measured", *baseline, "--measured", reporting,
                 "--temperature-column", "OAT", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1  # a KeyError traceback before
    assert err.startswith(f"twinbridge: error: {baseline[0]}, {baseline[1]}: no column 'OAT' (--temperature-column)")


@pytest.mark.parametrize("method, missing", [("towt", "--baseline-measured"), ("simulation", "--baseline-run"),
                                             ("caltrack-daily", "--baseline-measured")])
def test_mv_report_missing_option_is_a_one_line_error(tmp_path, capsys, method, missing):
    _, reporting = meter_csvs(tmp_path)
    code = main(["mv", "report", "--method", method, "--measured", reporting, "--out", str(tmp_path / "r")])
    assert code == 2  # exit 1 through SystemExit before (and caltrack-daily did not exist)
    assert capsys.readouterr().err == f"twinbridge: error: mv report --method {method} needs {missing}\n"


def test_mv_report_caltrack_disqualified_baseline_writes_why_and_fails(tmp_path, capsys):
    baseline, reporting = meter_csvs(tmp_path)
    code = main(["mv", "report", "--method", "caltrack-daily", "--baseline-measured", *baseline,
                 "--measured", reporting, "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert code == 2 and "caltrack-daily baseline disqualified (CalTRACK 2.0): baseline spans" in err
    saved = json.loads((tmp_path / "r" / "savings.json").read_text())
    assert saved["savings"] is None and saved["disqualified"][0].startswith("baseline spans")


def test_files_disagreeing_on_a_time_are_refused_naming_both(tmp_path):
    index = pd.Index(pd.date_range("2025-01-01 01:00", periods=3, freq="h"), name="time")
    pd.DataFrame({"FacilityPower": [1.0, 2.0, 3.0]}, index=index).to_csv(tmp_path / "a.csv")
    pd.DataFrame({"FacilityPower": [3.5, 4.0]}, index=index[2:].append(index[2:] + pd.Timedelta(hours=1))).to_csv(
        tmp_path / "b.csv")
    with pytest.raises(RunFileError, match=r"a.csv and .*b.csv: time 2025-01-01 03:00:00 appears with different"):
        load_runs([tmp_path / "a.csv", tmp_path / "b.csv"])


@settings(max_examples=15, deadline=None)
@given(values=st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=2, max_size=40),
       cut=st.integers(0, 40), overlap=st.integers(0, 3), unit=st.sampled_from(["", " [kW]", " [kWh per 10 min]"]))
def test_split_csv_files_read_as_the_whole(tmp_path_factory, values, cut, overlap, unit):
    folder = tmp_path_factory.mktemp("csv")
    index = pd.Index(pd.date_range("2024-12-31 22:00", periods=len(values), freq="10min"), name="time")
    frame = pd.DataFrame({f"FacilityPower{unit}": values}, index=index)
    cut = min(cut, len(values))
    frame[:cut].to_csv(folder / "one.csv")
    frame[max(cut - overlap, 0):].to_csv(folder / "two.csv")  # repeated rows with the same values are kept once
    read = load_runs([folder / "two.csv", folder / "one.csv"])
    assert list(read.columns) == ["FacilityPower"] and read.index.equals(pd.DatetimeIndex(index))
    np.testing.assert_allclose(read["FacilityPower"].to_numpy(), values, rtol=1e-12)
