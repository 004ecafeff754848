"""The ``shapecalc`` command: click commands that turn flags into engine calls.

One small module per group of commands (``models``: one command per architecture,
``layers``, ``solve``, ``conventions``, ``inspect``), made when first asked for, so a
command imports only what it runs. Engine errors become usage errors naming the flag
(exit status 2); every error, click's own included, is one line, ``Error: ...``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shapecalc.cli.app import cli

__all__ = ["cli", "main"]


def __getattr__(name: str) -> Any:
    """``cli``, the group, made on first use (``main`` first turns the cycle collector off)."""
    if name == "cli":
        from shapecalc.cli.app import cli

        return cli
    raise AttributeError(f"module 'shapecalc.cli' has no attribute {name!r}")


def main() -> None:
    """Console-script entry point. A terminal that cannot show a character (an ASCII
    locale and the formulas' ·) gets it escaped; output that cannot be written (a full
    disk, a closed pipe) ends in one line, not a traceback. A command is one short
    process: Python's cycle collector, which would walk every object the imports made
    again and again, is off (memory is still freed as soon as nothing refers to it)."""
    import gc
    import sys

    gc.disable()
    from shapecalc.cli.app import cli

    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="backslashreplace")
    try:
        cli(prog_name="shapecalc")
    except BrokenPipeError:  # the reader went away (shapecalc ... | head): nothing to say
        sys.stderr.close()
        sys.exit(0)
    except OSError as err:
        print(f"Error: cannot write the output ({err.strerror or err})", file=sys.stderr)
        sys.exit(2)
