"""What ``shapecalc inspect TARGET`` reads: a checkpoint file or ``package.module:attribute``.

Both become :class:`Entry` rows (name, shape, count, dtype, what) for the tree view.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shapecalc.adapters.checkpoint import Checkpoint, read_checkpoint
from shapecalc.adapters.hub import is_hub_id
from shapecalc.core.errors import InvalidArgumentError, ShapecalcError, echo, field_error
from shapecalc.core.model import Model

if TYPE_CHECKING:
    from shapecalc.adapters.gguf import GGUFFile
    from shapecalc.adapters.gguf_arch import GGUFCheck
    from shapecalc.adapters.hf_checkpoint import FolderCheck

__all__ = ["CHECKPOINT_SUFFIXES", "Entry", "Inspection", "inspect_target", "load_module"]

CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")


@dataclass(slots=True)  # made by the hundred thousand: plain slots, no frozen setattr
class Entry:
    name: str
    shape: tuple[int, ...]
    count: int
    dtype: str | None = None
    nbytes: int | None = None
    tied_to: str | None = None
    kind: str | None = None


@dataclass(frozen=True)
class Inspection:
    target: str
    source: str  # "safetensors", "torch" or "module"
    entries: tuple[Entry, ...]
    model: Model | None = None
    checkpoint: Checkpoint | None = None
    #: a folder with config.json: its weights against the config
    check: FolderCheck | None = None
    #: a folder whose config.json cannot be read as a model: why it is not checked
    unchecked: str | None = None
    #: a GGUF file: its header, and its tensors against the architecture it names (or
    #: why they are not checked: ``gguf_unchecked``, with ``gguf_refused`` when the file
    #: names an architecture shapecalc checks and its metadata does not describe one)
    gguf: GGUFFile | None = None
    gguf_check: GGUFCheck | None = None
    gguf_unchecked: str | None = None
    gguf_refused: bool = False

    @property
    def total(self) -> int:
        return sum(e.count for e in self.entries if not e.tied_to)


def _fail(target: str, message: str) -> ShapecalcError:
    return field_error("target", target, "TARGET is a checkpoint or module:attribute", message)


def _a(noun: str) -> str:
    """``noun`` with its article: a list, an int."""
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def load_module(target: str) -> Any:
    """``package.module:attribute``: an nn.Module, or a function returning one (called with
    no arguments). This imports the user's code, as the user asked."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise _fail(target, f"{echo(target)}: write package.module:attribute")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise _fail(target, f"cannot import {module_name}: {err}") from None
    except Exception as err:  # the user's module failed while importing
        raise _fail(target, f"importing {module_name} raised {type(err).__name__}: {err}") from None
    obj: Any = module
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise _fail(target, f"{module_name} has no attribute {attribute}")
        obj = getattr(obj, part)
    from shapecalc.adapters.torch_bridge import load_torch

    torch = load_torch()
    is_module_class = isinstance(obj, type) and issubclass(obj, torch.nn.Module)
    if not isinstance(obj, torch.nn.Module):
        from shapecalc.core.model import Model

        if isinstance(obj, Model):
            raise _fail(
                target,
                f"{target} is a shapecalc Model, not a torch module: shapecalc show "
                f"{target} prints it with every flag a model command has",
            )
        if not (is_module_class or inspect.isfunction(obj)):
            raise _fail(
                target,
                f"{target} is {_a(type(obj).__name__)}: TARGET names an nn.Module, a Module "
                "class or a Python function returning one (nothing else is called)",
            )
        try:
            obj = obj()
        except (Exception, SystemExit) as err:  # the user's code: any failure is theirs
            said = str(err).splitlines()[0][:200] if str(err) else ""
            raise _fail(target, f"calling {target}() raised {type(err).__name__}: {said}") from None
    if not isinstance(obj, torch.nn.Module):
        raise _fail(target, f"{target} is {_a(type(obj).__name__)}, not a torch.nn.Module")
    return obj


def _entries(checkpoint: Checkpoint) -> tuple[Entry, ...]:
    return tuple(Entry(t.name, t.shape, t.count, t.dtype, t.nbytes) for t in checkpoint.tensors)


def inspect_folder(target: str, allow: tuple[str, ...] = ()) -> Inspection:
    """A checkpoint folder (or a cached Hub id): every shard's tensors, and with a
    config.json beside them, the check of one against the other. A config that cannot be
    read as a model leaves the tensors listed and the reason in ``unchecked``."""
    from shapecalc.adapters.hf_checkpoint import check_folder, read_folder
    from shapecalc.adapters.hub import resolve

    folder = target
    if not os.path.isdir(target):
        folder = resolve(target).folder
    checkpoint, problems = read_folder(folder)
    entries = _entries(checkpoint)
    if not os.path.isfile(os.path.join(folder, "config.json")):
        if problems:
            raise _fail(target, f"{folder}: {problems[0]}")
        return Inspection(target, checkpoint.format, entries, checkpoint=checkpoint)
    try:
        check = check_folder(target, allow)
    except InvalidArgumentError as err:
        return Inspection(
            target, checkpoint.format, entries, checkpoint=checkpoint, unchecked=err.message
        )
    return Inspection(target, checkpoint.format, entries, checkpoint=checkpoint, check=check)


def _is_gguf(target: str) -> bool:
    """Whether a regular file begins with GGUF's magic (a FIFO or a device is never
    opened here: opening one may wait for ever)."""
    if not os.path.isfile(target):
        return False
    try:
        with open(target, "rb") as handle:
            return handle.read(4) == b"GGUF"
    except OSError:
        return False


def inspect_gguf(target: str) -> Inspection:
    """A GGUF file: its tensors (torch's shapes, ggml's types), and a check against the
    architecture its metadata names, where shapecalc builds it."""
    from shapecalc.adapters.gguf import read_gguf
    from shapecalc.adapters.gguf_arch import check_gguf, gguf_types

    file = read_gguf(target)
    checkpoint = file.checkpoint()
    entries = _entries(checkpoint)
    try:
        check = check_gguf(file)
    except InvalidArgumentError as err:
        split = "split.count" in file.metadata and err.rule == "a split GGUF is checked whole"
        refused = file.architecture in gguf_types() and not split
        return Inspection(
            target,
            "gguf",
            entries,
            checkpoint=checkpoint,
            gguf=file,
            gguf_unchecked=err.message,
            gguf_refused=refused,
        )
    return Inspection(target, "gguf", entries, checkpoint=checkpoint, gguf=file, gguf_check=check)


def inspect_target(
    target: str,
    allow: tuple[str, ...] = (),
    input_shapes: tuple[tuple[int, ...], ...] = (),
) -> Inspection:
    """What ``shapecalc inspect TARGET`` shows (``allow``: config fields a folder's check
    counts the model without; ``input_shapes``: a module's lazy layers get their shapes
    from one forward of a copy on zeros of these shapes)."""
    if os.path.isdir(target) or (
        not os.path.exists(target) and ":" not in target and is_hub_id(target)
    ):
        return inspect_folder(target, allow)
    if (target.lower().endswith(".gguf") and os.path.exists(target)) or _is_gguf(target):
        return inspect_gguf(target)
    if target.endswith(CHECKPOINT_SUFFIXES) or os.path.isfile(target):
        checkpoint = read_checkpoint(target)
        return Inspection(target, checkpoint.format, _entries(checkpoint), checkpoint=checkpoint)
    if ":" not in target:
        raise _fail(
            target,
            f"{echo(target)} is neither a file nor package.module:attribute "
            f"(checkpoints end in {', '.join(CHECKPOINT_SUFFIXES)}, GGUF files in .gguf)",
        )
    from shapecalc.adapters.torch_bridge import from_module

    module = load_module(target)
    model = from_module(module, name=target, input_shapes=input_shapes or None)
    kinds = {layer.name: layer.spec.kind for layer in model.layers}
    entries = tuple(
        Entry(
            r.name,
            tuple(d for d in r.shape if isinstance(d, int)),
            r.count if isinstance(r.count, int) else 0,  # a module's sizes are numbers
            tied_to=r.tied_to,
            kind=kinds.get(r.layer),
        )
        for r in model.rows()
    )
    return Inspection(target, "module", entries, model=model)
