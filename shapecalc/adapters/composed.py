"""A model composed in a Python file of one's own, for ``shapecalc show FILE.py:NAME``:
the file is run (as the user asked), and NAME is a shapecalc Model, a Block or a layer
spec, or a function returning one (called with no arguments). torch is not needed."""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import inspect
import os
import sys
from typing import Any

from shapecalc.core.errors import ShapecalcError, echo, field_error
from shapecalc.core.model import Model, layer_model
from shapecalc.core.spec import LayerSpec
from shapecalc.core.tree import Block, Leaf

__all__ = ["load_model"]

RULE = "TARGET is FILE.py:NAME or package.module:NAME naming a shapecalc Model"


def _fail(target: str, message: str) -> ShapecalcError:
    return field_error("target", target, RULE, message)


def _module(target: str, where: str) -> Any:
    """The module of ``where``: a .py file run under a name of its own, or an importable
    module (the current directory first on the path)."""
    if where.endswith(".py"):
        if not os.path.isfile(where):
            raise _fail(target, f"{echo(where)}: no such file")
        name = "_shapecalc_composed_" + "".join(c if c.isalnum() else "_" for c in where)
        spec = importlib.util.spec_from_file_location(name, where)
        if spec is None or spec.loader is None:
            raise _fail(target, f"{echo(where)}: not a Python file that can be run")
        module = importlib.util.module_from_spec(spec)
        folder = os.path.dirname(os.path.abspath(where))
        added = folder not in sys.path
        if added:  # the file's own imports of its neighbours, as python FILE.py finds them
            sys.path.insert(0, folder)
        try:
            spec.loader.exec_module(module)
        except (Exception, SystemExit) as err:  # the user's code: any failure is theirs
            said = str(err).splitlines()[0][:200] if str(err) else ""
            raise _fail(target, f"running {where} raised {type(err).__name__}: {said}") from None
        finally:
            if added:
                sys.path.remove(folder)
        return module
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(where)
    except ImportError as err:
        raise _fail(target, f"cannot import {where}: {err}") from None
    except (Exception, SystemExit) as err:
        said = str(err).splitlines()[0][:200] if str(err) else ""
        raise _fail(target, f"importing {where} raised {type(err).__name__}: {said}") from None


def _models_in(module: Any) -> list[str]:
    """The names in ``module`` that could be a target: models, blocks, and functions."""
    return sorted(
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (isinstance(value, (Model, Block)) or inspect.isfunction(value))
    )


def load_model(target: str) -> Model:
    """The model ``FILE.py:NAME`` (or ``package.module:NAME``) names. A Block becomes a
    model named NAME, a layer spec a model of one layer; a function is called with no
    arguments and its result taken the same way."""
    where, _, attribute = target.rpartition(":")
    if not where or not attribute:
        raise _fail(target, f"{echo(target)}: write FILE.py:NAME (a Model in the file)")
    module = _module(target, where)
    obj: Any = module
    for part in attribute.split("."):
        if not hasattr(obj, part):
            names = _models_in(module)
            close = difflib.get_close_matches(part, names, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            listed = f" (it holds: {', '.join(names[:8])})" if names and not close else ""
            raise _fail(target, f"{where} has no {echo(attribute)}{hint}{listed}")
        obj = getattr(obj, part)
    if inspect.isfunction(obj):
        try:
            obj = obj()
        except (Exception, SystemExit) as err:
            said = str(err).splitlines()[0][:200] if str(err) else ""
            raise _fail(
                target, f"calling {attribute}() raised {type(err).__name__}: {said}"
            ) from None
    if isinstance(obj, Model):
        return obj
    if isinstance(obj, (Block, Leaf)):
        return Model(attribute, obj)
    if isinstance(obj, LayerSpec):
        return layer_model(obj)
    kind = type(obj).__name__
    hint = ""
    if hasattr(obj, "named_parameters") and hasattr(obj, "forward"):
        hint = ": a torch module, which shapecalc inspect reads"
    raise _fail(target, f"{target} is a {kind}, not a shapecalc Model, Block or layer spec{hint}")
