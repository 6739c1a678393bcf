"""How the commands print what they did: leaderboards, versions, forecasts, skill."""

from __future__ import annotations

import typer

from flows.cli.common import station_view
from flows.settings import Settings


def version_label(version: int | None) -> str:
    return "none" if version is None else f"v{version}"


def echo_leaderboard(station: str, rows: list[dict]) -> None:
    """The leaderboard's numbers under two headings, ratios to best naive's MAE (below 1
    wins) and MAEs, then each decision and why; the families not fitted last."""
    skipped = [row for row in rows if row["decision"] == "skipped"]
    rows = [row for row in rows if row["decision"] != "skipped"]
    ratios = [k for k in rows[0] if k.endswith(" / best naive")] if rows else []
    maes = ["mean MAE", "best naive MAE"]
    labels = [k.removesuffix(" / best naive") for k in ratios] + ["model", "best naive"]
    width = 8 * len(ratios)
    typer.echo(f"\n{station}:")
    typer.echo(f"{'':<18}{'':>8}{'MAE / best naive MAE':^{width}}{'mean MAE':^24}")
    typer.echo(f"{'family':<18}{'version':>8}" + "".join(f"{h:>8}" for h in labels[:-2])
               + f"{labels[-2]:>12}{labels[-1]:>12}  decision")
    for row in rows:
        typer.echo(f"{row['family']:<18}{row['version']:>8}"
                   + "".join(f"{row[k]:>8.3f}" for k in ratios)
                   + "".join(f"{row[k]:>12.3f}" for k in maes)
                   + f"  {row['decision']}: {row['reason']}")
    for row in skipped:
        typer.echo(f"{row['family']:<18}{'-':>8}  skipped: {row['reason']}")
    typer.echo("(on the same backtest windows; a ratio below 1 beats the best naive forecast)")


def echo_model(store, name: str) -> None:
    from registry.versions import champion, list_events, list_versions

    with store.sessions() as session:
        versions = list_versions(session, name)
        current = champion(session, name)
        events = list_events(session, name)
    typer.echo(f"model {name}: {len(versions)} version(s)")
    for v in versions:
        mark = "*" if current and current.id == v.id else " "
        naive = (f"best naive {v.best_naive_mean:.3f}, " if v.best_naive_mean is not None
                 else "")
        typer.echo(f"{mark} v{v.version:<4} {v.family:<18} mean MAE {v.holdout_mean:.3f} "
                   f"({naive}persistence {v.persistence_mean:.3f})  +24 h "
                   f"{v.holdout_last:.3f} ({v.persistence_last:.3f})  trained to "
                   f"{v.train_end:%Y-%m-%d %H:%M}")
    for e in events[-10:]:
        was = version_label(e.previous_champion_version)
        typer.echo(f"  {e.created_at:%Y-%m-%d %H:%M} {e.decision:<9} "
                   f"{version_label(e.candidate_version)} (champion was {was}) by "
                   f"{e.triggered_by}: {e.reason}")


def echo_latest(settings: Settings, station: str) -> None:
    latest = station_view(settings, "latest_forecast", station)
    if latest.empty:
        return
    first = latest.iloc[0]
    target = next(s for s in settings.stations if s.name == station).target
    levels = [level for level in settings.intervals
              if latest[f"lower_{level}"].notna().any()]
    typer.echo(f"\nlatest forecast of {target} at {station}, issued "
               f"{first.issued_at:%Y-%m-%d %H:%M} UTC by {first.model}:")
    typer.echo(f"  {'ahead':>5}  {'target time (UTC)':<17}  {'value':>7}"
               + "".join(f"  {f'{level} % interval':>17}" for level in levels))
    for row in latest.itertuples():
        bounds = "".join(f"  {getattr(row, f'lower_{level}'):>7.2f} .. "
                         f"{getattr(row, f'upper_{level}'):>7.2f}" for level in levels)
        typer.echo(f"  {row.horizon_hours:>3} h  {row.target_time:%Y-%m-%d %H:%M}  "
                   f"{row.value:7.2f}{bounds}")


def echo_skill(settings: Settings, station: str) -> None:
    skill = station_view(settings, "forecast_skill", station)
    if skill.empty:
        typer.echo("  no forecast has been verified by observations yet")
        return
    typer.echo(f"  {'model':<20}{'issues':>7}{'mean MAE':>10}{'+24 h':>8}"
               f"{'persist.':>10}{'+24 h':>8}{'seasonal':>10}")
    for model, rows in skill.groupby("model"):
        last = rows[rows.horizon_hours == rows.horizon_hours.max()]
        typer.echo(f"  {model:<20}{rows.issued_at.nunique():>7}{rows.abs_error.mean():>10.3f}"
                   f"{last.abs_error.mean():>8.3f}{rows.persistence_abs_error.mean():>10.3f}"
                   f"{last.persistence_abs_error.mean():>8.3f}"
                   f"{rows.seasonal_persistence_abs_error.mean():>10.3f}")


def echo_skill_table(rows: list[dict]) -> None:
    if not rows:
        typer.echo("  no forecast has been verified by observations yet")
        return
    typer.echo(f"  {'h':>3}{'issues':>8}{'MAE':>8}{'persist.':>10}{'seasonal':>10}"
               f"{'vs best naive':>15}")
    for row in rows:
        typer.echo(f"  {row['horizon_hours']:>3}{row['issues']:>8.0f}{row['mae']:>8.3f}"
                   f"{row['persistence']:>10.3f}{row['seasonal_persistence']:>10.3f}"
                   f"{row['vs_best_naive']:>15.3f}")
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in
            ("mae", "persistence", "seasonal_persistence")}
    best = sum(r["mae"] / r["vs_best_naive"] for r in rows) / len(rows)
    typer.echo(f"  {'all':>3}{'':>8}{mean['mae']:>8.3f}{mean['persistence']:>10.3f}"
               f"{mean['seasonal_persistence']:>10.3f}{mean['mae'] / best:>15.3f}")


def echo_status(name: str, s, waiting: int, drop, reasons: list[str], now) -> None:
    """One station's `registry.status.StationStatus` and verdict, a line a fact."""
    from registry.status import age

    def when(moment) -> str:
        return f"{moment:%Y-%m-%d %H:%M} UTC ({age(now - moment)} ago)" if moment else "none"

    runs = "; ".join(f"{kind} {when(run.at)}: {run.outcome}"
                     for kind, run in s.last_runs.items()) or "none"
    typer.echo(f"{name}:")
    typer.echo(f"  newest observation  {when(s.newest_observation)}")
    own = s.champion or (f"none of its own (forecasts are the network model's, "
                         f"{s.network_champion})" if s.network_champion
                         else "none (forecasts are best naive)")
    typer.echo(f"  champion            {own}"
               + (f", since {when(s.champion_since)}" if s.champion_since else ""))
    typer.echo(f"  last forecast       {when(s.last_forecast)}"
               + (f" by {s.last_forecast_by}" if s.last_forecast_by else ""))
    typer.echo(f"  last runs           {runs}")
    typer.echo(f"  drop folder         {waiting} file(s) waiting in {drop}")
    typer.echo(f"  quarantined         {s.quarantined_last_day} row(s) in the last day")
    typer.echo(f"  status              {'STALE: ' + '; '.join(reasons) if reasons else 'ok'}")
