"""What ``vllm serve`` takes by itself from a Hugging Face config: the dtype of
``--dtype auto`` and the default ``--max-model-len``.

**--dtype auto** (``vllm/config/model.py``, ``_get_and_verify_dtype`` and
``_resolve_auto_dtype``): the config's ``torch_dtype`` (``dtype``; a composite's
``text_config``'s when the top names none); a float32 config is downcast to the
platform's preferred dtype, the first of its supported dtypes the model type allows
(``vllm/platforms/cuda.py``, ``supported_dtypes``: bfloat16, float16, float32 from compute
capability 8.0, else float16, float32; ``_FLOAT16_NOT_SUPPORTED_MODELS``: the types that
never run in float16, each declared so by its architecture,
:attr:`~shapecalc.core.hfmap.HFType.vllm_no_float16`). A 16-bit config dtype the
platform supports is kept; one it does not support is replaced by the preferred one. A
config naming none: vLLM reads the dtypes of the safetensors files (not here: taken as
float32, its fallback, so downcast).

**--max-model-len** (``_get_and_verify_max_len``): the smallest of the text config's
length fields (``max_position_embeddings``, ``n_positions``, ``max_seq_len``,
``seq_length``, ``model_max_length``, ``max_sequence_length``, ``max_seq_length``,
``seq_len``; a composite's class default where its text config leaves them out, 2,048
where there is none), times the RoPE scaling factor unless the rope type is ``su``,
``longrope`` or ``llama3`` (YaRN: ``original_max_position_embeddings`` × factor), and never
for a model type containing ``gemma3`` (its context is already scaled). The tokenizer's
``model_max_length``, which vLLM also takes the smaller of, is not read here.

    >>> vllm_auto_dtype({"torch_dtype": "float32"}, True, float16=False)
    ('bf16', 'float32 config loaded as bfloat16 (vLLM --dtype auto)')
    >>> vllm_max_model_len({"max_position_embeddings": 4096,
    ...     "rope_scaling": {"rope_type": "linear", "factor": 4.0}}, None)
    (16384, 'max_position_embeddings 4,096 × rope factor 4')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["vllm_auto_dtype", "vllm_max_model_len"]

#: ``possible_keys`` of ``_get_and_verify_max_len``, in its order
LENGTH_KEYS = (
    "max_position_embeddings",
    "n_positions",
    "max_seq_len",
    "seq_length",
    "model_max_length",
    "max_sequence_length",
    "max_seq_length",
    "seq_len",
)
_NAMES = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "fp32"}
_TORCH = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def _text(config: Mapping[str, Any]) -> Mapping[str, Any]:
    text = config.get("text_config")
    return text if isinstance(text, Mapping) else config


def vllm_auto_dtype(config: Mapping[str, Any], bf16: bool, float16: bool = True) -> tuple[str, str]:
    """The dtype ``--dtype auto`` loads ``config`` in on a GPU with (``bf16``: compute
    capability 8.0 or more) or without bfloat16, and what happened, in words;
    ``float16``: vLLM runs the model type in float16 (not one of its
    ``_FLOAT16_NOT_SUPPORTED_MODELS``)."""
    said = config.get("torch_dtype") or config.get("dtype")
    if said is None:
        text = _text(config)
        said = text.get("torch_dtype") or text.get("dtype")
    supported = ["bf16", "fp16", "fp32"] if bf16 else ["fp16", "fp32"]
    supported = [d for d in supported if float16 or d != "fp16"]
    preferred = supported[0]
    found = _NAMES.get(str(said)) if said is not None else None
    if found is None:
        found = "fp32"
        was = "no dtype in the config (vLLM then reads the safetensors files; taken as float32)"
    else:
        was = f"{_TORCH[found]} config"
    if found == "fp32":
        chosen = preferred
    elif found in supported:
        return found, f"the config's {_TORCH[found]} (vLLM --dtype auto)"
    else:
        chosen = preferred
    return chosen, f"{was} loaded as {_TORCH[chosen]} (vLLM --dtype auto)"


def _rope(text: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The rope parameters, one a layer type where they are nested by layer type."""
    found = text.get("rope_parameters") or text.get("rope_scaling")
    if not isinstance(found, Mapping):
        return []
    if found and all(isinstance(v, Mapping) for v in found.values()):
        return list(found.values())
    return [found]


def vllm_max_model_len(config: Mapping[str, Any], context: int | None) -> tuple[int, str] | None:
    """vLLM's default ``max_model_len`` for ``config`` and how it was derived;
    ``context``: the text model's context where its config leaves the length out (its
    class default). None when the config names no rope type vLLM accepts (a ``factor``
    that is not a number)."""
    text = _text(config)
    lengths = [
        (text[k], k)
        for k in LENGTH_KEYS
        if isinstance(text.get(k), int) and not isinstance(text.get(k), bool)
    ]
    if lengths:
        derived, key = min(lengths)
        how = f"{key} {derived:,}"
    elif context is not None:
        derived, how = context, f"max_position_embeddings {context:,}, the class default"
    else:
        derived, how = 2048, "no length field: vLLM's 2,048"
    if "gemma3" in str(config.get("model_type", "")):
        return derived, how
    factor: Any = 1.0
    for rp in _rope(text):
        rope_type = rp.get("rope_type", rp.get("type", "default"))
        if rope_type in ("su", "longrope", "llama3"):
            continue
        factor = rp.get("factor", factor)
        if rope_type == "yarn" and isinstance(rp.get("original_max_position_embeddings"), int):
            derived = rp["original_max_position_embeddings"]
            how = f"original_max_position_embeddings {derived:,}"
    if factor is None:
        factor = 1.0
    if not isinstance(factor, (int, float)) or isinstance(factor, bool):
        return None
    if factor != 1:
        how += f" × rope factor {factor:g}"
    return int(derived * factor), how
