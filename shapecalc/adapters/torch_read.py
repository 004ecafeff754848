"""Torch module -> model: :func:`from_module` reads a real module back into a model tree
(known layers as their specs, numbered children as runs), :func:`materialize` runs a lazy
module once to give it its shapes.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from shapecalc.adapters.torch_build import load_torch
from shapecalc.core.dims import shape_str
from shapecalc.core.errors import InvalidArgumentError, ShapecalcError, echo, expect, printable
from shapecalc.core.flow import OPAQUE
from shapecalc.core.model import Model
from shapecalc.core.spec import LayerSpec, Param, expand
from shapecalc.core.tree import (
    Block,
    Leaf,
    Node,
    find_node,
    join_name,
    runs,
    split_name,
)
from shapecalc.layers import LAYER_KINDS


# -- module -> model -------------------------------------------------------------------------
@dataclass(frozen=True)
class ModuleSpec(LayerSpec):
    """A module shapecalc has no spec for: its own parameters and buffers, as they are."""

    class_name: str
    own_params: tuple[Param, ...] = ()
    own_buffers: tuple[Param, ...] = ()

    kind: ClassVar[str] = "module"
    family: ClassVar[str] = "module"

    def params(self) -> Iterator[Param]:
        return iter(self.own_params)

    def buffers(self) -> Iterator[Param]:
        return iter(self.own_buffers)

    def __str__(self) -> str:
        return self.class_name


def _shape(tensor: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in tensor.shape)


def _raw(module: Any, skip: set[str] | frozenset[str] = frozenset()) -> ModuleSpec:
    """A module's own tensors, as they are; ``skip``: buffers listed before, in another
    module (one tensor registered twice, which ``named_buffers()`` lists once)."""
    params = tuple(
        Param(n, _shape(p), f"{type(module).__name__} parameter", trainable=p.requires_grad)
        for n, p in module.named_parameters(recurse=False, remove_duplicate=False)
    )
    buffers = tuple(
        Param(n, _shape(b), f"{type(module).__name__} buffer", trainable=False)
        for n, b in module.named_buffers(recurse=False)
        if n not in skip
    )
    return ModuleSpec(type(module).__name__, params, buffers)


def _activation_name(function: Any) -> str:
    torch = load_torch()
    functional = torch.nn.functional
    if function is functional.relu or isinstance(function, torch.nn.ReLU):
        return "relu"
    if function is functional.gelu or isinstance(function, torch.nn.GELU):
        return "gelu"
    raise ValueError("an activation other than relu or gelu")


def _transformer_arguments(module: Any) -> dict[str, Any]:
    activation = _activation_name(module.activation)
    return {
        "d_model": module.self_attn.embed_dim,
        "nhead": module.self_attn.num_heads,
        "dim_feedforward": module.linear1.out_features,
        "dropout": float(module.dropout.p),
        "activation": activation,
        "layer_norm_eps": module.norm1.eps,
        "batch_first": bool(module.self_attn.batch_first),
        "norm_first": bool(module.norm_first),
        "bias": module.linear1.bias is not None,
    }


def _arguments(cls: type[LayerSpec], module: Any) -> dict[str, Any]:
    """The constructor arguments a torch module was built with, read from its attributes."""
    if cls.kind.startswith("Transformer"):
        return _transformer_arguments(module)
    if cls.kind == "MultiheadAttention":
        return {
            "embed_dim": module.embed_dim,
            "num_heads": module.num_heads,
            "dropout": float(module.dropout),
            "bias": module.in_proj_bias is not None,
            "add_bias_kv": module.bias_k is not None,
            "add_zero_attn": bool(module.add_zero_attn),
            "kdim": module.kdim,
            "vdim": module.vdim,
            "batch_first": bool(module.batch_first),
        }
    torch = load_torch()
    arguments: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if not hasattr(module, f.name):
            continue  # not stored (PReLU's init): the default stands
        value = getattr(module, f.name)
        if f.name == "bias" and (value is None or isinstance(value, torch.Tensor)):
            # a bias parameter (or None); norms without affine parameters keep the default
            if not getattr(module, "affine", getattr(module, "elementwise_affine", True)):
                continue
            value = value is not None
        if isinstance(value, torch.Tensor):
            continue
        arguments[f.name] = value
    return arguments


def _known_spec(module: Any) -> LayerSpec | None:
    """The spec of a plain torch.nn layer, checked against the module's own tensors."""
    torch = load_torch()
    name = type(module).__name__
    if name not in LAYER_KINDS or type(module) is not getattr(torch.nn, name, None):
        return None  # unknown, or a subclass that may add tensors
    cls = LAYER_KINDS[name]
    try:
        spec = cls(**_arguments(cls, module))
    except (ShapecalcError, ValueError, TypeError):
        return None
    ours = [(p.name, p.shape) for p in expand(spec.params())]
    theirs = [(n, _shape(p)) for n, p in module.named_parameters(remove_duplicate=False)]
    buffers = [(b.name, b.shape) for b in spec.buffers()]
    their_buffers = [(n, _shape(b)) for n, b in module.named_buffers()]
    return spec if ours == theirs and buffers == their_buffers else None


class LazyModuleError(InvalidArgumentError):
    """A module with a tensor that has no shape yet (a lazy module before its first
    forward): ``tensor`` names it, ``kind`` is the class of the module that owns it."""

    def __init__(self, message: str, *, tensor: str = "", kind: str = "", **context: Any) -> None:
        self.tensor = tensor
        self.kind = kind
        super().__init__(message, **context)


@dataclass(frozen=True)
class ModuleModel(Model):
    """The model :func:`from_module` reads: a :class:`Model` that also says which modules
    torch finds at more than one place (one instance used twice), listed once."""

    #: the path a shared module is listed under -> the other paths it is used at, as
    #: ``named_modules(remove_duplicate=False)`` names them (``{"0": ("2",)}``)
    reused: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


#: the most numbers the inputs of a forward on the CPU may hold (the meta device has no cap)
MAX_CPU_INPUT = 100_000_000
#: the most numbers one input may hold, on any device
MAX_NUMEL = 2**62


def _input_shapes(shapes: Any) -> tuple[tuple[int, ...], ...]:
    """``input_shapes`` checked: a sequence of shapes, each a sequence of integers >= 1."""
    rule = "input_shapes is a list of shapes, each a tuple of integers >= 1, as [(2, 3, 32, 32)]"

    def bad(why: str) -> InvalidArgumentError:
        return InvalidArgumentError(
            f"input_shapes {echo(shapes)}: {why}", field="input_shapes", value=shapes, rule=rule
        )

    if isinstance(shapes, (str, bytes)) or not isinstance(shapes, (list, tuple)) or not shapes:
        raise bad("give one shape per input of the forward, as [(2, 3, 32, 32)]")
    out: list[tuple[int, ...]] = []
    for shape in shapes:
        if isinstance(shape, (str, bytes)) or not isinstance(shape, (list, tuple)):
            raise bad(f"{echo(shape)} is not a shape (a tuple of integers)")
        for size in shape:
            if isinstance(size, bool) or not isinstance(size, int) or size < 1:
                raise bad(f"the size {echo(size)} is not an integer >= 1")
        if math.prod(shape) > MAX_NUMEL:
            raise bad(f"{shape_str(tuple(shape))} holds more numbers than a tensor can (2^62)")
        out.append(tuple(shape))
    return tuple(out)


def _copy(module: Any, torch: Any, device: str) -> Any:
    """A deep copy of ``module`` to run a forward on ``device``: lazy tensors made afresh
    there (torch refuses to copy them); on the meta device every other tensor too, so
    that the copy takes no memory for weights; on the CPU the others copied as they are."""
    nn = torch.nn
    memo: dict[int, Any] = {}
    params = {id(p) for p in module.parameters()}
    for tensor in (*module.parameters(), *module.buffers()):
        if isinstance(tensor, nn.parameter.UninitializedParameter):
            twin = nn.parameter.UninitializedParameter(
                tensor.requires_grad, device=device, dtype=tensor.dtype
            )
        elif isinstance(tensor, nn.parameter.UninitializedBuffer):
            twin = nn.parameter.UninitializedBuffer(False, device=device, dtype=tensor.dtype)
        elif device != "meta":
            continue
        else:
            try:
                data = torch.empty_like(tensor, device="meta")
            except (RuntimeError, TypeError, NotImplementedError):
                continue  # a tensor the meta device cannot hold: copied as it is
            twin = nn.Parameter(data, tensor.requires_grad) if id(tensor) in params else data
        memo[id(tensor)] = twin
    return copy.deepcopy(module, memo)


def _first_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= 200 else text[:199] + "…"


def materialize(module: Any, input_shapes: Any) -> Any:
    """A copy of ``module`` whose lazy tensors (``nn.LazyLinear``, ``nn.LazyConv2d``) have
    their shapes: deep-copied and run forward once on zeros of ``input_shapes`` (one shape
    per input), on the meta device (no memory for weights or activations), else on the
    CPU. Float inputs are tried first, then integer ones (token ids). ``module`` itself
    is left as it was."""
    torch = load_torch()
    shapes = _input_shapes(input_shapes)
    _require_module(torch, module, "materialize")
    numbers = sum(math.prod(shape) for shape in shapes)
    devices = ("meta", "cpu") if numbers <= MAX_CPU_INPUT else ("meta",)
    failures: dict[str, str] = {}
    for device in devices:
        for dtype in (torch.float32, torch.long):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # lazy modules warn they are new
                    copied = _copy(module, torch, device)
            except Exception as err:  # the user's module: anything that cannot be copied
                raise InvalidArgumentError(
                    f"cannot copy {type(module).__name__} to run its forward: "
                    f"{type(err).__name__}: {_first_line(err)}",
                    field="module",
                    value=type(module).__name__,
                    rule="a module with lazy tensors is copied (copy.deepcopy) to run a forward",
                ) from None
            try:
                inputs = [torch.zeros(shape, dtype=dtype, device=device) for shape in shapes]
                with torch.no_grad(), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    copied.eval()(*inputs)
            except (Exception, SystemExit) as err:  # the user's forward: any failure is theirs
                failures.setdefault(device, f"{type(err).__name__}: {_first_line(err)}")
                continue
            return copied
    where = "on the meta device and on the CPU" if len(devices) == 2 else "on the meta device"
    said = failures.get("cpu", failures["meta"])
    shown = ", ".join(shape_str(s) for s in shapes)
    raise InvalidArgumentError(
        f"one forward of {type(module).__name__} on zeros of shape {shown} failed {where}: {said}",
        field="input_shapes",
        value=shapes,
        rule="the module's forward takes inputs of these shapes",
    )


def _lazy_error(module: Any, torch: Any, input_shapes: Any) -> LazyModuleError | None:
    """The first tensor without a shape, with what to do about it; None when there is none."""
    lazy = torch.nn.parameter.UninitializedTensorMixin
    for owner_name, owner in module.named_modules():
        tensors = (*owner.named_parameters(recurse=False), *owner.named_buffers(recurse=False))
        for tensor_name, tensor in tensors:
            if not isinstance(tensor, lazy):
                continue
            name = join_name(owner_name, tensor_name)
            kind = type(owner).__name__
            if input_shapes is None:
                message = (
                    f"{name} ({kind}) is not initialized: a lazy module has no shape until its "
                    "first forward; give input_shapes to run one on a copy, on the meta device, "
                    "or run one yourself first"
                )
            else:
                shown = ", ".join(shape_str(s) for s in input_shapes)
                message = (
                    f"{name} ({kind}) is still not initialized after one forward on inputs of "
                    f"shape {shown}: the forward never reached it"
                )
            return LazyModuleError(
                message,
                tensor=name,
                kind=kind,
                field="module" if input_shapes is None else "input_shapes",
                value=name,
                rule="every tensor has its shape",
            )
    return None


@dataclass
class _Walk:
    """One module tree walked as ``named_parameters()`` walks it: each module once (under
    its first path; the paths it is found at again collected), each tensor once."""

    order: dict[int, str] = field(default_factory=dict)  # module id -> its first path
    reused: dict[str, list[str]] = field(default_factory=dict)
    ties: dict[str, str] = field(default_factory=dict)  # tied name -> first name
    repeated_buffers: dict[int, set[str]] = field(default_factory=dict)  # module id -> names

    def run(self, module: Any) -> None:
        first: dict[int, str] = {}
        seen_buffers: set[int] = set()
        stack: list[tuple[str, Any]] = [("", module)]
        while stack:
            prefix, current = stack.pop()
            if id(current) in self.order:
                self.reused.setdefault(self.order[id(current)], []).append(prefix)
                continue
            self.order[id(current)] = prefix
            inside = f"{prefix}." if prefix else ""
            for name, param in current._parameters.items():
                if param is None:
                    continue
                if id(param) in first:
                    self.ties[inside + name] = first[id(param)]
                else:
                    first[id(param)] = inside + name
            for name, buffer in current._buffers.items():
                if buffer is None:
                    continue
                if id(buffer) in seen_buffers:
                    self.repeated_buffers.setdefault(id(current), set()).add(name)
                seen_buffers.add(id(buffer))
            children = [(n, c) for n, c in current._modules.items() if c is not None]
            stack.extend((inside + n, c) for n, c in reversed(children))


def _reuse_note(kind: str, path: str, others: tuple[str, ...]) -> str:
    places = " and ".join([", ".join(others[:-1]), others[-1]] if len(others) > 1 else others)
    return (
        f"{path} ({kind}) is also used as {places}: one module at {len(others) + 1} places, "
        f"listed and counted once, under {path}, as torch's named_parameters() lists it"
    )


def _require_module(torch: Any, module: Any, function: str) -> None:
    """Refuse anything but a torch.nn.Module, naming the function."""
    if not isinstance(module, torch.nn.Module):
        raise InvalidArgumentError(
            f"expected a torch.nn.Module, got {type(module).__name__}",
            field="module",
            value=type(module).__name__,
            rule=f"{function} takes an nn.Module",
        )
    check_module_tree(module, function)


#: the deepest module tree read: torch's own walks (named_modules, named_parameters)
#: recurse a level a frame, and Python's recursion limit is 1,000 frames
MAX_MODULE_DEPTH = 200


def check_module_tree(module: Any, function: str) -> None:
    """Walk ``module``'s submodules without recursion (each once, by identity): refused in
    words when they nest deeper than :data:`MAX_MODULE_DEPTH`, or when a module's
    ``_parameters`` or ``_buffers`` holds something that is not a tensor."""
    seen: set[int] = set()
    stack: list[tuple[str, Any, int]] = [("", module, 0)]
    while stack:
        prefix, current, depth = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if depth > MAX_MODULE_DEPTH:
            rule = f"modules nested at most {MAX_MODULE_DEPTH} deep"
            raise InvalidArgumentError(
                f"{function}: the module's submodules nest more than {MAX_MODULE_DEPTH} deep "
                "(torch's own named_parameters() recurses a level a call)",
                field="module",
                value=type(module).__name__,
                rule=rule,
            )
        for store in ("_parameters", "_buffers"):
            held = getattr(current, store, None)
            for key, value in held.items() if isinstance(held, dict) else ():
                if value is not None and not callable(getattr(value, "numel", None)):
                    where = printable(f"{prefix}{key}")[:120]
                    raise InvalidArgumentError(
                        f"{function}: {where} in the module's {store} is "
                        f"{_a(type(value).__name__)}, not a tensor",
                        field="module",
                        value=type(value).__name__,
                        rule=f"{store} hold tensors",
                    )
        children = getattr(current, "_modules", None)
        for key, child in children.items() if isinstance(children, dict) else ():
            if child is not None:
                stack.append((f"{prefix}{key}.", child, depth + 1))


def _a(noun: str) -> str:
    return ("an " if noun[:1].lower() in "aeiou" else "a ") + noun


def _numbered_runs(children: list[tuple[str, Node]]) -> tuple[Any, ...]:
    """A module's children, each stretch numbered 0, 1, 2, ... (a ``ModuleList``, a
    ``Sequential``) as its fewest runs: equal layers once, differing ones as runs that
    take turns (:func:`~shapecalc.core.tree.runs`)."""
    out: list[Any] = []
    i = 0
    while i < len(children):
        j = i
        if children[i][0].isdigit():
            while (
                j + 1 < len(children)
                and children[j + 1][0].isdigit()
                and int(children[j + 1][0]) == int(children[j][0]) + 1
            ):
                j += 1
        if j > i:
            out.extend(runs([n for _, n in children[i : j + 1]], start=int(children[i][0])))
        else:
            out.append(children[i])
        i = j + 1
    return tuple(out)


def from_module(module: Any, name: str | None = None, *, input_shapes: Any = None) -> ModuleModel:
    """A shapecalc model of any ``nn.Module``: known torch.nn layers become their specs
    (formulas and roles included), other modules list their own parameters and buffers,
    shared tensors (tied weights) are found by identity and counted once, and the tree
    keeps the module's names (``encoder.layers.3.self_attn``). A module used at several
    places (``nn.Sequential(lin, nn.ReLU(), lin)``) is listed once, under its first path,
    and :attr:`ModuleModel.reused` says where else it is used: the names and the total are
    those of torch's ``named_parameters()``. Its forward is code shapecalc does not read,
    so its blocks' flows are opaque: names and counts, no shapes.

    A lazy module (``nn.LazyLinear``) has no shapes until its first forward: with
    ``input_shapes`` (one shape per input, ``[(2, 3, 32, 32)]``) a copy is run once, see
    :func:`materialize`; without, :class:`LazyModuleError` says so."""
    if name is not None:
        expect(name, str, function="from_module", argument="name", what="a str or None")
    torch = load_torch()
    _require_module(torch, module, "from_module")
    notes: list[str] = []
    shapes = None
    if input_shapes is not None:
        shapes = _input_shapes(input_shapes)
        if _lazy_error(module, torch, None) is not None:
            module = materialize(module, shapes)
            notes.append(
                "lazy shapes from one forward of a copy on zeros of shape "
                + ", ".join(shape_str(s) for s in shapes)
            )
    lazy = _lazy_error(module, torch, shapes)
    if lazy is not None:
        raise lazy
    walk = _Walk()
    walk.run(module)
    ties = walk.ties
    shared = {name for pair in ties.items() for name in pair}

    def visit(prefix: str, current: Any) -> Node | None:
        if walk.order.get(id(current)) != prefix:
            return None  # a module listed before, under its first path
        repeated = walk.repeated_buffers.get(id(current), set())
        known = None if repeated else _known_spec(current)
        inside = f"{prefix}." if prefix else ""
        if (
            known is not None
            and any(p.layers for p in known.params())
            and any(name.startswith(inside) for name in shared)
        ):
            known = None  # a tie inside a block of identical layers: list them one by one
        if known is not None:
            return Leaf(known, type(known).summary)
        raw = _raw(current, repeated)
        children: list[tuple[str, Node]] = []
        if raw.own_params or raw.own_buffers:
            children.append(("", Leaf(raw, f"{raw.class_name} (its own tensors)")))
        for child_name, child in current._modules.items():
            node = None if child is None else visit(f"{inside}{child_name}", child)
            if node is not None:
                children.append((child_name, node))
        if not children:
            return None
        if len(children) == 1 and not children[0][0]:
            return children[0][1]  # a module with tensors of its own only
        return Block(type(current).__name__, _numbered_runs(children), flow=OPAQUE)

    root = visit("", module)
    root = root if root is not None else Block(type(module).__name__, (), flow=OPAQUE)
    reused: dict[str, tuple[str, ...]] = {}
    for path, others in walk.reused.items():
        if find_node(root, split_name(path)) is not None:  # it holds tensors
            reused[path] = tuple(others)
            kind = type(module.get_submodule(path)).__name__
            notes.append(_reuse_note(kind, path, tuple(others)))
    return ModuleModel(
        name=name or type(module).__name__,
        root=root,
        ties=ties,
        notes=tuple(notes),
        reused=reused,
    )
