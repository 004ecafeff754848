"""``shapecalc hf PATH``: the model a Hugging Face ``config.json`` describes, offline."""

from __future__ import annotations

from typing import Any

import click

from shapecalc.cli.hf_options import LAYOUT, SOURCE_LEN, config_weights, with_source_len
from shapecalc.cli.options import (
    CONVENTION_FLAGS,
    COST_FLAGS,
    REPORT_FLAGS,
    SIZE_FLAGS,
    apply,
    convention_options,
    cost_options,
    finish,
    pop,
    report_options,
)
from shapecalc.core.errors import ShapecalcError

__all__ = ["config_dtype", "hf"]

#: a config's ``torch_dtype`` / ``dtype`` -> the --dtype it prices the weights in
CONFIG_DTYPES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}

EXPLAINS = (
    "Explain the config's sizes (hidden size, heads, head_dim, intermediate size), every "
    "matrix of one block, and where the total comes from."
)


class _TypesListed(click.Command):
    """``shapecalc hf``: its help lists the model types the architectures declare, read
    when the help is shown (no architecture is imported)."""

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        import textwrap

        from shapecalc.adapters.hf_config import supported

        text = self.help or ""
        at = text.find("{model_types}")
        if at >= 0:
            indent = text[text.rfind("\n", 0, at) + 1 : at]
            listed = textwrap.fill(
                "Model types: " + ", ".join(supported()) + ";",
                width=84,
                initial_indent=indent,
                subsequent_indent=indent,
            )
            self.help = text[: at - len(indent)] + listed + text[at + len("{model_types}") :]
        super().format_help_text(ctx, formatter)


def config_dtype(found: Any, given: str) -> str:
    """The dtype a model read from a config is priced in: ``--dtype`` when the command
    line gives it, else the config's ``torch_dtype`` (or ``dtype``) where it names one
    of fp32, fp16 and bf16, else fp32."""
    ctx = click.get_current_context(silent=True)
    source = None if ctx is None else ctx.get_parameter_source("dtype")
    if source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT"):
        return given
    return CONFIG_DTYPES.get(found.dtype or "", given)


@click.command(cls=_TypesListed)
@click.argument("path")
@click.option(
    "--class",
    "class_name",
    metavar="NAME",
    default=None,
    help="Build this class of the model type instead of the config's architectures[0] "
    "(LlamaModel: the body without its head).",
)
@click.option(
    "--allow-field",
    "allow",
    multiple=True,
    metavar="FIELD",
    help="Count the model without this config field, which shapecalc does not know (it "
    "could change a shape: say so only when you know it does not). Repeatable.",
)
@LAYOUT
@SOURCE_LEN
@apply(report_options(explain=EXPLAINS))
@apply(cost_options(model=True, sequence=True, config=True))
@apply(convention_options(gru=False))
def hf(
    path: str,
    class_name: str | None,
    allow: tuple[str, ...],
    layout: str,
    source_len: int | None,
    **flags: Any,
) -> None:
    """The model a Hugging Face config.json describes: every matrix as transformers
    names it, its shape, count and formula, without the network and without weights.

    \b
    PATH is one of:
      config.json              a model's config file
      FOLDER                   a folder holding config.json (a downloaded checkpoint)
      owner/name[@revision]    a Hub id found in the local Hugging Face cache
                               (HF_HUB_CACHE, HF_HOME; shapecalc never downloads)

    \b
    {model_types}
    the class is the config's architectures[0] (a ...ForCausalLM, GPT2LMHeadModel,
    ...ForMaskedLM or the ...Model body). A field that could change a shape and that
    shapecalc does not know is refused by name, never guessed.

    \b
    Example:
      shapecalc hf meta-llama/Llama-3.1-8B --memory --seq-len 8192 --dtype bf16
    """
    from shapecalc.adapters.hf_config import hf_model

    shown = {**pop(flags, REPORT_FLAGS), **pop(flags, COST_FLAGS + SIZE_FLAGS)}
    shown.update(pop(flags, CONVENTION_FLAGS))
    try:
        found = with_source_len(hf_model(path, class_name=class_name, allow=allow), source_len)
        shown["dtype"] = config_dtype(found, shown["dtype"])
        model = found.checkpoint_model() if layout == "checkpoint" else found.model()
        shown["weights"] = config_weights(found, shown.get("weights"), allow, layout)
    except ShapecalcError as err:
        hint = "'--class'" if err.field == "class" else "'PATH'"
        raise click.BadParameter(err.message, param_hint=hint) from None
    from shapecalc.adapters.hf_context import config_context

    named, said = config_context(found.config), str(shown.get("seq_len"))
    seq_len = int(said) if said.isascii() and said.isdigit() else None
    if seq_len is not None and named is not None and seq_len > named[0]:
        raise click.BadParameter(  # as fit refuses it
            f"--seq-len {seq_len:,} is past the model's context, {named[0]:,} positions "
            f"({named[1]}): give at most that",
            param_hint="'--seq-len'",
        )
    finish(model, shown, found.reference)
