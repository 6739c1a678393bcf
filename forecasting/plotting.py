"""A PNG for people who would rather look than read: forecast, observations, skill."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from forecasting.models.naive import BestNaive, Persistence
from forecasting.scoring.backtest import verified_skill
from forecasting.scoring.intervals import LEVELS


def plot_forecast(observed: pd.Series, latest: pd.DataFrame, skill: pd.DataFrame,
                  path: Path, title: str, quantity: str) -> Path:
    """Top: recent observations, past forecasts and the latest forecast with its persistence
    line and prediction intervals. Bottom: MAE by horizon of the verified forecasts against
    persistence and seasonal persistence (UTC times)."""
    skill = models_only(skill)
    figure = Figure(figsize=(11, 7), layout="constrained")
    top, bottom = figure.subplots(2, 1, height_ratios=[2, 1])
    paths = skill.groupby(["issued_at", "model_name", "model_version"], dropna=False)
    for i, (_, past) in enumerate(paths):
        top.plot(past.target_time, past.forecast, color="tab:blue", alpha=0.35, lw=1,
                 label=None if i else "past forecasts")
    top.plot(observed.index, observed.to_numpy(), color="black", lw=1.2, label="observed")
    issued = latest.issued_at.iloc[0]
    top.plot(latest.target_time, latest.value, color="tab:red", lw=2, marker="o", ms=3,
             label=f"latest forecast ({latest.model.iloc[0]})")
    for level in LEVELS:  # nested bands: where they overlap, the shade darkens
        if f"lower_{level}" in latest and latest[f"lower_{level}"].notna().all():
            top.fill_between(latest.target_time, latest[f"lower_{level}"],
                             latest[f"upper_{level}"], color="tab:red", alpha=0.15, lw=0,
                             label=f"{level} % interval")
    if issued in observed.index:
        top.hlines(observed[issued], issued, latest.target_time.iloc[-1], colors="grey",
                   linestyles="--", label="persistence")
    top.axvline(issued, color="grey", lw=0.8)
    top.set_title(f"{title}: forecast issued {issued:%Y-%m-%d %H:%M} UTC")
    top.set_ylabel(quantity)
    locator = AutoDateLocator()
    top.xaxis.set_major_locator(locator)
    top.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    top.legend(loc="upper left", fontsize="small")
    top.grid(alpha=0.3)
    skill_panel(bottom, skill, quantity)
    return save(figure, path)


def plot_skill(skill: pd.DataFrame, path: Path, title: str, quantity: str) -> Path:
    """MAE by horizon of the verified forecasts against persistence and seasonal
    persistence, on its own (the champion's skill over the watched days)."""
    figure = Figure(figsize=(10, 4.5), layout="constrained")
    axes = figure.subplots()
    skill_panel(axes, models_only(skill), quantity)
    figure.suptitle(title)
    return save(figure, path)


def models_only(skill: pd.DataFrame) -> pd.DataFrame:
    """The models' verified forecasts, without the naive ones when a model's exist: the
    naive curves already show those."""
    models = skill[~skill.model_name.isin([Persistence.name, BestNaive.name])]
    return models if not models.empty else skill


def save(figure: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


def skill_panel(axes, skill: pd.DataFrame, quantity: str) -> None:
    if skill.empty:
        axes.text(0.5, 0.5, "no forecast has been verified by observations yet",
                  ha="center", va="center", transform=axes.transAxes)
        axes.set_axis_off()
        return
    mae = verified_skill(skill)
    issues = skill.issued_at.nunique()
    axes.plot(mae.index, mae.mae, marker="o", color="tab:red",
              label=" + ".join(sorted(skill.model_name.unique())))
    axes.plot(mae.index, mae.persistence, marker="s", color="grey", linestyle="--",
              label="persistence")
    axes.plot(mae.index, mae.seasonal_persistence, marker="^", color="tab:green",
              linestyle=":", label="seasonal persistence (24 h before)")
    axes.set_title(f"Mean absolute error by horizon over {issues} verified issue(s)")
    axes.set_xlabel("hours ahead")
    axes.set_ylabel(f"MAE, {quantity}")
    axes.legend(fontsize="small")
    axes.grid(alpha=0.3)
