"""A click group for shapecalc: commands made when first asked for, and the error policy.

Every error, click's own included, is printed as one line, ``Error: ...``, with click's
exit status (2 for bad input) and no traceback. Engine errors become usage errors naming
the flag that holds the bad value.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, NoReturn

import click

from shapecalc.core.errors import ShapecalcError

__all__ = ["ShapecalcGroup", "engine_error", "flag_of", "register"]


#: the longest error line, and the longest run of a value echoed in it
MAX_LINE, MAX_WORD = 600, 80


def _one_line(text: str) -> str:
    """An error as one line of readable length: a value echoed in it (click echoes the
    whole of a value it refuses) cut to :data:`MAX_WORD` characters, escapes shown
    escaped, the line cut to :data:`MAX_LINE`."""
    words = []
    for word in text.split():
        if not word.isprintable():
            word = word.encode("unicode_escape", "backslashreplace").decode("ascii")
        words.append(word if len(word) <= MAX_WORD else word[: MAX_WORD - 1] + "…")
    line = " ".join(words)
    return line if len(line) <= MAX_LINE else line[: MAX_LINE - 1] + "…"


class ShapecalcGroup(click.Group):
    """A group whose errors are always one line on stderr with click's exit status, and
    whose commands are made when they are first asked for (``lazy``: name -> maker), so a
    command imports only what it runs."""

    lazy: dict[str, Callable[[], click.Command]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            self.add_command(self.lazy[cmd_name](), cmd_name)
        return super().get_command(ctx, cmd_name)

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as err:
            click.echo(err.ctx.get_help() if err.ctx else str(err))
            _exit(0, standalone_mode)
        except click.ClickException as err:
            click.echo(f"Error: {_one_line(err.format_message())}", err=True)
            _exit(err.exit_code, standalone_mode)
        except click.exceptions.Abort:
            click.echo("Error: aborted", err=True)
            _exit(1, standalone_mode)
        if standalone_mode:
            sys.exit(result if isinstance(result, int) else 0)
        return result


def _exit(code: int, standalone_mode: bool) -> NoReturn:
    if standalone_mode:
        sys.exit(code)
    raise click.exceptions.Exit(code)


def flag_of(field: str | None) -> str | None:
    """The option that sets an argument: ``embed_dim`` -> ``--embed-dim``."""
    return None if field is None else "--" + field.replace("_", "-")


def engine_error(err: ShapecalcError, flags: dict[str, str] | None = None) -> click.ClickException:
    """An engine error as a usage error naming the flag of its field (``flags`` maps
    fields whose flag is not ``--field-name``); an error about something the command has
    no flag for (a layer's own argument inside an architecture) names none."""
    flag = (flags or {}).get(err.field or "") or flag_of(err.field)
    ctx = click.get_current_context(silent=True)
    if ctx is not None and flag is not None:
        known = {name for p in ctx.command.params for name in (*p.opts, *p.secondary_opts)}
        flag = flag if flag in known else None
    if flag is None:
        return click.UsageError(str(err))
    return click.BadParameter(str(err), param_hint=f"'{flag}'")


def register(group: ShapecalcGroup, maker: Callable[[str], Callable[[], click.Command]]) -> None:
    """One lazy command per architecture (``architectures/<command>.py``) in ``group``."""
    from shapecalc.architectures import commands

    for command in commands():
        group.lazy[command] = maker(command)
