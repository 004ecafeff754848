"""Layer specs, one module per family. The families load on first use: importing this
package costs nothing, and :func:`load_all` (which reading ``LAYER_KINDS`` calls) imports
every family so that the registry is complete. Import a kind from its family
(``shapecalc.layers.conv.Conv2d``), or by its torch name from here or from ``shapecalc``."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Any

from shapecalc.core.errors import echo
from shapecalc.core.spec import REGISTERED, LayerSpec

#: the family modules, one docs page each; each registers its kinds when imported
FAMILY_MODULES = (
    "recurrent",
    "linear",
    "embedding",
    "conv",
    "norm",
    "attention",
    "activation",
    "pooling",
)

__all__ = ["FAMILY_MODULES", "LAYER_KINDS", "load_all"]


def load_all() -> None:
    """Import every family module (each registers its kinds)."""
    for module in FAMILY_MODULES:
        importlib.import_module(f"shapecalc.layers.{module}")


class _Registry(Mapping[str, "type[LayerSpec]"]):
    """Every layer kind by its torch.nn class name. Reading it loads every family module
    first (they load lazily); registering (``shapecalc.core.spec.register``) does not."""

    def __init__(self) -> None:
        self._complete = False

    def _all(self) -> dict[str, type[LayerSpec]]:
        if not self._complete:
            self._complete = True
            load_all()
        return REGISTERED

    def __getitem__(self, kind: str) -> type[LayerSpec]:
        return self._all()[kind]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __contains__(self, kind: object) -> bool:
        return kind in self._all()


#: every registered layer kind by its torch.nn class name
LAYER_KINDS = _Registry()


def __getattr__(name: str) -> Any:
    """A layer kind by its torch name (``shapecalc.layers.Conv2d``), every family loaded."""
    if name in LAYER_KINDS:
        return LAYER_KINDS[name]
    raise AttributeError(f"module 'shapecalc.layers' has no attribute {echo(name)}")
