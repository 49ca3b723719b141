"""controllers/dr_report.py against a hand-computed event."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from controllers.dr_report import event_figures


def test_event_figures_by_hand():
    """Hourly steps, event 12-14 h (rows 13:00 and 14:00), windows of 2 h; baseline 100 kW flat."""
    index = pd.date_range("2025-07-07 09:00", "2025-07-07 17:00", freq="h")
    power = pd.Series([100, 110, 120, 100, 80, 60, 130, 105, 100], index=index, dtype=float)
    temps = pd.DataFrame({"Zone": [22, 22, 21, 22, 25, 27, 26.5, 24, 19]}, index=index, dtype=float)
    out = event_figures(power, pd.Series(100.0, index=index), dt.datetime(2025, 7, 7, 12), dt.datetime(2025, 7, 7, 14),
                        30.0, temps, {"Zone": (20.0, 26.0)}, [0.1, 0.2, 0.3, 1.0])
    assert out["delivered_kw"] == pytest.approx(30.0)  # (20 + 40) / 2
    assert out["delivered_ratio"] == pytest.approx(1.0)
    assert out["tracking_rmse_kw"] == pytest.approx(np.sqrt((10 ** 2 + 10 ** 2) / 2))
    assert out["pre_energy_kwh"] == pytest.approx(20 + 0)  # rows 11:00, 12:00
    assert out["pre_peak_kw"] == pytest.approx(20.0)
    assert out["post_energy_kwh"] == pytest.approx(30 + 5)  # rows 15:00, 16:00
    assert out["post_peak_kw"] == pytest.approx(30.0)
    assert out["comfort_Zone_kh"] == pytest.approx(1.0 + 0.5)  # 11:00-16:00: 27 and 26.5 above 26; 21 inside
    assert out["decision_max_s"] == 1.0 and out["decision_p50_s"] == pytest.approx(0.25)
