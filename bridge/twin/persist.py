"""Save and load a trained ``TwinModel``: one ``.npz`` file, no pickle.

The file holds, per target, the fitted hyperparameters (log kernel parameters), the feature
scaling, the daily profile, the std calibration table, the standardized training rows and, beyond
``max_exact`` rows, the inducing points; loading rebuilds the kernel and conditions the GP on those
rows again, so predictions are identical to the saved model's.
A JSON ``metadata`` entry records features, lags, training period, metrics and library versions.
Loading is safe on untrusted files (``allow_pickle=False``).
"""

from __future__ import annotations

import datetime as dt
import json
import platform
from dataclasses import asdict
from importlib import metadata as package_metadata
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from bridge.tagmap import TagMap
from bridge.twin.errors import ModelFileError
from bridge.twin.features import FeatureSet
from bridge.twin.gp import GPModel, TwinModel
from bridge.twin.kernel import make_kernel
from bridge.twin.weather import EPW_COLUMNS

FORMAT = "twinbridge-gp-twin/2"  # 2: std calibration tables [one-step, rollout]
GP_PARAMS = ("n_hyper", "max_exact", "n_inducing", "linear", "n_restarts", "max_iter", "calibrate", "random_state",
             "blas_threads")


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("numpy", "scipy", "scikit-learn", "pandas"):
        versions[package] = package_metadata.version(package)
    return versions


def save_model(twin: TwinModel, path: Path, metrics: dict | None = None, extra: dict | None = None) -> Path:
    """Write ``twin`` (fitted) to ``path`` (.npz) with its metadata; return the path."""
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
        }
    meta = {"format": FORMAT, "created": dt.datetime.now().isoformat(timespec="seconds"),
            "versions": library_versions(), "targets": targets, "metrics": metrics or {}, **(extra or {})}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:  # np.savez would append ".npz" to a path without it
        np.savez(handle, metadata=np.array(json.dumps(meta)), **arrays)
    return path


def read_metadata(path: Path) -> dict:
    """The metadata of a model file, without rebuilding the models."""
    with _open(path) as data:
        return _metadata(data, path)


def load_model(path: Path) -> TwinModel:
    """Rebuild the ``TwinModel`` saved at ``path``."""
    with _open(path) as data:
        meta = _metadata(data, path)
        models = {}
        for target, entry in meta["targets"].items():
            fields = dict(entry["features"])
            for key in ("inputs", "disturbances", "holidays"):
                fields[key] = tuple(fields[key])
            features = FeatureSet(**fields)
            model = GPModel(features, **entry["gp"])
            prefix = entry["prefix"]
            try:
                kernel = make_kernel(len(features.columns), model.linear).clone_with_theta(data[prefix + "theta"])
                model.x_mean_, model.x_scale_ = data[prefix + "x_mean"], data[prefix + "x_scale"]
                model.profile_ = data[prefix + "profile"] if features.profile else None
                model.std_scale_ = data[prefix + "std_scale"] if prefix + "std_scale" in data else None
                with threadpool_limits(model.blas_threads, user_api="blas"):  # as fitted: same sums, same digits
                    model._set_posterior(kernel, data[prefix + "x_train"], data[prefix + "y_train"],
                                         data[prefix + "x_inducing"] if prefix + "x_inducing" in data else None)
            except (KeyError, ValueError) as exc:
                raise ModelFileError(f"{path}: model of {target!r} is incomplete or inconsistent ({exc})") from None
            model.n_rows_, model.fit_time_s_ = entry["n_rows"], entry["fit_time_s"]
            model.training_period_ = tuple(entry["training_period"])
            models[target] = model
    return TwinModel(models, meta)


def check_compatible(twin: TwinModel, tagmap: TagMap, path: Path | str = "model") -> None:
    """Refuse a model whose features the building lacks: raise ModelFileError listing every tag
    the model needs and the tag map does not offer (targets and disturbances as outputs, the
    latter with a weather variable the EPW file gives; control inputs as input tags)."""
    inputs = {i.tag for i in tagmap.inputs}
    outputs = {o.tag for o in tagmap.outputs}
    weather = {o.tag for o in tagmap.outputs if o.variable in EPW_COLUMNS}
    missing = []
    for target, model in twin.models.items():
        features = model.features
        missing += [f"output {target}"] if target not in outputs else []
        missing += [f"input {tag}" for tag in features.inputs if tag not in inputs]
        missing += [f"weather output {tag}" for tag in features.disturbances if tag not in weather]
    if missing:
        raise ModelFileError(f"{path}: model needs tags that tag map {tagmap.name!r} ({tagmap.path}) lacks: "
                             f"{sorted(set(missing))}")


def _open(path: Path):
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ModelFileError(f"twin model file not found: {path}") from None
    except (ValueError, OSError) as exc:
        raise ModelFileError(f"{path}: not a twin model file ({exc})") from None


def _metadata(data, path: Path) -> dict:
    try:
        meta = json.loads(str(data["metadata"]))
    except (KeyError, ValueError):
        raise ModelFileError(f"{path}: not a twin model file (no metadata)") from None
    if meta.get("format") != FORMAT:
        raise ModelFileError(f"{path}: unknown model format {meta.get('format')!r}, expected {FORMAT!r}")
    return meta
