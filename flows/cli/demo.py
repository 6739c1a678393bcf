"""The whole cycle on a simulated station, through the Prefect flows."""

from __future__ import annotations

from typing import Annotated

import typer

from flows.cli.app import app
from flows.cli.common import flow_settings, newest_observation, prefect_home, run_flow
from flows.cli.render import echo_latest, echo_leaderboard, echo_skill
from flows.settings import Settings

FEED_DAYS = 30  # of the demo station's future, fed live by `make serve`


@app.command()
def demo(ctx: typer.Context, days: Annotated[int, typer.Option(min=20)] = 180,
         epochs: Annotated[int, typer.Option(min=1)] = 3,
         backfill: Annotated[int, typer.Option(min=0, help="Days of past forecasts.")] = 7,
         ) -> None:
    """The whole cycle on a simulated station (the first station), through the Prefect
    flows: simulate, ingest, retrain, backfill a week of forecasts, forecast today, and show
    how to query it."""
    import pandas as pd

    settings: Settings = ctx.obj
    prefect_home(settings)
    from flows.feed import DEMO_FEED
    from flows.forecast import PLOT_FILE, plot_dir
    from flows.forecast import forecast as forecast_flow
    from flows.ingest import ingest as ingest_flow
    from flows.retrain import retrain as retrain_flow
    from forecasting.station.simulate import simulate_until, write_station_csv

    station = settings.stations[0]
    common = {**flow_settings(settings), "station": station.name}
    drop = settings.drop_dir(station.name) / "demo-station.csv"
    if not drop.exists():  # the past now, and the future for `make serve`'s simulated feed
        now = pd.Timestamp.now("UTC")
        frame = simulate_until(now + pd.Timedelta(days=FEED_DAYS), days + FEED_DAYS, seed=7)
        past = frame.index <= now.tz_convert(station.timezone).tz_localize(None)
        typer.echo(f"[1/4] simulating {days} days of station data up to "
                   f"{frame.index[past][-1]} (station time) -> {drop}")
        write_station_csv(settings.data_dir / DEMO_FEED, frame[~past], seed=7)
        write_station_csv(drop, frame[past], seed=7)
    typer.echo("[1/4] ingesting the drop folder")
    for row in run_flow(ingest_flow, **common)[station.name]:
        if row["status"] == "skipped":
            typer.echo(f"  {row['source']}: skipped ({row['message']})")
            continue
        typer.echo(f"  {row['source']}: {row['status']}, {row['rows_inserted']} inserted, "
                   f"{row['rows_present']} already present, {row['rows_quarantined']} "
                   f"quarantined; newest {row['newest_observation']}")
    newest = newest_observation(settings, station.name)
    cut = newest - pd.Timedelta(days=backfill)
    typer.echo(f"[2/4] retraining the candidates on a rolling backtest of the data up to "
               f"{cut:%Y-%m-%d %H:%M} UTC, as the schedule would have {backfill} days ago "
               f"(networks: at most {epochs} epochs)")
    boards = run_flow(retrain_flow, **common, epochs=epochs, until=cut, triggered_by="demo")
    echo_leaderboard(station.name, boards[station.name])
    typer.echo(f"\n[3/4] forecasting as of the newest observation ({newest:%Y-%m-%d %H:%M} "
               f"UTC), backfilling the {backfill} days before with that champion")
    run_flow(forecast_flow, **common, at=newest, days=backfill, model="current",
             triggered_by="demo")
    echo_latest(settings, station.name)
    typer.echo(f"\n[4/4] skill of the backfilled forecasts, all out of sample (the models saw "
               f"no data after {cut:%Y-%m-%d %H:%M} UTC), MAE in "
               f"{station.target_channel.unit}:")
    echo_skill(settings, station.name)
    db = settings.data_dir / "sensorcast.db"
    typer.echo(f"""
plot: {plot_dir(settings, station.name) / PLOT_FILE}
query it (more in the README):
  sqlite3 -header {db} "select target_time, horizon_hours, round(value, 2) as value, model_name, model_version from latest_forecast where station = '{station.name}'"
  sqlite3 -header {db} "select model_name, horizon_hours, round(avg(abs_error), 2) as mae, round(avg(persistence_abs_error), 2) as persistence_mae from forecast_skill where station = '{station.name}' group by 1, 2"
  sqlite3 -header {db} "select model_name, version, family, round(holdout_mean, 3) as mae, round(persistence_mean, 3) as persistence from model_versions where station = '{station.name}'"
""")
