"""Spec -> torch module: :func:`build` makes the real ``torch.nn`` module of a layer spec
or a model (named as ``named_parameters()`` names it, its forward following the tree's
flow), and :func:`build_reference` the class of another library a configuration names.

torch is imported only inside these functions; without it they raise
:class:`MissingDependencyError` saying how to install the extra.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import math
import warnings
from typing import Any

from shapecalc.core.declare import Reference
from shapecalc.core.dims import Expr, dim_str
from shapecalc.core.errors import InvalidArgumentError, MissingDependencyError, echo
from shapecalc.core.flow import Add, Multiply, Positions
from shapecalc.core.model import Model
from shapecalc.core.own import Buffer, Own, Parameter
from shapecalc.core.spec import LayerSpec, expand
from shapecalc.core.tree import (
    Block,
    Interleaved,
    Leaf,
    Node,
    Repeat,
    execute,
    groups,
    in_order,
    join_name,
    run_in_order,
)
from shapecalc.layers._norm import LlamaRMSNorm
from shapecalc.layers.functional import (
    Chunk,
    Pick,
    Rotary,
    ScaledDotProductAttention,
    Select,
    SplitHeads,
)
from shapecalc.layers.latent import LatentAttention
from shapecalc.layers.linear_attention import GatedAttention, GatedDeltaNet, SplitQueryGate
from shapecalc.layers.mamba import MambaMixer
from shapecalc.layers.mamba2 import CausalConv1d, GatedRMSNorm, Mamba2Scan, Take
from shapecalc.layers.norm import LayerNorm
from shapecalc.layers.tensors import (
    Cat,
    Contiguous,
    Expand,
    MatMul,
    Mean,
    Permute,
    Reshape,
    Split,
    Tile,
    Transpose,
    Unflatten,
)
from shapecalc.layers.transformers import (
    EXPERT_NAMES,
    MXFP4_BLOCK,
    Bias,
    Conv1D,
    Experts,
    Gemma3RMSNorm,
    GptOssExperts,
    SinkAttention,
    Sinks,
    TopkRouter,
)
from shapecalc.layers.vision import (
    CPB_HIDDEN,
    LayerNorm2d,
    PatchMerging,
    PatchMergingV2,
    QuickGELU,
    ShiftedWindowAttention,
    ShiftedWindowAttentionV2,
    StochasticDepth,
)


def load_torch() -> Any:
    """The torch module, or :class:`MissingDependencyError` saying how to install it."""
    try:
        import torch
    except ImportError:  # pragma: no cover - exercised in an environment without torch
        raise MissingDependencyError(
            "this needs PyTorch, which is not installed; install it with "
            "pip install 'shapecalc[torch]' (for the CPU build, first pip install torch "
            "--index-url https://download.pytorch.org/whl/cpu)",
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
    if type(spec) in _CALLS:  # a function of a forward, as a module (torchvision's Permute)
        return _function_module(torch)(spec)
    if isinstance(spec, Own):  # a tensor alone
        return _own_tensor(torch, spec, device)
    cls = getattr(torch.nn, spec.kind, None)
    if not isinstance(cls, type) or not issubclass(cls, torch.nn.Module):
        rule = "a spec torch.nn lacks has a module registered for it"
        raise InvalidArgumentError(
            f"cannot build {spec}: torch.nn has no {spec.kind}; register the module that "
            f"builds it with shapecalc.register_module({type(spec).__name__}, make)",
            layer=str(spec),
            field="kind",
            value=spec.kind,
            rule=rule,
        )
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
        elif isinstance(entry.node, Leaf) and isinstance(entry.node.spec, Own):
            tensor = _own_tensor(torch, entry.node.spec, device)
            if isinstance(entry.node.spec, Buffer):
                module.register_buffer(entry.name, tensor, entry.node.spec.persistent)
            else:
                module.register_parameter(entry.name, tensor)
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


def _own_tensor(torch: Any, spec: Own, device: str) -> Any:
    """A Parameter's ``nn.Parameter`` or a Buffer's tensor, uninitialised."""
    if isinstance(spec, Buffer):
        dtype = getattr(torch, spec.dtype) if spec.dtype else None
        return torch.empty(tuple(spec.dims), device=device, dtype=dtype)
    assert isinstance(spec, Parameter)
    data = torch.empty(tuple(spec.dims), device=device)
    return torch.nn.Parameter(data, spec.requires_grad)


@functools.cache
def _function_module(torch: Any) -> Any:
    """A module whose forward is a function of a forward (torchvision's ``Permute``, a
    module around ``torch.permute``): so that such a spec may be a child too."""

    class Function(torch.nn.Module):  # type: ignore[misc]
        def __init__(self, spec: LayerSpec) -> None:
            super().__init__()
            self._spec = spec

        def forward(self, *inputs: Any) -> Any:
            return _CALLS[type(self._spec)](load_torch(), self._spec, *inputs)

        def extra_repr(self) -> str:
            return str(self._spec)

    return Function


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
        if isinstance(node, Leaf) and not parts:  # the block's own tensors, as a step
            run = _OWN.get(type(node.spec))
            if run is None:
                rule = "own tensors used as a step have a torch forward registered"
                raise InvalidArgumentError(
                    f"cannot run {node.spec} as a step of its block's flow: register its "
                    f"forward with shapecalc.register_own_step({type(node.spec).__name__}, run)",
                    layer=str(node.spec),
                    field="flow",
                    value="",
                    rule=rule,
                )
            out = run(load_torch(), node.spec, self.module, *values)
            return out if isinstance(out, tuple) else (out,)
        if isinstance(node, Leaf) and isinstance(node.spec, Own):  # a tensor it holds
            return (self.module.get_submodule(join_name(*parts[:-1])).__getattr__(parts[-1]),)
        out = self.module.get_submodule(join_name(*parts))(*values)
        return out if isinstance(out, tuple) else (out,)

    def repeat(
        self, run: Repeat, parts: tuple[str, ...], values: tuple[Any, ...]
    ) -> tuple[Any, ...]:
        out = values
        numbers = run.indices()
        assert numbers is not None  # built, so known
        for index in numbers:
            out = self.node(run.node, (*parts, str(index)), run.given(index, values, out))
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


def _latent_attention(torch: Any, spec: LatentAttention, q: Any, kv: Any, rope: Any) -> Any:
    """Multi-head latent attention as transformers' eager forward computes it: each head's
    query and key joined from a no-position part and a rotated part (the key's shared by
    every head), q·kᵀ scaled and masked, softmax, weights·v; the heads' output flat."""
    a: Any = spec.num_heads  # numbers: the model was built
    nope: Any = spec.nope_dim
    turned: Any = spec.rope_dim
    length, source = q.shape[-2], kv.shape[-2]
    qh = q.unflatten(-1, (a, -1)).transpose(-3, -2)
    kvh = kv.unflatten(-1, (a, -1)).transpose(-3, -2)
    q_nope, q_rope = qh.split([nope, turned], dim=-1)
    k_nope, value = kvh.split([nope, kvh.shape[-1] - nope], dim=-1)
    cos, sin = _rotary_tables(torch, length, turned, q.device, q.dtype)
    cos, sin = cos[:, 0, :], sin[:, 0, :]
    half = turned // 2

    def turn(x: Any) -> Any:
        return x * cos + torch.cat((-x[..., half:], x[..., :half]), -1) * sin

    k_rope = turn(rope.unsqueeze(-3)).expand(*k_nope.shape[:-1], turned)
    query = torch.cat((q_nope, turn(q_rope)), -1)
    key = torch.cat((k_nope, k_rope), -1)
    scores = (query @ key.transpose(-1, -2)) * query.shape[-1] ** -0.5
    if spec.causal:
        mask = torch.full((length, source), float("-inf"), device=q.device, dtype=q.dtype)
        scores = scores + mask.triu(1 + source - length)
    weights = scores.softmax(-1)
    out = weights @ value.contiguous()
    return out.transpose(-3, -2).flatten(-2)


def _positions(torch: Any, spec: Positions, x: Any) -> Any:
    length = x.shape[spec.dim]
    if spec.constant:
        return torch.full((1, length), spec.start, dtype=torch.long, device=x.device)
    return torch.arange(spec.start, spec.start + length, device=x.device)[None]


def _stochastic_depth(torch: Any, spec: StochasticDepth, device: str) -> Any:
    class StochasticDepthModule(torch.nn.Module):  # type: ignore[misc]
        """torchvision.ops.StochasticDepth, as torchvision/ops/stochastic_depth.py writes
        its forward: the identity at inference, else input * noise."""

        def forward(self, x: Any) -> Any:
            p = spec.p
            if not self.training or p == 0.0:
                return x
            size = [x.shape[0]] + [1] * (x.ndim - 1) if spec.mode == "row" else [1] * x.ndim
            noise = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(1.0 - p)
            if p < 1.0:
                noise.div_(1.0 - p)
            return x * noise

    return StochasticDepthModule()


def _bias(torch: Any, spec: Bias, device: str) -> Any:
    class BiasModule(torch.nn.Module):  # type: ignore[misc]
        """A bias of its own: y = x + b."""

        def __init__(self) -> None:
            super().__init__()
            self.bias = torch.nn.Parameter(torch.zeros(spec.features, device=device))

        def forward(self, x: Any) -> Any:
            return x + self.bias

    return BiasModule()


def _gemma3_rms_norm(torch: Any, spec: Gemma3RMSNorm, device: str) -> Any:
    class Gemma3RMSNormModule(torch.nn.Module):  # type: ignore[misc]
        """transformers' Gemma3RMSNorm: x / rms(x) in float32, times (1 + weight)."""

        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(spec.dim, device=device))

        def forward(self, x: Any) -> Any:
            y = x.float()
            y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + spec.eps)
            return (y * (1.0 + self.weight.float())).type_as(x)

    return Gemma3RMSNormModule()


def _llama_rms_norm(torch: Any, spec: LlamaRMSNorm, device: str) -> Any:
    dims = spec.dims
    eps = 1e-6 if spec.eps is None else spec.eps

    class LlamaRMSNormModule(torch.nn.Module):  # type: ignore[misc]
        """transformers' LlamaRMSNorm: x / rms(x) in float32, cast back, times weight."""

        def __init__(self) -> None:
            super().__init__()
            if spec.elementwise_affine:
                self.weight = torch.nn.Parameter(torch.ones(*dims, device=device))

        def forward(self, x: Any) -> Any:
            y = x.to(torch.float32)
            axes = tuple(range(-len(dims), 0))
            y = y * torch.rsqrt(y.pow(2).mean(axes, keepdim=True) + eps)
            y = y.to(x.dtype)
            return self.weight * y if spec.elementwise_affine else y

    return LlamaRMSNormModule()


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
    names = EXPERT_NAMES[spec.naming]
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
                    for name, part in names:
                        rows, cols = (h, i) if part == "down" else (i, h)
                        expert.add_module(
                            name, torch.nn.Linear(cols, rows, bias=False, device=device)
                        )
                    self.add_module(str(n), expert)

        def weights(self, n: int) -> tuple[Any, Any, Any]:
            if spec.layout == "fused":
                gate, up = self.gate_up_proj[n].chunk(2, dim=0)
                return gate, up, self.down_proj[n]
            expert = self.get_submodule(str(n))
            by_part = {part: getattr(expert, name).weight for name, part in names}
            return by_part["gate"], by_part["up"], by_part["down"]

        def forward(self, x: Any, logits: Any) -> Any:
            flat, scores = x.reshape(-1, h), logits.reshape(-1, e)
            weights, chosen = scores.softmax(-1).topk(spec.top_k, dim=-1)
            out = torch.zeros_like(flat)
            for n in range(e):
                rows, slot = (chosen == n).nonzero(as_tuple=True)
                if rows.numel():
                    gate, up, down = self.weights(n)
                    tokens = flat[rows]  # gathered once, as transformers' eager experts do
                    y = functional.silu(tokens @ gate.T) * (tokens @ up.T)
                    out = out.index_add(0, rows, (y @ down.T) * weights[rows, slot, None])
            return out.view_as(x)

    return ExpertsModule()


def _router(torch: Any, spec: TopkRouter, device: str) -> Any:
    class RouterModule(torch.nn.Module):  # type: ignore[misc]
        """A score per expert, in fp32; the correction bias a buffer."""

        def __init__(self) -> None:
            super().__init__()
            e: Any = spec.num_experts
            self.weight = torch.nn.Parameter(torch.empty(e, spec.hidden_size, device=device))
            if spec.correction_bias:
                self.register_buffer("e_score_correction_bias", torch.zeros(e, device=device))

        def forward(self, x: Any) -> Any:
            return torch.nn.functional.linear(x.float(), self.weight.float()).to(x.dtype)

    return RouterModule()


def _sink_attention(torch: Any, spec: SinkAttention, q: Any, k: Any, v: Any, sinks: Any) -> Any:
    """gpt-oss's eager attention: scores, the causal mask, the sink's column, the row's max
    subtracted, the softmax, the column dropped, the weights times v (the key and value
    heads repeated for grouped queries, as transformers repeats them)."""
    a: Any = spec.num_heads  # numbers: the model was built
    kv: Any = spec.num_kv_heads
    d: Any = spec.head_dim

    def heads(x: Any, n: Any) -> Any:
        x = x if x.dim() >= 4 and x.shape[-1] == d else x.unflatten(-1, (n, d))
        return x.transpose(-3, -2)

    qh, kh, vh = heads(q, a), heads(k, kv), heads(v, kv)
    groups = a // kv
    if groups > 1:
        kh, vh = kh.repeat_interleave(groups, dim=-3), vh.repeat_interleave(groups, dim=-3)
    scores = torch.matmul(qh, kh.transpose(-1, -2)) * d**-0.5
    t, s = scores.shape[-2], scores.shape[-1]
    if spec.causal:
        mask = torch.full((t, s), float("-inf"), device=q.device, dtype=scores.dtype)
        scores = scores + mask.triu(s - t + 1)
    column = sinks.to(scores.dtype).reshape(-1, 1, 1).expand(*scores.shape[:-1], 1)
    combined = torch.cat([scores, column], dim=-1)
    combined = combined - combined.max(dim=-1, keepdim=True).values
    weights = torch.softmax(combined, dim=-1)[..., :-1]
    return torch.matmul(weights, vh).transpose(-3, -2).flatten(-2)


#: MXFP4's 4-bit numbers, by their code (transformers' FP4_VALUES)
_FP4 = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0)


def _gpt_oss_experts(torch: Any, spec: GptOssExperts, device: str) -> Any:
    e: Any = spec.num_experts  # numbers: the model was built
    h: Any = spec.hidden_size
    i: Any = spec.intermediate_size
    alpha, limit = 1.702, 7.0  # transformers' swiglu_alpha and swiglu_limit defaults
    half = MXFP4_BLOCK // 2

    def packed(rows: int, cols: int) -> Any:
        data = torch.zeros(e, rows, cols // MXFP4_BLOCK, half, dtype=torch.uint8, device=device)
        return torch.nn.Parameter(data, requires_grad=False)

    def exponents(rows: int, cols: int) -> Any:
        data = torch.full((e, rows, cols // MXFP4_BLOCK), 127, dtype=torch.uint8, device=device)
        return torch.nn.Parameter(data, requires_grad=False)

    class GptOssExpertsModule(torch.nn.Module):  # type: ignore[misc]
        """gpt-oss's experts, named as the spec's layout names them; the forward is
        transformers' eager one (each expert on the tokens sent to it, the clamped SwiGLU,
        the weighted sum); the checkpoint layout dequantizes its MXFP4 blocks first."""

        def __init__(self) -> None:
            super().__init__()
            zeros = functools.partial(torch.zeros, device=device)
            if spec.layout == "fused":
                self.gate_up_proj = torch.nn.Parameter(torch.empty(e, h, 2 * i, device=device))
                self.gate_up_proj_bias = torch.nn.Parameter(zeros(e, 2 * i))
                self.down_proj = torch.nn.Parameter(torch.empty(e, i, h, device=device))
                self.down_proj_bias = torch.nn.Parameter(zeros(e, h))
                return
            self.gate_up_proj_blocks = packed(2 * i, h)
            self.gate_up_proj_scales = exponents(2 * i, h)
            self.gate_up_proj_bias = torch.nn.Parameter(zeros(e, 2 * i))
            self.down_proj_blocks = packed(h, i)
            self.down_proj_scales = exponents(h, i)
            self.down_proj_bias = torch.nn.Parameter(zeros(e, h))

        def dequantized(self, name: str, dtype: Any) -> Any:
            """(E, in, out) from the blocks, as transformers dequantizes them."""
            blocks, scales = getattr(self, f"{name}_blocks"), getattr(self, f"{name}_scales")
            lut = torch.tensor(_FP4, dtype=dtype, device=blocks.device)
            low, high = lut[(blocks & 0x0F).long()], lut[(blocks >> 4).long()]
            numbers = torch.stack((low, high), dim=-1).flatten(-2)
            numbers = torch.ldexp(numbers, scales.long()[..., None] - 127)
            return numbers.flatten(-2).transpose(1, 2)

        def weights(self, dtype: Any) -> tuple[Any, Any]:
            if spec.layout == "fused":
                return self.gate_up_proj, self.down_proj
            with torch.no_grad():
                return self.dequantized("gate_up_proj", dtype), self.dequantized("down_proj", dtype)

        def forward(self, x: Any, logits: Any) -> Any:
            flat, scores = x.reshape(-1, h), logits.reshape(-1, e)
            top, chosen = torch.topk(scores, spec.top_k, dim=-1)
            routing = torch.softmax(top, dim=1)
            gate_up_proj, down_proj = self.weights(flat.dtype)
            out = torch.zeros_like(flat)
            with torch.no_grad():
                mask = torch.nn.functional.one_hot(chosen, num_classes=e).permute(2, 1, 0)
                hit = torch.greater(mask.sum(dim=(-1, -2)), 0).nonzero()
            for (n,) in hit.tolist():
                slot, rows = torch.where(mask[n])
                gate_up = flat[rows] @ gate_up_proj[n] + self.gate_up_proj_bias[n]
                gate, up = gate_up[..., ::2], gate_up[..., 1::2]
                gate = gate.clamp(min=None, max=limit)
                up = up.clamp(min=-limit, max=limit)
                glu = gate * torch.sigmoid(gate * alpha)
                y = ((up + 1) * glu) @ down_proj[n] + self.down_proj_bias[n]
                out.index_add_(0, rows, y * routing[rows, slot, None])
            return out.view_as(x)

    return GptOssExpertsModule()


def _causal_conv1d(torch: Any, spec: CausalConv1d, device: str) -> Any:
    c: Any = spec.channels  # numbers: the model was built
    k: Any = spec.kernel_size

    class CausalConv1dModule(torch.nn.Conv1d):  # type: ignore[misc]
        """Mamba's depthwise causal convolution on (…, T, channels): turned to
        (…, channels, T), convolved with K − 1 zeros of padding each side, the first T
        positions kept, turned back."""

        def __init__(self) -> None:
            super().__init__(c, c, k, groups=c, padding=k - 1, bias=spec.bias, device=device)

        def forward(self, x: Any) -> Any:
            length = x.shape[-2]
            return super().forward(x.transpose(-1, -2))[..., :length].transpose(-1, -2)

    return CausalConv1dModule()


def _gated_rms_norm(torch: Any, spec: GatedRMSNorm, device: str) -> Any:
    i: Any = spec.hidden_size  # numbers: the model was built
    g: Any = spec.n_groups

    class GatedRMSNormModule(torch.nn.Module):  # type: ignore[misc]
        """transformers' Mamba2RMSNormGated: RMSNorm of y·SiLU(z) per group, in fp32."""

        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(i, device=device))

        def forward(self, y: Any, z: Any) -> Any:
            dtype = y.dtype
            gate = torch.nn.functional.silu(z.float())
            x = y.float() if spec.norm_before_gate else y.float() * gate
            grouped = x.unflatten(-1, (g, i // g))
            grouped = grouped * torch.rsqrt(grouped.pow(2).mean(-1, keepdim=True) + 1e-5)
            if spec.norm_before_gate:  # Falcon-H1's: scaled in fp32, then gated
                return (self.weight * grouped.flatten(-2) * gate).to(dtype)
            return self.weight * grouped.flatten(-2).to(dtype)

    return GatedRMSNormModule()


def _mamba2_scan(torch: Any, spec: Mamba2Scan, module: Any, xbc: Any, dt: Any) -> Any:
    """Mamba-2's chunked scan (SSD) as transformers' torch path computes it
    (``mamba2_chunk_scan``), from zero state: the mixer's own dt_bias, A_log and D."""
    m: Any = spec.num_heads  # numbers: the model was built
    p: Any = spec.head_dim
    n: Any = spec.state_size
    g: Any = spec.n_groups
    q = spec.chunk_size
    functional = torch.nn.functional
    batch, length = xbc.shape[0], xbc.shape[1]
    x, b, c = xbc.split([m * p, g * n, g * n], dim=-1)
    x = x.reshape(batch, length, m, p).float()
    b = b.reshape(batch, length, g, n).float().repeat_interleave(m // g, dim=2)
    c = c.reshape(batch, length, g, n).float().repeat_interleave(m // g, dim=2)
    step = functional.softplus(dt + module.dt_bias.to(dt.dtype)).float()
    a = -torch.exp(module.A_log.float())
    pad = (q - length % q) % q
    skip = module.D[..., None] * functional.pad(x, (0, 0, 0, 0, 0, pad))
    x = x * step[..., None]
    a = a * step

    def chunked(t: Any) -> Any:
        t = functional.pad(t, (0, 0) * (t.dim() - 2) + (0, pad))
        return t.reshape(batch, -1, q, *t.shape[2:])

    def segment_sum(t: Any) -> Any:
        size = t.size(-1)
        t = t[..., None].expand(*t.size(), size)
        below = torch.tril(torch.ones(size, size, dtype=torch.bool, device=t.device), -1)
        t = t.masked_fill(~below, 0).cumsum(dim=-2)
        keep = torch.tril(torch.ones(size, size, dtype=torch.bool, device=t.device), 0)
        return t.masked_fill(~keep, -torch.inf)

    x, a, b, c = chunked(x), chunked(a), chunked(b), chunked(c)
    a = a.permute(0, 3, 1, 2)
    a_cumsum = a.cumsum(dim=-1)
    decay = torch.exp(segment_sum(a))
    scores = torch.einsum("bclhn,bcshn->bclsh", c, b)
    y_diag = torch.einsum("bclsh,bcshp->bclhp", scores * decay.permute(0, 2, 3, 4, 1), x)
    decay_states = torch.exp(a_cumsum[:, :, :, -1:] - a_cumsum)
    b_decay = b * decay_states.permute(0, -2, -1, 1)[..., None]
    states = torch.einsum("bclhn,bclhp->bchpn", b_decay, x)
    states = torch.cat([torch.zeros_like(states[:, :1]), states], dim=1)
    across = torch.exp(segment_sum(functional.pad(a_cumsum[:, :, :, -1], (1, 0)))).transpose(1, 3)
    states = torch.einsum("bzch,bzhpn->bchpn", across, states)[:, :-1]
    y_off = torch.einsum("bclhn,bchpn->bclhp", c, states)
    y_off = y_off * torch.exp(a_cumsum).permute(0, 2, 3, 1)[..., None]
    y = (y_diag + y_off).reshape(batch, -1, m, p) + skip
    return y[:, :length].reshape(batch, length, m * p).to(xbc.dtype)


def _mamba_mixer(torch: Any, spec: MambaMixer, device: str) -> Any:
    h: Any = spec.hidden_size  # numbers: the model was built
    d: Any = spec.intermediate_size
    n: Any = spec.state_size
    k: Any = spec.conv_kernel
    r: Any = spec.time_step_rank
    nn, functional = torch.nn, torch.nn.functional

    class Norm(torch.nn.Module):  # type: ignore[misc]
        """An RMSNorm named as transformers' (``weight``), computed in fp32."""

        def __init__(self, size: int) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.ones(size, device=device))

        def forward(self, x: Any) -> Any:
            y = x.float()
            y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + 1e-6)
            return self.weight * y.to(x.dtype)

    class MambaMixerModule(torch.nn.Module):  # type: ignore[misc]
        """transformers' MambaMixer (JambaMambaMixer with the norms) without its CUDA
        kernels: in_proj, the causal depthwise convolution and SiLU, x_proj, the time
        step, the scan over the positions one by one, the D skip, the gate, out_proj."""

        def __init__(self) -> None:
            super().__init__()
            rates = torch.arange(1, n + 1, dtype=torch.float32, device=device)
            self.A_log = nn.Parameter(torch.log(rates).expand(d, n).contiguous())
            self.D = nn.Parameter(torch.ones(d, device=device))
            self.conv1d = nn.Conv1d(
                d, d, k, groups=d, padding=k - 1, bias=spec.use_conv_bias, device=device
            )
            self.in_proj = nn.Linear(h, 2 * d, bias=spec.use_bias, device=device)
            self.x_proj = nn.Linear(d, r + 2 * n, bias=False, device=device)
            self.dt_proj = nn.Linear(r, d, device=device)
            self.out_proj = nn.Linear(d, h, bias=spec.use_bias, device=device)
            if spec.layernorms:
                self.dt_layernorm, self.b_layernorm, self.c_layernorm = Norm(r), Norm(n), Norm(n)

        def forward(self, x: Any) -> Any:
            dtype, length = x.dtype, x.shape[-2]
            projected = self.in_proj(x).transpose(1, 2)
            if not spec.layernorms:  # Mamba's forward makes A for its fused kernel too
                _ = -torch.exp(self.A_log.float())
            inner, gate = projected.chunk(2, dim=1)
            weight = self.conv1d.weight
            inner = functional.conv1d(inner, weight, self.conv1d.bias, padding=k - 1, groups=d)[
                :, :, :length
            ]
            inner = functional.silu(inner).transpose(1, 2)
            step, b, c = torch.split(self.x_proj(inner), [r, n, n], dim=-1)
            if spec.layernorms:
                step, b, c = self.dt_layernorm(step), self.b_layernorm(b), self.c_layernorm(c)
            step = self.dt_proj.weight @ step.transpose(1, 2)
            inner = inner.transpose(1, 2)
            a = -torch.exp(self.A_log.float())
            step = functional.softplus(step + self.dt_proj.bias.float()[..., None])
            decay = torch.exp(a[None, :, None, :] * step[:, :, :, None])
            rise = step[:, :, :, None] * b[:, None, :, :].float()
            rise = rise * inner[:, :, :, None].float()
            state = torch.zeros(x.shape[0], d, n, dtype=dtype, device=x.device)
            outs = []
            for t in range(length):
                state = decay[:, :, t] * state + rise[:, :, t]
                outs.append(torch.matmul(state.to(dtype), c[:, t, :].unsqueeze(-1))[:, :, 0])
            out = torch.stack(outs, dim=-1)
            out = out + inner * self.D.float()[None, :, None]
            out = out * functional.silu(gate)
            return self.out_proj(out.transpose(1, 2).to(dtype))

    return MambaMixerModule()


def _gated_delta_net(torch: Any, spec: GatedDeltaNet, device: str) -> Any:
    """Qwen3-Next's linear attention, named as transformers names it; the forward computes
    the gated delta rule token by token (the same numbers as transformers' chunked path)."""
    h: Any = spec.hidden_size  # numbers: the model was built
    nk: Any = spec.num_key_heads
    nv: Any = spec.num_value_heads
    dk: Any = spec.key_head_dim
    dv: Any = spec.value_head_dim
    w: Any = spec.conv_kernel_size
    per = nv // nk
    conv: Any = spec.conv_dim
    functional = torch.nn.functional

    class Norm(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(dv, device=device))

    class GatedDeltaNetModule(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.dt_bias = torch.nn.Parameter(torch.ones(nv, device=device))
            self.A_log = torch.nn.Parameter(torch.zeros(nv, device=device))
            self.conv1d = torch.nn.Conv1d(
                conv, conv, w, groups=conv, padding=w - 1, bias=False, device=device
            )
            width = 2 * nk * dk + 2 * nv * dv
            self.in_proj_qkvz = torch.nn.Linear(h, width, bias=False, device=device)
            self.in_proj_ba = torch.nn.Linear(h, 2 * nv, bias=False, device=device)
            self.norm = Norm()
            self.out_proj = torch.nn.Linear(nv * dv, h, bias=False, device=device)

        def forward(self, x: Any) -> Any:
            rows, length = x.shape[:-2], x.shape[-2]
            x = x.reshape(-1, length, h)
            b = x.shape[0]
            qkvz = self.in_proj_qkvz(x).view(b, length, nk, -1)
            q, k, v, z = qkvz.split([dk, dk, per * dv, per * dv], dim=-1)
            beta, a = self.in_proj_ba(x).view(b, length, nk, -1).split([per, per], dim=-1)
            mixed = torch.cat([t.reshape(b, length, -1) for t in (q, k, v)], dim=-1)
            mixed = functional.silu(self.conv1d(mixed.transpose(1, 2))[..., :length])
            q, k, v = mixed.transpose(1, 2).split([nk * dk, nk * dk, nv * dv], dim=-1)
            q = q.reshape(b, length, nk, dk).repeat_interleave(per, dim=2).float()
            k = k.reshape(b, length, nk, dk).repeat_interleave(per, dim=2).float()
            v = v.reshape(b, length, nv, dv).float()
            q = q * torch.rsqrt((q * q).sum(-1, keepdim=True) + 1e-6) * dk**-0.5
            k = k * torch.rsqrt((k * k).sum(-1, keepdim=True) + 1e-6)
            beta = torch.sigmoid(beta.reshape(b, length, nv)).float()
            decay = -self.A_log.float().exp() * functional.softplus(
                a.reshape(b, length, nv).float() + self.dt_bias
            )
            state = torch.zeros(b, nv, dk, dv, device=x.device)
            outputs = []
            for i in range(length):
                state = state * decay[:, i].exp()[..., None, None]
                read = (state * k[:, i, :, :, None]).sum(-2)
                delta = (v[:, i] - read) * beta[:, i, :, None]
                state = state + k[:, i, :, :, None] * delta[:, :, None, :]
                outputs.append((state * q[:, i, :, :, None]).sum(-2))
            out = torch.stack(outputs, dim=1)
            out = out * torch.rsqrt(out.pow(2).mean(-1, keepdim=True) + 1e-6)
            out = self.norm.weight * out.to(x.dtype)
            out = out * functional.silu(z.reshape(b, length, nv, dv).float()).to(x.dtype)
            return self.out_proj(out.reshape(b, length, nv * dv)).reshape(*rows, length, h)

    return GatedDeltaNetModule()


def _split_query_gate(torch: Any, spec: SplitQueryGate, x: Any) -> Any:
    """Each head's query and output gate from q_proj's output, as Qwen3NextAttention
    splits it."""
    d: Any = spec.head_dim
    query, gate = x.unflatten(-1, (spec.num_heads, 2 * d)).chunk(2, dim=-1)
    return query, gate.flatten(-2)


def _gated_attention(torch: Any, spec: GatedAttention, q: Any, gate: Any, k: Any, v: Any) -> Any:
    """The attention's output times the sigmoid of the gate."""
    attend = ScaledDotProductAttention(spec.num_heads, spec.num_kv_heads, spec.head_dim)
    return _attention(torch, attend, q, k, v) * torch.sigmoid(gate)


def _layer_norm_2d(torch: Any, spec: LayerNorm2d, device: str) -> Any:
    class LayerNorm2dModule(torch.nn.LayerNorm):  # type: ignore[misc]
        """ConvNeXt's LayerNorm2d (torchvision/models/convnext.py): permute to NHWC,
        layer_norm, permute back."""

        def forward(self, x: Any) -> Any:
            x = x.permute(0, 2, 3, 1)
            x = torch.nn.functional.layer_norm(
                x, self.normalized_shape, self.weight, self.bias, self.eps
            )
            return x.permute(0, 3, 1, 2)

    args = LayerNorm(**spec.arguments()).arguments()
    return LayerNorm2dModule(**args, device=device)


def _shifted_window_attention(torch: Any, spec: ShiftedWindowAttention, device: str) -> Any:
    """torchvision's ShiftedWindowAttention (and ShiftedWindowAttentionV2: cosine scores
    with a logit scale, the bias from ``cpb_mlp``), its forward the function
    ``shifted_window_attention`` of torchvision/models/swin_transformer.py."""
    functional = torch.nn.functional
    wh, ww = spec.window_size
    heads: Any = spec.num_heads  # numbers: the model was built
    dim: Any = spec.dim
    v2 = isinstance(spec, ShiftedWindowAttentionV2)

    class ShiftedWindowAttentionModule(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            if v2:
                self.logit_scale = torch.nn.Parameter(
                    torch.log(10 * torch.ones((heads, 1, 1), device=device))
                )
            self.qkv = torch.nn.Linear(dim, dim * 3, bias=spec.qkv_bias, device=device)
            self.proj = torch.nn.Linear(dim, dim, bias=spec.proj_bias, device=device)
            table = (2 * wh - 1) * (2 * ww - 1)
            if v2:
                self.cpb_mlp = torch.nn.Sequential(
                    torch.nn.Linear(2, CPB_HIDDEN, bias=True, device=device),
                    torch.nn.ReLU(inplace=True),
                    torch.nn.Linear(CPB_HIDDEN, heads, bias=False, device=device),
                )
                h = torch.arange(-(wh - 1), wh, dtype=torch.float32)
                w = torch.arange(-(ww - 1), ww, dtype=torch.float32)
                grid = torch.stack(torch.meshgrid([h, w], indexing="ij"))
                grid = grid.permute(1, 2, 0).contiguous().unsqueeze(0)
                grid[:, :, :, 0] /= max(wh - 1, 1)
                grid[:, :, :, 1] /= max(ww - 1, 1)
                grid = grid * 8
                grid = torch.sign(grid) * torch.log2(torch.abs(grid) + 1.0) / 3.0
                self.register_buffer("relative_coords_table", grid.to(device))
            else:
                self.relative_position_bias_table = torch.nn.Parameter(
                    torch.zeros(table, heads, device=device)
                )
            coords = torch.stack(
                torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing="ij")
            ).flatten(1)
            relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
            relative[:, :, 0] += wh - 1
            relative[:, :, 1] += ww - 1
            relative[:, :, 0] *= 2 * ww - 1
            self.register_buffer("relative_position_index", relative.sum(-1).flatten().to(device))

        def forward(self, x: Any) -> Any:
            n = wh * ww
            if v2:
                table = self.cpb_mlp(self.relative_coords_table).view(-1, heads)
            else:
                table = self.relative_position_bias_table
            bias = table[self.relative_position_index]
            bias = bias.view(n, n, -1).permute(2, 0, 1).contiguous().unsqueeze(0)
            if v2:
                bias = 16 * torch.sigmoid(bias)
            b, h, w, c = x.shape
            pad_r, pad_b = (ww - w % ww) % ww, (wh - h % wh) % wh
            x = functional.pad(x, (0, 0, 0, pad_r, 0, pad_b))
            _, pad_h, pad_w, _ = x.shape
            shift = list(spec.shift_size)
            if wh >= pad_h:
                shift[0] = 0
            if ww >= pad_w:
                shift[1] = 0
            if sum(shift) > 0:
                x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))
            windows = (pad_h // wh) * (pad_w // ww)
            x = x.view(b, pad_h // wh, wh, pad_w // ww, ww, c)
            x = x.permute(0, 1, 3, 2, 4, 5).reshape(b * windows, n, c)
            qkv_bias = self.qkv.bias
            if v2 and qkv_bias is not None:  # the key's bias is zeroed at every call
                qkv_bias = qkv_bias.clone()
                qkv_bias[c : 2 * c].zero_()
            qkv = functional.linear(x, self.qkv.weight, qkv_bias)
            qkv = qkv.reshape(x.size(0), x.size(1), 3, heads, c // heads).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]
            if v2:
                attn = functional.normalize(q, dim=-1) @ functional.normalize(k, dim=-1).transpose(
                    -2, -1
                )
                attn = attn * torch.clamp(self.logit_scale, max=math.log(100.0)).exp() + bias
            else:
                q = q * (c // heads) ** -0.5
                attn = q.matmul(k.transpose(-2, -1)) + bias
            if sum(shift) > 0:
                mask = x.new_zeros((pad_h, pad_w))
                h_slices = ((0, -wh), (-wh, -shift[0]), (-shift[0], None))
                w_slices = ((0, -ww), (-ww, -shift[1]), (-shift[1], None))
                count = 0
                for hs in h_slices:
                    for ws in w_slices:
                        mask[hs[0] : hs[1], ws[0] : ws[1]] = count
                        count += 1
                mask = mask.view(pad_h // wh, wh, pad_w // ww, ww).permute(0, 2, 1, 3)
                mask = mask.reshape(windows, n)
                mask = mask.unsqueeze(1) - mask.unsqueeze(2)
                mask = mask.masked_fill(mask != 0, -100.0).masked_fill(mask == 0, 0.0)
                attn = attn.view(x.size(0) // windows, windows, heads, n, n)
                attn = (attn + mask.unsqueeze(1).unsqueeze(0)).view(-1, heads, n, n)
            attn = functional.dropout(functional.softmax(attn, dim=-1), p=spec.attention_dropout)
            x = attn.matmul(v).transpose(1, 2).reshape(x.size(0), n, c)
            x = functional.dropout(
                functional.linear(x, self.proj.weight, self.proj.bias), p=spec.dropout
            )
            x = x.view(b, pad_h // wh, pad_w // ww, wh, ww, c)
            x = x.permute(0, 1, 3, 2, 4, 5).reshape(b, pad_h, pad_w, c)
            if sum(shift) > 0:
                x = torch.roll(x, shifts=(shift[0], shift[1]), dims=(1, 2))
            return x[:, :h, :w, :].contiguous()

    return ShiftedWindowAttentionModule()


def _patch_merging(torch: Any, spec: PatchMerging | PatchMergingV2, device: str) -> Any:
    """torchvision's PatchMerging and PatchMergingV2 (the norm after the reduction)
    (torchvision/models/swin_transformer.py)."""
    dim: Any = spec.dim
    v2 = isinstance(spec, PatchMergingV2)

    class PatchMergingModule(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.reduction = torch.nn.Linear(4 * dim, 2 * dim, bias=False, device=device)
            self.norm = torch.nn.LayerNorm((2 if v2 else 4) * dim, device=device)

        def forward(self, x: Any) -> Any:
            h, w, _ = x.shape[-3:]
            x = torch.nn.functional.pad(x, (0, 0, 0, w % 2, 0, h % 2))
            x0, x1 = x[..., 0::2, 0::2, :], x[..., 1::2, 0::2, :]
            x2, x3 = x[..., 0::2, 1::2, :], x[..., 1::2, 1::2, :]
            x = torch.cat([x0, x1, x2, x3], -1)
            return self.norm(self.reduction(x)) if v2 else self.reduction(self.norm(x))

    return PatchMergingModule()


@functools.cache
def _quick_gelu(torch: Any) -> Any:
    class QuickGELUActivation(torch.nn.Module):  # type: ignore[misc]
        """transformers.activations.QuickGELUActivation."""

        def forward(self, input: Any) -> Any:
            return input * torch.sigmoid(1.702 * input)

    return QuickGELUActivation


def _expand(torch: Any, spec: Expand, first: Any, like: Any, *rest: Any) -> Any:
    rank = like.dim()
    first = first.reshape((1,) * (rank - first.dim()) + tuple(first.shape))
    dims = {d % rank for d in spec.dims}
    sizes = [like.shape[i] if i in dims else -1 for i in range(rank)]
    return (first.expand(*sizes), like, *rest)


def _tile(torch: Any, spec: Tile, x: Any, *like: Any) -> Any:
    sizes = list(spec.sizes)
    if spec.like:
        sizes[0] = like[0].shape[0]
    return (x.repeat(*sizes), *like)


#: layers torch.nn lacks: spec class -> its module, made with torch on a device
_MODULES: dict[type, Any] = {
    LayerNorm2d: _layer_norm_2d,
    ShiftedWindowAttention: _shifted_window_attention,
    ShiftedWindowAttentionV2: _shifted_window_attention,
    PatchMerging: _patch_merging,
    PatchMergingV2: _patch_merging,
    QuickGELU: lambda torch, spec, device: _quick_gelu(torch)(),
    CausalConv1d: _causal_conv1d,
    GatedRMSNorm: _gated_rms_norm,
    MambaMixer: _mamba_mixer,
    GatedDeltaNet: _gated_delta_net,
    Bias: _bias,
    Gemma3RMSNorm: _gemma3_rms_norm,
    LlamaRMSNorm: _llama_rms_norm,
    Conv1D: _conv1d,
    StochasticDepth: _stochastic_depth,
    Experts: _experts,
    GptOssExperts: _gpt_oss_experts,
    TopkRouter: _router,
}
#: a block's own tensors used as a step of its flow: spec class -> what the step gives,
#: from the block's module
_OWN: dict[type, Any] = {
    Bias: lambda torch, spec, module, x: x + module.bias,
    Sinks: lambda torch, spec, module, *values: module.sinks,
    Mamba2Scan: _mamba2_scan,
}
#: functions of a forward: spec class -> what it does to tensors
_CALLS: dict[type, Any] = {
    Cat: lambda torch, spec, *xs: torch.cat(xs, dim=spec.dim),
    Expand: _expand,
    Permute: lambda torch, spec, x: x.permute(*spec.dims),
    Transpose: lambda torch, spec, x: x.transpose(spec.dim0, spec.dim1),
    Reshape: lambda torch, spec, x: x.reshape(*spec.shape),
    Tile: _tile,
    Split: lambda torch, spec, x: tuple(x.chunk(spec.chunks, spec.dim)),
    Unflatten: lambda torch, spec, x: x.unflatten(spec.dim, spec.sizes),
    Mean: lambda torch, spec, x: x.mean(list(spec.dims), keepdim=spec.keepdim),
    MatMul: lambda torch, spec, x, w: torch.matmul(x, w),
    Contiguous: lambda torch, spec, x: x.contiguous(),
    Add: lambda torch, spec, *xs: functools.reduce(lambda a, b: a + b, xs),
    Multiply: lambda torch, spec, *xs: functools.reduce(lambda a, b: a * b, xs),
    Positions: _positions,
    ScaledDotProductAttention: _attention,
    SinkAttention: _sink_attention,
    SplitQueryGate: _split_query_gate,
    GatedAttention: _gated_attention,
    Rotary: _rotary,
    LatentAttention: _latent_attention,
    SplitHeads: lambda torch, spec, x: x.unflatten(-1, (spec.num_heads, spec.head_dim)),
    Chunk: lambda torch, spec, x: tuple(x.split(list(spec.sizes), dim=-1)),
    Pick: lambda torch, spec, *xs: xs[spec.index],
    Select: lambda torch, spec, x: x.select(spec.dim, spec.index),
    Take: lambda torch, spec, *xs: tuple(xs[i] for i in spec.indices),
}


#: what shapecalc builds itself: a spec class registered here is not replaced
_BUILT_IN = frozenset((*_MODULES, *_OWN, *_CALLS))


def _registrable(spec_class: Any, function: Any, what: str, caller: str) -> None:
    """A LayerSpec subclass shapecalc does not build itself, and a callable: else an
    InvalidArgumentError naming which."""
    if not isinstance(spec_class, type) or not issubclass(spec_class, LayerSpec):
        raise InvalidArgumentError(
            f"spec_class must be a LayerSpec subclass, got {echo(spec_class)}",
            layer=caller,
            field="spec_class",
            value=echo(spec_class),
            rule="a LayerSpec subclass",
        )
    if spec_class in _BUILT_IN:
        raise InvalidArgumentError(
            f"shapecalc builds {spec_class.__name__} itself; subclass it to build it otherwise",
            layer=caller,
            field="spec_class",
            value=spec_class.__name__,
            rule="a spec class shapecalc does not build itself",
        )
    if not callable(function):
        raise InvalidArgumentError(
            f"{what} must be callable, got {echo(function)}",
            layer=caller,
            field=what,
            value=echo(function),
            rule=f"{what} is a function",
        )


def register_module(spec_class: type[LayerSpec], make: Any) -> None:
    """Build ``spec_class`` with ``make(spec, device)``, which returns its torch module
    (named as the real module names its tensors; its forward is the layer's). For a spec
    of one's own that torch.nn does not have: ``shapecalc.build`` of it, or of a model
    holding it, then calls ``make``. Registering a class again replaces its ``make``.

        >>> register_module(int, print)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        shapecalc.core.errors.InvalidArgumentError: register_module: spec_class must be ...
    """
    _registrable(spec_class, make, "make", "register_module")
    _MODULES[spec_class] = lambda torch, spec, device: make(spec, device)


def register_own_step(spec_class: type[LayerSpec], run: Any) -> None:
    """Run ``spec_class``, held as a block's own tensors (child ``""``) and named ``""``
    in the block's flow, with ``run(module, spec, *inputs)``: the block's torch module
    (whose tensors it reads), the spec, and the step's input tensors. The spec class sets
    ``own_step = True``, or the block refuses the flow."""
    _registrable(spec_class, run, "run", "register_own_step")
    if not spec_class.own_step:
        raise InvalidArgumentError(
            f"{spec_class.__name__}.own_step is False; set "
            "own_step: ClassVar[bool] = True on the class",
            layer="register_own_step",
            field="spec_class",
            value=spec_class.__name__,
            rule="a spec run as its block's step has own_step = True",
        )
    _OWN[spec_class] = lambda torch, spec, module, *values: run(module, spec, *values)


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
