"""``shapecalc solve COMMAND``: the size of an architecture closest to a parameter budget.

The sizes it may solve for (``--for``) are the architecture's sizes declared solvable.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from shapecalc.cli.group import ExampleCommand, ShapecalcGroup, engine_error, flag_of, register
from shapecalc.cli.models import architecture_options
from shapecalc.cli.options import CONVENTION_FLAGS, apply, convention_options, format_option, pop
from shapecalc.core.errors import ShapecalcError

__all__ = ["solve"]


@click.group(cls=ShapecalcGroup)
def solve() -> None:
    """Find the size that brings a model closest to a parameter budget."""


def _solve_command(command: str) -> click.Command:
    from shapecalc.architectures import get
    from shapecalc.core.declare import arguments_of

    cls = get(command)
    fields = arguments_of(cls)
    free_sizes = {
        f.name.replace("_", "-"): f.name for f, a in fields if a.kind == "size" and a.solvable
    }
    default = "hidden" if "hidden" in free_sizes else next(iter(free_sizes))
    required = [f.name for f, a in fields if a.kind == "size" and f.default is dataclasses.MISSING]

    @click.option(
        "--params",
        "budget",
        required=True,
        metavar="N",
        help="The budget: 10M, 3.5e6, 1.2B, 350k or 4,269,121.",
    )
    @click.option(
        "--for",
        "free",
        type=click.Choice(list(free_sizes)),
        default=default,
        show_default=True,
        help="The size to solve for.",
    )
    @click.option(
        "--multiple-of",
        type=int,
        default=1,
        show_default=True,
        metavar="M",
        help="Only sizes that are multiples of M (64 suits most hardware).",
    )
    @architecture_options(cls, solving=True, required_note="required, but the size --for names")
    @format_option(("table", "json"))
    @apply(convention_options(gru="reset-after" in cls.extra_options))
    def run(budget: str, free: str, multiple_of: int, fmt: str, **flags: Any) -> None:
        from shapecalc.analysis.sizing import solve as solve_for

        free_arg = free_sizes[free]
        naming = pop(flags, CONVENTION_FLAGS)
        if flags[free_arg] is not None:
            raise click.BadParameter(
                f"{flags[free_arg]}: this is the size --for {free} solves; leave it out",
                param_hint=f"'{flag_of(free_arg)}'",
            )
        fixed = {k: v for k, v in flags.items() if k != free_arg and v is not None}
        try:
            solution = solve_for(
                cls.create, budget, free_arg, multiple_of=multiple_of, **naming, **fixed
            )
        except ShapecalcError as err:
            raise engine_error(
                err, {"target": "--params", "multiple_of": "--multiple-of"}
            ) from None
        if fmt == "json":
            from shapecalc.report.as_json import solution_json

            click.echo(solution_json(solution), nl=False)
            return
        from shapecalc.report.rich_writer import echo, prose, shell_command, solution_table

        parts = [solution_table(solution)]
        needed = cls.multiple_for(free_arg, fixed)
        if solution.multiple_of > 1:
            parts.append(prose(_step_note(cls, free, solution.multiple_of, multiple_of, needed)))
        ctx = click.get_current_context()
        given = {
            name: value
            for name, value in {**flags, **naming}.items()
            if name != free_arg
            and ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE
        }
        given[free_arg] = solution.closest.size
        parts.append(shell_command("The closest model:", ["shapecalc", command, *_as_flags(given)]))
        echo(*parts)

    def also_required(values: dict[str, Any]) -> list[str]:
        """The sizes that have no default, but the one solved for."""
        free_arg = free_sizes.get(str(values.get("free") or default))
        return [
            f"--{name.replace('_', '-')}"
            for name in required
            if name != free_arg and values.get(name) is None
        ]

    title = cls.title or cls.__name__
    example = (
        f"--params {cls.budget} " + " ".join(_without(cls.example.split(), free_sizes[default]))
        if cls.example
        else ""
    )
    run.__doc__ = f"The size that brings the {title} closest to a budget (--for: {default})." + (
        f"\n\n    \b\n    Example:\n      shapecalc solve {command} {example}" if example else ""
    )
    return click.command(command, cls=ExampleCommand, example=example, also_required=also_required)(
        run
    )


def _step_note(cls: Any, free: str, step: int, asked: int, needed: int) -> str:
    """Why the sizes tried are multiples of ``step``: ``--multiple-of``, the architecture's
    rule (its ``multiple_for``'s first line: LLaMA's hidden a multiple of twice the heads,
    for an even head_dim that rotary positions turn in pairs), or both."""
    import inspect

    doc = (inspect.getdoc(cls.multiple_for) or "").split("\n\n")[0]
    rule = " ".join(doc.split()).removeprefix(f"{free.replace('-', '_')}:").strip().rstrip(".")
    why = f"{free} must be {rule}" if rule else f"{free} must be a multiple of {needed}"
    if needed > 1 and asked > 1:
        return (
            f"Sizes tried in multiples of {step}, the least common multiple of --multiple-of "
            f"{asked} and {needed}: {why}."
        )
    if needed > 1:
        return f"Sizes tried in multiples of {step}: {why}."
    return f"Sizes tried in multiples of {step} (--multiple-of)."


def _as_flags(values: dict[str, Any]) -> list[str]:
    """Arguments as the flags that give them, a flag and its value together:
    ``["--hidden 4160", "--tie-weights"]``."""
    words: list[str] = []
    for name, value in values.items():
        flag = flag_of(name) or ""
        if isinstance(value, bool):
            words.append(flag if value else f"--no-{flag[2:]}")
        else:
            words.append(f"{flag} {value}")
    return words


def _without(args: list[str], field: str) -> list[str]:
    """An example's arguments without the free size's option."""
    flag = flag_of(field)
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == flag:
            skip = True
        else:
            out.append(arg)
    return out


def _maker(command: str) -> Any:
    return lambda: _solve_command(command)


register(solve, _maker)
