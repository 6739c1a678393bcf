"""`sensorcast`: the user's entry point (ingest, retrain, forecast, registry, demo). The
commands are grouped by subject (`data`, `models`, `forecasts`, `status`, `demo`) on one
Typer app."""

from __future__ import annotations

import typer

from flows.cli import data, demo, forecasts, models, status  # noqa: F401  (they register the commands)
from flows.cli.app import app

__all__ = ["app", "run"]


def run() -> None:
    """The `sensorcast` command: the app, with database refusals (read-only file, full disk,
    server down) as one line instead of a traceback. Each write is one transaction, so
    nothing stored is lost or half-written: re-run once the cause is fixed."""
    from sqlalchemy.exc import DatabaseError, OperationalError

    from flows.cli.common import DAMAGED_EXIT, opened_database

    # Typer's own copy of click (pinned Typer): its usage errors, raised here rather than
    # drawn as a box of several lines.
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

    try:
        code = app(standalone_mode=False)
    except NoArgsIsHelpError as bare:  # `sensorcast` alone: the help
        typer.echo(bare.ctx.get_help())
        raise SystemExit(0) from None
    except UsageError as exc:  # a bad argument: one line, as every refusal
        command = exc.ctx.command_path if exc.ctx else "sensorcast"
        typer.echo(f"error: {command}: {exc.format_message()} (see --help)", err=True)
        raise SystemExit(2) from None
    except ClickException as exc:
        typer.echo(f"error: {exc.format_message()}", err=True)
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:
        typer.echo("aborted", err=True)
        raise SystemExit(1) from None
    except OperationalError as exc:
        typer.echo(f"error: the database refused: {exc.orig}; nothing stored was lost or "
                   "half-written, re-run once that is fixed", err=True)
        raise SystemExit(2) from None
    except DatabaseError as exc:  # a bad header, a truncated file, garbage mid-file
        typer.echo(f"error: {opened_database.get()} is damaged or not a sensorcast database "
                   f"({exc.orig}); nothing was changed", err=True)
        raise SystemExit(DAMAGED_EXIT) from None
    raise SystemExit(code if isinstance(code, int) else 0)
