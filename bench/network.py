"""Benchmark: does one model learned across a network's stations pay, for mature stations and
for a new one?

    .venv/bin/python bench/network.py            # the real 8-city network in ../shared/data
    .venv/bin/python bench/network.py --cutoffs 2014-04-01 2016-10-01 --new-days 7 14 30

The wide files are read through the product (`split_wide`, then each station's ingest into
a temporary SQLite database: validation, quarantine). At each cut-off:

- **Mature stations.** Each station's own ridge and own GRU (as the retrain fits them:
  `--own-days` of history, the GRU on the ridge) against the network model (`pooled_ridge`,
  `pooled_gru`) fitted on every station's `--network-days` before the cut-off; MAE over the
  next `--test-days` days of forecasts issued at the product's issue hour, and each against
  best naive (per horizon, chosen on the station's year before the cut-off).
- **A new station.** Each station in turn is new (leave-station-out: the network model is
  fitted on the other stations only) with `--new-days` of its own history before the
  cut-off (its scale from those days), forecast by a network model fitted without it (the
  stations split into `--groups` groups, each group's model fitted on the others). The
  gate's choice for it (`cold_start_composition`) combines the network model with best
  naive per horizon on evidence that exists: how it did on the other stations replayed as
  new (each by a model that never saw it) over the `--evidence-days` before the cut-off.
  The month's daily issues are scored twice: `frozen` at the gate's weights, and
  `self-correcting` as the product issues them, each corrected by the earlier issues
  verified by its time (`issued_in_turn`). Promises kept as in `bench/skill.py`: no 6-hour
  group above 1.02 of best naive, the mean and +24 h not above 1.
- **The gate, with and without it** (`--part gate`). Each station's retrain as the product
  runs it on `--own-days` of its own history (the backtest's folds, the `--own-families`),
  once as today, once with the network model offered on the same folds, out of sample
  (at each fold the newest version fitted on every station's data before it, versions
  every `--network-every-days`, as the weekly network fit registers them), and once with
  it also among the ensemble's members (`widen_ensemble`, as the retrain does). The gates'
  choices are scored over the next `--test-days` days, frozen and self-correcting, against
  best naive: is the gate's choice with the network model no worse than today's?
- **Cost.** Seconds and peak memory of the network fits, against the stations' own GRU fits.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from forecasting.candidates import naive_baselines, widen_ensemble  # noqa: E402
from forecasting.config import ForecastParams  # noqa: E402
from forecasting.features import station_windows  # noqa: E402
from forecasting.models.linear import RidgeForecaster  # noqa: E402
from forecasting.models.pooled import (PooledForecaster, network_windows,  # noqa: E402
                                       scale_between)
from forecasting.scoring.backtest import predict_windows  # noqa: E402
from forecasting.scoring.cold_start import (cold_start_composition,  # noqa: E402
                                            replayed_as_new)
from forecasting.scoring.correction import issued_in_turn  # noqa: E402
from forecasting.station.network import load_stations  # noqa: E402
from forecasting.station.wide import split_wide  # noqa: E402

DATA = Path(__file__).parents[1].parent / "shared" / "data" / "hourly_8_cities_2012-2017"
JOINED = "and in the ensemble"  # the network model offered and among the ensemble's members
QUANTITIES = ("temperature", "humidity", "pressure", "wind_speed")


def load_network(stations_file: Path, files: list[Path], work: Path) -> dict:
    """Each station's observations as the product stores them."""
    from registry.ingestion import ingest_file
    from registry.observations import read_observations
    from registry.store import open_store

    sites = load_stations(stations_file)
    parts = split_wide(files, {s.station.name: s.station for s in sites},
                       {s.station.name: s.column for s in sites})
    store = open_store(f"sqlite:///{work / 'bench.db'}", [s.station for s in sites])
    frames = {}
    try:
        for site, part in zip(sites, parts):
            path = work / f"{part.station}.csv"
            path.write_text(part.text)
            mine = store.of(part.station)
            summary = ingest_file(mine, path, 50_000)
            print(f"{part.station}: {summary.rows_inserted} rows stored, "
                  f"{summary.rows_quarantined} quarantined", file=sys.stderr)
            with mine.sessions() as session:
                frames[part.station] = (read_observations(session, mine.observations),
                                        site.station)
    finally:
        store.close()
    return frames


def mae(predictions: np.ndarray, windows) -> np.ndarray:
    """Mean absolute error per horizon step."""
    return np.abs(np.asarray(predictions, np.float64) - windows.targets()).mean(axis=0)


def scale_before(windows, cutoff: pd.Timestamp, days: float, period: int) -> float:
    return scale_between(windows, cutoff - pd.Timedelta(days=days), cutoff, period)


def fit_network(family: str, params: ForecastParams, windows: dict, cutoff: pd.Timestamp,
                days: float) -> tuple[PooledForecaster, float, int]:
    """The network model fitted on every station's `days` before the cut-off; seconds and
    peak memory (MiB, this process so far)."""
    train, validation = network_windows(windows, params, cutoff, days)
    started = time.perf_counter()
    model = PooledForecaster(family, params)
    model.fit_network(train, validation)
    return model, time.perf_counter() - started, peak_mib()


def peak_mib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def own_models(w, params: ForecastParams, cutoff: pd.Timestamp, days: float, gru: bool):
    from forecasting.models.networks import NetworkForecaster

    validation_start = cutoff - pd.Timedelta(days=params.validation_days)
    train = w.between(cutoff - pd.Timedelta(days=days), validation_start)
    validation = w.between(validation_start, cutoff)
    ridge = RidgeForecaster(params).fit(train, validation)
    models = {"own ridge": ridge}
    started = time.perf_counter()
    if gru:
        relative = np.array([c not in ("day_sin", "day_cos", "year_sin", "year_cos")
                             for c in w.columns])
        models["own gru"] = NetworkForecaster("gru", params, relative, ridge).fit(
            train, validation)
    return models, time.perf_counter() - started


def reference(w, params: ForecastParams, cutoff: pd.Timestamp):
    """Best naive per horizon, chosen on the station's year before the cut-off."""
    return naive_baselines(w.between(cutoff - pd.Timedelta(days=365), cutoff), params)[
        "best_naive"]


def mature(frames: dict, params: ForecastParams, network: ForecastParams, args) -> None:
    rows, cost = [], []
    issue = frozenset(params.issue_hours)
    windows = {n: station_windows(f, s, params)[0] for n, (f, s) in frames.items()}
    for cutoff in args.cutoffs:
        end = cutoff + pd.Timedelta(days=args.test_days)
        pooled = {}
        for family in args.families:
            pooled[family], seconds, peak = fit_network(family, network, windows, cutoff,
                                                        args.network_days)
            cost.append((cutoff.date(), family, seconds, peak))
            print(f"{cutoff.date()} {family}: {seconds:.0f} s, "
                  f"{pooled[family].training.get('best_val_mae', '')}", file=sys.stderr)
        own_seconds = 0.0
        for name, w in windows.items():
            test = w.between(cutoff, end).at_hours(issue)
            if len(test) < 5 or len(w.between(cutoff - pd.Timedelta(days=args.own_days),
                                              cutoff)) < 100:
                continue
            models, seconds = own_models(w, params, cutoff, args.own_days, args.own_gru)
            own_seconds += seconds
            scale = scale_before(w, cutoff, args.network_days, params.samples_per_day)
            for family, model in pooled.items():
                models[family] = model.bind(scale, w.columns, w.target_index)
            models["best naive"] = reference(w, params, cutoff)
            errors = {m: mae(predict_windows(model, test), test).mean()
                      for m, model in models.items()}
            rows.append({"cutoff": cutoff.date(), "station": name, **errors})
        cost.append((cutoff.date(), "own gru, all stations", own_seconds, peak_mib()))
    table = pd.DataFrame(rows)
    print(f"\n## Mature stations: MAE (°C), {args.own_days} days of own history, network "
          f"model on {args.network_days} days of every station; {args.test_days} days after "
          f"each cut-off ({', '.join(str(c.date()) for c in args.cutoffs)}), issues at "
          f"{sorted(issue)} UTC\n")
    means = table.drop(columns="cutoff").groupby("station").mean()
    for family in args.families:
        means[f"{family} / own ridge"] = means[family] / means["own ridge"]
        if "own gru" in means:
            means[f"{family} / own gru"] = means[family] / means["own gru"]
        means[f"{family} / best naive"] = means[family] / means["best naive"]
    means["own ridge / best naive"] = means["own ridge"] / means["best naive"]
    print(means.round(3).to_string())
    for family in args.families:
        below = int((means[f"{family} / own ridge"] <= 0.97).sum())
        print(f"\n{family}: at least 3 % below the station's own ridge at {below} of "
              f"{len(means)} stations")
    print("\n## Cost of the fits (s, peak MiB of this process)\n")
    print(pd.DataFrame(cost, columns=["cutoff", "fit", "seconds", "peak MiB"])
          .round(1).to_string(index=False))


def gates(frames: dict, params: ForecastParams, network: ForecastParams, args) -> None:
    """Each station's gate as today (its own families), with the network model offered on
    the same folds, and with it also among the ensemble's members; each choice scored over
    the days after each cut-off."""
    from skill import fitter, kept, ratios, self_corrected

    from forecasting.models.ensemble import Composed
    from forecasting.scoring.backtest import Scores, backtest
    from forecasting.scoring.gate import gate_backtest

    params = params.model_copy(update={"families": tuple(args.own_families),
                                       "history_days": args.own_days})
    issue = frozenset(params.issue_hours)
    stations = {n: station_windows(f, s, params) for n, (f, s) in frames.items()}
    windows = {n: w for n, (w, _) in stations.items()}
    every = pd.Timedelta(days=args.network_every_days)
    versions: dict[tuple[str, pd.Timestamp], PooledForecaster] = {}
    rows, cost = [], []

    def version(family: str, cutoff: pd.Timestamp, at: pd.Timestamp) -> PooledForecaster:
        """The newest version a fit every `every` before `cutoff` registered by `at`."""
        anchor = cutoff - every * int(np.ceil((cutoff - at) / every))
        if (family, anchor) not in versions:
            versions[family, anchor], seconds, peak = fit_network(
                family, network, windows, anchor, args.network_days)
            cost.append((anchor.date(), family, seconds, peak))
        return versions[family, anchor]

    for i, cutoff in enumerate(args.cutoffs):
        for name, (w, relative) in stations.items():
            seen = w.between(cutoff - pd.Timedelta(days=args.own_days)
                             + pd.Timedelta(hours=params.lookback_hours), cutoff)
            test = w.between(cutoff, cutoff + pd.Timedelta(days=args.test_days)).at_hours(issue)
            if len(test) < 5 or len(seen) < 100:
                continue
            retrained = backtest(seen, fitter(params, relative, Path(args.work) / f"c{i}", 1, []),
                                 params.folds, params.fold_days, params.validation_days,
                                 params.backtest_days, params.network_folds,
                                 params.scored_hours)
            newest = len(retrained.folds) - 1
            for family in args.families:
                bound = {k: version(family, cutoff, fold.cutoff).bind(
                    scale_before(w, fold.cutoff, args.network_days, params.samples_per_day),
                    w.columns, w.target_index) for k, fold in enumerate(retrained.folds)}
                retrained.add(family, {k: predict_windows(m, retrained.folds[k].test)
                                       for k, m in bound.items()}, bound[newest])
            naive = naive_baselines(seen, params)["best_naive"]
            best = Scores.of(predict_windows(reference(w, params, cutoff), test), test)
            for gate, families in (("today", params.families),
                                   ("with network model", (*params.families, *args.families)),
                                   (JOINED, (*params.families, *args.families))):
                if gate == JOINED:
                    widen_ensemble(retrained, list(args.families))
                verdict = gate_backtest(retrained, families, params)
                winner = verdict.winner
                model = retrained.models[winner] if winner else naive
                plan = verdict.plans.get(winner)
                weights = plan.weights if plan and plan.composed else \
                    np.ones(params.horizon_steps)
                issued = {"frozen": Scores.of(predict_windows(
                              Composed(model, naive, weights) if winner else naive, test), test),
                          "self-correcting": self_corrected(model, naive, weights, test, params)
                          if winner else Scores.of(predict_windows(naive, test), test)}
                for kind, scores in issued.items():
                    realised = ratios(scores, best, params.group_steps)
                    rows.append({"cutoff": cutoff.date(), "station": name, "gate": gate,
                                 "issue": kind, "choice": winner or "best_naive",
                                 "mae": scores.mean, "vs best naive": realised[0],
                                 "worst group": realised[1:-1].max(), "+24 h": realised[-1],
                                 "kept": kept(realised)})
            print(f"{cutoff.date()} {name}: " + ", ".join(
                f"{r['gate']} {r['choice']} {r['vs best naive']:.3f}" for r in rows[-6::2]),
                file=sys.stderr, flush=True)
    table = pd.DataFrame(rows)
    print(f"\n## Mature stations: the gate's choice today ({', '.join(params.families)}; "
          f"{args.own_days:g} days of own history) and with the network model offered "
          f"({', '.join(args.families)}, versions every {args.network_every_days:g} days on "
          f"{args.network_days:g} days of every station), and {JOINED}, over the "
          f"{args.test_days:g} days after "
          f"each cut-off ({', '.join(str(c.date()) for c in args.cutoffs)}), issues at "
          f"{sorted(issue)} UTC\n")
    for kind, part in table.groupby("issue"):
        wide = part.pivot_table(index="station", columns="gate", values="mae", aggfunc="mean")
        worst = part.pivot_table(index=["station", "cutoff"], columns="gate", values="mae")
        for gate in ("with network model", JOINED):
            wide[f"{gate} / today"] = wide[gate] / wide["today"]
            wide[f"worst cut-off, {gate} / today"] = (worst[gate] / worst["today"]
                                                      ).groupby("station").max()
        for gate in ("today", "with network model", JOINED):
            mine = part[part.gate == gate].groupby("station")
            wide[f"{gate}: vs best naive"] = mine["vs best naive"].mean()
            wide[f"{gate}: kept"] = mine["kept"].sum()
        print(f"{kind} (MAE °C, mean over the cut-offs; promises kept of "
              f"{len(args.cutoffs)}):\n{wide.round(3).to_string()}\n")
    print(table.round(3).to_string(index=False))
    print("\n## Cost of the network fits (s, peak MiB of this process)\n")
    print(pd.DataFrame(cost, columns=["trained to", "family", "seconds", "peak MiB"])
          .round(1).to_string(index=False))


def new_stations(frames: dict, params: ForecastParams, network: ForecastParams, args) -> None:
    """Each station replayed as new, forecast by a network model that never saw it
    (`replayed_as_new`: the stations in `--groups` groups, each group's model fitted on the
    others). The gate's evidence for a new station is the other stations replayed as new
    the same way over the `--evidence-days` before the cut-off."""
    issue = frozenset(params.issue_hours)
    lookback = pd.Timedelta(hours=network.lookback_hours)
    windows = {n: station_windows(f, s, network)[0] for n, (f, s) in frames.items()}
    rows, cost = [], []
    for cutoff in args.cutoffs:
        for family in args.families:
            started = time.perf_counter()
            unseen, replays = replayed_as_new(windows, network, family, cutoff,
                                              args.network_days, args.groups,
                                              args.evidence_days, min(args.new_days))
            cost.append((cutoff.date(), family, time.perf_counter() - started, peak_mib()))
            for name, w in windows.items():
                others = [r for o, r in replays.items() if o != name]
                test = w.between(cutoff, cutoff + pd.Timedelta(days=args.test_days)) \
                    .at_hours(issue)
                if len(test) < 5 or len(others) < 2:
                    continue
                composition = cold_start_composition(others, network)
                naive = predict_windows(reference(w, params, cutoff), test).astype(np.float64)
                for days in args.new_days:
                    since = cutoff - pd.Timedelta(days=days)
                    if w.times[0] > since:
                        continue
                    scale = scale_before(w, cutoff, days, params.samples_per_day)
                    # only windows whose inputs lie within the station's history
                    keep = np.asarray(test.origin_times() - lookback >= since
                                      - pd.Timedelta(hours=1))
                    fresh = test.select(keep)
                    raw = predict_windows(unseen[name].bind(scale, w.columns,
                                                            w.target_index), test)[keep]
                    issued = {"frozen": naive[keep] + composition.weights
                              * (raw - naive[keep]),
                              "self-correcting": issued_in_turn(
                                  raw, naive[keep], fresh.targets(), fresh.origin_times(),
                                  params.step_minutes, composition.weights,
                                  params.group_steps)}
                    best = mae(naive[keep], fresh).mean()
                    for kind, chosen in issued.items():
                        rows.append({"cutoff": cutoff.date(), "family": family,
                                     "station": name, "days": days, "issue": kind,
                                     "windows": int(keep.sum()),
                                     "network model": float(mae(raw, fresh).mean() / best),
                                     "gate's choice": float(mae(chosen, fresh).mean() / best),
                                     **group_ratios(chosen, naive[keep], fresh, params),
                                     "naive groups": len(composition.naive_groups)})
    table = pd.DataFrame(rows)
    groups_cols = [c for c in table.columns if c.endswith(" h") and c[0].isdigit()]
    table["kept"] = (table["gate's choice"] <= 1) & (table[groups_cols].max(axis=1) <= 1.02) \
        & (table["+24 h"] <= 1)
    print(f"\n## New stations (never seen by the network model), against best naive over "
          f"the {args.test_days:g} days after each cut-off; {args.groups} station groups\n")
    summary = table.groupby(["family", "days", "issue"]).agg(
        replays=("station", "count"), network_model=("network model", "mean"),
        gates_choice=("gate's choice", "mean"), worst_group=("worst group", "max"),
        plus24=("+24 h", "mean"), promises_kept=("kept", "sum"))
    print(summary.round(3).to_string())
    print("\n" + table.round(3).to_string(index=False))
    print(f"\n## Cost of the {args.groups} group fits and replays (s, peak MiB of this "
          "process)\n")
    print(pd.DataFrame(cost, columns=["cutoff", "family", "seconds", "peak MiB"])
          .round(1).to_string(index=False))


def group_ratios(chosen: np.ndarray, naive: np.ndarray, windows, params: ForecastParams
                 ) -> dict[str, float]:
    mine, theirs = mae(chosen, windows), mae(naive, windows)
    steps, out = params.group_steps, {}
    for start in range(0, len(mine), steps):
        out[f"{start + 1}-{start + steps} h"] = float(mine[start:start + steps].mean()
                                                      / theirs[start:start + steps].mean())
    out["worst group"] = max(out.values())
    out["+24 h"] = float(mine[-1] / theirs[-1])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stations-file", type=Path,
                        default=Path(__file__).parent / "us_cities_stations.toml")
    parser.add_argument("--files", type=Path, nargs="+",
                        default=[DATA / f"{q}.csv.gz" for q in QUANTITIES])
    parser.add_argument("--cutoffs", nargs="+", type=pd.Timestamp,  # UTC, as stored
                        default=[pd.Timestamp(d) for d in
                                 ("2014-01-01", "2014-04-01", "2014-07-01", "2014-10-01",
                                  "2016-04-01", "2016-10-01")])
    parser.add_argument("--families", nargs="+", default=["pooled_ridge", "pooled_gru"])
    parser.add_argument("--own-days", type=float, default=120)
    parser.add_argument("--own-gru", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--network-days", type=float, default=365)
    parser.add_argument("--network-lookback-hours", type=int, default=144)
    parser.add_argument("--network-epochs", type=int, default=8)
    parser.add_argument("--new-days", type=float, nargs="+", default=[7, 14, 30])
    parser.add_argument("--evidence-days", type=float, default=28)
    parser.add_argument("--groups", type=int, default=4,
                        help="Station groups for the new-station replays (the stations' "
                             "count: leave-one-out).")
    parser.add_argument("--test-days", type=float, default=30)
    parser.add_argument("--own-families", nargs="+", default=["blend", "ridge", "ensemble"],
                        help="the station's own families for --part gate")
    parser.add_argument("--network-every-days", type=float, default=7,
                        help="how often the network model is refitted, for --part gate")
    parser.add_argument("--part", choices=["mature", "new", "both", "gate"], default="both")
    args = parser.parse_args()
    params = ForecastParams(jit_compile=True)
    network = params.model_copy(update={"lookback_hours": args.network_lookback_hours,
                                        "batch_size": 256, "epochs": args.network_epochs,
                                        "patience": 2, "give_up_epochs": 3})
    with tempfile.TemporaryDirectory() as work:
        frames = load_network(args.stations_file, args.files, Path(work))
        if args.part == "gate":
            args.work = work
            gates(frames, params, network, args)
    if args.part in ("mature", "both"):
        mature(frames, params, network, args)
    if args.part in ("new", "both"):
        new_stations(frames, params, network, args)


if __name__ == "__main__":
    main()
