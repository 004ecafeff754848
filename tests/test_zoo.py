"""Networks written with the composition API against torch twins written as their authors
wrote them: ResNet-18 and ResNet-50 (tests/zoo/) with torchvision's names, counts,
output shapes, FLOPs and the tensors autograd keeps."""

from __future__ import annotations

import pytest

from shapecalc.adapters.torch_bridge import compare
from shapecalc.analysis.cost import analyze
from shapecalc.core.dims import symbol
from tests.zoo.resnet import resnet

torch = pytest.importorskip("torch")
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from tests.measure import kept_bytes  # noqa: E402
from tests.zoo import torch_resnet  # noqa: E402

#: torchvision's published parameter counts
PUBLISHED = {18: 11_689_512, 34: 21_797_672, 50: 25_557_032, 101: 44_549_160, 152: 60_192_808}


@pytest.mark.parametrize("depth", sorted(PUBLISHED))
def test_resnet_names_shapes_and_published_totals(depth: int) -> None:
    model = resnet(depth)
    twin = torch_resnet.resnet(depth)
    assert model.total == PUBLISHED[depth] == sum(p.numel() for p in twin.parameters())
    assert compare(model, twin).ok, compare(model, twin)
    assert model.named_parameters() == [(n, tuple(p.shape)) for n, p in twin.named_parameters()]
    assert model.named_buffers() == [(n, tuple(b.shape)) for n, b in twin.named_buffers()]


def test_resnet18_names_as_torchvision_writes_them() -> None:
    names = [n for n, _ in resnet(18).named_parameters()]
    assert names[:3] == ["conv1.weight", "bn1.weight", "bn1.bias"]
    assert "layer1.0.conv1.weight" in names and "layer2.0.downsample.0.weight" in names
    assert "layer1.0.downsample.0.weight" not in names  # 64 -> 64, stride 1: no shortcut conv
    assert names[-2:] == ["fc.weight", "fc.bias"]


@pytest.mark.parametrize("depth", [18, 50])
def test_resnet_output_shape_and_flops_against_flop_counter(depth: int) -> None:
    model = resnet(depth)
    cost = analyze(model, batch=2)
    assert cost.layers[-1].outputs == ((2, 1000),)
    twin = torch_resnet.resnet(depth)
    x = torch.empty(2, 3, 224, 224, device="meta")
    with FlopCounterMode(display=False) as counter:
        out = twin(x)
    assert tuple(out.shape) == (2, 1000)
    assert counter.get_total_flops() == 2 * cost.macs


def test_resnet18_symbolic_input_size() -> None:
    model = resnet(18)
    B, H, W = symbol("B"), symbol("H"), symbol("W")
    cost = analyze(model, ((B, 3, H, W),))
    assert cost.layers[-1].outputs == ((B, 1000),)
    for h, w in ((224, 224), (225, 199), (64, 97), (33, 32)):
        concrete = analyze(model, ((1, 3, h, w),))
        assert cost.macs.subs({"B": 1, "H": h, "W": w}) == concrete.macs  # type: ignore[union-attr]
    assert analyze(model, batch=1).macs == 1_814_073_344  # 1.8 GMACs, as the paper gives


@pytest.mark.parametrize("depth", [18, 50])
def test_resnet_activation_memory_against_autograd(depth: int) -> None:
    model = resnet(depth)
    cost = analyze(model, ((2, 3, 64, 64),))
    twin = torch_resnet.resnet(depth, device="cpu")
    assert kept_bytes(twin, [torch.randn(2, 3, 64, 64)]) == cost.activation_bytes


# -- a small transformer -----------------------------------------------------------------------
from tests.zoo import torch_tiny_gpt  # noqa: E402
from tests.zoo.tiny_gpt import tiny_gpt  # noqa: E402

attention = pytest.importorskip("torch.nn.attention")


@pytest.mark.parametrize(
    ("vocab", "width", "heads", "layers", "context"), [(97, 32, 4, 2, 16), (50, 16, 2, 6, 8)]
)
def test_tiny_gpt_against_its_twin(
    vocab: int, width: int, heads: int, layers: int, context: int
) -> None:
    model = tiny_gpt(vocab, width, heads, layers, context)
    twin = torch_tiny_gpt.TinyGPT(vocab, width, heads, layers, context)
    assert model.named_parameters() == [(n, tuple(p.shape)) for n, p in twin.named_parameters()]
    assert model.total == sum(p.numel() for p in twin.parameters())
    cost = analyze(model, batch=3, seq_len=context)
    idx = torch.zeros(3, context, dtype=torch.long, device="meta")
    with (
        attention.sdpa_kernel(attention.SDPBackend.MATH),
        FlopCounterMode(display=False) as counter,
    ):
        out = twin(idx)
    assert cost.layers[-1].outputs == (tuple(out.shape),) == ((3, context, vocab),)
    assert counter.get_total_flops() == 2 * cost.macs


def test_tiny_gpt_symbolic() -> None:
    # symbols, not strings, where the code does arithmetic on a size (4 * width)
    V, D, L, C, B, T = (symbol(n) for n in "VDLCBT")
    model = tiny_gpt(V, D, 4, L, C)
    assert str(model.total) == "12·L·D² + 13·L·D + D·V + D·C + 2·D"
    assert model.evaluate(V=97, D=32, L=3, C=16).total == tiny_gpt(97, 32, 4, 3, 16).total
    cost = analyze(model)
    assert cost.layers[-1].outputs == ((B, T, V),)
    # per token: the matrices' 12·L·D² and the head's D·V, and attention's 2·L·D·T
    assert str(cost.per_token(cost.macs)) == "12·L·D² + 2·L·D·T + D·V"
