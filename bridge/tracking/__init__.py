"""Tracking and measurement & verification (M&V) beside a digital twin.

Modules, one job each:

- ``guideline14``: ASHRAE Guideline 14-2014 calibration metrics (CV(RMSE), NMBE) and savings uncertainty.
- ``deviation``: twin-versus-measurement deviation, thresholds, sustained-deviation rule, alerts.
- ``after_hours``: the after-hours rule: excess kW over the twin while the building should be unoccupied.
- ``calibration``: rolling hourly Guideline 14 CV(RMSE)/NMBE of the twin against the live building.
- ``anomalies``: the SQLite anomaly log an operator marks investigated.
- ``sinks``: where alerts go (log, asyncua server status tags and events).
- ``live``: asyncua client that subscribes to a live building and pairs it with the twin.
- ``attach``: tracking inside a bridge: ``<Campus>.<Building>.Tracking`` status tags and the live link task.
- ``config``: the tracking configuration file (TOML).
- ``registry``: Baseline / Operational / Actual model versions, frozen Baseline, ECM history.
- ``faults``: faulted or retrofitted copies of an IDF (fault injection and ECM edits).
- ``scenario``: edited model copies and campus files that run them (tests, benchmark).
- ``savings`` and ``report``: avoided energy, weather-regression baseline, JSON/CSV/Markdown+PNG reports.
- ``caltrack`` (``caltrack_hourly``, ``caltrack_daily``, ``caltrack_data``, ``caltrack_uncertainty``): CalTRACK 2.0
  savings methods, their data-sufficiency rules and their 90 % intervals.
- ``dr_baseline``: utility customer baselines for demand response ("X of Y" days, capped day-of adjustment).
- ``dr_event``: a demand-response event's report: delivered kW, tracking, pre-cooling and rebound, comfort, decision times.
- ``calibration_params``, ``meterdata``, ``simulate``, ``calibrate``, ``calibration_output``: calibrating a model
  to meter data or bills (Guideline 14, hold-out, identifiability) and registering it (docs/calibration.md).
- ``monthly``: the monthly bill cycle of the Operational model (deviation, anomalies, recalibration).
- ``cli``: ``track``, ``registry`` and ``mv`` subcommands for the twinbridge command line
  (``calibration_cli``: ``mv calibrate-model`` and ``mv add-bill``).

See docs/tracking.md.
"""
