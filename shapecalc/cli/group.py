"""A click group for shapecalc: commands made when first asked for, and the error policy.

Every error, click's own included, is printed as one line, ``Error: ...``, with click's
exit status (2 for bad input) and no traceback. Engine errors become usage errors naming
the flag that holds the bad value. An unknown command is answered with the closest names
(``lsmt``: lstm; ``conv``: conv1d, conv2d, ...); a command missing required options names
all of them at once, with the command's example.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

import click

from shapecalc.core.errors import ShapecalcError

__all__ = [
    "ExampleCommand",
    "ShapecalcGroup",
    "SuggestingGroup",
    "engine_error",
    "flag_of",
    "missing_error",
    "plain",
    "register",
    "suggest",
]


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


_ARGUMENT = re.compile(r"``(\w+)=([\"']?)([^`\"']*)\2``")
_LITERAL = re.compile(r"``([^`]+)``")


def plain(text: str) -> str:
    """A docstring as help text: reST literals without their double backticks, and a
    Python argument written as the flag that gives it (``head="mlm"`` as --head mlm)."""
    text = _ARGUMENT.sub(lambda m: f"--{m[1].replace('_', '-')} {m[3]}", text)
    return _LITERAL.sub(r"\1", text)


#: the most names a "did you mean" lists, and the longest name it looks for
MOST_SUGGESTIONS, LONGEST_GUESS = 8, 64


def suggest(name: str, choices: Iterable[str]) -> list[str]:
    """The choices ``name`` may have meant, case-insensitively: those it begins (``conv``:
    conv1d, conv2d, ...), then the closest by :mod:`difflib` (``lsmt``: lstm;
    ``maxpol2d``: maxpool2d, not the pools a character further); at most
    :data:`MOST_SUGGESTIONS`."""
    import difflib  # only when a name is not known

    key = name.strip().lower()
    if not key or len(key) > LONGEST_GUESS:
        return []
    lowered = {choice.lower(): choice for choice in choices}
    begun = sorted(choice for low, choice in lowered.items() if low.startswith(key))
    matcher = difflib.SequenceMatcher(b=key)
    scores = {}
    for low in lowered:
        matcher.set_seq1(low)
        scores[low] = matcher.ratio()
    best = max(scores.values(), default=0.0)
    close = sorted(
        (low for low, score in scores.items() if score >= max(0.6, best - 0.1)),
        key=lambda low: (-scores[low], low),
    )
    found = dict.fromkeys([*begun, *(lowered[low] for low in close)])
    return list(found)[:MOST_SUGGESTIONS]


class SuggestingGroup(click.Group):
    """A group that answers an unknown command with the names it may have meant."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as err:
            name = str(args[0]) if args else ""
            if name.startswith("-") or self.get_command(ctx, name) is not None:
                raise
            near = suggest(name, self.list_commands(ctx))
            if not near:
                raise
            raise click.UsageError(
                f"{err.message.rstrip('.')}; did you mean {', '.join(near)}?", ctx
            ) from None


class ShapecalcGroup(SuggestingGroup):
    """A group whose errors are always one line on stderr with click's exit status, and
    whose commands are made when they are first asked for (``lazy``: name -> maker), so a
    command imports only what it runs. A command's name is taken in any case (``LSTM``)."""

    lazy: dict[str, Callable[[], click.Command]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.lazy and cmd_name not in self.commands:
            known = {name.lower(): name for name in (*self.commands, *self.lazy)}
            cmd_name = known.get(cmd_name.lower(), cmd_name)
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


class ExampleCommand(click.Command):
    """A command with an example of its use (its arguments, without the command's path):
    missing required options are named all at once, with the example, in one error
    (``Missing options '--vocab' and '--hidden' (example: shapecalc lstm --layers 2
    --hidden 512 --vocab 65)``)."""

    def __init__(
        self,
        *args: Any,
        example: str = "",
        also_required: Callable[[dict[str, Any]], list[str]] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.example = example
        #: options required by what else is given (solve: every size but the free one),
        #: from the values given by name: the flags of those missing
        self.also_required = also_required or (lambda values: [])

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        given = list(args)
        try:
            rest = super().parse_args(ctx, args)
        except click.MissingParameter:
            opts, _, _ = self.make_parser(ctx).parse_args(args=given)
            missing = [
                _hint(p)
                for p in self.get_params(ctx)
                if p.required and opts.get(p.name or "") is None
            ]
            missing += self.also_required(opts)
            raise missing_error(ctx, missing, self.example) from None
        also = self.also_required(ctx.params)
        if also:
            raise missing_error(ctx, also, self.example)
        return rest


def _hint(param: click.Parameter) -> str:
    """How an error names a parameter: an option by its longest flag, an argument by its
    metavar (``PATH``)."""
    if isinstance(param, click.Option):
        return max(param.opts, key=len)
    return param.human_readable_name


def missing_error(ctx: click.Context | None, missing: list[str], example: str) -> click.UsageError:
    """One error naming every missing option, with the command's example when it has
    one."""
    names = [f"'{m}'" for m in missing]
    listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    text = f"Missing option{'s' if len(names) > 1 else ''} {listed}"
    if example and ctx is not None:
        text += f" (example: {ctx.command_path} {example})"
    return click.UsageError(text + ".", ctx)


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
    return click.BadParameter(_flag_words(err, flag), param_hint=f"'{flag}'")


#: functions of the library whose name an error about a flag need not carry (the flag
#: says where)
_ENTRY_POINTS = ("analyze",)


def _flag_words(err: ShapecalcError, flag: str) -> str:
    """``--seq-len must be an integer >= 1, got 0``: the error of a flag in the flag's
    words, without the library function (``analyze:``) that raised it."""
    if err.layer not in _ENTRY_POINTS:
        return str(err)
    message = err.message
    if err.field and message.startswith(f"{err.field} "):
        message = flag + message[len(err.field) :]
    return message


def register(group: ShapecalcGroup, maker: Callable[[str], Callable[[], click.Command]]) -> None:
    """One lazy command per architecture (``architectures/<command>.py``) in ``group``."""
    from shapecalc.architectures import commands

    for command in commands():
        group.lazy[command] = maker(command)
