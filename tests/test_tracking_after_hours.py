"""The after-hours rule (bridge/tracking/after_hours.py): hand-made series, its tracking-file table, its wiring
into the live link and the anomaly log."""

from __future__ import annotations

import asyncio
import datetime as dt

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.comfort import Occupancy
from bridge.protocol import NAMESPACE
from bridge.tracking.after_hours import AfterHoursDetector, AfterHoursRule
from bridge.tracking.anomalies import AnomalyLog
from bridge.tracking.config import Endpoint, Pair, TrackingConfig, TrackingConfigError, load_tracking_config
from bridge.tracking.live import LiveLink
from devtools.fuzz import examples

OFFICE = Occupancy((6.0, 22.0), (6.0, 18.0), None)  # the DOE Small Office's HVAC hours, no daylight saving
STEP = dt.timedelta(minutes=10)
FRIDAY = dt.datetime(2025, 1, 17)  # midnight: unoccupied until 06:00
TWIN_KW = 6.0


def run(excess_kw: list[float], start: dt.datetime = FRIDAY, rule: AfterHoursRule | None = None,
        twin_kw: float = TWIN_KW) -> list[tuple[int, object]]:
    """(step number, alert) of a detector fed steps 1, 2, ... after ``start`` (stamped at their end): the twin
    at ``twin_kw``, the live building that plus ``excess_kw`` (None: a gap)."""
    detector = AfterHoursDetector("FacilityPower", rule or AfterHoursRule(OFFICE))
    out = []
    for k, excess in enumerate(excess_kw, start=1):
        actual = None if excess is None else twin_kw + excess
        out += [(k, alert) for alert in detector.update(start + k * STEP, twin_kw, actual)]
    return out


def test_defaults_are_the_chosen_ones():
    rule = AfterHoursRule(OFFICE)
    assert (rule.window_steps, rule.warning_kw, rule.alert_kw, rule.clear_steps) == (12, 0.3, 0.4, 3)


def test_an_early_start_is_warned_then_alerted_at_the_expected_steps_and_not_before():
    """HVAC on from 04:00 (step 24 ends 04:00): +0.65 kW from step 25. The 12-step window's mean passes 0.3 kW
    with 6 such steps (0.325, step 30) and 0.4 kW with 8 (0.433, step 32); 06:00 (step 36) ends the night."""
    excess = [0.0] * 24 + [0.65] * 24  # to 08:00
    alerts = run(excess)
    assert [(k, a.severity) for k, a in alerts] == [(30, "warning"), (32, "alert")]
    warning, alert = alerts[0][1], alerts[1][1]
    assert warning.granularity == alert.granularity == "after_hours" and alert.raised
    assert alert.error == pytest.approx(0.65 * 8 / 12) and alert.predicted == pytest.approx(TWIN_KW)
    assert alert.actual == pytest.approx(TWIN_KW + 0.65 * 8 / 12)
    assert alert.deviation_pct == pytest.approx(100 * 0.65 * 8 / 12 / TWIN_KW)
    assert alert.time == FRIDAY + 32 * STEP and "0.4 kW" in alert.message


def test_a_fault_free_night_with_a_unit_cycling_out_of_phase_stays_silent():
    """A 1 kW unit running a step earlier or later than the twin's (+1, -1 kW on neighbouring steps) and 1 %
    meter noise: the window's mean stays near 0, far under 0.3 kW, for a whole weekday night and weekend."""
    rng = np.random.default_rng(3)
    cycling = [1.0 if k % 4 == 0 else -1.0 if k % 4 == 1 else 0.0 for k in range(6 * 24 * 3)]
    excess = [c + TWIN_KW * rng.normal(0, 0.01) for c in cycling]
    assert run(excess, start=dt.datetime(2025, 1, 17, 22)) == []  # Friday 22:00 to Monday 22:00


def test_the_same_excess_in_occupied_hours_is_not_judged():
    assert run([2.0] * 6 * 10, start=dt.datetime(2025, 1, 17, 8)) == []  # Friday 08:00-18:00


def test_an_occupied_step_or_a_gap_empties_the_window():
    night = dt.datetime(2025, 1, 16, 20)  # Thursday: occupied until 22:00 (step 12 ends 22:00)
    assert run([1.0] * 12 + [1.0] * 11, start=night) == []  # 11 unoccupied steps: the window is not full yet
    assert [k for k, _ in run([1.0] * 12 + [1.0] * 12, start=night)] == [24]  # 12 unoccupied: judged, an alert
    gap = [1.0] * 6 + [None] + [1.0] * 11
    assert run(gap) == []  # the gap restarts the window: 11 steps after it
    assert [k for k, _ in run(gap + [1.0])] == [19]


def test_a_raised_state_clears_after_clear_steps_full_windows_under_the_warning():
    rule = AfterHoursRule(OFFICE, warning_kw=0.3, alert_kw=0.4, window_steps=2, clear_steps=3)
    alerts = run([0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0], rule=rule)
    # window means: -, 0.5 (alert), 0.25, 0, 0 (the third full window under 0.3: cleared), 0, 0
    assert [(k, a.severity, a.raised) for k, a in alerts] == [(2, "alert", True), (5, "ok", False)]


def test_less_energy_than_the_twin_at_night_is_not_an_after_hours_fault():
    assert run([-2.0] * 30) == []


def test_occupied_hours_follow_the_buildings_daylight_saving_clock():
    """In July the building's 06:00 is 05:00 simulation (standard) time: a step ending 05:10 is occupied."""
    dst = Occupancy((6.0, 22.0), None, None, ("2nd Sunday in March", "1st Sunday in November"))
    detector = AfterHoursDetector("P", AfterHoursRule(dst))
    assert detector.unoccupied(dt.datetime(2025, 7, 16, 5, 0)) and not detector.unoccupied(dt.datetime(2025, 7, 16, 5, 10))
    assert AfterHoursDetector("P", AfterHoursRule(OFFICE)).unoccupied(dt.datetime(2025, 7, 16, 5, 10))


@pytest.mark.parametrize("kwargs, message", [
    ({"warning_kw": 0.5, "alert_kw": 0.5}, "0 < warning_kw < alert_kw"),
    ({"warning_kw": 0.0}, "0 < warning_kw < alert_kw"),
    ({"window_steps": 0}, "window_steps must be >= 1"),
    ({"clear_steps": 0}, "clear_steps must be >= 1"),
])
def test_a_bad_rule_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AfterHoursRule(OFFICE, **kwargs)


TRACKING = """
[live]
endpoint = "opc.tcp://127.0.0.1:4841"
[twin]
endpoint = "opc.tcp://127.0.0.1:4840"
[[pairs]]
name = "FacilityPower"
twin = "C.Office.Outputs.FacilityPower"
live = "C.Meter.Outputs.FacilityPower"
[[pairs]]
name = "ZoneTemp"
twin = "C.Office.Outputs.ZoneTemp"
live = "C.Meter.Outputs.ZoneTemp"
"""
OCCUPANCY = """
[after_hours.occupancy]
weekdays = [6.0, 22.0]
saturday = [6.0, 18.0]
sunday = []
daylight_saving = ["2nd Sunday in March", "1st Sunday in November"]
"""


def load(tmp_path, text: str) -> TrackingConfig:
    path = tmp_path / "tracking.toml"
    path.write_text(TRACKING + text)
    return load_tracking_config(path)


def test_the_tracking_file_reads_the_after_hours_table(tmp_path):
    assert load(tmp_path, "").after_hours is None  # no table: the rule is off
    rule = load(tmp_path, '[after_hours]\npairs = ["FacilityPower"]\nalert_kw = 0.8\nwindow_steps = 6\n' + OCCUPANCY).after_hours
    assert (rule.warning_kw, rule.alert_kw, rule.window_steps, rule.clear_steps) == (0.3, 0.8, 6, 3)
    assert rule.occupancy == Occupancy((6.0, 22.0), (6.0, 18.0), None, ("2nd Sunday in March", "1st Sunday in November"))
    assert rule.watches("FacilityPower") and not rule.watches("ZoneTemp")
    assert load(tmp_path, "[after_hours]\n" + OCCUPANCY).after_hours.watches("ZoneTemp")  # no list: every pair


def test_the_occupied_hours_may_be_a_tag_maps(tmp_path):
    """``tagmap`` in [after_hours]: the tag map's [occupancy], said once (here the Small Office's, the same
    hours as OCCUPANCY)."""
    from conftest import TAGMAPS

    rule = load(tmp_path, f'[after_hours]\ntagmap = "{TAGMAPS / "small_office.toml"}"\n').after_hours
    assert rule.occupancy == load(tmp_path, "[after_hours]\n" + OCCUPANCY).after_hours.occupancy
    (tmp_path / "bare.toml").write_text('[[outputs]]\ntag = "P"\nkey = "P"\nvariable = "V"\n')
    with pytest.raises(TrackingConfigError, match=r"tagmap .*bare\.toml has no \[occupancy\] table"):
        load(tmp_path, '[after_hours]\ntagmap = "bare.toml"\n')  # relative to the tracking file
    with pytest.raises(TrackingConfigError, match=r"\[after_hours\]: tagmap: .*missing\.toml"):
        load(tmp_path, '[after_hours]\ntagmap = "missing.toml"\n')


@pytest.mark.parametrize("text, message", [
    ("[after_hours]\nwarning_kw = 0.3\n", "[after_hours]: needs an [after_hours.occupancy] table"),
    ('[after_hours]\ntagmap = "x.toml"\n' + OCCUPANCY, "[after_hours]: needs an [after_hours.occupancy] table or 'tagmap'"),
    ('[after_hours]\npairs = ["Power"]\n' + OCCUPANCY, "[after_hours]: 'pairs' names no tracked pair: ['Power']"),
    ("[after_hours]\nwarning_kw = 0.5\nalert_kw = 0.4\n" + OCCUPANCY, "[after_hours]: after-hours rule needs 0 < warning_kw"),
    ('[after_hours]\nalert_kw = "0.4"\n' + OCCUPANCY, "[after_hours]: 'alert_kw' must be"),
    ("[after_hours]\nwindow_steps = 1.5\n" + OCCUPANCY, "[after_hours]: 'window_steps' must be"),
    ("[after_hours]\nwindow = 12\n" + OCCUPANCY, "[after_hours]: unknown keys ['window']"),
    ("[after_hours]\n[after_hours.occupancy]\nweekdays = [22.0, 6.0]\n", "[after_hours]: [occupancy]: 'weekdays' must be"),
])
def test_a_bad_after_hours_table_is_one_error_naming_file_and_key(tmp_path, text, message):
    with pytest.raises(TrackingConfigError, match="^" + str(tmp_path / "tracking.toml").replace(".", r"\.")) as caught:
        load(tmp_path, text)
    assert message in str(caught.value) and "\n" not in str(caught.value)


@settings(max_examples=examples(50), deadline=None)
@given(warning=st.floats(-1, 5, allow_nan=False), alert=st.floats(-1, 5, allow_nan=False),
       window=st.integers(-2, 40), clear=st.integers(-2, 10), start=st.integers(0, 24), length=st.integers(-3, 24))
def test_property_a_table_of_any_numbers_loads_as_written_or_is_refused(tmp_path_factory, warning, alert, window, clear,
                                                                         start, length):
    """Any thresholds and hours: the rule holds exactly what the file says, or the file is refused with the
    tracking file's error naming the file and the table (never another exception)."""
    text = (f"[after_hours]\nwarning_kw = {warning!r}\nalert_kw = {alert!r}\nwindow_steps = {window}\n"
            f"clear_steps = {clear}\n[after_hours.occupancy]\nweekdays = [{start}, {start + length}]\n")
    valid = 0 < warning < alert and window >= 1 and clear >= 1 and 0 <= start < start + length <= 24
    try:
        rule = load(tmp_path_factory.mktemp("t"), text).after_hours
    except TrackingConfigError as exc:
        assert not valid and "tracking.toml: [after_hours]" in str(exc), exc
        return
    assert valid
    assert (rule.warning_kw, rule.alert_kw, rule.window_steps, rule.clear_steps) == (warning, alert, window, clear)
    assert rule.occupancy.weekdays == (start, start + length) and rule.occupancy.saturday is None


def test_the_live_link_raises_after_hours_alerts_into_the_anomaly_log(tmp_path):
    """Wired where the deviation rules are: the live link's pairing feeds the rule, its alert reaches the
    anomaly log as a row of granularity after_hours. +0.5 kW on a 6 kW night for 4 steps: too short for the
    step rule (6 steps), an after-hours alert once its 3-step window is full."""
    endpoint = Endpoint("opc.tcp://127.0.0.1:1/", NAMESPACE)
    config = TrackingConfig(live=endpoint, twin=endpoint, pairs=(Pair("FacilityPower", "T.P", "L.P"),), thresholds={},
                            anomaly_db=tmp_path / "anomalies.sqlite",
                            after_hours=AfterHoursRule(OFFICE, window_steps=3))
    log = AnomalyLog(config.anomaly_db)
    link = LiveLink(config, [log], step=STEP)

    async def feed():
        for k in range(1, 5):
            stamp = FRIDAY + k * STEP
            link._on_live("FacilityPower", stamp, TWIN_KW + 0.5)
            link._on_twin("FacilityPower", stamp, TWIN_KW)
            await link.process()

    asyncio.run(feed())
    rows = [row for row in log.rows() if row.granularity == "after_hours"]
    log.close()
    assert [(row.severity, row.time) for row in rows] == [("alert", (FRIDAY + 3 * STEP).isoformat())]
    assert rows[0].error == pytest.approx(0.5)
