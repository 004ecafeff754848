"""The ``shapecalc`` group and its commands, each made when first asked for: one per
architecture (``cli.models``), ``hf`` (a Hugging Face config), ``layer``/``layers``,
``solve``, ``sweep``, ``fit``, ``compare-conventions``, ``port``, ``inspect`` and ``show``
(a model composed in Python), so a command imports only what it runs."""

from __future__ import annotations

import importlib
from collections.abc import Callable

import click

from shapecalc import __version__
from shapecalc.cli.group import ShapecalcGroup, register

__all__ = ["cli"]


@click.group(cls=ShapecalcGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="shapecalc")
def cli() -> None:
    """Which matrices a network has, the exact PyTorch shape of each, how many
    parameters it holds and the formula behind the count."""


def _from(module: str, name: str) -> Callable[[], click.Command]:
    def make() -> click.Command:
        command: click.Command = getattr(importlib.import_module(f"shapecalc.cli.{module}"), name)
        return command

    return make


def _architecture(command: str) -> Callable[[], click.Command]:
    def make() -> click.Command:
        from shapecalc.cli.models import model_command

        return model_command(command)

    return make


for _name, _module in {
    "compare-conventions": "conventions",
    "fit": "fit",
    "hf": "hf",
    "inspect": "inspect",
    "layer": "layers",
    "layers": "layers",
    "port": "port",
    "show": "show",
    "solve": "solve",
    "sweep": "sweep",
    "torchvision": "torchvision",
}.items():
    cli.lazy[_name] = _from(_module, _name.replace("-", "_"))
register(cli, _architecture)
