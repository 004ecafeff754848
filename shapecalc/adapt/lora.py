"""LoRA (and DoRA) adapters on a frozen model, tensor by tensor as ``peft`` builds them.

:func:`lora` gives the model ``peft.get_peft_model(model, LoraConfig(...))`` makes: every
tensor under ``base_model.model.``; each adapted layer's own tensors under
``base_layer.`` and frozen, beside its trainable ``lora_A.default.weight`` (r, in) and
``lora_B.default.weight`` (out, r) (an embedding's ``lora_embedding_A.default`` (r,
num_embeddings) and ``lora_embedding_B.default`` (embedding_dim, r)), ``lora_B``'s bias
with ``bias=True`` (``lora_bias``) and DoRA's ``lora_magnitude_vector.default.weight``
(out,); a module of ``modules_to_save`` as ``original_module.`` (frozen) and a trainable
copy ``modules_to_save.default.``; every other tensor frozen. So the model's
:attr:`~shapecalc.core.model.Model.trainable` count is what ``print_trainable_parameters``
prints first, and the memory account prices gradients and optimizer state for the
adapters only. In the symbolic template the rank is the size ``r``.

Targets are matched as peft's ``check_target_module_exists`` matches them
(``tuners/tuners_utils.py``): a list of names, each the module's whole name or its end at
a module boundary (``q_proj`` is ``model.layers.0.self_attn.q_proj``); one string, a
regular expression the whole name must match (``re.fullmatch``); or ``all-linear``, every
``nn.Linear`` and ``Conv1D`` but the output head (``_maybe_include_all_linear_layers``).
``modules_to_save`` are matched as ``_set_trainable`` matches (``utils/other.py``): the
name ends with the text.

Example:

    >>> import shapecalc as sc
    >>> net = sc.Model("net", {"fc": sc.Linear(256, 256, bias=False),
    ...                        "out": sc.Linear(256, 10)})
    >>> adapted = lora(net, LoraConfig(r=8, targets=("fc",)))
    >>> [(r.name, r.shape) for r in adapted.rows()][:3]  # doctest: +NORMALIZE_WHITESPACE
    [('base_model.model.fc.base_layer.weight', (256, 256)),
     ('base_model.model.fc.lora_A.default.weight', (8, 256)),
     ('base_model.model.fc.lora_B.default.weight', (256, 8))]
    >>> adapted.trainable, adapted.total
    (4096, 72202)
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from shapecalc.core.dims import Dim, dim_str, product, symbol
from shapecalc.core.errors import InvalidArgumentError, echo
from shapecalc.core.frozen import frozen
from shapecalc.core.model import Model
from shapecalc.core.spec import LayerSpec, Param, Shape, Stored, Work
from shapecalc.core.tree import Block, Leaf, join_name, map_leaves

__all__ = ["ALL_LINEAR", "Lora", "LoraConfig", "ParamLora", "Saved", "lora"]

#: peft's INCLUDE_LINEAR_LAYERS_SHORTHAND (``utils/constants.py``)
ALL_LINEAR = "all-linear"
#: the layer kinds LoRA adapts here (peft's ``_create_new_module`` dispatch:
#: ``dispatch_default`` takes nn.Linear, transformers' Conv1D and nn.Embedding)
ADAPTED = ("Linear", "Conv1D", "Embedding")
#: an MLP's projection -> the activation module transformers registers beside it (a
#: parameterless module the shapecalc tree has no leaf for, which a regular expression
#: may match as peft matches every module's name): the LLaMA-style MLP's act_fn
ACTIVATION_OF = {"gate_proj": "act_fn", "up_proj": "act_fn", "down_proj": "act_fn"}
#: layers whose torch module holds nn.Linear modules inside it, which peft's all-linear
#: and name matching reach (torch's MultiheadAttention.out_proj, torchvision's Swin)
INNER_LINEARS = {
    "MultiheadAttention": "out_proj",
    "ShiftedWindowAttention": "qkv, proj",
    "PatchMerging": "reduction",
    "ShiftedWindowAttentionV2": "qkv, proj, cpb_mlp.0, cpb_mlp.2",
    "PatchMergingV2": "reduction",
}
#: the dtype of every adapter tensor: peft's ``get_peft_model(..., autocast_adapter_dtype=
#: True)``, its default, casts fp16 and bf16 adapters to float32 (and makes them float32
#: beside a quantized base), whatever the model's dtype
ADAPTER_DTYPE = "float32"
#: bytes of one of its numbers
ADAPTER_BYTES = 4
#: the kind of the block a LoRA model's tensors are under (``base_model.model.``)
PEFT_MODEL = "PeftModel"
#: what peft's ``check_target_module_exists`` refuses, as its message says
_UNSUPPORTED = (
    "Target module {name} is not supported: LoRA adapts nn.Linear, transformers' Conv1D "
    "and nn.Embedding here"
)


def _error(field: str, value: Any, message: str, rule: str) -> InvalidArgumentError:
    return InvalidArgumentError(message, layer="", field=field, value=value, rule=rule)


@dataclass(frozen=True)
class LoraConfig:
    """peft's ``LoraConfig``, the fields that change a tensor (and ``lora_alpha``, kept
    for the record: it scales the update, not a shape). ``targets``: a tuple of module
    names, one regular expression (a str), ``"all-linear"``, or None: peft's default for
    the model's config type (its :attr:`~shapecalc.core.hfmap.HFType.lora_targets`),
    refused for a type peft has none for."""

    r: int
    targets: tuple[str, ...] | str | None
    alpha: float = 8
    bias: bool = False
    dora: bool = False
    modules_to_save: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        r: Any = self.r
        if isinstance(r, bool) or not isinstance(r, int) or r <= 0:
            # peft's update_layer: "`r` should be a positive integer value"
            raise _error(
                "lora_rank",
                r,
                f"--lora-rank {echo(r)}: r must be an integer > 0",
                "r must be a positive integer",
            )
        alpha: Any = self.alpha
        if (
            isinstance(alpha, bool)
            or not isinstance(alpha, (int, float))
            or alpha != alpha
            or alpha in (float("inf"), float("-inf"))
        ):
            raise _error(
                "lora_alpha",
                alpha,
                f"--lora-alpha {echo(alpha)}: must be a finite number",
                "lora_alpha is a finite number",
            )
        targets: Any = self.targets
        if isinstance(targets, list):
            object.__setattr__(self, "targets", tuple(targets))
            targets = self.targets
        if targets is None:
            pass  # peft's default, chosen by the model (lora)
        elif isinstance(targets, str):
            if not targets.strip():
                raise _error(
                    "lora_targets",
                    targets,
                    "--lora-targets: give module names, a regular expression or all-linear",
                    "targets name modules",
                )
            if targets.lower() != ALL_LINEAR:
                try:
                    re.compile(targets)
                except re.error as err:
                    raise _error(
                        "lora_targets",
                        targets,
                        f"--lora-targets {echo(targets)} is not a regular expression ({err})",
                        "a regular expression",
                    ) from None
        elif not targets or not all(isinstance(t, str) and t for t in targets):
            raise _error(
                "lora_targets",
                targets,
                f"--lora-targets {echo(targets)}: give "
                "module names, a regular expression or all-linear",
                "targets name modules",
            )
        saved: Any = self.modules_to_save
        if isinstance(saved, list):
            object.__setattr__(self, "modules_to_save", tuple(saved))
        elif not isinstance(saved, tuple) or not all(isinstance(s, str) and s for s in saved):
            raise _error(
                "modules_to_save",
                saved,
                f"--modules-to-save {echo(saved)}: give module names",
                "module names",
            )
        if self.bias and self.dora:
            # peft's LoraConfig.__post_init__ refuses the pair
            raise _error(
                "lora_bias",
                True,
                "--lora-bias: lora_bias=True is not supported for DoRA (--use-dora)",
                "lora_bias without DoRA",
            )

    def describe(self) -> str:
        """``LoRA r=16, alpha=32, all-linear``, for notes and rules."""
        kind = "DoRA" if self.dora else "LoRA"
        alpha = f"{self.alpha:g}" if isinstance(self.alpha, float) else str(self.alpha)
        targets = (
            "peft's default"
            if self.targets is None
            else self.targets
            if isinstance(self.targets, str)
            else ", ".join(self.targets)
        )
        out = (
            f"{kind} r={self.r} (the size r, the rank), alpha={alpha}, targets {targets}, "
            "the adapters in float32 (peft's autocast_adapter_dtype)"
        )
        if self.bias:
            out += ", lora_B bias"
        if self.modules_to_save:
            out += f", modules_to_save {', '.join(self.modules_to_save)}"
        return out

    def peft_kwargs(self) -> dict[str, Any]:
        """The config as peft's ``LoraConfig(**kwargs)`` takes it."""
        return {
            "r": self.r,
            "lora_alpha": self.alpha,
            "target_modules": self.targets
            if self.targets is None or isinstance(self.targets, str)
            else list(self.targets),
            "lora_bias": self.bias,
            "use_dora": self.dora,
            "modules_to_save": list(self.modules_to_save) or None,
        }


def _base(spec: LayerSpec) -> LayerSpec:
    """The layer under a quantization (``Quantized.layer``), or the layer itself."""
    inner = getattr(spec, "layer", None)
    return inner if spec.kind == "Quantized" and isinstance(inner, LayerSpec) else spec


def _sizes(spec: LayerSpec) -> tuple[Dim, Dim]:
    """(in, out) of an adapted layer: features, Conv1D's (nx, nf), a table's rows and
    width."""
    base: Any = _base(spec)
    if base.kind == "Linear":
        return base.in_features, base.out_features
    if base.kind == "Conv1D":
        return base.nx, base.nf
    return base.num_embeddings, base.embedding_dim


@frozen
class Frozen(LayerSpec):
    """A layer of the base model that LoRA leaves as it is: its tensors frozen."""

    layer: LayerSpec

    kind: ClassVar[str] = "Frozen"
    family: ClassVar[str] = "adapter"
    summary: ClassVar[str] = "a layer of the frozen base model"

    def __post_init__(self) -> None:
        object.__setattr__(self, "routed", self.layer.routed)

    def params(self) -> Iterator[Param]:
        for p in self.layer.params():
            yield dataclasses.replace(p, trainable=False)

    def buffers(self) -> Iterator[Param]:
        return self.layer.buffers()

    def output_shapes(self, *inputs: Shape) -> tuple[Shape, ...]:
        return self.layer.output_shapes(*inputs)

    def work(self, *inputs: Shape) -> Work:
        """The layer's work, keeping only what its input's gradient needs (autograd saves
        a tensor for a weight's gradient only when the weight is trained): a frozen
        Linear, Conv1D or Embedding keeps nothing (its input's gradient takes the weight,
        a parameter; bitsandbytes' 4-bit matmul keeps the packed weight alone), a frozen
        RMSNorm not its normalised input (the scale's gradient)."""
        work = self.layer.work(*inputs)
        if _base(self.layer).kind in ADAPTED:
            return dataclasses.replace(work, saved=())
        kept = tuple(s for s in work.saved if s.name != "normalised input")
        return work if len(kept) == len(work.saved) else dataclasses.replace(work, saved=kept)

    def deferred_rules(self) -> list[str]:
        return self.layer.deferred_rules()

    def active(self) -> Any:
        return self.layer.active()

    def arguments(self) -> dict[str, Any]:
        return self.layer.arguments()

    def changed_arguments(self) -> dict[str, Any]:
        return self.layer.changed_arguments()

    def __str__(self) -> str:
        return str(self.layer)


@frozen
class Lora(Frozen):
    """A layer with a LoRA adapter, as peft's ``lora.Linear`` / ``lora.Embedding`` wrap
    it: the layer as ``base_layer`` (frozen), then the adapter's tensors."""

    r: Dim = 8
    bias: bool = False
    dora: bool = False

    kind: ClassVar[str] = "Lora"
    summary: ClassVar[str] = "a frozen layer with a trainable low-rank update"

    def params(self) -> Iterator[Param]:
        for p in self.layer.params():
            yield dataclasses.replace(p, name=f"base_layer.{p.name}", trainable=False)
        for p in self._adapter():
            yield dataclasses.replace(p, dtype=ADAPTER_DTYPE)

    def _adapter(self) -> Iterator[Param]:
        n_in, n_out = _sizes(self.layer)
        r = self.r
        if _base(self.layer).kind == "Embedding":
            yield Param(
                "lora_embedding_A.default",
                (r, n_in),
                f"LoRA A: {dim_str(n_in)} rows -> rank {dim_str(r)}, stored (r, rows)",
            )
            yield Param(
                "lora_embedding_B.default",
                (n_out, r),
                f"LoRA B: rank {dim_str(r)} -> {dim_str(n_out)}, stored (out, r)",
            )
        else:
            yield Param(
                "lora_A.default.weight",
                (r, n_in),
                f"LoRA A: {dim_str(n_in)} in -> rank {dim_str(r)}, stored (r, in)",
            )
            yield Param(
                "lora_B.default.weight",
                (n_out, r),
                f"LoRA B: rank {dim_str(r)} -> {dim_str(n_out)} out, stored (out, r)",
            )
            if self.bias:
                yield Param("lora_B.default.bias", (n_out,), "LoRA B's bias (lora_bias)")
        if self.dora:
            yield Param(
                "lora_magnitude_vector.default.weight",
                (n_out,),
                f"DoRA magnitude: one per output, {dim_str(n_out)}",
            )

    def work(self, *inputs: Shape) -> Work:
        """The layer's work and the adapter's: x·Aᵀ then ·Bᵀ, rows · r · (in + out) MACs
        (an embedding's A is a lookup: rows · r · out). What autograd keeps (peft's
        ``lora.Linear.forward``: ``lora_B(lora_A(x))`` with ``x`` cast to the adapters'
        float32 by ``_cast_input_dtype``): the frozen layer nothing; lora_A its input in
        float32, the layer's input itself when the activations are float32, else a copy
        of this layer's own (:attr:`~shapecalc.core.spec.Stored.cast`: q, k and v
        adapted at 16 bits make three); lora_B the rank-r float32 intermediate. An
        embedding's lookup keeps the token ids (no cast)."""
        work = self.layer.work(*inputs)
        n_in, n_out = _sizes(self.layer)
        lookup = _base(self.layer).kind == "Embedding"
        rows = product(inputs[0][:-1]) if not lookup else product(inputs[0])
        lead = inputs[0] if lookup else inputs[0][:-1]
        macs = rows * self.r * (n_out if lookup else n_in + n_out)
        a = ADAPTER_BYTES
        kept: tuple[Stored, ...] = (
            work.saved  # the token ids the lookup keeps
            if lookup
            else (Stored("lora_A's input (float32)", inputs[0], itemsize=a, of="input", cast=True),)
        )
        kept += (Stored("lora_A output (float32)", (*lead, self.r), itemsize=a),)
        if self.dora:
            # peft's DoraLinearLayer.forward (tuners/lora/dora.py): ||W + s·B·A|| per
            # output row, detached, in the cast input's float32 (the update's matrix,
            # lora_B(lora_A(I)), is no part of the backward graph: freed at once);
            # magnitude / norm keeps the norm; then (m/‖·‖ − 1)·base + (m/‖·‖)·lora·s
            # keeps base (the layer's output, activation dtype), lora and both scales
            kept += (
                Stored("DoRA: weight norm per output (float32)", (n_out,), itemsize=a),
                Stored("DoRA: base output", (*lead, n_out)),
                Stored("DoRA: adapter output (float32)", (*lead, n_out), itemsize=a),
                Stored("DoRA: magnitude / norm, and minus 1 (float32)", (1, n_out),
                       itemsize=a, copies=2),
            )  # fmt: skip
            if _base(self.layer).kind == "Conv1D":
                # peft's transpose (utils/other.py) makes a Parameter's transpose a new
                # Parameter, which needs a gradient: with float32 activations the
                # weight is still Conv1D's Parameter (weight.to(x.dtype) is itself), so
                # the norm's input, W + s·B·A, is kept; at 16 bits it is a cast copy
                kept += (
                    Stored("DoRA: W + s·B·A, the norm's input (at float32 activations)",
                           (n_out, n_in), itemsize=a, when="same"),
                )  # fmt: skip
        return dataclasses.replace(
            work,
            macs=work.macs + macs,
            other=work.other + rows * n_out,
            other_rule=(work.other_rule + "; " if work.other_rule else "")
            + "the adapter's update added, one per output",
            saved=kept,
        )

    def arguments(self) -> dict[str, Any]:
        return {**self.layer.arguments(), "lora_r": self.r}

    def changed_arguments(self) -> dict[str, Any]:
        return {**self.layer.changed_arguments(), "lora_r": self.r}

    def __str__(self) -> str:
        return f"{self.layer} (+{'DoRA' if self.dora else 'LoRA'} r={dim_str(self.r)})"


@frozen
class Saved(Frozen):
    """A module of ``modules_to_save``: peft's ``ModulesToSaveWrapper``, the original
    frozen and a trainable copy."""

    kind: ClassVar[str] = "ModulesToSaveWrapper"
    summary: ClassVar[str] = "a frozen layer and its trainable copy"

    def params(self) -> Iterator[Param]:
        own = list(self.layer.params())
        for p in own:
            yield dataclasses.replace(p, name=f"original_module.{p.name}", trainable=False)
        for p in own:
            yield dataclasses.replace(
                p, name=f"modules_to_save.default.{p.name}", trainable=True, dtype=""
            )

    def __str__(self) -> str:
        return f"{self.layer} (trained copy)"


@frozen
class ParamLora(Frozen):
    """A module with LoRA on some of its parameters (a mixture's stacked experts, its
    router's weight), as peft's ``lora.ParamWrapper`` nests them: one wrapper per
    parameter, the first in the module's order innermost, the module's own tensors under
    ``base_layer.`` once per wrapper (see :mod:`shapecalc.adapt.lora_moe`)."""

    #: (parameter name, rank) in the module's order
    wrapped: tuple[tuple[str, Any], ...] = ()

    kind: ClassVar[str] = "ParamWrapper"
    summary: ClassVar[str] = "a frozen module with low-rank updates of its parameters"

    def params(self) -> Iterator[Param]:
        from shapecalc.adapt.lora_moe import in_out

        base = list(self.layer.params())
        depth = len(self.wrapped)
        for p in base:
            yield dataclasses.replace(p, name="base_layer." * depth + p.name, trainable=False)
        for i, (name, r) in enumerate(self.wrapped):
            prefix = "base_layer." * (depth - 1 - i)
            shape = next(p.shape for p in base if p.name == name)
            e, n_in, n_out = in_out(shape)
            each = f" per expert, {dim_str(e)} experts" if len(shape) == 3 else ""
            yield Param(
                f"{prefix}lora_A.default.weight",
                (r * e, n_in),
                f"LoRA A of {name}: {dim_str(n_in)} in -> rank {dim_str(r)}{each}",
                dtype=ADAPTER_DTYPE,
            )
            yield Param(
                f"{prefix}lora_B.default.weight",
                (n_out, r * e),
                f"LoRA B of {name}: rank {dim_str(r)} -> {dim_str(n_out)} out{each}",
                dtype=ADAPTER_DTYPE,
            )

    def work(self, *inputs: Shape) -> Work:
        """The frozen module's work, and per wrapped parameter what its update adds: the
        merged weight W + s·B·A (a tensor of the forward now, kept for the backward), and
        the product's input, which the update's gradient needs (a stack's: every visit's
        gathered token, or its gated intermediate; a weight's: the layer's input)."""
        from shapecalc.adapt.lora_moe import in_out

        work = super().work(*inputs)
        rows = product(inputs[0][:-1])
        visits = rows * getattr(_base(self.layer), "top_k", 1)
        shapes = {p.name: p.shape for p in self.layer.params()}
        kept: list[Stored] = []
        macs: Dim = 0
        for name, r in self.wrapped:
            shape = shapes[name]
            e, n_in, n_out = in_out(shape)
            kept.append(Stored(f"{name}, merged with its update", shape))
            kept.append(Stored(f"{name}'s input", (visits if len(shape) == 3 else rows, n_in)))
            macs += e * n_out * r * n_in
        return dataclasses.replace(
            work,
            macs=work.macs + macs,
            saved=(*work.saved, *kept),
        )

    def buffers(self) -> Iterator[Param]:
        depth = len(self.wrapped)
        for b in self.layer.buffers():
            yield dataclasses.replace(b, name="base_layer." * depth + b.name)

    def arguments(self) -> dict[str, Any]:
        return {**self.layer.arguments(), "lora": dict(self.wrapped)}

    def changed_arguments(self) -> dict[str, Any]:
        return {**self.layer.changed_arguments(), "lora": dict(self.wrapped)}

    def __str__(self) -> str:
        ranks = ", ".join(f"{n} r={dim_str(r)}" for n, r in self.wrapped)
        return f"{self.layer} (+LoRA on {ranks})"


def _names(parts: tuple[str, ...]) -> list[str]:
    from shapecalc.quant import module_names

    return module_names(parts)


def _targeted(targets: tuple[str, ...] | str, name: str, kind: str, head: bool) -> bool:
    """peft's ``check_target_module_exists`` for one module name (``all-linear`` resolved
    as ``_maybe_include_all_linear_layers`` resolves it)."""
    if isinstance(targets, str):
        if targets.lower() == ALL_LINEAR:
            return kind in ("Linear", "Conv1D") and not head
        return re.fullmatch(targets, name) is not None
    return name in targets or any(name.endswith(f".{t}") for t in targets)


def _wrapped(
    moe: Any, names: list[str], leaf: Leaf, r: Dim, config: LoraConfig, name: str
) -> tuple[tuple[str, Any], ...]:
    """The parameters of ``leaf`` peft wraps after converting the targets for a fused
    mixture (:mod:`shapecalc.adapt.lora_moe`), each with its rank, in the module's order;
    what ``lora.ParamWrapper`` refuses is refused."""
    out: list[tuple[str, Any]] = []
    for p in leaf.spec.params():
        hits = {moe.wraps(f"{n}.{p.name}") for n in names}
        target = next(iter(hits)) if len(hits) == 1 else None
        _one_way({t is not None for t in hits}, name, "lora_targets", config.targets)
        if target is not None:
            out.append((p.name, r * moe.times.get(target, 1)))
    if not out:
        return ()
    for refused, flag, what in (
        (config.dora, "use_dora", "LoRA variants like DoRA"),
        (config.bias, "lora_bias", "lora_bias=True"),
    ):
        if refused:
            raise _error(
                flag,
                True,
                f"--{flag.replace('_', '-')}: peft adapts {name}'s "
                f"{', '.join(n for n, _ in out)} as parameters (lora.ParamWrapper), which "
                f"does not work with {what}",
                f"no {what} on a mixture's parameters",
            )
    if leaf.spec.kind == "Quantized":
        raise _error(
            "lora_targets",
            config.targets,
            f"--lora-targets: {name} is quantized; shapecalc does not model LoRA on a "
            "quantized mixture's parameters",
            "unquantized experts",
        )
    return tuple(out)


def _saved(config: LoraConfig, name: str) -> bool:
    """peft's ``_set_trainable``: the module's name ends with one of the names."""
    return any(name.endswith(m) for m in config.modules_to_save)


def _one_way(found: set[bool], name: str, field: str, value: Any) -> bool:
    if len(found) > 1:
        raise _error(
            field,
            value,
            f"--{field.replace('_', '-')} {echo(value)} names some of the layers {name} and "
            "not others; shapecalc stores a run of equal layers one way",
            "a target is every layer of its run or none",
        )
    return found == {True}


def _moved(name: str, adapted: list[str]) -> str:
    """A tie's source, under ``base_layer`` when its module is adapted."""
    module, _, leaf = name.rpartition(".")
    return f"{module}.base_layer.{leaf}" if module in adapted else name


def model_type_of(model: Model) -> str:
    """The Hugging Face model_type of ``model``: its config's, when read from one, else
    that of the transformers config its architecture writes (``shapecalc llama``: llama);
    "" when neither says."""
    if model.model_type:
        return model.model_type
    from shapecalc.core.hfmap import reference_of

    architecture = model.config
    reference = None if architecture is None else reference_of(architecture)
    if reference is None:
        return ""
    types = getattr(type(architecture), "hf", ())
    return next((t.model_type for t in types if t.config_class == reference.config_class), "")


def default_targets(model: Model) -> tuple[str, ...] | str:
    """peft's target modules for ``model`` when LoraConfig names none (its model type's
    in peft's table), or a refusal naming --lora-targets and the modules it could take."""
    model_type = model_type_of(model)
    types = getattr(type(model.config), "hf", ())
    found: tuple[str, ...] = next((t.lora_targets for t in types if t.model_type == model_type), ())
    if found:
        return found
    names: dict[str, None] = {}

    def look(parts: tuple[str, ...], leaf: Leaf) -> Leaf:
        if parts and _base(leaf.spec).kind in ADAPTED and leaf.role != "router":
            names.setdefault(parts[-1], None)
        return leaf

    map_leaves(model.root, look)
    said = f"model_type {echo(model_type)}" if model_type else "a model of no config type"
    raise _error(
        "lora_targets",
        None,
        f"--lora-targets: peft has no default target modules for {said} (its "
        "TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING); give module names "
        f"({', '.join(names) or 'none by name'}), re:REGEX or all-linear",
        "targets named where peft has no default for the model type",
    )


def lora(model: Model, config: LoraConfig) -> Model:
    """The model as ``peft.get_peft_model(model, LoraConfig(...))`` holds it (see the
    module's docstring); a quantized model's layers stay quantized under the adapter
    (QLoRA)."""
    if not isinstance(config, LoraConfig):
        raise TypeError(f"lora: config must be a LoraConfig, got {type(config).__name__}")
    if isinstance(model.root, Block) and model.root.kind == PEFT_MODEL:
        raise _error("lora_rank", config.r, f"{model.name} already has an adapter", "one adapter")
    chosen = default_targets(model) if config.targets is None else config.targets
    config = dataclasses.replace(config, targets=chosen)
    # the modules whose weight is another's (lm_head on GPT-2's wte); a tie's source may
    # be adapted, its weight then the base_layer's (as peft leaves the tie)
    tied = {n.rpartition(".")[0] for n in model.ties}
    from shapecalc.adapt.lora_moe import convert

    def linear() -> set[str]:
        """The last names of the layers all-linear takes (walked only when peft's
        conversion resolves all-linear for a fused mixture)."""
        names: set[str] = set()

        def look(parts: tuple[str, ...], leaf: Leaf) -> Leaf:
            kind = _base(leaf.spec).kind
            taken = kind in ("Linear", "Conv1D") and leaf.role != "router"
            if taken and join_name(*parts) != model.head:
                names.update(n.rpartition(".")[2] for n in _names(parts))
            return leaf

        map_leaves(model.root, look)
        return names

    moe = convert(model, config.targets, linear)
    modules: tuple[str, ...] | str = moe.modules if moe is not None else chosen
    found: list[str] = []  # the adapted modules' names (the first index of a run)
    seen: dict[str, None] = {}  # every module LoRA could adapt, for a message

    def change(parts: tuple[str, ...], leaf: Leaf, r: Dim) -> Leaf:
        names = _names(parts)
        name = join_name(*parts)
        kind = _base(leaf.spec).kind
        activation = ACTIVATION_OF.get(parts[-1]) if parts else None
        # transformers 5's stacked experts hold their activation as a child, act_fn
        inside = _base(leaf.spec).kind == "Experts"
        targets = config.targets
        if (activation or inside) and isinstance(targets, str) and targets.lower() != ALL_LINEAR:
            for n in names:
                module = f"{n}.act_fn" if inside else f"{n.rpartition('.')[0]}.{activation}"
                if re.fullmatch(targets, module):
                    raise _error(
                        "lora_targets",
                        targets,
                        f"--lora-targets {echo(targets)} also matches {module}, the MLP's "
                        "activation module, which LoRA cannot adapt (peft refuses it: "
                        "'Target module ... is not supported')",
                        "a regular expression matching only layers LoRA adapts",
                    )
        if kind in INNER_LINEARS:
            raise _error(
                "lora_targets",
                config.targets,
                f"LoRA on {model.name}: {name} is a {kind}, whose torch module holds "
                f"nn.Linear modules of its own ({INNER_LINEARS[kind]}) that peft adapts; "
                "shapecalc does not model adapters inside it yet",
                "no layer whose module holds linear layers of its own",
            )
        if leaf.role == "router":
            # a mixture's router is transformers 5's TopKRouter, not an nn.Linear
            # (mixtral, qwen2_moe modeling files): all-linear passes it by, a name refused
            kind = "a router (TopKRouter)"
        if kind in ADAPTED:
            seen.setdefault(parts[-1] if parts else name, None)
        saved = _one_way(
            {_saved(config, n) for n in names},
            name,
            "modules_to_save",
            list(config.modules_to_save),
        )
        if saved:
            if name in tied:
                raise _error(
                    "modules_to_save",
                    list(config.modules_to_save),
                    f"--modules-to-save: {name} shares its weight with another "
                    "module (tied); shapecalc does not copy a tied module",
                    "an untied module",
                )
            return dataclasses.replace(leaf, spec=Saved(leaf.spec))
        head = name == model.head
        hit = _one_way(
            {_targeted(modules, n, kind, head) for n in names}, name, "lora_targets", config.targets
        )
        if not hit and moe is not None:  # its parameters, as peft converts the targets
            wrapped = _wrapped(moe, names, leaf, r, config, name)
            if wrapped:
                found.append(name)
                return dataclasses.replace(leaf, spec=ParamLora(leaf.spec, wrapped=wrapped))
        if not hit:
            return dataclasses.replace(leaf, spec=Frozen(leaf.spec))
        if kind not in ADAPTED:
            raise _error(
                "lora_targets",
                config.targets,
                "--lora-targets: " + _UNSUPPORTED.format(name=name) + f" ({name} is {kind})",
                "a Linear, Conv1D or Embedding",
            )
        if name in tied:
            raise _error(
                "lora_targets",
                config.targets,
                f"--lora-targets: {name} shares its weight with another module "
                "(tied); shapecalc does not adapt a tied module",
                "an untied module",
            )
        if config.bias and kind == "Embedding":
            raise _error(
                "lora_bias",
                True,
                f"--lora-bias: {name} is an Embedding, whose adapter has no bias",
                "lora_bias on Linear and Conv1D layers",
            )
        found.append(name)
        return dataclasses.replace(
            leaf, spec=Lora(leaf.spec, r=r, bias=config.bias, dora=config.dora)
        )

    prefix = "base_model.model."

    def of(m: Model, r: Dim, sizes: dict[str, Dim]) -> Model:
        root = map_leaves(m.root, lambda parts, leaf: change(parts, leaf, r))
        wrapped = Block(PEFT_MODEL, {"base_model": Block("LoraModel", {"model": root})})
        return dataclasses.replace(
            m,
            root=wrapped,
            ties={prefix + k: prefix + _moved(v, found) for k, v in m.ties.items()},
            sizes=sizes,
            head=prefix + m.head if m.head else "",
            uncounted={prefix + k: v for k, v in m.uncounted.items()},
            group_depth=m.group_depth + 2,
            notes=(*m.notes, config.describe()),
            make_template=None,
            factory=None,
            unquantized=None,
        )

    out = of(model, config.r, {**model.sizes, "r": config.r})
    if not found:
        targets = chosen if isinstance(chosen, str) else list(chosen)
        names = ", ".join(n for n in seen if n) or "none by name"
        raise _error(
            "lora_targets",
            targets,
            f"--lora-targets {echo(targets)}: target modules not found in {model.name} "
            f"(modules LoRA can adapt: {names})",
            "a target names a module of the model",
        )
    template = model.template
    if template is not model:
        made = of(template, symbol("r"), {**template.sizes, "r": symbol("r")})
        object.__setattr__(out, "make_template", lambda: made)
    if model.unquantized is not None:  # QLoRA: the parameters are the unquantized twin's
        object.__setattr__(out, "unquantized", lora(model.unquantized, config))
    return out
