"""Avoided energy by opendsm (LF Energy's CalTRACK implementation) on one scenario's data, as JSON on stdout.

Run by bench/bench_savings.py with the separate venv's Python (opendsm pins pandas < 3, which the project
does not use; see docs/tracking.md for creating /work/venv-opendsm):

    /work/venv-opendsm/bin/python bench/opendsm_savings.py baseline.csv reporting.csv

Each CSV: ``time`` (hour start, local standard time), ``kwh`` (energy of the hour), ``temp_c`` (mean outdoor
temperature of the hour). Output: {"hourly"|"daily"|"billing": {"avoided_kwh", "adjusted_baseline_kwh",
"measured_kwh", "disqualification", "warnings"} or {"error"}}, hourly also its 90 % half-width
(``_hourly_half_width``). Times are given to opendsm as UTC (it needs
time zones; one fixed offset for both periods changes nothing in the comparison), temperatures in degF.
"""

import json
import sys
import warnings

import numpy as np
import pandas as pd
from opendsm import eemeter

warnings.filterwarnings("ignore")


def _read(path: str) -> tuple[pd.Series, pd.Series]:
    frame = pd.read_csv(path, index_col="time", parse_dates=True)
    frame.index = frame.index.tz_localize("UTC")
    return frame["kwh"], frame["temp_c"] * 9 / 5 + 32


def _names(items) -> list[str]:
    return [getattr(item, "qualified_name", str(item)) for item in items or []]


def _result(prediction: pd.DataFrame, data) -> dict:
    both = prediction[["predicted", "observed"]].dropna()
    return {"avoided_kwh": float((both["predicted"] - both["observed"]).sum()),
            "adjusted_baseline_kwh": float(both["predicted"].sum()), "measured_kwh": float(both["observed"].sum()),
            "periods": len(both), "disqualification": _names(getattr(data, "disqualification", [])),
            "warnings": _names(getattr(data, "warnings", []))}


def _hourly_half_width(prediction: pd.DataFrame) -> dict:
    """opendsm's 90 % interval of the hourly avoided energy. Its ``predicted_uncertainty`` is, for each hour of
    calendar month k, sqrt(U_k^2 / m_k) with U_k its Guideline 14 Annex B half-width of month k's sum (wrapper.py:
    1.26 t (reporting use_k / (m_k ybar_k)) sqrt(MSE_k (n_k / n'_k)(1 + 2 / n'_k) m_k)); the months are combined in
    quadrature: sqrt(sum over hours of predicted_uncertainty^2) = sqrt(sum_k U_k^2). Also the same with each U_k
    scaled by month k's predicted / metered use, i.e. by the adjusted baseline as CalTRACK 4.3.2.4.5 and Annex B
    define F (the only term where bridge/tracking/caltrack_uncertainty.py departs from opendsm's formula)."""
    both = prediction[["predicted", "observed", "predicted_uncertainty"]].dropna()
    months = both.groupby(both.index.month)
    u2 = months["predicted_uncertainty"].apply(lambda u: float((u ** 2).sum()))
    scale = months["predicted"].sum() / months["observed"].sum()
    return {"fsu_half_width_kwh": float(np.sqrt(u2.sum())),
            "fsu_half_width_adjusted_baseline_kwh": float(np.sqrt((u2 * scale ** 2).sum()))}


def hourly(base_kwh, base_t, rep_kwh, rep_t) -> dict:
    baseline = eemeter.HourlyCaltrackBaselineData.from_series(base_kwh, base_t, is_electricity_data=True)
    model = eemeter.HourlyCaltrackModel().fit(baseline)
    reporting = eemeter.HourlyCaltrackReportingData.from_series(rep_kwh, rep_t, is_electricity_data=True)
    prediction = model.predict(reporting)
    return _result(prediction, baseline) | _hourly_half_width(prediction)


def daily(base_kwh, base_t, rep_kwh, rep_t) -> dict:
    day = lambda s: s.resample("D").sum(min_count=1)  # noqa: E731
    baseline = eemeter.DailyBaselineData.from_series(day(base_kwh), base_t, is_electricity_data=True)
    model = eemeter.DailyModel().fit(baseline, ignore_disqualification=False)
    reporting = eemeter.DailyReportingData.from_series(day(rep_kwh), rep_t, is_electricity_data=True)
    return _result(model.predict(reporting), baseline)


def _bills(kwh: pd.Series) -> pd.Series:
    months = kwh.resample("MS").sum(min_count=1)
    end = months.index[-1] + pd.offsets.MonthBegin(1)
    return pd.concat([months, pd.Series([np.nan], index=[end])])  # the last row marks the end of the last bill


def billing(base_kwh, base_t, rep_kwh, rep_t) -> dict:
    baseline = eemeter.BillingBaselineData.from_series(_bills(base_kwh), base_t, is_electricity_data=True)
    model = eemeter.BillingModel().fit(baseline, ignore_disqualification=False)
    reporting = eemeter.BillingReportingData.from_series(_bills(rep_kwh), rep_t, is_electricity_data=True)
    return _result(model.predict(reporting), baseline)


def main(baseline_csv: str, reporting_csv: str) -> dict:
    data = (*_read(baseline_csv), *_read(reporting_csv))
    out = {}
    for name, method in (("hourly", hourly), ("daily", daily), ("billing", billing)):
        try:
            out[name] = method(*data)
        except Exception as exc:  # a disqualified baseline is an exception in opendsm: report it as such
            out[name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    return out


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:3])))
