"""The real quantization libraries, run on CPU: quantize small layers or tiny transformers
models as transformers does, and list the tensors of the saved state dict (name, shape,
dtype, bytes) for the quantization tests to compare with shapecalc's rows."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")


def tensors(state: dict[str, Any]) -> list[tuple[str, tuple[int, ...], str, int]]:
    """(name, shape, dtype, bytes) of every tensor of a state dict, in its order."""
    return [
        (k, tuple(v.shape), str(v.dtype).removeprefix("torch."), v.numel() * v.element_size())
        for k, v in state.items()
    ]


def rows(
    model: Any, itemsize: int = 2, dtype: str = "bfloat16"
) -> list[tuple[str, tuple[int, ...], str, int]]:
    """The same of a shapecalc model, every repeated block expanded, a tied tensor once,
    its tensors without a dtype of their own at ``itemsize`` bytes (bfloat16)."""
    from shapecalc.core.model import full_name
    from shapecalc.core.spec import expand
    from shapecalc.core.tree import every_child, placed_leaves

    out = []
    for (place,) in placed_leaves((model.root,), every_child):
        for p in expand(place.leaf.spec.params()):
            name = full_name(place.path, p.name)
            if name in model.ties:
                continue
            shape = tuple(int(d) for d in p.shape)
            out.append((name, shape, p.dtype or dtype, int(p.nbytes(itemsize))))
    return out


def bnb_transformers(
    model_cls: Any, config: Any, quantization: Any, wrap: Any = None
) -> dict[str, Any]:
    """A tiny transformers model quantized by transformers' bitsandbytes path on CPU
    (``replace_with_bnb_linear`` through the quantizer, then ``Bnb8bitQuantize`` or
    ``Bnb4bitQuantize`` on every weight it marks, as ``from_pretrained`` loads), its
    state dict as ``save_pretrained`` writes it (``wrap``: a function of the model whose
    result's state dict is taken instead, peft's ``get_peft_model``)."""
    bnb = pytest.importorskip("bitsandbytes")
    from transformers.integrations.bitsandbytes import Bnb4bitQuantize, Bnb8bitQuantize
    from transformers.quantizers.auto import AutoHfQuantizer

    torch.manual_seed(0)
    source = model_cls(config).to(torch.bfloat16).state_dict()
    quantizer = AutoHfQuantizer.from_config(quantization)
    with torch.device("meta"):
        model = model_cls(config)
    quantizer._process_model_before_weight_loading(model, device_map=None)
    op = (Bnb8bitQuantize if quantization.load_in_8bit else Bnb4bitQuantize)(quantizer)
    for name, value in source.items():
        owner, _, attr = name.rpartition(".")
        module = model.get_submodule(owner)
        if quantizer.param_needs_quantization(model, name):
            new = op.convert({name: [value]}, model=model, full_layer_name=name)[name]
        else:
            new = torch.nn.Parameter(value, requires_grad=False)
        if attr in module._parameters:
            module._parameters[attr] = new
        else:
            module._buffers[attr] = value
        if isinstance(module, bnb.nn.Linear4bit) and attr == "weight":
            module.quant_state = new.quant_state
    model.tie_weights()
    state: dict[str, Any] = (model if wrap is None else wrap(model)).state_dict()
    # save_pretrained drops the tied copies (safetensors keeps one of shared tensors)
    tied = set(getattr(model, "all_tied_weights_keys", {}) or {})
    return {k: v for k, v in state.items() if k not in tied}


def meta_quantized(model_cls: Any, config: Any, quantization: Any) -> dict[str, Any]:
    """A tiny transformers model with its layers replaced by a quantizer on the meta
    device, as ``from_pretrained`` of a pre-quantized checkpoint builds it."""
    from transformers.quantizers.auto import AutoHfQuantizer

    quantizer = AutoHfQuantizer.from_config(quantization)
    quantizer.pre_quantized = True
    with torch.device("meta"):
        model = model_cls(config)
    quantizer._process_model_before_weight_loading(model, device_map=None)
    state: dict[str, Any] = model.state_dict()
    tied = set(getattr(model, "all_tied_weights_keys", {}) or {})
    return {k: v for k, v in state.items() if k not in tied}
