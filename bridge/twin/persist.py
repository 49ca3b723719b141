"""Save and load a trained ``TwinModel``: one ``.npz`` file, no pickle.

The file holds, per target, the fitted hyperparameters (log kernel parameters), the feature
scaling, the daily profile (and the known load's), the std calibration table, the standardized training rows and, beyond
``max_exact`` rows, the inducing points; loading rebuilds the kernel and conditions the GP on those
rows again, so predictions are identical to the saved model's.
A JSON ``metadata`` entry records features, lags, training period, metrics and library versions.
Loading is safe on untrusted files (``allow_pickle=False``).
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import zipfile
import zlib
from dataclasses import asdict
from functools import partial
from importlib import metadata as package_metadata
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from bridge.tagmap import TagMap, same_building
from bridge.twin.errors import ModelFileError
from bridge.twin.features import DAY_TYPES, PROFILE_SLOTS, FeatureSet
from bridge.twin.gp import GPModel, TwinModel
from bridge.twin.kernel import make_kernel
from bridge.twin.weather import EPW_COLUMNS

FORMAT = "twinbridge-gp-twin/2"  # 2: std calibration tables [one-step, rollout]
# what reading a damaged .npz raises (json.JSONDecodeError is a ValueError)
READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error)
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # first bytes of a zip archive (an .npz file), as numpy.load tells them
GP_PARAMS = ("n_hyper", "max_exact", "n_inducing", "linear", "n_restarts", "max_iter", "calibrate", "random_state",
             "blas_threads", "update_days", "bias_hours", "bias_horizon")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("numpy", "scipy", "scikit-learn", "pandas"):
        versions[package] = package_metadata.version(package)
    return versions


def save_model(twin: TwinModel, path: Path, metrics: dict | None = None, extra: dict | None = None,
               tagmap: TagMap | None = None) -> Path:
    """Write ``twin`` (fitted) to ``path`` (.npz) with its metadata; return the path. ``tagmap``: the
    tag map of the building it learnt, recorded as metadata ``building`` (name, floor area, file) so
    that ``check_compatible`` refuses the model for another building."""
    arrays: dict[str, np.ndarray] = {}
    targets = {}
    for i, (target, model) in enumerate(twin.models.items()):
        model._check_fitted()
        prefix = f"m{i}_"
        arrays[prefix + "theta"] = model.kernel_.theta
        arrays[prefix + "x_mean"], arrays[prefix + "x_scale"] = model.x_mean_, model.x_scale_
        arrays[prefix + "x_train"], arrays[prefix + "y_train"] = model.x_train_, model.y_train_
        if model.profile_ is not None:
            arrays[prefix + "profile"] = model.profile_
        if model.load_profile_ is not None:
            arrays[prefix + "load_profile"] = model.load_profile_
        if model.x_inducing_ is not None:
            arrays[prefix + "x_inducing"] = model.x_inducing_
        if model.std_scale_ is not None:
            arrays[prefix + "std_scale"] = model.std_scale_
        targets[target] = {
            "prefix": prefix,
            "features": asdict(model.features),
            "columns": model.features.columns,
            "gp": {name: getattr(model, name) for name in GP_PARAMS},
            "kernel": str(model.kernel_),
            "approximation": model.approximation_,
            "n_rows": model.n_rows_,
            "training_period": list(model.training_period_),
            "fit_time_s": model.fit_time_s_,
            "bias": model.bias_,
        }
    meta = {"format": FORMAT, "created": dt.datetime.now().isoformat(timespec="seconds"),
            "versions": library_versions(), "targets": targets, "metrics": metrics or {}, **(extra or {})}
    if tagmap is not None:
        meta["building"] = tagmap.building
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:  # np.savez would append ".npz" to a path without it
        np.savez(handle, metadata=np.array(json.dumps(meta)), **arrays)
    return path


def read_metadata(path: Path) -> dict:
    """The metadata of a model file, without rebuilding the models."""
    with _open(path) as data:
        return _metadata(data, path)


def load_model(path: Path) -> TwinModel:
    """Rebuild the ``TwinModel`` saved at ``path``; any unreadable, missing, mistyped or
    wrong-shaped entry raises ModelFileError naming the file, the target and the entry."""
    with _open(path) as data:
        meta = _metadata(data, path)
        targets = meta.get("targets")
        if not isinstance(targets, dict) or not targets:
            raise ModelFileError(f"{path}: metadata has no 'targets' table of models")
        models = {target: _load_gp(data, path, target, entry) for target, entry in targets.items()}
    return TwinModel(models, meta)


def _load_gp(data, path: Path, target: str, entry: dict) -> GPModel:
    """The model of ``target``: its metadata ``entry`` and arrays, shapes checked, GP re-conditioned."""
    try:
        fields = dict(entry["features"])
        for key in ("inputs", "disturbances", "holidays", "known_load"):
            if key in fields:  # known_load: not in files written before it
                fields[key] = tuple(fields[key])
        features = FeatureSet(**fields)
        model = GPModel(features, **entry["gp"])
        prefix = str(entry["prefix"])
        model.n_rows_, model.fit_time_s_ = int(entry["n_rows"]), float(entry["fit_time_s"])
        model.training_period_ = tuple(entry["training_period"])
        model.bias_ = float(entry.get("bias", 0.0))  # files written before updates have none
    except KeyError as exc:
        raise ModelFileError(f"{path}: model of {target!r}: metadata entry lacks {exc}") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise ModelFileError(f"{path}: model of {target!r}: metadata entry is invalid ({exc})") from None
    n_columns = len(features.columns)
    kernel = make_kernel(n_columns, model.linear)
    array = partial(_array, data, path, target, prefix)
    theta = array("theta", (kernel.n_dims,))
    model.x_mean_, model.x_scale_ = array("x_mean", (n_columns,)), array("x_scale", (n_columns,))
    model.profile_ = array("profile", (len(DAY_TYPES), PROFILE_SLOTS)) if features.profile else None
    model.load_profile_ = array("load_profile", (len(DAY_TYPES), PROFILE_SLOTS)) if features.known_load else None
    model.std_scale_ = array("std_scale", (2, len(DAY_TYPES), 24), required=False)
    x_train = array("x_train", (None, n_columns))
    y_train = array("y_train", (len(x_train),))
    x_inducing = array("x_inducing", (None, n_columns), required=False)
    try:
        with threadpool_limits(model.blas_threads, user_api="blas"):  # as fitted: same sums, same digits
            model._set_posterior(kernel.clone_with_theta(theta), x_train, y_train, x_inducing)
    except (ValueError, np.linalg.LinAlgError) as exc:
        raise ModelFileError(f"{path}: model of {target!r}: stored rows do not condition a GP ({exc})") from None
    return model


def _array(data, path: Path, target: str, prefix: str, name: str, shape: tuple[int | None, ...],
           required: bool = True) -> np.ndarray | None:
    """Entry ``prefix + name`` of the open file as a float array of ``shape`` (None: any length);
    None when absent and not ``required``."""
    key = prefix + name
    where = f"{path}: model of {target!r}: entry {key!r}"
    if key not in data.files:
        if required:
            raise ModelFileError(f"{where} is missing")
        return None
    try:
        array = data[key]
    except READ_ERRORS as exc:
        raise ModelFileError(f"{where} cannot be read ({_reason(exc)})") from None
    if not np.issubdtype(array.dtype, np.floating):
        raise ModelFileError(f"{where} holds {array.dtype}, not floating-point numbers")
    if array.ndim != len(shape) or any(want is not None and got != want for got, want in zip(array.shape, shape)):
        expected = str(tuple("n" if want is None else want for want in shape)).replace("'", "")
        raise ModelFileError(f"{where} has shape {array.shape}, expected {expected}")
    return array


def check_compatible(twin: TwinModel, tagmap: TagMap, path: Path | str = "model") -> None:
    """Refuse a model whose features the building lacks: raise ModelFileError listing every tag
    the model needs and the tag map does not offer (targets and disturbances as outputs, the
    latter with a weather variable the EPW file gives; control inputs as input tags). A model that
    records the building it learnt (metadata ``building``) is refused for a tag map of another
    name or floor area: tag names alone do not tell a Small Office's power from a Large Office's."""
    check_building(twin, tagmap.building, "tag map", path)
    inputs = {i.tag for i in tagmap.inputs}
    outputs = {o.tag for o in tagmap.outputs}
    weather = {o.tag for o in tagmap.outputs if o.variable in EPW_COLUMNS}
    missing = []
    for target, model in twin.models.items():
        features = model.features
        missing += [f"output {target}"] if target not in outputs else []
        missing += [f"input {tag}" for tag in features.inputs if tag not in inputs]
        missing += [f"weather output {tag}" for tag in features.disturbances if tag not in weather]
        missing += [f"output {tag}" for tag in features.known_load_tags if tag not in outputs]
    if missing:
        raise ModelFileError(f"{path}: model needs tags that tag map {tagmap.name!r} ({tagmap.path}) lacks: "
                             f"{sorted(set(missing))}")


def check_building(twin: TwinModel, building: dict | None, what: str, path: Path | str = "model") -> None:
    """Refuse a model that records the building it learnt (metadata ``building``) for another
    ``building`` (a ``TagMap.building`` record, of the ``what`` named in the message): raise
    ModelFileError naming both. Nothing to check when either is unknown (None)."""
    learnt = twin.metadata.get("building")
    if learnt is not None and not isinstance(learnt, dict):
        raise ModelFileError(f"{path}: metadata 'building' is not a table: {learnt!r}")
    if learnt and building and not same_building(learnt, building):
        raise ModelFileError(f"{path}: model learnt building {learnt.get('name')!r} (floor area "
                             f"{learnt.get('floor_area_m2')} m2, {learnt.get('tagmap')}), not {what} "
                             f"{building.get('name')!r} (floor area {building.get('floor_area_m2')} m2, "
                             f"{building.get('tagmap')})")


def _open(path: Path):
    """The open .npz archive at ``path``; ModelFileError for a file that is none (checked by its first
    bytes, before NumPy reads it: NumPy would call any other file pickled data)."""
    try:
        with open(path, "rb") as handle:
            magic = handle.read(len(ZIP_MAGIC[0]))
    except FileNotFoundError:
        raise ModelFileError(f"twin model file not found: {path}") from None
    except OSError as exc:
        raise ModelFileError(f"{path}: not a twin model file ({type(exc).__name__}: {exc})") from None
    if not magic.startswith(ZIP_MAGIC):
        raise ModelFileError(f"{path}: not a twin model file (a model is an .npz archive; this file is not one)")
    try:
        return np.load(path, allow_pickle=False)
    except READ_ERRORS as exc:
        raise ModelFileError(f"{path}: not a twin model file ({_reason(exc)})") from None


def _reason(exc: Exception) -> str:
    """Why a file or entry cannot be read, for the user: NumPy's refusal of pickled objects would
    suggest loading them with allow_pickle, which a model file never needs."""
    if isinstance(exc, ValueError) and "allow_pickle" in str(exc):
        return "it holds pickled Python objects, which a model file never does"
    return f"{type(exc).__name__}: {exc}"


def _metadata(data, path: Path) -> dict:
    if "metadata" not in data.files:
        raise ModelFileError(f"{path}: not a twin model file (no metadata)")
    try:
        meta = json.loads(str(data["metadata"]))
    except READ_ERRORS as exc:
        raise ModelFileError(f"{path}: entry 'metadata' cannot be read ({_reason(exc)})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: unknown model format {meta.get('format') if isinstance(meta, dict) else meta!r}, expected {FORMAT!r}")
    return meta
