"""Per layer kind: a strategy for valid constructor arguments, one for input shapes that
fit a given spec, and one for loose arguments (some of which torch refuses).

Every registered kind must have an entry here (tests/test_registry.py checks it).
Dependent values are drawn together (channels as groups × per-group, embed_dim as
heads × head_dim) instead of being filtered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from shapecalc.core.spec import LayerSpec

Args = dict[str, Any]
Shapes = tuple[tuple[int, ...], ...]

SIZE = st.integers(min_value=1, max_value=12)
BIG = st.one_of(SIZE, st.integers(min_value=1, max_value=5000))
LOOSE = st.integers(min_value=-2, max_value=6)
BOOL = st.booleans()


@dataclass(frozen=True)
class Case:
    args: st.SearchStrategy[Args]
    #: input shapes for a spec built from args
    inputs: Callable[[LayerSpec], st.SearchStrategy[Shapes]]
    #: arguments drawn loosely, to compare what torch and shapecalc refuse
    loose: st.SearchStrategy[Args]
    #: inputs are token indices (embeddings), not floats
    indices: bool = False
    #: for kinds whose torch constructor stores its arguments unchecked and whose forward
    #: checks them: input shapes that loose arguments torch accepts at all can run on, so
    #: that a forward refusing them counts as torch refusing the arguments
    probe: Callable[[Args], Shapes] | None = None


def _batch_dims(draw: st.DrawFn, lo: int = 0, hi: int = 2) -> tuple[int, ...]:
    return tuple(draw(st.lists(st.integers(1, 3), min_size=lo, max_size=hi)))


# -- recurrent -----------------------------------------------------------------------------
@st.composite
def recurrent_args(draw: st.DrawFn, kind: str, sizes: st.SearchStrategy[int] = BIG) -> Args:
    hidden = draw(sizes)
    args: Args = {
        "input_size": draw(sizes),
        "hidden_size": hidden,
        "num_layers": draw(st.integers(1, 6)),  # above 4, identical layers form a block
        "bias": draw(BOOL),
        "batch_first": draw(BOOL),
        "dropout": draw(st.sampled_from([0.0, 0.5])),
        "bidirectional": draw(BOOL),
    }
    if kind == "LSTM":
        args["proj_size"] = draw(st.one_of(st.just(0), st.integers(0, hidden - 1)))
    if kind == "RNN":
        args["nonlinearity"] = draw(st.sampled_from(["tanh", "relu"]))
    return args


def recurrent_inputs(spec: Any) -> st.SearchStrategy[Shapes]:
    @st.composite
    def draw_shape(draw: st.DrawFn) -> Shapes:
        t, n = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        if draw(BOOL):
            return ((t, spec.input_size),)
        return (((n, t) if spec.batch_first else (t, n)) + (spec.input_size,),)

    return draw_shape()


@st.composite
def recurrent_loose(draw: st.DrawFn, kind: str) -> Args:
    args: Args = {
        "input_size": draw(LOOSE),
        "hidden_size": draw(LOOSE),
        "num_layers": draw(st.integers(-1, 3)),
        "dropout": draw(st.sampled_from([-0.5, 0.0, 0.3, 1.0, 1.5])),
        "bias": draw(st.sampled_from([True, False, 1])),
    }
    if kind == "LSTM":
        args["proj_size"] = draw(LOOSE)
    if kind == "RNN":
        args["nonlinearity"] = draw(st.sampled_from(["tanh", "relu", "sigmoid"]))
    return args


@st.composite
def cell_args(draw: st.DrawFn, kind: str, sizes: st.SearchStrategy[int] = BIG) -> Args:
    args: Args = {"input_size": draw(sizes), "hidden_size": draw(sizes), "bias": draw(BOOL)}
    if kind == "RNNCell":
        args["nonlinearity"] = draw(st.sampled_from(["tanh", "relu"]))
    return args


def cell_inputs(spec: Any) -> st.SearchStrategy[Shapes]:
    return st.sampled_from([((spec.input_size,),), ((2, spec.input_size),)])


@st.composite
def cell_loose(draw: st.DrawFn, kind: str) -> Args:
    return {"input_size": draw(LOOSE), "hidden_size": draw(LOOSE), "bias": draw(BOOL)}


# -- linear family -------------------------------------------------------------------------
def feature_inputs(size: Callable[[Any], int]) -> Callable[[Any], st.SearchStrategy[Shapes]]:
    def inputs(spec: Any) -> st.SearchStrategy[Shapes]:
        @st.composite
        def draw_shape(draw: st.DrawFn) -> Shapes:
            return ((*_batch_dims(draw), size(spec)),)

        return draw_shape()

    return inputs


@st.composite
def bilinear_inputs_(draw: st.DrawFn, spec: Any) -> Shapes:
    lead = _batch_dims(draw)
    return ((*lead, spec.in1_features), (*lead, spec.in2_features))


def any_inputs(spec: Any) -> st.SearchStrategy[Shapes]:
    return st.lists(st.integers(1, 4), min_size=1, max_size=4).map(lambda s: (tuple(s),))


@st.composite
def flatten_args(draw: st.DrawFn) -> Args:
    return {"start_dim": draw(st.integers(-3, 2)), "end_dim": draw(st.integers(-1, 2))}


def flatten_inputs(spec: Any) -> st.SearchStrategy[Shapes]:
    # ranks where both dims are in range and start <= end (torch refuses the rest)
    def fits(shapes: Shapes) -> bool:
        rank = len(shapes[0])
        s, e = spec.start_dim, spec.end_dim
        return -rank <= s < rank and -rank <= e < rank and s % rank <= e % rank

    candidates = [((2,) * r,) for r in range(1, 5)]
    ok = [c for c in candidates if fits(c)] or [((2, 3, 4, 5),)]
    return st.sampled_from(ok)


# -- embeddings ----------------------------------------------------------------------------
@st.composite
def embedding_args(draw: st.DrawFn, bag: bool = False) -> Args:
    n = draw(BIG)
    args: Args = {"num_embeddings": n, "embedding_dim": draw(BIG)}
    if draw(BOOL):
        args["padding_idx"] = draw(st.integers(-n, n - 1))
    if draw(BOOL):
        args["max_norm"] = draw(st.sampled_from([1.0, 2.5]))
    if bag:
        args["mode"] = draw(st.sampled_from(["sum", "mean", "max"]))
        args["include_last_offset"] = draw(BOOL)
    return args


def embedding_inputs(spec: Any) -> st.SearchStrategy[Shapes]:
    return st.lists(st.integers(1, 4), max_size=3).map(lambda s: (tuple(s),))


@st.composite
def embedding_bag_inputs_(draw: st.DrawFn, spec: Any) -> Shapes:
    if draw(BOOL):
        return ((draw(st.integers(1, 3)), draw(st.integers(1, 4))),)
    bags = draw(st.integers(2 if spec.include_last_offset else 1, 4))
    return ((bags * 2,), (bags,))


@st.composite
def embedding_loose(draw: st.DrawFn) -> Args:
    return {
        "num_embeddings": draw(LOOSE),
        "embedding_dim": draw(LOOSE),
        "padding_idx": draw(st.one_of(st.none(), st.integers(-8, 8))),
    }


# -- convolutions --------------------------------------------------------------------------
@st.composite
def conv_args(draw: st.DrawFn, dims: int, transposed: bool) -> Args:
    groups = draw(st.integers(1, 3))
    tup = st.lists(st.integers(1, 3), min_size=dims, max_size=dims).map(tuple)
    args: Args = {
        "in_channels": groups * draw(st.integers(1, 4)),
        "out_channels": groups * draw(st.integers(1, 4)),
        "kernel_size": draw(st.one_of(st.integers(1, 3), tup)),
        "stride": draw(st.one_of(st.integers(1, 3), tup)),
        "dilation": draw(
            st.one_of(st.integers(1, 2), tup.map(lambda t: tuple(min(x, 2) for x in t)))
        ),
        "groups": groups,
        "bias": draw(BOOL),
    }
    if transposed:
        args["padding"] = draw(st.integers(0, 2))
        limit = min(_all(args["stride"], dims) + _all(args["dilation"], dims))
        args["output_padding"] = draw(st.integers(0, max(limit - 1, 0)))
    else:
        stride_one = all(s == 1 for s in _all(args["stride"], dims))
        options = [st.integers(0, 2), st.just("valid")]
        if stride_one:
            options.append(st.just("same"))
        args["padding"] = draw(st.one_of(*options))
        args["padding_mode"] = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
    return args


def _all(value: Any, dims: int) -> list[int]:
    return list(value) if isinstance(value, tuple) else [value] * dims


def conv_inputs(spec: Any) -> st.SearchStrategy[Shapes]:
    @st.composite
    def draw_shape(draw: st.DrawFn) -> Shapes:
        n = spec.dims
        k, d = _all(spec.kernel_size, n), _all(spec.dilation, n)
        pad = spec.padding if isinstance(spec.padding, int) else 0
        # big enough for the window, and for reflect padding (pad < size)
        spatial = tuple(
            max(d[i] * (k[i] - 1) + 1, pad + 1) + draw(st.integers(0, 4)) for i in range(n)
        )
        lead = (draw(st.integers(1, 2)),) if draw(BOOL) else ()
        return ((*lead, spec.in_channels, *spatial),)

    return draw_shape()


@st.composite
def conv_loose(draw: st.DrawFn, dims: int, transposed: bool) -> Args:
    args: Args = {
        "in_channels": draw(LOOSE),
        "out_channels": draw(LOOSE),
        "kernel_size": draw(st.integers(0, 3)),
        "groups": draw(st.integers(-1, 3)),
        "stride": draw(st.integers(1, 2)),
    }
    if transposed:
        args["padding_mode"] = draw(st.sampled_from(["zeros", "reflect"]))
    else:
        args["padding"] = draw(st.sampled_from([0, 1, "same", "valid", "full"]))
        args["padding_mode"] = draw(st.sampled_from(["zeros", "reflect", "mirror"]))
    return args


# -- normalisation -------------------------------------------------------------------------
@st.composite
def batch_norm_args(draw: st.DrawFn, instance: bool = False) -> Args:
    return {
        "num_features": draw(BIG),
        "eps": draw(st.sampled_from([1e-5, 1e-3])),
        "momentum": draw(st.sampled_from([0.1, None])),
        "affine": draw(BOOL),
        "track_running_stats": draw(BOOL),
        "bias": draw(BOOL),
    }


def norm_inputs(spec: Any) -> st.SearchStrategy[Shapes]:
    @st.composite
    def draw_shape(draw: st.DrawFn) -> Shapes:
        rank = draw(st.sampled_from(spec.ranks))
        batched = rank == spec.ranks[-1] if spec.kind.startswith("Instance") else True
        lead = (draw(st.integers(2, 3)),) if batched else ()
        rest = tuple(draw(st.integers(2, 3)) for _ in range(rank - len(lead) - 1))
        return ((*lead, spec.num_features, *rest),)

    return draw_shape()


@st.composite
def batch_norm_loose(draw: st.DrawFn) -> Args:
    return {
        "num_features": draw(LOOSE),
        "affine": True,
        "track_running_stats": draw(BOOL),
        "momentum": draw(st.sampled_from([0.1, None])),
    }


@st.composite
def shape_norm_args(draw: st.DrawFn, rms: bool = False) -> Args:
    dims = draw(st.lists(st.integers(1, 6), min_size=1, max_size=3))
    args: Args = {
        "normalized_shape": dims[0] if len(dims) == 1 and draw(BOOL) else tuple(dims),
        "elementwise_affine": draw(BOOL),
    }
    if not rms:
        args["bias"] = draw(BOOL)
    return args


def shape_norm_inputs(spec: Any) -> st.SearchStrategy[Shapes]:
    @st.composite
    def draw_shape(draw: st.DrawFn) -> Shapes:
        return ((*_batch_dims(draw), *spec.dims),)

    return draw_shape()


@st.composite
def shape_norm_loose(draw: st.DrawFn) -> Args:
    return {
        "normalized_shape": tuple(draw(st.lists(LOOSE, min_size=1, max_size=2))),
        "elementwise_affine": True,
    }


@st.composite
def group_norm_args(draw: st.DrawFn) -> Args:
    groups = draw(st.integers(1, 4))
    return {
        "num_groups": groups,
        "num_channels": groups * draw(st.integers(1, 4)),
        "affine": draw(BOOL),
        "bias": draw(BOOL),
    }


def group_norm_inputs(spec: Any) -> st.SearchStrategy[Shapes]:
    @st.composite
    def draw_shape(draw: st.DrawFn) -> Shapes:
        rest = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
        return ((draw(st.integers(1, 3)), spec.num_channels, *rest),)

    return draw_shape()


@st.composite
def group_norm_loose(draw: st.DrawFn) -> Args:
    return {"num_groups": draw(st.integers(0, 4)), "num_channels": draw(st.integers(0, 8))}


# -- attention -----------------------------------------------------------------------------
@st.composite
def mha_args(draw: st.DrawFn) -> Args:
    heads = draw(st.integers(1, 4))
    args: Args = {
        "embed_dim": heads * draw(st.integers(1, 4)),
        "num_heads": heads,
        "bias": draw(BOOL),
        "add_bias_kv": draw(BOOL),
        "add_zero_attn": draw(BOOL),
        "batch_first": draw(BOOL),
    }
    for name in ("kdim", "vdim"):
        if draw(BOOL):
            args[name] = draw(st.integers(1, 9))
    return args


def mha_inputs(spec: Any) -> st.SearchStrategy[Shapes]:
    @st.composite
    def draw_shape(draw: st.DrawFn) -> Shapes:
        length, source, batch = (draw(st.integers(1, 4)) for _ in range(3))
        k, v, e = spec.key_size, spec.value_size, spec.embed_dim
        if draw(BOOL):
            return ((length, e), (source, k), (source, v))
        if spec.batch_first:
            return ((batch, length, e), (batch, source, k), (batch, source, v))
        return ((length, batch, e), (source, batch, k), (source, batch, v))

    return draw_shape()


@st.composite
def mha_loose(draw: st.DrawFn) -> Args:
    args: Args = {"embed_dim": draw(st.integers(-1, 8)), "num_heads": draw(st.integers(-1, 4))}
    if draw(BOOL):
        args["kdim"] = draw(st.integers(-1, 5))
    return args


@st.composite
def transformer_args(draw: st.DrawFn) -> Args:
    heads = draw(st.integers(1, 4))
    return {
        "d_model": heads * draw(st.integers(1, 4)),
        "nhead": heads,
        "dim_feedforward": draw(st.integers(1, 32)),
        "dropout": draw(st.sampled_from([0.0, 0.1])),
        "activation": draw(st.sampled_from(["relu", "gelu"])),
        "batch_first": draw(BOOL),
        "norm_first": draw(BOOL),
        "bias": draw(BOOL),
    }


def transformer_inputs(decoder: bool) -> Callable[[Any], st.SearchStrategy[Shapes]]:
    def inputs(spec: Any) -> st.SearchStrategy[Shapes]:
        @st.composite
        def draw_shape(draw: st.DrawFn) -> Shapes:
            length, source, batch = (draw(st.integers(1, 4)) for _ in range(3))
            d = spec.d_model
            if draw(BOOL):
                tgt, memory = (length, d), (source, d)
            elif spec.batch_first:
                tgt, memory = (batch, length, d), (batch, source, d)
            else:
                tgt, memory = (length, batch, d), (source, batch, d)
            return (tgt, memory) if decoder else (tgt,)

        return draw_shape()

    return inputs


@st.composite
def transformer_loose(draw: st.DrawFn) -> Args:
    return {
        "d_model": draw(st.integers(-1, 8)),
        "nhead": draw(st.integers(-1, 4)),
        "dropout": draw(st.sampled_from([-0.5, 0.1, 1.0, 1.5])),
        "activation": draw(st.sampled_from(["relu", "gelu", "swish"])),
    }


# -- activations ---------------------------------------------------------------------------
def activation_inputs(spec: Any) -> st.SearchStrategy[Shapes]:
    """Any rank, a scalar too (a Softmax dim may be outside it: torch refuses then)."""
    return st.lists(st.integers(1, 4), max_size=4).map(lambda s: (tuple(s),))


def activation_case(args: Args, loose: Args | None = None) -> Case:
    """args and loose: field -> the values to draw from."""
    fixed = {k: st.sampled_from(v) for k, v in args.items()}
    loosened = {k: st.sampled_from(v) for k, v in (loose or args).items()}
    return Case(
        st.fixed_dictionaries(fixed),
        activation_inputs,
        st.fixed_dictionaries(loosened),
        probe=lambda _: ((2, 3, 4),),
    )


INPLACE = {"inplace": [False, True]}
SOFTMAX = activation_case(
    {"dim": [None, -3, -2, -1, 0, 1, 2]}, {"dim": [None, -2, 0, 1, True, 1.0, "a"]}
)


# -- pooling -------------------------------------------------------------------------------
def _spread(value: Any, dims: int) -> list[int]:
    """An int-or-tuple pooling argument per dimension (a tuple of one is for all)."""
    items = list(value) if isinstance(value, tuple) else [value]
    return items * dims if len(items) == 1 else items


def _per_dim(lo: int, hi: int, dims: int) -> st.SearchStrategy[Any]:
    """An int, a tuple of one (for every dimension) or a tuple of one per dimension."""
    ints = st.integers(lo, hi)
    return st.one_of(
        ints, ints.map(lambda x: (x,)), st.lists(ints, min_size=dims, max_size=dims).map(tuple)
    )


@st.composite
def pool_args(draw: st.DrawFn, dims: int, kind: str) -> Args:
    kernel = draw(_per_dim(1, 4, dims))
    half = min(_spread(kernel, dims)) // 2
    args: Args = {
        "kernel_size": kernel,
        "stride": draw(st.one_of(st.none(), st.just(()), _per_dim(1, 3, dims))),
        "padding": draw(_per_dim(0, half, dims)),
        "ceil_mode": draw(BOOL),
    }
    if kind == "max":
        args["dilation"] = draw(_per_dim(1, 3, dims))
        args["return_indices"] = draw(BOOL)
    else:
        args["count_include_pad"] = draw(BOOL)
        if dims > 1:
            args["divisor_override"] = draw(st.sampled_from([None, -2, 1, 3]))
    return args


def pool_inputs(spec: Any) -> st.SearchStrategy[Shapes]:
    """Batched or not; spatial sizes from 1 (often smaller than the window: torch
    refuses then)."""

    @st.composite
    def draw_shape(draw: st.DrawFn) -> Shapes:
        lead = (draw(st.integers(1, 2)),) if draw(BOOL) else ()
        spatial = tuple(draw(st.integers(1, 12)) for _ in range(spec.dims))
        return ((*lead, draw(st.integers(1, 3)), *spatial),)

    return draw_shape()


@st.composite
def pool_loose(draw: st.DrawFn, dims: int, kind: str) -> Args:
    tuples = [(), (2,), (2,) * dims, (2,) * (dims + 1), (0,) * dims]
    args: Args = {
        "kernel_size": draw(st.one_of(st.integers(-1, 4), st.sampled_from([*tuples, 2.0]))),
        "stride": draw(st.one_of(st.none(), st.integers(-1, 3), st.sampled_from(tuples))),
        "padding": draw(st.one_of(st.integers(-1, 3), st.sampled_from(tuples))),
        "ceil_mode": draw(st.sampled_from([False, True, 1])),
    }
    if kind == "max":
        args["dilation"] = draw(st.one_of(st.integers(-1, 3), st.sampled_from(tuples)))
        args["return_indices"] = draw(BOOL)
    else:
        args["count_include_pad"] = draw(st.sampled_from([True, False, 1]))
        if dims > 1:
            args["divisor_override"] = draw(st.sampled_from([None, 0, -2, 3, True, 2.5]))
    return args


def pool_probe(dims: int) -> Callable[[Args], Shapes]:
    """Spatial sizes of 16 hold any window the loose arguments draw (kernel 4, dilation
    3, padding up to half the kernel)."""
    return lambda _: ((1, 2, *(16,) * dims),)


@st.composite
def adaptive_args(draw: st.DrawFn, dims: int, kind: str) -> Args:
    size = st.integers(0, 6)
    entry = st.one_of(size, st.none()) if dims > 1 else size
    args: Args = {
        "output_size": draw(
            st.one_of(size, st.lists(entry, min_size=dims, max_size=dims).map(tuple))
        )
    }
    if kind == "max":
        args["return_indices"] = draw(BOOL)
    return args


def adaptive_inputs(spec: Any) -> st.SearchStrategy[Shapes]:
    """Mostly (N, C, *spatial) or (C, *spatial); now and then another rank (average
    pooling to one number per channel takes any rank from dims up)."""

    @st.composite
    def draw_shape(draw: st.DrawFn) -> Shapes:
        n = spec.dims
        rank = draw(st.sampled_from([n + 1, n + 2, n + 2, n, n + 3]))
        return (tuple(draw(st.integers(1, 9)) for _ in range(rank)),)

    return draw_shape()


@st.composite
def adaptive_loose(draw: st.DrawFn, dims: int, kind: str) -> Args:
    options = [-1, 0, 3, None, True, 2.0, (3,), (None,), (3,) * dims, (None,) * dims]
    args: Args = {"output_size": draw(st.sampled_from([*options, (3,) * (dims + 1)]))}
    if kind == "max":
        args["return_indices"] = draw(BOOL)
    return args


#: Upsample's modes and the input rank each takes (0: 3-, 4- or 5-D)
UPSAMPLE_RANKS = {
    "nearest": 0,
    "linear": 3,
    "bilinear": 4,
    "bicubic": 4,
    "trilinear": 5,
    "area": 0,
    "nearest-exact": 0,
}
SCALES = [0.5, 1.0, 1.5, 2, 2.5, 3, 0.3]


@st.composite
def upsample_args(draw: st.DrawFn) -> Args:
    mode = draw(st.sampled_from(sorted(UPSAMPLE_RANKS)))
    n = (UPSAMPLE_RANKS[mode] or draw(st.integers(3, 5))) - 2
    args: Args = {"mode": mode}
    if draw(BOOL):
        size = st.integers(0 if mode == "area" else 1, 6)
        args["size"] = draw(st.one_of(size, st.lists(size, min_size=n, max_size=n).map(tuple)))
    else:
        scale = st.sampled_from(SCALES)
        args["scale_factor"] = draw(
            st.one_of(scale, st.lists(scale, min_size=n, max_size=n).map(tuple))
        )
        args["recompute_scale_factor"] = draw(st.sampled_from([None, False, True]))
    if mode in ("linear", "bilinear", "bicubic", "trilinear"):
        args["align_corners"] = draw(st.sampled_from([None, False, True]))
    return args


def upsample_rank(args: Args) -> int:
    """The input rank Upsample's arguments take (4 when any of 3, 4, 5 would do)."""
    given = args.get("size") if args.get("size") is not None else args.get("scale_factor")
    fixed = UPSAMPLE_RANKS.get(args.get("mode", "nearest"), 0)
    if fixed:
        return fixed
    return len(given) + 2 if isinstance(given, (tuple, list)) else 4


def upsample_inputs(spec: Any) -> st.SearchStrategy[Shapes]:
    @st.composite
    def draw_shape(draw: st.DrawFn) -> Shapes:
        rank = upsample_rank(spec.arguments())
        if UPSAMPLE_RANKS[spec.mode] == 0 and not isinstance(
            spec.size if spec.size is not None else spec.scale_factor, tuple
        ):
            rank = draw(st.integers(3, 5))
        rank = draw(st.sampled_from([rank] * 6 + [2, 6]))  # now and then one torch refuses
        return (tuple(draw(st.integers(1, 6)) for _ in range(rank)),)

    return draw_shape()


@st.composite
def upsample_loose(draw: st.DrawFn) -> Args:
    args: Args = {"mode": draw(st.sampled_from([*UPSAMPLE_RANKS, "lanczos", "cubic"]))}
    if draw(BOOL):
        args["size"] = draw(st.sampled_from([None, 0, -1, 3, (2, 3), (), (2, 3, 4, 5), True]))
    if draw(BOOL):
        args["scale_factor"] = draw(
            st.sampled_from([None, 0, 2, -1, "2", "x", [2, 2], (2, 2), float("nan")])
        )
    args["align_corners"] = draw(st.sampled_from([None, True, 1]))
    args["recompute_scale_factor"] = draw(st.sampled_from([None, True, False]))
    return args


def upsample_probe(args: Args) -> Shapes:
    return ((1, 2, *(8,) * (upsample_rank(args) - 2)),)


# -- the table -----------------------------------------------------------------------------
def _conv_cases() -> dict[str, Case]:
    cases = {}
    for dims in (1, 2, 3):
        for transposed in (False, True):
            kind = f"Conv{'Transpose' if transposed else ''}{dims}d"
            cases[kind] = Case(
                conv_args(dims, transposed), conv_inputs, conv_loose(dims, transposed)
            )
    return cases


def _pool_cases() -> dict[str, Case]:
    cases = {}
    for dims in (1, 2, 3):
        for kind in ("max", "avg"):
            cases[f"{kind.title()}Pool{dims}d"] = Case(
                pool_args(dims, kind), pool_inputs, pool_loose(dims, kind), probe=pool_probe(dims)
            )
            cases[f"Adaptive{kind.title()}Pool{dims}d"] = Case(
                adaptive_args(dims, kind),
                adaptive_inputs,
                adaptive_loose(dims, kind),
                probe=pool_probe(dims),
            )
    return cases


def _norm_cases() -> dict[str, Case]:
    cases = {}
    for dims in (1, 2, 3):
        cases[f"BatchNorm{dims}d"] = Case(batch_norm_args(), norm_inputs, batch_norm_loose())
        cases[f"InstanceNorm{dims}d"] = Case(
            batch_norm_args(instance=True), norm_inputs, batch_norm_loose()
        )
    return cases


CASES: dict[str, Case] = {
    **{
        kind: Case(recurrent_args(kind), recurrent_inputs, recurrent_loose(kind))
        for kind in ("RNN", "GRU", "LSTM")
    },
    **{
        kind: Case(cell_args(kind), cell_inputs, cell_loose(kind))
        for kind in ("RNNCell", "GRUCell", "LSTMCell")
    },
    "Linear": Case(
        st.fixed_dictionaries({"in_features": BIG, "out_features": BIG, "bias": BOOL}),
        feature_inputs(lambda s: s.in_features),
        st.fixed_dictionaries({"in_features": LOOSE, "out_features": LOOSE}),
    ),
    "Bilinear": Case(
        st.fixed_dictionaries(
            {"in1_features": SIZE, "in2_features": SIZE, "out_features": BIG, "bias": BOOL}
        ),
        lambda spec: bilinear_inputs_(spec),
        st.fixed_dictionaries(
            {"in1_features": LOOSE, "in2_features": LOOSE, "out_features": LOOSE}
        ),
    ),
    "Identity": Case(st.just({}), any_inputs, st.just({})),
    "Dropout": Case(
        st.fixed_dictionaries({"p": st.sampled_from([0.0, 0.5, 1.0])}),
        any_inputs,
        st.fixed_dictionaries({"p": st.sampled_from([-0.5, 0.0, 0.5, 1.0, 1.5])}),
    ),
    "Flatten": Case(flatten_args(), flatten_inputs, flatten_args()),
    "Embedding": Case(embedding_args(), embedding_inputs, embedding_loose(), indices=True),
    "EmbeddingBag": Case(
        embedding_args(bag=True),
        lambda spec: embedding_bag_inputs_(spec),
        embedding_loose(),
        indices=True,
    ),
    **_conv_cases(),
    **_norm_cases(),
    "LayerNorm": Case(shape_norm_args(), shape_norm_inputs, shape_norm_loose()),
    "RMSNorm": Case(shape_norm_args(rms=True), shape_norm_inputs, shape_norm_loose()),
    "GroupNorm": Case(group_norm_args(), group_norm_inputs, group_norm_loose()),
    "MultiheadAttention": Case(mha_args(), mha_inputs, mha_loose()),
    "TransformerEncoderLayer": Case(
        transformer_args(), transformer_inputs(decoder=False), transformer_loose()
    ),
    "TransformerDecoderLayer": Case(
        transformer_args(), transformer_inputs(decoder=True), transformer_loose()
    ),
    "PReLU": Case(
        st.fixed_dictionaries({"num_parameters": st.sampled_from([1, 3, 7])}),
        lambda spec: (
            st.just(((2, spec.num_parameters, 4),))
            if spec.num_parameters != 1
            else any_inputs(spec)
        ),
        st.fixed_dictionaries({"num_parameters": LOOSE}),
    ),
    **{
        kind: activation_case(INPLACE)
        for kind in ("ReLU", "ReLU6", "SiLU", "Mish", "Hardswish", "Hardsigmoid")
    },
    **{kind: activation_case({}) for kind in ("Sigmoid", "Tanh")},
    "LeakyReLU": activation_case(
        {"negative_slope": [0.01, 0.2, -0.5, 3.0], **INPLACE},
        {"negative_slope": [0.01, -1, "0.1", None], **INPLACE},
    ),
    "ELU": activation_case(
        {"alpha": [1.0, 0.5, -1.0], **INPLACE}, {"alpha": [1.0, 0, "1", None], **INPLACE}
    ),
    "GELU": activation_case(
        {"approximate": ["none", "tanh"]}, {"approximate": ["none", "tanh", "fast", None]}
    ),
    "Softplus": activation_case(
        {"beta": [1.0, 2.0, 0.5], "threshold": [20.0, 1.0]},
        {"beta": [1.0, 0, -2, "1", None], "threshold": [20.0, -1, None]},
    ),
    "Softmax": SOFTMAX,
    "LogSoftmax": SOFTMAX,
    **_pool_cases(),
    "Upsample": Case(upsample_args(), upsample_inputs, upsample_loose(), probe=upsample_probe),
}

#: smaller arguments for the tests that run every forward for real (FLOPs, saved tensors):
#: recurrent layers with thousands of units and six layers take seconds per example
_RUN_ARGS: dict[str, st.SearchStrategy[Args]] = {
    **{kind: recurrent_args(kind, SIZE) for kind in ("RNN", "GRU", "LSTM")},
    **{kind: cell_args(kind, SIZE) for kind in ("RNNCell", "GRUCell", "LSTMCell")},
}


def run_args(kind: str) -> st.SearchStrategy[Args]:
    """Arguments for a test that runs the module: small recurrent sizes, else CASES'."""
    return _RUN_ARGS.get(kind, CASES[kind].args)
