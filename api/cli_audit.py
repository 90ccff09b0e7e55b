"""`onestop audit ...` commands."""

from __future__ import annotations

import json
import sys

import typer
from rich.console import Console

app = typer.Typer(help="Verify the tamper-evident case histories.", no_args_is_help=True,
                  pretty_exceptions_show_locals=False)
err = Console(stderr=True)

PROBLEM_WORDS = {"hash": "事件内容被修改", "link": "链接断开（事件被删除、插入或替换）", "sequence": "序号不连续",
                 "reordered": "事件顺序被调整", "cut": "历史被截断", "missing": "历史全部缺失",
                 "state": "最后一个事件与办件当前状态不符"}


@app.command()
def verify(case: list[str] = typer.Option(None, "--case", help="only these case ids (repeatable)"),
           as_json: bool = typer.Option(False, "--json", help="JSON lines on stdout: one per broken case, then a summary"),
           batch: int = typer.Option(1000, min=1, help="cases read per query")) -> None:
    """Recompute every case's hash chain; name each case whose history was edited, reordered or
    cut. Exit status 1 when any is found."""
    from services.cases.audit import AuditReport, iter_broken
    from services.db import session_scope

    report = AuditReport()
    broken = 0
    with session_scope() as session:
        for item in iter_broken(session, batch=batch, case_ids=case or None, report=report):
            broken += 1
            if as_json:
                sys.stdout.write(json.dumps(item, ensure_ascii=False) + "\n")
            else:
                words = "；".join(
                    PROBLEM_WORDS.get(p["problem"], p["problem"]) + (f"（第 {p['seq']} 个事件）" if "seq" in p else "")
                    for p in item["problems"])
                typer.echo(f"{item['number']}  {item['case_id']}  {words}")
    summary = {"cases": report.cases, "events": report.events, "broken": broken}
    if as_json:
        sys.stdout.write(json.dumps({"summary": summary}) + "\n")
    elif broken:
        err.print(f"[red]{broken} of {report.cases} cases have a history that was tampered with[/]")
    else:
        err.print(f"[green]all {report.cases} case histories ({report.events} events) are intact[/]")
    if broken:
        raise typer.Exit(code=1)
