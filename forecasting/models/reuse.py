"""What a retrain can reuse of the networks registered before it: a network family is fitted
at most every `network_every_days` (the linear ones at every retrain); one that kept its
base retrain after retrain is not fitted again until a refresh is due (it would forecast as
its base); the others are fine-tuned from the newest network of their family and settings
whose training data ended at or before the fold's cut-off (so the backtest stays out of
sample), instead of trained from zero. Pure decisions on the registry's record."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from forecasting.config import ENSEMBLE, NETWORKS, ForecastParams

# The settings that shape a network and its inputs: a network saved under other values of
# these cannot be fine-tuned into this retrain's.
SHAPING = ("lookback_hours", "step_minutes", "horizon_hours", "max_gap_minutes",
           "max_input_gap_minutes", "time_features", "wind_vector", "units", "network_base")


@dataclass(frozen=True)
class PriorNetwork:
    """A registered network: family, name in the record, the end of its training data (naive
    UTC), its saved parameters and training record, and its verified files."""

    family: str
    label: str  # "jena/t_degc_24h v12"
    train_end: pd.Timestamp
    params: dict
    training: dict | None = None  # None until read from its verified files
    directory: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "train_end", naive_utc(self.train_end))


def naive_utc(moment) -> pd.Timestamp:
    """A time as naive UTC (what the library computes in), whether it came aware or not."""
    moment = pd.Timestamp(moment)
    return moment.tz_convert(None) if moment.tzinfo else moment


def same_settings(prior: PriorNetwork, params: ForecastParams) -> bool:
    mine = params.model_dump(mode="json")
    return all(prior.params.get(key) == mine[key] for key in SHAPING)


def newest_first(priors: list[PriorNetwork], family: str, params: ForecastParams
                 ) -> list[PriorNetwork]:
    """The registered networks of `family` with this retrain's settings, newest first."""
    return sorted((p for p in priors if p.family == family and same_settings(p, params)),
                  key=lambda p: p.train_end, reverse=True)


def skipped_families(priors: list[PriorNetwork], params: ForecastParams,
                     cutoff: pd.Timestamp) -> dict[str, str]:
    """The network families not to fit at a retrain whose newest cut-off is `cutoff`, with
    the reason, judged on the versions trained on data up to `cutoff` (a retrain of the
    past ignores later ones): the last `skip_after_kept_base` registered versions of the
    family (same settings) all kept their base, and the newest of them is less than
    `network_refresh_days` old; or the newest was trained less than `network_every_days`
    before (not due yet). At least one family other than the ensemble is fitted."""
    cutoff = naive_utc(cutoff)
    skipped = {}
    for family in (f for f in params.families if f in NETWORKS):
        mine = [p for p in newest_first(priors, family, params) if p.train_end <= cutoff]
        reason = kept_base_reason(mine, params, cutoff) or not_due_reason(mine, params, cutoff)
        if reason:
            skipped[family] = reason
    if not set(params.families) - set(skipped) - {ENSEMBLE}:
        return {}
    return skipped


def waiting_until(since: pd.Timestamp, days: float, cutoff: pd.Timestamp
                  ) -> pd.Timestamp | None:
    """When a family that waits `days` after `since` is fitted again; None if by `cutoff`."""
    due = since + pd.Timedelta(days=days)
    return due if cutoff < due else None


def kept_base_reason(mine: list[PriorNetwork], params: ForecastParams,
                     cutoff: pd.Timestamp) -> str:
    count = params.skip_after_kept_base
    last = mine[:count]
    if not count or len(last) < count or not all((p.training or {}).get("kept_base")
                                                 for p in last):
        return ""
    due = waiting_until(last[0].train_end, params.network_refresh_days, cutoff)
    if due is None:
        return ""
    return (f"not fitted: its last {count} versions ({', '.join(p.label for p in last)}) "
            f"all kept their {params.network_base} base, so it would forecast as the base; "
            f"fitted again from {due:%Y-%m-%d}")


def not_due_reason(mine: list[PriorNetwork], params: ForecastParams,
                   cutoff: pd.Timestamp) -> str:
    if not mine or not params.network_every_days:
        return ""
    due = waiting_until(mine[0].train_end, params.network_every_days, cutoff)
    if due is None:
        return ""
    return (f"not fitted: networks are fitted every {params.network_every_days:g} days "
            f"(network_every_days) and {mine[0].label} was trained on data up to "
            f"{mine[0].train_end:%Y-%m-%d %H:%M}; fitted again from {due:%Y-%m-%d %H:%M}")


def warm_starts(priors: list[PriorNetwork], params: ForecastParams, families: list[str],
                cutoff: pd.Timestamp) -> dict[str, PriorNetwork]:
    """For a fold whose cut-off is `cutoff`, the network to fine-tune each family from: the
    newest of that family with the same settings, trained on data that ended at or before
    the cut-off, whose chain of fine-tunings began less than `network_refresh_days` before
    it; none (train from zero) where there is no such network."""
    if not params.network_refresh_days:
        return {}
    chosen, cutoff = {}, naive_utc(cutoff)
    for family in families:
        usable = [p for p in newest_first(priors, family, params)
                  if p.directory is not None and p.train_end <= cutoff
                  and cutoff - naive_utc((p.training or {}).get("trained_from_zero_to",
                                                                p.train_end))
                  < pd.Timedelta(days=params.network_refresh_days)]
        if usable:
            chosen[family] = usable[0]
    return chosen


def worth_reading(priors: list[PriorNetwork], params: ForecastParams,
                  cutoffs: list[pd.Timestamp]) -> list[PriorNetwork]:
    """Of the registered networks (known by their registry rows only), the ones whose files
    the decisions above need: the newest `skip_after_kept_base` of each family with this
    retrain's settings, and the newest usable for each cut-off."""
    needed = {}
    for family in (f for f in params.families if f in NETWORKS):
        mine = newest_first(priors, family, params)
        for p in mine[:params.skip_after_kept_base]:
            needed[p.label] = p
        for cutoff in cutoffs:
            p = next((p for p in mine if p.train_end <= naive_utc(cutoff)), None)
            if p is not None and params.network_refresh_days:
                needed[p.label] = p
    return list(needed.values())
