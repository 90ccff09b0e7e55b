"""The `onestop` command."""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

app = typer.Typer(help="onestop — 一网通办 backend: server, worker, database and demo tools.",
                  no_args_is_help=True, add_completion=False,
                  pretty_exceptions_show_locals=False)  # locals may hold secrets or personal data
err = Console(stderr=True)


def _register_command_groups() -> None:
    from api import cli_audit, cli_certificates, cli_matters

    app.add_typer(cli_matters.app, name="matters", help="Check and draw the matter catalogue.")
    app.add_typer(cli_audit.app, name="audit", help="Verify the tamper-evident case histories.")
    app.add_typer(cli_certificates.app, name="certificates", help="Certificate registry and PKI operations.")
    from api import cli_figures

    app.add_typer(cli_figures.app, name="figures", help="Regional figures (一网协同): refresh the rollups.")
    from api import cli_points  # points, windows, staff

    cli_points.register(app)


_register_command_groups()


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=err, transient=False)


def _reporter(progress: Progress):
    tasks: dict[str, int] = {}

    def report(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total)
        progress.update(tasks[stage], completed=done, total=total)

    return report


@app.command()
def migrate() -> None:
    """Create or upgrade the database schema (Alembic migrations to head)."""
    from services.config import get_settings
    from services.db import session_scope
    from services.matters.service import sync_catalogue
    from services.migrate import upgrade_to_head

    upgrade_to_head(get_settings().resolved_database_url)
    err.print("[green]database is at the latest migration[/]")
    with session_scope() as session:
        report = sync_catalogue(session)
    err.print(f"matter catalogue synced: {report}")


@app.command("seed-demo")
def seed_demo() -> None:
    """Seed the demo county 婺源县 (regions, service points, staff) into an empty database."""
    from services.db import session_scope
    from services.demo.seed import seed_demo as seed

    with _progress() as progress, session_scope() as session:
        result = seed(session, progress=_reporter(progress))
    if result["seeded"]:
        err.print(f"[green]seeded[/] {result['service_points']} service points, {result['staff']} staff accounts, "
                  f"{result['regions']} regions")
    else:
        err.print(f"[yellow]not seeded:[/] {result['reason']}")


@app.command("demo-accounts")
def demo_accounts(as_json: bool = typer.Option(False, "--json", help="JSON only on stdout")) -> None:
    """Print the demo staff accounts and their passwords (demo mode only)."""
    from services.db import session_scope
    from services.demo.seed import demo_accounts as accounts

    with session_scope() as session:
        rows = accounts(session)
    if as_json:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")
        return
    for row in rows:
        typer.echo(f"{row['username']:<28} {row['password']:<18} {row['roles'][0]:<10} {row['service_point']}")


@app.command("import-regions")
def import_regions(file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True,
                                               help="CSV (or .csv.gz) with code,name,level,parent_code")) -> None:
    """Upsert administrative regions from a file; codes missing from it are marked inactive."""
    from services.db import session_scope
    from services.regions.importer import import_regions as run_import
    from services.routing.index import mark_changed

    with _progress() as progress, session_scope() as session:
        report = _reporter(progress)
        result = run_import(session, file, progress=lambda done, total: report("regions", done, total))
        mark_changed(session)
    err.print(f"[green]imported[/] {result}")


@app.command()
def worker() -> None:
    """Run the outbox worker (certificates, notifications) until interrupted."""
    from api.logging import configure_logging
    from services.config import get_settings
    from services.db import get_engine
    from services.outbox.registry import schedule_periodic_jobs
    from services.outbox.service import run_forever

    settings = get_settings()
    configure_logging(settings.log_level)
    schedule_periodic_jobs(get_engine())  # registers the handlers too
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    err.print("worker running; Ctrl-C to stop")
    try:
        run_forever(get_engine(), stop=stop, poll_seconds=settings.worker_poll_seconds)
    except KeyboardInterrupt:
        stop.set()


@app.command()
def serve(host: str = typer.Option("127.0.0.1", help="address to listen on"),
          port: int = typer.Option(8000, help="port to listen on"),
          workers: int = typer.Option(1, help="uvicorn worker processes")) -> None:
    """Migrate, seed the demo into an empty database (demo mode), and start the API server."""
    import os

    import uvicorn

    from services.config import get_settings

    settings = get_settings()
    migrate()
    if settings.demo:
        seed_demo()
    base = f"http://{host}:{port}"
    if not os.environ.get("ONESTOP_PUBLIC_BASE_URL") and (host, port) != ("127.0.0.1", 8000):
        os.environ["ONESTOP_PUBLIC_BASE_URL"] = base
        get_settings.cache_clear()
    err.print(f"[bold]onestop[/] on {base}  ·  API docs: {base}/docs  ·  health: {base}/healthz")
    if settings.demo:
        err.print("demo accounts: [bold]onestop demo-accounts[/] (or --json); citizens sign in with a code "
                  "like demo-zhangsan.1 (see README)")
    uvicorn.run("api.asgi:app", host=host, port=port, workers=workers, log_level=settings.log_level.lower(),
                access_log=False)


if __name__ == "__main__":
    app()
