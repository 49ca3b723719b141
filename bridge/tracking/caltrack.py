"""Avoided energy by the CalTRACK 2.0 methods (hourly, daily, billing), or the reason the baseline is disqualified.

``caltrack_savings(method, baseline_kwh, baseline_temperature_c, reporting_kwh, reporting_temperature_c)`` fits
the method's baseline model (``caltrack_hourly.HourlyModel``, ``caltrack_daily.DailyModel`` or ``BillingModel``,
the bills being calendar months of the meter data), predicts the reporting period and returns a
``CaltrackReport``: the savings (``savings.avoided_energy``: adjusted baseline minus measured, with the half-width
of its interval at ``confidence`` by ``caltrack_uncertainty``: CalTRACK 2.0 4.3.2.4 for daily and billing data,
opendsm's per-month Guideline 14 Annex B for hourly data) or, when CalTRACK's sufficiency rules
reject the data, no figure and the reasons. Every report carries the model's Guideline 14 CV(RMSE) and NMBE over
the baseline with pass/fail, and the flags raised (reporting temperatures beyond the baseline's, ...).
Inputs are hourly series labelled by hour start (``savings.hourly_energy_kwh``, ``savings.hourly_mean``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pandas as pd

from bridge.tracking.caltrack_daily import BillingModel, DailyModel, monthly_bills
from bridge.tracking.caltrack_data import BaselineDisqualified, clean_hourly
from bridge.tracking.caltrack_hourly import MONTHS, HourlyModel
from bridge.tracking.caltrack_uncertainty import change_point_uncertainty, hourly_uncertainty
from bridge.tracking.guideline14 import MetricsError, TooFewIndependentPoints
from bridge.tracking.savings import SavingsError, SavingsResult, avoided_energy

METHODS = ("caltrack-hourly", "caltrack-daily", "caltrack-billing")


@dataclass
class CaltrackReport:
    method: str
    savings: SavingsResult | None  # None: disqualified
    disqualified: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    sufficiency: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)
    guideline14: dict = field(default_factory=dict)

    def summary(self) -> dict:
        return {"method": self.method, "disqualified": self.disqualified, "warnings": self.warnings,
                "sufficiency": self.sufficiency, "model": self.model, "guideline14": self.guideline14,
                "savings": None if self.savings is None else self.savings.summary()}


def _model_summary(model) -> dict:
    if isinstance(model, HourlyModel):
        return {"segments": len(model.segments_), "whole_year_model": model.whole_year_ is not None,
                "n_params": model.n_params_}
    return model.fit_.to_dict() if model.fit_ else {}


def caltrack_savings(method: str, baseline_kwh: pd.Series, baseline_temperature_c: pd.Series,
                     reporting_kwh: pd.Series, reporting_temperature_c: pd.Series,
                     confidence: float = 0.9) -> CaltrackReport:
    """Savings by a CalTRACK method over the reporting period, or the disqualification (see module docstring)."""
    if method not in METHODS:
        raise SavingsError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    model = {"caltrack-hourly": HourlyModel, "caltrack-daily": DailyModel, "caltrack-billing": BillingModel}[method]()
    report = CaltrackReport(method, None)
    try:
        if method == "caltrack-billing":
            model.fit(monthly_bills(baseline_kwh), baseline_temperature_c)
            bills = monthly_bills(reporting_kwh)
            if bills.empty:
                raise SavingsError("the reporting meter data hold no whole calendar month (a billing period)")
            adjusted = model.predict(bills, reporting_temperature_c)
            measured = pd.Series(bills["kwh"].to_numpy(float), index=pd.DatetimeIndex(bills["start"]))
            bill_ends = pd.Series(pd.DatetimeIndex(bills["end"]), index=measured.index)
        else:
            model.fit(baseline_kwh, baseline_temperature_c)
            adjusted = model.predict(reporting_temperature_c)
            if method == "caltrack-daily":
                measured = DailyModel.measured(reporting_kwh, reporting_temperature_c)
            else:
                measured = clean_hourly(reporting_kwh, reporting_temperature_c)["kwh"]
    except BaselineDisqualified as exc:
        report.disqualified = list(exc.sufficiency.disqualifications)
        report.sufficiency = exc.sufficiency.to_dict()
        report.warnings = list(exc.sufficiency.warnings)
        return report
    report.sufficiency = model.sufficiency_.to_dict()
    report.warnings = list(model.sufficiency_.warnings)
    coverage = model.prediction_warning_ if isinstance(model, HourlyModel) else model.coverage_warning(
        reporting_temperature_c)
    if coverage:
        report.warnings.append(coverage)
    report.model = _model_summary(model)
    report.guideline14 = model.guideline14_
    savings = avoided_energy(adjusted, measured, method)
    if savings.avoided_kwh != 0:
        try:
            savings = replace(savings, uncertainty=_uncertainty(model, savings, confidence,
                                                                bill_ends if method == "caltrack-billing" else None))
        except TooFewIndependentPoints as exc:
            savings = replace(savings, uncertainty_warning=f"savings uncertainty not computed: {exc}")
        except MetricsError as exc:
            raise SavingsError(f"savings uncertainty: {exc}") from None
    report.savings = savings
    return report


def _uncertainty(model, savings: SavingsResult, confidence: float, bill_ends: pd.Series | None):
    """The half-width of the savings' interval (``caltrack_uncertainty``) over the periods compared."""
    adjusted = savings.series["adjusted_baseline_kwh"]
    if isinstance(model, HourlyModel):
        fitted = model.baseline_fitted(model.whole_year_used_)
        if model.whole_year_used_:
            groups = {"all": (model.baseline_kwh_, fitted, adjusted)}
        else:
            base_month, rep_month = model.baseline_kwh_.index.month, adjusted.index.month
            groups = {MONTHS[m - 1]: (model.baseline_kwh_[base_month == m], fitted[base_month == m],
                                      adjusted[rep_month == m]) for m in sorted(set(rep_month))}
        return hourly_uncertainty(groups, savings.avoided_kwh, confidence)
    if bill_ends is None:
        kind, months = "daily", len(adjusted) / 30.0
    else:  # eemeter 2.10: the span of the reporting bills in days / 30, rounded
        kind, months = "billing", float(round((bill_ends[adjusted.index].max() - adjusted.index.min()).days / 30.0))
    return change_point_uncertainty(kind, model.baseline_measured_, model.baseline_fitted_,
                                    model.fit_.n_params - 1, adjusted, savings.avoided_kwh, months, confidence)
