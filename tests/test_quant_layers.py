"""The quantization methods ask whether a layer is one of the mixtures' or GPT-2's
classes without importing their modules (:func:`shapecalc.quant.loaded`): each name
they ask by is a class of that module, and the answer is isinstance's."""

from __future__ import annotations

import importlib

import pytest

from shapecalc.quant import CONV1D, EXPERTS, GPT_OSS_EXPERTS, loaded


@pytest.mark.parametrize("layer", [EXPERTS, CONV1D, GPT_OSS_EXPERTS])
def test_each_layer_asked_by_name_is_a_class_of_its_module(layer: tuple[str, str]) -> None:
    from shapecalc.core.spec import LayerSpec

    cls = getattr(importlib.import_module(layer[0]), layer[1])
    assert isinstance(cls, type) and issubclass(cls, LayerSpec)


def test_loaded_answers_as_isinstance() -> None:
    from shapecalc.layers._experts import Experts
    from shapecalc.layers._linear import Linear
    from shapecalc.layers.transformers import Conv1D

    experts = Experts(num_experts=4, hidden_size=8, intermediate_size=16)
    conv = Conv1D(nf=6, nx=4)
    linear = Linear(4, 6)
    assert loaded(experts, EXPERTS) is experts
    assert loaded(conv, CONV1D) is conv
    assert loaded(linear, EXPERTS) is None and loaded(linear, CONV1D) is None
    assert loaded(conv, GPT_OSS_EXPERTS) is None
