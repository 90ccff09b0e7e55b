"""`onestop audit ...` commands."""

import typer

app = typer.Typer(help="Verify the tamper-evident case histories.", no_args_is_help=True, pretty_exceptions_show_locals=False)
