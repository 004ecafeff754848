"""Options and choices shared by the commands that read a Hugging Face config (``hf``,
``fit hf``, ``sweep hf``), in a module light to import."""

from __future__ import annotations

from typing import Any

import click

__all__ = ["LAYOUT", "config_weights"]

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
