"""Model registry: the Baseline, Operational and Actual models of a building, versioned.

- **Baseline**: calibrated to pre-retrofit meter data, then frozen; the reference for savings.
- **Operational**: tracks current operation; re-registered (new version) when re-calibrated.
- **Actual**: the building as retrofitted; ``record_ecm`` applies an energy-conservation measure's
  model edits (``bridge.tracking.faults.apply_edit``) to the current Actual model and registers the
  result as the next minor version (1.0.0 -> 1.1.0) with the ECM's name, date and edits.

Storage: one JSON file, ``registry.json``, in the registry folder (readable, diff-able, small),
plus a ``models/`` folder holding a read-only copy of every registered model file, named
``<role>-<version>.idf`` with its SHA-256 in the JSON. Every change appends an event to the
file's history. A frozen Baseline cannot change: registering, re-calibrating, re-freezing or
editing it raises ``FrozenModelError``, and ``verify`` detects a model file changed on disk.
Writes go to a temporary file then ``os.replace`` (a crash leaves the old or the new file).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import stat
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from bridge.errors import TwinbridgeError
from bridge.idf import Idf
from bridge.tracking.faults import apply_edit

ROLES = ("Baseline", "Operational", "Actual")


class RegistryError(TwinbridgeError, ValueError):
    """A registry request that cannot be honoured; the message says which model and why."""


class FrozenModelError(RegistryError):
    """An attempt to change a frozen Baseline."""


@dataclass(frozen=True)
class ModelVersion:
    role: str
    version: str
    status: str  # "active", "frozen" or "superseded"
    model_file: str  # relative to the registry folder
    model_sha256: str
    weather_file: str
    created: str
    calibration: dict = field(default_factory=dict)  # e.g. Guideline 14 results per granularity
    calibration_start: str = ""
    calibration_end: str = ""
    frozen_at: str = ""
    ecm: dict | None = None  # {"name", "date", "edits"} for Actual versions made by record_ecm
    notes: str = ""


def _now() -> str:
    return dt.datetime.now().isoformat(timespec="seconds")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def next_minor(version: str) -> str:
    """1.0.0 -> 1.1.0."""
    try:
        major, minor, _ = (int(part) for part in version.split("."))
    except ValueError:
        raise RegistryError(f"version {version!r} is not MAJOR.MINOR.PATCH") from None
    return f"{major}.{minor + 1}.0"


class ModelRegistry:
    """The registry folder of one building (see module docstring)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / "registry.json"
        if self.path.is_file():
            data = json.loads(self.path.read_text())
            self.versions = [ModelVersion(**entry) for entry in data["versions"]]
            self.events: list[dict] = data["events"]
        else:
            self.versions, self.events = [], []

    # --- queries -------------------------------------------------------------------------------
    def current(self, role: str) -> ModelVersion | None:
        _check_role(role)
        return next((v for v in reversed(self.versions) if v.role == role), None)

    def history(self, role: str | None = None) -> list[dict]:
        """Events (register, calibrate, freeze, record-ecm), oldest first, for one role or all."""
        if role is not None:
            _check_role(role)
        return [e for e in self.events if role is None or e["role"] == role]

    def model_path(self, version: ModelVersion) -> Path:
        return self.folder / version.model_file

    def verify(self, role: str) -> None:
        """Raise if the current model file of ``role`` no longer matches its recorded SHA-256."""
        version = self._require(role)
        if _sha256(self.model_path(version)) != version.model_sha256:
            kind = FrozenModelError if version.status == "frozen" else RegistryError
            raise kind(f"{role} {version.version}: model file {version.model_file} was modified on disk")

    def refuse_if_frozen_file(self, model: str | Path, action: str = "update") -> None:
        """FrozenModelError if ``model`` is, byte for byte, the model file of a frozen version (a
        copy of the frozen Baseline handed to an update, say): the reference for savings never changes."""
        digest = _sha256(Path(model))
        for version in self.versions:
            if version.status == "frozen" and version.model_sha256 == digest:
                raise FrozenModelError(f"cannot {action} {model}: it is {version.role} {version.version}, frozen on "
                                       f"{version.frozen_at} as the reference for savings")

    # --- changes -------------------------------------------------------------------------------
    def register(self, role: str, model: str | Path, weather: str | Path, version: str | None = None,
                 calibration: dict | None = None, calibration_start: str = "", calibration_end: str = "",
                 notes: str = "") -> ModelVersion:
        """Register a new version of ``role`` from a model file (copied into the registry)."""
        _check_role(role)
        self._refuse_if_frozen(role, "register a new version of")
        previous = self.current(role)
        version = version or (next_minor(previous.version) if previous else "1.0.0")
        if any(v.role == role and v.version == version for v in self.versions):
            raise RegistryError(f"{role} {version} is already registered")
        entry = ModelVersion(
            role=role, version=version, status="active", model_file="", model_sha256="",
            weather_file=str(Path(weather).resolve()), created=_now(), calibration=dict(calibration or {}),
            calibration_start=calibration_start, calibration_end=calibration_end, notes=notes)
        entry = self._store_model(entry, Path(model))
        self._supersede(previous)
        self.versions.append(entry)
        self._event("register", entry, notes or f"from {model}")
        return entry

    def set_calibration(self, role: str, calibration: dict, start: str = "", end: str = "") -> ModelVersion:
        """Record calibration metrics (and the metered period) on the current version of ``role``."""
        current = self._require(role)
        self._refuse_if_frozen(role, "re-calibrate")
        updated = replace(current, calibration=dict(calibration), calibration_start=start, calibration_end=end)
        self.versions[self.versions.index(current)] = updated
        self._event("calibrate", updated, json.dumps(calibration, default=str)[:500])
        return updated

    def freeze(self, role: str = "Baseline") -> ModelVersion:
        """Freeze the current Baseline; from now on any change to it raises FrozenModelError."""
        if role != "Baseline":
            raise RegistryError(f"only the Baseline is frozen (got {role!r}); Operational and Actual keep evolving")
        current = self._require(role)
        self._refuse_if_frozen(role, "freeze again")
        self.verify(role)
        frozen = replace(current, status="frozen", frozen_at=_now())
        self.versions[self.versions.index(current)] = frozen
        self._event("freeze", frozen, "")
        return frozen

    def record_ecm(self, name: str, date: str, edits: list[dict], notes: str = "") -> ModelVersion:
        """Apply an ECM's edits to the current Actual model and register it as the next minor version."""
        current = self._require("Actual")
        if not name.strip():
            raise RegistryError("an ECM needs a name")
        try:
            dt.date.fromisoformat(date)
        except ValueError:
            raise RegistryError(f"ECM date must be YYYY-MM-DD, got {date!r}") from None
        if not edits:
            raise RegistryError(f"ECM {name!r}: no model edits given")
        idf = Idf.read(self.model_path(current))
        for edit in edits:
            if apply_edit(idf, edit) == 0:
                raise RegistryError(f"ECM {name!r}: edit {edit} changed nothing in {current.model_file}")
        staging = self.folder / "models" / f"ecm-staging-{os.getpid()}.idf"
        idf.write(staging)
        try:
            version = next_minor(current.version)
            entry = replace(current, version=version, status="active", created=_now(),
                            ecm={"name": name, "date": date, "edits": list(edits)}, notes=notes,
                            calibration={}, calibration_start="", calibration_end="")
            entry = self._store_model(entry, staging)
        finally:
            staging.unlink(missing_ok=True)
        self._supersede(current)
        self.versions.append(entry)
        self._event("record-ecm", entry, f"{name} on {date}: {edits}")
        return entry

    # --- internals -----------------------------------------------------------------------------
    def _require(self, role: str) -> ModelVersion:
        current = self.current(role)
        if current is None:
            raise RegistryError(f"no {role} model is registered in {self.folder}")
        return current

    def _refuse_if_frozen(self, role: str, action: str) -> None:
        current = self.current(role)
        if current is not None and current.status == "frozen":
            raise FrozenModelError(f"cannot {action} the {role}: version {current.version} was frozen on "
                                   f"{current.frozen_at} and is the reference for savings")

    def _supersede(self, previous: ModelVersion | None) -> None:
        if previous is not None and previous.status == "active":
            self.versions[self.versions.index(previous)] = replace(previous, status="superseded")

    def _store_model(self, entry: ModelVersion, source: Path) -> ModelVersion:
        if not source.is_file():
            raise RegistryError(f"model file not found: {source}")
        target = self.folder / "models" / f"{entry.role.lower()}-{entry.version}{source.suffix or '.idf'}"
        if target.exists():
            raise RegistryError(f"{target} already exists; the registry never overwrites a model file")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        target.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        return replace(entry, model_file=str(target.relative_to(self.folder)), model_sha256=_sha256(target))

    def _event(self, action: str, entry: ModelVersion, detail: str) -> None:
        self.events.append({"time": _now(), "action": action, "role": entry.role, "version": entry.version,
                            "detail": detail})
        self._save()

    def _save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps({"versions": [asdict(v) for v in self.versions], "events": self.events},
                                        indent=2, default=str))
        os.replace(temporary, self.path)


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise RegistryError(f"unknown model role {role!r}; known: {ROLES}")
