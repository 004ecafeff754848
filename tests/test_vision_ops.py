"""The pieces vision networks need, against torch itself: a block's own tensors
(``nn.Parameter`` of any shape), ``torch.cat``, ``expand``, ``permute``, ``transpose``,
``reshape``, torchvision's ``StochasticDepth`` and ConvNeXt's ``LayerNorm2d`` (twins
written in this file as torchvision/ops/stochastic_depth.py and
torchvision/models/convnext.py write them: torchvision cannot be imported beside this
torch). For each: the output shape of the real function on drawn shapes (and the same
refusals), the FLOPs against ``FlopCounterMode``, the tensors autograd keeps, and the
module ``shapecalc.build`` makes."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shapecalc
from shapecalc import (
    Block,
    Buffer,
    Cat,
    Expand,
    LayerNorm2d,
    Linear,
    Model,
    Parameter,
    Permute,
    QuickGELU,
    Reshape,
    ShapecalcError,
    StochasticDepth,
    Tile,
    Transpose,
    chain,
    multiply,
    summed,
)
from shapecalc.analysis.cost import analyze

torch = pytest.importorskip("torch")
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from tests.measure import kept_bytes  # noqa: E402

SIZE = st.integers(1, 4)


class _Call(torch.nn.Module):  # type: ignore[misc]
    """A function of tensors as a module, to measure what autograd keeps for it."""

    def __init__(self, function: Any) -> None:
        super().__init__()
        self.function = function

    def forward(self, *xs: Any) -> Any:
        return self.function(*xs)


def _agree(spec: Any, shapes: list[tuple[int, ...]], function: Any) -> None:
    """torch's output shapes, FLOPs and kept bytes equal the spec's; or both refuse."""
    inputs = [torch.randn(*s, requires_grad=True) for s in shapes]
    try:
        with FlopCounterMode(display=False) as counter:
            out = function(*inputs)
    except (RuntimeError, IndexError, ValueError):
        with pytest.raises(ShapecalcError):
            spec.output_shapes(*shapes)
        return
    outs = out if isinstance(out, tuple) else (out,)
    work = spec.work(*shapes)
    assert work.outputs == tuple(tuple(o.shape) for o in outs)
    assert counter.get_total_flops() == 2 * work.macs
    assert kept_bytes(_Call(function), inputs) == work.kept_bytes(4)
    built = shapecalc.build(spec, device="cpu")  # the same function, as a module
    again = built(*inputs)
    again = again if isinstance(again, tuple) else (again,)
    assert all(torch.equal(a, b) for a, b in zip(again, outs, strict=True))


@st.composite
def cat_case(draw: st.DrawFn) -> tuple[int, list[tuple[int, ...]]]:
    rank = draw(st.integers(1, 4))
    dim = draw(st.integers(-rank - 1, rank))  # sometimes out of range
    base = [draw(SIZE) for _ in range(rank)]
    shapes = []
    for _ in range(draw(st.integers(1, 3))):
        shape = list(base)
        if -rank <= dim < rank:
            shape[dim] = draw(st.integers(0, 4))
        if draw(st.integers(0, 9)) == 0:  # now and then a size that does not fit
            shape[draw(st.integers(0, rank - 1))] = draw(SIZE)
        shapes.append(tuple(shape))
    return dim, shapes


@settings(max_examples=60)  # each example builds and runs modules
@given(case=cat_case())
def test_cat_against_torch(case: tuple[int, list[tuple[int, ...]]]) -> None:
    dim, shapes = case
    _agree(Cat(dim), shapes, lambda *xs: torch.cat(xs, dim=dim))


@st.composite
def permute_case(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...]]:
    rank = draw(st.integers(1, 5))
    dims = tuple(draw(st.permutations(range(rank))))
    dims = tuple(d - rank if draw(st.booleans()) else d for d in dims)  # negative dims too
    return dims, tuple(draw(SIZE) for _ in range(rank))


@settings(max_examples=80)  # torch calls on small tensors; enough sizes
@given(case=permute_case())
def test_permute_against_torch(case: tuple[tuple[int, ...], tuple[int, ...]]) -> None:
    dims, shape = case
    _agree(Permute(dims), [shape], lambda x: x.permute(*dims))


def test_permute_refuses_what_is_no_permutation() -> None:
    for dims in ((0, 0), (0, 2), (1, -1), "0,1", (0.0, 1)):
        with pytest.raises(ShapecalcError, match="dims"):
            Permute(dims)


@settings(max_examples=80)  # torch calls on small tensors; enough sizes
@given(
    shape=st.lists(SIZE, min_size=1, max_size=4).map(tuple),
    dim0=st.integers(-5, 4),
    dim1=st.integers(-5, 4),
)
def test_transpose_against_torch(shape: tuple[int, ...], dim0: int, dim1: int) -> None:
    _agree(Transpose(dim0, dim1), [shape], lambda x: x.transpose(dim0, dim1))


@st.composite
def reshape_case(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...]]:
    factors = draw(st.lists(SIZE, min_size=1, max_size=4))
    shape = tuple(draw(st.permutations(factors)))
    target = list(draw(st.permutations(factors)))
    if len(target) > 1 and draw(st.booleans()):  # two sizes merged
        target = [target[0] * target[1], *target[2:]]
    if draw(st.booleans()):
        target[draw(st.integers(0, len(target) - 1))] = -1
    if draw(st.integers(0, 5)) == 0:
        target[0] += 1  # does not fit
    return shape, tuple(target)


@settings(max_examples=80)  # torch calls on small tensors; enough sizes
@given(case=reshape_case())
def test_reshape_against_torch(case: tuple[tuple[int, ...], tuple[int, ...]]) -> None:
    shape, target = case
    if 0 in target:
        return
    _agree(Reshape(target), [shape], lambda x: x.reshape(*target))


@settings(max_examples=80)  # torch calls on small tensors; enough sizes
@given(rest=st.lists(SIZE, min_size=1, max_size=3).map(tuple), n=SIZE)
def test_expand_against_torch(rest: tuple[int, ...], n: int) -> None:
    token, like = (1, *rest), (n, *rest)

    def expand(a: Any, b: Any) -> Any:
        return a.expand(b.shape[0], *([-1] * len(rest))), b

    _agree(Expand((0,)), [token, like], expand)


# -- torchvision's layers ------------------------------------------------------------------
class TorchvisionLayerNorm2d(torch.nn.LayerNorm):  # type: ignore[misc]
    """torchvision/models/convnext.py's LayerNorm2d, as written there."""

    def forward(self, x: Any) -> Any:
        x = x.permute(0, 2, 3, 1)
        x = torch.nn.functional.layer_norm(
            x, self.normalized_shape, self.weight, self.bias, self.eps
        )
        return x.permute(0, 3, 1, 2)


def stochastic_depth(x: Any, p: float, mode: str, training: bool) -> Any:
    """torchvision/ops/stochastic_depth.py's stochastic_depth, as written there."""
    if not training or p == 0.0:
        return x
    survival_rate = 1.0 - p
    size = [x.shape[0]] + [1] * (x.ndim - 1) if mode == "row" else [1] * x.ndim
    noise = torch.empty(size, dtype=x.dtype, device=x.device).bernoulli_(survival_rate)
    if survival_rate > 0.0:
        noise.div_(survival_rate)
    return x * noise


@settings(max_examples=60)  # each example builds and runs modules
@given(
    n=SIZE,
    c=SIZE,
    h=SIZE,
    w=SIZE,
    affine=st.booleans(),
    bias=st.booleans(),
    wrong=st.booleans(),
)
def test_layer_norm_2d_against_torchvisions(
    n: int, c: int, h: int, w: int, affine: bool, bias: bool, wrong: bool
) -> None:
    spec = LayerNorm2d(c, eps=1e-6, elementwise_affine=affine, bias=bias)
    twin = TorchvisionLayerNorm2d(c, eps=1e-6, elementwise_affine=affine, bias=bias)
    built = shapecalc.build(spec, device="cpu")
    assert [(n_, tuple(p.shape)) for n_, p in built.named_parameters()] == [
        (n_, tuple(p.shape)) for n_, p in twin.named_parameters()
    ]
    assert spec.total() == sum(p.numel() for p in twin.parameters())
    shape = (n, c + 1 if wrong else c, h, w)
    x = torch.randn(*shape, requires_grad=True)
    if wrong:
        with pytest.raises(RuntimeError):
            twin(x)
        with pytest.raises(ShapecalcError):
            spec.output_shapes(shape)
        return
    built.load_state_dict(twin.state_dict())
    assert torch.equal(built(x), twin(x))
    with FlopCounterMode(display=False) as counter:
        twin(x)
    work = spec.work(shape)
    assert work.outputs == (shape,) and counter.get_total_flops() == 2 * work.macs
    assert kept_bytes(twin, [x]) == work.kept_bytes(4)


@settings(max_examples=60)  # each example builds and runs modules
@given(
    shape=st.lists(SIZE, min_size=1, max_size=4).map(tuple),
    p=st.sampled_from([0.0, 0.25, 0.5, 1.0]),
    mode=st.sampled_from(["row", "batch"]),
)
def test_stochastic_depth_against_torchvisions(shape: tuple[int, ...], p: float, mode: str) -> None:
    spec = StochasticDepth(p, mode)
    built = shapecalc.build(spec, device="cpu")
    assert list(built.named_parameters()) == [] and spec.total() == 0
    x = torch.randn(*shape, requires_grad=True)
    assert built.eval()(x) is x  # identity at inference
    torch.manual_seed(0)
    expected = stochastic_depth(x, p, mode, training=True)
    torch.manual_seed(0)
    assert torch.equal(built.train()(x), expected)
    work = spec.work(shape)
    assert work.outputs == (tuple(expected.shape),)
    with FlopCounterMode(display=False) as counter:
        stochastic_depth(x, p, mode, training=True)
    assert counter.get_total_flops() == 2 * work.macs
    measured = kept_bytes(_Call(lambda t: stochastic_depth(t, p, mode, True)), [x])
    assert measured == work.kept_bytes(4)


def test_stochastic_depth_refuses_what_torchvision_refuses() -> None:
    for p, mode in ((-0.1, "row"), (1.5, "row"), (0.5, "rows"), (0.5, None)):
        with pytest.raises(ShapecalcError):
            StochasticDepth(p, mode)  # type: ignore[arg-type]


# -- a block's own tensors -----------------------------------------------------------------
def _filled(module: Any) -> None:
    """Numbers in every tensor shapecalc.build left uninitialised (torch.empty's memory may
    hold NaN, which no comparison equals)."""
    with torch.no_grad():
        for p in module.parameters():
            p.normal_()


@settings(max_examples=60)  # each example builds and runs modules
@given(
    shape=st.lists(st.integers(0, 4), max_size=4).map(tuple),
    grad=st.booleans(),
)
def test_own_parameter_of_any_shape_against_nn_parameter(
    shape: tuple[int, ...], grad: bool
) -> None:
    """A Parameter child is ``nn.Parameter(torch.empty(*shape))`` under the child's name,
    listed before the children (as named_parameters() lists a module's own tensors)."""

    class Twin(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(3, 3)
            self.table = torch.nn.Parameter(torch.zeros(shape), requires_grad=grad)
            self.register_buffer("index", torch.zeros(shape, dtype=torch.long))

    block = Block(
        "Twin",
        {
            "lin": Linear(3, 3),
            "table": Parameter(shape, requires_grad=grad),
            "index": Buffer(shape, dtype="int64"),
        },
    )
    model = Model("twin", block)
    twin, built = Twin(), shapecalc.build(model, device="cpu")
    for module in (twin, built):
        assert model.named_parameters() == [
            (n, tuple(p.shape)) for n, p in module.named_parameters()
        ]
        assert model.named_buffers() == [(n, tuple(b.shape)) for n, b in module.named_buffers()]
    assert built.table.requires_grad == grad and built.index.dtype == torch.long
    assert model.total == sum(p.numel() for p in twin.parameters())


@settings(max_examples=80)  # torch calls on small tensors; enough sizes
@given(c=SIZE, t=SIZE, b=SIZE)
def test_own_parameters_as_steps_of_the_flow(c: int, t: int, b: int) -> None:
    """ConvNeXt's ``layer_scale * block(x)`` and ViT's ``x + pos_embedding``: the tensors
    themselves in the flow; what autograd keeps counts no parameter."""
    block = Block(
        "Scaled",
        {"lin": Linear(c, c), "layer_scale": Parameter((c,)), "pos": Parameter((1, t, c))},
        flow=chain(multiply("layer_scale", "lin"), summed((), "pos")),
    )
    model = Model("scaled", block, input_layout=(("B", t, c),))
    module = shapecalc.build(model, device="cpu")
    _filled(module)
    x = torch.randn(b, t, c, requires_grad=True)
    expected = module.layer_scale * module.lin(x) + module.pos
    assert torch.equal(module(x), expected)
    cost = analyze(model, batch=b)
    assert cost.layers[-1].outputs == ((b, t, c),)
    assert kept_bytes(module, [x]) == cost.activation_bytes


def test_a_block_whose_own_tensors_are_not_a_step_is_refused() -> None:
    """The issue's case works (a bias of the block's own, added); a spec that is not a step
    is refused when the block is made, not by a recursion when built."""
    block = Block("X", {"": shapecalc.Bias(8), "lin": Linear(8, 8)}, flow=chain("lin", ""))
    module = shapecalc.build(Model("x", block), device="cpu")
    _filled(module)
    x = torch.randn(2, 8)
    assert torch.equal(module(x), module.lin(x) + module.bias)
    with pytest.raises(ShapecalcError, match="not a step"):
        Block("X", {"": Linear(8, 8), "lin": Linear(8, 8)}, flow=chain("lin", ""))
    with pytest.raises(ShapecalcError, match="shape"):
        Parameter(8)
    with pytest.raises(ShapecalcError, match="dtype"):
        Buffer((2,), dtype="int3")


# -- what transformers' vision towers add: CLIP's class embedding, SigLIP's probe, QuickGELU
@settings(max_examples=80)  # torch calls on small tensors; enough sizes
@given(d=SIZE, t=SIZE, n=SIZE)
def test_expand_of_fewer_dims_as_clips_class_embedding(d: int, t: int, n: int) -> None:
    """modeling_clip.py: ``self.class_embedding.expand(batch_size, 1, -1)``, (D,) to (B, 1, D)."""
    _agree(Expand((0,)), [(d,), (n, t, d)], lambda a, b: (a.expand(b.shape[0], 1, -1), b))


@settings(max_examples=80)  # torch calls on small tensors; enough sizes
@given(
    shape=st.lists(SIZE, min_size=1, max_size=3).map(tuple),
    extra=st.lists(st.integers(1, 3), max_size=2),
    times=st.lists(st.integers(0, 3), min_size=3, max_size=3),
)
def test_tile_against_tensor_repeat(
    shape: tuple[int, ...], extra: list[int], times: list[int]
) -> None:
    sizes = (*extra, *times[: len(shape)])
    _agree(Tile(sizes), [shape], lambda x: x.repeat(*sizes))


@settings(max_examples=80)  # torch calls on small tensors; enough sizes
@given(d=SIZE, t=SIZE, n=SIZE)
def test_tile_like_as_siglips_probe(d: int, t: int, n: int) -> None:
    """modeling_siglip.py: ``probe = self.probe.repeat(batch_size, 1, 1)``."""
    _agree(
        Tile((1, 1, 1), like=True),
        [(1, 1, d), (n, t, d)],
        lambda p, x: (p.repeat(x.shape[0], 1, 1), x),
    )


@settings(max_examples=80)  # torch calls on small tensors; enough sizes
@given(shape=st.lists(SIZE, max_size=4).map(tuple))
def test_quick_gelu_against_transformers(shape: tuple[int, ...]) -> None:
    activations = pytest.importorskip("transformers.activations")
    twin = activations.QuickGELUActivation()
    spec = QuickGELU()
    built = shapecalc.build(spec, device="cpu")
    x = torch.randn(shape, requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        out = twin(x)
    work = spec.work(shape)
    assert work.outputs == (tuple(out.shape),) and counter.get_total_flops() == 2 * work.macs
    assert torch.equal(built(x), out)
    assert kept_bytes(twin, [x]) == work.kept_bytes(4)


@settings(max_examples=60)
@given(
    shape=st.lists(st.integers(0, 5), min_size=1, max_size=4).map(tuple),
    chunks=st.integers(1, 6),
    dim=st.integers(-5, 4),
)
def test_split_against_tensor_chunk(shape: tuple[int, ...], chunks: int, dim: int) -> None:
    """ShuffleNet's ``x.chunk(2, dim=1)``, of any size, chunks and dim (an empty dim, a
    dim that leaves fewer pieces than chunks, one out of range)."""
    from shapecalc import Split

    _agree(Split(chunks, dim), [shape], lambda x: tuple(x.chunk(chunks, dim)))


@settings(max_examples=60)
@given(
    shape=st.lists(SIZE, min_size=1, max_size=3).map(tuple),
    dim=st.integers(-4, 3),
    factors=st.lists(SIZE, min_size=1, max_size=3),
    hole=st.booleans(),
)
def test_unflatten_against_tensor_unflatten(
    shape: tuple[int, ...], dim: int, factors: list[int], hole: bool
) -> None:
    """ShuffleNet's channel shuffle views C as (groups, C / groups): any dim, sizes whose
    product fits or not, one -1."""
    from shapecalc import Unflatten

    sizes = tuple([-1, *factors[1:]] if hole else factors)
    _agree(Unflatten(dim, sizes), [shape], lambda x: x.unflatten(dim, sizes))


@settings(max_examples=60)
@given(
    shape=st.lists(SIZE, min_size=1, max_size=4).map(tuple),
    dims=st.lists(st.integers(-5, 4), min_size=1, max_size=3),
    keepdim=st.booleans(),
)
def test_mean_against_tensor_mean(shape: tuple[int, ...], dims: list[int], keepdim: bool) -> None:
    """ShuffleNet's and MNASNet's ``x.mean([2, 3])``: any dims (repeated or out of range
    refused as torch refuses them), with or without keepdim."""
    from shapecalc import Mean

    _agree(Mean(tuple(dims), keepdim), [shape], lambda x: x.mean(dims, keepdim=keepdim))
