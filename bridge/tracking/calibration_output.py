"""What a calibration leaves behind: its JSON, two plots, and the calibrated model in the registry.

``write_outputs(outcome, target, folder)`` writes ``calibration.json`` (``CalibrationOutcome.to_dict``),
``convergence.png`` (calibration cost and Guideline 14 figures per simulation) and
``predicted_vs_measured.png`` (per observation: bills or daily energy of interval data; hold-out
periods marked). ``register_calibrated`` writes the calibrated model (the IDF with the found edits,
``simulate.edited_idf``) and registers it as the Baseline or the next Operational version, its
calibration record holding the edits, parameter values and statuses and the Guideline 14 figures.
A frozen Baseline is refused before any search starts (``refuse_frozen``).
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

from bridge.tracking.calibrate import CalibrationOutcome, Target, in_periods  # noqa: E402
from bridge.tracking.registry import FrozenModelError, ModelRegistry, ModelVersion  # noqa: E402
from bridge.tracking.simulate import edited_idf  # noqa: E402


def write_outputs(outcome: CalibrationOutcome, target: Target, folder: str | Path) -> dict[str, Path]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / "calibration.json", "convergence": folder / "convergence.png",
             "predicted_vs_measured": folder / "predicted_vs_measured.png"}
    paths["json"].write_text(json.dumps(outcome.to_dict(), indent=2, default=str))
    _convergence_plot(outcome, paths["convergence"])
    _predicted_plot(outcome, target, paths["predicted_vs_measured"])
    return paths


def _convergence_plot(outcome: CalibrationOutcome, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    for phase, marker in (("screening", "o"), ("optimisation", "s")):
        points = [e for e in outcome.history if e.phase == phase]
        ax.semilogy([e.simulation for e in points], [e.cost for e in points], marker, label=phase, alpha=0.7)
    best = [min(e.cost for e in outcome.history[:i + 1]) for i in range(len(outcome.history))]
    ax.semilogy(range(1, len(best) + 1), best, "k-", label="best so far")
    for granularity, hit in outcome.first_pass.items():
        ax.axvline(hit["simulations"], ls="--", color="g" if granularity == "monthly" else "c",
                   label=f"Guideline 14 {granularity} first met")
    ax.set(xlabel="simulation", ylabel="sum of squared normalised residuals (calibration data)",
           title=f"Calibration search ({outcome.stopped})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _predicted_plot(outcome: CalibrationOutcome, target: Target, path: Path) -> None:
    measured, predicted = target.observed(outcome.predicted)
    if target.hourly_kwh is not None:
        measured, predicted = measured.resample("D").sum(), predicted.resample("D").sum()
        unit = "daily energy, kWh"
    else:
        unit = "bill energy, kWh"
    held = in_periods(measured.index.normalize(), target.holdout)
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.scatter(measured[~held], predicted[~held], label="calibration")
    if held.any():
        ax.scatter(measured[held], predicted[held], marker="^", color="r", label="hold-out")
    low, high = float(min(measured.min(), predicted.min())), float(max(measured.max(), predicted.max()))
    ax.plot([low, high], [low, high], "k:", lw=1)
    ax.set(xlabel=f"measured {unit}", ylabel=f"predicted {unit}", title="Calibrated model against the data")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def refuse_frozen(registry: ModelRegistry, role: str) -> None:
    """FrozenModelError if ``role`` is a frozen Baseline: it is never recalibrated."""
    current = registry.current(role)
    if current is not None and current.status == "frozen":
        raise FrozenModelError(f"cannot calibrate the {role}: version {current.version} was frozen on "
                               f"{current.frozen_at} and is the reference for savings (calibrate the Operational model)")


def register_calibrated(registry: ModelRegistry, role: str, model: Path, weather: Path, outcome: CalibrationOutcome,
                        folder: str | Path, notes: str = "") -> ModelVersion:
    """Write the calibrated IDF into ``folder`` and register it as the next version of ``role``."""
    refuse_frozen(registry, role)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    calibrated = folder / "calibrated.idf"
    edited_idf(Path(model), outcome.edits).write(calibrated)
    record = {key: value for key, value in outcome.to_dict().items() if key != "convergence"}
    record["base_model"] = str(Path(model).resolve())
    periods = [e for m in outcome.calibration_metrics.values() for e in (m.get("start"), m.get("end")) if e]
    return registry.register(role, calibrated, weather, calibration=record,
                             calibration_start=min(periods, default=""), calibration_end=max(periods, default=""),
                             notes=notes or f"calibrated from {Path(model).name}: {len(outcome.edits)} edits")
