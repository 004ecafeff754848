"""Whole models composed from layer specs.

:func:`lstm_lm` is the model of the question shapecalc started from: "a 2-layer LSTM with
512 hidden nodes" trained on characters (Karpathy's char-rnn).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from shapecalc.core.dims import Dim, Expr, as_size, dim_str, shape_str, symbol
from shapecalc.core.errors import InvalidArgumentError, ShapecalcError, TieError
from shapecalc.core.model import Model
from shapecalc.core.spec import LayerSpec
from shapecalc.core.tree import Block, Leaf
from shapecalc.layers.embedding import Embedding
from shapecalc.layers.linear import Linear
from shapecalc.layers.recurrent import GRU, LSTM, RNN, RecurrentSpec

__all__ = ["gru_lm", "layer_model", "lstm_lm", "rnn_lm"]

_CELLS: dict[str, Callable[..., RecurrentSpec]] = {"LSTM": LSTM, "GRU": GRU, "RNN": RNN}
_OWNER = {"LSTM": "lstm_lm", "GRU": "gru_lm", "RNN": "rnn_lm"}
#: recurrent constructor argument -> the language model argument it comes from
_LSTM_ARG = {
    "hidden_size": "hidden",
    "num_layers": "layers",
    "proj_size": "proj_size",
    "dropout": "dropout",
    "nonlinearity": "nonlinearity",
}


def _flag(owner: str, name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        rule = f"{name} must be True or False"
        raise InvalidArgumentError(
            f"{rule}, got {value!r}", layer=owner, field=name, value=value, rule=rule
        )
    return value


def _dropout(owner: str, value: Any) -> float:
    rule = "dropout must be a number in [0, 1)"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        why = " (1 would zero every activation between layers)" if value == 1 else ""
        raise InvalidArgumentError(
            f"{rule}, got {value!r}{why}", layer=owner, field="dropout", value=value, rule=rule
        )
    return float(value)


def _arguments(owner: str, values: dict[str, Any]) -> dict[str, Any]:
    """Checked and normalised arguments of a recurrent language model."""
    out: dict[str, Any] = {
        "vocab": as_size(values["vocab"], owner=owner, field="vocab"),
        "hidden": as_size(values["hidden"], owner=owner, field="hidden"),
        "layers": as_size(values["layers"], owner=owner, field="layers"),
        "embed_dim": None
        if values["embed_dim"] is None
        else as_size(values["embed_dim"], owner=owner, field="embed_dim"),
    }
    for name in ("one_hot", "bias", "bidirectional", "tie_weights", "batch_first"):
        out[name] = _flag(owner, name, values[name])
    if "proj_size" in values:
        out["proj_size"] = as_size(values["proj_size"], owner=owner, field="proj_size", minimum=0)
    if "nonlinearity" in values:
        out["nonlinearity"] = values["nonlinearity"]
    out["dropout"] = _dropout(owner, values["dropout"])
    if out["one_hot"] and out["embed_dim"] is not None:
        raise InvalidArgumentError(
            "embed_dim cannot be set with one_hot: a one-hot input has no embedding layer "
            "(its size is the vocabulary)",
            layer=owner,
            field="embed_dim",
            value=values["embed_dim"],
            rule="embed_dim needs an embedding layer",
        )
    return {name: out[name] for name in values}  # in the factory's own order


def _language_model(cell: str, factory: Callable[..., Model], values: dict[str, Any]) -> Model:
    owner = factory.__name__
    arguments = _arguments(owner, values)
    model = _build(cell, **arguments)
    notes = list(model.notes)
    if arguments["dropout"] > 0 and arguments["layers"] == 1:
        notes.append(
            f"dropout acts between {cell} layers only: with 1 layer it does nothing "
            "(PyTorch warns about this)"
        )
    return Model(
        name=model.name,
        root=model.root,
        ties=model.ties,
        sizes=model.sizes,
        make_template=lambda: _build(cell, **_template_arguments(arguments)),
        factory=factory,
        arguments=arguments,
        notes=tuple(notes),
        input_layout=model.input_layout,
        kind=factory.__name__,
    )


def lstm_lm(
    vocab: Any,
    hidden: Any,
    layers: Any = 1,
    *,
    embed_dim: Any = None,
    one_hot: bool = False,
    bias: bool = True,
    bidirectional: bool = False,
    proj_size: Any = 0,
    tie_weights: bool = False,
    dropout: float = 0.0,
    batch_first: bool = True,
) -> Model:
    """An LSTM language model: token embedding (V -> E) -> L-layer LSTM (H) -> head (-> V).

    ``embed_dim`` (E) defaults to ``hidden`` (H). ``one_hot`` drops the embedding: the LSTM
    reads the one-hot vector of size V, as the original char-rnn did. ``bias=False`` removes
    the biases of the LSTM and of the head. ``tie_weights`` makes the head share the
    embedding matrix (needs E == D·H_out). Sizes are ints or size names ("H").
    ``batch_first`` (as in PyTorch; True here) makes the input (B, T) token ids rather
    than (T, B).

        >>> m = lstm_lm(vocab=65, hidden=512, layers=2)
        >>> m.total
        4269121
        >>> print(m.total_formula)
        16·H² + 2·V·H + 16·H + V
        >>> [r.name for r in m.rows()][:3]
        ['embedding.weight', 'lstm.weight_ih_l0', 'lstm.weight_hh_l0']
    """
    return _language_model("LSTM", lstm_lm, dict(locals()))


def gru_lm(
    vocab: Any,
    hidden: Any,
    layers: Any = 1,
    *,
    embed_dim: Any = None,
    one_hot: bool = False,
    bias: bool = True,
    bidirectional: bool = False,
    tie_weights: bool = False,
    dropout: float = 0.0,
    batch_first: bool = True,
) -> Model:
    """The same language model with a GRU (3 gates: r, z, n) instead of an LSTM.

    Example:

        >>> gru_lm(vocab=65, hidden=512, layers=2).total
        3218497
    """
    return _language_model("GRU", gru_lm, dict(locals()))


def rnn_lm(
    vocab: Any,
    hidden: Any,
    layers: Any = 1,
    *,
    embed_dim: Any = None,
    one_hot: bool = False,
    bias: bool = True,
    bidirectional: bool = False,
    tie_weights: bool = False,
    dropout: float = 0.0,
    nonlinearity: str = "tanh",
    batch_first: bool = True,
) -> Model:
    """The same language model with an Elman RNN: h_t = tanh(W_ih x_t + W_hh h_(t-1) + b).

    Example:

        >>> rnn_lm(vocab=65, hidden=512, layers=2).total
        1117249
    """
    return _language_model("RNN", rnn_lm, dict(locals()))


def _template_arguments(arguments: dict[str, Any]) -> dict[str, Any]:
    """The same arguments with every concrete size replaced by its symbol (layers stay)."""

    def sym(value: Dim, name: str) -> Dim:
        return value if isinstance(value, Expr) else symbol(name)

    out = dict(arguments)
    out["vocab"] = sym(arguments["vocab"], "V")
    out["hidden"] = sym(arguments["hidden"], "H")
    if arguments.get("proj_size", 0) != 0:
        out["proj_size"] = sym(arguments["proj_size"], "P")
    if arguments["embed_dim"] is not None:
        out["embed_dim"] = sym(arguments["embed_dim"], "E")
    if arguments["tie_weights"]:
        # tying forces E == D·H_out; the formula says so instead of keeping a separate E
        h_out = out["proj_size"] if out.get("proj_size", 0) != 0 else out["hidden"]
        out["embed_dim"] = (2 if arguments["bidirectional"] else 1) * h_out
    return out


def _build(
    cell: str,
    *,
    vocab: Dim,
    hidden: Dim,
    layers: Dim,
    embed_dim: Dim | None,
    one_hot: bool,
    bias: bool,
    bidirectional: bool,
    tie_weights: bool,
    dropout: float,
    batch_first: bool = True,
    proj_size: Dim = 0,
    nonlinearity: str = "tanh",
) -> Model:
    embed = hidden if embed_dim is None else embed_dim
    extra: dict[str, Any] = {}
    if cell == "LSTM":
        extra["proj_size"] = proj_size
    if cell == "RNN":
        extra["nonlinearity"] = nonlinearity
    try:
        rnn = _CELLS[cell](
            input_size=vocab if one_hot else embed,
            hidden_size=hidden,
            num_layers=layers,
            bias=bias,
            batch_first=batch_first,
            dropout=dropout,
            bidirectional=bidirectional,
            **extra,
        )
    except ShapecalcError as err:
        raise err.renamed(_LSTM_ARG) from None
    h_out = rnn.output_hidden
    head_in = rnn.num_directions * h_out
    parts: list[tuple[str, Leaf]] = []
    if not one_hot:
        parts.append(
            (
                "embedding",
                Leaf(
                    Embedding(vocab, embed),
                    f"token embedding: each of {dim_str(vocab)} tokens "
                    f"-> a {dim_str(embed)}-vector",
                ),
            )
        )
    parts.append(
        (
            cell.lower(),
            Leaf(
                rnn,
                f"{dim_str(layers)}-layer {cell}, hidden size {dim_str(hidden)}"
                + (", bidirectional" if bidirectional else "")
                + (f", projected to {dim_str(proj_size)}" if rnn.projects else ""),
            ),
        )
    )
    head = Linear(head_in, vocab, bias=bias)
    parts.append(
        (
            "head",
            Leaf(head, f"output head: h_t ({dim_str(head_in)}) -> {dim_str(vocab)} scores"),
        )
    )
    ties: dict[str, str] = {}
    if tie_weights:
        _check_tie(_OWNER[cell], one_hot, vocab, embed, head_in, bidirectional, rnn.projects)
        ties["head.weight"] = "embedding.weight"
    sizes: dict[str, Dim] = {"V": vocab}
    if embed_dim is not None:
        sizes["E"] = embed_dim
    sizes["H"] = hidden
    if rnn.projects:
        sizes["P"] = proj_size
    sizes["L"] = layers
    notes = []
    if tie_weights and embed != head_in:
        notes.append(
            f"tie_weights holds only where {dim_str(embed)} = {dim_str(head_in)} "
            "(embed_dim equals the head's input size); checked when evaluated"
        )
    notes += rnn.deferred_rules()
    tokens = ("B", "T") if batch_first else ("T", "B")
    return Model(
        name=f"{cell} language model",
        root=Block("Module", tuple(parts)),
        ties=ties,
        sizes=sizes,
        notes=tuple(notes),
        input_layout=((*tokens, "V"),) if one_hot else (tokens,),
    )


def _check_tie(
    owner: str,
    one_hot: bool,
    vocab: Dim,
    embed: Dim,
    head_in: Dim,
    bidirectional: bool,
    projects: bool,
) -> None:
    if one_hot:
        raise TieError(
            "tie_weights needs an embedding to share, and one_hot has none",
            layer=owner,
            field="tie_weights",
            value=True,
            rule="tie_weights needs an embedding layer",
        )
    if embed != head_in and isinstance(embed, int) and isinstance(head_in, int):
        source = "2 directions × " if bidirectional else ""
        source += "proj_size" if projects else "hidden"
        raise TieError(
            f"tie_weights: the head weight {shape_str((vocab, head_in))} cannot share the "
            f"embedding weight {shape_str((vocab, embed))}: their shapes differ",
            layer=owner,
            field="tie_weights",
            value=True,
            rule="tying needs embed_dim == the head's input size",
            fix=f"set embed_dim to {dim_str(head_in)} ({source}) or do not tie",
        )


def layer_model(spec: LayerSpec) -> Model:
    """One layer as a model: rows named as ``named_parameters()`` names them on the bare
    module (``weight_ih_l0``), formulas in the kind's usual letters (``I·O + O`` for a
    Linear), and :meth:`Model.evaluate` rebuilding the layer.

        >>> from shapecalc.layers.linear import Linear
        >>> m = layer_model(Linear(512, 65))
        >>> (m.total, str(m.total_formula), m.describe_sizes())
        (33345, 'I·O + O', 'I=512, O=65')
    """
    cls = type(spec)
    arguments = spec.arguments()
    letters = {
        field: letter
        for field, letter in {**cls.formula_args, **cls.letters}.items()
        if isinstance(letter, str) and field in arguments
    }
    given = {
        field: arguments[field]
        for field in letters
        if arguments[field] is not None and arguments[field] != 0
    }
    sizes = {letters[field]: value for field, value in given.items()}

    def template() -> Model:
        symbolic = {
            field: value if isinstance(value, Expr) else symbol(letters[field])
            for field, value in given.items()
        }
        try:
            twin = cls(**{**arguments, **symbolic})
            if [p.name for p in twin.params()] != [p.name for p in spec.params()]:
                raise ValueError("different structure")
        except (ShapecalcError, ValueError):
            return model  # some rules need numbers (groups dividing channels): no formulas
        return Model(name=model.name, root=Leaf(twin, cls.summary), sizes=sizes)

    def rebuild(**values: Any) -> Model:
        return layer_model(cls(**values))

    rebuild.__name__ = "layer_model"

    model = Model(
        name=str(spec),
        root=Leaf(spec, cls.summary),
        sizes=sizes,
        make_template=template,
        factory=rebuild,
        arguments=arguments,
        notes=tuple(spec.deferred_rules()),
        kind="layer_model",
    )
    return model
