"""What crosses the network between a Ray node actor and the head (bridge/engines/ray_actor.py): a step's
answer packed as one buffer of doubles when every member gave floats of one simulation time, each member's
own row taken back out of it as it was; anything else sent as it is. No Ray cluster is started."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("ray")
from bridge.engines.base import EngineFault  # noqa: E402
from bridge.engines.ray_actor import _packed, _unpacked  # noqa: E402
from bridge.stepgroup import Block, RowLayout  # noqa: E402

values = st.floats(allow_nan=True, allow_infinity=True, width=64)
rows_of = st.lists(st.lists(values, min_size=1, max_size=20), min_size=1, max_size=12)


def same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


@settings(max_examples=60, deadline=None)
@given(rows_of, st.floats(min_value=0, max_value=3.2e7))
def test_a_packed_answer_gives_back_each_members_row_bit_for_bit(rows, sim_time_s):
    layouts = [RowLayout([f"T{i}" for i in range(len(row))]) for row in rows]
    time_s, packed = _packed([sim_time_s] * len(rows), rows)
    assert type(packed) is bytes and len(packed) == 8 * sum(map(len, rows))
    block = _unpacked(time_s, packed, layouts)
    assert type(block) is Block and block.sim_time_s == sim_time_s and block.layouts == layouts
    assert all(len(a) == len(b) and all(map(same, a, b)) for a, b in zip(block.rows, rows))
    assert all(type(v) is float for row in block.rows for v in row)


def test_answers_that_are_not_one_block_cross_as_they_are():
    fault = EngineFault("B2: failed")
    for times, rows in (([600.0, 600.0], [[1.0], fault]), ([600.0, 1200.0], [[1.0], [2.0]]), ([600.0], [None])):
        assert _packed(times, rows) == (times, rows)


def test_a_packed_answer_of_the_wrong_length_is_refused():
    _, packed = _packed([600.0, 600.0], [[1.0, 2.0], [3.0]])
    with pytest.raises(ValueError, match="3 values for 4 output tags"):
        _unpacked(600.0, packed, [RowLayout(["A", "B"]), RowLayout(["C", "D"])])
