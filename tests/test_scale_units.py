"""Scale without Ray: ``twinbridge campus generate``, the [campus] executor keys, the Ray extra missing."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.cli import main
from bridge.config import ConfigError, load_config, reference_model
from bridge.generate import BUILDING_TYPES, campus_toml
from bridge.validate import validate_campus


def write(tmp_path, text: str, name: str = "campus.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@settings(max_examples=40, deadline=None)
@given(count=st.integers(1, 120), seed=st.integers(0, 2**32))
def test_a_generated_campus_loads_with_count_buildings_of_known_types(tmp_path_factory, count, seed):
    text = campus_toml(count, seed)
    assert text == campus_toml(count, seed)  # the seed decides
    config = load_config(write(tmp_path_factory.mktemp("gen"), text))
    assert len(config.buildings) == count
    kinds = {(reference_model(model[4:]).name, tagmap) for model, tagmap, _ in BUILDING_TYPES}
    assert {(b.model.name, Path(b.tagmap.path).name) for b in config.buildings} <= kinds
    assert config.executor.kind == "local"


@pytest.mark.engine
def test_twinbridge_validate_accepts_a_generated_campus_of_every_type(tmp_path):
    path = tmp_path / "campus.toml"
    assert main(["campus", "generate", "12", "--seed", "1", "--out", str(path), "--executor", "local"]) == 0
    config = load_config(path)
    assert {b.model.name for b in config.buildings} == {reference_model(m[4:]).name for m, _, _ in BUILDING_TYPES}
    asyncio.run(asyncio.wait_for(validate_campus(config), 600))
    assert main(["validate", str(path)]) == 0


def test_campus_generate_writes_standard_output_and_refuses_zero(capsys):
    assert main(["campus", "generate", "2", "--executor", "ray"]) == 0
    out = capsys.readouterr().out
    assert out.count("[[buildings]]") == 2 and 'executor = "ray"' in out
    with pytest.raises(SystemExit) as exit_:
        main(["campus", "generate", "0"])
    assert exit_.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err


def test_executor_keys_are_read_and_checked(tmp_path):
    text = campus_toml(2).replace("[campus]", "[campus]\nnum_cpus = 2\nmax_restarts = 5\nreplay_timeout_s = 30")
    text = text.replace("[[buildings]]\n", "[[buildings]]\nmemory_mb = 900\n", 1)
    config = load_config(write(tmp_path, text))
    assert (config.executor.num_cpus, config.executor.max_restarts, config.executor.replay_timeout_s) == (2.0, 5, 30.0)
    assert [config.executor.resources(b) for b in config.buildings] == [(2.0, 900.0), (2.0, 300.0)]
    for bad, message in [('executor = "slurm"', "executor must be one of"),
                         ("num_cpus = -1", "num_cpus and memory_mb must be finite numbers >= 0"),
                         ("max_restarts = -1", "max_restarts must be >= 0"),
                         ('ray_address = 5', "'ray_address' must be text"),
                         ("replicas = 2", r"unknown keys \[.replicas.\]")]:
        with pytest.raises(ConfigError, match=message):
            load_config(write(tmp_path, campus_toml(1).replace("[campus]", f"[campus]\n{bad}"), "bad.toml"))


def test_without_ray_the_ray_executor_is_a_one_line_config_error(tmp_path, monkeypatch, capsys):
    path = write(tmp_path, campus_toml(1, executor="ray"))
    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    with pytest.raises(ConfigError, match=r"executor \"ray\" needs Ray: pip install -e \.\[ray\]"):
        load_config(path)
    assert main(["validate", str(path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "pip install -e .[ray]" in error


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.tuples(st.floats(allow_nan=True, allow_infinity=True, width=64),
                                st.floats(-1e300, 1e300)), min_size=0, max_size=12),
       last=st.integers(0, 14))
def test_a_replay_reads_back_the_recorded_inputs_bit_for_bit(tmp_path_factory, steps, last):
    """What a relaunched Ray building replays (``recorded_inputs``): each recorded step's inputs as
    given, up to ``last``; a value the historian keeps as NULL (no finite number) is left out."""
    import datetime as dt

    from bridge.historian import Historian, last_steps, recorded_inputs
    from bridge.tagmap import load_tagmap

    tagmap = load_tagmap(Path(__file__).resolve().parent.parent / "tagmaps" / "small_office.toml")
    tags = [i.tag for i in tagmap.inputs]
    path = tmp_path_factory.mktemp("replay") / "historian.sqlite"
    historian = Historian(path, {"B1": tagmap})
    for step, values in enumerate(steps, start=1):
        historian.record([("B1", step, step * 600.0, dt.datetime(2024, 7, 1), dict(zip(tags, values)))])
    historian.close()
    assert last_steps(path, ["B1"]) == {"B1": len(steps)}
    expected = {step: {tag: value for tag, value in zip(tags, values) if value == value and abs(value) != float("inf")}
                for step, values in enumerate(steps, start=1) if step <= last}
    assert recorded_inputs(path, "B1", tags, last) == expected


def test_outputs_read_or_monitored_by_a_client_are_those_each_step_published():
    """The head makes an output's DataValue only when it is read or monitored (``ValueBlock``): what a
    client reads and what a subscription reports are still each step's value, quality and simulation
    time, a tag a step leaves out keeps its last value, and a value the bridge writes itself stands
    until the next step is published."""
    from asyncua import Client, ua

    from bridge.opcua_adapter import subscribe_every_sample
    from bridge.opcua_history import quality, utc
    from bridge.protocol import METHODS
    from bridge.server import TagServer
    from bridge.tagmap import load_tagmap
    from conftest import TAGMAPS, free_port, wait_until

    start = dt.datetime(2025, 7, 1)
    tagmap = load_tagmap(TAGMAPS / "small_office.toml")
    tags = [o.tag for o in tagmap.outputs]
    low, high = tagmap.output_range(tagmap.outputs[0])
    reported = []
    steps = [[1.0] * len(tags), [math.nan, *[2.0] * (len(tags) - 1)], [high + 1.0, *[3.0] * (len(tags) - 1)],
             [max(low, 0.5), *[4.0] * (len(tags) - 1)]]

    async def method() -> str:
        return ""

    async def exchange(write, caller):
        raise ValueError("not used")

    async def reported_count(count: int) -> bool:
        return len(reported) == count

    async def scenario() -> None:
        endpoint = f"opc.tcp://127.0.0.1:{free_port()}"
        server = TagServer(endpoint, "C", start)
        await server.init()
        await server.add_building("Office", tagmap, {name: method for name in METHODS}, lambda: None, exchange)
        await server.listen()

        class Handler:
            def datachange_notification(self, node, value, data) -> None:
                reported.append(data.monitored_item.Value)

        try:
            async with Client(endpoint) as client:
                nodes = [client.get_node(server.outputs["Office"][tag]) for tag in tags]
                subscription = await client.create_subscription(10, Handler())
                await subscribe_every_sample(subscription, nodes[:1], 100)
                await wait_until(lambda: reported_count(1), 10)  # the initial value
                for step, values in enumerate(steps, 1):
                    time = start + dt.timedelta(minutes=10 * step)
                    outputs = dict(zip(tags, values))
                    if step == 4:
                        del outputs[tags[-1]]  # left out: keeps step 3's value
                    flagged = await server.publish_outputs("Office", outputs, time)
                    expected = {tag: quality(value, tagmap.output_range(tagmap.output(tag)))
                                for tag, value in outputs.items()}
                    assert flagged == {tag: status.name for tag, status in expected.items() if not status.is_good()}
                    for tag, node in zip(tags, nodes):
                        data = await node.read_data_value(raise_on_bad_status=False)
                        if tag not in outputs:
                            assert data.Value.Value == 3.0 and data.SourceTimestamp == utc(time - dt.timedelta(minutes=10))
                            continue
                        assert data.StatusCode == expected[tag] and data.SourceTimestamp == utc(time)
                        assert data.Value.Value == (None if math.isnan(outputs[tag]) else outputs[tag])
                    await wait_until(lambda count=step + 1: reported_count(count), 10)
                    assert reported[-1].SourceTimestamp == utc(time) and reported[-1].StatusCode == expected[tags[0]]
                await server.write_value(nodes[1].nodeid, 42.0, ua.VariantType.Double)
                assert (await nodes[1].read_value()) == 42.0
                await server.publish_outputs("Office", dict(zip(tags, steps[0])), start)
                assert (await nodes[1].read_value()) == 1.0
                await wait_until(lambda: reported_count(len(steps) + 2), 10)
                assert [r.Value.Value for r in reported] == [0.0, 1.0, None, high + 1.0, max(low, 0.5), 1.0]
        finally:
            await server.stop()

    asyncio.run(scenario())


def campus_of(tmp_path, count: int, days: int = 1):
    """A fast campus of ``count`` Small Offices (B1..), ``days`` July days, historian kept."""
    from conftest import TAGMAPS

    entries = "".join(f'[[buildings]]\nname = "B{i + 1}"\nmodel = "ref:small_office"\n'
                      f'tagmap = "{TAGMAPS / "small_office.toml"}"\n\n' for i in range(count))
    return load_config(write(tmp_path, f'[campus]\nname = "Groups"\n\n[run]\nstart = "07-01"\nend = "07-{days:02d}"\n'
                                       f'clock = "fast"\nrun_dir = "{tmp_path / "runs"}"\nhistorian = true\n\n{entries}'))


def test_the_clock_steps_a_group_in_one_call_and_records_each_member_as_stepped_alone(tmp_path):
    """Buildings in StepGroups (as the buildings of a Ray node): one ``step_members`` call per group and
    step with its running members; inputs left unchanged are the very mapping of the step before (so a
    group sends none); a member failing faults alone; each member's historian rows and tags hold its
    inputs and its outputs step by step."""
    from bridge.campus import Campus
    from bridge.historian import load_history
    from bridge.server import TagServer
    from conftest import free_port
    from devtools.instantgroup import instant_factory, output

    config = campus_of(tmp_path, 5)
    factory = instant_factory(2, fail_at={"B3": 3})

    async def scenario():
        campus = Campus(config, engine_factory=factory)
        server = TagServer(f"opc.tcp://127.0.0.1:{free_port()}", config.name, config.period.time_of(0))
        await server.init()
        await campus.build_address_space(server)
        campus.serving.set()
        await campus.start()
        await asyncio.wait_for(campus.done.wait(), 60)
        values = {tag: server.internals.read_attribute(node).Value.Value for tag, node in server.outputs["B1"].items()}
        await campus.stop()
        await server.stop()
        return campus, values

    campus, published = asyncio.run(scenario())
    steps = config.period.steps
    assert [b.status for b in campus.buildings] == ["Finished", "Finished", "Faulted", "Finished", "Finished"]
    first, second, third = factory.groups
    assert first.calls == [["B1", "B2"]] * (steps + 1)  # the last call finds the run over
    assert second.calls == [["B3", "B4"]] * 3 + [["B4"]] * (steps - 2)
    assert third.calls == [["B5"]] * (steps + 1)
    assert [list(sent) for sent in first.sent] == [["B1", "B2"]] + [[]] * steps  # nothing written: nothing sent
    tagmap = campus.buildings[0].tagmap
    defaults = tagmap.defaults
    history = load_history(campus.run_path, "B1")
    assert list(history["step"]) == list(range(1, steps + 1))
    for i, o in enumerate(tagmap.outputs):
        assert list(history[o.tag]) == [output(step, defaults, i) for step in range(1, steps + 1)]
        assert published[o.tag] == output(steps, defaults, i)
    for tag, value in defaults.items():
        assert set(history[tag]) == {value}
    assert list(load_history(campus.run_path, "B3")["step"]) == [1, 2]


def test_inputs_read_again_only_after_a_write_whatever_its_path():
    """``current_inputs`` gives the very mapping of the last read until an input of the building is
    written, by a client's Write, the bridge's own write or asyncua's, then the new values."""
    from asyncua import ua

    from bridge.protocol import METHODS
    from bridge.server import TagServer
    from bridge.tagmap import load_tagmap
    from conftest import TAGMAPS, free_port

    tagmap = load_tagmap(TAGMAPS / "small_office.toml")
    tag = tagmap.inputs[0].tag

    async def method() -> str:
        return ""

    async def scenario() -> None:
        server = TagServer(f"opc.tcp://127.0.0.1:{free_port()}", "C", dt.datetime(2025, 7, 1))
        await server.init()
        for name in ("A", "B"):
            await server.add_building(name, tagmap, {m: method for m in METHODS}, lambda: None, None)
        node = server.input_node("A", tag)
        first, other = server.current_inputs("A"), server.current_inputs("B")
        assert server.current_inputs("A") is first and first == tagmap.defaults
        writes = [lambda v: server.write_value(node, v, ua.VariantType.Double),
                  lambda v: server.internals.write([ua.WriteValue(NodeId=node, AttributeId=ua.AttributeIds.Value,
                                                                  Value=ua.DataValue(ua.Variant(v, ua.VariantType.Double)))],
                                                   None),
                  lambda v: server.server.write_attribute_value(node, ua.DataValue(ua.Variant(v, ua.VariantType.Double)))]
        for value, write in zip((23.0, 24.0, 25.0), writes):
            await write(value)
            now = server.current_inputs("A")
            assert now is not first and now[tag] == value, (value, now)
            assert server.current_inputs("A") is now and server.current_inputs("B") is other
            first = now
        await server.stop()

    asyncio.run(scenario())


def test_control_tags_of_many_buildings_read_and_monitored_as_each_set_left_them():
    """A Control tag set for several buildings at once (Step each step: one ``ValueBlock``) reads, and is
    reported to a subscription, as if each tag had been set alone: a building left out of a call keeps
    its value, one set alone (a reset's Step=0) holds that value until the next call that names it, and
    every building named shares the call's DataValue."""
    from asyncua import Client

    from bridge.opcua_adapter import subscribe_every_sample
    from bridge.protocol import METHODS
    from bridge.server import TagServer
    from bridge.tagmap import load_tagmap
    from conftest import TAGMAPS, free_port, wait_until

    tagmap = load_tagmap(TAGMAPS / "small_office.toml")
    names = ["A", "B", "C"]
    reported = []

    async def method() -> str:
        return ""

    async def scenario() -> None:
        endpoint = f"opc.tcp://127.0.0.1:{free_port()}"
        server = TagServer(endpoint, "Campus", dt.datetime(2025, 7, 1))
        await server.init()
        await server.add_campus_nodes({m: method for m in METHODS})
        for name in names:
            await server.add_building(name, tagmap, {m: method for m in METHODS}, lambda: None, None)
        await server.listen()

        class Handler:
            def datachange_notification(self, node, value, data) -> None:
                reported.append(value)

        async def steps() -> dict:
            return {key: (await client.get_node(server.controls[key].ids["Step"]).read_value())
                    for key in [*names, None]}

        try:
            async with Client(endpoint) as client:
                await server.set_controls([*names, None], Step=1)
                assert await steps() == {"A": 1, "B": 1, "C": 1, None: 1}
                subscription = await client.create_subscription(10, Handler())
                await subscribe_every_sample(subscription, [client.get_node(server.controls["B"].ids["Step"])], 100)
                await wait_until(lambda: _true(reported == [1]), 10)
                await server.set_controls(["A", "C", None], Step=2)  # B left out (faulted, stopped)
                assert await steps() == {"A": 2, "B": 1, "C": 2, None: 2}
                await server.set_control("A", Step=0)
                assert await steps() == {"A": 0, "B": 1, "C": 2, None: 2}
                await server.set_controls([*names, None], Step=3, SimTimeSeconds=1800.0)
                assert await steps() == {"A": 3, "B": 3, "C": 3, None: 3}
                data = [server.internals.read_attribute(server.controls[key].ids["Step"]) for key in [*names, None]]
                assert all(d is data[0] for d in data)
                await wait_until(lambda: _true(reported == [1, 3]), 10)
                await server.set_control("B", Step=4)
                await wait_until(lambda: _true(reported == [1, 3, 4]), 10)
                assert await steps() == {"A": 3, "B": 4, "C": 3, None: 3}
        finally:
            await server.stop()

    asyncio.run(scenario())


async def _true(condition: bool) -> bool:
    return condition


def test_a_block_of_outputs_reads_and_is_monitored_as_each_building_published_alone():
    """``publish_block`` (a StepGroup's outputs, one list for several buildings): each tag reads, and a
    subscription reports, its own building's value, quality and time; only the building whose value is out
    of range is flagged; a building then published alone takes its tags from the block (the others keep the
    block's values) and the next block takes them back."""
    from asyncua import Client

    from bridge.opcua_adapter import subscribe_every_sample
    from bridge.opcua_history import quality, utc
    from bridge.protocol import METHODS
    from bridge.server import TagServer
    from bridge.tagmap import load_tagmap
    from conftest import TAGMAPS, free_port, wait_until

    start = dt.datetime(2025, 7, 1)
    tagmap = load_tagmap(TAGMAPS / "small_office.toml")
    tags = [o.tag for o in tagmap.outputs]
    names = ("A", "B", "C")
    ranges = [tagmap.output_range(o) for o in tagmap.outputs]
    reported = []

    async def method() -> str:
        return ""

    def rows(step: int) -> dict[str, list[float]]:  # in range, every building's and every tag's different
        return {name: [low + (high - low) * (step * 40 + b * 10 + i + 1) / 1000 for i, (low, high) in enumerate(ranges)]
                for b, name in enumerate(names)}

    async def scenario() -> None:
        endpoint = f"opc.tcp://127.0.0.1:{free_port()}"
        server = TagServer(endpoint, "C", start)
        await server.init()
        for name in names:
            await server.add_building(name, tagmap, {m: method for m in METHODS}, lambda: None, None)
        await server.listen()

        class Handler:
            def datachange_notification(self, node, value, data) -> None:
                reported.append((value, data.monitored_item.Value.SourceTimestamp))

        async def read_all() -> dict[str, list]:
            return {name: [await client.get_node(server.outputs[name][tag]).read_data_value(raise_on_bad_status=False)
                           for tag in tags] for name in names}

        def expect(data: dict[str, list], values: dict[str, list[float]], times: dict[str, dt.datetime]) -> None:
            for name in names:
                for tag, value, span, read in zip(tags, values[name], ranges, data[name]):
                    assert (read.Value.Value, read.StatusCode, read.SourceTimestamp) == \
                           (value, quality(value, span), utc(times[name])), (name, tag)

        try:
            async with Client(endpoint) as client:
                subscription = await client.create_subscription(10, Handler())
                await subscribe_every_sample(subscription, [client.get_node(server.outputs["B"][tags[2]])], 100)
                await wait_until(lambda: _true(len(reported) == 1), 10)  # the initial value
                times = {}
                for step in (1, 2):
                    values, time = rows(step), start + dt.timedelta(minutes=10 * step)
                    if step == 2:
                        values["C"][1] = ranges[1][1] + 1.0  # out of range: C alone flagged
                    flagged = await server.publish_block(names, [v for name in names for v in values[name]], time)
                    assert flagged == ({"C": {tags[1]: quality(values["C"][1], ranges[1]).name}} if step == 2 else {})
                    times = dict.fromkeys(names, time)
                    expect(await read_all(), values, times)
                    await wait_until(lambda count=step + 1: _true(len(reported) == count), 10)
                    assert reported[-1] == (values["B"][2], utc(time))
                alone, time = rows(3)["B"], start + dt.timedelta(minutes=30)
                await server.publish_outputs("B", dict(zip(tags, alone)), time)
                values["B"], times["B"] = alone, time
                expect(await read_all(), values, times)  # A and C keep step 2's
                await wait_until(lambda: _true(len(reported) == 4), 10)
                values, time = rows(4), start + dt.timedelta(minutes=40)
                await server.publish_block(names, [v for name in names for v in values[name]], time)
                expect(await read_all(), values, dict.fromkeys(names, time))
                await wait_until(lambda: _true(len(reported) == 5), 10)
                assert [value for value, _ in reported] == [0.0, rows(1)["B"][2], rows(2)["B"][2], alone[2], values["B"][2]]
                short = [v for name in names for v in rows(5)[name]][:-1]  # one value missing: refused, nothing taken
                with pytest.raises(ValueError, match=f"{len(short)} output values for the {len(short) + 1} output tags"):
                    await server.publish_block(names, short, start + dt.timedelta(minutes=50))
                expect(await read_all(), values, dict.fromkeys(names, time))
        finally:
            await server.stop()

    asyncio.run(scenario())


def test_a_group_answered_as_blocks_records_and_publishes_each_members_own_outputs(tmp_path):
    """The block path (a StepGroup answering a ``Block``: published, summed and recorded as one): each
    member's historian rows, output tags, Control Step and Exchange outputs are its own step by step
    (members driven by different inputs), TotalElectricPower their power summed, and a member that fails
    mid-run leaves the others' blocks right before and after."""
    from asyncua import ua

    from bridge.campus import Campus
    from bridge.historian import load_history
    from bridge.protocol import TOTAL_POWER
    from bridge.server import TagServer
    from bridge.stepgroup import Block
    from conftest import free_port
    from devtools.instantgroup import instant_factory, output

    config = campus_of(tmp_path, 4)
    factory = instant_factory(4, fail_at={"B2": 5})
    tagmap = config.buildings[0].tagmap
    inputs = {f"B{i + 1}": {**tagmap.defaults, "CoolingSetpoint": 24.0 + 0.3 * i} for i in range(4)}

    async def scenario():
        campus = Campus(config, engine_factory=factory)
        server = TagServer(f"opc.tcp://127.0.0.1:{free_port()}", config.name, config.period.time_of(0))
        await server.init()
        await campus.build_address_space(server)
        for name, values in inputs.items():
            await server.write_value(server.input_node(name, "CoolingSetpoint"), values["CoolingSetpoint"],
                                     ua.VariantType.Double)
        campus.serving.set()
        await campus.start()
        await asyncio.wait_for(campus.done.wait(), 60)
        read = server.internals.read_attribute
        tags = {name: {tag: read(node).Value.Value for tag, node in server.outputs[name].items()} for name in inputs}
        steps = {name: read(server.controls[name].ids["Step"]).Value.Value for name in inputs}
        total = read(server.outputs[config.name][TOTAL_POWER]).Value.Value
        await campus.stop()
        await server.stop()
        return campus, tags, steps, total

    campus, tags, steps, total = asyncio.run(scenario())
    last = config.period.steps
    assert [b.status for b in campus.buildings] == ["Finished", "Faulted", "Finished", "Finished"]
    assert isinstance(factory.groups[0].answers[1], Block) and not isinstance(factory.groups[0].answers[4], Block)
    power = [o.tag for o in tagmap.outputs if o.role == "electric_power"]
    finished = [b for b in campus.buildings if b.name != "B2"]
    for building in finished:
        name = building.name
        history = load_history(campus.run_path, name)
        assert list(history["step"]) == list(range(1, last + 1))
        for i, o in enumerate(tagmap.outputs):
            assert list(history[o.tag]) == [output(step, inputs[name], i) for step in range(1, last + 1)], (name, o.tag)
            assert tags[name][o.tag] == output(last, inputs[name], i)
        assert set(history["CoolingSetpoint"]) == {inputs[name]["CoolingSetpoint"]}
        assert steps[name] == last and building.published_step == last
        assert dict(building.published.outputs) == {o.tag: output(last, inputs[name], i) for i, o in enumerate(tagmap.outputs)}
    assert list(load_history(campus.run_path, "B2")["step"]) == [1, 2, 3, 4]
    assert total == math.fsum(output(last, inputs[b.name], tagmap.outputs.index(tagmap.output(tag)))
                              for b in finished for tag in power)
