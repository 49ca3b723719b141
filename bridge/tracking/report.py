"""M&V reports: JSON summary, CSV series and a Markdown page with PNG plots.

``write_report(result, folder)`` writes

- ``savings.json``: the savings summary (and any ``extra`` sections, such as Guideline 14 calibration);
- ``savings.csv``: per period adjusted_baseline_kwh, measured_kwh, avoided_kwh, cumulative_avoided_kwh;
- ``predicted_vs_measured.png`` and ``cumulative_savings.png``;
- ``report.md``: a readable page linking the plots.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

from bridge.tracking.savings import SavingsResult  # noqa: E402


def _plot_predicted_vs_measured(result: SavingsResult, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(result.series.index, result.series["adjusted_baseline_kwh"], label="adjusted baseline (predicted)")
    ax.plot(result.series.index, result.series["measured_kwh"], label="measured", alpha=0.8)
    ax.set_ylabel("energy per period, kWh")
    ax.set_title("Adjusted baseline vs measured")
    ax.legend()
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _plot_cumulative(result: SavingsResult, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(10, 4))
    cumulative = result.series["cumulative_avoided_kwh"]
    ax.plot(cumulative.index, cumulative, color="tab:green")
    band = result.avoided_uncertainty_kwh
    if band is not None:
        ax.axhspan(result.avoided_kwh - band, result.avoided_kwh + band, color="tab:green", alpha=0.15,
                   label=f"final savings +/- {band:,.0f} kWh ({result.uncertainty.confidence:.0%} confidence)")
        ax.legend()
    ax.set_ylabel("cumulative avoided energy, kWh")
    ax.set_title("Cumulative savings")
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _markdown(result: SavingsResult, title: str, extra: dict) -> str:
    s = result.summary()
    lines = [
        f"# {title}", "",
        f"Method: **{s['method']}**; reporting period {s['start']} to {s['end']} ({s['periods']} periods compared, "
        f"{s['incomplete_periods']} left out as incomplete: a sample missing in the baseline or the meter data).", "",
        "| quantity | value |", "| --- | --- |",
        f"| adjusted baseline | {s['adjusted_baseline_kwh']:,.1f} kWh |",
        f"| measured | {s['measured_kwh']:,.1f} kWh |",
        f"| avoided energy | {s['avoided_kwh']:,.1f} kWh |",
        f"| savings fraction | {s['savings_fraction']:.1%} |",
    ]
    if result.uncertainty is not None:
        u = result.uncertainty
        lines += [
            f"| uncertainty ({u.confidence:.0%} confidence) | +/- {result.avoided_uncertainty_kwh:,.1f} kWh "
            f"({u.fractional_uncertainty:.1%} of savings) |",
            *u.table_rows(),
        ]
    if result.uncertainty_warning:
        lines += ["", f"**Warning**: {result.uncertainty_warning}."]
    lines += ["", f"Uncertainty: {result.uncertainty.formula} (see docs/tracking.md)." if result.uncertainty else
              "Uncertainty: none computed.", ""]
    for name, section in extra.items():
        lines += [f"## {name}", "", "```json", json.dumps(section, indent=2, default=str), "```", ""]
    lines += ["## Plots", "", "![Adjusted baseline vs measured](predicted_vs_measured.png)", "",
              "![Cumulative savings](cumulative_savings.png)", ""]
    return "\n".join(lines)


def write_report(result: SavingsResult, folder: str | Path, title: str = "Savings report",
                 extra: dict | None = None) -> dict[str, Path]:
    """Write the report files into ``folder``; return their paths by kind."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    extra = extra or {}
    paths = {kind: folder / name for kind, name in (
        ("json", "savings.json"), ("csv", "savings.csv"), ("markdown", "report.md"),
        ("plot_predicted", "predicted_vs_measured.png"), ("plot_cumulative", "cumulative_savings.png"))}
    paths["json"].write_text(json.dumps({**result.summary(), **extra}, indent=2, default=str))
    result.series.to_csv(paths["csv"], index_label="time")
    _plot_predicted_vs_measured(result, paths["plot_predicted"])
    _plot_cumulative(result, paths["plot_cumulative"])
    paths["markdown"].write_text(_markdown(result, title, extra))
    return paths
