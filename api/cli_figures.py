"""`onestop figures ...` commands."""

from __future__ import annotations

import json

import typer

app = typer.Typer(help="Regional figures (一网协同): the rollup tables.", no_args_is_help=True,
                  pretty_exceptions_show_locals=False)


@app.command()
def refresh(full: bool = typer.Option(False, "--full", help="empty the rollups and build them from every case"),
            reconcile: bool = typer.Option(False, "--reconcile",
                                           help="recompute every case's fact and fold in those that drifted")) -> None:
    """Fold the cases changed since the last refresh into the rollups (the worker does this every
    ONESTOP_FIGURES_REFRESH_SECONDS; the first refresh builds everything). Prints the report."""
    from services.db import session_scope
    from services.figures import service

    if full and reconcile:
        raise typer.BadParameter("--full or --reconcile, not both")
    with session_scope() as session:
        report = service.rebuild(session) if full else service.reconcile(session) if reconcile else service.refresh(session)
    typer.echo(json.dumps(report, ensure_ascii=False, default=str))
