"""``shapecalc gemma3``: Gemma 3's language model, named as ``transformers``'
``Gemma3ForCausalLM`` names it (model type ``gemma3_text``).

One block: RMSNorm, attention with per-head RMSNorms of the queries and keys (q_norm,
k_norm) and rotary positions, RMSNorm, then RMSNorm, a GeGLU MLP, RMSNorm (four norms a
block). Layers slide or attend globally (``layer_types``; unless given, five sliding layers
to each global one, ``sliding_window_pattern`` 6): a sliding layer sees the last
``sliding_window`` tokens and its cache keeps the last window − 1 of them; a global layer
keeps every token. Each kind has its own rotary base (no tensor). The token embedding is
scaled by √H on the way in (a number, not a parameter) and is the head.

A ``gemma3`` config (Gemma3ForConditionalGeneration, the models with images) holds, beside
its ``text_config``'s language model (``model.language_model.…``), the SigLIP vision tower of
its ``vision_config`` (``model.vision_tower.…``, ``_towers.py``'s, read as a
``siglip_vision_model`` config) and Gemma3MultiModalProjector
(``model.multi_modal_projector``). The projector's forward, as transformers' runs it: the
tower's (B, P², E) tokens transposed and laid out as a P × P grid of E channels (a copy),
``avg_pool`` (an AvgPool2d of kernel and stride P // ⌊√mm_tokens_per_image⌋), flattened
and transposed back to (B, tokens, E), ``mm_soft_emb_norm`` (an RMSNorm of E), then times
``mm_input_projection_weight`` (E, H), a parameter of the module's own (a MatMul step).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from shapecalc.architectures import _transformer as tf
from shapecalc.architectures._towers import ACTIVATIONS, vision_tower
from shapecalc.architectures._transformer import GroupedQueryLM
from shapecalc.architectures.llama import _read as _llama_read
from shapecalc.core.declare import Built, Reference, choice, flag, layer_kinds, size
from shapecalc.core.dims import Dim, dim_str, known
from shapecalc.core.errors import InvalidArgumentError, ShapeError
from shapecalc.core.flow import chain, each, multiply, parallel, residual
from shapecalc.core.frozen import frozen
from shapecalc.core.hfmap import HFType, config_for
from shapecalc.core.model import Model
from shapecalc.core.own import Parameter
from shapecalc.core.spec import Shape, Work
from shapecalc.core.tree import Block, Child, Leaf, ModuleList, Node, Repeat, cycle, runs
from shapecalc.layers._embedding import Embedding
from shapecalc.layers._function import _Function
from shapecalc.layers._linear import Linear
from shapecalc.layers.activation import GELU
from shapecalc.layers.functional import Rotary, ScaledDotProductAttention, SplitHeads
from shapecalc.layers.linear import Flatten
from shapecalc.layers.pooling import AvgPool2d
from shapecalc.layers.tensors import Contiguous, MatMul, Transpose, Unflatten
from shapecalc.layers.transformers import Gemma3RMSNorm

__all__ = [
    "Gemma3",
    "check_kinds",
    "consistent_kinds",
    "count_sliding",
    "gemma3",
    "kind_stack",
    "layer_types_written",
    "read_kinds",
    "sliding_pattern",
    "window_note",
]

SLIDING, FULL = "sliding_attention", "full_attention"
#: the layer kinds of a stack of sliding and global attention (transformers' names)
KINDS = tf.SLIDING_KINDS
#: a stack of layers shows at most this many runs (a layer_types list without a pattern)
MAX_RUNS = 1024
#: a layer_types list of at most this many layers is laid out in the fewest runs (a
#: pattern found among them); a longer one as its runs of equal neighbours
_LISTED = 4096


def default_pattern(every: int) -> tuple[str, ...]:
    """transformers' rule for layer_types from ``sliding_window_pattern`` P: layer i slides
    unless (i + 1) % P == 0, so P − 1 sliding layers, then a global one."""
    return (SLIDING,) * (every - 1) + (FULL,)


def _period(kinds: tuple[str, ...]) -> tuple[str, ...]:
    """The shortest pattern whose repetition is ``kinds`` (``s,s`` is ``s``)."""
    n = len(kinds)
    for p in range(1, n + 1):
        if n % p == 0 and kinds == kinds[:p] * (n // p):
            return kinds[:p]
    return kinds


def _every(model: Any, default: int) -> int:
    """sliding_window_pattern P: given, or the type's own."""
    given: int | None = model.sliding_pattern
    return default if given is None else given


def kind_stack(
    model: Any, block: Callable[[str], Node], default: int, kind: str = "ModuleList"
) -> Block:
    """The stack of ``model.layers`` layers, each ``block(kind)`` for its kind: the kinds
    ``model.layer_types`` gives (one per layer, or a pattern repeated from layer 0), else
    transformers' rule of ``sliding_pattern`` P (``default`` unless given); equal layers
    a run, a repeating pattern runs a step apart (``layers.{5,11..23}``), so a symbolic
    layer count works too. A pattern longer than :data:`MAX_RUNS` is laid out as its
    runs of P − 1 sliding layers and one global."""
    given: tuple[str, ...] = model.layer_types
    n = known(model.layers)
    if given:
        pattern = given
        if n is not None and len(given) == n:
            pattern = _period(given)
            if len(pattern) == n and n > 1:  # no repetition: the fewest runs of the list
                return Block(kind, _listed(given, block))
    else:
        every = _every(model, default)
        if n is not None and every > n:
            pattern = (SLIDING,)  # no layer reaches the global one
        elif every > MAX_RUNS and n is not None:
            return Block(kind, _blocks_of(n, every, block))
        else:
            pattern = default_pattern(every)
    pattern = _period(pattern)
    if len(pattern) == 1:
        return ModuleList(block(pattern[0]), model.layers, kind=kind)
    return Block(kind, cycle([block(k) for k in pattern], model.layers))


def _listed(given: tuple[str, ...], block: Callable[[str], Node]) -> tuple[Repeat | Child, ...]:
    """The runs of a list of kinds: the fewest (a pattern found among them) for a short
    list, equal neighbours a run for a long one (in one pass)."""
    nodes = {k: block(k) for k in set(given)}
    if len(given) <= _LISTED:
        return runs([nodes[k] for k in given])
    entries: list[Repeat | Child] = []
    start, n = 0, len(given)
    for at in range(1, n + 1):
        if at == n or given[at] != given[start]:
            node, count = nodes[given[start]], at - start
            entries.append(Child(str(start), node) if count == 1 else Repeat(node, count, start))
            start = at
    return tuple(entries)


def _blocks_of(n: int, every: int, block: Callable[[str], Node]) -> tuple[Repeat | Child, ...]:
    """n layers by transformers' rule of a long pattern P: P − 1 sliding, one global,
    again; runs of consecutive layers (2·⌈n / P⌉ of them at most)."""
    sliding, full = block(SLIDING), block(FULL)
    entries: list[Repeat | Child] = []
    for start in range(0, n, every):
        count = min(every - 1, n - start)
        entries.append(Child(str(start), sliding) if count == 1 else Repeat(sliding, count, start))
        if start + every - 1 < n:
            entries.append(Child(str(start + every - 1), full))
    return tuple(entries)


def check_kinds(model: Any, default: int, name: str = "layer_types") -> None:
    """layer_types: at most one kind per layer (a shorter list is a pattern repeated),
    and at most :data:`MAX_RUNS` runs (a list as long as the layers that does not
    repeat a pattern is shown as its runs of equal layers); not with sliding_pattern,
    which it replaces; sliding_pattern P makes at most :data:`MAX_RUNS` runs."""
    given: tuple[str, ...] = getattr(model, name)
    n = known(model.layers)
    if given and model.sliding_pattern is not None:
        rule = "layer_types or sliding_pattern, not both (layer_types replaces the pattern)"
        raise InvalidArgumentError(
            rule,
            layer=model.owner(),
            field="sliding_pattern",
            value=model.sliding_pattern,
            rule=rule,
        )
    if not given:
        every = _every(model, default)
        many = every > MAX_RUNS and (n is None or (every <= n and 2 * -(-n // every) > MAX_RUNS))
        if many:
            rule = (
                f"sliding_pattern makes at most {MAX_RUNS:,} runs of layers: P <= {MAX_RUNS:,}, "
                f"or 2·⌈layers / P⌉ <= {MAX_RUNS:,} with a number of layers"
            )
            raise InvalidArgumentError(
                f"{rule} (P = {every:,})",
                layer=model.owner(),
                field="sliding_pattern",
                value=every,
                rule=rule,
            )
        return
    if n is not None and len(given) > n:
        model.kinds_of(name, n)  # refuses, naming the rule
    if len(given) > MAX_RUNS and len(_period(given)) == len(given):
        count = 1 + sum(1 for a, b in itertools.pairwise(given) if a != b)
        if n is None or count > MAX_RUNS:
            rule = f"{name} makes at most {MAX_RUNS:,} runs of equal layers"
            raise InvalidArgumentError(
                f"{rule}; these make {count:,}",
                layer=model.owner(),
                field=name,
                value=",".join(given[:8]) + ",...",
                rule=rule,
            )


def consistent_kinds(out: dict[str, Any]) -> dict[str, Any]:
    """Drawn arguments made consistent: no more kinds than layers, and no pattern beside
    them (layer_types replaces it)."""
    kinds, layers = out.get("layer_types") or (), out["layers"]
    if isinstance(layers, int) and len(kinds) > layers:
        out["layer_types"] = tuple(kinds[:layers])
    if out.get("layer_types"):
        out["sliding_pattern"] = None
    return out


def count_sliding(model: Any, default: int) -> int | None:
    """How many of ``model.layers`` layers slide (None with a symbolic layer count): the
    kinds given, a pattern repeated, or the rule of sliding_pattern P (all but every
    P-th); worked out, not listed."""
    n = known(model.layers)
    if n is None:
        return None
    pattern: tuple[str, ...] = model.layer_types
    if not pattern:
        return n - n // _every(model, default)
    p = len(pattern)
    return (n // p) * pattern.count(SLIDING) + pattern[: n % p].count(SLIDING)


#: layer_types is written one per layer up to this many layers (a config for
#: transformers, which builds every layer: --verify refuses far fewer)
_WRITTEN = 10**6


def layer_types_written(model: Any, default: int) -> dict[str, Any]:
    """layer_types as a config writes it: one kind per layer (a pattern repeated), when
    given and the layers are a number; sliding_window_pattern, the type's unless given
    (transformers reads it only without layer_types)."""
    n = known(model.layers)
    out: dict[str, Any] = {"sliding_pattern": _every(model, default), "layer_types": None}
    if n is not None and n <= _WRITTEN and model.layer_types:
        out["layer_types"] = list(model.kinds_of("layer_types", n) or ())
    return out


def read_kinds(f: Any, out: dict[str, Any]) -> None:
    """A ``read`` hook's part for layer_types: a list of exactly num_hidden_layers kinds
    (transformers' rule), which replaces sliding_window_pattern."""
    layers = out["layers"]
    given = out.get("layer_types") or ()
    if given:
        if len(given) != layers:
            raise f.fail(
                "layer_types",
                len(given),
                "layer_types must give one kind per layer (num_hidden_layers)",
                f"{len(given)} kinds for {layers} layers",
            )
        out["sliding_pattern"] = None  # transformers reads it only without layer_types


def window_note(default: int) -> Callable[[Mapping[str, Any], Mapping[str, Any]], list[str]]:
    """The note of a model read from a config: which layers slide, and what
    transformers' cache keeps there."""

    def notes(config: Mapping[str, Any], arguments: Mapping[str, Any]) -> list[str]:
        layers, window = arguments.get("layers"), arguments.get("sliding_window")
        if not isinstance(layers, int) or not isinstance(window, int):
            return []
        given: tuple[str, ...] = arguments.get("layer_types") or ()
        every = arguments.get("sliding_pattern") or default
        if given:
            sliding = sum(1 for k in given if k == SLIDING)
            which = "as layer_types says"
        else:
            sliding = layers - layers // every
            which = f"every layer but each {every}th (sliding_window_pattern {every})"
        kept = f"the last {window - 1:,} positions" if window > 1 else "every position"
        return [
            f"sliding_window {window:,}: {sliding} of the {layers} layers attend over the last "
            f"{window:,} positions, {which}; transformers' cache keeps {kept} there, as the "
            "inference state counts"
        ]

    return notes


def sliding_pattern(default: int) -> Any:
    return size(
        "P",
        "Unless layer_types is given, every P-th layer attends over the whole context and "
        f"the others over the sliding window (sliding_window_pattern; {default} unless "
        "given: layer i slides unless (i + 1) % P == 0).",
        None,
        unset=None,
        default_text=str(default),
        names=False,
        solvable=False,
    )


def window_size() -> Any:
    return size(
        "W",
        "The sliding window: the tokens a sliding layer attends to (sliding_window); "
        "transformers' cache keeps the last W − 1 there. It changes no tensor.",
        4096,
        names=False,
        solvable=False,
    )


def kinds_argument(every: int, rule: str) -> Any:
    return layer_kinds(
        KINDS,
        "Which layers attend over the sliding window and which over the whole context "
        f"(layer_types); unless given, {rule}: "
        + ",".join(default_pattern(every)).replace(
            f"{SLIDING}," * (every - 1), f"{SLIDING}*{every - 1},"
        )
        + ".",
    )


def _read(f: Any, out: dict[str, Any]) -> None:
    _llama_read(f, out)
    read_kinds(f, out)


def _write_conditional(model: Any, reference: Reference) -> Reference | None:
    """The language model's fields as the text_config of a Gemma3Config, the tower's as
    its vision_config (written by SigLIP's declaration)."""
    from shapecalc.architectures import get

    config = dict(reference.config)
    tie = config.pop("tie_word_embeddings", True)
    text = {k: v for k, v in config.items() if k != "pad_token_id"}
    siglip: Any = get("siglip")
    tower = siglip(part="vision", **{n: getattr(model, n) for n in VISION})
    written = config_for(tower, next(t for t in siglip.hf if t.model_type == _TOWER))
    if written is None:
        return None
    return Reference(
        reference.model,
        reference.config_class,
        {
            "text_config": {**text, "pad_token_id": 0},
            "vision_config": dict(written.config),
            "tie_word_embeddings": tie,
            "mm_tokens_per_image": model.image_tokens,
        },
    )


#: the model type of Gemma 3's vision_config, and the tower's arguments (SigLIP's names)
_TOWER = "siglip_vision_model"
VISION = (
    "vision_hidden",
    "vision_layers",
    "vision_heads",
    "vision_intermediate",
    "image_size",
    "patch_size",
    "channels",
    "vision_activation",
    "vision_head",
)
#: Gemma3Config's default mm_tokens_per_image
IMAGE_TOKENS = 256


def _read_conditional(f: Any, out: dict[str, Any]) -> None:
    """The vision tower from the vision_config, read as a siglip_vision_model config."""
    _, tower = f.nested("vision_config", (_TOWER,), "a vision tower")
    for name in VISION:
        out[name] = tower[name]


def _side(tokens: int) -> int:
    """Gemma3MultiModalProjector's tokens_per_side: ``int(mm_tokens_per_image ** 0.5)``."""
    return int(tokens**0.5)


@frozen
class _Refused(_Function):
    """A step of Gemma3MultiModalProjector for an mm_tokens_per_image transformers'
    forward refuses: every tensor is counted; a cost through the projector is refused
    here, naming the field (:meth:`refusal` says the rule and how the value breaks it)."""

    tokens: int
    per: int

    def refusal(self) -> tuple[str, str]:
        raise NotImplementedError

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        rule, broken = self.refusal()
        raise ShapeError(
            f"mm_tokens_per_image (--image-tokens) = {self.tokens}: {rule}; {broken}",
            layer="Gemma3MultiModalProjector",
            field="image_tokens",
            value=self.tokens,
            rule=rule,
        )

    def work(self, *inputs: Shape) -> Work:
        return Work(self.output_shapes(*inputs))


@frozen
class _NoPool(_Refused):
    """Gemma3MultiModalProjector's ``avg_pool`` when ⌊√mm_tokens_per_image⌋ exceeds the
    patches per side P: transformers builds ``AvgPool2d(kernel_size=P // ⌊√U⌋ = 0)``
    (and Gemma3Config's default SigLIP tower, 224 / 16 = 14 patches a side, with 256
    tokens, is such a model), and its forward refuses the first image."""

    kind: ClassVar[str] = "avg_pool"
    summary: ClassVar[str] = "Gemma 3's pooling of a kernel of 0 (no image passes)"

    def refusal(self) -> tuple[str, str]:
        rule = (
            "⌊√mm_tokens_per_image⌋ is at most the patches per side (image_size // "
            "patch_size), the projector's pooling kernel their quotient"
        )
        side = _side(self.tokens)
        return rule, (
            f"⌊√{self.tokens}⌋ = {side} > {self.per}, a kernel of 0, on which transformers' "
            "forward fails"
        )


@frozen
class _Unmatched(_Refused):
    """After Gemma3MultiModalProjector's ``avg_pool`` when the (P // kernel)² tokens it
    pools to are not mm_tokens_per_image (U = 255: ⌊√U⌋ = 15, 64 patches a side, kernel 4,
    256 tokens): a prompt holds U image tokens for each image, and Gemma3Model's
    ``get_placeholder_mask`` refuses features of another count ("Image features and image
    tokens do not match", modeling_gemma3.py)."""

    kind: ClassVar[str] = "image_tokens"
    summary: ClassVar[str] = "Gemma 3's pooled image tokens, not mm_tokens_per_image of them"

    def refusal(self) -> tuple[str, str]:
        kernel = self.per // _side(self.tokens)
        rule = (
            "the projector pools the P × P patches (P = image_size // patch_size) by a "
            "kernel of P // ⌊√mm_tokens_per_image⌋ to (P // kernel)² tokens, which must be "
            "mm_tokens_per_image"
        )
        return rule, (
            f"({self.per} // {kernel})² = {(self.per // kernel) ** 2} ≠ {self.tokens}, on "
            "which transformers' forward fails (image features and image tokens do not "
            "match)"
        )


def _conditional_notes(config: Mapping[str, Any], arguments: Mapping[str, Any]) -> list[str]:
    return window_note(6)(config, arguments)


_TEXT_KEYS: dict[str, str] = {
    **tf.SIZE_KEYS,
    "kv_heads": "num_key_value_heads",
    "head_dim": "head_dim",
    "attention_bias": "attention_bias",
    "sliding_window": "sliding_window",
    "layer_types": "layer_types",
    "sliding_pattern": "sliding_window_pattern",
}
_FREE = frozenset(
    {
        "max_position_embeddings",
        "rms_norm_eps",
        "rope_parameters",
        "rope_scaling",
        "rope_theta",
        "rope_local_base_freq",
        "attention_dropout",
        "query_pre_attn_scalar",
        "final_logit_softcapping",
        "attn_logit_softcapping",
        "hidden_activation",
        "hidden_act",
        # what transformers 5 saves of the pattern it read; layer_types, saved beside it,
        # says the same, and the rule reads sliding_window_pattern only
        "_sliding_window_pattern",
    }
)


@frozen(kw_only=True)
class Gemma3(GroupedQueryLM):
    """Gemma 3's language model: token embedding (V × H, scaled by √H), L blocks, a final
    RMSNorm and the head, the embedding itself.

    One block: q_proj (A·D, H), k_proj and v_proj (K·D, H), o_proj (H, A·D), q_norm and
    k_norm (D) on each head's queries and keys, four RMSNorms (H), and a GeGLU MLP (gate
    and up H to I, down I to H). A sliding layer and a global one hold the same tensors;
    they differ in what attention sees and what the cache keeps.

    ``--head vision`` is Gemma3ForConditionalGeneration: a SigLIP tower (E wide, M layers;
    its attention-pooling head, when it has one, runs beside the tokens Gemma 3 reads),
    the language model, and Gemma3MultiModalProjector. The projector takes the tower's
    (B, P², E) tokens (P = image_size // patch_size) to a P × P grid (a copy), average-pools
    it with a kernel and stride of P // ⌊√U⌋ (U = mm_tokens_per_image) to (P // kernel)²
    tokens, normalises them (Gemma3RMSNorm: times 1 + weight) and multiplies them by
    ``mm_input_projection_weight`` (E, H), a parameter of its own: every step is in the
    FLOPs and the tensors autograd keeps. With ⌊√U⌋ above P (transformers' default tower,
    14 patches a side, with 256 tokens) the kernel is 0 and no image gets through: the
    tensors are counted, a cost is refused.

        >>> m = gemma3(vocab=262144, hidden=1152, layers=26, heads=4, kv_heads=1,
        ...            head_dim=256, intermediate=6912, sliding_window=512)
        >>> m.total
        999885952
    """

    command: ClassVar[str] = "gemma3"
    #: the stacks a request runs once, at prefill (pixel_values only then): a decode step
    #: is the language model on one token (shapecalc.analysis.encdec.decode_rows)
    per_request: ClassVar[tuple[str, ...]] = ("vision_tower", "multi_modal_projector")
    function: ClassVar[str] = "gemma3"
    title: ClassVar[str] = "Gemma 3 decoder (sliding and global attention)"
    example: ClassVar[str] = (
        "--vocab 262144 --hidden 1152 --layers 26 --heads 4 --kv-heads 1 --head-dim 256 "
        "--intermediate 6912 --sliding-window 512"
    )
    budget: ClassVar[str] = "1B"
    size_order: ClassVar[tuple[str, ...]] = (
        "vocab",
        "hidden",
        "layers",
        "heads",
        "kv_heads",
        "head_dim",
        "intermediate",
        "sliding_window",
        "sliding_pattern",
        "labels",
        "vision_hidden",
        "vision_layers",
        "vision_heads",
        "vision_intermediate",
        "image_size",
        "patch_size",
        "channels",
        "image_tokens",
    )

    vocab: Any = tf.vocab()
    hidden: Any = tf.hidden()
    layers: Any = tf.layers()
    heads: Any = tf.heads()
    kv_heads: Any = tf.kv_heads()
    head_dim: Any = tf.head_dim()
    intermediate: Any = tf.intermediate("intermediate_size")
    sliding_window: Any = window_size()
    layer_types: tuple[str, ...] = kinds_argument(
        6, "five sliding layers, then a global one (sliding_window_pattern 6)"
    )
    sliding_pattern: Any = sliding_pattern(6)
    tie_weights: bool = flag(
        "The head is the token embedding (tie_word_embeddings; --no-tie-weights: a head of "
        "its own).",
        True,
    )
    attention_bias: bool = flag("Biases of q_proj, k_proj, v_proj and o_proj (attention_bias).")
    head: str = choice(
        ("lm", "none", "seq-cls", "vision"),
        "lm: the body and a head scoring every token (Gemma3ForCausalLM); none: the body "
        "alone (Gemma3TextModel); seq-cls: a score per label of the last token "
        "(Gemma3TextForSequenceClassification); vision: Gemma3ForConditionalGeneration, "
        "its SigLIP vision tower and projector beside the language model.",
        "lm",
    )
    labels: Any = tf.labels()
    vision_hidden: Any = size("E", "With --head vision: the vision tower's hidden size.", 768)
    vision_layers: Any = size("M", "With --head vision: the vision tower's layers.", 12)
    vision_heads: Any = size(
        "G", "With --head vision: the vision tower's attention heads.", 12, solvable=False
    )
    vision_intermediate: Any = size(
        "J", "With --head vision: the vision tower's MLP inner size.", 3072
    )
    image_size: Any = size(
        "S", "With --head vision: the image side in pixels.", 224, names=False, solvable=False
    )
    patch_size: Any = size(
        "Q", "With --head vision: the patch side in pixels.", 16, names=False, solvable=False
    )
    channels: Any = size("C", "With --head vision: image channels.", 3, solvable=False)
    vision_activation: str = choice(
        ACTIVATIONS, "With --head vision: the tower's MLP activation.", "gelu_pytorch_tanh"
    )
    vision_head: bool = flag(
        "With --head vision: the tower's attention-pooling head (vision_use_head), built "
        "and run though Gemma 3 reads the tokens.",
        True,
    )
    image_tokens: Any = size(
        "U",
        "With --head vision: the image tokens the projector pools to (mm_tokens_per_image): "
        "an average pool of kernel and stride (image_size // patch_size) // ⌊√U⌋ (a kernel "
        "of 0 runs no image: the tensors are counted, a cost refused).",
        IMAGE_TOKENS,
        names=False,
        solvable=False,
    )

    hf: ClassVar[tuple[HFType, ...]] = (
        HFType(
            model_type="gemma3_text",
            lora_targets=("q_proj", "v_proj"),
            vllm_no_float16=True,
            gguf="gemma3",
            config_class="Gemma3TextConfig",
            classes={
                "Gemma3ForCausalLM": {"head": "lm"},
                "Gemma3TextModel": {"head": "none"},
                "Gemma3TextForSequenceClassification": {"head": "seq-cls"},
            },
            base="model",
            keys={**_TEXT_KEYS, **tf.LABEL_KEYS},
            defaults={
                "vocab_size": 262208,
                "hidden_size": 2304,
                "intermediate_size": 9216,
                "num_hidden_layers": 26,
                "num_attention_heads": 8,
                "num_key_value_heads": 4,
                "head_dim": 256,
                "tie_word_embeddings": True,
                "attention_bias": False,
                "sliding_window": 4096,
                "max_position_embeddings": 131072,
                "layer_types": None,
                "sliding_window_pattern": None,
                "pad_token_id": 0,
            },
            free=_FREE,
            only={
                "use_bidirectional_attention": (
                    (False, None),
                    "bidirectional attention (EmbeddingGemma) halves the window and is not "
                    "modelled",
                )
            },
            strict_heads=True,
            read=_read,
            write=tf.first_padding,
            notes=window_note(6),
        ),
        HFType(
            model_type="gemma3",
            vllm_no_float16=True,
            config_class="Gemma3Config",
            classes={"Gemma3ForConditionalGeneration": {"head": "vision"}},
            base="model",
            keys={"tie_weights": "tie_word_embeddings", "image_tokens": "mm_tokens_per_image"},
            defaults={
                "text_config": None,
                "vision_config": None,
                "tie_word_embeddings": True,
                "mm_tokens_per_image": IMAGE_TOKENS,
            },
            free=frozenset(
                {
                    "boi_token_index",
                    "eoi_token_index",
                    "image_token_index",
                    "boi_token_id",
                    "eoi_token_id",
                    "image_token_id",
                }
            ),
            dropped=(r"(^|\.)position_ids$",),  # the vision tower's positions
            # the Hub's files and what transformers 5 still saves: conversion_mapping.py's
            # llava renames (gemma3 is llava there)
            renamed={
                "language_model.lm_head.": "lm_head.",
                "language_model.model.": "model.language_model.",
                "vision_tower.": "model.vision_tower.",
                "multi_modal_projector.": "model.multi_modal_projector.",
            },
            text_type="gemma3_text",
            derived=frozenset(VISION),
            read=_read_conditional,
            write=_write_conditional,
            notes=_conditional_notes,
        ),
    )

    # -- checks ---------------------------------------------------------------------------
    def check(self) -> None:
        self.check_labels()
        self.check_heads(self.head_dim)
        self.check_rotary(self.head_size(self.head_dim), self.head_dim)
        self._divides(
            "kv_heads", self.heads, self.kv, "kv_heads must divide heads (query heads per group)"
        )
        check_kinds(self, 6)
        if self.head == "vision":
            w, g = known(self.vision_hidden), known(self.vision_heads)
            if w is not None and g is not None and w % g:
                self._fail(
                    "vision_heads",
                    g,
                    "vision_heads must divide vision_hidden",
                    f"{w} % {g} = {w % g}",
                )
            if self.patch_size > self.image_size:
                self._fail(
                    "patch_size",
                    self.patch_size,
                    "patch_size must be at most image_size (an image holds at least one patch)",
                    f"{self.patch_size} > {self.image_size}",
                )

    @classmethod
    def consistent(cls, arguments: dict[str, Any]) -> dict[str, Any]:
        out = consistent_kinds(super().consistent(arguments))
        w, g = out.get("vision_hidden"), out.get("vision_heads")
        if isinstance(w, int) and isinstance(g, int) and w % g:
            out["vision_hidden"] = g * -(-w // g)
        if isinstance(out.get("image_size"), int) and isinstance(out.get("patch_size"), int):
            out["image_size"] = max(out["image_size"], out["patch_size"])
        return out

    def hf_values(self) -> dict[str, Any]:
        """The sizes as a config writes them, and layer_types one kind per layer."""
        return {**super().hf_values(), "intermediate": self.inner, **layer_types_written(self, 6)}

    # -- the tree -------------------------------------------------------------------------
    def _attention(self, kind: str) -> Block:
        h, a, kv, bias = self.hidden, self.heads, self.kv, self.attention_bias
        d, q_width, kv_width = self._widths()
        children: dict[str, Any] = {
            "q_proj": Leaf(Linear(h, q_width, bias=bias), role="query"),
            "k_proj": Leaf(Linear(h, kv_width, bias=bias), role="key"),
            "v_proj": Leaf(Linear(h, kv_width, bias=bias), role="value"),
            "o_proj": Leaf(Linear(q_width, h, bias=bias), role="output projection"),
            "q_norm": Leaf(Gemma3RMSNorm(d), role="query norm"),
            "k_norm": Leaf(Gemma3RMSNorm(d), role="key norm"),
        }
        qkv = parallel(
            ("q_proj", SplitHeads(a, d), "q_norm", Rotary(a, d)),
            ("k_proj", SplitHeads(kv, d), "k_norm", Rotary(kv, d)),
            "v_proj",
        )
        w = self.sliding_window if kind == SLIDING else None
        sdpa = ScaledDotProductAttention(a, kv, d, window=w)
        what = (
            f"{dim_str(a)} query heads over {dim_str(kv)} key and value heads of {dim_str(d)}, "
            + (f"a sliding window of {w:,}" if w is not None else "the whole context")
        )
        return Block("Gemma3Attention", children, flow=chain(qkv, sdpa, "o_proj"), description=what)

    def _block(self, kind: str) -> Block:
        h, i = self.hidden, self.inner
        mlp = Block(
            "Gemma3MLP",
            {
                "gate_proj": Leaf(Linear(h, i, bias=False), role="gate"),
                "up_proj": Leaf(Linear(h, i, bias=False), role="up"),
                "down_proj": Leaf(Linear(i, h, bias=False), role="down"),
            },
            flow=chain(multiply(("gate_proj", GELU(approximate="tanh")), "up_proj"), "down_proj"),
            description="GeGLU MLP",
        )
        return Block(
            "Gemma3DecoderLayer",
            {
                "self_attn": self._attention(kind),
                "mlp": mlp,
                "input_layernorm": Gemma3RMSNorm(h),
                "post_attention_layernorm": Gemma3RMSNorm(h),
                "pre_feedforward_layernorm": Gemma3RMSNorm(h),
                "post_feedforward_layernorm": Gemma3RMSNorm(h),
            },
            flow=chain(
                residual("input_layernorm", "self_attn", "post_attention_layernorm"),
                residual("pre_feedforward_layernorm", "mlp", "post_feedforward_layernorm"),
            ),
            description="sliding attention" if kind == SLIDING else "global attention",
        )

    def build(self) -> Built:
        h, v = self.hidden, self.vocab
        body = Block(
            "Gemma3TextModel",
            {
                "embed_tokens": Leaf(
                    Embedding(v, h), "one H-vector per token, times √H", "token embedding"
                ),
                "layers": kind_stack(self, self._block, 6),
                "norm": Leaf(Gemma3RMSNorm(h), role="final norm"),
            },
            flow=chain("embed_tokens", "layers", "norm"),
        )
        if self.head == "vision":
            return self._conditional(body)
        return self.causal_lm("Gemma3ForCausalLM", "model", body, "embed_tokens", "head")

    def _conditional(self, body: Block) -> Built:
        """Gemma3ForConditionalGeneration: model.vision_tower (SigLIP, its tokens after
        post_layernorm), model.multi_modal_projector, model.language_model, lm_head."""
        h, v, w = self.hidden, self.vocab, self.vision_hidden
        tower = vision_tower(
            "Siglip",
            hidden=w,
            layers=self.vision_layers,
            heads=self.vision_heads,
            intermediate=self.vision_intermediate,
            image_size=self.image_size,
            patch_size=self.patch_size,
            channels=self.channels,
            act=self.vision_activation,
            eps=1e-6,
            use_head=self.vision_head,
            pooled=False,
        )
        projector = self._projector()
        model = Block(
            "Gemma3Model",
            {"vision_tower": tower, "multi_modal_projector": projector, "language_model": body},
            flow=each("language_model", ("vision_tower", "multi_modal_projector")),
        )
        lm = Leaf(Linear(h, v, bias=False), "a score per token", "head")
        root = Block(
            "Gemma3ForConditionalGeneration",
            {"model": model, "lm_head": lm},
            flow=chain("model", "lm_head"),
        )
        ties = (
            {"lm_head.weight": "model.language_model.embed_tokens.weight"}
            if self.tie_weights
            else {}
        )
        notes = tuple(
            f"model.{path}: {Model(path, node).total:,} parameters"
            if isinstance(Model(path, node).total, int)
            else f"model.{path}: {Model(path, node).total} parameters"
            for path, node in (
                ("vision_tower", tower),
                ("multi_modal_projector", projector),
                ("language_model", body),
            )
        )
        return Built(
            root,
            ties=ties,
            notes=notes,
            input_layout=(("B", "T"), ("B", self.channels, self.image_size, self.image_size)),
            group_depth=3,
            head="lm_head",
            name="Gemma3ForConditionalGeneration",
        )

    def _projector(self) -> Block:
        """Gemma3MultiModalProjector's forward: the (B, P², E) tokens to a (B, E, P, P)
        grid, a copy (``transpose(1, 2).reshape(...)``; a view when P or E is 1, where the
        transpose keeps the layout), ``avg_pool``, ``flatten(2).transpose(1, 2)``,
        ``mm_soft_emb_norm``, then ``@ mm_input_projection_weight``."""
        h, w = self.hidden, self.vision_hidden
        per = self.image_size // self.patch_size
        kernel = per // _side(self.image_tokens)
        grid: list[Any] = [Transpose(1, 2), Unflatten(2, (per, per))]
        if per > 1 and known(w) != 1:
            grid.append(Contiguous())
        children: dict[str, Any] = {
            "mm_input_projection_weight": Parameter(
                (w, h), role="image tokens into the text's width"
            ),
            "mm_soft_emb_norm": Leaf(Gemma3RMSNorm(w), role="norm of the pooled image tokens"),
        }
        if kernel == 0:  # transformers builds AvgPool2d(0), which no image gets through
            return Block(
                "Gemma3MultiModalProjector",
                children,
                flow=chain(*grid, _NoPool(self.image_tokens, per)),
                description="no image passes: mm_tokens_per_image exceeds the patches",
            )
        pooled = (per // kernel) ** 2
        children["avg_pool"] = Leaf(
            AvgPool2d(kernel, stride=kernel), role=f"{per}² patches to {pooled} tokens"
        )
        if pooled != self.image_tokens:  # a prompt's U image tokens, other features
            return Block(
                "Gemma3MultiModalProjector",
                children,
                flow=chain(*grid, "avg_pool", _Unmatched(self.image_tokens, per)),
                description=f"no image passes: {per}² patches pool to {pooled} tokens, "
                "not mm_tokens_per_image",
            )
        return Block(
            "Gemma3MultiModalProjector",
            children,
            flow=chain(
                *grid,
                "avg_pool",
                Flatten(2),
                Transpose(1, 2),
                "mm_soft_emb_norm",
                parallel((), "mm_input_projection_weight"),
                MatMul(),
            ),
            description=f"{per}² patches pooled to {pooled} tokens, normalised, times "
            "mm_input_projection_weight",
        )

    def in_body(self, base: str, path: str) -> str:
        if self.head == "vision":
            return f"model.language_model.{path}"
        return super().in_body(base, path)

    @property
    def with_head(self) -> bool:
        return self.head in ("lm", "vision")

    def sliding_layers(self) -> int | None:
        """How many layers slide (None with a symbolic layer count)."""
        return count_sliding(self, 6)

    def sizes(self) -> dict[str, Dim]:
        """The sizes given and worked out; not P, a number in the rule of the layers."""
        out = super().sizes()
        out.pop("P", None)
        if self.head != "vision":  # the tower's sizes build nothing without it
            for letter in ("E", "M", "G", "J", "S", "Q", "C", "U"):
                out.pop(letter, None)
        else:
            from shapecalc.architectures._towers import derived_heads

            out.update(derived_heads(None, (self.vision_hidden, self.vision_heads)))
        return out

    # -- explanation ----------------------------------------------------------------------
    def explanation(self, model: Model) -> list[tuple[str, list[str]]]:
        d, q_width, kv_width = self._widths()
        h, w = self.hidden, self.sliding_window
        sliding = self.sliding_layers()
        share = (
            f"{sliding} of the {self.layers} layers"
            if sliding is not None
            else "five layers in six (layer i unless (i + 1) % 6 == 0)"
            if not self.layer_types
            else "the layers layer_types names"
        )
        lines = [
            f"The hidden size H = {dim_str(h)} is the length of every token's vector, in and "
            "out of every block; the embedding's output is multiplied by √H (a number, not a "
            "parameter).",
            f"Attention: {dim_str(self.heads)} query heads of head_dim D = {dim_str(d)} over "
            f"{dim_str(self.kv)} key and value heads: q_proj is ({dim_str(q_width)}, "
            f"{dim_str(h)}), k_proj and v_proj ({dim_str(kv_width)}, {dim_str(h)}) each; "
            f"q_norm and k_norm ({dim_str(d)}) scale each head's queries and keys before the "
            "rotary positions.",
            f"Sliding and global layers: {share} attend over the last W = {w:,} tokens, and "
            f"transformers' cache keeps the last {max(w - 1, 1):,} of them there, however "
            "long the context; the global layers attend over, and keep, every token. Both "
            "hold the same tensors; each kind turns its rotary positions with its own base "
            "(10,000 sliding, 1,000,000 global), which holds no parameter.",
            "Four RMSNorms a block: before and after attention, before and after the MLP "
            "(each scales by 1 + its weight).",
            f"The MLP's intermediate size I = {dim_str(self.inner)}: gate and up map H to I "
            "(GELU of the gate times up), down maps I back to H, 3·H·I numbers.",
        ]
        if self.tie_weights and self.with_head:
            lines.append("The head is the token embedding: one V × H matrix, counted once.")
        if self.head == "vision":
            per = self.image_size // self.patch_size
            kernel = per // _side(self.image_tokens)
            holds = (
                "Gemma3ForConditionalGeneration holds a SigLIP vision tower (its tokens "
                "after post_layernorm are read) and a projector beside this language model"
            )
            pooled = (per // kernel) ** 2 if kernel else 0
            if kernel and pooled != self.image_tokens:
                holds += (
                    f"; its {per}² patch tokens pool by {kernel} × {kernel} windows to "
                    f"{pooled}, not mm_tokens_per_image {self.image_tokens}, so no image "
                    "passes (transformers' forward fails): the tensors are counted, a cost "
                    "refused."
                )
            elif kernel:
                holds += (
                    f": the tower's {per}² patch tokens are average-pooled by {kernel} × "
                    f"{kernel} windows to {(per // kernel) ** 2} (mm_tokens_per_image "
                    f"{self.image_tokens}), normalised (Gemma3RMSNorm) and multiplied by "
                    "mm_input_projection_weight, a matrix from the tower's width to H."
                )
            else:
                holds += (
                    f"; ⌊√mm_tokens_per_image⌋ = {_side(self.image_tokens)} exceeds the {per} "
                    "patches a side, so its pooling kernel is 0 and no image passes "
                    "(transformers' forward fails): the tensors are counted, a cost refused."
                )
            lines.append(holds)
        return [
            ("What the sizes mean", lines),
            (
                "Every matrix of one block",
                self.block_lines(model, self.in_body("model", "layers")),
            ),
        ]


gemma3 = Gemma3.function_for()
