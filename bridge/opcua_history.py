"""OPC UA HistoryRead of the bridge's tags, answered from the run's historian (bridge/historian.py), and
the values tags carry: a Double with its ``quality`` status and timestamps (``tag_value``), the same
whether published at a step or read back from history."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

from asyncua import ua

from bridge.historian import read_tag
from bridge.opcua_adapter import HistoryStorageInterface
from bridge.tagmap import UNBOUNDED

HISTORY_PAGE = 10_000  # most values of one tag in one HistoryRead answer; a continuation point gives the rest

GOOD, UNCERTAIN_RANGE, BAD_RANGE = (ua.StatusCode(code) for code in (
    ua.StatusCodes.Good, ua.StatusCodes.UncertainEngineeringUnitsExceeded, ua.StatusCodes.BadOutOfRange))


def quality(value: float | None, eu_range: tuple[float, float]) -> ua.StatusCode:
    """OPC UA status of a value of a Double tag whose EURange is ``eu_range`` (docs/protocol.md, "Quality"):
    BadOutOfRange for no finite number (NaN, an infinity, or the NULL the historian stores for them),
    UncertainEngineeringUnitsExceeded outside EURange (OPC UA Part 8, 6.3.2), else Good."""
    if value is None or not math.isfinite(value):
        return BAD_RANGE
    return GOOD if eu_range[0] <= value <= eu_range[1] else UNCERTAIN_RANGE


def tag_value(value: float | None, eu_range: tuple[float, float], source: dt.datetime,
              server: dt.datetime) -> ua.DataValue:
    """A Double tag value with its ``quality``; a Bad value is null (OPC UA Part 4, 7.7.1)."""
    status = quality(value, eu_range)
    variant = ua.Variant() if status is BAD_RANGE else ua.Variant(float(value), ua.VariantType.Double)
    return ua.DataValue(variant, StatusCode=status, SourceTimestamp=source, ServerTimestamp=server)


def utc(time: dt.datetime) -> dt.datetime:
    return time.replace(tzinfo=dt.timezone.utc) if time.tzinfo is None else time


class HistorianStorage(HistoryStorageInterface):
    """OPC UA HistoryRead on input and output tags, answered from the run's historian."""

    def __init__(self) -> None:
        super().__init__()
        self.historian_path: Path | None = None
        self.tags: dict[ua.NodeId, tuple[str, str]] = {}
        self.ranges: dict[ua.NodeId, tuple[float, float]] = {}  # EURange of each tag, for its values' quality

    async def init(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def read_node_history(self, node_id: ua.NodeId, start: dt.datetime | None, end: dt.datetime | None,
                                nb_values: int) -> tuple[list[ua.DataValue], dt.datetime | None]:
        """Values of a tag between ``start`` and ``end`` inclusive (None or the win epoch: not given), at most
        ``nb_values`` (0: no limit) and never more than HISTORY_PAGE, in OPC UA Part 11's order: newest
        first when ``start`` is later than ``end`` or when only ``end`` and ``nb_values`` are given, else
        oldest first. When more are left, the time of the next one is the continuation point (asyncua
        sends it packed and gives it back as ``start`` of the client's next request; going back, that
        start is not earlier than ``end``, so the direction holds). ``end`` and ``nb_values`` alone get no
        continuation point: asyncua would give it back as a start before ``end``, a forward read."""
        if self.historian_path is None or node_id not in self.tags:
            return [], None
        building, tag = self.tags[node_id]
        epoch = ua.get_win_epoch()
        low = None if start in (None, epoch) else start.replace(tzinfo=None)
        high = None if end in (None, epoch) else end.replace(tzinfo=None)
        back_from_end = low is None and high is not None and nb_values > 0
        backwards = low is not None and high is not None and low > high
        if backwards:
            low, high = high, low
        page = min(nb_values or HISTORY_PAGE, HISTORY_PAGE)
        rows = read_tag(self.historian_path, building, tag, low, high, page + 1, back_from_end or backwards)
        following = utc(rows[page][0]) if len(rows) > page and not back_from_end else None
        eu_range = self.ranges.get(node_id, UNBOUNDED)
        return [tag_value(value, eu_range, utc(time), utc(time)) for time, value in rows[:page]], following
