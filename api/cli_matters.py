"""`onestop matters ...` commands."""

import typer

app = typer.Typer(help="Check and draw the matter catalogue.", no_args_is_help=True, pretty_exceptions_show_locals=False)
