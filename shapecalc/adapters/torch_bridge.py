"""The PyTorch bridge, by subject: spec -> real module (:mod:`.torch_build`), real module
-> model (:mod:`.torch_read`), and comparing the two (:mod:`.torch_compare`); this module
gathers their public names.

torch is imported only inside these functions; without it they raise
:class:`MissingDependencyError` saying how to install the extra.
"""

from __future__ import annotations

from shapecalc.adapters.torch_build import (
    build,
    build_reference,
    load_torch,
    register_module,
    register_own_step,
)
from shapecalc.adapters.torch_compare import Diff, MismatchError, assert_matches, compare
from shapecalc.adapters.torch_read import LazyModuleError, ModuleModel, from_module, materialize

__all__ = [
    "Diff",
    "LazyModuleError",
    "MismatchError",
    "ModuleModel",
    "assert_matches",
    "build",
    "build_reference",
    "compare",
    "from_module",
    "load_torch",
    "materialize",
    "register_module",
    "register_own_step",
]
