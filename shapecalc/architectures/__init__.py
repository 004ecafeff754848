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

import functools
import importlib
import os
import re
from typing import TYPE_CHECKING, Any

from shapecalc.core.declare import Architecture
from shapecalc.core.errors import InvalidArgumentError, echo

__all__ = [
    "command_for",
    "commands",
    "function",
    "functions",
    "get",
    "gru_lm",
    "lstm_lm",
    "model_types",
    "rnn_lm",
]

#: how an architecture module declares a Hugging Face model type (``HFType(model_type=
#: "llama", ...)`` or a helper called with ``model_type="mistral"``): read from the source
#: text, so that ``shapecalc hf`` imports only the architecture it needs
_MODEL_TYPE = re.compile(r'\bmodel_type="([A-Za-z0-9_-]+)"')
#: how an architecture names its library function (``function: ClassVar[str] = "llama"``)
_FUNCTION = re.compile(r'^    function: ClassVar\[str\] = "([A-Za-z0-9_]+)"', re.M)


def commands() -> list[str]:
    """Every architecture's command, from the module names (no module is imported)."""
    return list(_commands())


@functools.lru_cache(maxsize=1)
def _commands() -> tuple[str, ...]:
    here = os.path.dirname(__file__)
    return tuple(
        sorted(
            name[:-3].replace("_", "-")
            for name in os.listdir(here)
            if name.endswith(".py") and not name.startswith("_")
        )
    )


@functools.lru_cache(maxsize=1)
def model_types() -> dict[str, str]:
    """Every Hugging Face ``model_type`` an architecture declares -> its command, read
    from the modules' text without importing them (a test holds this to each module's
    ``hf`` declarations)."""
    here = os.path.dirname(__file__)
    out: dict[str, str] = {}
    for command in commands():
        path = os.path.join(here, command.replace("-", "_") + ".py")
        with open(path, encoding="utf-8") as handle:
            for model_type in _MODEL_TYPE.findall(handle.read()):
                out.setdefault(model_type, command)
    return out


@functools.lru_cache(maxsize=1)
def functions() -> tuple[str, ...]:
    """Every architecture's library function name (``lstm_lm``, ``qwen_moe``), read from
    the modules' text without importing them."""
    here = os.path.dirname(__file__)
    out: list[str] = []
    for command in commands():
        path = os.path.join(here, command.replace("-", "_") + ".py")
        with open(path, encoding="utf-8") as handle:
            out += _FUNCTION.findall(handle.read())
    return tuple(sorted(out))


def command_for(model_type: str) -> str | None:
    """The command of the architecture that declares the Hugging Face ``model_type``, as
    :func:`model_types` says it, or None: the modules' text read in the same order, up to
    the first that declares it (``shapecalc hf`` needs one model type, not all)."""
    if model_types.cache_info().currsize:  # every module read already
        return model_types().get(model_type)
    declared = f'model_type="{model_type}"'
    here = os.path.dirname(__file__)
    names = commands()
    # the module named for the type first (no two modules declare one type: a test
    # holds that), then the others in order
    own = model_type.replace("_", "-")
    for command in ([own] if own in names else []) + names:
        path = os.path.join(here, command.replace("-", "_") + ".py")
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        if declared in text and model_type in _MODEL_TYPE.findall(text):
            return command
    return None


@functools.cache
def get(command: str) -> type[Architecture]:
    """The architecture declared by ``architectures/<command>.py``."""
    if command not in _commands():
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
