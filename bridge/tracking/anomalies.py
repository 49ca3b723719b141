"""The anomaly log: one SQLite row per raised warning, alert or stale-data alarm.

Table ``anomalies``: id, time (ISO), signal, granularity, severity, predicted, actual, error,
deviation_pct, message, investigated (0/1), note, investigated_at (ISO). An alert row is the
investigation record the tracking issue asks for: an operator marks it investigated with a note
(``twinbridge track investigate``). Rows are never deleted.

Table ``calibration``: one row per pair per completed hour, the rolling calibration view
(``calibration.CalibrationView``): time (ISO, end of the hour), signal, window_h, hours_in_window,
incomplete_hours, cv_rmse_pct, nmbe_pct (NULL until published), passes (0/1), reason.
``latest_calibration()`` gives each pair's latest view (``twinbridge track anomalies`` prints it).

Table ``bills``: one row per bill checked by the monthly cycle (``monthly.py``): start, end (ISO days),
measured_kwh, predicted_kwh (the Operational model over the bill's period), deviation_pct, severity,
model_version, recalibration ("", "proposed" or "registered Operational X.Y.Z").
"""

from __future__ import annotations

import datetime as dt
import math
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from bridge.errors import TwinbridgeError
from bridge.tracking.calibration import CalibrationView
from bridge.tracking.deviation import Alert

SCHEMA = """CREATE TABLE IF NOT EXISTS anomalies (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, signal TEXT NOT NULL, granularity TEXT NOT NULL,
    severity TEXT NOT NULL, predicted REAL, actual REAL, error REAL, deviation_pct REAL, message TEXT,
    investigated INTEGER NOT NULL DEFAULT 0, note TEXT, investigated_at TEXT)"""
CALIBRATION_SCHEMA = """CREATE TABLE IF NOT EXISTS calibration (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, signal TEXT NOT NULL, window_h INTEGER NOT NULL,
    hours_in_window INTEGER NOT NULL, incomplete_hours INTEGER NOT NULL, cv_rmse_pct REAL, nmbe_pct REAL,
    passes INTEGER NOT NULL, reason TEXT)"""
BILLS_SCHEMA = """CREATE TABLE IF NOT EXISTS bills (
    id INTEGER PRIMARY KEY AUTOINCREMENT, start TEXT NOT NULL UNIQUE, end TEXT NOT NULL, measured_kwh REAL NOT NULL,
    predicted_kwh REAL NOT NULL, deviation_pct REAL NOT NULL, severity TEXT NOT NULL, model_version TEXT NOT NULL,
    recalibration TEXT NOT NULL DEFAULT '')"""
BILL_COLUMNS = ("start", "end", "measured_kwh", "predicted_kwh", "deviation_pct", "severity", "model_version",
                "recalibration")


class AnomalyLogError(TwinbridgeError, ValueError):
    """A missing or unreadable anomaly log, or an unknown row; the message names the file."""


@dataclass(frozen=True)
class Anomaly:
    id: int
    time: str
    signal: str
    granularity: str
    severity: str
    predicted: float | None
    actual: float | None
    error: float | None
    deviation_pct: float | None
    message: str
    investigated: bool
    note: str | None
    investigated_at: str | None


def _number(value: float) -> float | None:
    return None if value != value else value  # NaN -> NULL


class AnomalyLog:
    """SQLite anomaly log; also an AlertSink (``publish`` records raised alerts, ignores clearings)."""

    def __init__(self, path: str | Path, mode: str = "rwc"):
        """Open the log at ``path``: ``mode`` "rwc" creates it (and its folder) when missing; "ro" (read only)
        and "rw" open an existing log only, and raise AnomalyLogError when ``path`` is not one."""
        self.path = Path(path)
        if mode == "rwc":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif not self.path.is_file():
            raise AnomalyLogError(f"{self.path}: no such anomaly log")
        self._db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode={mode}", uri=True, isolation_level=None,
                                   timeout=10)
        problem = "no 'anomalies' table"
        try:
            if mode == "rwc":
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute(SCHEMA)
                self._db.execute(CALIBRATION_SCHEMA)
                self._db.execute(BILLS_SCHEMA)
            if self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'anomalies'").fetchone():
                return
        except sqlite3.DatabaseError as exc:  # not a SQLite file
            problem = str(exc)
        self._db.close()
        raise AnomalyLogError(f"{self.path}: cannot use as an anomaly log ({problem})")

    def record(self, alert: Alert) -> int:
        """Store one raised alert; return its row id."""
        cursor = self._db.execute(
            "INSERT INTO anomalies (time, signal, granularity, severity, predicted, actual, error, deviation_pct, "
            "message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (alert.time.isoformat(), alert.signal, alert.granularity, alert.severity, _number(alert.predicted),
             _number(alert.actual), _number(alert.error), _number(alert.deviation_pct), alert.message))
        return int(cursor.lastrowid)

    async def publish(self, alert: Alert) -> None:
        if alert.raised:
            self.record(alert)

    async def publish_calibration(self, view: CalibrationView) -> None:
        self._db.execute(
            "INSERT INTO calibration (time, signal, window_h, hours_in_window, incomplete_hours, cv_rmse_pct, "
            "nmbe_pct, passes, reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (view.time.isoformat(), view.signal, view.window_h, view.hours_in_window, view.incomplete_hours,
             _number(view.cv_rmse_pct), _number(view.nmbe_pct), int(view.passes), view.reason))

    def latest_calibration(self) -> list[CalibrationView]:
        """Each pair's latest calibration view, by pair name; none in a log written before calibration views."""
        if not self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'calibration'").fetchone():
            return []
        rows = self._db.execute(
            "SELECT time, signal, window_h, hours_in_window, incomplete_hours, cv_rmse_pct, nmbe_pct, passes, reason "
            "FROM calibration WHERE id IN (SELECT MAX(id) FROM calibration GROUP BY signal) ORDER BY signal")
        return [CalibrationView(dt.datetime.fromisoformat(time), signal, window_h, hours, incomplete,
                                math.nan if cv is None else cv, math.nan if nmbe is None else nmbe, bool(passes),
                                reason or "")
                for time, signal, window_h, hours, incomplete, cv, nmbe, passes, reason in rows]

    def record_bill(self, row: dict) -> None:
        """Store one checked bill (keys ``BILL_COLUMNS``); a bill whose start is already stored is an error."""
        try:
            self._db.execute(f"INSERT INTO bills ({', '.join(BILL_COLUMNS)}) VALUES ({', '.join('?' * len(BILL_COLUMNS))})",
                             tuple(row[key] for key in BILL_COLUMNS))
        except sqlite3.IntegrityError:
            raise AnomalyLogError(f"{self.path}: the bill starting {row['start']} is already tracked") from None

    def set_bill_recalibration(self, start: str, text: str) -> None:
        self._db.execute("UPDATE bills SET recalibration = ? WHERE start = ?", (text, start))

    def bills(self) -> list[dict]:
        """Checked bills, oldest first, as dicts of ``BILL_COLUMNS``; none in a log written before bills."""
        if not self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'bills'").fetchone():
            return []
        return [dict(zip(BILL_COLUMNS, row)) for row in
                self._db.execute(f"SELECT {', '.join(BILL_COLUMNS)} FROM bills ORDER BY start")]

    def rows(self, open_only: bool = False, severity: str | None = None) -> list[Anomaly]:
        sql, args = "SELECT * FROM anomalies WHERE 1=1", []
        if open_only:
            sql += " AND investigated = 0"
        if severity:
            sql, args = sql + " AND severity = ?", [severity]
        return [Anomaly(*row[:10], bool(row[10]), row[11], row[12]) for row in self._db.execute(sql + " ORDER BY id", args)]

    def mark_investigated(self, anomaly_id: int, note: str = "") -> None:
        """Mark one row investigated with the operator's note; raises if there is no such row."""
        cursor = self._db.execute(
            "UPDATE anomalies SET investigated = 1, note = ?, investigated_at = ? WHERE id = ?",
            (note, dt.datetime.now().isoformat(timespec="seconds"), anomaly_id))
        if cursor.rowcount == 0:
            raise AnomalyLogError(f"{self.path}: no anomaly with id {anomaly_id}")

    def close(self) -> None:
        self._db.close()
