"""Every registered layer kind against the real PyTorch module: parameter and buffer names
and shapes exactly, the output shapes of a forward pass, and the same refusals."""

from __future__ import annotations

import inspect
import warnings
from typing import Any

import pytest
from hypothesis import event, given, note
from hypothesis import strategies as st

from shapecalc import ShapecalcError
from shapecalc.core.spec import expand
from shapecalc.layers import LAYER_KINDS
from tests.layer_cases import CASES

torch = pytest.importorskip("torch")
nn = torch.nn
KINDS = sorted(LAYER_KINDS)


def build(kind: str, args: dict[str, Any], device: str = "meta") -> Any:
    cls = getattr(nn, kind)
    # layers without tensors (Identity, ReLU, MaxPool2d, ...) take no device; the
    # recurrent layers take it among **kwargs (Module's own **kwargs take nothing)
    params = inspect.signature(cls).parameters.values()
    takes = any(p.name == "device" for p in params) or (
        cls.__init__ is not nn.Module.__init__ and any(p.kind is p.VAR_KEYWORD for p in params)
    )
    place = {"device": device} if takes else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # e.g. dropout with one recurrent layer
        return cls(**args, **place)


def flat_shapes(output: Any) -> tuple[tuple[int, ...], ...]:
    if isinstance(output, torch.Tensor):
        return (tuple(output.shape),)
    return tuple(shape for item in output for shape in flat_shapes(item))


@pytest.mark.parametrize("kind", KINDS)
@given(data=st.data())
def test_parameters_and_buffers_equal_torch(kind: str, data: st.DataObject) -> None:
    args = data.draw(CASES[kind].args, label="args")
    spec = LAYER_KINDS[kind](**args)
    module = build(kind, args)
    assert [(p.name, p.shape) for p in expand(spec.params())] == [
        (n, tuple(p.shape)) for n, p in module.named_parameters()
    ]
    assert [(b.name, b.shape) for b in spec.buffers()] == [
        (n, tuple(b.shape)) for n, b in module.named_buffers()
    ]
    assert spec.total() == sum(p.numel() for p in module.parameters())
    rebuilt = build(kind, spec.arguments())  # the spec's fields are torch's arguments
    assert [(n, p.shape) for n, p in rebuilt.named_parameters()] == [
        (n, p.shape) for n, p in module.named_parameters()
    ]


@pytest.mark.parametrize("kind", KINDS)
@given(data=st.data())
def test_forward_output_shapes_equal_torch(kind: str, data: st.DataObject) -> None:
    case = CASES[kind]
    args = data.draw(case.args, label="args")
    spec = LAYER_KINDS[kind](**args)
    shapes = data.draw(case.inputs(spec), label="inputs")
    # small modules run for real on the CPU; large ones on the meta device (shapes only)
    small = isinstance(spec.total(), int) and spec.total() <= 200_000
    device = "cpu" if small else "meta"
    module = build(kind, args, device).eval()
    if case.indices:
        n = args["num_embeddings"]
        inputs = [torch.randint(0, n, shapes[0], device=device)]
        if len(shapes) == 2:  # EmbeddingBag offsets
            inputs.append(torch.arange(0, 2 * shapes[1][0], 2, device=device))
    else:
        inputs = [torch.randn(shape, device=device) for shape in shapes]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = flat_shapes(module(*inputs))
    except (RuntimeError, ValueError, IndexError) as err:
        # an input torch cannot run: shapecalc refuses it too, with its own message
        event("torch refuses the input")
        with pytest.raises(ShapecalcError):
            spec.output_shapes(*shapes)
        note(f"torch: {err}")
        return
    if kind.startswith("Conv") and any(0 in shape[-spec.dims :] for shape in expected):
        # torch raises "Output size is too small" on most paths but returns an empty
        # tensor on some (grouped transposed convolutions): shapecalc always refuses
        event("torch returns an empty convolution output")
        with pytest.raises(ShapecalcError):
            spec.output_shapes(*shapes)
        return
    event("forward ran")
    assert spec.output_shapes(*shapes) == expected


def _refuses(make: Any) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            make()
    except (
        ValueError,
        TypeError,
        RuntimeError,
        AssertionError,
        IndexError,
        ZeroDivisionError,
        ShapecalcError,
    ):
        return True
    return False


def _torch_refuses(kind: str, args: dict[str, Any]) -> bool:
    """torch's constructor refuses the arguments; or, for a kind whose forward checks them
    (a Case with a probe), a forward on an input any acceptable arguments fit refuses."""
    probe = CASES[kind].probe

    def make() -> None:
        module = build(kind, args, "meta" if probe is None else "cpu")
        if probe is not None:
            module(*(torch.randn(*shape) for shape in probe(args)))

    return _refuses(make)


@pytest.mark.parametrize("kind", KINDS)
@given(data=st.data())
def test_refuses_exactly_what_torch_refuses(kind: str, data: st.DataObject) -> None:
    args = data.draw(CASES[kind].loose, label="args")
    assert _refuses(lambda: LAYER_KINDS[kind](**args)) == _torch_refuses(kind, args)
