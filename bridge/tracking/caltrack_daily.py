"""CalTRACK 2.0 daily and billing methods: change-point models of use per day on heating and cooling degree days.

UPD_p = mu + beta_H HDD_p + beta_C CDD_p (CalTRACK methods 2.0, section 3.3), where UPD_p is the mean use per day
of period p (a day, or a billing period), HDD_p = mean over its days of max(bp_H - T_d, 0) and CDD_p = mean of
max(T_d - bp_C, 0), T_d a day's mean temperature. Candidates (3.4.3.1): intercept only, HDD only, CDD only,
HDD and CDD, for every balance point of a grid from 30 to 90 degF in 1 degF steps (3.2.1, at most 3 degF apart
per 3.2.3) with bp_C >= bp_H (3.2.2.1) and enough degree days (3.2.2.2: at least 10 days with non-zero degree
days, not for billing data, and 20 degF-days per year). Daily periods are fitted by ordinary least squares (3.4.1),
billing periods by weighted least squares with the period's days as weight (3.4.2). A candidate qualifies when its
slopes are positive and its intercept is not negative (3.4.3.2); there is no p-value screen (CalTRACK 1.0 had one,
slopes significant at p < 0.1: the methodological appendix 3.4.3.2 found it "superfluous at best" and 2.0 removed
it); the qualified candidate with the highest adjusted R^2 (3.4.3.3) is the model. Checked against eemeter 2.10's
``fit_caltrack_usage_per_day_model`` (bench/eemeter2_savings.py, docs/tracking.md).

Temperatures are in degrees Celsius here (the spec's degF values converted), energy in kWh.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from bridge.tracking.caltrack_data import (
    BASELINE_DAYS,
    BILL_DAYS,
    MAX_MISSING_DAYS,
    MIN_BILL_TEMPERATURE_COVERAGE,
    BaselineDisqualified,
    Sufficiency,
    clean_hourly,
    daily_frame,
    daily_sufficiency,
    fahrenheit_to_celsius,
    guideline14_checks,
    temperature_out_of_coverage,
)
from bridge.tracking.savings import SavingsError

F_PER_C = 9.0 / 5.0


@dataclass(frozen=True)
class ChangePointFit:
    """The selected candidate: coefficients per day (kWh/day, kWh/day per K-day) and balance points (degC)."""

    kind: str  # "intercept_only", "hdd_only", "cdd_only", "hdd_cdd"
    intercept: float
    beta_hdd: float = 0.0
    beta_cdd: float = 0.0
    heating_bp_c: float | None = None
    cooling_bp_c: float | None = None
    adj_r2: float = 0.0

    @property
    def n_params(self) -> int:
        return 1 + (self.heating_bp_c is not None) + (self.cooling_bp_c is not None)

    def to_dict(self) -> dict:
        return asdict(self) | {"n_params": self.n_params}


def _grid(low_c: float, high_c: float, step_c: float) -> np.ndarray:
    return np.arange(low_c, high_c + step_c / 2, step_c)


def _period_means(values: np.ndarray, period: np.ndarray, n_periods: int) -> np.ndarray:
    """Mean over each period's days of ``values`` (days x k), NaN days left out."""
    ok = ~np.isnan(values)
    sums = np.zeros((n_periods, values.shape[1]))
    counts = np.zeros((n_periods, values.shape[1]))
    np.add.at(sums, period, np.where(ok, values, 0.0))
    np.add.at(counts, period, ok)
    with np.errstate(invalid="ignore"):
        return sums / counts


class _ChangePoint:
    """Shared grid search; subclasses say what a period is."""

    method = "daily"
    min_nonzero_periods: int | None = 10

    def __init__(self, heating_bp_range_c: tuple[float, float] = (fahrenheit_to_celsius(30), fahrenheit_to_celsius(90)),
                 cooling_bp_range_c: tuple[float, float] = (fahrenheit_to_celsius(30), fahrenheit_to_celsius(90)),
                 bp_step_c: float = 1.0 / F_PER_C, fit_cdd: bool = True, min_degree_days_f_per_year: float = 20.0):
        self.heating_bp_range_c = heating_bp_range_c
        self.cooling_bp_range_c = cooling_bp_range_c
        self.bp_step_c = bp_step_c
        self.fit_cdd = fit_cdd
        self.min_degree_days_f_per_year = min_degree_days_f_per_year
        self.fit_: ChangePointFit | None = None
        self.sufficiency_: Sufficiency | None = None
        self.baseline_measured_: pd.Series | None = None  # kWh per baseline period (day or bill) ...
        self.baseline_fitted_: pd.Series | None = None  # ... and the model's, for the savings uncertainty
        self.guideline14_: dict | None = None
        self.baseline_temperature_c_: pd.Series | None = None

    # --- the search ---
    def _qualified_bps(self, dd_days: np.ndarray, dd_periods: np.ndarray, n_days: int) -> np.ndarray:
        """Balance points with enough degree days (3.2.2.2)."""
        total_f_per_year = np.nansum(dd_days, axis=0) * F_PER_C * 365.0 / n_days
        ok = total_f_per_year >= self.min_degree_days_f_per_year
        if self.min_nonzero_periods is not None:
            ok &= (dd_periods > 0).sum(axis=0) >= self.min_nonzero_periods
        return ok

    def _search(self, upd: np.ndarray, weights: np.ndarray, day_temp: np.ndarray, day_period: np.ndarray) -> ChangePointFit:
        n = len(upd)
        hbp = _grid(*self.heating_bp_range_c, self.bp_step_c)
        cbp = _grid(*self.cooling_bp_range_c, self.bp_step_c) if self.fit_cdd else np.array([])
        hdd_days = np.maximum(hbp[None, :] - day_temp[:, None], 0.0)
        cdd_days = np.maximum(day_temp[:, None] - cbp[None, :], 0.0)
        hdd = _period_means(hdd_days, day_period, n)
        cdd = _period_means(cdd_days, day_period, n)
        h_ok = self._qualified_bps(hdd_days, hdd, len(day_temp))
        c_ok = self._qualified_bps(cdd_days, cdd, len(day_temp)) if len(cbp) else np.array([], bool)
        sw = np.sqrt(weights)
        wmean = np.sum(weights * upd) / np.sum(weights)
        ss_tot = float(np.sum(weights * (upd - wmean) ** 2))
        best = ChangePointFit("intercept_only", float(wmean), adj_r2=0.0)
        candidates = [("hdd_only", (i,), ()) for i in np.flatnonzero(h_ok)]
        candidates += [("cdd_only", (), (j,)) for j in np.flatnonzero(c_ok)]
        candidates += [("hdd_cdd", (i,), (j,)) for i in np.flatnonzero(h_ok) for j in np.flatnonzero(c_ok)
                       if cbp[j] >= hbp[i]]
        for kind, hi, ci in candidates:
            x = np.column_stack([np.ones(n)] + [hdd[:, i] for i in hi] + [cdd[:, j] for j in ci])
            xw = x * sw[:, None]
            try:
                coef = np.linalg.solve(xw.T @ xw, xw.T @ (upd * sw))
            except np.linalg.LinAlgError:
                continue
            dof = n - x.shape[1]
            if dof <= 0 or coef[0] < 0 or np.any(coef[1:] <= 0):
                continue
            ss_res = float(np.sum(weights * (upd - x @ coef) ** 2))
            adj_r2 = 1 - (ss_res / dof) / (ss_tot / (n - 1)) if ss_tot > 0 else 0.0
            if adj_r2 > best.adj_r2:
                best = ChangePointFit(kind, float(coef[0]), float(coef[1]) if hi else 0.0,
                                      float(coef[-1]) if ci else 0.0,
                                      float(hbp[hi[0]]) if hi else None, float(cbp[ci[0]]) if ci else None,
                                      float(adj_r2))
        return best

    def _upd(self, day_temp: np.ndarray, day_period: np.ndarray, n_periods: int) -> np.ndarray:
        """Predicted use per day of each period (3.3.2); NaN for a period without a day of temperature."""
        f = self.fit_
        load = np.where(np.isnan(day_temp), np.nan, 0.0)
        if f.heating_bp_c is not None:
            load = load + f.beta_hdd * np.maximum(f.heating_bp_c - day_temp, 0.0)
        if f.cooling_bp_c is not None:
            load = load + f.beta_cdd * np.maximum(day_temp - f.cooling_bp_c, 0.0)
        return f.intercept + _period_means(load[:, None], day_period, n_periods)[:, 0]

    def _finish(self, measured: pd.Series, fitted: pd.Series, native: str) -> None:
        self.guideline14_ = guideline14_checks(measured, fitted, self.fit_.n_params, native)
        self.baseline_measured_, self.baseline_fitted_ = measured, fitted

    def coverage_warning(self, temperature_c: pd.Series) -> str | None:
        """CalTRACK 3.7.5.2 coverage of reporting temperatures (hourly, degC) by the baseline's days."""
        reporting_days = temperature_c.resample("D").mean()
        return temperature_out_of_coverage(self.baseline_temperature_c_, reporting_days)

    def _require_fit(self) -> None:
        if self.fit_ is None:
            raise SavingsError(f"{type(self).__name__}.predict before fit")


class DailyModel(_ChangePoint):
    """CalTRACK daily method. ``fit(energy_kwh, temperature_c)``: hourly series (labelled by hour start) of a
    365-day baseline; ``predict(temperature_c)``: kWh per calendar day of an hourly temperature series (NaN on a
    day missing over half its temperatures). ``fit`` raises ``BaselineDisqualified`` when CalTRACK's sufficiency
    rules reject the baseline (``sufficiency_`` holds the reasons and flags either way)."""

    method = "caltrack-daily"

    def fit(self, energy_kwh: pd.Series, temperature_c: pd.Series) -> "DailyModel":
        daily, self.sufficiency_ = daily_sufficiency(daily_frame(clean_hourly(energy_kwh, temperature_c)), self.method)
        if not self.sufficiency_.qualified:
            raise BaselineDisqualified(self.sufficiency_)
        return self.fit_daily(daily)

    def fit_daily(self, daily: pd.DataFrame) -> "DailyModel":
        """Fit on daily values (``kwh`` per day, mean ``temp_c``), rows with a missing value left out."""
        days = daily.dropna()
        if len(days) < 3:
            raise SavingsError(f"daily model needs at least 3 days with use and temperature, got {len(days)}")
        self.baseline_temperature_c_ = days["temp_c"]
        n = len(days)
        temp = days["temp_c"].to_numpy(float)
        self.fit_ = self._search(days["kwh"].to_numpy(float), np.ones(n), temp, np.arange(n))
        self._finish(days["kwh"], self._predict_days(days["temp_c"]), "daily")
        return self

    def _predict_days(self, day_temp: pd.Series) -> pd.Series:
        t = day_temp.to_numpy(float)
        return pd.Series(self._upd(t, np.arange(len(t)), len(t)), index=day_temp.index)

    def predict(self, temperature_c: pd.Series) -> pd.Series:
        self._require_fit()
        hourly = temperature_c.astype(float).resample("h").mean()
        days = hourly.resample("D")
        day_temp = days.mean().where(days.count() >= 12)
        return self._predict_days(day_temp)

    @staticmethod
    def measured(energy_kwh: pd.Series, temperature_c: pd.Series) -> pd.Series:
        """kWh per calendar day of meter data, aggregated as the baseline is (CalTRACK 2.2.2.1)."""
        return daily_frame(clean_hourly(energy_kwh, temperature_c))["kwh"]


def monthly_bills(energy_kwh: pd.Series) -> pd.DataFrame:
    """Calendar-month bills (``start``, ``end`` exclusive, ``kwh``) from hourly meter data; a month with an hour
    missing is left out (a bill is a whole period's reading)."""
    index = pd.date_range(energy_kwh.index.min().floor("D"), energy_kwh.index.max().floor("D") + pd.Timedelta(days=1),
                          freq="h", inclusive="left")
    hourly = energy_kwh.groupby(energy_kwh.index.floor("h")).sum(min_count=1).reindex(index)
    months = hourly.resample("MS")
    complete = months.count() == months.size()
    starts = complete.index[complete.to_numpy()]
    return pd.DataFrame({"start": starts, "end": [s + pd.offsets.MonthBegin(1) for s in starts],
                         "kwh": months.sum()[complete].to_numpy()})


class BillingModel(_ChangePoint):
    """CalTRACK billing method. ``fit(bills, temperature_c)``: bills as a frame of ``start``, ``end`` (exclusive,
    midnight) and ``kwh``, temperature hourly (degC); ``predict(periods, temperature_c)``: kWh per period (indexed
    by its start). Periods of 25-35 days are used (CalTRACK 2.2.3.4-5), with 90 % temperature coverage (2.2.3.2)."""

    method = "caltrack-billing"
    min_nonzero_periods = None  # 3.2.2.2.1 does not apply to billing data

    def _periods(self, bills: pd.DataFrame, temperature_c: pd.Series) -> tuple[pd.DataFrame, list[str]]:
        missing = {"start", "end"} - set(bills.columns)
        if missing:
            raise SavingsError(f"bills need columns start, end (and kwh to fit): missing {sorted(missing)}")
        frame = bills.copy()
        frame["start"], frame["end"] = pd.to_datetime(frame["start"]), pd.to_datetime(frame["end"])
        frame["days"] = (frame["end"] - frame["start"]).dt.days
        hourly = temperature_c.astype(float).resample("h").mean()
        dropped = []
        coverage = []
        for row in frame.itertuples():
            hours = hourly[(hourly.index >= row.start) & (hourly.index < row.end)]
            coverage.append(hours.notna().sum() / max(row.days * 24, 1))
        frame["temperature_coverage"] = coverage
        short_long = (frame["days"] < BILL_DAYS[0]) | (frame["days"] > BILL_DAYS[1])
        if short_long.any():
            dropped.append(f"{int(short_long.sum())} billing periods outside {BILL_DAYS[0]}-{BILL_DAYS[1]} days dropped "
                           "(CalTRACK 2.2.3.4-5)")
        cold = frame["temperature_coverage"] < MIN_BILL_TEMPERATURE_COVERAGE
        if (cold & ~short_long).any():
            dropped.append(f"{int((cold & ~short_long).sum())} billing periods with under 90 % temperature "
                           "coverage dropped (CalTRACK 2.2.3.2)")
        return frame[~short_long & ~cold].reset_index(drop=True), dropped

    def _day_layout(self, periods: pd.DataFrame, temperature_c: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        days = temperature_c.astype(float).resample("h").mean().resample("D")
        day_mean = days.mean().where(days.count() >= 12)
        temps, owner = [], []
        for p, row in enumerate(periods.itertuples()):
            t = day_mean.reindex(pd.date_range(row.start, row.end, freq="D", inclusive="left")).to_numpy(float)
            temps.append(t)
            owner.append(np.full(len(t), p))
        return np.concatenate(temps), np.concatenate(owner)

    def fit(self, bills: pd.DataFrame, temperature_c: pd.Series) -> "BillingModel":
        if "kwh" not in bills.columns:
            raise SavingsError("bills need a kwh column to fit")
        periods, notes = self._periods(bills, temperature_c)
        disqualified = []
        if not periods.empty:
            end = periods["end"].max()
            periods = periods[periods["start"] >= end - pd.Timedelta(days=BASELINE_DAYS)].reset_index(drop=True)
            span = (end - periods["start"].min()).days
            missing = span - int(periods["days"].sum())
        else:
            span, missing = 0, 0
        if span < BASELINE_DAYS:
            disqualified.append(f"usable bills span {span} days, CalTRACK 2.2.1.1 needs {BASELINE_DAYS}")
        if missing > MAX_MISSING_DAYS:
            disqualified.append(f"{missing} days not covered by a usable bill, CalTRACK 2.2.1.2 allows {MAX_MISSING_DAYS}")
        self.sufficiency_ = Sufficiency(self.method, tuple(disqualified), tuple(notes),
                                        {"baseline_days": span, "missing_days": missing, "bills": len(periods)})
        if disqualified:
            raise BaselineDisqualified(self.sufficiency_)
        day_temp, owner = self._day_layout(periods, temperature_c)
        self.baseline_temperature_c_ = pd.Series(day_temp).dropna()
        upd = (periods["kwh"] / periods["days"]).to_numpy(float)
        self.fit_ = self._search(upd, periods["days"].to_numpy(float), day_temp, owner)
        fitted = self._upd(day_temp, owner, len(periods)) * periods["days"].to_numpy(float)
        index = pd.DatetimeIndex(periods["start"])
        self._finish(pd.Series(periods["kwh"].to_numpy(float), index), pd.Series(fitted, index), "billing")
        return self

    def predict(self, periods: pd.DataFrame, temperature_c: pd.Series) -> pd.Series:
        """kWh per period; NaN for a period with under 90 % temperature coverage."""
        self._require_fit()
        frame = periods.copy()
        frame["start"], frame["end"] = pd.to_datetime(frame["start"]), pd.to_datetime(frame["end"])
        frame["days"] = (frame["end"] - frame["start"]).dt.days
        day_temp, owner = self._day_layout(frame, temperature_c)
        upd = self._upd(day_temp, owner, len(frame))
        hourly = temperature_c.astype(float).resample("h").mean()
        coverage = [hourly[(hourly.index >= r.start) & (hourly.index < r.end)].notna().sum() / (r.days * 24)
                    for r in frame.itertuples()]
        kwh = np.where(np.asarray(coverage) >= MIN_BILL_TEMPERATURE_COVERAGE, upd * frame["days"].to_numpy(float), np.nan)
        return pd.Series(kwh, index=pd.DatetimeIndex(frame["start"]))
