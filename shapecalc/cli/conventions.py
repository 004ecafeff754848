"""``shapecalc compare-conventions COMMAND``: one model as PyTorch, Keras and ONNX store it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from shapecalc.cli.group import ShapecalcGroup, engine_error, register
from shapecalc.cli.models import architecture_options
from shapecalc.cli.options import apply, convention_options, format_option
from shapecalc.cli.port import unportable
from shapecalc.core.choices import PORTABLE
from shapecalc.core.errors import ShapecalcError

if TYPE_CHECKING:
    from shapecalc.analysis.conventions import Converted

__all__ = ["compare_conventions"]


@click.group("compare-conventions", cls=ShapecalcGroup)
def compare_conventions() -> None:
    """The same model as PyTorch, Keras and ONNX store it, side by side: each framework's
    tensor names, shapes, gate order and counts, and why the totals differ."""


def _compare_command(command: str) -> click.Command:
    from shapecalc.architectures import get

    cls = get(command)

    @architecture_options(cls)
    @format_option(("table", "json", "markdown"))
    @apply(convention_options(gru="reset-after" in cls.extra_options)[1:])
    def run(fmt: str, **flags: Any) -> None:
        from shapecalc.analysis.conventions import CONVENTIONS, convert_with_template

        reset_after = flags.pop("reset_after", True)
        try:
            model = cls(**flags).model()
        except ShapecalcError as err:
            raise engine_error(err) from None
        done: list[tuple[Converted, Converted | None]] = []
        refused: list[tuple[str, str]] = []
        for convention in CONVENTIONS:
            try:
                done.append(convert_with_template(model, convention, reset_after=reset_after))
            except ShapecalcError as err:
                refused.append((convention, err.rule or str(err)))
        if len(done) < 2:  # PyTorch's own only: nothing to compare, say so
            why = "; ".join(f"{conv}: {reason}" for conv, reason in refused)
            raise click.UsageError(f"no Keras or ONNX convention for this model ({why})")
        if fmt == "json":
            from shapecalc.report.as_json import comparison_json

            click.echo(comparison_json(model, done, refused), nl=False)
            return
        if fmt == "markdown":
            from shapecalc.report.markdown import convention_markdown

            text = "\n".join(convention_markdown(model, c, t) for c, t in done)
            text += "".join(f"\n- **{conv}**: {why}\n" for conv, why in refused)
            click.echo(text, nl=False)
            return
        from shapecalc.report.rich_writer import conventions_side_by_side, echo, refusals

        parts = [conventions_side_by_side(model, [c for c, _ in done])]
        echo(*parts, *([refusals(refused)] if refused else []))

    title = cls.title or cls.__name__
    run.__doc__ = f"The {title} in PyTorch's, Keras' and ONNX's conventions." + (
        f"\n\n    Example: shapecalc compare-conventions {command} {cls.example}"
        if cls.example
        else ""
    )
    return click.command(command)(run)


def _maker(command: str) -> Any:
    return lambda: (
        _compare_command(command)
        if command in PORTABLE
        else unportable("compare-conventions", command)
    )


register(compare_conventions, _maker)
