"""docs/howto/own-layer.md's worked example (tests/zoo/grn.py, shown whole on the page): a
spec of one's own, registered with shapecalc.register_module, against the module it
registers: names, shapes, the output shape, FLOPs against FlopCounterMode, what autograd
keeps, the built module's numbers. And what a spec of one's own gets wrong is a
ShapecalcError, never an AttributeError or a recursion."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shapecalc
from shapecalc import Block, LayerSpec, Linear, Model, ShapecalcError, chain
from shapecalc.analysis.cost import analyze
from tests.zoo.grn import GRN, make

torch = pytest.importorskip("torch")
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from tests.measure import kept_bytes  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module", autouse=True)
def registered() -> None:
    shapecalc.register_module(GRN, make)


def test_the_page_shows_the_example_whole_and_its_calls_run() -> None:
    page = (ROOT / "docs" / "howto" / "own-layer.md").read_text(encoding="utf-8")
    source = (ROOT / "tests" / "zoo" / "grn.py").read_text(encoding="utf-8").rstrip()
    assert source in page
    blocks = re.findall(r"```python\n(.*?)```", page, flags=re.S)
    calls = next(b for b in blocks if "register_module(GRN, make)" in b)
    checks = """
assert model.named_parameters()[2:] == [("grn.gamma", (1, 1, 1, 64)), ("grn.beta", (1, 1, 1, 64))]
assert shapecalc.analyze(model, ((8, 14, 14, 64),)).layers[-1].outputs == ((8, 14, 14, 64),)
assert type(module.grn).__name__ == "TorchGRN"
"""
    done = subprocess.run(
        [sys.executable, "-c", calls + checks],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": f"{ROOT}:{ROOT / 'tests' / 'zoo'}", "PATH": "/usr/bin:/bin"},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


@settings(max_examples=40)  # each example builds and runs a module
@given(n=st.integers(1, 3), h=st.integers(1, 4), w=st.integers(1, 4), c=st.integers(1, 6))
def test_grn_against_its_module(n: int, h: int, w: int, c: int) -> None:
    model = Model("grn", Block("Net", {"fc": Linear(c, c), "grn": GRN(c)}, flow=chain("fc", "grn")))
    module = shapecalc.build(model, device="cpu")
    assert model.named_parameters() == [(k, tuple(p.shape)) for k, p in module.named_parameters()]
    assert model.total == sum(p.numel() for p in module.parameters())
    with torch.no_grad():
        module.grn.gamma.normal_(), module.grn.beta.normal_()
    x = torch.randn(n, h, w, c, requires_grad=True)
    reference = make(GRN(c), "cpu")
    reference.load_state_dict(module.grn.state_dict())
    assert torch.allclose(module(x), reference(module.fc(x)))
    cost = analyze(model, ((n, h, w, c),))
    with FlopCounterMode(display=False) as counter:
        out = module(x)
    assert cost.layers[-1].outputs == ((n, h, w, c),) == (tuple(out.shape),)
    assert counter.get_total_flops() == 2 * cost.macs
    assert kept_bytes(module, [x]) == cost.activation_bytes


def test_misuse_of_a_spec_of_ones_own_is_a_shapecalc_error() -> None:
    @dataclass(frozen=True)
    class Unbuilt(LayerSpec):
        size: int
        kind: ClassVar[str] = "Unbuilt"

        def params(self) -> Any:
            yield shapecalc.Param("weight", (self.size,), "a weight")

    with pytest.raises(ShapecalcError, match="register_module"):
        shapecalc.build(Unbuilt(3))  # not an AttributeError
    model = Model("m", Block("M", {"u": Unbuilt(3)}, flow=chain("u")), input_layout=(("B", 3),))
    with pytest.raises(ShapecalcError, match="output shapes"):
        analyze(model)  # no shape rule: said so, not NotImplementedError

    class NoKind(LayerSpec):
        def params(self) -> Any:
            return iter(())

    with pytest.raises(ShapecalcError, match="no kind"):
        Block("M", {"x": NoKind()})

    class NotADataclass(LayerSpec):
        kind: ClassVar[str] = "NotADataclass"

    with pytest.raises(ShapecalcError, match="not a dataclass"):
        Block("M", {"x": NotADataclass()})
    with pytest.raises(ShapecalcError, match="LayerSpec subclass"):
        shapecalc.register_module(int, make)  # type: ignore[arg-type]
    with pytest.raises(ShapecalcError, match="callable"):
        shapecalc.register_module(Unbuilt, "make")
    with pytest.raises(ShapecalcError, match="builds Bias itself"):
        shapecalc.register_module(shapecalc.Bias, make)
    with pytest.raises(ShapecalcError, match="own_step"):
        shapecalc.register_own_step(Unbuilt, lambda module, spec, x: x)
