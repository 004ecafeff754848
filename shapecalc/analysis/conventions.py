"""The same network as PyTorch, Keras and ONNX store it: names, shapes, gate order, counts.

The engine's layer specs follow PyTorch. This module turns a model's tensors into another
framework's convention:

- **Keras** (Keras 3): a weight matrix is stored (in, out): ``kernel`` (d_in, G·H) and
  ``recurrent_kernel`` (H, G·H) of a recurrent cell, ``kernel`` (in, out) of ``Dense``,
  (kh, kw, in/groups, out) of ``Conv2D``. A recurrent layer keeps **one** bias per gate
  block (LSTM: 4·H, SimpleRNN: H), except the GRU with ``reset_after=True`` (the default),
  whose bias is (2, 3·H): PyTorch's two biases. A stacked or bidirectional PyTorch layer
  is one Keras layer per layer (``lstm``, ``lstm_1``; ``bidirectional`` wrapping
  ``forward_lstm`` and ``backward_lstm``). ``BatchNormalization`` counts its
  ``moving_mean`` and ``moving_variance`` among its (non-trainable) weights.
- **ONNX** (as ``torch.onnx.export`` writes it): a recurrent layer is one operator per
  layer with ``W`` (D, G·H, d_in), ``R`` (D, G·H, H) and ``B`` (D, 2·G·H) (both biases,
  input side then hidden side), gates reordered (LSTM i, o, f, c; GRU z, r, h). Other
  parameters keep PyTorch's names and shapes; batch-norm running statistics are
  initializers like any weight.

Example:

    >>> import shapecalc
    >>> keras = convert(shapecalc.lstm_lm(vocab=65, hidden=512, layers=2), "keras")
    >>> for _, p in keras.tensors[1:4]:
    ...     print(p.name, p.shape)
    lstm/lstm_cell/kernel (512, 2048)
    lstm/lstm_cell/recurrent_kernel (512, 2048)
    lstm/lstm_cell/bias (2048,)
    >>> keras.total, keras.differences[0].reason
    (4265025, 'Keras keeps one bias per gate block (4·H) where PyTorch keeps two: 4,096 fewer')
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

from shapecalc.core.choices import CONVENTIONS
from shapecalc.core.dims import Dim, count_str, dim_str
from shapecalc.core.errors import InvalidArgumentError, ShapecalcError, echo, require_one_of
from shapecalc.core.model import Model, full_name
from shapecalc.core.spec import LayerSpec, Param, expand
from shapecalc.layers.recurrent import _layer_range

__all__ = [
    "CONVENTIONS",
    "FRAMEWORK_NAMES",
    "GATE_ORDER",
    "Converted",
    "Difference",
    "convert",
    "convert_with_template",
    "gate_order",
    "layer_tensors",
    "params",
]

#: each convention's framework, as people write it
FRAMEWORK_NAMES = {"pytorch": "PyTorch", "keras": "Keras", "onnx": "ONNX"}

#: (convention, recurrent kind) -> how the gate blocks are stacked
GATE_ORDER: dict[tuple[str, str], str] = {
    ("pytorch", "LSTM"): "i, f, g, o (input, forget, cell candidate, output)",
    ("keras", "LSTM"): "i, f, c, o (input, forget, cell candidate, output)",
    ("onnx", "LSTM"): "i, o, f, c (input, output, forget, cell candidate)",
    ("pytorch", "GRU"): "r, z, n (reset, update, new)",
    ("keras", "GRU"): "z, r, h (update, reset, candidate)",
    ("onnx", "GRU"): "z, r, h (update, reset, hidden candidate)",
    ("pytorch", "RNN"): "one block, no gates",
    ("keras", "RNN"): "one block, no gates",
    ("onnx", "RNN"): "one block, no gates",
}
_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
_KERAS_RECURRENT = {"LSTM": ("lstm", "lstm_cell"), "GRU": ("gru", "gru_cell")}
_KERAS_RECURRENT["RNN"] = ("simple_rnn", "simple_rnn_cell")
#: layer kind -> the Keras layer's default name
_KERAS_NAMES = {
    "Linear": "dense",
    "Embedding": "embedding",
    "Conv1d": "conv1d",
    "Conv2d": "conv2d",
    "Conv3d": "conv3d",
    "LayerNorm": "layer_normalization",
    "BatchNorm1d": "batch_normalization",
    "BatchNorm2d": "batch_normalization",
    "BatchNorm3d": "batch_normalization",
}


@dataclass(frozen=True)
class Difference:
    """Why a layer's count differs from PyTorch's: ``delta`` (the convention's count
    minus PyTorch's) and the reason in one line."""

    layer: str
    delta: Dim
    reason: str


@dataclass(frozen=True)
class Converted:
    """A model's tensors in one framework's convention."""

    convention: str
    #: (the model's layer name, the tensor with the framework's full name)
    tensors: tuple[tuple[str, Param], ...]
    differences: tuple[Difference, ...]
    #: recurrent layer -> its gate order in this convention
    gate_orders: dict[str, str]
    #: full name of a tied tensor -> the tensor it shares
    ties: dict[str, str]

    @property
    def total(self) -> Dim:
        """Numbers stored, each shared tensor once (Keras: what ``count_params`` says)."""
        return sum((p.count for _, p in self.tensors if p.name not in self.ties), start=0)

    def twins(self, template: Converted | None) -> list[Param | None]:
        """Each tensor's twin in the symbolic ``template`` (whose counts are the formulas),
        or None throughout when the two do not line up name for name."""
        theirs = [p for _, p in template.tensors] if template else []
        if [p.name for p in theirs] != [p.name for _, p in self.tensors]:
            return [None] * len(self.tensors)
        return list(theirs)

    def params(self) -> list[Param]:
        """Every tensor with its framework name, shared ones once, blocks expanded."""
        return list(expand(p for _, p in self.tensors if p.name not in self.ties))


def _fail(convention: str, spec: LayerSpec, field: str, value: Any, rule: str) -> NoReturn:
    raise InvalidArgumentError(
        f"{rule}; use the pytorch convention",
        layer=f"{spec} in the {convention} convention",
        field=field,
        value=value,
        rule=rule,
    )


def gate_order(convention: str, kind: str) -> str:
    """The gate order of a recurrent kind (LSTM, GRU, RNN or a cell) in a convention."""
    return GATE_ORDER[(convention, kind.removesuffix("Cell"))]


# -- one layer -------------------------------------------------------------------------------
def _recurrent(
    spec: Any, convention: str, prefix: str, reset_after: bool
) -> tuple[list[Param], list[tuple[Dim, str]]]:
    kind = spec.kind
    g, h, d = _GATES[kind], spec.hidden_size, spec.num_directions
    if getattr(spec, "projects", False):
        _fail(
            convention,
            spec,
            "proj_size",
            spec.proj_size,
            f"{'Keras' if convention == 'keras' else 'ONNX'}'s LSTM has no projection (proj_size)",
        )
    out: list[Param] = []
    deltas: list[tuple[Dim, str]] = []
    order = gate_order(convention, kind).split(" (")[0]
    blocks = spec.layer_blocks()
    if convention == "keras" and blocks[0][0].startswith("{0.."):
        # Keras names the first layer "lstm", the others "lstm_1", ...: layer 0 apart
        index, d_in, copies = blocks[0]
        blocks = [("0", d_in, 1), ("{1.." + index[4:], d_in, copies - 1), *blocks[1:]]
    for index, d_in, copies in blocks:
        numbers = _layer_range(index)
        layer = (
            _onnx_layer(f"{prefix}.l{index}", g, h, d, d_in, spec.bias, order, copies)
            if convention == "onnx"
            else _keras_layer(kind, index, g, h, d, d_in, spec.bias, reset_after, order, copies)
        )
        out += [dataclasses.replace(p, layers=numbers) if numbers else p for p in layer]
    if convention == "keras" and spec.bias and not (kind == "GRU" and reset_after):
        fewer = g * h * spec.num_layers * d
        what = {4: "4·H", 3: "3·H", 1: "H"}[g]
        extra = " (reset_after=False)" if kind == "GRU" else ""
        deltas.append(
            (
                -fewer,
                f"Keras keeps one bias per gate block ({what}){extra} where PyTorch keeps two: "
                f"{count_str(fewer)} fewer",
            )
        )
    return out, deltas


def _onnx_layer(
    where: str, g: int, h: Dim, d: int, d_in: Dim, bias: bool, order: str, copies: Dim
) -> list[Param]:
    """W, R and B of one layer: all directions in one operator."""
    stack = f"{d} direction{'s' if d == 2 else ''}"
    stack += f" × {g} gate blocks ({order})" if g > 1 else ""
    layer = [
        Param(f"{where}.W", (d, g * h, d_in), f"input weights W: {stack}", repeat=copies),
        Param(f"{where}.R", (d, g * h, h), f"recurrent weights R: {stack}", repeat=copies),
    ]
    if bias:
        layer.append(
            Param(
                f"{where}.B",
                (d, 2 * g * h),
                f"biases B: input side Wb then recurrent side Rb, {stack}",
                repeat=copies,
            )
        )
    return layer


def _keras_layer(
    kind: str,
    index: str,
    g: int,
    h: Dim,
    d: int,
    d_in: Dim,
    bias: bool,
    reset_after: bool,
    order: str,
    copies: Dim,
) -> list[Param]:
    """kernel, recurrent_kernel and bias of one layer, per direction (a Bidirectional
    wrapper holds a forward and a backward layer)."""
    base, cell = _KERAS_RECURRENT[kind]
    number = "" if index == "0" else f"_{index}"
    owners = (
        [f"bidirectional{number}/{side}_{base}{number}" for side in ("forward", "backward")]
        if d == 2
        else [f"{base}{number}"]
    )
    layer: list[Param] = []
    for owner in owners:
        where = f"{owner}/{cell}"
        gates = f", gate blocks {order} side by side" if g > 1 else ""
        layer += [
            Param(
                f"{where}/kernel",
                (d_in, g * h),
                f"input kernel{gates}, stored (in, out)",
                repeat=copies,
            ),
            Param(
                f"{where}/recurrent_kernel",
                (h, g * h),
                f"recurrent kernel{gates}, stored (in, out)",
                repeat=copies,
            ),
        ]
        if bias and kind == "GRU" and reset_after:
            role = "input-side and recurrent-side biases, as PyTorch's two (reset_after=True)"
            layer.append(Param(f"{where}/bias", (2, g * h), role, repeat=copies))
        elif bias:
            role = f"one bias per gate block ({order})" if g > 1 else "one bias"
            layer.append(Param(f"{where}/bias", (g * h,), role, repeat=copies))
    return layer


def _norm(spec: Any, convention: str, prefix: str) -> tuple[list[Param], list[tuple[Dim, str]]]:
    c = spec.num_features
    affine, shift = spec.affine, spec.affine and spec.bias
    if convention == "onnx":
        out = [p for p in spec.params()]
        stats = [p for p in spec.buffers() if p.name != "num_batches_tracked"]
        deltas = (
            [
                (
                    2 * c,
                    "ONNX stores the running mean and variance as initializers: "
                    f"{count_str(2 * c)} more",
                )
            ]
            if stats
            else []
        )
        return [*(_named(prefix, p) for p in out), *(_named(prefix, p) for p in stats)], deltas
    out = []
    if affine:
        out.append(Param(f"{prefix}/gamma", (c,), "scale gamma per channel"))
    if shift:
        out.append(Param(f"{prefix}/beta", (c,), "shift beta per channel"))
    out += [
        Param(
            f"{prefix}/moving_mean", (c,), "running mean (a non-trainable weight)", trainable=False
        ),
        Param(
            f"{prefix}/moving_variance",
            (c,),
            "running variance (a non-trainable weight)",
            trainable=False,
        ),
    ]
    return out, [
        (
            2 * c,
            "Keras counts moving_mean and moving_variance among its weights; "
            f"PyTorch keeps them as buffers: {count_str(2 * c)} more",
        )
    ]


def _named(prefix: str, p: Param) -> Param:
    return dataclasses.replace(p, name=full_name(prefix, p.name))


def layer_tensors(
    spec: LayerSpec, convention: str, prefix: str = "", *, reset_after: bool = True
) -> tuple[list[Param], list[tuple[Dim, str]]]:
    """One layer's tensors in ``convention`` (names prefixed by ``prefix``, the PyTorch
    attribute or the Keras layer name) and the count differences from PyTorch's, each
    with its reason."""
    _check(convention)
    kind = spec.kind
    if convention == "pytorch" or spec.stateless():
        return [_named(prefix, p) for p in spec.params()], []
    if kind in _GATES:
        return _recurrent(spec, convention, prefix or kind.lower(), reset_after)
    if kind.startswith("BatchNorm"):
        default = _KERAS_NAMES[kind] if convention == "keras" else ""
        return _norm(spec, convention, prefix or default)
    if convention == "onnx":
        if kind in _KERAS_NAMES:  # exported under PyTorch's own names and shapes
            return [_named(prefix, p) for p in spec.params()], []
        _fail(convention, spec, "convention", convention, f"no ONNX convention for {kind} yet")
    if kind not in _KERAS_NAMES:
        _fail(convention, spec, "convention", convention, f"no Keras convention for {kind} yet")
    name = prefix or _KERAS_NAMES[kind]
    params = list(spec.params())
    if kind == "Linear":
        out = [Param(f"{name}/kernel", params[0].shape[::-1], "kernel, stored (in, out)")]
        out += [Param(f"{name}/bias", p.shape, p.role) for p in params[1:]]
        return out, []
    if kind == "Embedding":
        return [Param(f"{name}/embeddings", params[0].shape, "lookup table, one row per token")], []
    if kind.startswith("Conv"):
        weight = params[0].shape  # (out, in/groups, *kernel)
        out = [
            Param(
                f"{name}/kernel",
                (*weight[2:], weight[1], weight[0]),
                "kernel, stored (*kernel, in/groups, out)",
            )
        ]
        out += [Param(f"{name}/bias", p.shape, p.role) for p in params[1:]]
        return out, []
    # LayerNorm: gamma and beta of normalized_shape
    keras = {"weight": "gamma", "bias": "beta"}
    return [Param(f"{name}/{keras[p.name]}", p.shape, p.role) for p in params], []


def _check(convention: str) -> None:
    require_one_of("convention", convention, CONVENTIONS)


# -- a model ---------------------------------------------------------------------------------
def convert(model: Model, convention: str, *, reset_after: bool = True) -> Converted:
    """``model``'s tensors as ``convention`` names and stores them, with every count
    difference from PyTorch and its reason."""
    _check(convention)
    tensors: list[tuple[str, Param]] = []
    differences: list[Difference] = []
    orders: dict[str, str] = {}
    keras_names = _keras_layer_names(model) if convention == "keras" else {}
    renamed: dict[str, str] = {}
    for layer in model.layers:
        prefix = keras_names.get(layer.name, layer.name)
        params, deltas = layer_tensors(layer.spec, convention, prefix, reset_after=reset_after)
        if layer.copies != 1:  # a leaf of a block repeated many times, listed once
            if convention == "keras" and params:
                raise InvalidArgumentError(
                    f"{layer.name} is {dim_str(layer.copies)} copies of a repeated block; Keras "
                    "names every copy as a layer of its own, which this convention does not list",
                    layer=model.name,
                    field="convention",
                    value=convention,
                    rule="Keras' names need every layer listed",
                )
            params = [dataclasses.replace(p, repeat=layer.copies * p.repeat) for p in params]
            deltas = [(layer.copies * delta, reason) for delta, reason in deltas]
        sources = [p.name for p in layer.spec.params()]
        for converted, source in _pair(params, sources):
            tensors.append((layer.name, converted))
            if source:
                renamed[full_name(layer.name, source)] = converted.name
        differences += [Difference(layer.name, delta, reason) for delta, reason in deltas]
        if layer.spec.kind.removesuffix("Cell") in _GATES:
            orders[layer.name] = gate_order(convention, layer.spec.kind)
    names = [p.name for _, p in tensors]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InvalidArgumentError(
            f"two layers would both be named {echo(repeated[0])} in the "
            f"{convention} convention (one recurrent layer of a kind per model is supported)",
            layer=model.name,
            field="convention",
            value=convention,
            rule="every tensor needs its own name",
        )
    ties = {
        renamed[tied]: renamed[source]
        for tied, source in model.ties.items()
        if tied in renamed and source in renamed
    }
    return Converted(convention, tuple(tensors), tuple(differences), orders, ties)


def params(model: Model, convention: str = "pytorch", *, reset_after: bool = True) -> list[Param]:
    """Every tensor of ``model`` as ``convention`` (pytorch, keras or onnx) names and shapes
    it, shared ones once, repeated layers expanded. Keras' BatchNormalization lists its
    moving statistics as (non-trainable) weights.

        >>> from shapecalc.architectures import gru_lm
        >>> for p in params(gru_lm(65, 512), "keras")[1:4]:
        ...     print(p.name, p.shape)
        gru/gru_cell/kernel (512, 1536)
        gru/gru_cell/recurrent_kernel (512, 1536)
        gru/gru_cell/bias (2, 1536)
    """
    return convert(model, convention, reset_after=reset_after).params()


def convert_with_template(
    model: Model, convention: str, *, reset_after: bool = True
) -> tuple[Converted, Converted | None]:
    """``model`` in ``convention``, and its symbolic template there too (whose counts are
    the formulas), or None when the template cannot be converted."""
    converted = convert(model, convention, reset_after=reset_after)
    try:
        template: Converted | None = convert(model.template, convention, reset_after=reset_after)
    except ShapecalcError:
        template = None
    return converted, template


def _pair(params: list[Param], sources: list[str]) -> Iterator[tuple[Param, str | None]]:
    """Converted tensors with the PyTorch name they came from where it is one to one."""
    one_to_one = len(params) == len(sources)
    for i, p in enumerate(params):
        yield p, sources[i] if one_to_one else None


def _keras_layer_names(model: Model) -> dict[str, str]:
    """Keras' default names for the model's non-recurrent layers (dense, embedding, ...),
    numbered as Keras numbers layers of the same class (dense, dense_1)."""
    seen: dict[str, int] = {}
    names: dict[str, str] = {}
    for layer in model.layers:
        base = _KERAS_NAMES.get(layer.spec.kind)
        if base is None:
            continue
        n = seen.get(base, 0)
        seen[base] = n + 1
        names[layer.name] = base if n == 0 else f"{base}_{n}"
    return names


def describe(converted: Converted, pytorch_total: Dim) -> list[str]:
    """One line per difference from PyTorch, or a line saying there is none."""
    if not converted.differences:
        return [f"{converted.convention}: the same count as PyTorch ({count_str(pytorch_total)})"]
    return [f"{d.layer or 'layer'}: {d.reason}" for d in converted.differences]
