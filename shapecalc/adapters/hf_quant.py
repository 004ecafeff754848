"""A Hugging Face config's ``quantization_config`` as a shapecalc quantization: what
``shapecalc hf PATH`` prices by default and ``shapecalc inspect FOLDER`` checks the stored
tensors against."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from shapecalc.core.model import Model
from shapecalc.quant import METHODS, Quantization, from_config, method_class, quantize

if TYPE_CHECKING:
    from shapecalc.adapters.hf_config import HFModel

__all__ = ["config_quantization", "quantized_model"]


def config_quantization(hf: HFModel, layout: str = "transformers") -> Quantization | None:
    """The config's quantization when shapecalc models its method (None without one, for
    a method it does not know, or when the layout already names the stored tensors:
    gpt-oss's checkpoint layout is its MXFP4 blocks). A setting the method refuses is
    refused by name (``quantization_config.bnb_4bit_quant_type``)."""
    options = hf.quantization
    if options is None:
        return None
    method = options.get("quant_method")
    if not isinstance(method, str) or method not in METHODS:
        return None
    if layout == "checkpoint" and method in hf.family.quantized:
        return None
    cls = method_class(method)
    settings = dict(options)
    fields = {f.name for f in dataclasses.fields(cls)}
    if "dtype" in fields and hf.dtype is not None and "dtype" not in settings:
        settings["dtype"] = hf.dtype  # the dtype the weights were quantized from
    return from_config(settings)


def quantized_model(hf: HFModel, model: Model, layout: str = "transformers") -> Model:
    """``model`` stored as the config's quantization says, or as it is."""
    chosen = config_quantization(hf, layout)
    return model if chosen is None else quantize(model, chosen)
