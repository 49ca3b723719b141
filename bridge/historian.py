"""Historian: every step's inputs and outputs of every building, in one SQLite file per run.

Layout: a table ``tags`` (building, tag, direction, unit) and one table per building named after it,
one row per step: ``step, sim_time_s, time`` (ISO calendar time) and one REAL column per tag (a value
that is no finite number, NaN or an infinity published with a Bad status, is stored as NULL); table
``meta`` holds the run's metadata and, under ``tagmap:<building>``, each building's tag map name,
floor area and file (JSON), which tell a twin model which building the rows are of.
Rows are only appended. Each write (a step; in fast mode, the steps of up to
``bridge.runrecord.FAST_WRITE_S`` of wall time, one ``executemany`` per building) is committed in WAL mode
with synchronous=NORMAL, which keeps every committed step if the bridge process dies (an OS crash may
lose the last few).
``load_history`` returns a building's rows as a pandas DataFrame indexed by calendar time.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from bridge.errors import TwinbridgeError
from bridge.names import ROW_COLUMNS
from bridge.stepgroup import Row
from bridge.tagmap import TagMap

if TYPE_CHECKING:
    import pandas as pd


# a row's values: {tag: value}, or (inputs, outputs), two mappings tag -> value
Values = Mapping[str, float] | tuple[Mapping[str, float], Mapping[str, float]]
# a block row's values: each building's inputs, and its outputs in column order
BlockValues = tuple[list[Mapping[str, float]], list[list[float]]]


class HistorianError(TwinbridgeError, ValueError):
    pass


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Historian:
    """Append-only recorder of a campus run."""

    def __init__(self, path: Path, tagmaps: Mapping[str, TagMap], meta: Mapping[str, str] | None = None):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        # every building's INSERT stays prepared (sqlite3 keeps 128 statements by default)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False,
                                   cached_statements=max(128, 2 * len(tagmaps) + 16))
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        self._db.execute("CREATE TABLE IF NOT EXISTS tags (building TEXT, tag TEXT, direction TEXT, unit TEXT, "
                         "PRIMARY KEY (building, tag))")
        self._columns: dict[str, list[str]] = {}
        self._insert: dict[str, str] = {}
        self._input_columns: dict[str, list[str]] = {}
        self._output_columns: dict[str, tuple[str, ...]] = {}
        self._last_inputs: dict[str, tuple[Mapping[str, float], list[float | None]]] = {}  # ``_stored_inputs``
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", (meta or {}).items())
            self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                                 [(f"tagmap:{name}", json.dumps(tagmap.building)) for name, tagmap in tagmaps.items()])
            for building, tagmap in tagmaps.items():
                columns = [i.tag for i in tagmap.inputs] + [o.tag for o in tagmap.outputs]
                self._columns[building] = columns
                self._input_columns[building] = [i.tag for i in tagmap.inputs]
                self._output_columns[building] = tuple(o.tag for o in tagmap.outputs)
                self._db.executemany("INSERT OR REPLACE INTO tags VALUES (?, ?, ?, ?)",
                                     [(building, i.tag, "input", i.unit) for i in tagmap.inputs]
                                     + [(building, o.tag, "output", o.unit) for o in tagmap.outputs])
                column_sql = "".join(f", {_quote(c)} REAL" for c in columns)
                self._db.execute(f"CREATE TABLE IF NOT EXISTS {_quote(building)} "
                                 f"(step INTEGER PRIMARY KEY, sim_time_s REAL, time TEXT{column_sql})")
                names = ", ".join(_quote(c) for c in [*ROW_COLUMNS, *columns])
                marks = ", ".join("?" * (len(ROW_COLUMNS) + len(columns)))
                self._insert[building] = f"INSERT INTO {_quote(building)} ({names}) VALUES ({marks})"

    def record(self, rows: Iterable[tuple[str | tuple[str, ...], int, float, dt.datetime, Values | BlockValues]]) -> None:
        """Append one or more steps: rows of (building, step, sim_time_s, time, values), committed together
        (one ``executemany`` per building). ``values`` is {tag: value}, or (inputs, outputs), two mappings
        tag -> value: an inputs mapping that is the very object of the building's row before is not looked
        up again, and outputs that are a ``Row`` in the historian's column order are taken as they are. A
        block row holds the step of several buildings (a ``StepGroup``'s ``Block``): a tuple of their names
        and ``BlockValues``, each building's inputs mapping and its outputs as a list in column order. If
        any row fails, none is kept and the historian takes the next rows as before."""
        tables: dict[str, list[tuple]] = {}
        recorded, iso = None, ""
        for building, step, sim_time_s, time, values in rows:
            if time is not recorded:  # the rows of a step share their time
                recorded, iso = time, time.isoformat()
            if type(building) is tuple:
                inputs, outputs = values
                if not math.isfinite(sum(map(sum, outputs))):
                    outputs = [[_stored(value) for value in row] for row in outputs]
                for name, mapping, row in zip(building, inputs, outputs):
                    tables.setdefault(name, []).append((step, sim_time_s, iso, *self._stored_inputs(name, mapping), *row))
                continue
            stored = self._stored_values(building, values)
            try:
                finite = math.isfinite(sum(stored))
            except TypeError:  # a None
                finite = False
            if not finite:
                stored = [_stored(value) for value in stored]
            tables.setdefault(building, []).append((step, sim_time_s, iso, *stored))
        self._db.execute("BEGIN")
        try:
            for building, table_rows in tables.items():
                self._db.executemany(self._insert[building], table_rows)
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise

    def _stored_values(self, building: str, values: Values) -> list[float | None]:
        """A row's values in the building's column order (None: no value)."""
        if not isinstance(values, tuple):
            return [values.get(c) for c in self._columns[building]]
        inputs, outputs = values
        if isinstance(outputs, Row) and outputs.tags == self._output_columns[building]:
            return self._stored_inputs(building, inputs) + outputs.values
        return self._stored_inputs(building, inputs) + [outputs.get(c) for c in self._output_columns[building]]

    def _stored_inputs(self, building: str, inputs: Mapping[str, float]) -> list[float | None]:
        """The values of ``inputs`` in the building's input column order, as stored (``_stored``); looked up
        again only when ``inputs`` is not the very mapping of the building's row before."""
        last = self._last_inputs.get(building)
        if last is None or last[0] is not inputs:
            last = self._last_inputs[building] = (inputs, [_stored(inputs.get(c)) for c in self._input_columns[building]])
        return last[1]

    def close(self) -> None:
        self._db.close()


def _stored(value: float | None) -> float | None:
    """What the historian keeps of a value: NULL for no finite number (NaN, an infinity), which SQLite
    would keep as NULL (NaN) or as an infinity."""
    return value if value is not None and math.isfinite(value) else None


def buildings_in(path: str | Path) -> list[str]:
    """Names of the buildings recorded in a historian file."""
    with sqlite3.connect(_existing(path)) as db:
        try:
            return [row[0] for row in db.execute("SELECT DISTINCT building FROM tags ORDER BY rowid")]
        except sqlite3.DatabaseError as exc:
            raise HistorianError(f"{path}: not a historian file ({exc})") from None


def building_name(path: str | Path, building: str | None = None) -> str:
    """``building`` if the historian holds it, else HistorianError naming the ones it holds; when
    None, the name of its only building."""
    names = buildings_in(path)
    if building is None:
        if len(names) != 1:
            raise HistorianError(f"{path}: holds buildings {names}; name one")
        return names[0]
    if building not in names:
        raise HistorianError(f"{path}: no building {building!r} (has {names})")
    return building


def recorded_tagmap(path: str | Path, building: str | None = None) -> dict | None:
    """The tag map recorded for ``building`` (see ``building_name``): ``TagMap.building``'s name,
    floor area and file; None in a historian written before they were recorded."""
    key = f"tagmap:{building_name(path, building)}"
    with sqlite3.connect(_existing(path)) as db:
        try:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except sqlite3.OperationalError:  # no meta table
            return None
    if row is None:
        return None
    try:
        recorded = json.loads(row[0])
    except (TypeError, ValueError):
        recorded = None
    if not isinstance(recorded, dict):
        raise HistorianError(f"{path}: meta entry {key!r} is not a tag map record: {row[0]!r}")
    return recorded


def tag_units(path: str | Path, building: str) -> dict[str, str]:
    """{tag: engineering unit} of a building's recorded tags (an empty text for a tag without one)."""
    with sqlite3.connect(_existing(path)) as db:
        return dict(db.execute("SELECT tag, unit FROM tags WHERE building = ?", (building,)))


def read_tag(path: str | Path, building: str, tag: str, start: dt.datetime | None = None,
             end: dt.datetime | None = None, limit: int = 0,
             reverse: bool = False) -> list[tuple[dt.datetime, float]]:
    """(time, value) of one tag between start and end inclusive (start is the earlier time), oldest first,
    or newest first when ``reverse``; at most ``limit`` values (0: all) taken in that order (for OPC UA
    HistoryRead).

    Opens its own connection, so it reads while the run writes (WAL) and after the run ends."""
    order = "DESC" if reverse else "ASC"
    sql = f"SELECT time, {_quote(tag)} FROM {_quote(building)} WHERE time >= ? AND time <= ? ORDER BY step {order}"
    if limit:
        sql += f" LIMIT {int(limit)}"
    low = (start or dt.datetime.min).isoformat()
    high = (end or dt.datetime.max).isoformat()
    with sqlite3.connect(_existing(path)) as db:
        try:
            rows = db.execute(sql, (low, high)).fetchall()
        except sqlite3.OperationalError as exc:
            raise HistorianError(f"{path}: cannot read {building}.{tag}: {exc}") from None
    return [(dt.datetime.fromisoformat(t), v) for t, v in rows]


def last_steps(path: str | Path, buildings: Iterable[str]) -> dict[str, int]:
    """The last step recorded for each of ``buildings`` (0: none yet), read through one connection (opening
    one reads the schema of every building's table: ~0.5 ms for 64 buildings); HistorianError if one has no
    table."""
    last = {}
    with sqlite3.connect(_existing(path)) as db:
        for building in buildings:
            try:
                last[building] = db.execute(f"SELECT MAX(step) FROM {_quote(building)}").fetchone()[0] or 0
            except sqlite3.OperationalError as exc:
                raise HistorianError(f"{path}: cannot read {building}: {exc}") from None
    return last


def recorded_inputs(path: str | Path, building: str, tags: list[str], last: int) -> dict[int, dict[str, float]]:
    """{step: {input tag: value}} of ``building``'s recorded steps 1..``last`` (what a replay needs); a
    value stored as NULL is left out (the engine's default applies)."""
    columns = "".join(f", {_quote(tag)}" for tag in tags)
    with sqlite3.connect(_existing(path)) as db:
        try:
            rows = db.execute(f"SELECT step{columns} FROM {_quote(building)} WHERE step <= ? ORDER BY step",
                              (last,)).fetchall()
        except sqlite3.OperationalError as exc:
            raise HistorianError(f"{path}: cannot read the inputs of {building}: {exc}") from None
    return {row[0]: {tag: value for tag, value in zip(tags, row[1:]) if value is not None} for row in rows}


def load_history(path: str | Path, building: str | None = None) -> "pd.DataFrame":
    """One building's recorded steps as a DataFrame indexed by calendar time (column per tag,
    plus ``step`` and ``sim_time_s``). ``building`` may be omitted when the run has only one."""
    building = building_name(path, building)
    import pandas as pd  # here, not at the top: the bridge daemon itself never needs pandas

    with sqlite3.connect(_existing(path)) as db:
        frame = pd.read_sql_query(f"SELECT * FROM {_quote(building)} ORDER BY step", db)
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("time")), name="time")
    return frame


def _existing(path: str | Path) -> Path:
    path = Path(path)
    if not path.is_file():
        raise HistorianError(f"historian file not found: {path}")
    return path
