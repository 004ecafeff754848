"""The weights formats are priced leaf by leaf on the model's tree, a run once for all
of its blocks, without building the quantized model (what ``fit`` does for every
format): for every architecture's default model and every format, the bytes equal
those of the model :func:`quantize` builds, and a format quantize refuses is refused
with the same line."""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from shapecalc.architectures import commands, get
from shapecalc.core.errors import ShapecalcError
from shapecalc.core.spec import Param


def _example_model(command: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The model the command's example builds (as the command builds it)."""
    from shapecalc.cli import models
    from shapecalc.cli.models import model_command

    made: list[Any] = []
    monkeypatch.setattr(models, "finish", lambda model, shown: made.append(model))
    model_command(command).main(shlex.split(get(command).example), standalone_mode=False)
    return made[0]


def _formats() -> list[str]:
    """Every format but the GGUF mixes, of which three (one walk of the method's own
    for them all)."""
    from shapecalc.quant import METHODS, method_class

    every = [a for m in METHODS for a in (method_class(m).aliases or {m: {}}) if m != "gguf"]
    return [*every, "q8_0", "q4_k_m", "q2_k"]


def _priced(shapes: dict[tuple[tuple[int, ...], str], int]) -> int:
    return sum(n * int(Param("", s, "", dtype=d).nbytes(2)) for (s, d), n in shapes.items())


@pytest.mark.parametrize("command", commands())
def test_priced_by_shape_is_the_built_model(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from shapecalc.quant import parse_weights, quantize, stored_shapes

    model = _example_model(command, monkeypatch)
    if model.symbolic:
        pytest.skip("a symbolic default")
    priced = 0
    for name in _formats():
        try:
            quantization = parse_weights(name)
        except ShapecalcError:
            continue  # a method with settings to give (compressed-tensors' groups)
        try:
            built = quantize(model, quantization)
        except ShapecalcError as err:
            with pytest.raises(ShapecalcError) as raised:
                stored_shapes(model, quantization)
            assert raised.value.message == err.message, name
            continue
        shapes = stored_shapes(model, quantization)
        if shapes is None:
            continue
        assert _priced(shapes) == built.bytes("bf16"), name
        priced += 1
    if command == "llama":
        assert priced >= 12  # the common formats at least


@pytest.mark.parametrize("command", commands())
def test_the_leaves_listed_child_by_child_are_the_placed_leaves(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``named_parameters()`` lists the leaves by :func:`every_leaf` (a run's node walked
    once): the same paths and leaves, in the same order, as the general walk of
    :func:`placed_leaves` with every run child by child; a run with its children
    interleaved with another's (Jamba's, Gemma 3's) among them."""
    from shapecalc.core.tree import every_child, every_leaf, placed_leaves

    model = _example_model(command, monkeypatch)
    walked = [(p.path, p.leaf) for (p,) in placed_leaves((model.root,), every_child)]
    assert every_leaf(model.root) == walked


@pytest.mark.parametrize("command", commands())
def test_a_layer_tensors_facts_are_worked_out_once_per_name(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """llama-quantize's visit list keeps, for each tensor, its source type, whether it
    may be quantized and its category, worked out once for every layer's tensor of one
    name and shape: the same facts as each tensor's own."""
    from shapecalc.quant.gguf import _category, _visits, allows_quantization, source_type
    from shapecalc.quant.gguf_names import gguf_tensors

    model = _example_model(command, monkeypatch)
    tensors, _ = gguf_tensors(model)
    if not tensors:
        pytest.skip("no GGUF names")
    listed = tuple((t.name, t.ne) for t in tensors)
    for name, ne, source, allowed, category in _visits(listed, "F16"):
        assert source == source_type(name, ne, "F16"), name
        assert allowed == allows_quantization(name, ne), name
        assert category == _category(name), name


@pytest.mark.parametrize("command", commands())
def test_a_mix_priced_a_run_at_a_time_is_priced_tensor_by_tensor(
    command: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A GGUF mix is priced from the tensors a run of layers at a time (gguf_runs: each
    of a run's first layer with the layers it stands for): every layer's tensors are
    gguf_tensors' own, and every mix (with and without an importance matrix, its
    refusals included) gives the same count of each (shape, type) as the visits of
    every tensor, one by one."""
    from shapecalc.quant import Quantization
    from shapecalc.quant.gguf import (
        FTYPES,
        GGUFMix,
        _by_runs,
        _counted,
        _needs_imatrix,
        _plan,
        _priced,
        _setting,
    )
    from shapecalc.quant.gguf_names import gguf_runs, gguf_tensors

    model = _example_model(command, monkeypatch)
    if model.symbolic:
        pytest.skip("a symbolic default")
    tensors, unmapped = gguf_tensors(model)
    runs = gguf_runs(model)
    if runs is None:
        assert command not in ("llama", "mixtral", "qwen2_moe", "gemma2", "gpt_oss"), command
        pytest.skip("not listed by runs")
    assert not unmapped

    def every(t: Any, layer: int | None) -> tuple[str, tuple[int, ...], str, str]:
        if layer is None:
            return t.name, t.shape, t.source, t.how
        first = t.name.split(".")[1]
        source = t.source.replace(f".{first}.", f".{layer}.", 1)
        return t.name.replace(f"blk.{first}.", f"blk.{layer}.", 1), t.shape, source, t.how

    expanded = sorted(every(t, i) for t, layers in runs for i in (layers or [None]))
    assert expanded == sorted((t.name, t.shape, t.source, t.how) for t in tensors)
    by_runs = _by_runs(model, GGUFMix())
    assert by_runs is not None
    groups, counted, facts = by_runs
    for ftype in FTYPES:
        for imatrix in (False, True):
            method = GGUFMix(ftype=ftype, imatrix=imatrix)
            quantization = Quantization(method)
            try:
                setting = _setting(model, method, quantization)
            except ShapecalcError:
                continue
            fast = _priced(groups, counted, _plan(model, method, facts, *setting), method)
            try:
                slow = _counted(model, method, quantization)
            except ShapecalcError:  # llama-quantize stops: the runs give way to the visits
                assert fast is None, (ftype, imatrix)
                continue
            if fast is None:  # a type needing an importance matrix: the visits decide
                assert any(_needs_imatrix(kind, ftype) for _, kind in slow), (ftype, imatrix)
                continue
            assert fast == slow, (ftype, imatrix)
