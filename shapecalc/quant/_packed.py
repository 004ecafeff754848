"""What GPTQ and AWQ share: integers packed into 32-bit words, the decoder blocks whose
linear layers they quantize, and the in/out sizes of each quantized matrix.

Both methods quantize the linear layers *inside a model's repeated blocks* and nothing
else (not the embeddings, the norms or the output head). optimum finds the blocks by the
first of its ``BLOCK_PATTERNS`` that begins some module's name
(``optimum/gptq/constants.py``, ``utils.py: get_block_name_with_pattern``) and converts
``nn.Linear`` (by exact type: MoE routers that subclass it are left), ``Conv1D`` and
``Conv2d`` whose names begin with it (``get_layers``); AutoAWQ converts every
``nn.Linear`` of each block (``awq/utils/module.py: get_named_linears``). transformers 5
holds a mixture of experts' matrices fused, 3-D (``gate_up_proj``); GPTQModel splits
them into one Linear per expert before it quantizes (``gptqmodel/models/loader.py:
_convert_model_with_defuser``), as the checkpoints store them, so a fused layout is
refused with the flag that names experts one by one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any, ClassVar

from shapecalc.core.dims import Dim, dim_str, exact_div, floor_div, known
from shapecalc.core.errors import echo
from shapecalc.core.frozen import frozen
from shapecalc.core.model import Model
from shapecalc.core.spec import LayerSpec, Param
from shapecalc.core.tree import Leaf, join_name, map_leaves, unnumbered
from shapecalc.quant import CONV1D, EXPERTS, GPT_OSS_EXPERTS, Method, loaded, weights_error

__all__ = ["BLOCK_PATTERNS", "PackedMethod", "ceil_div", "matrices"]

#: optimum/gptq/constants.py: BLOCK_PATTERNS, tried in this order
BLOCK_PATTERNS: tuple[str, ...] = (
    "transformer.h",
    "model.decoder.layers",
    "gpt_neox.layers",
    "model.layers",
    "model.language_model.layers",
    "h",
    "decoder.layers",
    "layers",
)


#: the roles of the linear layers of a mixture that route rather than compute, which
#: GPTQModel's definitions mark not to quantize ("gate:!", "shared_expert_gate:!",
#: gptqmodel/models/definitions/mixtral.py, qwen2_moe.py) and AutoAWQ's models leave
#: (MixtralAWQForCausalLM.modules_to_not_convert = ["gate"], awq/models/mixtral.py)
ROUTERS = ("router", "shared expert's sigmoid gate")


def ceil_div(n: Dim, d: int) -> Dim:
    """⌈n/d⌉ for a size (exact when d divides it)."""
    whole = exact_div(n, d)
    return whole if whole is not None else floor_div(n + (d - 1), d)


def matrices(spec: LayerSpec) -> Iterator[tuple[Param, Dim, Dim]]:
    """The weight matrices of a layer a packed method stores quantized, each with its
    (in, out) sizes: a Linear's weight (out, in), GPT-2's Conv1D weight (in, out), and
    each expert's matrices of experts named one by one (``{0..7}.w1.weight`` (out, in))."""
    from shapecalc.layers._linear import Linear

    conv = loaded(spec, CONV1D)
    if isinstance(spec, Linear):
        yield (
            next(p for p in spec.params() if p.name == "weight"),
            spec.in_features,
            spec.out_features,
        )
    elif conv is not None:
        yield next(p for p in spec.params() if p.name == "weight"), conv.nx, conv.nf
    elif _per_expert(spec):
        for p in spec.params():
            n_out, n_in = p.shape
            yield p, n_in, n_out


def _per_expert(spec: LayerSpec) -> bool:
    experts = loaded(spec, EXPERTS)
    return experts is not None and bool(experts.layout == "checkpoint")


def _fused(spec: LayerSpec) -> bool:
    if loaded(spec, GPT_OSS_EXPERTS) is not None:
        return True
    experts = loaded(spec, EXPERTS)
    return experts is not None and bool(experts.layout == "fused")


@frozen
class PackedMethod(Method):
    """A method that packs a block's linear layers (GPTQ, AWQ). :meth:`bind` finds the
    blocks in the model; :meth:`takes` says which layers of a block it converts."""

    #: the blocks' name (optimum's block_name_to_quantize), found by :meth:`bind`
    prefix: str = ""
    #: the routers of the blocks' mixtures, left as they are, found by :meth:`bind`
    routers: tuple[str, ...] = ()

    keys: ClassVar[dict[str, tuple[str, ...]]] = {
        "skip": ("modules_to_not_convert",),
        "prefix": (),
        "routers": (),
    }
    #: the library whose rule :meth:`bind` follows, for messages
    library: ClassVar[str] = ""
    #: the library whose quantizer takes a mixture of experts' matrices one Linear per
    #: expert (GPTQModel for GPTQ; AutoAWQ for AWQ, its models' experts ModuleLists)
    experts_library: ClassVar[str] = "GPTQModel"

    def takes(self, spec: LayerSpec) -> bool:
        """Whether a layer of a block is one this method converts."""
        raise NotImplementedError

    def block_name(self) -> str:
        """The blocks' name a config gives (GPTQ's block_name_to_quantize), or ""."""
        return ""

    def bind(self, model: Model) -> Method:
        names: list[tuple[str, LayerSpec, bool]] = []
        routers: list[str] = []
        head = model.head

        def collect(parts: tuple[str, ...], leaf: Leaf) -> Leaf:
            name = join_name(*parts)
            names.append((name, leaf.spec, bool(head) and name == head))
            if leaf.role in ROUTERS:
                routers.append(unnumbered(parts))
            return leaf

        map_leaves(model.root, collect)
        prefix = self.block_name() or next(
            (p for p in BLOCK_PATTERNS if any(n.startswith(p) for n, _, _ in names)), ""
        )
        if not prefix:
            raise weights_error(
                "weights",
                self.quant_method,
                f"{self.quant_method}: {model.name} has no decoder blocks ({self.library} "
                f"looks for {', '.join(BLOCK_PATTERNS)}), and {self.quant_method} quantizes "
                "only the linear layers of a model's blocks",
                "a model with decoder blocks",
            )
        bound = dataclasses.replace(self, prefix=prefix, routers=tuple(routers))
        inside = [
            (n, s, h)
            for n, s, h in names
            if n.startswith(prefix) and unnumbered(tuple(n.split("."))) not in routers
        ]
        for name, spec, _ in inside:
            if not _fused(spec) or bound.skipped(tuple(name.split("."))):
                continue
            if loaded(spec, GPT_OSS_EXPERTS) is not None:
                why = (
                    "3-D tensors (MXFP4 blocks in its checkpoints), not Linear layers, and "
                    "no GPTQ or AWQ checkpoint of them exists to follow"
                )
            else:
                why = (
                    f"fused 3-D tensors (transformers 5); {self.experts_library} quantizes "
                    "one Linear per expert, as checkpoints store them: "
                    "name them one by one (--moe-layout checkpoint; hf and fit hf: --layout "
                    "checkpoint)"
                )
            raise weights_error(
                "weights",
                self.quant_method,
                f"{self.quant_method}: {name} holds its experts as {why}",
                "experts named one by one",
            )
        if not any(bound.takes(s) for _, s, h in inside if not h):
            raise weights_error(
                "weights",
                self.quant_method,
                f"{self.quant_method}: {model.name} has no {bound.kinds()} layer in its "
                f"blocks (the names under {prefix}), the only layers {self.library} "
                "quantizes",
                "a model with layers the method quantizes",
            )
        return bound

    def kinds(self) -> str:
        """The layers the method takes, for a message."""
        return "nn.Linear"

    def in_block(self, parts: tuple[str, ...]) -> bool:
        return bool(self.prefix) and join_name(*parts).startswith(self.prefix)

    def converts(self, parts: tuple[str, ...], spec: LayerSpec, head: bool) -> bool:
        name = join_name(*parts)
        if head or not self.in_block(parts) or not self.takes(spec):
            return False
        if unnumbered(parts) in self.routers:
            return False
        for param, n_in, n_out in matrices(spec):
            where = f"{name}.{param.name}".replace(".weight", "")
            self.check_sizes(where, n_in, n_out)
        return True

    def check_sizes(self, where: str, n_in: Dim, n_out: Dim) -> None:
        """Refuse a layer whose sizes the method's packer cannot store."""

    def refuse_size(self, where: str, field: str, value: Dim, rule: str) -> None:
        raise weights_error(
            "weights",
            value,
            f"{self.quant_method}: {where}: {field} = {dim_str(value)}: {rule} (leave "
            "it out with modules_to_not_convert)",
            rule,
        )

    def stored(self, spec: LayerSpec, param: Param) -> tuple[Param, ...] | None:
        for matrix, n_in, n_out in matrices(spec):
            if matrix.name == param.name:
                base = param.name.removesuffix("weight")
                return tuple(
                    dataclasses.replace(
                        p, name=base + p.name, repeat=param.repeat, layers=param.layers
                    )
                    for p in self.packed(n_in, n_out)
                )
        if param.name == "bias":
            return (
                dataclasses.replace(
                    param, role=param.role + "; " + self.bias_note(), dtype=self.bias_dtype()
                ),
            )
        return None

    def bias_dtype(self) -> str:
        return "float16"

    def bias_note(self) -> str:
        return "float16, as the packer stores it"

    def packed(self, n_in: Dim, n_out: Dim) -> tuple[Param, ...]:
        """The tensors stored in place of one (out, in) matrix."""
        raise NotImplementedError


def divides(value: Dim, divisor: int) -> bool | None:
    """Whether ``divisor`` divides a size; None for a symbol."""
    n = known(value)
    return None if n is None else n % divisor == 0


def checked_int(where: str, key: str, value: Any, allowed: tuple[int, ...], rule: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value not in allowed:
        raise weights_error(where, value, f"{where}: {key} = {echo(value)}: {rule}", rule)
    return value
