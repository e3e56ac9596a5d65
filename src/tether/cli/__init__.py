"""The `tether` command line: thin typer commands over the library."""

from tether.cli._app import app, main

__all__ = ["app", "main"]
