"""CalTRACK 2.0 hourly method: time-of-week-and-temperature (TOWT) with occupancy, month-by-month models.

After Mathieu et al. (2011) and CalTRACK methods 2.0, section 3.7-3.12:

- **Segments** (3.7.5): one model per calendar month, fitted on the baseline's data of that month (weight 1)
  and of the months before and after it (weight 0.5). A month's model needs over 90 % of the hours of the three
  months with both use and temperature (2.2.1.2); the other months have no model, and a reporting period that
  needs one is disqualified. When the reporting temperatures leave the baseline's coverage (3.7.5.2) a single
  model fitted on the whole (12-month) baseline predicts instead.
- **Occupancy** (3.8): a weighted least-squares fit of use per hour on heating degree-hours (base 50 degF) and
  cooling degree-hours (base 65 degF); a time-of-week whose use exceeds that fit in over 65 % of its hours is
  "occupied".
- **Temperature** (3.9): bin endpoints 30, 45, 55, 65, 75, 90 degF; a bin with fewer than 20 hours is merged with
  its neighbour (its upper endpoint dropped, the top bin's lower one), separately for occupied and unoccupied
  hours; the temperature enters as the piecewise-linear bin features of 3.9.1.3-3.9.1.5.
- **Regression** (3.10-3.11): one weighted least-squares fit of use per hour on 168 time-of-week indicators and
  the temperature features times the occupied and the unoccupied indicator (no intercept).

Hourly series are labelled by the start of their hour; temperatures in degC (the spec's degF converted), energy kWh.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bridge.tracking.caltrack_data import (
    BASELINE_DAYS,
    MIN_MONTH_COVERAGE,
    BaselineDisqualified,
    Sufficiency,
    clean_hourly,
    fahrenheit_to_celsius,
    guideline14_checks,
    temperature_out_of_coverage,
)
from bridge.tracking.savings import HOURS_PER_WEEK, SavingsError, hour_of_week, slot_names

DEFAULT_BINS_C = tuple(fahrenheit_to_celsius(f) for f in (30, 45, 55, 65, 75, 90))
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def valid_bins(temperature_c: np.ndarray, endpoints_c: tuple[float, ...], min_hours: int) -> list[float]:
    """Bin endpoints left after merging bins of fewer than ``min_hours`` hours (CalTRACK 3.9.1.2)."""
    bins = list(endpoints_c)
    while bins:
        counts = np.bincount(np.searchsorted(bins, temperature_c, side="left"), minlength=len(bins) + 1)
        sparse = np.flatnonzero(counts < min_hours)
        if sparse.size == 0:
            break
        i = int(sparse[0])
        del bins[len(bins) - 1 if i == len(bins) else i]
    return bins


def bin_features(temperature_c: np.ndarray, bins: list[float]) -> np.ndarray:
    """Piecewise-linear temperature features of CalTRACK 3.9.1.3-3.9.1.5 (len(bins) + 1 columns)."""
    if not bins:
        return temperature_c[:, None].copy()
    edges = [-np.inf, *bins, np.inf]
    columns = [np.minimum(temperature_c, edges[1])]
    columns += [np.clip(temperature_c - edges[n], 0.0, edges[n + 1] - edges[n]) for n in range(1, len(edges) - 1)]
    return np.column_stack(columns)


class _Segment:
    """One weighted TOWT regression with occupancy (CalTRACK 3.8-3.11)."""

    def __init__(self, bins_c, min_bin_hours, occupancy_threshold):
        self.bins_c, self.min_bin_hours, self.occupancy_threshold = bins_c, min_bin_hours, occupancy_threshold

    def fit(self, index: pd.DatetimeIndex, kwh: np.ndarray, temp: np.ndarray, weight: np.ndarray) -> "_Segment":
        tow = hour_of_week(index)
        sw = np.sqrt(weight)
        x0 = np.column_stack([np.ones(len(temp)), np.maximum(fahrenheit_to_celsius(50) - temp, 0),
                              np.maximum(temp - fahrenheit_to_celsius(65), 0)])
        beta = np.linalg.lstsq(x0 * sw[:, None], kwh * sw, rcond=None)[0]
        under = (kwh > x0 @ beta).astype(float)
        hours = np.bincount(tow, minlength=HOURS_PER_WEEK)
        with np.errstate(invalid="ignore"):
            share = np.bincount(tow, under, minlength=HOURS_PER_WEEK) / hours
        self.occupied = share > self.occupancy_threshold
        occ = self.occupied[tow]
        self.bins_occupied = valid_bins(temp[occ], self.bins_c, self.min_bin_hours)
        self.bins_unoccupied = valid_bins(temp[~occ], self.bins_c, self.min_bin_hours)
        self.seen = hours > 0
        x = self._design(tow, temp)
        # normal equations (190 x 190 at most): far cheaper than an SVD of the hours; minimum-norm where singular
        xtw = x.T * weight
        self.coef, _, self.rank, _ = np.linalg.lstsq(xtw @ x, xtw @ kwh, rcond=None)
        return self

    def _design(self, tow: np.ndarray, temp: np.ndarray) -> np.ndarray:
        occ = self.occupied[tow][:, None]
        dummies = np.zeros((len(tow), HOURS_PER_WEEK))
        dummies[np.arange(len(tow)), tow] = 1.0
        return np.hstack([dummies, bin_features(temp, self.bins_occupied) * occ,
                          bin_features(temp, self.bins_unoccupied) * ~occ])

    def predict(self, index: pd.DatetimeIndex, temp: np.ndarray) -> np.ndarray:
        tow = hour_of_week(index)
        unseen = sorted(set(np.flatnonzero(~self.seen)) & set(tow))
        if unseen:
            raise SavingsError(f"hourly baseline has no data for hour-of-week slots {slot_names(unseen)}, which the "
                               "prediction needs")
        return self._design(tow, temp) @ self.coef


class HourlyModel:
    """CalTRACK hourly method (see module docstring). ``fit(energy_kwh, temperature_c)`` takes hourly series
    labelled by hour start; ``predict(temperature_c)`` gives kWh per hour (NaN where the temperature is missing).
    Raises ``BaselineDisqualified`` when no month has a model (fit) or the prediction needs a month without one
    (predict); ``sufficiency_`` lists the months with a model."""

    method = "caltrack-hourly"

    def __init__(self, bin_endpoints_c: tuple[float, ...] = DEFAULT_BINS_C, min_bin_hours: int = 20,
                 occupancy_threshold: float = 0.65, segmented: bool = True,
                 min_month_coverage: float = MIN_MONTH_COVERAGE):
        self.bin_endpoints_c = bin_endpoints_c
        self.min_bin_hours = min_bin_hours
        self.occupancy_threshold = occupancy_threshold
        self.segmented = segmented
        self.min_month_coverage = min_month_coverage
        self.segments_: dict[int, _Segment] = {}
        self.whole_year_: _Segment | None = None
        self.sufficiency_: Sufficiency | None = None
        self.n_params_: int | None = None  # the most parameters of a month's model (Guideline 14's p)
        self.guideline14_: dict | None = None
        self.baseline_kwh_: pd.Series | None = None
        self.baseline_temperature_c_: pd.Series | None = None
        self.prediction_warning_: str | None = None
        self.whole_year_used_: bool | None = None  # by the last predict

    def _segment(self) -> _Segment:
        return _Segment(self.bin_endpoints_c, self.min_bin_hours, self.occupancy_threshold)

    def fit(self, energy_kwh: pd.Series, temperature_c: pd.Series) -> "HourlyModel":
        hourly = clean_hourly(energy_kwh, temperature_c)
        warnings = []
        if len(hourly) > BASELINE_DAYS * 24:
            warnings.append(f"baseline of {len(hourly) // 24} days: the last {BASELINE_DAYS} are used (CalTRACK 3.7.4)")
            hourly = hourly.iloc[-BASELINE_DAYS * 24:]
        data = hourly.dropna()
        month = data.index.month.to_numpy()
        days_in = {m: pd.Period(f"2001-{m:02d}").days_in_month for m in range(1, 13)}
        coverage = {m: min(1.0, float((month == m).sum()) / (days_in[m] * 24)) for m in range(1, 13)}
        covered = {m for m, c in coverage.items() if c > self.min_month_coverage}
        neighbours = {m: ((m - 2) % 12 + 1, m, m % 12 + 1) for m in range(1, 13)}
        available = [m for m in range(1, 13) if set(neighbours[m]) <= covered] if self.segmented else []
        index, kwh, temp = pd.DatetimeIndex(data.index), data["kwh"].to_numpy(float), data["temp_c"].to_numpy(float)
        for m in available:
            prev, _, after = neighbours[m]
            weight = np.where(month == m, 1.0, np.where((month == prev) | (month == after), 0.5, 0.0))
            use = weight > 0
            self.segments_[m] = self._segment().fit(index[use], kwh[use], temp[use], weight[use])
        if len(covered) == 12:
            self.whole_year_ = self._segment().fit(index, kwh, temp, np.ones(len(kwh)))
        missing_months = [MONTHS[m - 1] for m in range(1, 13) if m not in available]
        disqualified = []
        if not self.segments_ and self.whole_year_ is None:
            disqualified.append("no calendar month has over 90 % of its hours, and of the months before and after it, "
                                "with use and temperature (CalTRACK 2.2.1.2)")
        elif missing_months and self.segmented:
            warnings.append(f"no model for {', '.join(missing_months)}: under 90 % of the hours of the month or a "
                            "neighbouring month (CalTRACK 2.2.1.2); a reporting period in those months is disqualified")
        self.sufficiency_ = Sufficiency(self.method, tuple(disqualified), tuple(warnings), {
            "baseline_start": str(hourly.index[0]), "baseline_end": str(hourly.index[-1]),
            "month_coverage": {MONTHS[m - 1]: round(c, 4) for m, c in coverage.items()},
            "months_with_model": [MONTHS[m - 1] for m in available]})
        if disqualified:
            raise BaselineDisqualified(self.sufficiency_)
        self.baseline_kwh_, self.baseline_temperature_c_ = data["kwh"], data["temp_c"]
        fitted = self.baseline_fitted(use_whole_year=not self.segmented)
        both = pd.concat({"y": self.baseline_kwh_, "yhat": fitted}, axis=1).dropna()
        models = list(self.segments_.values()) or [self.whole_year_]
        self.n_params_ = max(int(s.rank) for s in models)
        self.guideline14_ = guideline14_checks(both["y"], both["yhat"], self.n_params_, "hourly")
        return self

    def baseline_fitted(self, use_whole_year: bool) -> pd.Series:
        """The model's kWh for the baseline hours: by each month's model, or by the whole-year model."""
        t = self.baseline_temperature_c_
        return self._predict_months(pd.DatetimeIndex(t.index), t.to_numpy(float), use_whole_year)

    def _predict_months(self, index: pd.DatetimeIndex, temp: np.ndarray, use_whole_year: bool) -> pd.Series:
        out = np.full(len(index), np.nan)
        if use_whole_year:
            out[:] = self.whole_year_.predict(index, temp)
            return pd.Series(out, index)
        month = index.month.to_numpy()
        for m in np.unique(month):
            rows = month == m
            if m in self.segments_:
                out[rows] = self.segments_[m].predict(index[rows], temp[rows])
        return pd.Series(out, index)

    def predict(self, temperature_c: pd.Series) -> pd.Series:
        if not self.segments_ and self.whole_year_ is None:
            raise SavingsError("HourlyModel.predict before fit")
        hourly = temperature_c.astype(float).groupby(temperature_c.index.floor("h")).mean()
        full = pd.date_range(hourly.index[0], hourly.index[-1], freq="h")
        hourly = hourly.reindex(full).interpolate(limit=6, limit_area="inside").dropna()
        index, temp = pd.DatetimeIndex(hourly.index), hourly.to_numpy(float)
        self.prediction_warning_ = temperature_out_of_coverage(self.baseline_temperature_c_, hourly)
        use_whole_year = not self.segmented or (self.prediction_warning_ is not None and self.whole_year_ is not None)
        if self.prediction_warning_ and self.whole_year_ is not None and self.segmented:
            self.prediction_warning_ += ": predicted with one model of the whole baseline year"
        self.whole_year_used_ = use_whole_year
        if not use_whole_year:
            needed = sorted(set(index.month) - set(self.segments_))
            if needed:
                raise BaselineDisqualified(Sufficiency(self.method, (
                    f"the reporting period needs {', '.join(MONTHS[m - 1] for m in needed)}, for which the baseline "
                    "has no model (under 90 % of the hours of the month or a neighbouring month, CalTRACK 2.2.1.2)",),
                    self.sufficiency_.warnings, self.sufficiency_.details))
        return self._predict_months(index, temp, use_whole_year)
