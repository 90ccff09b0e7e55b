"""`onestop certificates ...` commands."""

import typer

app = typer.Typer(help="Certificate registry and PKI operations.", no_args_is_help=True, pretty_exceptions_show_locals=False)
