"""MXFP4 (transformers' ``Mxfp4Config``, ``quant_method: mxfp4``; gpt-oss): the experts'
weights in 4-bit floats, blocks of 32 numbers sharing a power-of-two scale, as the Hub's
checkpoints store them: ``gate_up_proj_blocks`` (E, 2·I, H/32, 16) and
``down_proj_blocks`` (E, H, I/32, 16), uint8 bytes of two numbers each, stored (out,
in); ``gate_up_proj_scales`` and ``down_proj_scales`` one uint8 exponent per block; the
biases as they were. Only the experts of gpt-oss's MLP are converted
(``replace_with_mxfp4_linear`` swaps each ``GptOssMLP``'s experts): attention, the
router, embeddings, norms and the head stay as they are.

The layout is :class:`~shapecalc.layers.transformers.GptOssExperts`' ``checkpoint`` one
(``transformers/integrations/mxfp4.py``, ``Mxfp4GptOssExperts``; the checkpoints'
``*_blocks`` and ``*_scales``); its rule: the hidden and intermediate sizes are
multiples of 32.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from shapecalc.core.dims import known
from shapecalc.core.frozen import frozen
from shapecalc.core.spec import LayerSpec, Param
from shapecalc.quant import GPT_OSS_EXPERTS, Method, loaded, weights_error

__all__ = ["METHOD", "Mxfp4"]


@frozen
class Mxfp4(Method):
    """gpt-oss's MXFP4 experts: 4-bit blocks of 32 with a shared power-of-two scale
    (``_blocks`` and ``_scales`` per expert tensor)."""

    quant_method: ClassVar[str] = "mxfp4"
    aliases: ClassVar[dict[str, dict[str, Any]]] = {"mxfp4": {}}
    ignored_keys: ClassVar[tuple[str, ...]] = ("quant_method", "dequantize")

    def describe(self) -> str:
        from shapecalc.layers.transformers import MXFP4_BLOCK

        return f"MXFP4 experts (4-bit, blocks of {MXFP4_BLOCK})"

    def converts(self, parts: tuple[str, ...], spec: LayerSpec, head: bool) -> bool:
        experts = loaded(spec, GPT_OSS_EXPERTS)
        if experts is None or experts.layout != "fused":
            return False
        from shapecalc.layers.transformers import MXFP4_BLOCK

        for name in ("hidden_size", "intermediate_size"):
            n = known(getattr(spec, name))
            if n is not None and n % MXFP4_BLOCK:
                raise weights_error(
                    "weights",
                    n,
                    f"mxfp4: {name} = {n} is not a multiple of {MXFP4_BLOCK} (MXFP4 stores "
                    f"the experts in blocks of {MXFP4_BLOCK} numbers)",
                    f"{name} is a multiple of {MXFP4_BLOCK}",
                )
        return True

    def stored(self, spec: LayerSpec, param: Param) -> tuple[Param, ...] | None:
        experts = loaded(spec, GPT_OSS_EXPERTS)
        assert experts is not None
        held = {p.name: p for p in dataclasses.replace(experts, layout="checkpoint").params()}
        if param.name in ("gate_up_proj", "down_proj"):
            return held[f"{param.name}_blocks"], held[f"{param.name}_scales"]
        return (held[param.name],)


METHOD = Mxfp4
