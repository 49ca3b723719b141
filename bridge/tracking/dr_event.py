"""What a demand-response event delivered, judged as a control engineer and a utility would.

``event_report`` compares the measured facility power with a baseline (what the facility would
have drawn: a utility's "X of Y" baseline from bridge/tracking/dr_baseline.py, a twin's forecast,
or in simulation the same run without the event) over the event and the windows around it:

- delivered curtailment (kW): mean of baseline - measured over the event intervals, and its ratio
  to the request (programmes settle on this mean, e.g. CAISO's and PJM's hourly averages);
- tracking RMSE (kW) of the measured power against the target baseline - request, per interval;
- pre-event window (pre-cooling, default the 2 h before the event) and post-event window (rebound,
  default the 2 h after): energy above the baseline (kWh, negative when below), the largest
  excess over it (kW), and the rise of the window's peak: its peak power minus the baseline's peak
  there (kW; what a demand charge on the window would see);
- comfort: degree-hours (K h) outside each zone's band [low, high], per zone, over the whole report
  span (pre-event window, event, post-event window), as bridge/kpi.py's thermal discomfort;
- decision times (s) of the controller, when given: median, 95th percentile, maximum;
- beyond reach, when the controller says it (the GP-MPC does): of its decisions inside the event, how many
  planned to shed clearly less than asked with every decided input at a bound or a comfort constraint
  active, i.e. found the request beyond what the building gives within its bounds and comfort band.

Timestamps follow the historian's convention (a value at t covers the interval ending at t), so a
window (a, b] holds the intervals ending after a up to b; energy is power x interval length.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bridge.errors import TwinbridgeError
from bridge.tracking.dr_baseline import meter_interval


class EventReportError(TwinbridgeError, ValueError):
    """Data that cannot make an event report (a window without measurements or baseline)."""


@dataclass(frozen=True)
class EventReport:
    """Figures of one event (module docstring); kW, kWh, K h, s."""

    begin: pd.Timestamp
    end: pd.Timestamp
    requested_kw: float
    delivered_kw: float
    delivered_ratio: float
    tracking_rmse_kw: float
    pre_event_energy_kwh: float
    pre_event_peak_kw: float
    rebound_energy_kwh: float
    rebound_peak_kw: float
    comfort_kh: dict[str, float] = field(default_factory=dict)
    decision_p50_s: float = float("nan")
    decision_p95_s: float = float("nan")
    decision_max_s: float = float("nan")
    decisions: int = 0
    pre_hours: float = 2.0
    post_hours: float = 2.0
    pre_event_peak_rise_kw: float = float("nan")  # the window's peak minus the baseline's peak there
    rebound_peak_rise_kw: float = float("nan")
    baseline_name: str = ""  # what the baseline is ("twin", "x_of_y", "base run", ...)
    beyond_reach_decisions: int = 0  # decisions inside the event that found the request beyond reach
    event_decisions: int = 0  # decisions inside the event (0: the controller did not say)

    def as_record(self) -> dict:
        """The report as plain JSON values (times ISO 8601, NaN as None): one line of a run's record."""
        out = {}
        for name, value in self.__dict__.items():
            if isinstance(value, pd.Timestamp):
                value = value.isoformat()
            elif isinstance(value, float) and not np.isfinite(value):
                value = None
            out[name] = value
        return out

    def as_figures(self, prefix: str = "") -> dict[str, dict]:
        """The figures in bench/results' format, ``{name: {"value", "unit", "target"}}``; targets
        are issue 16's (delivered/requested >= 0.9, RMSE <= 15 kW, no discomfort, p95 < 2 s)."""
        window = f"{self.begin:%Y-%m-%d %H:%M}-{self.end:%H:%M}"
        rows = {
            "requested": (self.requested_kw, f"kW below baseline, {window}", ""),
            "delivered": (self.delivered_kw, "kW, mean of baseline - measured over the event", ""),
            "delivered_ratio": (self.delivered_ratio, "delivered / requested", ">= 0.9"),
            "tracking_rmse": (self.tracking_rmse_kw, "kW, measured against baseline - request, per interval", "<= 15"),
            "pre_event_energy": (self.pre_event_energy_kwh, f"kWh above baseline, {self.pre_hours:g} h before", ""),
            "pre_event_peak": (self.pre_event_peak_kw, f"kW, largest excess over baseline, {self.pre_hours:g} h before", ""),
            "rebound_energy": (self.rebound_energy_kwh, f"kWh above baseline, {self.post_hours:g} h after", ""),
            "rebound_peak": (self.rebound_peak_kw, f"kW, largest excess over baseline, {self.post_hours:g} h after", ""),
            "pre_event_peak_rise": (self.pre_event_peak_rise_kw,
                                    f"kW, peak minus the baseline's peak, {self.pre_hours:g} h before", ""),
            "rebound_peak_rise": (self.rebound_peak_rise_kw,
                                  f"kW, peak minus the baseline's peak, {self.post_hours:g} h after", ""),
        }
        for zone, kh in self.comfort_kh.items():
            rows[f"comfort_{zone}"] = (kh, "K h outside the comfort band, pre-event to rebound", "0")
        if self.decisions:
            rows.update({"decision_time_p50": (self.decision_p50_s, "s", ""),
                         "decision_time_p95": (self.decision_p95_s, "s", "< 2"),
                         "decision_time_max": (self.decision_max_s, "s", "< 5")})
        if self.event_decisions:
            rows["beyond_reach_share"] = (self.beyond_reach_decisions / self.event_decisions,
                                          "share of the event's decisions that found the request beyond reach "
                                          "(at the bounds or the comfort limit, the plan's shed short of the request)", "")
        return {f"{prefix}{name}": {"value": float(value), "unit": unit, "target": target}
                for name, (value, unit, target) in rows.items()}


def event_report(power: pd.Series, begin: dt.datetime | str, end: dt.datetime | str, requested_kw: float,
                 baseline: pd.Series, temperatures: pd.DataFrame | None = None,
                 bands: Mapping[str, tuple[float, float]] | None = None,
                 decision_seconds: Iterable[float] = (), pre_hours: float = 2.0, post_hours: float = 2.0,
                 baseline_name: str = "", beyond_reach: tuple[int, int] = (0, 0)) -> EventReport:
    """The report of the event (begin, end] asking ``requested_kw`` below ``baseline`` (kW, indexed
    like ``power``: it must cover the event and, for their figures, the pre- and post-event windows).
    ``temperatures`` (degC, one column per zone) and ``bands`` ({zone: (low, high)}) give the comfort
    figures; ``decision_seconds`` the decision-time percentiles (module docstring); ``baseline_name``
    is kept in the report; ``beyond_reach``: (decisions that found the request beyond reach, decisions)
    inside the event, as the controller counted them."""
    begin, end = pd.Timestamp(begin), pd.Timestamp(end)
    if end <= begin:
        raise EventReportError(f"event {begin} .. {end}: the end must be after the beginning")
    step = meter_interval(power, EventReportError)
    hours = step / pd.Timedelta(hours=1)
    before = pd.Timedelta(hours=pre_hours)
    after = pd.Timedelta(hours=post_hours)
    event = _window(power, baseline, begin, end, "event")
    pre = _window(power, baseline, begin - before, begin, f"{pre_hours:g} h before the event")
    post = _window(power, baseline, end, end + after, f"{post_hours:g} h after the event")
    shed = event["baseline"] - event["power"]
    delivered = float(shed.mean())
    rmse = float(np.sqrt(((event["power"] - (event["baseline"] - requested_kw)) ** 2).mean()))
    excess_pre, excess_post = pre["power"] - pre["baseline"], post["power"] - post["baseline"]
    comfort = {}
    if bands:
        if temperatures is None:
            raise EventReportError("comfort bands given without zone temperatures")
        span = temperatures[(temperatures.index > begin - before) & (temperatures.index <= end + after)]
        for zone, (low, high) in bands.items():
            if zone not in span.columns or span[zone].isna().all():
                raise EventReportError(f"no temperatures of zone {zone!r} from {begin - before} to {end + after}")
            outside = (span[zone] - high).clip(lower=0) + (low - span[zone]).clip(lower=0)
            comfort[zone] = float(outside.sum() * hours)
    seconds = np.asarray(list(decision_seconds), float)
    times = (np.percentile(seconds, [50, 95]).tolist() + [seconds.max()]) if len(seconds) else [float("nan")] * 3
    return EventReport(begin, end, float(requested_kw), delivered,
                       delivered / requested_kw if requested_kw else float("nan"), rmse,
                       float(excess_pre.sum() * hours), float(excess_pre.max()),
                       float(excess_post.sum() * hours), float(excess_post.max()), comfort,
                       *times, decisions=len(seconds), pre_hours=pre_hours, post_hours=post_hours,
                       pre_event_peak_rise_kw=float(pre["power"].max() - pre["baseline"].max()),
                       rebound_peak_rise_kw=float(post["power"].max() - post["baseline"].max()),
                       baseline_name=baseline_name, beyond_reach_decisions=int(beyond_reach[0]),
                       event_decisions=int(beyond_reach[1]))


def _window(power: pd.Series, baseline: pd.Series, after: pd.Timestamp, until: pd.Timestamp, name: str) -> pd.DataFrame:
    """Measured and baseline power at the intervals of (after, until]; every interval must have both."""
    times = power.index[(power.index > after) & (power.index <= until)]
    frame = pd.DataFrame({"power": power.reindex(times), "baseline": baseline.reindex(times)})
    if frame.empty or frame.isna().any().any():
        missing = "measured power" if frame.empty or frame["power"].isna().any() else "baseline"
        raise EventReportError(f"{name} ({after} .. {until}): no {missing} at "
                               f"{'any interval' if frame.empty else frame.index[frame.isna().any(axis=1)][0]}")
    return frame
