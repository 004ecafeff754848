"""LoRA on transformers 5's fused mixtures, as peft 0.21 converts a config for them.

transformers 5 stacks a mixture's experts into 3-D parameters (``experts.gate_up_proj``
(E, 2·I, H), ``experts.down_proj`` (E, H, I)) and made the router a module of its own
(``gate``, a ``weight`` (E, H)); in transformers 4 both were ``nn.Linear`` layers. For the
model types whose checkpoints transformers converts, peft's
``convert_peft_config_for_transformers`` (``utils/transformers_weight_conversion.py``)
rewrites the targets before it adapts anything:

- ``all-linear`` becomes every ``nn.Linear``'s last name but the head's, plus the
  transformers 4 names of the experts' projections and of the router;
- each target naming one of those (``w1``, ``w3``, ``w2`` and ``gate`` for Mixtral;
  ``gate_proj``, ``up_proj``, ``down_proj`` and ``gate`` for the Qwen2-MoE pattern, here
  "gated"; each type declares its pattern as ``HFType.peft_moe``) leaves
  the module targets and becomes a parameter target (``gate_up_proj``, ``down_proj``,
  ``gate.weight``), the fused pair at twice the rank (and alpha);
- naming one half of a fused pair without the other is refused.

So under ``all-linear`` a DeepSeek-V3 or Qwen3-Next keeps its dense MLPs and shared
experts (``nn.Linear`` named ``gate_proj``, ``up_proj`` and ``down_proj``) without an
adapter: their names went to the experts. A targeted parameter is wrapped by peft's
``lora.ParamWrapper``: ``lora_A`` (r·E, in) and ``lora_B`` (out, r·E) (E = 1 for a 2-D
weight; in and out the last two dims, swapped for transformers' (E, out, in) stacks), the
module's first targeted parameter wrapped innermost (``experts.base_layer.lora_A`` is
``gate_up_proj``'s, ``experts.lora_A`` ``down_proj``'s).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shapecalc.core.dims import Dim
from shapecalc.core.errors import InvalidArgumentError
from shapecalc.core.model import Model
from shapecalc.core.tree import Leaf, map_leaves

__all__ = ["MOE_PATTERNS", "Converted", "convert", "in_out", "pattern_of"]

#: transformers 4's names of a mixture's layers -> transformers 5's parameter names
#: (peft's ``_MOE_TARGET_MODULE_MAPPING``), with the fused pairs (``_MOE_FUSED_TARGETS``)
MOE_PATTERNS: dict[str, tuple[dict[str, str], dict[str, tuple[str, ...]]]] = {
    "numbered": (
        {"gate": "gate.weight", "w1": "gate_up_proj", "w3": "gate_up_proj", "w2": "down_proj"},
        {"gate_up_proj": ("w1", "w3")},
    ),
    "gated": (
        {
            "gate": "gate.weight",
            "gate_proj": "gate_up_proj",
            "up_proj": "gate_up_proj",
            "down_proj": "down_proj",
        },
        {"gate_up_proj": ("gate_proj", "up_proj")},
    ),
}


@dataclass(frozen=True)
class Converted:
    """The targets after peft's conversion: module names (as a list of names is
    matched), parameter names, and the rank multiplier of a fused pair."""

    modules: tuple[str, ...]
    parameters: tuple[str, ...]
    times: dict[str, int] = field(default_factory=dict)

    def wraps(self, key: str) -> str | None:
        """The parameter target ``key`` (``model.layers.0.mlp.experts.down_proj``) is, if
        any (peft's ``key in targets or key.endswith('.' + target)``)."""
        for target in self.parameters:
            if key == target or key.endswith(f".{target}"):
                return target
        return None


def pattern_of(model: Model) -> str | None:
    """The conversion pattern of the model's Hugging Face type, when its experts are
    stacked as transformers 5 builds them; None otherwise."""
    architecture = model.config
    if architecture is None or not _fused_experts(model):
        return None
    from shapecalc.core.hfmap import config_for

    for t in getattr(type(architecture), "hf", ()):
        if config_for(architecture, t) is not None:
            # peft 0.21.2's _MODEL_TO_CONVERSION_PATTERN, declared on each type: mixtral
            # "numbered"; qwen3_moe, deepseek_v2/v3, glm4_moe, qwen3_next "gated"; not
            # qwen2_moe itself, jamba or gpt_oss
            return t.peft_moe or None
    return None


def _fused_experts(model: Model) -> bool:
    found: list[bool] = []

    def look(parts: tuple[str, ...], leaf: Leaf) -> Leaf:
        names = {p.name for p in leaf.spec.params()}
        found.append({"gate_up_proj", "down_proj"} <= names)
        return leaf

    map_leaves(model.root, look)
    return any(found)


def convert(model: Model, targets: Any, linear: Callable[[], set[str]]) -> Converted | None:
    """peft's ``_convert_peft_config_moe`` on ``targets`` (names, a regular expression or
    all-linear) for ``model``; None when the model's type is not converted (the targets
    stay as they are). ``linear``: the last names of the layers all-linear takes."""
    pattern = pattern_of(model)
    if pattern is None:
        return None
    mapping, fused = MOE_PATTERNS[pattern]
    if isinstance(targets, str):
        resolved = _resolved(model, targets, mapping, linear)
        if not resolved:
            return None  # peft leaves it for its not-found error
        names: set[str] = resolved
    else:
        names = set(targets)
    parameters: set[str] = set()
    remaining: list[str] = []
    present: dict[str, set[str]] = {new: set() for new in fused}
    for target in sorted(names):
        hit = next(
            (
                (old, new)
                for old, new in mapping.items()
                if target == old or target.endswith(f".{old}")
            ),
            None,
        )
        if hit is None:
            remaining.append(target)
            continue
        old, new = hit
        parameters.add(new)
        if new in fused:
            present[new].add(old)
    times: dict[str, int] = {}
    for new, pair in fused.items():
        have = present[new]
        if 0 < len(have) < len(pair):
            missing = ", ".join(sorted(set(pair) - have))
            raise InvalidArgumentError(
                f"--lora-targets: cannot target {', '.join(sorted(have))} without also "
                f"targeting {missing}: transformers 5 fuses them into {new} (peft refuses "
                "the half)",
                layer="",
                field="lora_targets",
                value=targets if isinstance(targets, str) else list(targets),
                rule="both halves of a fused projection or neither",
            )
        if len(have) == len(pair) and len(pair) > 1:
            times[new] = len(pair)
    return Converted(tuple(remaining), tuple(sorted(parameters)), times)


def _resolved(
    model: Model, targets: str, mapping: dict[str, str], linear: Callable[[], set[str]]
) -> set[str]:
    """peft's ``_resolve_string_target_modules``: all-linear as every linear layer's last
    name and the mapping's old names; a regular expression as the last names of the
    modules and parameters it matches whole, and the old names it would match in the
    containers of the new parameters."""
    from shapecalc.quant import module_names

    if targets.lower() == "all-linear":
        return linear() | set(mapping)
    modules: set[str] = set()
    params: list[str] = []

    def look(parts: tuple[str, ...], leaf: Leaf) -> Leaf:
        for k in range(1, len(parts) + 1):
            modules.update(module_names(parts[:k]))
        for name in module_names(parts):
            params.extend(f"{name}.{p.name}" for p in leaf.spec.params())
        return leaf

    map_leaves(model.root, look)
    matched = {k.rpartition(".")[2] for k in (*modules, *params) if re.fullmatch(targets, k)}
    containers: dict[str, set[str]] = {}
    for key in params:
        container, _, leaf_name = key.rpartition(".")
        containers.setdefault(leaf_name, set()).add(container)
    for old, new in mapping.items():
        if old in matched:
            continue
        if any(re.fullmatch(targets, f"{c}.{old}") for c in sorted(containers.get(new, ()))):
            matched.add(old)
    return matched


def in_out(shape: tuple[Dim, ...]) -> tuple[Dim, Dim, Dim]:
    """(experts, in, out) of a wrapped parameter: a stack (E, out, in) as transformers 5
    stores it (not transposed), or a 2-D (out, in) weight with one expert."""
    if len(shape) == 3:
        e, out, n_in = shape
        return e, n_in, out
    out, n_in = shape
    return 1, n_in, out
