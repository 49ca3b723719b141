"""Model registry: frozen Baseline, ECM versions; and the fault/ECM edits it relies on."""

import datetime as dt
import json
import re

import pytest
from pyenergyplus import dataset

from bridge.cli import main
from bridge.idf import Idf
from bridge.tracking import faults
from bridge.tracking.registry import FrozenModelError, ModelRegistry, RegistryError

MODEL = dataset.ref_models["small_office"]
WEATHER = dataset.weather_files["usa_il_chicago"]


def test_frozen_baseline_refuses_every_change(tmp_path):
    registry = ModelRegistry(tmp_path)
    registry.register("Baseline", MODEL, WEATHER, calibration={"hourly": {"cv_rmse_pct": 12.0}})
    frozen = registry.freeze()
    assert frozen.status == "frozen" and frozen.version == "1.0.0"
    for attempt in (lambda r: r.register("Baseline", MODEL, WEATHER),
                    lambda r: r.set_calibration("Baseline", {"hourly": {}}),
                    lambda r: r.freeze()):
        with pytest.raises(FrozenModelError, match="frozen"):
            attempt(ModelRegistry(tmp_path))  # also after reloading from disk
    path = registry.model_path(frozen)
    path.chmod(0o644)
    path.write_text(path.read_text() + "\n! edited\n")
    with pytest.raises(FrozenModelError, match="modified on disk"):
        registry.verify("Baseline")


def test_ecm_creates_the_next_actual_version(tmp_path):
    registry = ModelRegistry(tmp_path)
    first = registry.register("Actual", MODEL, WEATHER)
    assert first.version == "1.0.0"
    led = registry.record_ecm("LED retrofit", "2025-06-01", [{"edit": "scale_lighting", "factor": 0.5}])
    assert led.version == "1.1.0" and led.ecm["name"] == "LED retrofit" and led.ecm["date"] == "2025-06-01"
    lights = Idf.read(registry.model_path(led)).of_class("Lights")
    assert {float(light.fields[5]) for light in lights} == {10.76 * 0.5}
    reloaded = ModelRegistry(tmp_path)
    assert reloaded.current("Actual").version == "1.1.0"
    assert [v.status for v in reloaded.versions] == ["superseded", "active"]
    assert [e["action"] for e in reloaded.history("Actual")] == ["register", "record-ecm"]
    assert json.loads((tmp_path / "registry.json").read_text())["versions"][1]["ecm"]["edits"][0]["factor"] == 0.5


def test_registry_errors_name_the_problem(tmp_path):
    registry = ModelRegistry(tmp_path)
    with pytest.raises(RegistryError, match="unknown model role"):
        registry.register("Retrofit", MODEL, WEATHER)
    with pytest.raises(RegistryError, match="no Actual model"):
        registry.record_ecm("LED", "2025-06-01", [{"edit": "scale_lighting", "factor": 0.5}])
    registry.register("Actual", MODEL, WEATHER)
    with pytest.raises(RegistryError, match="YYYY-MM-DD"):
        registry.record_ecm("LED", "June", [{"edit": "scale_lighting", "factor": 0.5}])
    with pytest.raises(faults.FaultError, match="unknown edit"):
        registry.record_ecm("LED", "2025-06-01", [{"edit": "paint_it_green"}])
    with pytest.raises(RegistryError, match="only the Baseline"):
        registry.freeze("Actual")


def test_part_way_equipment_fault_is_zero_before_the_start():
    idf = Idf.read(MODEL)
    count = faults.raise_equipment(idf, 30, dt.date(2025, 7, 2))
    extra = [e for e in idf.of_class("ElectricEquipment") if e.name.endswith("_FAULT")]
    assert count == len(extra) == 5
    assert float(extra[0].fields[5]) == pytest.approx(10.76 * 0.3)
    schedule = idf.schedule(extra[0].fields[2]).fields
    before = schedule[schedule.index("Through: 07/01") + 1:schedule.index("Through: 12/31")]
    assert {float(v) for v in before if v[0].isdigit()} == {0.0}
    original = idf.schedule("BLDG_EQUIP_SCH").fields
    assert schedule[schedule.index("Through: 12/31") + 1:] == original[3:]


def test_edits_may_start_on_february_29_and_bad_days_name_the_edit():
    assert faults.parse_day("02-29") == dt.date(2000, 2, 29)
    idf = Idf.read(MODEL)
    assert faults.apply_edit(idf, {"edit": "raise_equipment", "pct": 30, "start": "2024-02-29"}) == 5
    schedule = idf.schedule("BLDG_EQUIP_SCH_FAULT_0229").fields
    assert schedule[2] == "Through: 02/28" and schedule.index("Through: 12/31") > 3
    edit = {"edit": "scale_lighting", "factor": 0.5, "start": "2023-02-29"}
    with pytest.raises(faults.FaultError, match=re.escape(f"edit {edit}: no such day: '2023-02-29'")):
        faults.apply_edit(idf, edit)


def test_shift_and_economizer_edits():
    idf = Idf.read(MODEL)
    faults.shift_schedule(idf, "HVACOperationSchd", -2, dt.date(2025, 7, 2))
    fields = idf.schedule("HVACOperationSchd").fields
    after = fields[fields.index("Through: 12/31"):]
    assert "Until: 04:00" in after and "Until: 20:00" in after and after.count("Until: 24:00") == 3
    assert faults.disable_economizer(idf) == 0  # the small office has no economizer
    idf.of_class("Controller:OutdoorAir")[0].fields[7] = "DifferentialDryBulb"
    assert faults.disable_economizer(idf) == 1


def test_registry_commands_report_errors_in_one_line(tmp_path, capsys):
    ecm = ["registry", "--dir", str(tmp_path), "record-ecm", "LED", "2025-06-01", "--edit"]
    assert main([*ecm, '{"edit": "scale_lighting", "factor": 0.5}']) == 2
    assert capsys.readouterr().err.startswith("twinbridge: error: no Actual model")
    assert main(["registry", "--dir", str(tmp_path), "register", "Actual", str(MODEL), str(WEATHER)]) == 0
    assert main([*ecm, '{"edit": "paint_it_green"}']) == 2
    assert capsys.readouterr().err.startswith("twinbridge: error: unknown edit 'paint_it_green'")
