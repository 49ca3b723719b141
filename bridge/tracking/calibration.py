"""Continuous calibration view: Guideline 14 hourly CV(RMSE) and NMBE of the twin over a rolling window.

For one compared pair, twin (predicted) and live (actual) step values are grouped into clock hours
(a sample stamped at the END of its step, as EnergyPlus reports it: 10:00 belongs to 09:00-10:00).
An hour **counts** when its compared steps (both sides present; a gap in the live data is not
compared) cover at least ``min_coverage_pct`` % of it; its values are then the hourly means of the
compared steps, twin and live over the same steps (for power: the hour's mean power, its energy over
one hour). An hour below the coverage is kept out and counted as incomplete.

When an hour completes (a step of a later hour arrives), the window keeps the hours that started
within the last ``window_h`` hours of clock time up to the end of that hour (older ones are evicted,
missing hours leave holes rather than stretching the window back), and once it holds at least
``min_hours`` counted hours it gives

    CV(RMSE) = 100 * sqrt( sum (y_i - yhat_i)^2 / (n - p) ) / ybar          [%]
    NMBE     = 100 * sum (y_i - yhat_i) / ((n - p) * ybar)                   [%]

with y the live hourly means, yhat the twin's, n the counted hours and p = 1 (Guideline 14's
calibrated-simulation convention, ``guideline14.cv_rmse_pct``); the pass criterion is Guideline 14's
hourly one, CV(RMSE) <= 30 % and |NMBE| <= 10 % (``guideline14.CRITERIA_PCT["hourly"]``).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import asdict, dataclass

import pandas as pd

from bridge.tracking.deviation import _Bucket, _bucket_start
from bridge.tracking.guideline14 import CRITERIA_PCT, MetricsError, cv_rmse_pct, nmbe_pct

log = logging.getLogger(__name__)

HOUR = dt.timedelta(hours=1)
N_PARAMS = 1  # Guideline 14, calibrated simulation: n - p degrees of freedom with p = 1


@dataclass(frozen=True)
class CalibrationView:
    """The rolling-window calibration figures of one pair after one completed hour.

    ``time`` is the end of that hour; ``cv_rmse_pct`` and ``nmbe_pct`` are NaN (and ``passes`` False)
    until the window holds ``min_hours`` counted hours, or when they are undefined (``reason`` says why).
    """

    time: dt.datetime
    signal: str
    window_h: int
    hours_in_window: int  # counted hours (n)
    incomplete_hours: int  # hours in the window with too few compared steps, left out
    cv_rmse_pct: float
    nmbe_pct: float
    passes: bool
    reason: str = ""

    @property
    def published(self) -> bool:
        """True when the figures are computed (enough hours, defined)."""
        return not math.isnan(self.cv_rmse_pct)

    def to_dict(self) -> dict:
        return asdict(self)


def guideline14_hourly_pass(cv_rmse: float, nmbe: float) -> bool:
    """Guideline 14's hourly calibration criterion: CV(RMSE) <= 30 % and |NMBE| <= 10 %."""
    cv_limit, nmbe_limit = CRITERIA_PCT["hourly"]
    return cv_rmse <= cv_limit and abs(nmbe) <= nmbe_limit


@dataclass
class _Hour(_Bucket):
    """The deviation tracker's bucket of sums, plus the time its compared steps cover."""

    covered: dt.timedelta = dt.timedelta(0)


class RollingCalibration:
    """Hourly Guideline 14 figures of one pair over a rolling window of ``window_h`` hours."""

    def __init__(self, signal: str, window_h: int = 168, min_hours: int = 24, min_coverage_pct: float = 80.0):
        if window_h < 2:
            raise ValueError(f"calibration window must be at least 2 hours, got {window_h}")
        if not N_PARAMS < min_hours <= window_h:
            raise ValueError(f"calibration minimum hours must be in {N_PARAMS + 1} .. {window_h} (the window), "
                             f"got {min_hours}")
        if not 0 < min_coverage_pct <= 100:
            raise ValueError(f"calibration minimum coverage must be in (0, 100] %, got {min_coverage_pct:g}")
        self.signal, self.window_h, self.min_hours = signal, window_h, min_hours
        self.min_coverage = min_coverage_pct / 100.0
        self.hours: dict[dt.datetime, tuple[float, float] | None] = {}  # hour start -> (twin mean, live mean), None: incomplete
        self.latest: CalibrationView | None = None
        self._open: _Hour | None = None

    def update(self, time: dt.datetime, predicted: float, actual: float | None, step: dt.timedelta) -> CalibrationView | None:
        """Feed one twin step (stamped at its end, of length ``step``); ``actual`` None or NaN is a gap.

        Returns the new view when this step completed an hour, else None.
        """
        start = _bucket_start(time - dt.timedelta(microseconds=1), "hourly")
        view = None
        if self._open is not None and start != self._open.start:
            if start < self._open.start:
                log.warning("%s: time went back from %s to %s: a new run; the calibration window restarts",
                            self.signal, self._open.start, start)
                self.hours.clear()
                self._open = None
            else:
                view = self._close()
        if self._open is None:
            self._open = _Hour(start)
        if actual is not None and actual == actual:
            self._open.predicted += predicted
            self._open.actual += actual
            self._open.count += 1
            self._open.covered += step
        return view

    def _close(self) -> CalibrationView:
        hour, self._open = self._open, None
        counted = hour.count and hour.covered / HOUR >= self.min_coverage - 1e-9
        self.hours[hour.start] = (hour.predicted / hour.count, hour.actual / hour.count) if counted else None
        end = hour.start + HOUR
        for start in [s for s in self.hours if s < end - self.window_h * HOUR]:
            del self.hours[start]
        self.latest = self._view(end)
        return self.latest

    def _view(self, end: dt.datetime) -> CalibrationView:
        counted = {start: means for start, means in self.hours.items() if means is not None}
        n, incomplete = len(counted), len(self.hours) - len(counted)
        cv = nmbe = math.nan
        reason = ""
        if n < self.min_hours:
            reason = f"{n} of the {self.min_hours} hours needed"
        else:
            predicted = pd.Series({s: m[0] for s, m in counted.items()})
            actual = pd.Series({s: m[1] for s, m in counted.items()})
            try:
                cv, nmbe = cv_rmse_pct(actual, predicted, N_PARAMS), nmbe_pct(actual, predicted, N_PARAMS)
            except MetricsError as exc:  # mean live value zero
                reason = str(exc)
        passes = not math.isnan(cv) and guideline14_hourly_pass(cv, nmbe)
        return CalibrationView(time=end, signal=self.signal, window_h=self.window_h, hours_in_window=n,
                               incomplete_hours=incomplete, cv_rmse_pct=cv, nmbe_pct=nmbe, passes=passes,
                               reason=reason)
