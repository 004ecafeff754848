"""The ``shapecalc`` command: click commands that turn flags into engine calls.

One small module per group of commands (``models``: one command per architecture,
``layers``, ``solve``, ``conventions``, ``inspect``), made when first asked for, so a
command imports only what it runs. Engine errors become usage errors naming the flag
(exit status 2); every error, click's own included, is one line, ``Error: ...``.
"""

from __future__ import annotations

from shapecalc.cli.app import cli

__all__ = ["cli", "main"]


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="shapecalc")
