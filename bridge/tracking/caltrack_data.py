"""CalTRACK 2.0 data sufficiency and the daily / billing-period aggregation its methods fit on.

Rules implemented (CalTRACK methods 2.0, section 2.2 "Data constraints", 3.5 and 3.7.5.2; numbers in the
spec are in degrees Fahrenheit and are converted to degrees Celsius here):

- 2.2.1.1 the baseline spans 365 days (daily and billing methods); longer baselines use the 365 days
  immediately before their end (3.1.3);
- 2.2.1.2 daily and billing: at most 37 days (10 %) without consumption or temperature; hourly: no minimum
  length, but a calendar month's model needs over 90 % of the hours of that month and of the months before
  and after it (3.7.5 three-month segments);
- 2.2.1.4 a zero electricity value is missing;
- 2.2.2.1 / 2.2.2.3 a day is summed from hourly data when at most 50 % of its hours are missing (the missing
  hours filled with the mean of the others: 24 x the mean hourly use), and its temperature likewise;
- 2.2.3.2 a billing period's temperature covers 90 % of its hours; 2.2.3.4 / 2.2.3.5 a pseudo-monthly billing
  period shorter than 25 days or longer than 35 days is dropped;
- 2.2.4.1 hourly temperature gaps of up to 6 consecutive hours are linearly interpolated, longer ones stay missing;
- 2.3.5 negative meter values are flagged;
- 3.7.5.2 reporting temperatures below T_min - 0.1 (T_max - T_min) or above T_max + 0.1 (T_max - T_min) of the
  baseline's are out of its coverage (flagged; the hourly method then uses one 365-day model).

Hourly series in this module are labelled by the start of their hour (``savings.hourly_energy_kwh``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from bridge.tracking.savings import SavingsError

BASELINE_DAYS = 365  # CalTRACK 2.2.1.1
MAX_MISSING_DAYS = 37  # CalTRACK 2.2.1.2 (10 % of 365)
MIN_HOUR_FRACTION_PER_DAY = 0.5  # CalTRACK 2.2.2.1 / 2.2.2.3
MIN_MONTH_COVERAGE = 0.9  # CalTRACK 2.2.1.2, hourly methods
MIN_BILL_TEMPERATURE_COVERAGE = 0.9  # CalTRACK 2.2.3.2
BILL_DAYS = (25, 35)  # CalTRACK 2.2.3.4 / 2.2.3.5, pseudo-monthly cycles
MAX_INTERPOLATED_HOURS = 6  # CalTRACK 2.2.4.1
COVERAGE_MARGIN = 0.1  # CalTRACK 3.7.5.2


def fahrenheit_to_celsius(f: float) -> float:
    return (f - 32.0) * 5.0 / 9.0


@dataclass(frozen=True)
class Sufficiency:
    """Whether data qualify for a CalTRACK method: reasons for disqualification and flags (warnings)."""

    method: str
    disqualifications: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    details: dict = field(default_factory=dict)

    @property
    def qualified(self) -> bool:
        return not self.disqualifications

    def to_dict(self) -> dict:
        return {"method": self.method, "qualified": self.qualified, "disqualifications": list(self.disqualifications),
                "warnings": list(self.warnings), **self.details}


class BaselineDisqualified(SavingsError):
    """Data that CalTRACK's sufficiency rules disqualify: no savings figure; ``sufficiency`` says why."""

    def __init__(self, sufficiency: Sufficiency):
        self.sufficiency = sufficiency
        super().__init__(f"{sufficiency.method} baseline disqualified (CalTRACK 2.0): "
                         + "; ".join(sufficiency.disqualifications))


def clean_hourly(energy_kwh: pd.Series, temperature_c: pd.Series) -> pd.DataFrame:
    """Hourly frame ``kwh``, ``temp_c`` on a regular hourly index spanning both series (missing = NaN).

    Zero electricity is missing (2.2.1.4); temperature gaps up to 6 hours are interpolated (2.2.4.1)."""
    for name, series in (("energy", energy_kwh), ("temperature", temperature_c)):
        if not isinstance(series, pd.Series) or not isinstance(series.index, pd.DatetimeIndex):
            raise SavingsError(f"{name} must be a pandas Series indexed by time")
    energy = energy_kwh.dropna()
    if energy.empty:
        raise SavingsError("no energy data")
    index = pd.date_range(energy.index.min().floor("h"), energy.index.max().floor("h"), freq="h")
    kwh = energy.astype(float).groupby(energy.index.floor("h")).sum().reindex(index)
    kwh = kwh.where(kwh != 0)
    temp = temperature_c.astype(float).groupby(temperature_c.index.floor("h")).mean()
    temp = temp.reindex(temp.index.union(index)).sort_index()
    temp = temp.interpolate(limit=MAX_INTERPOLATED_HOURS, limit_area="inside").reindex(index)
    return pd.DataFrame({"kwh": kwh, "temp_c": temp})


def daily_frame(hourly: pd.DataFrame) -> pd.DataFrame:
    """Calendar days of a ``clean_hourly`` frame: ``kwh`` (24 x mean hourly use) and mean ``temp_c``, NaN for a
    day missing more than half its hours of that quantity (2.2.2.1, 2.2.2.3); days absent from the data are rows."""
    days = hourly.resample("D")
    hours = days.count()
    kwh = (days["kwh"].mean() * 24).where(hours["kwh"] >= 24 * MIN_HOUR_FRACTION_PER_DAY)
    temp = days["temp_c"].mean().where(hours["temp_c"] >= 24 * MIN_HOUR_FRACTION_PER_DAY)
    return pd.DataFrame({"kwh": kwh, "temp_c": temp})


def daily_sufficiency(daily: pd.DataFrame, method: str = "daily") -> tuple[pd.DataFrame, Sufficiency]:
    """The last 365 days of a daily frame and whether they qualify (2.2.1.1, 2.2.1.2, 2.3.5)."""
    disqualified, warnings = [], []
    span = len(daily)
    if span > BASELINE_DAYS:
        warnings.append(f"baseline of {span} days: the last {BASELINE_DAYS} are used (CalTRACK 3.1.3)")
        daily = daily.iloc[-BASELINE_DAYS:]
    elif span < BASELINE_DAYS:
        disqualified.append(f"baseline spans {span} days, CalTRACK 2.2.1.1 needs {BASELINE_DAYS}")
    missing = int(daily.isna().any(axis=1).sum())
    if missing > MAX_MISSING_DAYS:
        disqualified.append(f"{missing} days without consumption or temperature, CalTRACK 2.2.1.2 allows "
                            f"{MAX_MISSING_DAYS}")
    negative = int((daily["kwh"] < 0).sum())
    if negative:
        warnings.append(f"{negative} days of negative consumption (net metering?), CalTRACK 2.3.5")
    details = {"baseline_start": str(daily.index[0].date()), "baseline_end": str(daily.index[-1].date()),
               "baseline_days": len(daily), "missing_days": missing}
    return daily, Sufficiency(method, tuple(disqualified), tuple(warnings), details)


def monthly_hour_coverage(hourly: pd.DataFrame) -> pd.Series:
    """Fraction of each calendar month's hours with both consumption and temperature, by (year, month) start."""
    both = hourly.notna().all(axis=1).astype(float)
    index = pd.date_range(hourly.index[0].to_period("M").to_timestamp(), hourly.index[-1], freq="h")
    return both.reindex(index, fill_value=0.0).resample("MS").mean()


def temperature_out_of_coverage(baseline_c: pd.Series, reporting_c: pd.Series) -> str | None:
    """Why the reporting temperatures leave the baseline's coverage (CalTRACK 3.7.5.2), or None."""
    base, report = baseline_c.dropna(), reporting_c.dropna()
    if base.empty or report.empty:
        return None
    low, high = float(base.min()), float(base.max())
    margin = COVERAGE_MARGIN * (high - low)
    if float(report.min()) < low - margin or float(report.max()) > high + margin:
        return (f"reporting temperatures {report.min():.1f} to {report.max():.1f} degC leave the baseline's "
                f"{low:.1f} to {high:.1f} degC by more than 10 % of its range (CalTRACK 3.7.5.2)")
    return None


def sufficiency_flags(baseline_kwh: pd.Series, baseline_temperature_c: pd.Series,
                      reporting_temperature_c: pd.Series) -> list[str]:
    """What CalTRACK's data-sufficiency rules (2.2.1, 3.7.5.2) would disqualify or flag in a baseline, as
    sentences: for methods without rules of their own (the hand-written TOWT), which report with these as
    warnings."""
    hourly = clean_hourly(baseline_kwh, baseline_temperature_c)
    _, sufficiency = daily_sufficiency(daily_frame(hourly), "baseline")
    coverage = temperature_out_of_coverage(hourly["temp_c"], reporting_temperature_c)
    return [*sufficiency.disqualifications, *([coverage] if coverage else [])]


def guideline14_checks(measured: pd.Series, predicted: pd.Series, n_params: int, native: str) -> dict:
    """Guideline 14 CV(RMSE) and NMBE of a regression baseline over its baseline period, with ``n_params``.

    ``native`` is the model's own interval: "hourly" (checked against the hourly limits, 30 % / 10 %), "daily"
    (reported, the guideline sets no daily limit) or "billing" (checked against the monthly limits, 15 % / 5 %).
    Hourly and daily models are also summed to calendar months and checked against the monthly limits
    (``guideline14.calibration``; only whole months)."""
    from bridge.tracking.guideline14 import CRITERIA_PCT, MetricsError, calibration, cv_rmse_pct, nmbe_pct

    checks: dict = {}
    if native == "hourly":
        checks["hourly"] = calibration(measured, predicted, "hourly", n_params).to_dict()
    else:
        limits = CRITERIA_PCT["monthly"] if native == "billing" else (None, None)
        both = pd.concat({"y": measured, "yhat": predicted}, axis=1, join="inner").dropna()
        cv, nmbe = cv_rmse_pct(both["y"], both["yhat"], n_params), nmbe_pct(both["y"], both["yhat"], n_params)
        checks[native] = {"n": len(both), "n_params": n_params, "cv_rmse_pct": cv, "nmbe_pct": nmbe,
                          "cv_rmse_limit_pct": limits[0], "nmbe_limit_pct": limits[1],
                          "passes": None if limits[0] is None else bool(cv <= limits[0] and abs(nmbe) <= limits[1])}
    if native != "billing":
        try:
            checks["monthly"] = calibration(measured, predicted, "monthly", n_params).to_dict()
        except MetricsError as exc:
            checks["monthly"] = {"error": str(exc), "passes": False}
    return checks
