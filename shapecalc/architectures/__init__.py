"""Whole models, one module per architecture, named after its command.

``lstm.py`` declares ``shapecalc lstm``, ``gpt_neox.py`` would declare ``shapecalc
gpt-neox``: a frozen config dataclass (an :class:`~shapecalc.core.declare.Architecture`)
and the tree it builds, and its library function, whose name starts with the module's
(``lstm_lm``). Modules whose names start with ``_`` hold what several architectures
share. Nothing here imports an architecture until it is asked for, so a command pays only
for its own.

    >>> import shapecalc.architectures as arch
    >>> arch.get("lstm").function
    'lstm_lm'
    >>> "gru" in arch.commands()
    True
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from shapecalc.core.declare import Architecture
from shapecalc.core.errors import InvalidArgumentError, echo

__all__ = ["commands", "function", "get", "gru_lm", "lstm_lm", "rnn_lm"]


def commands() -> list[str]:
    """Every architecture's command, from the module names (no module is imported)."""
    here = os.path.dirname(__file__)
    return sorted(
        name[:-3].replace("_", "-")
        for name in os.listdir(here)
        if name.endswith(".py") and not name.startswith("_")
    )


def get(command: str) -> type[Architecture]:
    """The architecture declared by ``architectures/<command>.py``."""
    if command not in commands():
        raise InvalidArgumentError(
            f"no architecture {echo(command)}; the architectures are {', '.join(commands())}",
            field="architecture",
            value=command,
            rule="an architecture is a module of shapecalc.architectures",
        )
    module = importlib.import_module(f"{__name__}.{command.replace('-', '_')}")
    found = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, Architecture)
        and value.__module__ == module.__name__
        and getattr(value, "command", None) == command
    ]
    if len(found) != 1:
        raise InvalidArgumentError(
            f"{module.__name__} must declare one Architecture with command = {echo(command)}, "
            f"found {len(found)}",
            field="architecture",
            value=command,
            rule="one architecture per module, named after its command",
        )
    return found[0]


def function(name: str) -> Any:
    """The library function ``name`` (``lstm_lm``) from the architecture module whose name
    it starts with, or None."""
    for command in commands():
        module = command.replace("-", "_")
        if name.startswith(module):
            found = getattr(importlib.import_module(f"{__name__}.{module}"), name, None)
            if found is not None:
                return found
    return None


def __getattr__(name: str) -> Any:
    found = function(name) if not name.startswith("_") else None
    if found is None:
        raise AttributeError(f"module {echo(__name__)} has no attribute {echo(name)}")
    return found


if TYPE_CHECKING:
    from shapecalc.architectures.gru import gru_lm
    from shapecalc.architectures.lstm import lstm_lm
    from shapecalc.architectures.rnn import rnn_lm
