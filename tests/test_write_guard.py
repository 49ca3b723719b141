"""The OPC UA write guard (bridge.writeguard, as bridge.server.TagServer runs it) against a server built
in-process, not listening: what a client may write, what is refused with which status code, and that nothing refused changes a tag."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import math

import pytest
from asyncua import ua
from conftest import TAGMAPS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.protocol import CONTROL, INPUTS, METHODS, OUTPUTS, node_path
from bridge.ratelimit import RateLimit, ThrottledLog
from bridge.security.server import BridgeUserManager
from bridge.security.settings import ServerSecurity
from bridge.server import TagServer
from bridge.tagmap import load_tagmap
from bridge.writeguard import REFUSALS_LOGGED
from devtools.fuzz import examples

CAMPUS, BUILDING = "Campus", "Office"
START = dt.datetime(2024, 7, 1, tzinfo=dt.timezone.utc)
COOLING = node_path(CAMPUS, BUILDING, INPUTS, "CoolingSetpoint")
HEATING = node_path(CAMPUS, BUILDING, INPUTS, "HeatingSetpoint")
INPUT_READY = node_path(CAMPUS, BUILDING, CONTROL, "InputReady")
OUTPUT = node_path(CAMPUS, BUILDING, OUTPUTS, "FacilityPower")


class Bench:
    """A TagServer with the small office's building, on an event loop of its own; writes as a network
    client would (anonymous operator of the default server unless told), through the server's Write."""

    def __init__(self, tagmap: str = "small_office.toml"):
        self.loop = asyncio.new_event_loop()
        self.input_ready_raised = 0
        self.server = self.run(self._build(tagmap))
        self.operator = BridgeUserManager(ServerSecurity()).get_user(None)

    async def _build(self, tagmap: str) -> TagServer:
        server = TagServer("opc.tcp://127.0.0.1:4840", CAMPUS, START)
        await server.init()

        async def method() -> str:
            return "done"

        async def exchange(write):
            return 0, [], True

        methods = {name: method for name in METHODS}
        await server.add_campus_nodes(methods)
        await server.add_building(BUILDING, load_tagmap(TAGMAPS / tagmap), methods,
                                  self._on_input_ready, exchange)
        return server

    def _on_input_ready(self) -> None:
        self.input_ready_raised += 1

    def run(self, coroutine):
        return self.loop.run_until_complete(coroutine)

    def id(self, path: str) -> ua.NodeId:
        return ua.NodeId(path, self.server.idx)

    def write(self, *items: ua.WriteValue, user=None) -> list[int]:
        """Status code values, one per item."""
        codes = self.run(self.server.internals.write(items, user or self.operator))
        return [code.value for code in codes]

    def data_value(self, path: str) -> ua.DataValue:
        return self.server.internals.read_attribute(self.id(path))

    def value(self, path: str):
        return self.data_value(path).Value.Value

    def close(self) -> None:
        self.loop.close()


@pytest.fixture(scope="module")
def bench():
    bench = Bench()
    yield bench
    bench.close()


@pytest.fixture(autouse=True)
def fresh_refusal_counts(request):
    """Each test sees the first refusals of its own logged (the log counts them per client and reason)."""
    if "bench" in request.fixturenames:
        request.getfixturevalue("bench").server.guard.refusals.flush(everything=True)


def value_write(node_id: ua.NodeId, value, variant=ua.VariantType.Double, **data) -> ua.WriteValue:
    return ua.WriteValue(NodeId=node_id, AttributeId=ua.AttributeIds.Value,
                         Value=ua.DataValue(ua.Variant(value, variant), **data))


def attribute_write(node_id: ua.NodeId, attribute: ua.AttributeIds, variant: ua.Variant) -> ua.WriteValue:
    return ua.WriteValue(NodeId=node_id, AttributeId=attribute, Value=ua.DataValue(variant))


@pytest.mark.parametrize("status", [ua.StatusCodes.BadSensorFailure, ua.StatusCodes.UncertainLastUsableValue,
                                    ua.StatusCodes.Bad, ua.StatusCodes.GoodLocalOverride])
def test_a_value_with_a_status_other_than_good_is_refused_and_changes_nothing(bench, status):
    """Issue 13 defect 1: asyncua stores a Bad-status write as null, which failed the next step of the
    whole campus. Refused (BadWriteNotSupported), the tag keeps its number; the other item of the
    request is written."""
    cooling = bench.value(COOLING)
    codes = bench.write(value_write(bench.id(COOLING), 25.0, StatusCode=ua.StatusCode(status)),
                        value_write(bench.id(INPUT_READY), True, ua.VariantType.Boolean, StatusCode=ua.StatusCode(status)),
                        value_write(bench.id(HEATING), 19.5))
    assert codes == [ua.StatusCodes.BadWriteNotSupported, ua.StatusCodes.BadWriteNotSupported, ua.StatusCodes.Good]
    assert bench.value(COOLING) == cooling and bench.value(INPUT_READY) is False
    assert bench.server.read_inputs(BUILDING) == {"CoolingSetpoint": cooling, "HeatingSetpoint": 19.5}


def test_a_source_timestamp_is_kept_a_server_timestamp_refused(bench):
    source = dt.datetime(2024, 7, 1, 12, 0, tzinfo=dt.timezone.utc)
    assert bench.write(value_write(bench.id(COOLING), 25.0, SourceTimestamp=source)) == [ua.StatusCodes.Good]
    data = bench.data_value(COOLING)
    assert (data.Value.Value, data.SourceTimestamp) == (25.0, source) and data.ServerTimestamp is not None
    refused = value_write(bench.id(COOLING), 26.0, ServerTimestamp=source)
    assert bench.write(refused) == [ua.StatusCodes.BadWriteNotSupported]
    assert bench.value(COOLING) == 25.0
    assert bench.write(value_write(bench.id(COOLING), 26.0)) == [ua.StatusCodes.Good]  # no timestamp at all


def test_a_tag_holding_no_number_gives_its_last_number_and_an_error(bench, caplog):
    """Issue 13 defect 1, second line: read_inputs never hands an engine a null (float(None) faulted
    every building)."""
    assert bench.write(value_write(bench.id(COOLING), 27.0)) == [ua.StatusCodes.Good]
    assert bench.server.read_inputs(BUILDING)["CoolingSetpoint"] == 27.0
    for nothing in (ua.Variant(None, ua.VariantType.Null), ua.Variant(math.nan, ua.VariantType.Double)):
        bench.run(bench.server.internals.set_value(bench.id(COOLING), ua.DataValue(nothing)))  # past the guard
        assert bench.server.read_inputs(BUILDING)["CoolingSetpoint"] == 27.0
    assert "Office.CoolingSetpoint holds Variant(Value=None" in caplog.text and "its last value 27 is used" in caplog.text
    assert bench.write(value_write(bench.id(COOLING), 24.0)) == [ua.StatusCodes.Good]


ATTRIBUTES = [(ua.AttributeIds.DisplayName, ua.Variant(ua.LocalizedText("x"))),
              (ua.AttributeIds.Description, ua.Variant(ua.LocalizedText("x"))),
              (ua.AttributeIds.DataType, ua.Variant(ua.NodeId(ua.ObjectIds.String))),
              (ua.AttributeIds.MinimumSamplingInterval, ua.Variant(0.0, ua.VariantType.Double)),
              (ua.AttributeIds.AccessLevel, ua.Variant(0, ua.VariantType.Byte)),
              (ua.AttributeIds.BrowseName, ua.Variant(ua.QualifiedName("x")))]


@pytest.mark.parametrize("attribute, variant", ATTRIBUTES, ids=[a.name for a, _ in ATTRIBUTES])
def test_other_attributes_are_answered_each_on_its_own(bench, attribute, variant, caplog):
    """Issue 13 defect 6: a DisplayName write gave BadInternalError and lost the request's valid writes;
    a MinimumSamplingInterval write was judged as a setpoint. Now BadNotWritable, the rest written."""
    codes = bench.write(attribute_write(bench.id(COOLING), attribute, variant), value_write(bench.id(COOLING), 25.5),
                        attribute_write(bench.id(OUTPUT), attribute, variant))
    assert codes == [ua.StatusCodes.BadNotWritable, ua.StatusCodes.Good, ua.StatusCodes.BadNotWritable]
    assert bench.value(COOLING) == 25.5
    assert "EURange" not in caplog.text and f"refused write to {attribute.name} of {COOLING}: read-only" in caplog.text
    viewer = BridgeUserManager(ServerSecurity(anonymous="viewer")).get_user(None)
    assert bench.write(attribute_write(bench.id(COOLING), attribute, variant),
                       user=viewer) == [ua.StatusCodes.BadUserAccessDenied]


@pytest.mark.parametrize("path, value, variant, code", [
    (OUTPUT, 1.0, ua.VariantType.Double, ua.StatusCodes.BadNotWritable),
    (f"{CAMPUS}.{BUILDING}.Control.Status", "Finished", ua.VariantType.String, ua.StatusCodes.BadNotWritable),
    (f"{CAMPUS}.{BUILDING}.Control.Step", 99, ua.VariantType.Int64, ua.StatusCodes.BadNotWritable),
    (f"{CAMPUS}.{BUILDING}.Control.OutputReady", True, ua.VariantType.Boolean, ua.StatusCodes.BadNotWritable),
    (f"{CAMPUS}.Control.Status", "Faulted", ua.VariantType.String, ua.StatusCodes.BadNotWritable),
    (f"{COOLING}.EURange", None, ua.VariantType.Null, ua.StatusCodes.BadNotWritable),
    (f"{CAMPUS}.{BUILDING}.Control.Stop", 1.0, ua.VariantType.Double, ua.StatusCodes.BadAttributeIdInvalid),
    (f"{CAMPUS}.{BUILDING}.Inputs.Nothing", 1.0, ua.VariantType.Double, ua.StatusCodes.BadNodeIdUnknown),
])
def test_only_inputs_and_input_ready_take_values(bench, path, value, variant, code):
    before = bench.data_value(path)
    assert bench.write(value_write(bench.id(path), value, variant)) == [code]
    after = bench.data_value(path)
    assert after == before


def test_an_index_range_is_not_supported(bench):
    """asyncua ignores IndexRange and wrote the whole value."""
    cooling = bench.value(COOLING)
    item = value_write(bench.id(COOLING), 30.0)
    item.IndexRange = "0"
    assert bench.write(item) == [ua.StatusCodes.BadWriteNotSupported]
    assert bench.value(COOLING) == cooling


@pytest.mark.parametrize("value, variant, code", [
    (25.0, ua.VariantType.Float, ua.StatusCodes.BadTypeMismatch),
    (25, ua.VariantType.Int32, ua.StatusCodes.BadTypeMismatch),
    ("25", ua.VariantType.String, ua.StatusCodes.BadTypeMismatch),
    ([25.0], ua.VariantType.Double, ua.StatusCodes.BadTypeMismatch),
    (True, ua.VariantType.Boolean, ua.StatusCodes.BadTypeMismatch),
    (None, ua.VariantType.Null, ua.StatusCodes.BadTypeMismatch),
    (math.nan, ua.VariantType.Double, ua.StatusCodes.BadOutOfRange),
    (math.inf, ua.VariantType.Double, ua.StatusCodes.BadOutOfRange),
    (45.0, ua.VariantType.Double, ua.StatusCodes.BadOutOfRange),
])
def test_an_input_takes_a_double_within_its_eurange(bench, value, variant, code):
    cooling = bench.value(COOLING)
    assert bench.write(value_write(bench.id(COOLING), value, variant)) == [code]
    assert bench.value(COOLING) == cooling


def test_input_ready_raised_by_a_client_is_noticed(bench):
    raised = bench.input_ready_raised
    assert bench.write(value_write(bench.id(INPUT_READY), True, ua.VariantType.Boolean)) == [ua.StatusCodes.Good]
    assert bench.input_ready_raised == raised + 1
    assert bench.write(value_write(bench.id(INPUT_READY), 1.0)) == [ua.StatusCodes.BadTypeMismatch]
    assert bench.input_ready_raised == raised + 1


def test_refused_writes_are_logged_a_few_then_counted(bench, caplog):
    """Issue 13 defect 10: 10,000 refused writes logged 10,000 lines. Now the first few per client and
    reason, then one line naming how many more."""
    with caplog.at_level(logging.WARNING, logger="bridge.writeguard"):
        for _ in range(1000):
            bench.write(value_write(bench.id(COOLING), 45.0))
        bench.server.guard.refusals.flush(everything=True)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == REFUSALS_LOGGED + 1, lines[:10]
    assert lines[-1] == f"refused writes by anonymous (BadOutOfRange): {1000 - REFUSALS_LOGGED} more in 10 s, " \
                        "not logged one by one"


def test_rate_limit_windows_and_summaries(caplog):
    now = [0.0]
    rate = RateLimit(2, 10.0, clock=lambda: now[0])
    assert [rate.allow("a") for _ in range(5)] == [True, True, False, False, False]
    assert rate.allow("b") and rate.next_end() == 10.0
    now[0] = 9.0
    assert rate.drain() == {} and rate.next_end() == 1.0
    now[0] = 10.0
    assert rate.allow("a")  # a new window; the old one's excess is kept for drain
    assert rate.drain() == {"a": 3} and rate.drain() == {}
    assert [rate.allow("a") for _ in range(3)] == [True, False, False]
    assert rate.drain(everything=True) == {"a": 2} and rate.next_end() is None

    throttled = ThrottledLog(logging.getLogger("test.ratelimit"), limit=1, window_s=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.ratelimit"):
        for i in range(4):
            throttled.warning("refused things", "refused thing %d", i)
        now[0] = 25.0
        throttled.warning("refused things", "refused thing %d", 4)  # no loop: the summary comes first
    assert [r.getMessage() for r in caplog.records] == [
        "refused thing 0", "refused things: 3 more in 10 s, not logged one by one", "refused thing 4"]


def test_the_summary_comes_when_the_window_ends_on_a_running_loop(caplog):
    async def flood():
        throttled = ThrottledLog(logging.getLogger("test.ratelimit"), limit=1, window_s=0.2)
        for i in range(3):
            throttled.warning("refused things", "refused thing %d", i)
        await asyncio.sleep(0.4)

    with caplog.at_level(logging.WARNING, logger="test.ratelimit"):
        asyncio.run(asyncio.wait_for(flood(), 10))
    assert [r.getMessage() for r in caplog.records] == [
        "refused thing 0", "refused things: 2 more in 0.2 s, not logged one by one"]


# Property: random Write requests give one OPC UA status code per item, never an exception, and never
# leave an input without a finite number.

PATHS = [COOLING, HEATING, OUTPUT, INPUT_READY, f"{CAMPUS}.{BUILDING}.Control.Step",
         f"{CAMPUS}.{BUILDING}.Control.Exchange", f"{COOLING}.EURange", f"{CAMPUS}.Control.Status",
         f"{CAMPUS}.{BUILDING}", f"{CAMPUS}.{BUILDING}.Inputs.Nothing"]
VARIANTS = st.one_of(
    st.floats().map(lambda v: ua.Variant(v, ua.VariantType.Double)),
    st.floats(width=32).map(lambda v: ua.Variant(v, ua.VariantType.Float)),
    st.integers(-2**31, 2**31 - 1).map(lambda v: ua.Variant(v, ua.VariantType.Int32)),
    st.booleans().map(lambda v: ua.Variant(v, ua.VariantType.Boolean)),
    st.text(max_size=5).map(lambda v: ua.Variant(v, ua.VariantType.String)),
    st.lists(st.floats(), max_size=3).map(lambda v: ua.Variant(v, ua.VariantType.Double)),
    st.just(ua.Variant(None, ua.VariantType.Null)),
    st.just(ua.Variant(ua.LocalizedText("x"))),
)
STATUSES = st.sampled_from([None, ua.StatusCodes.Good, ua.StatusCodes.GoodLocalOverride, ua.StatusCodes.Bad,
                            ua.StatusCodes.BadSensorFailure, ua.StatusCodes.UncertainLastUsableValue])
TIMESTAMPS = st.one_of(st.none(), st.datetimes(dt.datetime(1601, 1, 2), dt.datetime(9999, 1, 1),
                                               timezones=st.just(dt.timezone.utc)))


@st.composite
def write_values(draw) -> ua.WriteValue:
    status = draw(STATUSES)
    data = ua.DataValue(draw(VARIANTS), StatusCode=None if status is None else ua.StatusCode(status),
                        SourceTimestamp=draw(TIMESTAMPS), ServerTimestamp=draw(TIMESTAMPS))
    attribute = draw(st.sampled_from([ua.AttributeIds.Value] * 6 + [ua.AttributeIds.DisplayName,
                                      ua.AttributeIds.DataType, ua.AttributeIds.MinimumSamplingInterval,
                                      ua.AttributeIds.AccessLevel, 999]))
    path = draw(st.sampled_from(PATHS))
    node_id = ua.NodeId(path, draw(st.sampled_from([2, 2, 2, 0])))  # the bench's namespace is 2, 0 the standard's
    return ua.WriteValue(NodeId=node_id, AttributeId=attribute, Value=data,
                         IndexRange=draw(st.sampled_from([None, None, None, "", "0", "1:2", "x"])))


STATUS_NAMES = {value for name, value in vars(ua.StatusCodes).items() if not name.startswith("_")}


@pytest.mark.property
@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(write_values(), max_size=6))
def test_any_write_request_gets_a_status_per_item_and_leaves_numbers(bench, items):
    codes = bench.write(*items)
    assert len(codes) == len(items) and all(code in STATUS_NAMES for code in codes), codes
    for item, code in zip(items, codes):
        if code == ua.StatusCodes.Good:
            assert item.AttributeId == ua.AttributeIds.Value and item.Value.StatusCode in (None, ua.StatusCode())
            assert item.Value.ServerTimestamp is None and not item.IndexRange
    for path in (COOLING, HEATING):
        value = bench.value(path)
        assert isinstance(value, float) and math.isfinite(value), (path, value)
    inputs = bench.server.read_inputs(BUILDING)
    assert inputs["HeatingSetpoint"] + 1.0 <= inputs["CoolingSetpoint"] + 1e-9
    assert isinstance(bench.value(INPUT_READY), bool)


def test_a_weather_input_takes_nan_to_follow_the_weather_file_and_no_other_input_does(caplog):
    """NaN on a weather input hands it back to the weather file (bridge/tagmap.py): written by a client and
    read for a step without a warning; a setpoint still refuses NaN, and a weather input a number outside
    its EURange."""
    bench = Bench("small_office_live.toml")
    try:
        dry_bulb = bench.id(node_path(CAMPUS, BUILDING, INPUTS, "OutdoorDryBulb"))
        assert math.isnan(bench.server.read_inputs(BUILDING)["OutdoorDryBulb"])  # its default: the file
        assert bench.write(value_write(dry_bulb, 35.0)) == [ua.StatusCodes.Good]
        assert bench.server.read_inputs(BUILDING)["OutdoorDryBulb"] == 35.0
        with caplog.at_level(logging.WARNING):
            assert bench.write(value_write(dry_bulb, math.nan)) == [ua.StatusCodes.Good]
            assert math.isnan(bench.server.read_inputs(BUILDING)["OutdoorDryBulb"])
        assert not [r for r in caplog.records if "OutdoorDryBulb" in r.getMessage()]
        assert bench.write(value_write(dry_bulb, 70.0), value_write(bench.id(COOLING), math.nan)) == [
            ua.StatusCodes.BadOutOfRange, ua.StatusCodes.BadOutOfRange]
    finally:
        bench.close()
