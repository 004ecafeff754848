"""Model parallelism per GPU: what one rank of a tensor-, pipeline- and expert-parallel
run holds, and the activations it keeps, by Megatron-LM's rules.

**Tensor parallel** (Megatron-LM, Shoeybi et al. 2019): the query, key, value, gate and
up projections are column-parallel (their output features split over the ``tp`` ranks,
with their biases); the attention output and MLP down projections are row-parallel
(input features split, bias replicated); the token embedding and the head are
vocabulary-parallel over Megatron's padded vocabulary (a multiple of 128·tp,
``--make-vocab-size-divisible-by``); norms, routers and position embeddings are
replicated. ``transformers`` states the same column/row split in each config class's
``base_model_tp_plan`` (the tests read it), but keeps the embedding whole. Megatron
refuses heads the ranks do not divide, query groups that neither divide nor are divided
by ``tp``, and splits of sizes the ranks do not divide; with fewer query groups than
ranks it still splits the fused query, key and value matrix evenly and gathers its
output, each rank attending with its group's keys and values.

**Expert parallel**: a mixture's experts split over ``ep`` ranks, each expert's matrices
split over the tensor-parallel ranks as well (Megatron's ``--expert-tensor-parallel-size``
defaults to ``tp``).

**Pipeline parallel**: the layers in ``pp`` consecutive groups, ``L/pp`` each, or the first
and last stages' layer counts given (Megatron's ``--decoder-first/last-pipeline-num-
layers``) and the rest even over the middle stages; the first stage holds the embeddings,
the last the final norm and the head (and, when the head is tied, its own copy of the
embedding, as Megatron keeps one). An interleaved schedule gives each rank
``virtual_stages`` chunks: chunk ``j`` of rank ``r`` is the model's ``j·pp + r``-th.

**Activations** by Korthikanti et al. 2022 (arXiv:2205.05198), Table 2, term by term:
see :func:`activation_bytes`. Megatron's own closed formulas
(``megatron/training/theoretical_memory_usage.py``) are reproduced in
:func:`megatron_weight_and_optimizer_memory` and :func:`megatron_activation_memory`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from shapecalc.analysis.cost import layer_part
from shapecalc.analysis.parallel_plan import ParallelPlan, plan_error
from shapecalc.core.dims import Dim, dim_str, known
from shapecalc.core.errors import InvalidArgumentError
from shapecalc.core.model import Layer, Model, Row
from shapecalc.core.tree import split_name

__all__ = [
    "COLUMN_ROLES",
    "ROW_ROLES",
    "VOCAB_MULTIPLE",
    "ActivationLine",
    "Activations",
    "MegatronArgs",
    "ModelParallel",
    "RankParameters",
    "RankTensor",
    "Stage",
    "activation_bytes",
    "megatron_activation_memory",
    "megatron_activation_memory_without_sp",
    "megatron_args",
    "megatron_weight_and_optimizer_memory",
    "model_parallel",
    "padded_vocab",
    "rank_parameters",
    "splits_model",
    "stage_layers",
    "tensor_splits",
]

#: leaf roles whose matrices Megatron splits by output features (column-parallel)
COLUMN_ROLES = frozenset(
    {
        "query",
        "key",
        "value",
        "query, key and value",
        "query and gate",
        "gate",
        "up",
        "gate and up",
        "shared expert gate",
        "shared expert up",
        "dense gate",
        "dense up",
        "query up to the heads",
        "keys and values up to the heads",
    }
)
#: leaf roles whose matrices Megatron splits by input features (row-parallel)
ROW_ROLES = frozenset({"output projection", "down", "shared expert down", "dense down"})
#: leaf roles every tensor-parallel rank holds whole (multi-latent attention's down
#: projections and latent norms: Megatron's "duplicated" linears)
REPLICATED_ROLES = frozenset(
    {
        "router",
        "position embedding",
        "final norm",
        "norm",
        "query norm",
        "key norm",
        "shared expert's sigmoid gate",
        "pooler",
        "classifier dense",
        "query down to its rank",
        "query latent norm",
        "key-value latent norm",
        "key-value latent and shared rotated key",
    }
)
#: a leaf without a role: its attribute name as transformers' families spell it
COLUMN_NAMES = frozenset(
    {"q_proj", "k_proj", "v_proj", "gate_proj", "up_proj", "qkv_proj", "gate_up_proj"}
    | {"query_key_value", "c_attn", "c_fc", "w1", "w3", "dense_h_to_4h", "fc1"}
)
ROW_NAMES = frozenset({"o_proj", "down_proj", "c_proj", "dense_4h_to_h", "fc2", "w2"})
#: Megatron-LM's ``--make-vocab-size-divisible-by`` default: the vocabulary is padded to a
#: multiple of this times ``tp`` (megatron/core/tokenizers/utils/build_tokenizer.py,
#: ``vocab_size_with_padding``)
VOCAB_MULTIPLE = 128
#: how a tensor is held over the ranks ("column" and "column: z, x, B, C, dt", a
#: Mamba-2 in_proj's parts each split; "heads": a Mamba-2 mixer's per-head tensors);
#: "unsplit": no tensor-parallel rule here (a Mamba-2 mixer or a Gated DeltaNet at tp 1,
#: a Mamba-1 mixer, a recurrent layer), refused for tp above 1
STYLES = ("column", "row", "vocab", "expert", "replicated", "unsplit", "heads")


def padded_vocab(vocab: int, tp: int, multiple: int = VOCAB_MULTIPLE) -> int:
    """Megatron's padded vocabulary: ``vocab`` up to a multiple of ``multiple·tp``
    (50,257 -> 50,304 for tp 1; multiple 1 keeps the vocabulary, which tp must divide).

    >>> padded_vocab(50257, 1), padded_vocab(50257, 8), padded_vocab(32000, 4)
    (50304, 51200, 32256)
    """
    step = multiple * tp
    return -(-vocab // step) * step


@dataclass(frozen=True)
class RankTensor:
    """One tensor (or a run of equal tensors, one per layer) as one rank holds it."""

    #: PyTorch's full name; ``{0..15}`` the layers of the run the rank holds
    name: str
    #: the whole tensor's shape, and one rank's piece of it
    shape: tuple[int, ...]
    local: tuple[int, ...]
    #: column, row, vocab (vocabulary-parallel), expert or replicated
    style: str
    #: how many tensors of this name the rank holds (its layers; experts)
    copies: int = 1
    #: the tensor it shares when tied (counted once), if any
    tied_to: str | None = None

    @property
    def count(self) -> int:
        """The numbers the rank holds of it: 0 for a tie counted elsewhere."""
        return 0 if self.tied_to else self.copies * math.prod(self.local)


@dataclass(frozen=True)
class Stage:
    """What one pipeline rank holds: its layers (all its virtual chunks) and tensors."""

    rank: int
    layers: tuple[int, ...]
    tensors: tuple[RankTensor, ...]

    @property
    def count(self) -> int:
        return sum(t.count for t in self.tensors)


@dataclass(frozen=True)
class RankParameters:
    """The parameters of every pipeline stage's ranks, one tensor-parallel rank's share."""

    plan: ParallelPlan
    stages: tuple[Stage, ...]
    #: the vocabulary the embedding and head hold (Megatron's padding), 0 if none
    vocab: int = 0
    notes: tuple[str, ...] = ()

    @property
    def most_loaded(self) -> Stage:
        """The stage whose ranks hold the most: what a GPU must hold (first on ties)."""
        return max(self.stages, key=lambda s: s.count)

    @property
    def count(self) -> int:
        """Parameters on the most loaded rank."""
        return self.most_loaded.count

    @property
    def tensors(self) -> tuple[RankTensor, ...]:
        return self.most_loaded.tensors


#: the wrappers whose layer is another's: LoRA's frozen layer, its adapted layer, a
#: module to save, a quantized layer, LoRA on a module's parameters (``.layer`` each)
_WRAPPERS = ("Frozen", "Lora", "Saved", "Quantized", "ParamLora")


def _inner(spec: Any) -> Any:
    """The layer under LoRA's and a quantization's wrappers."""
    while type(spec).__name__ in _WRAPPERS and hasattr(spec, "layer"):
        spec = spec.layer
    return spec


def _wrapped_in(spec: Any, name: str) -> bool:
    while type(spec).__name__ in _WRAPPERS and hasattr(spec, "layer"):
        if type(spec).__name__ == name:
            return True
        spec = spec.layer
    return False


def _spec_kind(layer: Layer) -> str:
    """The kind of a layer's spec, under LoRA's and a quantization's wrappers."""
    return type(_inner(layer.spec)).__name__


def _int_shape(row: Row) -> tuple[int, ...]:
    shape = tuple(known(d) for d in row.shape)
    if any(d is None for d in shape):
        raise InvalidArgumentError(
            f"{row.name} has a symbolic shape: give every size to split it over ranks",
            layer="parallel",
            field="sizes",
            value=row.name,
            rule="a per-rank account needs concrete sizes",
        )
    return tuple(d for d in shape if d is not None)


def _letter(formula: Dim) -> str:
    return dim_str(formula)


def _divided(row: Row, shape: tuple[int, ...], dim: int, by: int, flag: str) -> tuple[int, ...]:
    """``shape`` with ``dim`` split over ``by`` ranks, refused when they do not divide it."""
    if shape[dim] % by:
        letter = _letter(row.formula_shape[dim])
        size = shape[dim] if letter == str(shape[dim]) else f"{letter} = {shape[dim]}"
        raise plan_error(
            flag,
            by,
            f"{flag} {by} must divide {size}, the split dimension of {row.name},"
            " as Megatron-LM requires",
        )
    return (*shape[:dim], shape[dim] // by, *shape[dim + 1 :])


def _check_heads(model: Model, tp: int) -> None:
    """Megatron's head rules: tp divides the heads, and the query groups (kv heads)
    divide or are divided by tp."""
    if tp == 1:
        return
    heads = known(model.sizes.get("A", 0))
    if not heads:
        return
    if heads % tp:
        raise plan_error(
            "--tp",
            tp,
            f"--tp {tp} must divide the attention heads (A = {heads}), as Megatron-LM requires",
        )
    kv = known(model.sizes.get("K", heads)) or heads
    if kv % tp and tp % kv:
        raise plan_error(
            "--tp",
            tp,
            f"--tp {tp} must divide the key-value heads (K = {kv}) or be a multiple of them,"
            " as Megatron-LM requires",
        )


def _tp_split(
    model: Model,
    row: Row,
    layer: Layer,
    plan: ParallelPlan,
    vocab: int,
    mixers: dict[str, Layer] | None = None,
) -> tuple[str, tuple[int, ...], int]:
    """(style, one rank's shape, experts per rank or 1) of one row."""
    tp, ep = plan.tp, plan.ep
    shape = _int_shape(row)
    kind, role = _spec_kind(layer), layer.role
    if type(layer.spec).__name__ == "ParamLora" and max(tp, ep) > 1:
        raise plan_error(
            "--tp" if tp > 1 else "--ep",
            tp if tp > 1 else ep,
            f"{row.name}: LoRA on a mixture's expert tensors has no tensor- or expert-"
            "parallel split in peft; give --tp 1 and --ep 1",
        )
    if tp > 1 and _wrapped_in(layer.spec, "Quantized"):
        raise plan_error(
            "--tp",
            tp,
            f"--tp {tp}: {row.name} is stored quantized; each rank's quantized shard is not"
            " derived here; give --tp 1 (--pp places quantized layers whole)",
        )
    adapter = next((part for part in split_name(row.name) if part.startswith("lora_")), "")
    if adapter:
        return _adapter_split(model, row, layer, adapter, shape, tp, vocab)
    mixer = (mixers or {}).get(row.layer) or (mixers or {}).get(_parent(row.layer))
    if mixer is not None:
        return _mamba2_split(row, layer, mixer, shape, tp)
    if kind == "GatedDeltaNet":  # linear attention: Megatron-LM's GatedDeltaNet split
        from shapecalc.analysis.gdn_parallel import gdn_split

        return gdn_split(row, layer, _inner(layer.spec), shape, plan)
    attribute = split_name(row.layer)[-1] if row.layer else ""
    if not role and attribute in COLUMN_NAMES:
        role = "up"
    elif not role and attribute in ROW_NAMES:
        role = "down"
    if kind in ("Experts", "GptOssExperts"):
        experts = known(getattr(layer.spec, "num_experts", 0)) or 0
        if experts % ep:
            raise plan_error(
                "--ep",
                ep,
                f"--ep {ep} must divide the {experts} experts (E), as Megatron-LM requires",
            )
        down = any(part in ("w2", "down_proj", "down_proj_bias") for part in split_name(row.name))
        if kind == "GptOssExperts":  # (E, H, 2I) and (E, I, H), stored (in, out); biases
            local = _divided(row, shape, 0, ep, "--ep")  # (E, 2I) and (E, H)
            if len(shape) == 3 or not down:
                local = _divided(row, local, 1 if down or len(shape) == 2 else 2, tp, "--tp")
            return "expert", local, 1
        if len(shape) == 3:  # fused: (E, 2I, H) and (E, H, I)
            local = _divided(row, shape, 0, ep, "--ep")
            local = _divided(row, local, 2 if down else 1, tp, "--tp")
            return "expert", local, 1
        # one module per expert (checkpoint layout): w1/w3 (I, H) columns, w2 (H, I) rows
        if len(shape) == 1:
            local = shape if down else _divided(row, shape, 0, tp, "--tp")
        else:
            local = _divided(row, shape, 1 if down else 0, tp, "--tp")
        return "expert", local, experts // ep
    if role == "attention sinks":  # one per head: split with the heads
        return "column", _divided(row, shape, 0, tp, "--tp"), 1
    if row.layer == model.head and model.head:
        whole = (vocab, *shape[1:])
        return "vocab", _divided(row, whole, 0, tp, "--tp"), 1
    if kind in ("Embedding",) and role == "token embedding":
        whole = (vocab, *shape[1:])
        return "vocab", _divided(row, whole, 0, tp, "--tp"), 1
    if "Norm" in kind or role in REPLICATED_ROLES or kind == "Embedding":
        return "replicated", shape, 1
    if kind in ("Linear", "Conv1D") and role in COLUMN_ROLES:
        dim = 1 if kind == "Conv1D" and len(shape) == 2 else 0
        # fewer query groups than ranks: Megatron-LM (d98e8a6, attention.py) still splits
        # the fused query-key-value matrix evenly over the ranks and gathers its output,
        # as transformers' tp_plan splits k_proj and v_proj (colwise): no head is whole
        return "column", _divided(row, shape, dim, tp, "--tp"), 1
    if kind in ("Linear", "Conv1D") and role in ROW_ROLES:
        if len(shape) == 1:
            return "row", shape, 1  # the bias of a row-parallel layer: replicated
        dim = 0 if kind == "Conv1D" else 1
        return "row", _divided(row, shape, dim, tp, "--tp"), 1
    if tp == 1:
        return "unsplit", shape, 1
    if kind == "MambaMixer":
        raise plan_error(
            "--tp",
            tp,
            f"--tp {tp}: {row.name} is a Mamba-1 mixer; Megatron-LM's MambaMixer is"
            " Mamba-2's and no tensor-parallel split of Mamba-1 is published; give --tp 1",
        )
    if role == "linear attention":
        raise plan_error(
            "--tp",
            tp,
            f"--tp {tp}: {row.name} is linear attention other than Qwen3-Next's Gated"
            " DeltaNet; no tensor-parallel split of it is published; give --tp 1",
        )
    raise plan_error(
        "--tp",
        tp,
        f"--tp {tp}: {row.name} ({role or kind}) has no published tensor-parallel split"
        " (Megatron's rules cover attention, MLPs, Mamba-2, embeddings and norms); give --tp 1",
    )


def _adapter_split(
    model: Model, row: Row, layer: Layer, adapter: str, shape: tuple[int, ...], tp: int, vocab: int
) -> tuple[str, tuple[int, ...], int]:
    """A LoRA adapter's tensor on one of ``tp`` ranks, as peft's ``LoraParallelLinear``
    builds it on Megatron's parallel layers (peft/tuners/lora/tp_layer.py, lines 136-156
    of peft 0.21.2): on a column-parallel layer lora_A (r, in) whole and lora_B a
    ColumnParallelLinear (out/t, r); on a row-parallel layer lora_A a RowParallelLinear
    (r, in/t) and lora_B (out, r) whole. peft refuses DoRA and lora_bias there (lines
    51-66), and adapts no embedding."""
    if tp == 1:
        return "adapter", shape, 1
    spec = layer.spec
    if adapter == "lora_magnitude_vector" or getattr(spec, "dora", False):
        raise plan_error(
            "--tp", tp, f"--tp {tp}: peft's LoraParallelLinear does not support DoRA; give --tp 1"
        )
    if row.name.endswith(".bias") or getattr(spec, "bias", False):
        raise plan_error(
            "--tp",
            tp,
            f"--tp {tp}: peft's LoraParallelLinear does not support lora_bias; give --tp 1",
        )
    if adapter.startswith("lora_embedding"):
        raise plan_error(
            "--tp",
            tp,
            f"--tp {tp}: {row.name}: peft adapts Megatron's parallel linear layers, not its"
            " vocabulary-parallel embedding; leave the embedding out of --lora-targets",
        )
    inner = _inner(spec)
    role, attribute = layer.role, split_name(row.layer)[-1]
    head = bool(model.head) and row.layer == model.head
    column = head or role in COLUMN_ROLES or (not role and attribute in COLUMN_NAMES)
    rows = role in ROW_ROLES or (not role and attribute in ROW_NAMES)
    if not (column or rows) or type(inner).__name__ not in ("Linear", "Conv1D"):
        raise plan_error(
            "--tp",
            tp,
            f"--tp {tp}: {row.name} adapts a layer with no tensor-parallel split here;"
            " leave it out of --lora-targets or give --tp 1",
        )
    if adapter == "lora_B" and column:
        out = vocab if head else shape[0]
        return "adapter, column", _divided(row, (out, *shape[1:]), 0, tp, "--tp"), 1
    if adapter == "lora_A" and rows:
        return "adapter, row", _divided(row, shape, 1, tp, "--tp"), 1
    return "adapter, whole", shape, 1


def _parent(name: str) -> str:
    return ".".join(split_name(name)[:-1])


def _mamba2_mixers(model: Model) -> dict[str, Layer]:
    """The Mamba-2 mixers of ``model``: the scan's layer (its dt_bias, A_log and D) by its
    module name, the prefix of the mixer's in_proj, conv1d, norm and out_proj."""
    return {layer.name: layer for layer in model.layers if _spec_kind(layer) == "Mamba2Scan"}


def _mamba2_split(
    row: Row, layer: Layer, mixer: Layer, shape: tuple[int, ...], tp: int
) -> tuple[str, tuple[int, ...], int]:
    """One tensor of a Mamba-2 mixer as Megatron-LM's ``MambaMixer`` holds it on one of
    ``tp`` ranks (megatron/core/ssm/mamba_mixer.py, lines 259-451 at d98e8a6): in_proj
    column-parallel in its z, x, B, C and dt parts (I/t, I/t, G·N/t, G·N/t, M/t rows each);
    conv1d over the rank's x, B and C channels; dt_bias, A_log and D over its M/t heads;
    the gated norm over its I/t channels (G/t groups); out_proj row-parallel."""
    spec = mixer.spec
    heads, groups = known(spec.num_heads), known(spec.n_groups)  # type: ignore[attr-defined]
    state, width = known(spec.state_size), known(spec.head_dim)  # type: ignore[attr-defined]
    assert heads and groups and state and width
    kind, attribute = _spec_kind(layer), split_name(row.layer)[-1]
    if tp == 1:
        return "unsplit", shape, 1
    for what, value in (("heads", heads), ("groups", groups)):
        if value % tp:
            letter = "M" if what == "heads" else "G"
            raise plan_error(
                "--tp",
                tp,
                f"--tp {tp} must divide the Mamba-2 {what} ({letter} = {value}), as"
                " Megatron-LM's MambaMixer requires",
            )
    if row.name.endswith(".bias") and kind == "Linear":
        raise plan_error(
            "--tp",
            tp,
            f"--tp {tp}: {row.name}: Megatron-LM's MambaMixer has no in_proj or out_proj"
            " bias (it asserts not bias); give --tp 1",
        )
    inner = heads * width
    if kind == "Mamba2Scan":
        return "heads", (heads // tp,), 1
    if kind == "GatedRMSNorm":
        return "column", (inner // tp,), 1
    if kind == "CausalConv1d":
        return "column: x, B, C", ((inner + 2 * groups * state) // tp, *shape[1:]), 1
    if attribute == "in_proj":
        local = (2 * inner + 2 * groups * state + heads) // tp
        return "column: z, x, B, C, dt", (local, *shape[1:]), 1
    if attribute == "out_proj":
        return "row", (shape[0], shape[1] // tp), 1
    raise plan_error("--tp", tp, f"--tp {tp}: {row.name} is not a part of Megatron-LM's MambaMixer")


@dataclass(frozen=True)
class _Split:
    row: Row
    style: str
    local: tuple[int, ...]
    #: experts per rank (checkpoint layout), else 1
    experts: int
    #: the layer indices of the row, None outside the stack
    indices: tuple[int, ...] | None
    stack: str


def _indices(row: Row) -> tuple[str, tuple[int, ...] | None]:
    prefix, numbers = layer_part(row.name)
    if numbers is None:
        return "", None
    stack = ".".join(split_name(prefix)[:-1])
    return stack, (numbers,) if isinstance(numbers, int) else tuple(numbers)


def _vocabulary(model: Model, layers: dict[str, Layer]) -> int:
    """The tokens of the token embedding (or the head's outputs), 0 if none."""
    for row in model.rows():
        if layers[row.layer].role == "token embedding" or (model.head and row.layer == model.head):
            return _int_shape(row)[0]
    return 0


def tensor_splits(
    model: Model, plan: ParallelPlan, vocab_multiple: int = VOCAB_MULTIPLE
) -> tuple[tuple[Row, str, tuple[int, ...]], ...]:
    """Every tensor of ``model`` with how tensor and expert parallelism hold it: (row,
    style, one rank's shape), in PyTorch's order."""
    return tuple((s.row, s.style, s.local) for s in _splits(model, plan, vocab_multiple)[0])


def _splits(
    model: Model, plan: ParallelPlan, vocab_multiple: int
) -> tuple[tuple[_Split, ...], int]:
    if vocab_multiple < 1:
        raise plan_error(
            "vocab_multiple", vocab_multiple, "the vocabulary multiple must be at least 1"
        )
    _check_heads(model, plan.tp)
    layers = {layer.name: layer for layer in model.layers}
    mixers = _mamba2_mixers(model)
    if plan.tp > 1:
        biased = {_parent(row.layer) for row in model.rows() if row.name.endswith("conv1d.bias")}
        for name in mixers:
            if name not in biased:
                raise plan_error(
                    "--tp",
                    plan.tp,
                    f"--tp {plan.tp}: {name}.conv1d has no bias; Megatron-LM's MambaMixer"
                    " asserts conv_bias; give --tp 1",
                )
    base = _vocabulary(model, layers)
    vocab = padded_vocab(base, plan.tp, vocab_multiple) if base else 0
    out: list[_Split] = []
    for row in model.rows():
        layer = layers[row.layer]
        style, local, experts = _tp_split(model, row, layer, plan, vocab, mixers)
        stack, numbers = _indices(row)
        out.append(_Split(row, style, local, experts, numbers, stack))
    return tuple(out), vocab


def stage_layers(
    layers: int,
    pp: int,
    virtual_stages: int = 1,
    first: int | None = None,
    last: int | None = None,
) -> tuple[tuple[int, ...], ...]:
    """The layer indices each of ``pp`` pipeline ranks holds, by Megatron's rules
    (megatron/core/transformer/transformer_config.py, "Uneven PP"; arguments.py: the
    layers divisible by pp): ``L/pp`` each, or ``first`` and ``last`` layers on the end
    stages and the rest even over the middle ones; with ``virtual_stages`` v, each
    rank's layers in v chunks, chunk ``j`` of rank ``r`` the model's ``(j·pp + r)``-th.

    >>> stage_layers(8, 2)
    ((0, 1, 2, 3), (4, 5, 6, 7))
    >>> stage_layers(8, 2, virtual_stages=2)
    ((0, 1, 4, 5), (2, 3, 6, 7))
    >>> stage_layers(10, 3, first=2, last=4)
    ((0, 1), (2, 3, 4, 5), (6, 7, 8, 9))
    """
    v = virtual_stages
    counts: list[int | None] = [None] * pp
    if first is not None or last is not None:
        if pp == 1:
            raise plan_error(
                "--first-stage-layers", first or last, "uneven stages need --pp 2 or more"
            )
        rest, middle = layers, pp
        for flag, value, index in (
            ("--first-stage-layers", first, 0),
            ("--last-stage-layers", last, pp - 1),
        ):
            if value is None:
                continue
            if value < 1 or value % v:
                raise plan_error(
                    flag,
                    value,
                    f"{flag} must be at least 1 and a multiple of --virtual-stages ({v}),"
                    " as Megatron-LM requires",
                )
            counts[index] = value
            rest -= value
            middle -= 1
        if bool(rest > 0) != bool(middle) or rest < 0 or (middle and rest % (middle * v)):
            raise plan_error(
                "--pp",
                pp,
                f"the {max(rest, 0)} layers left after the first and last stages must split"
                f" evenly over the {middle} middle stages (in --virtual-stages {v} chunks),"
                " as Megatron-LM requires",
            )
        each = rest // middle if middle else 0
        counts = [each if c is None else c for c in counts]
    else:
        if layers % (pp * v):
            what = f"--pp {pp}" + (f" × --virtual-stages {v}" if v > 1 else "")
            raise plan_error(
                "--pp",
                pp,
                f"{what} must divide the {layers} layers (L), as Megatron-LM requires"
                " (or give --first-stage-layers / --last-stage-layers)",
            )
        counts = [layers // pp] * pp
    chunks: list[list[int]] = [[] for _ in range(pp)]
    index = 0
    for _ in range(v):
        for rank in range(pp):
            size = (counts[rank] or 0) // v
            chunks[rank].extend(range(index, index + size))
            index += size
    return tuple(tuple(c) for c in chunks)


def rank_parameters(
    model: Model,
    plan: ParallelPlan,
    *,
    first_stage_layers: int | None = None,
    last_stage_layers: int | None = None,
    vocab_multiple: int = VOCAB_MULTIPLE,
) -> RankParameters:
    """What each pipeline stage's tensor-parallel rank holds (every tensor with its
    per-rank shape) and the most loaded of them: the parameters a GPU must hold before any
    data-parallel sharding. ``first_stage_layers`` and ``last_stage_layers`` default to
    the plan's.

    >>> from shapecalc.architectures.llama import llama
    >>> m = llama(vocab=1000, hidden=64, layers=4, heads=4, kv_heads=2, intermediate=128)
    >>> r = rank_parameters(m, ParallelPlan(tp=2, pp=2))
    >>> [(t.name, t.local, t.style) for t in r.stages[0].tensors][:3]
    [('model.embed_tokens.weight', (512, 64), 'vocab'), \
('model.layers.{0..1}.self_attn.q_proj.weight', (32, 64), 'column'), \
('model.layers.{0..1}.self_attn.k_proj.weight', (16, 64), 'column')]
    """
    if first_stage_layers is None:
        first_stage_layers = plan.first_stage_layers
    if last_stage_layers is None:
        last_stage_layers = plan.last_stage_layers
    splits, vocab = _splits(model, plan, vocab_multiple)
    stacks = {s.stack for s in splits if s.indices is not None}
    numbered = sorted({i for s in splits if s.indices for i in s.indices})
    if plan.pp > 1 and len(stacks) != 1:
        raise plan_error(
            "--pp",
            plan.pp,
            f"pipeline stages split one stack of layers; {model.name} has"
            f" {len(stacks) or 'no'} stacks",
        )
    total_layers = len(numbered)
    if numbered and numbered != list(range(total_layers)):
        total_layers = numbered[-1] + 1
    held = stage_layers(
        total_layers, plan.pp, plan.virtual_stages, first_stage_layers, last_stage_layers
    )
    first_numbered = next((k for k, s in enumerate(splits) if s.indices is not None), None)
    stages: list[Stage] = []
    for rank, mine in enumerate(held):
        own = set(mine)
        tensors: list[RankTensor] = []
        for k, s in enumerate(splits):
            row = s.row
            tied = row.tied_to
            if s.indices is None:
                before = first_numbered is None or k < first_numbered
                if (before and rank != 0) or (not before and rank != plan.pp - 1):
                    continue
                if tied and plan.pp > 1 and rank != 0:
                    tied = None  # the last stage keeps its own copy of a tied embedding
                tensors.append(RankTensor(row.name, _int_shape(row), s.local, s.style, 1, tied))
                continue
            layers_here = own.intersection(s.indices)
            if not layers_here:
                continue
            per_layer = (known(row.param.repeat) or 1) // len(s.indices)
            copies = len(layers_here) * (s.experts if s.style == "expert" else per_layer)
            name = _renamed(row.name, sorted(layers_here)) if plan.pp > 1 else row.name
            tensors.append(RankTensor(name, _int_shape(row), s.local, s.style, copies, tied))
        stages.append(Stage(rank, mine, tuple(tensors)))
    notes = []
    base = _vocabulary(model, {layer.name: layer for layer in model.layers})
    if vocab and vocab != base:
        notes.append(
            f"vocabulary padded from {base:,} to {vocab:,} (a multiple of"
            f" {vocab_multiple}·tp, Megatron's --make-vocab-size-divisible-by)"
        )
    return RankParameters(plan, tuple(stages), vocab, tuple(notes))


def _renamed(name: str, layers: list[int]) -> str:
    """``model.layers.{0..31}.mlp...`` with the run's part replaced by the layers held."""
    prefix, _ = layer_part(name)
    parts = split_name(prefix)
    contiguous = layers == list(range(layers[0], layers[-1] + 1))
    if len(layers) == 1:
        held = str(layers[0])
    elif contiguous:
        held = f"{{{layers[0]}..{layers[-1]}}}"
    else:
        held = "{" + ",".join(str(i) for i in layers) + "}"
    return ".".join((*parts[:-1], held)) + name[len(prefix) :]


# --- activations (Korthikanti et al. 2022) -------------------------------------------


@dataclass(frozen=True)
class ActivationLine:
    """One kept tensor of the account: what it is, its bytes as a formula and a number."""

    what: str
    formula: str
    bytes: int


@dataclass(frozen=True)
class Activations:
    """The activations the first pipeline stage's GPU keeps for the backward pass."""

    #: one layer's kept tensors for one micro-batch
    layer: tuple[ActivationLine, ...]
    #: layer × micro-batch pairs the first stage holds at once
    layer_batches: int
    #: the embedding's (and, with one stage, the head's) kept tensors, all micro-batches
    ends: tuple[ActivationLine, ...]
    sizes: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    #: what kind of layer ``layer`` is ("" when every layer is alike), and the first
    #: stage's other kinds: (kind, one layer's kept tensors, layer × micro-batch pairs),
    #: a model of dense and mixture layers
    kind: str = ""
    more: tuple[tuple[str, tuple[ActivationLine, ...], int], ...] = ()

    @property
    def per_layer(self) -> int:
        return sum(line.bytes for line in self.layer)

    @property
    def kinds(self) -> tuple[tuple[str, tuple[ActivationLine, ...], int], ...]:
        """Every kind of layer the first stage holds: (kind, one layer's kept tensors,
        layer × micro-batch pairs in flight)."""
        return ((self.kind, self.layer, self.layer_batches), *self.more)

    @property
    def total(self) -> int:
        layers = sum(sum(x.bytes for x in lines) * n for _, lines, n in self.kinds)
        return layers + sum(line.bytes for line in self.ends)

    def lines(self) -> list[ActivationLine]:
        """The account as lines: each kind of layer's terms, the layers held, the ends,
        the total."""
        out: list[ActivationLine] = []
        for kind, lines, batches in self.kinds:
            one = sum(line.bytes for line in lines)
            what = f"{kind} layer" if kind else "layer"
            out.extend(lines)
            out.append(ActivationLine(f"one {what}, one micro-batch", "sum of the above", one))
            out.append(
                ActivationLine(
                    f"× {batches} {what}·micro-batches in flight", "first stage", one * batches
                )
            )
        out.extend(self.ends)
        out.append(ActivationLine("activations per GPU", "total", self.total))
        return out


@dataclass(frozen=True)
class _Shape:
    h: int
    a: int
    k: int
    d: int
    #: the dense MLP's width, 0 in a mixture's layer
    f: int
    gated: bool
    vocab: int
    #: a mixture's layer: experts, experts per token, an expert's width, the shared
    #: expert's width (0: none) and whether a sigmoid gate scales it
    experts: int = 0
    top_k: int = 0
    expert_f: int = 0
    shared_f: int = 0
    shared_gate: bool = False
    #: a Mamba-2 layer (a norm and the mixer): the mixer's heads, head size, state,
    #: groups, convolution taps, chunk, whether it has its gated norm, its named width
    mamba: tuple[int, int, int, int, int, int, bool, int | None] | None = None
    #: a layer whose token mixer is a Gated DeltaNet (Qwen3-Next's linear attention):
    #: its key heads, value heads, their widths and the convolution's taps
    gdn: tuple[int, int, int, int, int] | None = None
    #: a layer whose attention gates its output (Qwen3-Next's full attention): its query
    #: heads, key-value heads, head size and rotary width
    gated_attention: tuple[int, int, int, int] | None = None
    #: the router hands the experts its top-k weights in the activations' dtype (else fp32)
    routing_cast: bool = False


#: a leaf without a role: its part, by its attribute name as transformers' families spell it
_NAMED_ROLES = {
    "q_proj": "query",
    "k_proj": "key",
    "v_proj": "value",
    "o_proj": "output projection",
    "qkv_proj": "query, key and value",
    "query_key_value": "query, key and value",
    "c_attn": "query, key and value",
    "gate_proj": "gate",
    "w1": "gate",
    "up_proj": "up",
    "w3": "up",
    "c_fc": "up",
    "fc1": "up",
    "dense_h_to_4h": "up",
    "gate_up_proj": "gate and up",
    "down_proj": "down",
    "w2": "down",
    "fc2": "down",
    "dense_4h_to_h": "down",
}


def _role(layer: Layer) -> str:
    """A leaf's part: its role, or what its attribute name says, or its kind."""
    if layer.role:
        return layer.role.removeprefix("dense ")  # a dense MLP among a mixture's layers
    attribute = split_name(layer.name)[-1] if layer.name else ""
    return _NAMED_ROLES.get(attribute, _spec_kind(layer))


def _structure(model: Model) -> _Shape:
    """The paper's sizes read from every layer of the stack: h, heads, kv heads, head
    size, the MLP's width and whether it is gated; refused where the paper's block (one
    attention and one dense MLP per layer, the same in every layer) is not the model's."""
    shapes = {shape for _, shape in _structures(model)}
    if len(shapes) != 1:
        raise _refuse(model, "the paper's layers are all alike; this model's layers differ")
    shape = shapes.pop()
    if shape.experts:
        raise _refuse(model, "a mixture of experts is outside the paper's block (one dense MLP)")
    return shape


def _structures(model: Model) -> list[tuple[tuple[int, ...], _Shape]]:
    """Each run of alike layers (its layer indices) with its sizes: attention and a dense
    MLP or a mixture of experts; refused where the attention differs between runs or a
    layer is neither."""
    layers = {layer.name: layer for layer in model.layers}
    runs: dict[tuple[int, ...], tuple[dict[str, tuple[int, ...]], dict[str, Layer]]] = {}
    for row in model.rows():
        _, numbers = _indices(row)
        if numbers is None:
            continue
        layer = layers[row.layer]
        roles, specs = runs.setdefault(numbers, ({}, {}))
        kind = _spec_kind(layer)
        if split_name(row.name)[-1] == "weight" or "Experts" in kind or kind == "Mamba2Scan":
            roles.setdefault(_role(layer), _int_shape(row))
            specs.setdefault(_role(layer), layer)
    out = [(numbers, _run_shape(model, roles, specs)) for numbers, (roles, specs) in runs.items()]
    attention = {(s.h, s.a, s.k, s.d) for _, s in out if s.gdn is None}
    if len(attention) > 1:
        raise _refuse(model, "the paper's layers are all alike; this model's attention differs")
    return sorted(out)


def _refuse(model: Model, why: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"activations by Korthikanti et al.: {why}",
        layer="parallel",
        field="model",
        value=model.name,
        rule=f"{model.name}: {why}",
    )


def _run_shape(model: Model, roles: dict[str, tuple[int, ...]], specs: dict[str, Layer]) -> _Shape:
    kinds = {role: _spec_kind(layer) for role, layer in specs.items()}
    if kinds.get("state space") == "Mamba2Scan" and set(roles) <= _MAMBA2_ROLES:
        return _mamba2_shape(model, specs)
    gdn = None
    if kinds.get("linear attention") == "GatedDeltaNet" and "state space" not in roles:
        from shapecalc.analysis.gdn_parallel import gdn_heads

        gdn = gdn_heads(_inner(specs["linear attention"].spec))
    elif "state space" in roles or "linear attention" in roles:
        raise _refuse(
            model,
            "a layer of attention and an MLP, or a Mamba-2 mixer alone, is derived here;"
            " this model's layers hold a state-space or linear-attention mixer beside them",
        )
    mixture = "router" in roles or "experts" in roles or "routed experts" in roles
    if mixture and kinds.get("experts") != "Experts":
        raise _refuse(
            model,
            "only a mixture of SwiGLU experts (Mixtral's, Qwen-MoE's) is derived here;"
            " this model's experts differ",
        )
    gated_attention = "query and gate" in roles
    if gated_attention and not {"key", "value", "query norm", "key norm"} <= roles.keys():
        raise _refuse(
            model,
            "attention whose query projection also makes an output gate is derived for"
            " Qwen3-Next's (separate keys and values, q and k norms)",
        )
    attention = (
        {"query", "key", "value"} <= roles.keys()
        or "query, key and value" in roles
        or gated_attention
    )
    mlp = ("up" in roles or "gate and up" in roles) and "down" in roles
    if gdn is not None and not (mlp or mixture):
        raise _refuse(model, "a Gated DeltaNet layer is derived here beside an MLP or experts")
    if gdn is None and not (attention and (mlp or mixture) and "output projection" in roles):
        raise _refuse(
            model, "the paper's layer is attention and an MLP; this model's layers differ"
        )

    def out(role: str) -> int:
        shape = roles[role]
        return shape[1] if kinds[role] == "Conv1D" else shape[0]

    heads = known(model.sizes.get("A", 0)) or 0
    if not heads and gdn is None:
        raise _refuse(model, "the model names no attention heads (A)")
    h = known(model.sizes.get("H", 0)) or 0
    if gdn is not None:
        heads = d = k = 0
        h = h or known(_inner(specs["linear attention"].spec).hidden_size) or 0
    elif "query" in roles or gated_attention:
        q, kv = out("query" if "query" in roles else "query and gate"), out("key")
        d = q // heads // (2 if gated_attention else 1)
        k = kv // d
    else:
        d = known(model.sizes.get("D", 0)) or (h // heads)
        k = (out("query, key and value") // d - heads) // 2
    h = h or (roles["output projection"][0])
    vocab = _vocabulary(model, {layer.name: layer for layer in model.layers})
    gated_dims = None
    if gated_attention:
        from shapecalc.analysis.gated_attention_parallel import rotary_width
        from shapecalc.core.tree import find_node

        block = find_node(model.root, tuple(split_name(_parent(specs["query and gate"].name))))
        turned = rotary_width(getattr(block, "flow", None), d)
        gated_dims = (heads, k, d, turned)
    if mixture:
        spec = _inner(specs["experts"].spec)
        experts, top_k = known(spec.num_experts), known(spec.top_k)
        width = known(spec.intermediate_size)
        shared = out("shared expert up") if "shared expert up" in roles else 0
        if not shared and "up" in roles and "shared_expert" in split_name(specs["up"].name):
            shared = out("up")  # a shared expert declared as a gated MLP (Qwen3-Next's)
        gate = "shared expert's sigmoid gate" in roles
        return _Shape(h, heads, k, d, 0, True, vocab, experts or 0, top_k or 0, width or 0,
                      shared, gate, gdn=gdn, gated_attention=gated_dims,
                      routing_cast=model.kind in _CAST_ROUTERS)  # fmt: skip
    gated = "gate" in roles or "gate and up" in roles
    f = out("up") if "up" in roles else out("gate and up") // 2
    return _Shape(h, heads, k, d, f, gated, vocab, gdn=gdn, gated_attention=gated_dims)


#: families whose transformers router casts its top-k weights to the activations' dtype
#: before the experts keep them (``router_top_value.to(router_logits.dtype)`` in
#: Qwen2MoeTopKRouter, Qwen3MoeTopKRouter, Qwen3NextTopKRouter); Mixtral's stay fp32
_CAST_ROUTERS = frozenset({"qwen_moe", "qwen3_next"})

_MAMBA2_ROLES = frozenset(
    {
        "state space",
        "convolution",
        "input projection",
        "norm",
        "output projection",
        "RMSNorm",
        "LlamaRMSNorm",
    }
)


def _mamba2_shape(model: Model, specs: dict[str, Layer]) -> _Shape:
    scan = specs["state space"].spec
    conv = specs["convolution"].spec
    norm = specs.get("norm")
    if norm is not None and getattr(norm.spec, "norm_before_gate", False):
        raise _refuse(model, "Megatron-LM's MambaMixer has no norm before the gate")
    values = [
        known(getattr(scan, name)) for name in ("num_heads", "head_dim", "state_size", "n_groups")
    ]
    kernel = known(conv.kernel_size)  # type: ignore[attr-defined]
    width = known(scan.width) if scan.width is not None else None  # type: ignore[attr-defined]
    heads, head_dim, state, groups = (v or 0 for v in values)
    h = known(model.sizes.get("H", 0)) or 0
    vocab = _vocabulary(model, {layer.name: layer for layer in model.layers})
    chunk: int = scan.chunk_size  # type: ignore[attr-defined]
    mamba = (heads, head_dim, state, groups, kernel or 0, chunk, norm is not None, width)
    return _Shape(h, 0, 0, 0, 0, False, vocab, mamba=mamba)


def mamba2_mixer_lines(
    mixer: tuple[int, int, int, int, int, int, bool, int | None],
    h: int,
    plan: ParallelPlan,
    s: int,
    b: int,
    p: int,
) -> tuple[ActivationLine, ...]:
    """What one Mamba-2 mixer keeps on one of tp ranks, one micro-batch: Megatron-LM's
    ``MambaMixer`` gives each rank M/t heads and G/t groups (mamba_mixer.py, lines
    259-271 at d98e8a6) and runs the whole mixer on them, so the rank keeps what a mixer
    of M/t heads and G/t groups keeps (the shapecalc account of transformers' torch path,
    checked against autograd): in_proj's input (the layer's h-wide input, /t with
    sequence parallelism, which gathers it again for the backward pass) and the rest."""
    from shapecalc.analysis.cost import analyze
    from shapecalc.architectures.mamba2 import mixer as build_mixer
    from shapecalc.core.model import Model

    heads, head_dim, state, groups, kernel, chunk, gated, width = mixer
    t = plan.tp
    sp = t if plan.sequence_parallel else 1
    local = build_mixer(
        "Mamba2Mixer", h, heads // t, head_dim, state, groups // t, kernel, chunk,
        bias=False, conv_bias=True, gated_norm=gated, inner=None if width is None else width // t,
    )  # fmt: skip
    dtype = {4: "fp32", 2: "bf16"}.get(p)
    if dtype is None:
        raise plan_error("itemsize", p, "a Mamba-2 mixer's activations are 4 or 2 bytes")
    cost = analyze(Model("mixer", local), inputs=((b, s, h),), dtype=dtype)
    kept = known(cost.activation_bytes) or 0
    split = "/t" if sp > 1 else ""
    tp_ = "/t" if t > 1 else ""
    return (
        ActivationLine("in_proj's input", f"p·s·b·h{split}", p * s * b * h // sp),
        ActivationLine(
            "the mixer's own (conv, scan, gated norm)",
            f"a mixer of M{tp_} heads, G{tp_} groups",
            kept - p * s * b * h,
        ),
    )


def activation_bytes(
    model: Model,
    plan: ParallelPlan,
    batch: int,
    seq_len: int,
    itemsize: int = 2,
    *,
    flash: bool = False,
    dropout: bool = True,
    vocab_multiple: int = VOCAB_MULTIPLE,
) -> Activations:
    """The activations one GPU of the first pipeline stage keeps, by Korthikanti et al.
    (arXiv:2205.05198, Table 2 and section 4), term by term for one micro-batch of
    ``batch`` sequences of ``seq_len`` tokens (``s`` = seq_len / cp per rank), each
    activation ``itemsize`` bytes (the paper's 2), dropout masks 1 byte:

    - the two norms' inputs, attention's input, the MLP's input: ``p·s·b·h`` each, and
      the attention and MLP dropout masks ``s·b·h``: split over t only with sequence
      parallelism (the paper's 10·s·b·h);
    - Q and K ``p·s·b·(a+k)·d/t``, V ``p·s·b·k·d/t``, attention's output ``p·s·b·a·d/t``
      (the paper's 4, 2 and 2 s·b·h/t with k = a, a·d = h: grouped-query attention keeps
      k heads of keys and values);
    - softmax output ``p·a·s²·b/t``, its dropout mask ``a·s²·b/t`` and output
      ``p·a·s²·b/t`` (the paper's 5·a·s²·b/t): gone with selective recomputation or a
      fused (flash) attention kernel, which context parallelism runs;
    - the MLP: ``2·p·s·b·F/t`` for an activation's input and output (the paper's 16·s·b·h
      at F = 4h); a gated MLP (SwiGLU) keeps ``3·p·s·b·F/t``: the gate and up outputs
      (Megatron's fused SwiGLU's input) and the product the down projection reads;
    - full recomputation keeps only each layer's input, ``p·s·b·h`` (/t with sequence
      parallelism).

    The first stage holds L/pp layers for each of min(m, pp) micro-batches in flight
    (1F1B), or with v virtual stages ``2(pp-1) + (v-1)·pp + 1`` chunks of L/(pp·v) layers
    (Megatron's interleaved warm-up), which is the paper's (1 + (pp-1)/(pp·v)) factor.
    The ends: the token ids (int64, 8·s·b) and the embedding's dropout mask per micro-
    batch in flight; with one stage, the final norm's and the head's inputs and the
    fp32 logits the loss keeps, ``4·s·b·V/t`` (Megatron's output-layer term).

    >>> from shapecalc.architectures.llama import llama
    >>> m = llama(vocab=1000, hidden=64, layers=4, heads=4, intermediate=128)
    >>> activation_bytes(m, ParallelPlan(), 1, 16).per_layer
    35840
    """
    for flag, value in (("--batch", batch), ("--seq-len", seq_len), ("itemsize", itemsize)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise plan_error(flag, value, f"{flag} must be a whole number of at least 1")
    # the sizes as computed: a quantized model (QLoRA) by its unquantized twin, whose
    # tensors are not packed
    runs = _structures(model.unquantized or model)
    shape = runs[0][1]
    t, cp, pp = plan.tp, plan.cp, plan.pp
    if seq_len % cp:
        raise plan_error("--cp", cp, f"--cp {cp} must divide the sequence length ({seq_len})")
    s, b = seq_len // cp, batch
    sp = t if plan.sequence_parallel else 1
    if s % sp:
        raise plan_error(
            "--sequence-parallel",
            True,
            f"sequence parallelism splits each rank's {s} tokens over --tp {t}:"
            " it must divide them",
        )
    mixture = any(run.experts for _, run in runs)
    if mixture and t > 1 and not plan.sequence_parallel:
        raise plan_error(
            "--tp",
            t,
            f"--tp {t} with a mixture of experts needs --sequence-parallel in training, as"
            " Megatron-LM requires (megatron/core/transformer/moe/moe_layer.py)",
        )
    rank = rank_parameters(model, plan, vocab_multiple=vocab_multiple)
    from shapecalc.analysis.lora_parallel import adapted, lora_runs

    adapters = lora_runs(model, _role) if adapted(model) else None  # a frozen base
    p, h = itemsize, shape.h
    split = "/t" if sp > 1 else ""
    tp_ = "/t" if t > 1 else ""
    sizes = {"s": s, "b": b, "h": h, "a": shape.a, "k": shape.k, "d": shape.d, "t": t, "p": p}
    first = rank.stages[0]
    kinds: dict[_Shape, int] = {}
    for numbers, run in runs:
        kinds[run] = kinds.get(run, 0) + len(set(numbers) & set(first.layers))
    kinds = {run: n for run, n in kinds.items() if n} or {shape: 0}
    if plan.virtual_stages > 1 and len(kinds) > 1:
        raise plan_error(
            "--virtual-stages",
            plan.virtual_stages,
            "the interleaved schedule's chunks in flight are counted here for a first stage"
            " of alike layers; this one mixes dense and mixture layers: give"
            " --virtual-stages 1",
        )
    m = plan.micro_batches
    in_flight = min(m, pp)
    blocks: list[tuple[str, tuple[ActivationLine, ...], int]] = []
    for run, count in kinds.items():
        lines = _layer_lines(run, plan, s, b, p, flash=flash, dropout=dropout)
        if adapters is not None:
            alike = [numbers for numbers, other in runs if other == run]
            kept = adapters.layer(alike, tuple(_triple(x) for x in lines), run, plan, s, b, p)
            lines = tuple(ActivationLine(*x) for x in kept)
        if plan.virtual_stages > 1:
            chunk = len(first.layers) // plan.virtual_stages
            v = plan.virtual_stages
            batches = min(m * v, 2 * (pp - 1) + (v - 1) * pp + 1) * chunk
        else:
            batches = in_flight * count
        kind = ("mixture" if run.experts else "dense") if len(kinds) > 1 else ""
        if kind and len({(r.gdn is None, r.gated_attention is None) for r in kinds}) > 1:
            mixer = (
                "linear-attention" if run.gdn else "gated-attention" if run.gated_attention else ""
            )
            kind = f"{mixer} {kind}".strip()
        blocks.append((kind, lines, batches))
        if run.experts:
            sizes.update(E=run.experts, k_e=run.top_k, I=run.expert_f, ep=plan.ep)
            if run.shared_f:
                sizes["S"] = run.shared_f
        else:
            sizes["F"] = run.f
        if run.gdn:
            sizes.update(zip(("Nk", "Nv", "Dk", "Dv", "W"), run.gdn, strict=True))
        if run.gated_attention:
            sizes.update(zip(("a", "k", "d", "r"), run.gated_attention, strict=True))
    ends = [ActivationLine("token ids (int64)", "8·s·b per micro-batch", 8 * s * b * in_flight)]
    if dropout:
        ends.append(
            ActivationLine(
                "embedding dropout mask",
                f"s·b·h{split} per micro-batch",
                s * b * h // sp * in_flight,
            )
        )
    gated = next((run.gated_attention for run in kinds if run.gated_attention), None)
    if gated is not None and plan.recompute != "full":
        from shapecalc.analysis.gated_attention_parallel import rotary_tables

        what, formula, value = rotary_tables(gated[3], s, b, p)
        ends.append(ActivationLine(what, f"{formula} per micro-batch", value * in_flight))
    if pp == 1:
        ends.append(ActivationLine("final norm's input", f"p·s·b·h{split}", p * s * b * h // sp))
        ends.append(ActivationLine("head's input", f"p·s·b·h{split}", p * s * b * h // sp))
        ends.append(
            ActivationLine(
                "logits in fp32 for the loss", f"4·s·b·V{tp_}", 4 * s * b * rank.vocab // t
            )
        )
    if adapters is not None:
        kept_ends = adapters.ends([_triple(x) for x in ends], plan, s, b, p, in_flight, h)
        ends = [ActivationLine(*x) for x in kept_ends]
    notes = [
        "Korthikanti et al. (arXiv:2205.05198): per layer s·b·h·(34 + 5·a·s/h) bytes at"
        " p = 2, k = a, a·d = h, F = 4h, with dropout",
    ]
    if adapters is not None:
        notes.append(
            "LoRA: the frozen base keeps no linear layer's input; each adapter keeps lora_A's"
            " input (a float32 copy at 16 bits) and output (float32, r wide)"
        )
    if any(run.gdn for run in kinds):
        heads = (
            "Nk/(t·cp) and Nv/(t·cp) heads over the cp·s tokens"
            if cp > 1
            else "Nk/t and Nv/t heads"
        )
        notes.append(
            "linear attention: what autograd keeps in transformers' torch path of a Gated"
            f" DeltaNet of {heads} (Megatron-LM's GatedDeltaNet split)"
        )
    if gated is not None:
        notes.append(
            "gated attention: what autograd keeps in transformers' eager Qwen3NextAttention"
            " of a/t query and k/t key-value heads (Megatron-LM's attention_output_gate)"
        )
    if any(run.gated and not run.experts for run in kinds):
        notes.append("gated MLP: 3·p·s·b·F (Megatron's fused SwiGLU recomputes its product)")
    if mixture:
        notes.append(
            "mixture: what transformers' eager MoE block keeps, per rank s·b·k visits"
            " (balanced routing over --ep), tokens gathered over tp"
        )
    if flash:
        notes.append("fused attention kernel: no a·s² terms (its softmax statistics not counted)")
    elif cp > 1 and any(run.a for run in kinds):
        notes.append(
            "context parallelism runs a fused attention kernel (Transformer Engine's in"
            " Megatron-LM): no a·s² terms"
        )
    sizes["V"] = rank.vocab
    (kind, layer, batches), *more = blocks
    return Activations(
        layer, batches, tuple(ends), sizes, tuple(notes), kind=kind, more=tuple(more)
    )


def _triple(line: ActivationLine) -> tuple[str, str, int]:
    return (line.what, line.formula, line.bytes)


def _layer_lines(
    shape: _Shape, plan: ParallelPlan, s: int, b: int, p: int, *, flash: bool, dropout: bool
) -> tuple[ActivationLine, ...]:
    """One layer's kept tensors for one micro-batch on one rank (see
    :func:`activation_bytes`)."""
    t, cp = plan.tp, plan.cp
    h, a, k, d, f = shape.h, shape.a, shape.k, shape.d, shape.f
    sp = t if plan.sequence_parallel else 1
    kv = k if k >= t else t  # fewer kv heads than ranks: each rank keeps one group
    split = "/t" if sp > 1 else ""
    tp_ = "/t" if t > 1 else ""
    lines: list[ActivationLine] = []

    def add(what: str, formula: str, value: int) -> None:
        lines.append(ActivationLine(what, formula, value))

    if plan.recompute == "full":
        add("layer input (the rest recomputed)", f"p·s·b·h{split}", p * s * b * h // sp)
        return tuple(lines)
    if shape.mamba is not None:
        if cp > 1:
            raise plan_error(
                "--cp", cp, "a Mamba-2 mixer's activations under --cp are not derived here"
            )
        add("norm's input", f"p·s·b·h{split}", p * s * b * h // sp)
        lines.extend(mamba2_mixer_lines(shape.mamba, h, plan, s, b, p))
        if dropout:
            add("mixer dropout mask", f"s·b·h{split}", s * b * h // sp)
        return tuple(lines)
    add("two norms' inputs", f"2·p·s·b·h{split}", 2 * p * s * b * h // sp)
    if shape.gdn is not None:  # linear attention: the Gated DeltaNet a rank runs
        from shapecalc.analysis.gdn_parallel import gated_delta_net_lines

        for what, formula, value in gated_delta_net_lines(shape.gdn, h, plan, s, b, p):
            add(what, formula, value)
    elif shape.gated_attention is not None:  # Qwen3-Next's full attention, a rank's heads
        from shapecalc.analysis.gated_attention_parallel import gated_attention_lines

        for what, formula, value in gated_attention_lines(
            shape.gated_attention, h, plan, s, b, p, flash=flash
        ):
            add(what, formula, value)
    else:
        add("attention's input", f"p·s·b·h{split}", p * s * b * h // sp)
        add("Q and K", f"p·s·b·(a+k)·d{tp_}", p * s * b * (a * d // t + kv * d // t))
        add("V", f"p·s·b·k·d{tp_}", p * s * b * (kv * d // t))
        if not flash and plan.recompute != "selective" and cp == 1:
            add("softmax output", f"p·a·s²·b{tp_}", p * a * s * s * b // t)
            if dropout:
                add("attention dropout mask", f"a·s²·b{tp_}", a * s * s * b // t)
                add("attention dropout output", f"p·a·s²·b{tp_}", p * a * s * s * b // t)
        add("attention output", f"p·s·b·a·d{tp_}", p * s * b * a * d // t)
    if dropout:
        add("attention dropout mask", f"s·b·h{split}", s * b * h // sp)
    add("MLP's input", f"p·s·b·h{split}", p * s * b * h // sp)
    if shape.experts:
        weight = p if shape.routing_cast else 4
        lines.extend(
            mixture_lines(shape.experts, shape.top_k, shape.expert_f, h, plan, s, b, p, weight)
        )
        if shape.shared_f:
            lines.extend(shared_expert_lines(shape.shared_f, shape.shared_gate, h, plan, s, b, p))
    elif shape.gated:
        add("gate and up outputs, product", f"3·p·s·b·F{tp_}", 3 * p * s * b * f // t)
    else:
        add("activation's input and output", f"2·p·s·b·F{tp_}", 2 * p * s * b * f // t)
    if dropout:
        add("MLP dropout mask", f"s·b·h{split}", s * b * h // sp)
    return tuple(lines)


def mixture_lines(
    experts: int,
    top_k: int,
    width: int,
    h: int,
    plan: ParallelPlan,
    s: int,
    b: int,
    p: int,
    weight_bytes: int = 4,
) -> tuple[ActivationLine, ...]:
    """What a mixture of SwiGLU experts keeps for the backward pass on one rank, one
    micro-batch, derived per Korthikanti et al. from the tensors transformers' eager
    mixture (Mixtral's ``MixtralTopKRouter`` and ``MixtralExperts``) saves, its input
    (the MLP's input) counted apart:

    - the router, on the rank's s·b tokens (s·b/t with sequence parallelism: Megatron
      routes before gathering): the softmax of the logits, fp32 (``4·s·b·E``); the
      experts chosen, int64 (``8·s·b·k``); the top-k weights and their sum for the
      renormalisation, fp32 (``4·s·b·(k+1)``);
    - per visit (a token at one of its k experts): ``s·b·k`` visits on each rank, the
      tokens all-to-all'd to their experts' ``--ep`` rank (balanced routing: every
      rank receives as many as it sends) and gathered over the tensor-parallel ranks
      (Megatron's ``MoEAlltoAllTokenDispatcher.token_dispatch``, token_dispatcher.py
      lines 741-750 at d98e8a6), each keeping the token gathered, the expert's output and
      its weighted output, ``3·p·h``, whole; the gate and up outputs, SiLU's output and
      the down projection's input, ``4·p·I/t`` (each expert column- and row-parallel
      over Megatron's expert tensor-parallel size, tp); the routing weight
      (``weight_bytes``: fp32, 4, as Mixtral's router leaves it; ``p`` where the router
      casts it, as Qwen-MoE's and Qwen3-Next's do) and the token's row and slot (int64, 16).

    >>> [line.bytes for line in mixture_lines(8, 2, 32, 64, ParallelPlan(), 16, 1, 2)]
    [512, 256, 192, 12288, 8192, 128, 512]
    """
    t = plan.tp
    sp = t if plan.sequence_parallel else 1
    split = "/t" if sp > 1 else ""
    tp_ = "/t" if t > 1 else ""
    tokens = s * b // sp
    visits = s * b * top_k
    return (
        ActivationLine("router softmax (fp32)", f"4·s·b·E{split}", 4 * tokens * experts),
        ActivationLine("experts chosen (int64)", f"8·s·b·k{split}", 8 * tokens * top_k),
        ActivationLine(
            "top-k weights and their sum (fp32)", f"4·s·b·(k+1){split}", 4 * tokens * (top_k + 1)
        ),
        ActivationLine(
            "tokens, experts' outputs, weighted (per visit)", "3·p·s·b·k·h", 3 * p * visits * h
        ),
        ActivationLine(
            "gate and up outputs, SiLU, product (per visit)",
            f"4·p·s·b·k·I{tp_}",
            4 * p * visits * width // t,
        ),
        ActivationLine(
            "routing weight per visit" + (" (fp32)" if weight_bytes == 4 else ""),
            f"{'4' if weight_bytes == 4 else 'p'}·s·b·k",
            weight_bytes * visits,
        ),
        ActivationLine("token's row and slot per visit (int64)", "16·s·b·k", 16 * visits),
    )


def shared_expert_lines(
    width: int, gate: bool, h: int, plan: ParallelPlan, s: int, b: int, p: int
) -> tuple[ActivationLine, ...]:
    """A shared expert (Qwen2-MoE's) every token goes through, as transformers' eager
    ``Qwen2MoeMLP`` keeps it: gate and up outputs, SiLU's output and the product,
    ``4·p·s·b·S/t`` (column- then row-parallel); with its sigmoid gate, the gate's
    output and the shared expert's output it scales, ``p·s·b·(h+1)`` (/t with sequence
    parallelism: Megatron's ``SharedExpertMLP.forward`` gates the reduce-scattered
    output by the rank's own tokens, shared_experts.py lines 200-207 at d98e8a6)."""
    t = plan.tp
    sp = t if plan.sequence_parallel else 1
    split = "/t" if sp > 1 else ""
    tp_ = "/t" if t > 1 else ""
    out = [
        ActivationLine(
            "shared expert: gate, up, SiLU, product", f"4·p·s·b·S{tp_}", 4 * p * s * b * width // t
        )
    ]
    if gate:
        out.append(
            ActivationLine(
                "shared expert's gate and output", f"p·s·b·(h+1){split}", p * s * b // sp * (h + 1)
            )
        )
    return tuple(out)


# --- Megatron-LM's theoretical memory, reproduced ------------------------------------


@dataclass
class MegatronArgs:
    """The arguments Megatron-LM's ``theoretical_memory_usage.py`` reads, its names
    (multi-latent attention left out), defaults as its argument parser gives them."""

    hidden_size: int
    num_attention_heads: int
    num_layers: int
    ffn_hidden_size: int
    padded_vocab_size: int
    seq_length: int
    micro_batch_size: int = 1
    kv_channels: int | None = None
    group_query_attention: bool = False
    num_query_groups: int | None = None
    num_experts: int | None = None
    moe_ffn_hidden_size: int | None = None
    moe_layer_freq: int | list[int] = 1
    moe_router_topk: int = 2
    moe_shared_expert_intermediate_size: int | None = None
    moe_shared_expert_gate: bool = False
    moe_latent_size: int | None = None
    mtp_num_layers: int | None = None
    swiglu: bool = False
    normalization: str = "LayerNorm"
    add_bias_linear: bool = True
    untie_embeddings_and_output_weights: bool = False
    tensor_model_parallel_size: int = 1
    pipeline_model_parallel_size: int = 1
    virtual_pipeline_model_parallel_size: int | None = None
    expert_tensor_parallel_size: int | None = None
    expert_model_parallel_size: int = 1
    data_parallel_size: int = 1
    world_size: int = 1
    use_distributed_optimizer: bool = False
    sequence_parallel: bool = False
    recompute_granularity: str | None = None
    multi_latent_attention: bool = False

    def __post_init__(self) -> None:
        if self.kv_channels is None:
            self.kv_channels = self.hidden_size // self.num_attention_heads
        if self.expert_tensor_parallel_size is None:
            self.expert_tensor_parallel_size = self.tensor_model_parallel_size


def megatron_weight_and_optimizer_memory(args: MegatronArgs) -> float:
    """Megatron-LM's ``compute_weight_and_optimizer_memory`` (theoretical_memory_usage.py,
    lines 12-305 at d98e8a6), the same operations in the same order: bytes of the most
    loaded shard's weights and optimizer state, 18 bytes a parameter, or 6 + 12/dp with the
    distributed optimizer."""
    query_projection_size = (args.kv_channels or 0) * args.num_attention_heads
    query_projection_to_hidden_size_ratio = query_projection_size / args.hidden_size
    if not args.group_query_attention:
        args.num_query_groups = args.num_attention_heads
    assert args.num_query_groups is not None
    num_experts = 1 if args.num_experts is None else args.num_experts
    gated_linear_multiplier = 3 / 2 if args.swiglu else 1
    shared_expert_ffn_hidden_size = (
        0
        if args.moe_shared_expert_intermediate_size is None
        else args.moe_shared_expert_intermediate_size
    )
    if args.num_experts is not None:
        if isinstance(args.moe_layer_freq, int):
            moe_layer_pattern = [
                1 if (i % args.moe_layer_freq == 0) else 0 for i in range(args.num_layers)
            ]
        else:
            moe_layer_pattern = list(args.moe_layer_freq)
            if len(moe_layer_pattern) != args.num_layers:
                raise plan_error(
                    "moe_layer_freq", moe_layer_pattern, "one entry per layer (num_layers)"
                )
        num_dense_layers = args.num_layers - sum(moe_layer_pattern)
        num_moe_layers = sum(moe_layer_pattern)
        moe_ffn_hidden_size = args.moe_ffn_hidden_size or 0
    else:
        moe_layer_pattern = [0] * args.num_layers
        num_dense_layers = args.num_layers
        num_moe_layers = 0
        moe_ffn_hidden_size = 0
    if args.mtp_num_layers is not None:
        mtp_layer_is_moe = moe_layer_pattern[-1]
        mtp_num_moe_layers = mtp_layer_is_moe * args.mtp_num_layers
        mtp_num_dense_layers = (1 - mtp_layer_is_moe) * args.mtp_num_layers
    else:
        mtp_num_moe_layers = 0
        mtp_num_dense_layers = 0
    norm_size = 1 if args.normalization == "RMSNorm" else 2
    self_attn_term = (
        2
        * args.hidden_size
        * args.hidden_size
        * (
            (1 + (args.num_query_groups / args.num_attention_heads))
            * query_projection_to_hidden_size_ratio
        )
    )
    embedding_size = args.hidden_size * args.padded_vocab_size
    final_layernorm = norm_size * args.hidden_size
    attention_params = self_attn_term
    dense_mlp_params = 2 * args.hidden_size * args.ffn_hidden_size * gated_linear_multiplier
    shared_expert_params = (
        2 * args.hidden_size * shared_expert_ffn_hidden_size * gated_linear_multiplier
    )
    routed_expert_hidden_size = (
        args.moe_latent_size if args.moe_latent_size is not None else args.hidden_size
    )
    routed_expert_params = (
        2 * routed_expert_hidden_size * moe_ffn_hidden_size * num_experts * gated_linear_multiplier
    )
    latent_projection_params = (
        2 * args.hidden_size * args.moe_latent_size
        if args.num_experts is not None and args.moe_latent_size is not None
        else 0
    )
    layernorm_params = 2 * args.hidden_size * norm_size
    router_params = (
        (args.hidden_size * num_experts) + (num_experts if args.add_bias_linear else 0)
        if args.num_experts is not None
        else 0
    )
    shared_expert_gate_params = (
        args.hidden_size if shared_expert_ffn_hidden_size > 0 and args.moe_shared_expert_gate else 0
    )
    etp = args.expert_tensor_parallel_size or args.tensor_model_parallel_size
    ep = args.expert_model_parallel_size
    expert_data_parallel_size = args.world_size // (etp * ep * args.pipeline_model_parallel_size)
    tp_sharded_params_in_transformer_block = (
        attention_params + dense_mlp_params
    ) * num_dense_layers + (attention_params + shared_expert_params) * num_moe_layers
    replicated_params_in_transformer_block = (
        layernorm_params * num_dense_layers
        + (layernorm_params + latent_projection_params + router_params + shared_expert_gate_params)
        * num_moe_layers
        + final_layernorm
    )
    expert_sharded_params_in_transformer_block = routed_expert_params * num_moe_layers
    tp_sharded_params_in_mtp_block = (
        attention_params + dense_mlp_params
    ) * mtp_num_dense_layers + (attention_params + shared_expert_params) * mtp_num_moe_layers
    replicated_params_in_mtp_block = (
        layernorm_params * mtp_num_dense_layers
        + (layernorm_params + latent_projection_params + router_params + shared_expert_gate_params)
        * mtp_num_moe_layers
    )
    expert_sharded_params_in_mtp_block = routed_expert_params * mtp_num_moe_layers
    pp, tp = args.pipeline_model_parallel_size, args.tensor_model_parallel_size
    tp_sharded_params_on_most_loaded_shard = (
        (tp_sharded_params_in_transformer_block / pp)
        + tp_sharded_params_in_mtp_block
        + embedding_size
    ) / tp
    replicated_params_on_most_loaded_shard = (
        replicated_params_in_transformer_block / pp
    ) + replicated_params_in_mtp_block
    expert_sharded_params_on_most_loaded_shard = (
        (expert_sharded_params_in_transformer_block / pp) + expert_sharded_params_in_mtp_block
    ) / (etp * ep)
    if args.untie_embeddings_and_output_weights and pp == 1:
        tp_sharded_params_on_most_loaded_shard += embedding_size / tp

    def num_bytes_per_parameter(data_parallel_size: int) -> float:
        return 18 if not args.use_distributed_optimizer else 6 + (12 / data_parallel_size)

    return (
        tp_sharded_params_on_most_loaded_shard + replicated_params_on_most_loaded_shard
    ) * num_bytes_per_parameter(
        args.data_parallel_size
    ) + expert_sharded_params_on_most_loaded_shard * num_bytes_per_parameter(
        expert_data_parallel_size
    )


def _pipeline_factor(args: MegatronArgs, memory: float, num_microbatches: int | None) -> float:
    pp, vpp = args.pipeline_model_parallel_size, args.virtual_pipeline_model_parallel_size
    if vpp is not None:
        memory *= 1 + ((pp - 1) / (pp * vpp))
    if vpp is None and pp > 1 and num_microbatches is not None:
        memory *= min(1, num_microbatches / pp)
    return memory


def megatron_activation_memory(args: MegatronArgs, num_microbatches: int | None = None) -> float:
    """Megatron-LM's ``compute_activation_memory`` (theoretical_memory_usage.py, lines
    308-379 at d98e8a6): Korthikanti's selective-recomputation, sequence-parallel bytes,
    ``s·b·h·(18 + 4·F/h)`` a layer, for the first stage, over tp."""
    s, b, h = args.seq_length, args.micro_batch_size, args.hidden_size
    pp = args.pipeline_model_parallel_size
    activation_memory: float = (s * b * h) * (18 + (4 * (args.ffn_hidden_size / h)))
    activation_memory *= args.num_layers
    activation_memory += 8 * s * b * pp
    activation_memory += s * b * h * pp
    activation_memory = _pipeline_factor(args, activation_memory, num_microbatches)
    if pp == 1:
        activation_memory += s * b * h * 4 * (1 + (args.padded_vocab_size / h))
    return activation_memory / args.tensor_model_parallel_size


def megatron_activation_memory_without_sp(
    args: MegatronArgs, num_microbatches: int | None = None
) -> float:
    """Megatron-LM's ``compute_activation_memory_without_sp`` (theoretical_memory_usage.py,
    lines 382-453 at d98e8a6): ``s·b·h·(10 + 24/t)`` a layer, ×1.05; what its report uses
    unless sequence parallelism and selective recomputation are both on."""
    s, b, h = args.seq_length, args.micro_batch_size, args.hidden_size
    pp, tp = args.pipeline_model_parallel_size, args.tensor_model_parallel_size
    per_layer_memory = s * b * h * (10 + (24 / tp))
    total: float = per_layer_memory * args.num_layers
    total += 8 * s * b * pp
    total += s * b * h * pp
    total = _pipeline_factor(args, total, num_microbatches)
    if pp == 1:
        logits_size: float = s * b * args.padded_vocab_size
        logits_size /= tp
        final_ln_output = s * b * h
        total += (logits_size + final_ln_output) * 2
    return total * 1.05


def megatron_args(
    model: Model,
    plan: ParallelPlan,
    batch: int,
    seq_len: int,
    *,
    distributed_optimizer: bool = False,
    vocab_multiple: int = VOCAB_MULTIPLE,
) -> MegatronArgs:
    """The Megatron arguments that describe ``model`` trained under ``plan``: its sizes as
    Megatron reads them (one attention and one MLP or mixture of experts per layer; a
    mixture's experts, top-k, expert width, shared expert and its gate, and which layers
    are mixtures as ``moe_layer_freq``'s list; ``--ffn-hidden-size`` the dense layers',
    or the experts' when every layer is a mixture, as Megatron's ``moe_ffn_hidden_size``
    defaults to it)."""
    runs = _structures(model)
    if any(run.gdn or run.gated_attention for _, run in runs):
        raise plan_error(
            "--accounting",
            "megatron",
            "Megatron-LM's theoretical memory counts plain attention; this model's gated or"
            " linear attention is not in it: give --accounting shapecalc",
        )
    dense = {run.f for _, run in runs if not run.experts}
    moe = {run for _, run in runs if run.experts}
    if len(dense) > 1 or len(moe) > 1:
        raise _refuse(model, "Megatron's formula takes one dense and one mixture layer shape")
    mixture = next(iter(moe), None)
    shape = runs[0][1]
    layers = len(rank_parameters(model, ParallelPlan()).stages[0].layers)
    pattern = [0] * layers
    for numbers, run in runs:
        for i in numbers:
            pattern[i] = 1 if run.experts else 0
    norms = [layer for layer in model.layers if "Norm" in _spec_kind(layer)]
    rms = bool(norms) and all(
        _spec_kind(layer) in ("RMSNorm", "LlamaRMSNorm", "Gemma3RMSNorm") for layer in norms
    )
    by_name = {layer.name: layer for layer in model.layers}
    biased = any(  # Megatron's --add-bias-linear: the linear layers have biases (biases
        # on the query, key and value alone are its --add-qkv-bias, as Qwen's)
        row.name.endswith(".bias")
        and _spec_kind(by_name[row.layer]) in ("Linear", "Conv1D")
        and _role(by_name[row.layer]) not in ("query", "key", "value")
        for row in model.rows()
    )
    tied = any(row.tied_to for row in model.rows())
    gated = any(run.gated for _, run in runs)
    moe_args: dict[str, Any] = {}
    if mixture is not None:
        moe_args = {
            "num_experts": mixture.experts,
            "moe_ffn_hidden_size": mixture.expert_f,
            "moe_router_topk": mixture.top_k,
            "moe_layer_freq": pattern,
            "moe_shared_expert_intermediate_size": mixture.shared_f or None,
            "moe_shared_expert_gate": mixture.shared_gate,
            "expert_model_parallel_size": plan.ep,
        }
    return MegatronArgs(
        hidden_size=shape.h,
        num_attention_heads=shape.a,
        num_layers=layers,
        ffn_hidden_size=next(iter(dense)) if dense else mixture.expert_f if mixture else 0,
        padded_vocab_size=padded_vocab(shape.vocab, plan.tp, vocab_multiple),
        seq_length=seq_len,
        micro_batch_size=batch,
        kv_channels=shape.d,
        group_query_attention=shape.k != shape.a,
        num_query_groups=shape.k,
        swiglu=gated,
        normalization="RMSNorm" if rms else "LayerNorm",
        add_bias_linear=biased,
        untie_embeddings_and_output_weights=not tied,
        tensor_model_parallel_size=plan.tp,
        pipeline_model_parallel_size=plan.pp,
        virtual_pipeline_model_parallel_size=plan.virtual_stages
        if plan.virtual_stages > 1
        else None,
        data_parallel_size=plan.dp,
        world_size=plan.gpus,
        use_distributed_optimizer=distributed_optimizer,
        sequence_parallel=plan.sequence_parallel,
        recompute_granularity=None if plan.recompute == "none" else plan.recompute,
        **moe_args,
    )


# --- one view for the report ---------------------------------------------------------


def splits_model(plan: ParallelPlan) -> bool:
    """Whether ``plan`` splits the model itself (tensor, pipeline, context or expert
    parallel), which this module prices."""
    return max(plan.tp, plan.pp, plan.cp, plan.ep) > 1


@dataclass(frozen=True)
class ModelParallel:
    """What one GPU of a model-parallel run holds: the most loaded rank's tensors with
    their per-rank shapes, and the activations of the first stage's GPU (None, with the
    reason in ``note``, where Korthikanti et al.'s block is not the model's)."""

    ranks: RankParameters
    activations: Activations | None
    itemsize: int
    note: str = ""

    @property
    def title(self) -> str:
        plan = self.ranks.plan
        sizes = ", ".join(
            f"{name} {value}"
            for name, value in (("tp", plan.tp), ("pp", plan.pp), ("cp", plan.cp), ("ep", plan.ep))
            if value > 1
        )
        extra = " + sequence parallel" if plan.sequence_parallel else ""
        return f"One GPU of the model-parallel run ({sizes}{extra})"

    def tensor_rows(self) -> list[tuple[str, int, str]]:
        """The most loaded rank's tensors: (name, numbers held, per-rank shape of the
        whole shape and how it is split)."""
        return [
            (
                t.name,
                t.count,
                f"{_shape_text(t.local)} of {_shape_text(t.shape)}, {t.style}"
                + (f", ×{t.copies}" if t.copies > 1 else "")
                + (f", tied to {t.tied_to}" if t.tied_to else ""),
            )
            for t in self.ranks.tensors
        ]

    def rows(self) -> list[tuple[str, int, str]]:
        """The summary: (what, bytes or count, rule)."""
        stage = self.ranks.most_loaded
        plan = self.ranks.plan
        held = _layers_text(stage.layers)
        out = [
            (
                "parameters on the most loaded rank",
                stage.count,
                f"pipeline stage {stage.rank} of {plan.pp} ({held})"
                + (f", a 1/{plan.tp} tensor share" if plan.tp > 1 else "")
                + (f", 1/{plan.ep} of the experts" if plan.ep > 1 else ""),
            ),
            (
                "their bytes",
                stage.count * self.itemsize,
                f"{self.itemsize} bytes each; gradients and optimizer state follow the"
                " data-parallel account",
            ),
        ]
        out += [("note", 0, note) for note in self.ranks.notes]
        if self.activations is not None:
            for line in self.activations.lines():
                out.append((line.what, line.bytes, line.formula))
        elif self.note:
            out.append(("note", 0, f"activations not counted: {self.note}"))
        return out


def _shape_text(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _layers_text(layers: tuple[int, ...]) -> str:
    if not layers:
        return "no layers"
    if list(layers) == list(range(layers[0], layers[-1] + 1)):
        return f"layers {layers[0]}-{layers[-1]}" if len(layers) > 1 else f"layer {layers[0]}"
    return f"{len(layers)} layers in chunks"


def model_parallel(
    model: Model, plan: ParallelPlan, batch: Any, seq_len: Any, itemsize: int = 2
) -> ModelParallel:
    """The model-parallel view of ``model`` under ``plan``: :func:`rank_parameters`, and
    :func:`activation_bytes` when the batch and sequence length are numbers and the model
    is the paper's block (else the reason)."""
    ranks = rank_parameters(model, plan)
    activations, note = None, ""
    if isinstance(batch, int) and isinstance(seq_len, int):
        try:
            activations = activation_bytes(model, plan, batch, seq_len, itemsize)
        except InvalidArgumentError as err:
            if err.field in ("--cp", "--sequence-parallel"):
                raise
            note = err.rule or str(err)
    else:
        note = "give --batch and --seq-len as numbers for the activations"
    return ModelParallel(ranks, activations, itemsize, note)
