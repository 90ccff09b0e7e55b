"""`onestop matters ...` commands: check, graph, schema, list, sync."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

app = typer.Typer(help="Check and draw the matter catalogue.", no_args_is_help=True, pretty_exceptions_show_locals=False)


def _out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _shipped_or_exit():
    from workflows.catalogue import CatalogueError, default_catalogue

    try:
        return default_catalogue()
    except CatalogueError as error:
        for file, path, message in error.problems:
            typer.echo(f"{file}: {path}: {message}", err=True)
        typer.echo("the catalogue is broken: run `onestop matters check`", err=True)
        raise typer.Exit(1) from None


@app.command()
def check(directory: Path = typer.Argument(None, exists=True, readable=True, show_default="workflows/",
                                           help="workflows directory, a directory of matter files, or one file")) -> None:
    """Validate every lifecycle and matter file; print each problem as `file: path: message`."""
    from workflows.catalogue import check_catalogue

    report = check_catalogue(directory)
    for file, path, message in report.problems:
        _out(f"{file}: {path}: {message}\n")
    if report.problems:
        typer.echo(f"{len(report.problems)} problem(s) in {len(report.files)} matter file(s)", err=True)
        raise typer.Exit(1)
    catalogue = report.catalogue
    immediate = sum(1 for matter in catalogue.matters.values() if matter.definition.promise_kind == "immediate")
    _out(f"ok: {len(catalogue.matters)} matters ({immediate} 即办件, {len(catalogue.matters) - immediate} 承诺件), "
         f"{len(catalogue.lifecycles)} lifecycle(s), no problems\n")


@app.command()
def graph(code: str = typer.Argument(..., help="matter code, e.g. minimum-living-allowance"),
          loops: bool = typer.Option(True, "--loops/--no-loops",
                                     help="draw the actions that keep a case where it is (extend, transfer, claim)")) -> None:
    """Print the matter's resolved state machine as a Mermaid stateDiagram-v2."""
    from workflows.graph import mermaid

    matter = _shipped_or_exit().get(code)
    if matter is None:
        typer.echo(f"unknown matter {code!r}; `onestop matters list` shows the codes", err=True)
        raise typer.Exit(2)
    _out(mermaid(matter, loops=loops))


@app.command()
def schema() -> None:
    """Print the JSON Schema of matter files (generated from the models)."""
    from workflows.definitions import matter_json_schema

    _out(json.dumps(matter_json_schema(), ensure_ascii=False, indent=2) + "\n")


@app.command("list")
def list_matters(stored: bool = typer.Option(False, "--stored",
                                             help="the versions in force in the database instead of the files")) -> None:
    """List the matters: code, subject, 即办/承诺, time limits, handling level, name."""
    if stored:
        from services.db import session_scope
        from services.matters.service import list_matters as listing

        with session_scope() as session:
            rows, cursor = [], None
            while True:
                page = listing(session, cursor=cursor, limit=200)
                rows.extend(page["items"])
                cursor = page["next_cursor"]
                if not cursor:
                    break
        matters = [(row["code"], row["subject_kind"], row["promise_kind"], row["legal_days"], row["promised_days"],
                    row["handle_level"], row["version"], row["name"]) for row in rows]
    else:
        catalogue = _shipped_or_exit()
        matters = [(m.code, m.definition.subject_kind, m.definition.promise_kind, m.definition.legal_days,
                    m.definition.promised_days, m.definition.handle_level, m.version, m.definition.name)
                   for m in (catalogue.matters[code] for code in sorted(catalogue.matters))]
    for code, subject, promise, legal, promised, level, version, name in matters:
        kind = "即办" if promise == "immediate" else "承诺"
        limits = f"{'-' if legal is None else legal}/{promised}"
        _out(f"{code:<40} {subject:<12} {kind}  {limits:>6}  {level:<8} v{version:<3} {name}\n")


@app.command()
def sync() -> None:
    """Store changed catalogue files as new matter versions in the database (idempotent)."""
    from services.db import session_scope
    from services.matters.service import sync_catalogue

    _shipped_or_exit()
    with session_scope() as session:
        report = sync_catalogue(session)
    created = ", ".join(report["created"]) or "none"
    typer.echo(f"new versions: {created}; unchanged: {report['unchanged']}", err=True)
    if report["superseded_edits"]:
        typer.echo(f"changed files superseded administrators' edits of: {', '.join(report['superseded_edits'])}",
                   err=True)
