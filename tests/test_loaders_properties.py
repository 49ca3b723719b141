"""Property tests of the file loaders: random mutations of the shipped example files (bytes flipped,
inserted or deleted; a value replaced by a random TOML value) give a valid result or the project's own
error naming the file, never another exception (issue 13, defect 7)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from conftest import REPO, SIMS, TAGMAPS, secured_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_twin_model import small_office, small_office_db, trained  # noqa: F401 (session fixtures)

from bridge.config import load_config
from bridge.security.users import load_users
from bridge.tagmap import load_tagmap
from bridge.tracking.config import load_tracking_config
from controllers.csv_trajectory import load_trajectory
from controllers.gp_mpc import load_mpc
from controllers.schedule import load_schedule
from devtools.fuzz import examples

EXAMPLES = REPO / "controllers" / "examples"
SETTINGS = settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
VALUE = re.compile(rb"^(\s*[A-Za-z0-9_.\"]+\s*=\s*)(.*)$", re.MULTILINE)
TRACKING = b"""
[tracking]
anomaly_db = "anomalies.sqlite"
pair_timeout_s = 5

[thresholds]
warning_steps = 2
alert_steps = 2

[thresholds.hourly]
warning_pct = 20
alert_pct = 40

[live]
endpoint = "opc.tcp://127.0.0.1:4841"
publishing_interval_ms = 20
utc_offset_h = -6

[twin]
endpoint = "opc.tcp://127.0.0.1:4840"

[[pairs]]
name = "FacilityPower"
twin = "C.Office.Outputs.FacilityPower"
live = "C.Meter.Outputs.FacilityPower"
unit = "kW"
scale = 0.001

[after_hours]
pairs = ["FacilityPower"]
alert_kw = 0.5
window_steps = 6

[after_hours.occupancy]
weekdays = [6.0, 22.0]
sunday = []
daylight_saving = ["2nd Sunday in March", "1st Sunday in November"]
"""


def project_error(exc: BaseException) -> bool:
    """Whether ``exc`` is one of the project's own errors of bad input."""
    return isinstance(exc, ValueError) and type(exc).__module__.split(".")[0] in ("bridge", "controllers")


def seed(path: Path) -> bytes:
    """An example file with its relative paths made absolute, so that a copy loads anywhere."""
    text = path.read_bytes()
    for relative in (b"../../tagmaps/", b"../tagmaps/"):
        text = text.replace(b'"' + relative, b'"' + str((path.parent / relative.decode()).resolve()).encode() + b"/")
    base_schedule = b'schedule = "large_office_base'
    return text.replace(base_schedule, base_schedule.replace(b'"', b'"' + str(EXAMPLES).encode() + b"/"))


def toml_float(x: float) -> str:
    return repr(x) if math.isfinite(x) else str(x).replace("infinity", "inf")


toml_values = st.one_of(
    st.integers(-10**20, 10**20).map(str), st.floats().map(toml_float), st.booleans().map(lambda b: str(b).lower()),
    st.text(max_size=12).map(lambda text: json.dumps(text, ensure_ascii=False)),  # JSON's escapes are TOML's
    st.sampled_from(['""', '"\\u0000"', "[]", "{}", '[1, "a"]', "[[1.0, 2.0]]", "{ x = 1 }", "1979-05-27", "07:32:00",
                     '"ref:nowhere"', '"24:00"', '"99-99"', '"/"', '"."', "1e999", "-0", "[22.0, 21.0]"]),
).map(str.encode)


@st.composite
def mutated(draw, original: bytes) -> bytes:
    """``original`` with a few bytes flipped, inserted or deleted, or one value replaced."""
    data = bytearray(original)
    matches = list(VALUE.finditer(original))
    kind = draw(st.sampled_from(["flip", "insert", "delete"] + ["value", "value"] * bool(matches)))
    if kind == "value":
        match = draw(st.sampled_from(matches))
        return original[:match.start(2)] + draw(toml_values) + original[match.end(2):]
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        else:
            del data[at:at + draw(st.integers(1, 8))]
    return bytes(data)


def loads_or_refuses(load, path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        load(path)
    except Exception as exc:  # noqa: BLE001: the property is about which exceptions come out
        assert project_error(exc), f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
        assert str(path) in str(exc) or path.name in str(exc), f"the error names no file: {exc}"
        assert "\n" not in str(exc), f"not one line: {exc}"


LOADERS = {
    "campus": (load_config, SIMS / "test_campus.toml"),
    "tagmap": (load_tagmap, TAGMAPS / "large_office.toml"),
    "schedule": (load_schedule, EXAMPLES / "small_office_schedule.toml"),
    "gp_mpc": (load_mpc, EXAMPLES / "large_office_gp_mpc.toml"),
    "trajectory": (load_trajectory, EXAMPLES / "small_office_trajectory.csv"),
}


@pytest.mark.property
@pytest.mark.parametrize("name", sorted(LOADERS))
def test_a_shipped_file_loads_or_is_refused_with_the_projects_error(name, tmp_path):
    load, example = LOADERS[name]
    original = seed(example)

    @SETTINGS
    @given(data=mutated(original))
    def check(data):
        loads_or_refuses(load, tmp_path / example.name, data)

    check()


@pytest.mark.property
@SETTINGS
@given(data=mutated(TRACKING))
def test_a_tracking_file_loads_or_is_refused_with_the_projects_error(tmp_path, data):
    loads_or_refuses(load_tracking_config, tmp_path / "tracking.toml", data)


NOT_UTF8 = b"\xff\xfe bad"
TRACKING_LOADER = (load_tracking_config, None)


@pytest.mark.parametrize("name", [*sorted(LOADERS), "tracking"])
def test_a_file_that_is_not_utf8_is_refused_naming_file_and_line(name, tmp_path):
    load, example = LOADERS.get(name, TRACKING_LOADER)
    original = seed(example) if example else TRACKING
    lines = original.split(b"\n")
    path = tmp_path / (example.name if example else "tracking.toml")
    path.write_bytes(b"\n".join([*lines[:2], lines[2] + NOT_UTF8, *lines[3:]]))
    with pytest.raises(ValueError, match=re.escape(str(path)) + r".*(line 3|UTF-8)") as caught:
        load(path)
    assert project_error(caught.value)


@pytest.mark.parametrize("name", [*sorted(LOADERS), "tracking"])
def test_a_path_with_a_nul_is_refused_naming_it(name, tmp_path):
    load = LOADERS.get(name, TRACKING_LOADER)[0]
    with pytest.raises(ValueError, match="bad") as caught:
        load(str(tmp_path / "bad\0name.toml"))
    assert project_error(caught.value)


@pytest.mark.parametrize("key", ["tagmap", "model", "weather"])
def test_a_nul_in_a_file_named_by_a_campus_file_is_refused_naming_it(key, tmp_path):
    path = tmp_path / "campus.toml"
    text = seed(SIMS / "small_office.toml").decode()
    path.write_text(re.sub(rf"^{key} = .*$", lambda _: f'{key} = "x\\u0000y"', text, flags=re.MULTILINE))
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*buildings.0.") as caught:
        load_config(path)
    assert project_error(caught.value)



@pytest.mark.parametrize("load, text, message", [
    (load_tracking_config, b"pairs = 5\n" + TRACKING.split(b"[[pairs]]")[0],
     "'pairs' must be a list of tables ([[pairs]]), got 5"),
    (load_tracking_config, TRACKING.replace(b'"anomalies.sqlite"', b'"a\\u0000b"'),
     "[tracking]: anomaly_db: expected a file name, got 'a\\x00b'"),
    (load_users, b"user = 5\n", "'user' must be a list of tables ([[user]]), got 5"),
    (load_users, b"[user]\nname = 'a'\n", "'user' must be a list of tables ([[user]])"),
])
def test_a_value_of_the_wrong_kind_is_refused_naming_file_and_key(load, text, message, tmp_path):
    """A list, table or file name of the wrong kind: the loader's error naming file and key, not a TypeError
    or the ValueError of a NUL in a path (tracking ``pairs``, ``anomaly_db``; users file ``user``)."""
    path = tmp_path / "file.toml"
    path.write_bytes(text)
    with pytest.raises(ValueError, match=re.escape(f"{path}: {message}")) as caught:
        load(path)
    assert project_error(caught.value)


@pytest.mark.parametrize("server, message", [
    ('certificate = "a\\u0000b"', "[server]: certificate: expected a file name, got 'a\\x00b'"),
    ('users = "x\\u0000"', "[server]: users: expected a file name, got 'x\\x00'"),
    ('certificate = 5', "[server]: 'certificate' must be text, got 5"),
])
def test_a_server_file_name_of_the_wrong_kind_is_refused_naming_it(server, message, tmp_path):
    secure = 'security_policies = ["Basic256Sha256_SignAndEncrypt"]\nprivate_key = "k.pem"'
    path = secured_config(tmp_path, f"{secure}\n{server}")
    with pytest.raises(ValueError, match=re.escape(f"{path}: {message}")) as caught:
        load_config(path)
    assert project_error(caught.value)

@pytest.mark.property
@pytest.mark.engine
def test_a_gp_mpc_file_with_a_trained_twin_loads_or_is_refused(trained, tmp_path):  # noqa: F811
    """The GP-MPC file of tests/test_gp_mpc.py, which loads (its twin exists), mutated past the model."""
    from test_gp_mpc import mpc_file

    original = mpc_file(tmp_path, trained[1]).read_bytes()
    load_mpc(tmp_path / "mpc.toml")

    @settings(max_examples=examples(30), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(data=mutated(original))
    def check(data):
        loads_or_refuses(load_mpc, tmp_path / "mpc.toml", data)

    check()
