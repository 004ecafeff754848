"""Options and choices shared by the commands that read a Hugging Face config (``hf``,
``fit hf``, ``sweep hf``), in a module light to import."""

from __future__ import annotations

from typing import Any

import click

__all__ = ["LAYOUT", "SOURCE_LEN", "config_weights", "with_source_len"]

#: ``--layout``: the names of the transformers class, or of the type's checkpoint files
LAYOUT = click.option(
    "--layout",
    type=click.Choice(["transformers", "checkpoint"]),
    default="transformers",
    show_default=True,
    help="Name the tensors as the transformers class holds them, or as the type's checkpoint "
    "files store them (each expert of a mixture by name, gpt-oss's MXFP4 blocks); the same "
    "as transformers where the two agree.",
)


#: ``--source-len``: an encoder-decoder's source length, as its model command takes it
SOURCE_LEN = click.option(
    "--source-len",
    type=int,
    default=None,
    metavar="S",
    help="An encoder-decoder's source tokens per request: the encoder's input length "
    "(it changes no tensor; --seq-len is the decoder's).  [default: T]",
)


def with_source_len(found: Any, source_len: int | None) -> Any:
    """``found`` (an HFModel) with its encoder over ``source_len`` tokens, as ``shapecalc
    t5 --source-len`` builds it; a model with no encoder is refused in one line."""
    import dataclasses

    if source_len is None:
        return found
    names = {f.name for f in dataclasses.fields(found.architecture)}
    if "source_len" not in names:
        raise click.BadParameter(
            f"--source-len {source_len}: {found.class_name} is not an encoder-decoder "
            "(its one sequence is --seq-len)",
            param_hint="'--source-len'",
        )
    if source_len < 1:
        raise click.BadParameter(
            f"--source-len {source_len}: give a whole number of tokens, 1 or more",
            param_hint="'--source-len'",
        )
    architecture = dataclasses.replace(found.architecture, source_len=source_len)
    return dataclasses.replace(found, architecture=architecture)


def config_weights(
    found: Any, given: Any, allow: tuple[str, ...], layout: str = "transformers"
) -> Any:
    """``--weights`` for a config's model: as given (``none``: the model as it is), else
    the config's quantization_config, priced by default (``--allow-field
    quantization_config``: the unquantized model)."""
    from shapecalc.adapters.hf_quant import config_quantization

    if given is not None or "quantization_config" in allow:
        return given
    return config_quantization(found, layout)
