"""The skill monitor's judgement, as a pure function of the champion's verified forecasts."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Verdict:
    losing: bool | None  # None: too few verified issues to judge
    reason: str
    issues: int
    groups: list[dict]  # per 6-hour group: hours, MAE of champion and naive forecasts, ratio


def judge_champion(skill: pd.DataFrame, group_hours: int, margin: float,
                   min_issues: int) -> Verdict:
    """Is the champion losing to the best naive forecast? `skill` holds its verified
    out-of-sample rows (the `forecast_skill` columns) over the watched period. Per hour
    ahead, best naive is the better of persistence and seasonal persistence over the same
    rows (a hindsight choice, so a loss is a real one); the champion loses when its MAE
    exceeds best naive's by more than `margin` (relative) over all horizons or in any group
    of `group_hours`. The same test the gate applies before promotion, after it."""
    skill = skill.dropna(subset=["abs_error", "persistence_abs_error",
                                 "seasonal_persistence_abs_error"])
    issues = skill.issued_at.nunique()
    if issues < min_issues:
        return Verdict(None, f"{issues} verified issue(s) in the period, fewer than the "
                             f"{min_issues} needed to judge", issues, [])
    by_hour = skill.groupby("horizon_hours")[
        ["abs_error", "persistence_abs_error", "seasonal_persistence_abs_error"]].mean()
    naive = by_hour[["persistence_abs_error", "seasonal_persistence_abs_error"]].min(axis=1)
    top = int(by_hour.index.max())
    spans = [(f"{h}-{min(h + group_hours - 1, top)} h", h, min(h + group_hours - 1, top))
             for h in range(1, top + 1, group_hours)] + [("all horizons", 1, top)]
    groups, losses = [], []
    for label, first, last in spans:
        hours = (by_hour.index >= first) & (by_hour.index <= last)
        mine, best = by_hour.abs_error[hours].mean(), naive[hours].mean()
        groups.append({"hours": label, "champion_mae": round(float(mine), 3),
                       "best_naive_mae": round(float(best), 3),
                       "persistence_mae": round(float(by_hour.persistence_abs_error[hours]
                                                      .mean()), 3),
                       "seasonal_mae": round(float(by_hour.seasonal_persistence_abs_error[hours]
                                                   .mean()), 3),
                       "ratio": round(float(mine / best), 3)})
        if mine > best * (1 + margin):
            losses.append(f"{label} MAE {mine:.3f} > best naive {best:.3f} x {1 + margin:g}")
    if losses:
        return Verdict(True, f"over {issues} verified issues: " + "; ".join(losses), issues,
                       groups)
    return Verdict(False, f"over {issues} verified issues it stays within {margin:.0%} of "
                          f"best naive in every {group_hours}-hour group and overall", issues,
                   groups)
