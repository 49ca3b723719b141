"""Avoided energy by eemeter 2.x's CalTRACK 2.0 daily method (``fit_caltrack_usage_per_day_model``), as JSON.

An independent implementation of the same method as bridge/tracking/caltrack_daily.py's DailyModel: opendsm's
"daily" model is its newer OpenDSM daily model (seasonal and weekday segmentation), not CalTRACK 2.0 daily, and
eemeter 2.x (opendsm's predecessor, 2.10.11 the last 2.x release) is the reference implementation of CalTRACK 2.0
daily and billing. Run by bench/bench_savings.py with a separate venv's Python (eemeter 2.x needs pandas < 2):

    python3.11 -m venv /work/venv-eemeter2
    /work/venv-eemeter2/bin/pip install eemeter==2.10.11 'pandas<2' 'numpy<2' 'scipy<1.12' 'statsmodels<0.15' pytz
    /work/venv-eemeter2/bin/python bench/eemeter2_savings.py baseline.csv reporting.csv

Each CSV as for bench/opendsm_savings.py: ``time`` (hour start), ``kwh`` (energy of the hour), ``temp_c``. Days
are summed from the hours (a whole year of hours here, no gaps), temperatures given in degF as eemeter expects,
times as UTC (one offset for both periods). The baseline's design matrix is eemeter's
``create_caltrack_daily_design_matrix`` (balance points 30-90 degF in 1 degF steps), the sufficiency check
``caltrack_sufficiency_criteria``. Output, per variant, the fitted model (type, balance points in degF and degC,
intercept and slopes per day, adjusted R^2), the number of qualified candidates, and the avoided energy over the
reporting year with eemeter's 90 % FSU band (and the baseline-period total it scales by, ``_band``):

- ``daily``: eemeter's defaults, which are CalTRACK 2.0 (3.4.3.2: a candidate qualifies when its parameters are
  not negative; the p-value screen of CalTRACK 1.0 was removed, methodological appendix 3.4.3.2);
- ``daily_p_0.1``: the same with CalTRACK 1.0's screen (slope p-values <= 0.1), to separate that rule's effect;
- ``billing``: the CalTRACK 2.0 billing method (``use_billing_presets``, weighted by days) on calendar-month bills
  summed from the days, as bridge/tracking/caltrack_daily.py's BillingModel is fitted in the bench.
"""

import json
import sys
import warnings

import eemeter
import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")


def _read(path: str) -> tuple[pd.DataFrame, pd.Series]:
    frame = pd.read_csv(path, index_col="time", parse_dates=True)
    frame.index = frame.index.tz_localize("UTC")
    days = frame["kwh"].resample("D").sum(min_count=1)
    end = days.index[-1] + pd.Timedelta(days=1)
    meter = pd.concat([days, pd.Series([np.nan], index=[end])]).to_frame("value")  # last row ends the last day
    temperature = (frame["temp_c"] * 9 / 5 + 32).asfreq("H")  # eemeter needs a declared hourly frequency
    return meter, temperature


def _f_to_c(f):
    return None if f is None else (float(f) - 32) * 5 / 9


def _model(results) -> dict:
    model = results.model
    params = model.model_params
    qualified = sum(c.status == "QUALIFIED" for c in results.candidates)
    return {"kind": model.model_type, "intercept": float(params.get("intercept", np.nan)),
            "beta_hdd": float(params.get("beta_hdd", 0.0)), "beta_cdd": float(params.get("beta_cdd", 0.0)),
            "heating_bp_f": params.get("heating_balance_point"), "cooling_bp_f": params.get("cooling_balance_point"),
            "heating_bp_c": _f_to_c(params.get("heating_balance_point")),
            "cooling_bp_c": _f_to_c(params.get("cooling_balance_point")),
            "adj_r2": float(model.r_squared_adj), "qualified_candidates": int(qualified),
            "candidates": len(results.candidates)}


def daily(base_meter, base_t, rep_meter, rep_t, max_p_value: float) -> dict:
    design = eemeter.create_caltrack_daily_design_matrix(base_meter, base_t)
    sufficiency = eemeter.caltrack_sufficiency_criteria(
        design, requested_start=base_meter.index[0], requested_end=base_meter.index[-1])
    results = eemeter.fit_caltrack_usage_per_day_model(
        design, beta_cdd_maximum_p_value=max_p_value, beta_hdd_maximum_p_value=max_p_value)
    if results.model is None:
        return {"error": f"no model: {results.status}", "sufficiency": sufficiency.status}
    savings, bands = eemeter.metered_savings(results, rep_meter, rep_t)
    both = savings[["counterfactual_usage", "reporting_observed"]].dropna()
    return {"model": _model(results), "sufficiency": sufficiency.status,
            "avoided_kwh": float((both["counterfactual_usage"] - both["reporting_observed"]).sum()),
            "adjusted_baseline_kwh": float(both["counterfactual_usage"].sum()),
            "measured_kwh": float(both["reporting_observed"].sum()), "periods": len(both),
            **_band(results, bands)}


def _band(results, bands) -> dict:
    """eemeter's 90 % FSU half-width and the energy it multiplies (``_compute_fsu_error``'s total_base_energy:
    the baseline period's metered total, where CalTRACK 4.3.2.4.5 has the adjusted baseline of the reporting
    periods)."""
    metrics = results.totals_metrics
    return {"fsu_half_width_kwh": None if not bands else float(bands.get("FSU Error Band", np.nan)),
            "fsu_baseline_total_kwh": float(metrics.observed_mean * metrics.observed_length)}


def _bills(meter: pd.DataFrame) -> pd.DataFrame:
    """Calendar-month bills of a daily meter frame, the last row marking the end of the last bill."""
    months = meter["value"].iloc[:-1].resample("MS").sum(min_count=1)
    end = months.index[-1] + pd.offsets.MonthBegin(1)
    return pd.concat([months, pd.Series([np.nan], index=[end])]).to_frame("value")


def billing(base_meter, base_t, rep_meter, rep_t) -> dict:
    design = eemeter.create_caltrack_billing_design_matrix(_bills(base_meter), base_t)
    results = eemeter.fit_caltrack_usage_per_day_model(design, use_billing_presets=True, weights_col="n_days_kept")
    if results.model is None:
        return {"error": f"no model: {results.status}"}
    savings, bands = eemeter.metered_savings(results, _bills(rep_meter), rep_t)
    both = savings[["counterfactual_usage", "reporting_observed"]].dropna()
    return {"model": _model(results),
            "avoided_kwh": float((both["counterfactual_usage"] - both["reporting_observed"]).sum()),
            "adjusted_baseline_kwh": float(both["counterfactual_usage"].sum()),
            "measured_kwh": float(both["reporting_observed"].sum()), "periods": len(both), **_band(results, bands)}


def main(baseline_csv: str, reporting_csv: str) -> dict:
    data = (*_read(baseline_csv), *_read(reporting_csv))
    out = {"eemeter_version": eemeter.__version__}
    methods = (("daily", lambda: daily(*data, 1.0)), ("daily_p_0.1", lambda: daily(*data, 0.1)),
               ("billing", lambda: billing(*data)))
    for name, method in methods:
        try:
            out[name] = method()
        except Exception as exc:  # noqa: BLE001 - reported, as bench/opendsm_savings.py does
            out[name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    return out


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:3])))
