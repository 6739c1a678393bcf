"""Which registered networks a retrain reuses: a family that kept its base retrain after
retrain is skipped until a refresh is due, the others start from the newest network of their
family and settings trained before the fold's cut-off (never on data after it)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from forecasting.config import ForecastParams
from forecasting.models.reuse import (PriorNetwork, skipped_families, warm_starts,
                                      worth_reading)

PARAMS = ForecastParams()
SETTINGS = PARAMS.model_dump(mode="json")


def prior(family: str, version: int, train_end: str, kept_base: bool = True,
          from_zero: str | None = None, **changed) -> PriorNetwork:
    return PriorNetwork(family, f"m v{version}", pd.Timestamp(train_end),
                        {**SETTINGS, **changed},
                        {"kept_base": kept_base, "trained_from_zero_to": from_zero or train_end},
                        directory=Path(f"/v{version}"))


def test_a_family_whose_last_versions_all_kept_their_base_is_skipped_until_a_refresh():
    priors = [prior("gru", 1, "2024-03-01"), prior("gru", 2, "2024-03-02"),
              prior("gru", 3, "2024-03-03"), prior("stacked_gru", 4, "2024-03-03"),
              prior("stacked_gru", 5, "2024-03-02", kept_base=False),
              prior("stacked_gru", 6, "2024-03-01")]
    skipped = skipped_families(priors, PARAMS, pd.Timestamp("2024-03-10"))
    assert list(skipped) == ["gru"]  # stacked_gru learnt something in one of its last three
    assert "m v3, m v2, m v1" in skipped["gru"] and "kept their ridge base" in skipped["gru"]
    assert "fitted again from 2024-03-31" in skipped["gru"]
    assert skipped_families(priors, PARAMS, pd.Timestamp("2024-03-31")) == {}  # refresh due
    assert skipped_families(priors[:2], PARAMS, pd.Timestamp("2024-03-10")) == {}  # only two
    other = PARAMS.model_copy(update={"units": 64})  # other settings: those do not count
    assert skipped_families(priors, other, pd.Timestamp("2024-03-10")) == {}


def test_a_network_family_is_fitted_again_only_when_its_cadence_is_due():
    priors = [prior("gru", 1, "2024-03-01 00:00", kept_base=False),
              prior("gru", 2, "2024-03-05 06:00", kept_base=False)]
    skipped = skipped_families(priors, PARAMS, pd.Timestamp("2024-03-12 05:50"))
    assert "networks are fitted every 7 days" in skipped["gru"]
    assert "m v2 was trained on data up to 2024-03-05 06:00" in skipped["gru"]
    assert "fitted again from 2024-03-12 06:00" in skipped["gru"]
    assert skipped_families(priors, PARAMS, pd.Timestamp("2024-03-12 06:00")) == {}
    every_time = PARAMS.model_copy(update={"network_every_days": 0})
    assert skipped_families(priors, every_time, pd.Timestamp("2024-03-06")) == {}
    assert skipped_families([], PARAMS, pd.Timestamp("2024-03-06")) == {}  # none yet


def test_a_network_trained_after_the_cut_off_neither_skips_nor_delays_a_retrain_of_the_past():
    """A retrain with `until` in the past judges by what was registered before its cut-off:
    a network trained later does not make the family 'not due' or 'kept its base'."""
    later = [prior("gru", v, f"2024-06-0{v}") for v in (1, 2, 3)]
    assert skipped_families(later, PARAMS, pd.Timestamp("2024-03-10")) == {}
    before = prior("gru", 4, "2024-03-08", kept_base=False)
    skipped = skipped_families([*later, before], PARAMS, pd.Timestamp("2024-03-10"))
    assert "m v4 was trained on data up to 2024-03-08" in skipped["gru"]


def test_the_only_fitted_family_is_never_skipped():
    alone = PARAMS.model_copy(update={"families": ("gru", "ensemble")})
    priors = [prior("gru", v, f"2024-03-0{v}") for v in (1, 2, 3)]
    assert skipped_families(priors, alone, pd.Timestamp("2024-03-10")) == {}


def test_a_fold_starts_from_the_newest_network_trained_before_its_cut_off():
    priors = [prior("gru", 1, "2024-03-01"), prior("gru", 2, "2024-03-08"),
              prior("gru", 3, "2024-03-15"), prior("gru", 4, "2024-03-14", units=64)]
    assert warm_starts(priors, PARAMS, ["gru"], pd.Timestamp("2024-03-16"))["gru"].label \
        == "m v3"
    # a fold cut before v3's data ended would see data after its cut-off: v2 instead
    assert warm_starts(priors, PARAMS, ["gru"], pd.Timestamp("2024-03-10"))["gru"].label \
        == "m v2"
    assert warm_starts(priors, PARAMS, ["gru"], pd.Timestamp("2024-02-20")) == {}
    # times recorded with their offset (a network's record) compare as UTC
    aware = [prior("gru", 9, "2024-03-15", from_zero="2024-03-01 00:00:00+00:00")]
    assert warm_starts(aware, PARAMS, ["gru"], pd.Timestamp("2024-03-16", tz="UTC"))


def test_a_chain_of_fine_tunings_is_restarted_from_zero_after_the_refresh_days():
    chained = [prior("gru", 7, "2024-03-15", from_zero="2024-02-01")]
    assert warm_starts(chained, PARAMS, ["gru"], pd.Timestamp("2024-03-16")) == {}
    never = PARAMS.model_copy(update={"network_refresh_days": 0})
    fresh = [prior("gru", 8, "2024-03-15")]
    assert warm_starts(fresh, never, ["gru"], pd.Timestamp("2024-03-16")) == {}


def test_only_the_files_the_decisions_need_are_read():
    priors = [prior("gru", v, f"2024-{m:02d}-01") for v, m in enumerate(range(1, 13), 1)]
    needed = worth_reading(priors, PARAMS, [pd.Timestamp("2024-06-15"),
                                            pd.Timestamp("2024-12-15")])
    assert sorted(p.label for p in needed) == ["m v10", "m v11", "m v12", "m v6"]
