"""The PyTorch bridge: spec -> real module, real module -> model, and comparing the two.

torch is imported only inside these functions; without it they raise
:class:`MissingDependencyError` saying how to install the extra.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import importlib
import math
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from shapecalc.core.declare import Reference
from shapecalc.core.dims import Dim, Expr, dim_str, shape_str
from shapecalc.core.errors import InvalidArgumentError, MissingDependencyError, ShapecalcError, echo
from shapecalc.core.flow import OPAQUE, Add, Multiply, Positions
from shapecalc.core.model import Model
from shapecalc.core.spec import LayerSpec, Param, expand
from shapecalc.core.tree import (
    Block,
    Interleaved,
    Leaf,
    Node,
    Repeat,
    execute,
    find_node,
    groups,
    in_order,
    join_name,
    run_in_order,
    runs,
    split_name,
)
from shapecalc.layers import LAYER_KINDS
from shapecalc.layers.functional import (
    Chunk,
    Pick,
    Rotary,
    ScaledDotProductAttention,
    Select,
    SplitHeads,
)
from shapecalc.layers.transformers import Bias, Conv1D, Experts

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
]


def load_torch() -> Any:
    """The torch module, or :class:`MissingDependencyError` saying how to install it."""
    try:
        import torch
    except ImportError:  # pragma: no cover - exercised in an environment without torch
        raise MissingDependencyError(
            "this needs PyTorch, which is not installed; install it with "
            "pip install 'shapecalc[torch]' (or pip install torch)",
            field="torch",
            rule="PyTorch must be installed",
        ) from None
    return torch


def _concrete(spec: LayerSpec) -> None:
    symbolic = [k for k, v in spec.arguments().items() if isinstance(v, Expr)]
    if symbolic:
        raise InvalidArgumentError(
            f"cannot build {spec}: {', '.join(symbolic)} must be numbers; use "
            "model.evaluate(...) first",
            layer=str(spec),
            field=symbolic[0],
            value=spec.arguments()[symbolic[0]],
            rule="a real module needs concrete sizes",
        )


def _build_layer(spec: LayerSpec, device: str) -> Any:
    torch = load_torch()
    _concrete(spec)
    if type(spec) in _MODULES:  # a layer torch.nn does not have
        return _MODULES[type(spec)](torch, spec, device)
    cls = getattr(torch.nn, spec.kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. dropout with a single recurrent layer
        if spec.stateless():  # nn.Identity, nn.ReLU, ... take no device
            return cls(**spec.arguments())
        try:
            return cls(**spec.arguments(), device=device)
        except (RuntimeError, AssertionError) as err:  # a device this torch cannot use
            raise _device_error(device, err) from None


def _device_error(device: Any, err: Exception) -> InvalidArgumentError:
    why = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return InvalidArgumentError(
        f"cannot build on device {echo(device)}: {why}",
        field="device",
        value=device,
        rule="a device this torch can use: meta (no memory), cpu, ...",
    )


def build(spec_or_model: LayerSpec | Model, device: str = "meta") -> Any:
    """The real ``torch.nn.Module``, on the meta device by default (no memory for weights,
    so a 10-billion-parameter spec builds at once).

    A model becomes a module tree with the model's names (``embedding``, ``lstm``,
    ``head``; ``h.0.attn``), each repeated child its own module, tied parameters shared as
    in the model. Each block's ``forward`` follows the block's declared data flow (the
    flow :func:`shapecalc.analysis.cost.analyze` follows) and returns the last step's
    outputs.
    """
    _spec_or_model(spec_or_model, "build", "spec_or_model")
    torch = load_torch()
    try:
        torch.device(device)
    except (RuntimeError, TypeError, ValueError) as err:
        raise _device_error(device, err) from None
    if isinstance(spec_or_model, LayerSpec):
        return _build_layer(spec_or_model, device)
    model = spec_or_model
    root = _build_node(model.root, device, torch)
    for tied, source in model.ties.items():
        owner, _, name = tied.rpartition(".")
        setattr(root.get_submodule(owner), name, _get_parameter(root, source))
    return root


def _build_node(node: Node, device: str, torch: Any) -> Any:
    if isinstance(node, Leaf):
        return _build_layer(node.spec, device)
    base = node.kind if node.kind in ("Sequential", "ModuleList") else "Module"
    module = _flow_class(torch, base)(node, device)
    for entry in node.children:
        if isinstance(entry, Repeat) and entry.indices() is None:
            raise InvalidArgumentError(
                f"cannot build {node.kind}: the run {entry.part()} has a symbolic count; "
                "use model.evaluate(...) first",
                layer=node.kind,
                field="count",
                value=dim_str(entry.count),
                rule="a real module needs concrete sizes",
            )
    for group in groups(node.children):
        entries = [node.children[i] for i in group]
        if len(entries) > 1:  # runs that take turns: registered in index order, as torch lists
            for index, numbered in in_order(entries):
                module.add_module(str(index), _build_node(numbered.node, device, torch))
            continue
        (entry,) = entries
        if isinstance(entry, Repeat):
            numbers = entry.indices()
            assert numbers is not None
            for index in numbers:
                module.add_module(str(index), _build_node(entry.node, device, torch))
        elif entry.name:
            module.add_module(entry.name, _build_node(entry.node, device, torch))
        else:  # the block's own tensors
            assert isinstance(entry.node, Leaf)
            for p in expand(entry.node.spec.params()):
                data = torch.empty(*p.shape, device=device)
                module.register_parameter(p.name, torch.nn.Parameter(data, p.trainable))
            for b in expand(entry.node.spec.buffers()):
                module.register_buffer(b.name, torch.empty(*b.shape, device=device))
    return module


@functools.cache
def _flow_class(torch: Any, base: str) -> Any:
    """A subclass of ``nn.Module`` (or of ``nn.Sequential`` or ``nn.ModuleList``, so that
    indexing works as there) whose forward follows its block's flow (made once per base,
    when torch is loaded)."""

    class Module(getattr(torch.nn, base)):  # type: ignore[misc]
        def __init__(self, block: Block, device: str) -> None:
            super().__init__()
            self._block = block
            self._device = device

        def forward(self, *inputs: Any) -> Any:
            out = execute(self._block, (), inputs, _TorchRunner(self))
            return out[0] if len(out) == 1 else out

    return Module


class _TorchRunner:
    """Runs a block's flow on tensors (the runner of :func:`shapecalc.core.tree.execute`)."""

    def __init__(self, module: Any) -> None:
        self.module = module

    def node(self, node: Node, parts: tuple[str, ...], values: tuple[Any, ...]) -> tuple[Any, ...]:
        out = self.module.get_submodule(join_name(*parts))(*values)
        return out if isinstance(out, tuple) else (out,)

    def repeat(
        self, run: Repeat, parts: tuple[str, ...], values: tuple[Any, ...]
    ) -> tuple[Any, ...]:
        out = values
        numbers = run.indices()
        assert numbers is not None  # built, so known
        for index in numbers:
            out = self.node(run.node, (*parts, str(index)), out if index == run.start else out[:1])
        return out

    def interleaved(
        self, runs: Interleaved, parts: tuple[str, ...], values: tuple[Any, ...]
    ) -> tuple[Any, ...]:
        return run_in_order(runs, parts, values, self)

    def op(
        self, spec: LayerSpec, parts: tuple[str, ...], values: tuple[Any, ...]
    ) -> tuple[Any, ...]:
        call = _CALLS.get(type(spec))
        if call is not None:  # a function of a forward, not a module
            out = call(load_torch(), spec, *values)
            return out if isinstance(out, tuple) else (out,)
        layer = _build_layer(spec, self.module._device).train(self.module.training)
        out = layer(*values)
        return out if isinstance(out, tuple) else (out,)


# -- what torch.nn lacks: the functions of a forward, and transformers' own layers ----------
def _attention(torch: Any, spec: ScaledDotProductAttention, q: Any, k: Any, v: Any) -> Any:
    """F.scaled_dot_product_attention over (batch, heads, positions, head_dim), the key and
    value heads repeated for grouped queries; the heads' output flat again."""
    d: Any = spec.head_dim  # numbers: the model was built

    def heads(x: Any, n: Any) -> Any:
        x = x if x.dim() >= 4 and x.shape[-1] == d else x.unflatten(-1, (n, d))
        return x.transpose(-3, -2)

    qh, kh, vh = heads(q, spec.num_heads), heads(k, spec.num_kv_heads), heads(v, spec.num_kv_heads)
    groups = int(str(spec.num_heads)) // int(str(spec.num_kv_heads))
    attend = torch.nn.functional.scaled_dot_product_attention
    if groups == 1:
        out = attend(qh, kh, vh, is_causal=spec.causal)
    else:
        try:  # torch >= 2.5: the key and value heads shared, not copied
            out = attend(qh, kh, vh, is_causal=spec.causal, enable_gqa=True)
        except TypeError:
            kh, vh = kh.repeat_interleave(groups, dim=-3), vh.repeat_interleave(groups, dim=-3)
            out = attend(qh, kh, vh, is_causal=spec.causal)
    return out.transpose(-3, -2).flatten(-2)


#: rotary's cos and sin by (positions, rotated numbers, device, dtype): made once and used
#: by every layer, as transformers makes them once per forward
_TABLES: dict[tuple[Any, ...], tuple[Any, Any]] = {}


def _rotary_tables(torch: Any, length: int, turned: int, device: Any, dtype: Any) -> Any:
    key = (length, turned, str(device), dtype)
    if key not in _TABLES:
        if len(_TABLES) > 16:
            _TABLES.clear()
        positions = torch.arange(length, device=device, dtype=torch.float32)
        steps = torch.arange(0, turned, 2, device=device) / turned
        angles = torch.cat([positions[:, None] / 10000**steps] * 2, -1)
        _TABLES[key] = (angles.cos()[:, None, :].to(dtype), angles.sin()[:, None, :].to(dtype))
    return _TABLES[key]


def _rotary(torch: Any, spec: Rotary, x: Any) -> Any:
    """RoPE on the first ``rotated`` numbers of each head, positions along dim -2 of the
    flat input (dim -3 of a split one)."""
    d = spec.head_dim
    split = x.dim() >= 4 and x.shape[-1] == d
    h = x if split else x.unflatten(-1, (spec.num_heads, d))
    turned: Any = d if spec.rotated is None else spec.rotated
    cos, sin = _rotary_tables(torch, h.shape[-3], turned, x.device, x.dtype)
    part, rest = h[..., :turned], h[..., turned:]
    half = turned // 2
    rotated = torch.cat((-part[..., half:], part[..., :half]), -1)
    out = torch.cat((part * cos + rotated * sin, rest), -1)
    return out if split else out.flatten(-2)


def _positions(torch: Any, spec: Positions, x: Any) -> Any:
    length = x.shape[spec.dim]
    if spec.constant:
        return torch.full((1, length), spec.start, dtype=torch.long, device=x.device)
    return torch.arange(spec.start, spec.start + length, device=x.device)[None]


def _bias(torch: Any, spec: Bias, device: str) -> Any:
    class BiasModule(torch.nn.Module):  # type: ignore[misc]
        """A bias of its own: y = x + b."""

        def __init__(self) -> None:
            super().__init__()
            self.bias = torch.nn.Parameter(torch.zeros(spec.features, device=device))

        def forward(self, x: Any) -> Any:
            return x + self.bias

    return BiasModule()


def _conv1d(torch: Any, spec: Conv1D, device: str) -> Any:
    class Conv1DModule(torch.nn.Module):  # type: ignore[misc]
        """transformers' Conv1D: weight (nx, nf), y = x·W + b."""

        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.empty(spec.nx, spec.nf, device=device))
            self.bias = torch.nn.Parameter(torch.zeros(spec.nf, device=device))
            if device != "meta":
                torch.nn.init.normal_(self.weight, std=0.02)

        def forward(self, x: Any) -> Any:
            return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).view(
                *x.shape[:-1], spec.nf
            )

    return Conv1DModule()


def _experts(torch: Any, spec: Experts, device: str) -> Any:
    e: Any = spec.num_experts  # numbers: the model was built
    h: Any = spec.hidden_size
    i: Any = spec.intermediate_size
    functional = torch.nn.functional

    class ExpertsModule(torch.nn.Module):  # type: ignore[misc]
        """The experts, named as the spec's layout names them; each token through its
        top_k experts, weighted by the router's softmax."""

        def __init__(self) -> None:
            super().__init__()
            if spec.layout == "fused":
                self.gate_up_proj = torch.nn.Parameter(torch.empty(e, 2 * i, h, device=device))
                self.down_proj = torch.nn.Parameter(torch.empty(e, h, i, device=device))
            else:
                for n in range(e):
                    expert = torch.nn.Module()
                    for name, (rows, cols) in (("w1", (i, h)), ("w2", (h, i)), ("w3", (i, h))):
                        expert.add_module(
                            name, torch.nn.Linear(cols, rows, bias=False, device=device)
                        )
                    self.add_module(str(n), expert)

        def weights(self, n: int) -> tuple[Any, Any, Any]:
            if spec.layout == "fused":
                gate, up = self.gate_up_proj[n].chunk(2, dim=0)
                return gate, up, self.down_proj[n]
            expert = self.get_submodule(str(n))
            return expert.w1.weight, expert.w3.weight, expert.w2.weight

        def forward(self, x: Any, logits: Any) -> Any:
            flat, scores = x.reshape(-1, h), logits.reshape(-1, e)
            weights, chosen = scores.softmax(-1).topk(spec.top_k, dim=-1)
            out = torch.zeros_like(flat)
            for n in range(e):
                rows, slot = (chosen == n).nonzero(as_tuple=True)
                if rows.numel():
                    gate, up, down = self.weights(n)
                    y = functional.silu(flat[rows] @ gate.T) * (flat[rows] @ up.T)
                    out = out.index_add(0, rows, (y @ down.T) * weights[rows, slot, None])
            return out.view_as(x)

    return ExpertsModule()


#: layers torch.nn lacks: spec class -> its module, made with torch on a device
_MODULES: dict[type, Any] = {Bias: _bias, Conv1D: _conv1d, Experts: _experts}
#: functions of a forward: spec class -> what it does to tensors
_CALLS: dict[type, Any] = {
    Add: lambda torch, spec, *xs: functools.reduce(lambda a, b: a + b, xs),
    Multiply: lambda torch, spec, *xs: functools.reduce(lambda a, b: a * b, xs),
    Positions: _positions,
    ScaledDotProductAttention: _attention,
    Rotary: _rotary,
    SplitHeads: lambda torch, spec, x: x.unflatten(-1, (spec.num_heads, spec.head_dim)),
    Chunk: lambda torch, spec, x: tuple(x.split(list(spec.sizes), dim=-1)),
    Pick: lambda torch, spec, *xs: xs[spec.index],
    Select: lambda torch, spec, x: x.select(spec.dim, spec.index),
}


def _get_parameter(root: Any, name: str) -> Any:
    owner, _, attribute = name.rpartition(".")
    return getattr(root.get_submodule(owner), attribute)


# -- the class of another library -------------------------------------------------------------
def build_reference(reference: Reference, device: str = "meta") -> Any:
    """The model class a configuration names (``transformers.LlamaForCausalLM`` of its
    config), on the meta device by default; :class:`MissingDependencyError` when the
    library is not installed, :class:`InvalidArgumentError` (its field the library) when
    the library refuses the configuration."""
    torch = load_torch()
    try:
        library = importlib.import_module(reference.library)
    except ImportError:
        raise MissingDependencyError(
            f"this needs {reference.library}, which is not installed (pip install "
            f"{reference.library})",
            field=reference.library,
            rule=f"{reference.library} must be installed",
        ) from None
    with contextlib.suppress(AttributeError):  # its configs warn of ids out of a tiny vocabulary
        library.logging.set_verbosity_error()
    try:
        config = getattr(library, reference.config_class)(**reference.config)
        with torch.device(device), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return getattr(library, reference.model)(config, **reference.options)
    except Exception as err:  # the library's own rules, raised in its own error types
        lines = str(err).strip().splitlines()
        why = lines[-1].strip().rstrip(".") if lines else repr(err)
        rule = f"{reference.library} accepts the configuration"
        raise InvalidArgumentError(
            f"{reference.library}' {reference.config_class} refuses this configuration: {why}",
            field=reference.library,
            value=reference.config_class,
            rule=rule,
        ) from None


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


# -- comparing -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Diff:
    """What differs between a spec (or model) and a real module."""

    missing: tuple[tuple[str, tuple[Dim, ...]], ...] = ()
    extra: tuple[tuple[str, tuple[int, ...]], ...] = ()
    mismatched: tuple[tuple[str, tuple[Dim, ...], tuple[int, ...]], ...] = ()
    order: bool = True
    expected_total: Dim = 0
    actual_total: int = 0
    compared: int = field(default=0)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.mismatched) and self.order

    def __bool__(self) -> bool:  # a Diff is truthy when something differs
        return not self.ok

    def lines(self) -> list[str]:
        out = [f"missing in the module: {n} {shape_str(s)}" for n, s in self.missing]
        out += [f"not in the spec: {n} {shape_str(s)}" for n, s in self.extra]
        out += [
            f"shape differs: {n} spec {shape_str(a)} module {shape_str(b)}"
            for n, a, b in self.mismatched
        ]
        if not self.order and not out:
            out.append("the same parameters in another order")
        if self.expected_total != self.actual_total:
            out.append(
                f"count: spec {self.expected_total:,} module {self.actual_total:,} "
                f"({self.actual_total - self.expected_total:+,})"
                if isinstance(self.expected_total, int)
                else f"count: spec {self.expected_total} module {self.actual_total:,}"
            )
        return out

    def __str__(self) -> str:
        if self.ok:
            return f"{self.compared} parameters, names and shapes identical"
        return "; ".join(self.lines())


class MismatchError(ShapecalcError, AssertionError):
    """A module is not what its spec says (raised by :func:`assert_matches`)."""


def _spec_or_model(value: Any, function: str, argument: str) -> None:
    """A layer spec or a Model, else :class:`TypeError` saying which (a torch module given
    where a spec goes: ``from_module`` makes a Model of it)."""
    if isinstance(value, (LayerSpec, Model)):
        return
    hint = ""
    if hasattr(value, "named_parameters") and hasattr(value, "forward"):
        hint = " (a torch module: shapecalc.from_module(module) reads it as a Model)"
    raise TypeError(
        f"{function}: {argument} must be a layer spec or a shapecalc Model, got "
        f"{type(value).__name__}{hint}"
    )


def compare(
    spec: LayerSpec | Model, module: Any, *, names: Mapping[str, str] | None = None
) -> Diff:
    """Names and shapes of ``spec``'s parameters against ``module.named_parameters()``.
    ``names`` maps prefixes of the spec's names to the module's where the module names
    its parts otherwise: ``{"embedding": "encoder", "lstm": "rnn", "head": "decoder"}``
    (the longest prefix that matches a whole part wins)."""
    _spec_or_model(spec, "compare", "spec")
    if not callable(getattr(module, "named_parameters", None)):
        raise TypeError(f"compare: module must be a torch.nn.Module, got {type(module).__name__}")
    model = spec if isinstance(spec, Model) else Model(str(spec), Leaf(spec))
    expected = _renamed(model.named_parameters(), names)
    actual = [(n, _shape(p)) for n, p in module.named_parameters()]
    want, have = dict(expected), dict(actual)
    missing = tuple((n, s) for n, s in expected if n not in have)
    extra = tuple((n, s) for n, s in actual if n not in want)
    mismatched = tuple((n, s, have[n]) for n, s in expected if n in have and have[n] != s)
    same_names = [n for n, _ in expected if n in have] == [n for n, _ in actual if n in want]
    return Diff(
        missing=missing,
        extra=extra,
        mismatched=mismatched,
        order=same_names,
        expected_total=model.total,
        actual_total=sum(int(p.numel()) for p in module.parameters()),
        compared=len(expected),
    )


def _renamed(
    expected: list[tuple[str, tuple[Any, ...]]], names: Mapping[str, str] | None
) -> list[tuple[str, tuple[Any, ...]]]:
    """The spec's names with each prefix of ``names`` replaced (a prefix is whole parts:
    ``lstm`` renames ``lstm.weight_ih_l0``, not ``lstm2.weight``)."""
    if names is None:
        return expected
    if not isinstance(names, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in names.items()
    ):
        raise TypeError("compare: names must be a mapping of str prefixes to str prefixes")
    order = sorted(names, key=len, reverse=True)

    def rename(name: str) -> tuple[str, str | None]:
        for prefix in order:
            if name == prefix or name.startswith(prefix + "."):
                return names[prefix] + name[len(prefix) :], prefix
        return name, None

    renamed = [(rename(n), s) for n, s in expected]
    used = {prefix for (_, prefix), _ in renamed}
    unused = [p for p in names if p not in used]
    if unused:
        first = sorted({n.split(".", 1)[0] for n, _ in expected})[:6]
        raise InvalidArgumentError(
            f"names: {echo(unused[0])} is no prefix of the spec's parameter names "
            f"(they start with {', '.join(first)})",
            field="names",
            value=unused[0],
            rule="each key a prefix of the spec's names",
        )
    return [(name, s) for (name, _), s in renamed]


def assert_matches(
    spec: LayerSpec | Model, module: Any, *, names: Mapping[str, str] | None = None
) -> None:
    """Raise :class:`MismatchError` (an ``AssertionError`` too) listing every difference;
    ``names`` maps the spec's prefixes to the module's, as in :func:`compare`:

        assert_matches(shapecalc.lstm_lm(vocab=33278, hidden=200, layers=2), model,
                       names={"embedding": "encoder", "lstm": "rnn", "head": "decoder"})
    """
    diff = compare(spec, module, names=names)
    if diff:
        what = spec if isinstance(spec, LayerSpec) else spec.name
        raise MismatchError(
            f"{type(module).__name__} does not match {what}: {diff}",
            field="module",
            value=type(module).__name__,
            rule="the module's parameters must be the spec's",
        )
